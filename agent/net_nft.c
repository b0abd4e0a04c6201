/* nftables: the text of the node's rules and a libnftables context to run
 * it in (no nft process is started). Every rule lives in "table ip orch";
 * an allocation's DNAT rules carry its id as their comment, so detach can
 * find and delete exactly those by handle. */
#define _GNU_SOURCE
#include <errno.h>
#include <nftables/libnftables.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net_internal.h"
#include "orch_util.h"

typedef struct strbuf_s
{
  char *s;
  size_t len, cap;
} strbuf_t;

static void sb_printf (strbuf_t *sb, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static void
sb_printf (strbuf_t *sb, const char *fmt, ...)
{
  va_list ap;
  int n;

  va_start (ap, fmt);
  n = vsnprintf (NULL, 0, fmt, ap);
  va_end (ap);
  if (n < 0)
    abort ();
  orch_grow ((void **) &sb->s, &sb->cap, sb->len + (size_t) n + 1, 1);
  va_start (ap, fmt);
  vsnprintf (sb->s + sb->len, (size_t) n + 1, fmt, ap);
  va_end (ap);
  sb->len += (size_t) n;
}

static char *
sb_take (strbuf_t *sb)
{
  if (sb->s == NULL)
    return xstrdup ("");
  return sb->s;
}

char *
net__nft_setup_text (const char *bridge, const net_subnet_t *sn)
{
  strbuf_t sb = { 0 };
  char base[16];
  const char *t = NET_NFT_TABLE;

  net__addr_format (sn->base, base, sizeof base);
  sb_printf (&sb, "add table ip %s\n", t);
  /* Outbound: workloads leave with the node's address. Traffic to another
   * workload through a published port (hairpin) is masqueraded too, or the
   * answer would bypass the DNAT; so is the node's own 127.0.0.1 traffic to
   * a published port, which route_localnet lets out onto the bridge. */
  sb_printf (&sb,
             "add chain ip %s postrouting { type nat hook postrouting priority srcnat; policy "
             "accept; }\n",
             t);
  sb_printf (&sb, "flush chain ip %s postrouting\n", t);
  sb_printf (&sb, "add rule ip %s postrouting ip saddr %s/%d oifname != \"%s\" masquerade\n", t,
             base, sn->prefix, bridge);
  sb_printf (&sb,
             "add rule ip %s postrouting oifname \"%s\" ct status dnat ip saddr %s/%d masquerade\n",
             t, bridge, base, sn->prefix);
  sb_printf (&sb, "add rule ip %s postrouting oifname \"%s\" ip saddr 127.0.0.0/8 masquerade\n", t,
             bridge);
  /* Published ports: rules are added per allocation and must survive an
   * agent restart, so these chains are created but never flushed here. */
  sb_printf (&sb,
             "add chain ip %s prerouting { type nat hook prerouting priority dstnat; policy "
             "accept; }\n",
             t);
  sb_printf (&sb, "add chain ip %s output { type nat hook output priority -100; policy accept; }\n",
             t);
  /* Some hosts drop forwarded traffic by default. */
  sb_printf (&sb,
             "add chain ip %s forward { type filter hook forward priority filter; policy accept; "
             "}\n",
             t);
  sb_printf (&sb, "flush chain ip %s forward\n", t);
  sb_printf (&sb, "add rule ip %s forward iifname \"%s\" accept\n", t, bridge);
  sb_printf (&sb, "add rule ip %s forward oifname \"%s\" accept\n", t, bridge);
  /* route_localnet on the bridge must not let workloads reach the node's
   * loopback-only services (CVE-2020-8558 in kube-proxy). */
  sb_printf (&sb,
             "add chain ip %s guard { type filter hook prerouting priority raw; policy accept; }\n",
             t);
  sb_printf (&sb, "flush chain ip %s guard\n", t);
  sb_printf (&sb, "add rule ip %s guard iifname \"%s\" ip daddr 127.0.0.0/8 drop\n", t, bridge);
  return sb_take (&sb);
}

char *
net__nft_port_rules_text (const char *alloc_id, uint32_t addr, const net_port_t *ports,
                          size_t n_ports, orch_err_t *err)
{
  static const char *const chains[] = { "prerouting", "output" };
  strbuf_t sb = { 0 };
  char a[16];
  size_t i, j, c;

  if (!net__alloc_id_valid (alloc_id))
    {
      orch_err_set (err, EINVAL, "allocation id \"%s\" cannot tag a rule", alloc_id);
      return NULL;
    }
  for (i = 0; i < n_ports; i++)
    {
      if (ports[i].host_port == 0)
        continue;
      if (ports[i].port == 0)
        {
          orch_err_set (err, EINVAL, "ports[%zu]: host port %u published to port 0", i,
                        ports[i].host_port);
          return NULL;
        }
      for (j = 0; j < i; j++)
        if (ports[j].host_port == ports[i].host_port && !ports[j].udp == !ports[i].udp)
          {
            orch_err_set (err, EINVAL, "ports[%zu]: host port %s/%u is published twice", i,
                          ports[i].udp ? "udp" : "tcp", ports[i].host_port);
            return NULL;
          }
    }
  net__addr_format (addr, a, sizeof a);
  /* prerouting for traffic that arrives at one of the node's addresses,
   * output for connections the node itself makes to them. */
  for (c = 0; c < ORCH_ARRAY_LEN (chains); c++)
    for (i = 0; i < n_ports; i++)
      {
        const char *proto = ports[i].udp ? "udp" : "tcp";

        if (ports[i].host_port == 0)
          continue;
        sb_printf (&sb,
                   "add rule ip %s %s fib daddr type local %s dport %u dnat to %s:%u comment "
                   "\"%s\"\n",
                   NET_NFT_TABLE, chains[c], proto, ports[i].host_port, a, ports[i].port, alloc_id);
      }
  return sb_take (&sb);
}

char *
net__nft_delete_text (const char *listing, const char *alloc_id)
{
  strbuf_t sb = { 0 };
  cleanup_free char *tag = NULL;
  char chain[64] = "";
  const char *line = listing;

  if (listing == NULL || !net__alloc_id_valid (alloc_id))
    return xstrdup ("");
  tag = xasprintf ("comment \"%s\" # handle ", alloc_id);
  while (line != NULL && *line != '\0')
    {
      const char *end = strchr (line, '\n');
      size_t len = end != NULL ? (size_t) (end - line) : strlen (line);
      const char *p = line, *hit;

      while (p < line + len && (*p == ' ' || *p == '\t'))
        p++;
      if ((size_t) (line + len - p) > 6 && strncmp (p, "chain ", 6) == 0)
        {
          size_t k = 0;

          p += 6;
          while (p < line + len && *p != ' ' && *p != '{' && k + 1 < sizeof chain)
            chain[k++] = *p++;
          chain[k] = '\0';
        }
      else if (chain[0] != '\0' && (hit = memmem (line, len, tag, strlen (tag))) != NULL)
        {
          const char *h = hit + strlen (tag);
          char *hend;
          unsigned long long handle = strtoull (h, &hend, 10);

          if (hend > h && hend <= line + len)
            sb_printf (&sb, "delete rule ip %s %s handle %llu\n", NET_NFT_TABLE, chain, handle);
        }
      line = end != NULL ? end + 1 : NULL;
    }
  return sb_take (&sb);
}

struct net_nft_s
{
  struct nft_ctx *ctx;
};

net_nft_t *
net__nft_new (orch_err_t *err)
{
  net_nft_t *nft = xcalloc (1, sizeof *nft);

  nft->ctx = nft_ctx_new (NFT_CTX_DEFAULT);
  if (nft->ctx == NULL)
    {
      free (nft);
      orch_err_set (err, ENOMEM, "create nftables context");
      return NULL;
    }
  /* Library code does not print: output and errors go to buffers. */
  if (nft_ctx_buffer_output (nft->ctx) < 0 || nft_ctx_buffer_error (nft->ctx) < 0)
    {
      net__nft_free (nft);
      orch_err_set (err, ENOMEM, "buffer nftables output");
      return NULL;
    }
  nft_ctx_output_set_flags (nft->ctx, NFT_CTX_OUTPUT_HANDLE);
  return nft;
}

void
net__nft_free (net_nft_t *nft)
{
  if (nft == NULL)
    return;
  if (nft->ctx != NULL)
    nft_ctx_free (nft->ctx);
  free (nft);
}

/* nft's error text is several lines (the command, a caret line); the first
 * one says what went wrong. */
static int
nft_fail (net_nft_t *nft, orch_err_t *err)
{
  const char *e = nft_ctx_get_error_buffer (nft->ctx);
  size_t len;
  int code = EIO;

  if (e == NULL || *e == '\0')
    e = "nftables command failed";
  len = strcspn (e, "\n");
  if (strstr (e, "Operation not permitted") != NULL)
    code = EPERM;
  else if (strstr (e, "No such file or directory") != NULL)
    code = ENOENT;
  return orch_err_set (err, code, "%.*s", (int) len, e);
}

int
net__nft_run (net_nft_t *nft, const char *cmds, orch_err_t *err)
{
  if (cmds == NULL || *cmds == '\0')
    return 0;
  if (nft_run_cmd_from_buffer (nft->ctx, cmds) != 0)
    return nft_fail (nft, err);
  /* Reading the buffer rewinds it, so it does not grow across calls. */
  (void) nft_ctx_get_output_buffer (nft->ctx);
  return 0;
}

int
net__nft_list (net_nft_t *nft, const char *cmd, char **out, orch_err_t *err)
{
  const char *o;

  if (nft_run_cmd_from_buffer (nft->ctx, cmd) != 0)
    return nft_fail (nft, err);
  o = nft_ctx_get_output_buffer (nft->ctx);
  *out = xstrdup (o != NULL ? o : "");
  return 0;
}
