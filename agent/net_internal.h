/* Private parts of the node network (net.h): subnet arithmetic, the address
 * allocator with its lease files, link names, nftables rule text and the
 * rtnetlink requests. Split out so that unit tests can drive each piece
 * without root, and the host check can reuse the netlink helpers. */
#ifndef ORCH_NET_INTERNAL_H
#define ORCH_NET_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "net.h"
#include "orch_err.h"

/* The nftables table every rule lives in ("table ip orch"). */
#define NET_NFT_TABLE "orch"
/* Longest allocation id accepted: it becomes a file name, an interface alias
 * and an nftables comment (which the kernel caps at 128 bytes). */
#define NET_ALLOC_ID_MAX 120
/* Smallest and largest subnets: /30 leaves one workload address next to the
 * bridge's; /16 keeps the allocation bitmap at 8 KiB. */
#define NET_PREFIX_MIN 16
#define NET_PREFIX_MAX 30
/* Interface alias that marks a link as an allocation's ("orch:<alloc-id>"). */
#define NET_ALIAS_PREFIX "orch:"

/* ---- subnets (net_ipam.c) ---- */

typedef struct net_subnet_s
{
  uint32_t base; /* network address, host byte order */
  int prefix;
} net_subnet_t;

/* Parses "A.B.C.D/N" strictly: host bits must be zero and N within
 * [NET_PREFIX_MIN, NET_PREFIX_MAX]. Returns 0 or -1 with err. */
int net__subnet_parse (const char *cidr, net_subnet_t *out, orch_err_t *err);
/* Number of addresses in the subnet, network and broadcast included. */
uint32_t net__subnet_size (const net_subnet_t *sn);
/* The bridge's address: the first host. */
uint32_t net__subnet_gateway (const net_subnet_t *sn);
int net__subnet_contains (const net_subnet_t *sn, uint32_t addr);
/* Formats a host-order IPv4 address; buf must hold 16 bytes. */
void net__addr_format (uint32_t addr, char *buf, size_t len);
/* Parses a dotted quad into host order; 0 or -1. */
int net__addr_parse (const char *s, uint32_t *out);

/* True when id can name an allocation here: 1..NET_ALLOC_ID_MAX chars of
 * [A-Za-z0-9_.-], not starting with '.' (a file name, an nft string). */
int net__alloc_id_valid (const char *id);
/* prefix (at most 7 chars) + 8 hex digits of a hash of alloc_id: a stable
 * interface name within IFNAMSIZ. out must hold 16 bytes. */
void net__link_name (const char *prefix, const char *alloc_id, char *out, size_t len);

/* ---- address allocator (net_ipam.c) ----
 *
 * A bitmap over the subnet (network, gateway and broadcast reserved) with a
 * next-fit cursor, so an address that was just freed is handed out again
 * only after the rest of the subnet has been used. Leases live in
 * <state_dir>/net/leases/<alloc-id>: the address on the first line and the
 * allocation's link name (may be empty) on the second. */
typedef struct net_ipam_s
{
  net_subnet_t sn;
  uint64_t *bits;  /* bit i set: base + i is taken */
  uint32_t size;   /* addresses in the subnet */
  uint32_t free;   /* addresses still free */
  uint32_t cursor; /* next index to try */
  char *dir;       /* the leases directory */
} net_ipam_t;

/* Loads every lease under <state_dir>/net/leases. Leases outside the subnet
 * or unreadable are left on disk but not counted. Returns 0 or -1 with err. */
int net__ipam_open (net_ipam_t *ipam, const char *state_dir, const net_subnet_t *sn,
                    orch_err_t *err);
void net__ipam_close (net_ipam_t *ipam);
/* Reads alloc_id's lease: 1 with *addr (and link, if non-NULL) filled, 0
 * when there is none, -1 with err when it is unreadable. */
int net__ipam_get (net_ipam_t *ipam, const char *alloc_id, uint32_t *addr, char *link,
                   size_t link_len, orch_err_t *err);
/* Leases an address to alloc_id and records link with it. When alloc_id
 * already holds a lease, that address is kept (*existed = 1) and the link
 * name is rewritten. Returns 0 or -1 with err (ENOSPC when full). */
int net__ipam_acquire (net_ipam_t *ipam, const char *alloc_id, const char *link, uint32_t *addr,
                       int *existed, orch_err_t *err);
/* Frees alloc_id's lease. No lease is not an error. */
int net__ipam_release (net_ipam_t *ipam, const char *alloc_id, orch_err_t *err);

/* ---- nftables (net_nft.c) ---- */

/* Commands that create (or refresh) the table: masquerading for the subnet,
 * the forward accept rules, the nat chains. Idempotent: the chains it owns
 * outright are flushed and refilled, the DNAT chains are left alone.
 * Caller frees. */
char *net__nft_setup_text (const char *bridge, const net_subnet_t *sn);
/* The DNAT rules of one allocation (prerouting and output, one each per
 * published port), each tagged with comment "<alloc_id>". "" when no port is
 * published. Returns NULL with err on an invalid port list. Caller frees. */
char *net__nft_port_rules_text (const char *alloc_id, uint32_t addr, const net_port_t *ports,
                                size_t n_ports, orch_err_t *err);
/* From the text of `nft -a list table ip orch`, the delete commands for the
 * rules whose comment is exactly alloc_id ("" when none). Caller frees. */
char *net__nft_delete_text (const char *listing, const char *alloc_id);

typedef struct net_nft_s net_nft_t;
net_nft_t *net__nft_new (orch_err_t *err);
void net__nft_free (net_nft_t *nft);
/* Runs commands in one transaction; on failure err carries nft's message. */
int net__nft_run (net_nft_t *nft, const char *cmds, orch_err_t *err);
/* Runs a list command with handles shown; *out is the listing (caller frees). */
int net__nft_list (net_nft_t *nft, const char *cmd, char **out, orch_err_t *err);

/* ---- rtnetlink (net_link.c) ---- */

typedef struct net_nl_s net_nl_t;

/* A route socket in the calling thread's network namespace (nsfd < 0) or in
 * the namespace nsfd refers to (created by a short-lived thread that enters
 * it, so the caller's namespace never changes). Returns NULL with err. */
net_nl_t *net__nl_open (int nsfd, orch_err_t *err);
void net__nl_close (net_nl_t *nl);
/* The kernel's own words about the last failed request (netlink extended
 * ack, e.g. "Invalid prefix for given prefix length"), "" when it gave none. */
const char *net__nl_ext (const net_nl_t *nl);

/* The index of link name: > 0, or -ENODEV when absent, or -errno. When
 * alias is non-NULL it receives the link's alias ("" when none); when
 * flags / master are non-NULL they receive ifi_flags and IFLA_MASTER. */
int net__nl_link_get (net_nl_t *nl, const char *name, char *alias, size_t alias_len,
                      unsigned *flags, int *master);
/* Creates bridge name with a fixed MAC (so it does not follow its ports'),
 * or finds it. Returns its index, -EEXIST when a link of that name is not a
 * bridge, or -errno. */
int net__nl_bridge_ensure (net_nl_t *nl, const char *name);
/* Sets up (up != 0), master (> 0) and alias (non-NULL) on link ifindex. */
int net__nl_link_set (net_nl_t *nl, int ifindex, int up, int master, const char *alias);
/* Renames link ifindex. */
int net__nl_link_rename (net_nl_t *nl, int ifindex, const char *name);
/* Deletes link name; -ENODEV when absent. */
int net__nl_link_del (net_nl_t *nl, const char *name);
/* Creates a veth pair: host end name, attached to master (> 0) and up,
 * with alias (on failure no part of the pair is left); the peer named peer, with MAC peer_mac (6
 * bytes, NULL for a random one), is created in the network namespace of ns_pid (> 0) or of ns_fd
 * (>= 0). */
int net__nl_veth_create (net_nl_t *nl, const char *name, int master, const char *alias,
                         const char *peer, const uint8_t *peer_mac, pid_t ns_pid, int ns_fd);
/* The MAC a workload with address addr gets: 0a:58 and the address, so an
 * address always comes with the same MAC and neighbours' ARP caches stay
 * right when a workload is restarted or an address is handed out again. */
void net__mac_for_addr (uint32_t addr, uint8_t mac[6]);
/* Adds addr/prefix to ifindex; replace != 0 makes it idempotent. */
int net__nl_addr_add (net_nl_t *nl, int ifindex, uint32_t addr, int prefix, int replace);
/* Adds the default route via gw over ifindex. */
int net__nl_route_default (net_nl_t *nl, int ifindex, uint32_t gw);

/* Inside a workload's namespace, in one round trip: addr/prefix on
 * ifindex, ifindex up, lo up, and the default route via gw. Returns 0 or
 * -errno with *failed_step 0 (address), 1 (up), 2 (lo) or 3 (route). */
int net__nl_configure_inside (net_nl_t *nl, int ifindex, uint32_t addr, int prefix, uint32_t gw,
                              int *failed_step);

/* Writes value into a /proc/sys file. 0 or -errno. */
int net__sysctl_write (const char *path, const char *value);

#endif
