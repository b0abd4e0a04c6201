/* Node network pieces that need no root: subnet parsing, allocation ids and
 * link names, the address allocator with its lease files, and the nftables
 * rule text (agent/net_internal.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "orch_test.h"

#include "net_internal.h"
#include "orch_util.h"

static char *
tmpdir (void)
{
  char *d = xstrdup ("/tmp/test_net.XXXXXX");

  assert_non_null (mkdtemp (d));
  return d;
}

static char *
slurp (const char *dir, const char *name)
{
  cleanup_free char *path = xasprintf ("%s/net/leases/%s", dir, name);
  char *data = NULL;
  size_t len;

  if (orch_read_file (path, 4096, &data, &len) < 0)
    return NULL;
  return data;
}

static uint32_t
ip (const char *s)
{
  uint32_t a;

  assert_int_equal (net__addr_parse (s, &a), 0);
  return a;
}

static void
subnet (const char *cidr, net_subnet_t *sn)
{
  orch_err_t err = { 0 };

  assert_int_equal (net__subnet_parse (cidr, sn, &err), 0);
}

/* ---- subnets ---- */

static void
subnet_parse_valid (void **state)
{
  net_subnet_t sn;
  orch_err_t err = { 0 };
  char buf[16];

  assert_int_equal (net__subnet_parse ("10.88.0.0/24", &sn, &err), 0);
  assert_int_equal (sn.base, ip ("10.88.0.0"));
  assert_int_equal (sn.prefix, 24);
  assert_int_equal (net__subnet_size (&sn), 256);
  net__addr_format (net__subnet_gateway (&sn), buf, sizeof buf);
  assert_string_equal (buf, "10.88.0.1");
  assert_true (net__subnet_contains (&sn, ip ("10.88.0.255")));
  assert_false (net__subnet_contains (&sn, ip ("10.88.1.0")));
  assert_false (net__subnet_contains (&sn, ip ("10.87.255.255")));

  assert_int_equal (net__subnet_parse ("172.30.0.0/16", &sn, &err), 0);
  assert_int_equal (net__subnet_size (&sn), 65536);
  assert_int_equal (net__subnet_parse ("192.168.7.4/30", &sn, &err), 0);
  assert_int_equal (net__subnet_size (&sn), 4);
}

static void
subnet_parse_rejects (void **state)
{
  static const struct
  {
    const char *cidr;
    const char *why;
  } bad[] = {
    { "", "empty" },
    { "10.88.0.0", "no prefix length" },
    { "10.88.0/24", "not an IPv4 address" },
    { "10.88.0.300/24", "not an IPv4 address" },
    { "fd00::/64", "not an IPv4 address" },
    { "10.88.0.0/", "bad prefix length" },
    { "10.88.0.0/2x", "bad prefix length" },
    { "10.88.0.0/-1", "bad prefix length" },
    { "10.88.0.0/33", "bad prefix length" },
    { "10.88.0.0/31", "too small" },
    { "10.88.0.0/32", "too small" },
    { "10.0.0.0/8", "too large" },
    { "10.88.0.1/24", "host bits set; did you mean 10.88.0.0/24?" },
  };
  size_t i;

  for (i = 0; i < ORCH_ARRAY_LEN (bad); i++)
    {
      net_subnet_t sn = { 0 };
      orch_err_t err = { 0 };

      assert_int_equal (net__subnet_parse (bad[i].cidr, &sn, &err) < 0, 1);
      if (strstr (err.msg, bad[i].why) == NULL)
        fail_msg ("\"%s\": message \"%s\" does not say \"%s\"", bad[i].cidr, err.msg, bad[i].why);
      assert_int_equal (err.code, EINVAL);
    }
}

/* ---- names ---- */

static void
alloc_id_validation (void **state)
{
  char longid[NET_ALLOC_ID_MAX + 2];

  assert_true (net__alloc_id_valid ("web-0-3f2a9c"));
  assert_true (net__alloc_id_valid ("A_b.c-9"));
  assert_false (net__alloc_id_valid (""));
  assert_false (net__alloc_id_valid (NULL));
  assert_false (net__alloc_id_valid (".hidden"));
  assert_false (net__alloc_id_valid (".."));
  assert_false (net__alloc_id_valid ("a/b"));
  assert_false (net__alloc_id_valid ("a b"));
  assert_false (net__alloc_id_valid ("a\"b"));
  assert_false (net__alloc_id_valid ("x.tmp"));
  memset (longid, 'a', sizeof longid - 1);
  longid[sizeof longid - 1] = '\0';
  assert_false (net__alloc_id_valid (longid));
  longid[NET_ALLOC_ID_MAX] = '\0';
  assert_true (net__alloc_id_valid (longid));
}

static void
link_names (void **state)
{
  char a[16], b[16], c[16], t[16];
  size_t i;

  net__link_name ("veth", "web-0-3f2a9c", a, sizeof a);
  net__link_name ("veth", "web-0-3f2a9c", b, sizeof b);
  net__link_name ("veth", "web-1-3f2a9c", c, sizeof c);
  net__link_name ("tap", "web-0-3f2a9c", t, sizeof t);
  /* Stable, so detach after an agent restart finds the same link. */
  assert_string_equal (a, b);
  assert_string_not_equal (a, c);
  assert_int_equal (strlen (a), 12);
  assert_int_equal (strncmp (a, "veth", 4), 0);
  for (i = 4; i < 12; i++)
    assert_non_null (strchr ("0123456789abcdef", a[i]));
  /* Same hash, other prefix. */
  assert_int_equal (strlen (t), 11);
  assert_string_equal (t + 3, a + 4);
  /* FNV-1a of "a" is 0xe40c292c: the name is fixed by the id alone. */
  net__link_name ("veth", "a", a, sizeof a);
  assert_string_equal (a, "vethe40c292c");
}

static void
mac_follows_address (void **state)
{
  uint8_t mac[6];
  static const uint8_t want[6] = { 0x0a, 0x58, 10, 88, 0, 7 };

  /* Locally administered, unicast, and the same for the same address. */
  net__mac_for_addr (ip ("10.88.0.7"), mac);
  assert_memory_equal (mac, want, 6);
  assert_int_equal (mac[0] & 0x03, 0x02);
}

/* ---- allocator ---- */

static void
ipam_allocates_distinct_until_full (void **state)
{
  cleanup_free char *dir = tmpdir ();
  net_subnet_t sn;
  net_ipam_t ipam;
  orch_err_t err = { 0 };
  uint32_t got[5], addr;
  int existed, i, j;

  /* /29: .0 network, .1 the bridge, .7 broadcast; .2-.6 for workloads. */
  subnet ("10.99.0.0/29", &sn);
  assert_int_equal (net__ipam_open (&ipam, dir, &sn, &err), 0);
  for (i = 0; i < 5; i++)
    {
      cleanup_free char *id = xasprintf ("a%d", i);

      assert_int_equal (net__ipam_acquire (&ipam, id, "vethx", &got[i], &existed, &err), 0);
      assert_int_equal (existed, 0);
      assert_true (got[i] >= ip ("10.99.0.2") && got[i] <= ip ("10.99.0.6"));
      for (j = 0; j < i; j++)
        assert_int_not_equal (got[i], got[j]);
    }
  assert_int_equal (net__ipam_acquire (&ipam, "a5", "vethx", &addr, &existed, &err) < 0, 1);
  assert_int_equal (err.code, ENOSPC);
  assert_non_null (strstr (err.msg, "no free address in 10.99.0.0/29"));
  /* The failed one left no lease behind. */
  assert_null (slurp (dir, "a5"));
  net__ipam_close (&ipam);
  assert_int_equal (orch_rm_rf (dir), 0);
}

static void
ipam_same_id_keeps_its_address (void **state)
{
  cleanup_free char *dir = tmpdir ();
  cleanup_free char *text = NULL;
  net_subnet_t sn;
  net_ipam_t ipam;
  orch_err_t err = { 0 };
  uint32_t a1, a2, got;
  int existed;
  char link[16];

  subnet ("10.99.0.0/24", &sn);
  assert_int_equal (net__ipam_open (&ipam, dir, &sn, &err), 0);
  assert_int_equal (net__ipam_acquire (&ipam, "web-0", "veth11111111", &a1, &existed, &err), 0);
  assert_int_equal (a1, ip ("10.99.0.2"));
  text = slurp (dir, "web-0");
  assert_non_null (text);
  assert_string_equal (text, "10.99.0.2\nveth11111111\n");
  assert_int_equal (net__ipam_acquire (&ipam, "web-0", "tap11111111", &a2, &existed, &err), 0);
  assert_int_equal (existed, 1);
  assert_int_equal (a1, a2);
  assert_int_equal (net__ipam_get (&ipam, "web-0", &got, link, sizeof link, &err), 1);
  assert_int_equal (got, a1);
  assert_string_equal (link, "tap11111111");
  assert_int_equal (net__ipam_get (&ipam, "web-1", &got, NULL, 0, &err), 0);
  net__ipam_close (&ipam);
  assert_int_equal (orch_rm_rf (dir), 0);
}

static void
ipam_persists_and_reloads (void **state)
{
  cleanup_free char *dir = tmpdir ();
  net_subnet_t sn;
  net_ipam_t ipam;
  orch_err_t err = { 0 };
  uint32_t a[3], b, got;
  int existed, i;

  subnet ("10.99.0.0/24", &sn);
  assert_int_equal (net__ipam_open (&ipam, dir, &sn, &err), 0);
  for (i = 0; i < 3; i++)
    {
      cleanup_free char *id = xasprintf ("r%d", i);

      assert_int_equal (net__ipam_acquire (&ipam, id, "", &a[i], &existed, &err), 0);
    }
  net__ipam_close (&ipam);

  /* A restarted agent: same leases, and a new one is none of them. */
  assert_int_equal (net__ipam_open (&ipam, dir, &sn, &err), 0);
  for (i = 0; i < 3; i++)
    {
      cleanup_free char *id = xasprintf ("r%d", i);

      assert_int_equal (net__ipam_get (&ipam, id, &got, NULL, 0, &err), 1);
      assert_int_equal (got, a[i]);
    }
  assert_int_equal (net__ipam_acquire (&ipam, "new", "", &b, &existed, &err), 0);
  for (i = 0; i < 3; i++)
    assert_int_not_equal (b, a[i]);
  assert_int_equal (ipam.free, 256 - 3 - 4);
  net__ipam_close (&ipam);
  assert_int_equal (orch_rm_rf (dir), 0);
}

static void
ipam_never_reuses_leased_from_disk (void **state)
{
  cleanup_free char *dir = tmpdir ();
  cleanup_free char *leases = NULL;
  cleanup_free char *p1 = NULL, *p2 = NULL, *p3 = NULL, *p4 = NULL, *p5 = NULL, *p6 = NULL;
  net_subnet_t sn;
  net_ipam_t ipam;
  orch_err_t err = { 0 };
  uint32_t addr;
  int existed;

  /* /29 with .2, .3, .5 and .6 leased by files an earlier agent wrote, one
   * lease outside the subnet (the subnet changed) and one garbage file:
   * the only address left is .4. */
  subnet ("10.99.0.0/29", &sn);
  leases = xasprintf ("%s/net/leases", dir);
  assert_int_equal (orch_mkdir_p (leases, 0755), 0);
  p1 = xasprintf ("%s/old-a", leases);
  p2 = xasprintf ("%s/old-b", leases);
  p3 = xasprintf ("%s/old-c", leases);
  p4 = xasprintf ("%s/other-net", leases);
  p5 = xasprintf ("%s/garbage", leases);
  assert_int_equal (orch_write_file_atomic (p1, "10.99.0.2\nveth1\n", 16, 0644), 0);
  assert_int_equal (orch_write_file_atomic (p2, "10.99.0.3\n", 10, 0644), 0);
  assert_int_equal (orch_write_file_atomic (p3, "10.99.0.6\n\n", 11, 0644), 0);
  assert_int_equal (orch_write_file_atomic (p4, "10.50.0.5\n", 10, 0644), 0);
  assert_int_equal (orch_write_file_atomic (p5, "not an address\n", 15, 0644), 0);
  p6 = xasprintf ("%s/old-d", leases);
  assert_int_equal (orch_write_file_atomic (p6, "10.99.0.5", 9, 0644), 0);

  assert_int_equal (net__ipam_open (&ipam, dir, &sn, &err), 0);
  assert_int_equal (net__ipam_acquire (&ipam, "fresh", "", &addr, &existed, &err), 0);
  assert_int_equal (addr, ip ("10.99.0.4"));
  assert_int_equal (net__ipam_acquire (&ipam, "fresh2", "", &addr, &existed, &err) < 0, 1);
  assert_int_equal (err.code, ENOSPC);
  net__ipam_close (&ipam);
  assert_int_equal (orch_rm_rf (dir), 0);
}

static void
ipam_lease_files_are_atomic (void **state)
{
  cleanup_free char *dir = tmpdir ();
  cleanup_free char *tmp = NULL;
  cleanup_free char *leftover = NULL;
  cleanup_free char *text = NULL;
  net_subnet_t sn;
  net_ipam_t ipam;
  orch_err_t err = { 0 };
  struct stat st;
  uint32_t addr;
  int existed;

  subnet ("10.99.0.0/24", &sn);
  assert_int_equal (net__ipam_open (&ipam, dir, &sn, &err), 0);
  assert_int_equal (net__ipam_acquire (&ipam, "a", "veth1", &addr, &existed, &err), 0);
  /* Written aside and renamed into place: no temporary file stays. */
  tmp = xasprintf ("%s/net/leases/a.tmp", dir);
  assert_int_not_equal (stat (tmp, &st), 0);
  /* An agent killed between write and rename leaves "<id>.tmp": it is not a
   * lease, and the next start removes it. */
  leftover = xasprintf ("%s/net/leases/b.tmp", dir);
  assert_int_equal (orch_write_file_atomic (leftover, "10.99.0.9\n", 10, 0644), 0);
  net__ipam_close (&ipam);
  assert_int_equal (net__ipam_open (&ipam, dir, &sn, &err), 0);
  assert_int_not_equal (stat (leftover, &st), 0);
  assert_int_equal (ipam.free, 256 - 3 - 1);
  text = slurp (dir, "a");
  assert_non_null (text);
  assert_string_equal (text, "10.99.0.2\nveth1\n");
  net__ipam_close (&ipam);
  assert_int_equal (orch_rm_rf (dir), 0);
}

static void
ipam_release_frees (void **state)
{
  cleanup_free char *dir = tmpdir ();
  net_subnet_t sn;
  net_ipam_t ipam;
  orch_err_t err = { 0 };
  uint32_t a, b, got;
  int existed;

  /* /30: exactly one workload address. */
  subnet ("10.99.0.0/30", &sn);
  assert_int_equal (net__ipam_open (&ipam, dir, &sn, &err), 0);
  assert_int_equal (net__ipam_acquire (&ipam, "one", "", &a, &existed, &err), 0);
  assert_int_equal (a, ip ("10.99.0.2"));
  assert_int_equal (net__ipam_acquire (&ipam, "two", "", &b, &existed, &err) < 0, 1);
  assert_int_equal (net__ipam_release (&ipam, "one", &err), 0);
  assert_null (slurp (dir, "one"));
  assert_int_equal (net__ipam_get (&ipam, "one", &got, NULL, 0, &err), 0);
  /* Idempotent, and unknown ids are not an error. */
  assert_int_equal (net__ipam_release (&ipam, "one", &err), 0);
  assert_int_equal (net__ipam_release (&ipam, "never", &err), 0);
  assert_int_equal (net__ipam_acquire (&ipam, "two", "", &b, &existed, &err), 0);
  assert_int_equal (b, ip ("10.99.0.2"));
  net__ipam_close (&ipam);
  assert_int_equal (orch_rm_rf (dir), 0);
}

static void
ipam_next_fit_delays_reuse (void **state)
{
  cleanup_free char *dir = tmpdir ();
  net_subnet_t sn;
  net_ipam_t ipam;
  orch_err_t err = { 0 };
  uint32_t a, b, c;
  int existed;

  /* A freed address goes to the back of the line: a new workload does not
   * inherit an address peers may still have in their ARP caches or
   * conntrack entries. */
  subnet ("10.99.0.0/24", &sn);
  assert_int_equal (net__ipam_open (&ipam, dir, &sn, &err), 0);
  assert_int_equal (net__ipam_acquire (&ipam, "x", "", &a, &existed, &err), 0);
  assert_int_equal (net__ipam_release (&ipam, "x", &err), 0);
  assert_int_equal (net__ipam_acquire (&ipam, "y", "", &b, &existed, &err), 0);
  assert_int_not_equal (a, b);
  assert_int_equal (b, a + 1);
  assert_int_equal (net__ipam_acquire (&ipam, "z", "", &c, &existed, &err), 0);
  assert_int_equal (c, a + 2);
  net__ipam_close (&ipam);
  assert_int_equal (orch_rm_rf (dir), 0);
}

static void
ipam_wraps_around (void **state)
{
  cleanup_free char *dir = tmpdir ();
  net_subnet_t sn;
  net_ipam_t ipam;
  orch_err_t err = { 0 };
  uint32_t addr;
  int existed, i;

  /* A /22 spans 16 bitmap words: fill it, free one address early in the
   * range, and the allocator must wrap around to find it. */
  subnet ("10.99.0.0/22", &sn);
  assert_int_equal (net__ipam_open (&ipam, dir, &sn, &err), 0);
  for (i = 0; i < 1024 - 3; i++)
    {
      char id[16];

      snprintf (id, sizeof id, "w%d", i);
      assert_int_equal (net__ipam_acquire (&ipam, id, "", &addr, &existed, &err), 0);
    }
  assert_int_equal (net__ipam_acquire (&ipam, "over", "", &addr, &existed, &err) < 0, 1);
  assert_int_equal (net__ipam_release (&ipam, "w100", &err), 0);
  assert_int_equal (net__ipam_acquire (&ipam, "over", "", &addr, &existed, &err), 0);
  assert_int_equal (addr, ip ("10.99.0.102"));
  net__ipam_close (&ipam);
  assert_int_equal (orch_rm_rf (dir), 0);
}

static void
ipam_rejects_bad_ids (void **state)
{
  cleanup_free char *dir = tmpdir ();
  net_subnet_t sn;
  net_ipam_t ipam;
  orch_err_t err = { 0 };
  uint32_t addr;
  int existed;

  subnet ("10.99.0.0/24", &sn);
  assert_int_equal (net__ipam_open (&ipam, dir, &sn, &err), 0);
  assert_int_equal (net__ipam_acquire (&ipam, "../escape", "", &addr, &existed, &err) < 0, 1);
  assert_int_equal (err.code, EINVAL);
  net__ipam_close (&ipam);
  assert_int_equal (orch_rm_rf (dir), 0);
}

/* ---- nftables text ---- */

static void
nft_setup_rules (void **state)
{
  cleanup_free char *text = NULL;
  net_subnet_t sn;

  subnet ("10.88.0.0/24", &sn);
  text = net__nft_setup_text ("orch0", &sn);
  assert_non_null (strstr (text, "add table ip orch\n"));
  assert_non_null (
      strstr (text, "add rule ip orch postrouting ip saddr 10.88.0.0/24 oifname != \"orch0\" "
                    "masquerade\n"));
  assert_non_null (strstr (
      text,
      "add chain ip orch prerouting { type nat hook prerouting priority dstnat; policy accept; }"));
  assert_non_null (strstr (text, "add rule ip orch forward iifname \"orch0\" accept\n"));
  assert_non_null (strstr (text, "add rule ip orch forward oifname \"orch0\" accept\n"));
  /* Re-running it on a restart must not duplicate rules nor lose the
   * published ports: the chains with fixed rules are flushed, the DNAT
   * chains are not. */
  assert_non_null (strstr (text, "flush chain ip orch postrouting\n"));
  assert_non_null (strstr (text, "flush chain ip orch forward\n"));
  assert_null (strstr (text, "flush chain ip orch prerouting"));
  assert_null (strstr (text, "flush chain ip orch output"));
  assert_null (strstr (text, "flush table"));
}

static void
nft_port_rules (void **state)
{
  net_port_t ports[] = {
    { .port = 8080, .host_port = 30001, .udp = 0 },
    { .port = 9000, .host_port = 0, .udp = 0 }, /* not published */
    { .port = 53, .host_port = 30053, .udp = 1 },
  };
  cleanup_free char *text = NULL;
  cleanup_free char *none = NULL;
  orch_err_t err = { 0 };

  text = net__nft_port_rules_text ("web-0", ip ("10.88.0.7"), ports, 3, &err);
  assert_non_null (text);
  assert_string_equal (text,
                       "add rule ip orch prerouting fib daddr type local tcp dport 30001 dnat to "
                       "10.88.0.7:8080 comment \"web-0\"\n"
                       "add rule ip orch prerouting fib daddr type local udp dport 30053 dnat to "
                       "10.88.0.7:53 comment \"web-0\"\n"
                       "add rule ip orch output fib daddr type local tcp dport 30001 dnat to "
                       "10.88.0.7:8080 comment \"web-0\"\n"
                       "add rule ip orch output fib daddr type local udp dport 30053 dnat to "
                       "10.88.0.7:53 comment \"web-0\"\n");
  none = net__nft_port_rules_text ("web-0", ip ("10.88.0.7"), ports + 1, 1, &err);
  assert_non_null (none);
  assert_string_equal (none, "");
}

static void
nft_port_rules_reject (void **state)
{
  net_port_t dup[] = {
    { .port = 80, .host_port = 30001, .udp = 0 },
    { .port = 81, .host_port = 30001, .udp = 0 },
  };
  net_port_t tcp_udp[] = {
    { .port = 53, .host_port = 30053, .udp = 0 },
    { .port = 53, .host_port = 30053, .udp = 1 },
  };
  net_port_t zero[] = { { .port = 0, .host_port = 30001, .udp = 0 } };
  orch_err_t err = { 0 };
  cleanup_free char *ok = NULL;

  assert_null (net__nft_port_rules_text ("web-0", ip ("10.88.0.7"), dup, 2, &err));
  assert_non_null (strstr (err.msg, "tcp/30001 is published twice"));
  assert_null (net__nft_port_rules_text ("web-0", ip ("10.88.0.7"), zero, 1, &err));
  assert_non_null (strstr (err.msg, "port 0"));
  /* A comment is an nft string: an id with a quote could inject rules. */
  assert_null (net__nft_port_rules_text ("x\" accept #", ip ("10.88.0.7"), tcp_udp, 2, &err));
  /* The same number over tcp and udp is two different ports. */
  ok = net__nft_port_rules_text ("web-0", ip ("10.88.0.7"), tcp_udp, 2, &err);
  assert_non_null (ok);
}

/* As printed by `nft -a list table ip orch` (nftables 1.0.6). */
static const char listing[]
    = "table ip orch { # handle 3\n"
      "\tchain postrouting { # handle 1\n"
      "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
      "\t\tip saddr 10.88.0.0/24 oifname != \"orch0\" masquerade # handle 5\n"
      "\t}\n"
      "\n"
      "\tchain prerouting { # handle 2\n"
      "\t\ttype nat hook prerouting priority dstnat; policy accept;\n"
      "\t\tfib daddr type local tcp dport 30001 dnat to 10.88.0.2:8080 comment \"web-1\" # "
      "handle 11\n"
      "\t\tfib daddr type local tcp dport 30002 dnat to 10.88.0.3:8080 comment \"web-10\" # "
      "handle 12\n"
      "\t\tfib daddr type local udp dport 30053 dnat to 10.88.0.2:53 comment \"web-1\" # "
      "handle 13\n"
      "\t}\n"
      "\n"
      "\tchain output { # handle 3\n"
      "\t\ttype nat hook output priority -100; policy accept;\n"
      "\t\tfib daddr type local tcp dport 30001 dnat to 10.88.0.2:8080 comment \"web-1\" # "
      "handle 14\n"
      "\t\tfib daddr type local tcp dport 30002 dnat to 10.88.0.3:8080 comment \"web-10\" # "
      "handle 15\n"
      "\t}\n"
      "}\n";

static void
nft_delete_by_comment (void **state)
{
  cleanup_free char *del = net__nft_delete_text (listing, "web-1");
  cleanup_free char *del10 = net__nft_delete_text (listing, "web-10");
  cleanup_free char *none = net__nft_delete_text (listing, "web");
  cleanup_free char *empty = net__nft_delete_text ("", "web-1");

  /* Exactly web-1's rules: not web-10's, whose id starts the same. */
  assert_string_equal (del, "delete rule ip orch prerouting handle 11\n"
                            "delete rule ip orch prerouting handle 13\n"
                            "delete rule ip orch output handle 14\n");
  assert_string_equal (del10, "delete rule ip orch prerouting handle 12\n"
                              "delete rule ip orch output handle 15\n");
  assert_string_equal (none, "");
  assert_string_equal (empty, "");
}

static const struct CMUnitTest tests[] = {
  cmocka_unit_test (subnet_parse_valid),
  cmocka_unit_test (subnet_parse_rejects),
  cmocka_unit_test (alloc_id_validation),
  cmocka_unit_test (link_names),
  cmocka_unit_test (mac_follows_address),
  cmocka_unit_test (ipam_allocates_distinct_until_full),
  cmocka_unit_test (ipam_same_id_keeps_its_address),
  cmocka_unit_test (ipam_persists_and_reloads),
  cmocka_unit_test (ipam_never_reuses_leased_from_disk),
  cmocka_unit_test (ipam_lease_files_are_atomic),
  cmocka_unit_test (ipam_release_frees),
  cmocka_unit_test (ipam_next_fit_delays_reuse),
  cmocka_unit_test (ipam_wraps_around),
  cmocka_unit_test (ipam_rejects_bad_ids),
  cmocka_unit_test (nft_setup_rules),
  cmocka_unit_test (nft_port_rules),
  cmocka_unit_test (nft_port_rules_reject),
  cmocka_unit_test (nft_delete_by_comment),
};

ORCH_TEST_MAIN (tests)
