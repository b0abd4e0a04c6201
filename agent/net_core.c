/* The node network (net.h): bridge, forwarding and rules at start, then per
 * allocation a lease, a link (veth into a container's namespace, or a tap
 * for a microVM) and its DNAT rules. Each attach undoes its own steps when
 * a later one fails. The public calls take the net_t's lock: the agent
 * attaches on its loop and detaches in its thread pool. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "net_internal.h"
#include "orch_util.h"

struct net_s
{
  char bridge[IFNAMSIZ];
  net_subnet_t sn;
  uint32_t gw;
  int br_index;
  net_ipam_t ipam;
  net_nl_t *nl;
  net_nft_t *nft;
  pthread_mutex_t mu; /* held by every public call after net_new */
};

static int
ifname_valid (const char *s)
{
  size_t i;

  if (s == NULL || s[0] == '\0' || strlen (s) >= IFNAMSIZ)
    return 0;
  for (i = 0; s[i] != '\0'; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')
          || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_' || s[i] == '.'))
      return 0;
  return 1;
}

/* Appends the kernel's explanation of a failed netlink request, if it gave
 * one, to err's message. */
static void
nl_explain (orch_err_t *err, const net_nl_t *nl)
{
  const char *ext = net__nl_ext (nl);
  size_t len;

  if (err == NULL || ext[0] == '\0')
    return;
  len = strlen (err->msg);
  snprintf (err->msg + len, sizeof err->msg - len, " (%s)", ext);
}

net_t *
net_new (const net_config_t *cfg, orch_err_t *err)
{
  const char *bridge = cfg->bridge != NULL ? cfg->bridge : "orch0";
  const char *subnet = cfg->subnet != NULL ? cfg->subnet : "10.88.0.0/24";
  cleanup_free char *setup = NULL;
  cleanup_free char *localnet = NULL;
  net_t *n;
  char gw[16];
  int r;

  if (cfg->state_dir == NULL)
    {
      orch_err_set (err, EINVAL, "network: no state directory");
      return NULL;
    }
  if (!ifname_valid (bridge))
    {
      orch_err_set (err, EINVAL,
                    "bridge name \"%s\": want 1-15 characters of letters, digits, '-', '_', '.'",
                    bridge);
      return NULL;
    }
  n = xcalloc (1, sizeof *n);
  pthread_mutex_init (&n->mu, NULL);
  snprintf (n->bridge, sizeof n->bridge, "%s", bridge);
  if (net__subnet_parse (subnet, &n->sn, err) < 0)
    {
      free (n);
      return NULL;
    }
  n->gw = net__subnet_gateway (&n->sn);
  net__addr_format (n->gw, gw, sizeof gw);
  if (net__ipam_open (&n->ipam, cfg->state_dir, &n->sn, err) < 0)
    {
      free (n);
      return NULL;
    }
  n->nl = net__nl_open (-1, err);
  if (n->nl == NULL)
    goto fail;

  r = net__nl_bridge_ensure (n->nl, bridge);
  if (r < 0)
    {
      if (r == -EEXIST)
        orch_err_set (err, EEXIST,
                      "create bridge %s: a link of that name exists and is not a bridge", bridge);
      else
        orch_err_set (err, -r, "create bridge %s: %s", bridge, strerror (-r));
      nl_explain (err, n->nl);
      goto fail;
    }
  n->br_index = r;
  r = net__nl_addr_add (n->nl, n->br_index, n->gw, n->sn.prefix, 1);
  if (r < 0)
    {
      orch_err_set (err, -r, "assign %s/%d to %s: %s", gw, n->sn.prefix, bridge, strerror (-r));
      nl_explain (err, n->nl);
      goto fail;
    }
  r = net__nl_link_set (n->nl, n->br_index, 1, 0, NULL);
  if (r < 0)
    {
      orch_err_set (err, -r, "bring up %s: %s", bridge, strerror (-r));
      nl_explain (err, n->nl);
      goto fail;
    }
  r = net__sysctl_write ("/proc/sys/net/ipv4/ip_forward", "1");
  if (r < 0)
    {
      orch_err_set (err, -r, "enable IPv4 forwarding: %s", strerror (-r));
      goto fail;
    }
  /* Lets the node reach its published ports on 127.0.0.1: DNAT'd packets
   * keep their loopback source on the way out to the bridge. */
  localnet = xasprintf ("/proc/sys/net/ipv4/conf/%s/route_localnet", bridge);
  r = net__sysctl_write (localnet, "1");
  if (r < 0)
    {
      orch_err_set (err, -r, "enable route_localnet on %s: %s", bridge, strerror (-r));
      goto fail;
    }
  n->nft = net__nft_new (err);
  if (n->nft == NULL)
    goto fail;
  setup = net__nft_setup_text (bridge, &n->sn);
  if (net__nft_run (n->nft, setup, err) < 0)
    {
      orch_err_wrap (err, "set up nftables table ip %s", NET_NFT_TABLE);
      goto fail;
    }
  return n;

fail:
  net_free (n);
  return NULL;
}

void
net_free (net_t *n)
{
  if (n == NULL)
    return;
  net__nft_free (n->nft);
  net__nl_close (n->nl);
  net__ipam_close (&n->ipam);
  pthread_mutex_destroy (&n->mu);
  free (n);
}

/* Deletes alloc_id's DNAT rules, found by their comment in a listing with
 * handles. A missing table means there is nothing to delete.
 *
 * The listing costs a dump of every rule in the table. Recording handles at
 * attach would avoid it, but libnftables (1.0.6) fetches every rule to echo
 * an added rule's handle, and again to show a table's handle in JSON: that
 * would move the dump onto the start path, and detach is not on it. */
static int
rules_delete (net_t *n, const char *alloc_id, orch_err_t *err)
{
  cleanup_free char *listing = NULL;
  cleanup_free char *cmds = NULL;
  cleanup_free char *list_cmd = xasprintf ("list table ip %s", NET_NFT_TABLE);
  orch_err_t e = { 0 };

  if (net__nft_list (n->nft, list_cmd, &listing, &e) < 0)
    {
      if (e.code == ENOENT)
        return 0;
      *err = e;
      return orch_err_wrap (err, "list nftables table ip %s", NET_NFT_TABLE);
    }
  cmds = net__nft_delete_text (listing, alloc_id);
  if (net__nft_run (n->nft, cmds, err) < 0)
    return orch_err_wrap (err, "delete the rules of %s", alloc_id);
  return 0;
}

/* Deletes link name when its alias says it is alloc_id's: a name is a hash
 * of the id, so it could in principle be another allocation's. Returns 0
 * (also when absent) or -1 with err. */
static int
link_delete_own (net_t *n, const char *name, const char *alias, orch_err_t *err)
{
  char got[IFALIASZ];
  int r;

  r = net__nl_link_get (n->nl, name, got, sizeof got, NULL, NULL);
  if (r == -ENODEV)
    return 0;
  if (r < 0)
    return orch_err_set (err, -r, "look up %s: %s", name, strerror (-r));
  if (strcmp (got, alias) != 0)
    return 0;
  r = net__nl_link_del (n->nl, name);
  if (r < 0 && r != -ENODEV)
    {
      orch_err_set (err, -r, "delete %s: %s", name, strerror (-r));
      nl_explain (err, n->nl);
      return -1;
    }
  return 0;
}

/* What attach did so far, for undoing it. */
typedef struct attach_s
{
  const char *alloc_id;
  char link[IFNAMSIZ];
  char alias[IFALIASZ];
  uint32_t addr;
  int existed;      /* the lease was there before */
  int link_created; /* delete link on failure */
  int rules_added;
} attach_t;

static void
attach_undo (net_t *n, attach_t *a)
{
  orch_err_t ignored = { 0 };

  if (a->rules_added)
    rules_delete (n, a->alloc_id, &ignored);
  if (a->link_created)
    net__nl_link_del (n->nl, a->link);
  if (!a->existed)
    net__ipam_release (&n->ipam, a->alloc_id, &ignored);
}

/* The steps both kinds of attach share before the link: validation, rule
 * text, the lease, and the removal of rules a previous attach of the same
 * allocation left (a restarted workload keeps its address). */
static int
attach_begin (net_t *n, attach_t *a, const net_port_t *ports, size_t n_ports, char **rules,
              orch_err_t *err)
{
  int prior;
  uint32_t old;

  *rules = NULL;
  if (!net__alloc_id_valid (a->alloc_id))
    {
      orch_err_set (err, EINVAL, "allocation id \"%s\": want letters, digits, '-', '_', '.'",
                    a->alloc_id);
      return -1;
    }
  snprintf (a->alias, sizeof a->alias, NET_ALIAS_PREFIX "%s", a->alloc_id);
  *rules = net__nft_port_rules_text (a->alloc_id, 0, ports, n_ports, err);
  if (*rules == NULL)
    return -1;
  free (*rules);
  *rules = NULL;
  prior = net__ipam_get (&n->ipam, a->alloc_id, &old, NULL, 0, err);
  if (prior < 0)
    return -1;
  if (net__ipam_acquire (&n->ipam, a->alloc_id, a->link, &a->addr, &a->existed, err) < 0)
    return -1;
  *rules = net__nft_port_rules_text (a->alloc_id, a->addr, ports, n_ports, err);
  if (*rules == NULL)
    goto fail;
  if (prior == 1 && rules_delete (n, a->alloc_id, err) < 0)
    goto fail;
  return 0;

fail:
  attach_undo (n, a);
  return -1;
}

/* The last step both share: the DNAT rules, then the address out. */
static int
attach_finish (net_t *n, attach_t *a, const char *rules, char *addr, size_t addr_len,
               orch_err_t *err)
{
  if (rules != NULL && *rules != '\0')
    {
      if (net__nft_run (n->nft, rules, err) < 0)
        {
          orch_err_wrap (err, "add published ports of %s", a->alloc_id);
          return -1;
        }
      a->rules_added = 1;
    }
  net__addr_format (a->addr, addr, addr_len);
  return 0;
}

static int
attach_netns (net_t *n, const char *alloc_id, pid_t pid, const net_port_t *ports, size_t n_ports,
              char *addr, size_t addr_len, orch_err_t *err)
{
  attach_t a = { .alloc_id = alloc_id };
  cleanup_free char *rules = NULL;
  cleanup_free char *ns_path = NULL;
  cleanup_close int nsfd = -1;
  net_nl_t *in = NULL;
  int r, eth0, step = 0;
  uint8_t mac[6];
  char a_str[16];

  if (pid <= 0)
    return orch_err_set (err, EINVAL, "attach %s: bad pid %d", alloc_id, (int) pid);
  if (addr_len < 16)
    return orch_err_set (err, EINVAL, "attach %s: address buffer too small", alloc_id);
  if (!net__alloc_id_valid (alloc_id))
    return orch_err_set (err, EINVAL, "allocation id \"%s\": want letters, digits, '-', '_', '.'",
                         alloc_id);
  net__link_name ("veth", alloc_id, a.link, sizeof a.link);
  if (attach_begin (n, &a, ports, n_ports, &rules, err) < 0)
    return -1;
  net__addr_format (a.addr, a_str, sizeof a_str);
  net__mac_for_addr (a.addr, mac);

  /* The namespace fd pins the namespace for the whole attach, so a pid that
   * exits and is reused cannot send the veth elsewhere. */
  ns_path = xasprintf ("/proc/%d/ns/net", (int) pid);
  nsfd = open (ns_path, O_RDONLY | O_CLOEXEC);
  if (nsfd < 0)
    {
      orch_err_sys (err, "open network namespace of pid %d", (int) pid);
      goto fail;
    }
  r = net__nl_veth_create (n->nl, a.link, n->br_index, a.alias, "eth0", mac, 0, nsfd);
  if (r == -EEXIST)
    {
      /* A veth of an earlier run of this allocation whose namespace is
       * still alive is replaced; another allocation's is not touched. */
      char got[IFALIASZ];
      int e = net__nl_link_get (n->nl, a.link, got, sizeof got, NULL, NULL);

      if (e > 0 && strcmp (got, a.alias) != 0)
        {
          orch_err_set (err, EEXIST, "create %s: the name is taken by another link (alias \"%s\")",
                        a.link, got);
          goto fail;
        }
      if (e > 0)
        {
          net__nl_link_del (n->nl, a.link);
          r = net__nl_veth_create (n->nl, a.link, n->br_index, a.alias, "eth0", mac, 0, nsfd);
        }
    }
  if (r < 0)
    {
      orch_err_set (err, -r, "create %s with peer eth0 in netns of pid %d: %s", a.link, (int) pid,
                    strerror (-r));
      nl_explain (err, n->nl);
      goto fail;
    }
  a.link_created = 1;

  in = net__nl_open (nsfd, err);
  if (in == NULL)
    {
      orch_err_wrap (err, "enter netns of pid %d", (int) pid);
      goto fail;
    }
  eth0 = net__nl_link_get (in, "eth0", NULL, 0, NULL, NULL);
  if (eth0 < 0)
    {
      orch_err_set (err, -eth0, "find eth0 in netns of pid %d: %s", (int) pid, strerror (-eth0));
      nl_explain (err, in);
      goto fail;
    }
  r = net__nl_configure_inside (in, eth0, a.addr, n->sn.prefix, n->gw, &step);
  if (r < 0)
    {
      char gw[16];

      net__addr_format (n->gw, gw, sizeof gw);
      if (step == 0)
        orch_err_set (err, -r, "assign %s/%d to eth0 in netns of pid %d: %s", a_str, n->sn.prefix,
                      (int) pid, strerror (-r));
      else if (step == 1)
        orch_err_set (err, -r, "bring up eth0 in netns of pid %d: %s", (int) pid, strerror (-r));
      else if (step == 2)
        orch_err_set (err, -r, "bring up lo in netns of pid %d: %s", (int) pid, strerror (-r));
      else
        orch_err_set (err, -r, "add default route via %s in netns of pid %d: %s", gw, (int) pid,
                      strerror (-r));
      nl_explain (err, in);
      goto fail;
    }
  net__nl_close (TAKE_PTR (in));
  if (attach_finish (n, &a, rules, addr, addr_len, err) < 0)
    goto fail;
  return 0;

fail:
  net__nl_close (in);
  attach_undo (n, &a);
  return -1;
}

/* Creates (or reopens) a persistent tap: it stays after the fd is closed,
 * until the VMM opens it by name. */
static int
tap_create (const char *name)
{
  struct ifreq ifr;
  int fd, r = 0;

  fd = open ("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  memset (&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  snprintf (ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
  if (ioctl (fd, TUNSETIFF, &ifr) < 0 || ioctl (fd, TUNSETPERSIST, 1) < 0)
    r = -errno;
  close (fd);
  return r;
}

static int
attach_tap (net_t *n, const char *alloc_id, char *tap_name, size_t tap_len, const net_port_t *ports,
            size_t n_ports, char *addr, size_t addr_len, int *prefix, char *gw, size_t gw_len,
            orch_err_t *err)
{
  attach_t a = { .alloc_id = alloc_id };
  cleanup_free char *rules = NULL;
  char got[IFALIASZ];
  int r, idx;

  if (addr_len < 16 || gw_len < 16)
    return orch_err_set (err, EINVAL, "attach %s: address buffer too small", alloc_id);
  if (!net__alloc_id_valid (alloc_id))
    return orch_err_set (err, EINVAL, "allocation id \"%s\": want letters, digits, '-', '_', '.'",
                         alloc_id);
  /* A name given by the caller is used; an empty buffer gets "tap" + hash. */
  if (tap_name == NULL || tap_len == 0)
    return orch_err_set (err, EINVAL, "attach %s: no tap name buffer", alloc_id);
  if (tap_name[0] == '\0')
    {
      if (tap_len < IFNAMSIZ)
        return orch_err_set (err, EINVAL, "attach %s: tap name buffer too small", alloc_id);
      net__link_name ("tap", alloc_id, tap_name, tap_len);
    }
  if (!ifname_valid (tap_name))
    return orch_err_set (err, EINVAL, "tap name \"%s\": want 1-15 characters", tap_name);
  snprintf (a.link, sizeof a.link, "%s", tap_name);
  if (attach_begin (n, &a, ports, n_ports, &rules, err) < 0)
    return -1;

  r = net__nl_link_get (n->nl, a.link, got, sizeof got, NULL, NULL);
  if (r > 0 && strcmp (got, a.alias) != 0)
    {
      orch_err_set (err, EEXIST, "create tap %s: the name is taken by another link (alias \"%s\")",
                    a.link, got);
      goto fail;
    }
  if (r < 0 && r != -ENODEV)
    {
      orch_err_set (err, -r, "look up %s: %s", a.link, strerror (-r));
      goto fail;
    }
  r = tap_create (a.link);
  if (r < 0)
    {
      orch_err_set (err, -r, "create tap %s: %s", a.link, strerror (-r));
      goto fail;
    }
  a.link_created = 1;
  idx = net__nl_link_get (n->nl, a.link, NULL, 0, NULL, NULL);
  r = idx < 0 ? idx : net__nl_link_set (n->nl, idx, 1, n->br_index, a.alias);
  if (r < 0)
    {
      orch_err_set (err, -r, "attach tap %s to %s: %s", a.link, n->bridge, strerror (-r));
      nl_explain (err, n->nl);
      goto fail;
    }
  if (attach_finish (n, &a, rules, addr, addr_len, err) < 0)
    goto fail;
  *prefix = n->sn.prefix;
  net__addr_format (n->gw, gw, gw_len);
  return 0;

fail:
  attach_undo (n, &a);
  return -1;
}

static int
detach (net_t *n, const char *alloc_id, orch_err_t *err)
{
  char link[IFNAMSIZ + 8] = "";
  char alias[IFALIASZ];
  char name[IFNAMSIZ];
  uint32_t addr;
  int r;

  if (!net__alloc_id_valid (alloc_id))
    return orch_err_set (err, EINVAL, "allocation id \"%s\": want letters, digits, '-', '_', '.'",
                         alloc_id);
  snprintf (alias, sizeof alias, NET_ALIAS_PREFIX "%s", alloc_id);
  r = net__ipam_get (&n->ipam, alloc_id, &addr, link, sizeof link, err);
  if (r < 0)
    return -1;
  if (rules_delete (n, alloc_id, err) < 0)
    return orch_err_wrap (err, "detach %s", alloc_id);
  /* The lease names the link; without one (a lost lease) try both names
   * this allocation could have had. */
  if (link[0] != '\0' && ifname_valid (link))
    {
      if (link_delete_own (n, link, alias, err) < 0)
        return orch_err_wrap (err, "detach %s", alloc_id);
    }
  else
    {
      net__link_name ("veth", alloc_id, name, sizeof name);
      if (link_delete_own (n, name, alias, err) < 0)
        return orch_err_wrap (err, "detach %s", alloc_id);
      net__link_name ("tap", alloc_id, name, sizeof name);
      if (link_delete_own (n, name, alias, err) < 0)
        return orch_err_wrap (err, "detach %s", alloc_id);
    }
  if (net__ipam_release (&n->ipam, alloc_id, err) < 0)
    return orch_err_wrap (err, "detach %s", alloc_id);
  return 0;
}

/* The public entry points return exactly -1 on failure, as net.h says;
 * the helpers above may return a negative errno. */
int
net_attach_netns (net_t *n, const char *alloc_id, pid_t pid, const net_port_t *ports,
                  size_t n_ports, char *addr, size_t addr_len, orch_err_t *err)
{
  pthread_mutex_lock (&n->mu);
  int r = attach_netns (n, alloc_id, pid, ports, n_ports, addr, addr_len, err);
  pthread_mutex_unlock (&n->mu);
  return r < 0 ? -1 : 0;
}

int
net_attach_tap (net_t *n, const char *alloc_id, char *tap_name, size_t tap_len,
                const net_port_t *ports, size_t n_ports, char *addr, size_t addr_len, int *prefix,
                char *gw, size_t gw_len, orch_err_t *err)
{
  pthread_mutex_lock (&n->mu);
  int r = attach_tap (n, alloc_id, tap_name, tap_len, ports, n_ports, addr, addr_len, prefix, gw,
                      gw_len, err);
  pthread_mutex_unlock (&n->mu);
  return r < 0 ? -1 : 0;
}

int
net_detach (net_t *n, const char *alloc_id, orch_err_t *err)
{
  pthread_mutex_lock (&n->mu);
  int r = detach (n, alloc_id, err);
  pthread_mutex_unlock (&n->mu);
  return r < 0 ? -1 : 0;
}

int
net_lookup (net_t *n, const char *alloc_id, char *addr, size_t addr_len)
{
  uint32_t a;

  pthread_mutex_lock (&n->mu);
  int r = net__ipam_get (&n->ipam, alloc_id, &a, NULL, 0, NULL);
  pthread_mutex_unlock (&n->mu);
  if (r != 1)
    return -1;
  net__addr_format (a, addr, addr_len);
  return 0;
}
