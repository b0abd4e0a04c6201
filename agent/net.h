/* The node's workload network (DESIGN.md §7): a bridge with a per-node
 * subnet, an address per allocation, outbound access through masquerading,
 * and published ports forwarded from the node's address to the workload
 * (DNAT). Containers get a veth pair whose inner end is moved into their
 * network namespace; microVMs get a tap device on the same bridge.
 *
 * Setting up the bridge and rules is idempotent and survives the agent: a
 * restarted agent finds its allocations' addresses in the state directory
 * and keeps them. Nothing here runs an external program: links and
 * addresses go through rtnetlink, rules through nftables.
 *
 * Every call but net_new/net_free may come from any thread (they take the
 * net_t's lock; attach and detach are serialised). One agent per network namespace:
 * agents sharing one would overwrite each other's rules. Container MACs are
 * 0a:58 followed by the IPv4 address, so that a restarted workload with the
 * same address is reachable at once. On hosts whose iptables FORWARD policy
 * drops (Docker with br_netfilter), forwarded traffic is dropped whatever
 * this table accepts. */
#ifndef ORCH_NET_H
#define ORCH_NET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "orch_err.h"

typedef struct net_port_s
{
  uint16_t port;      /* inside the workload */
  uint16_t host_port; /* on the node; 0 = not published */
  int udp;            /* 0 = tcp */
} net_port_t;

typedef struct net_config_s
{
  const char *state_dir; /* leases are kept in <state_dir>/net */
  const char *bridge;    /* default "orch0" */
  const char *subnet;    /* CIDR of this node's workloads, default "10.88.0.0/24"; the bridge
                            takes the first address, workloads the rest */
} net_config_t;

typedef struct net_s net_t;

/* Creates (or finds) the bridge, its address, forwarding and the nftables
 * table "orch" with masquerading for the subnet. Returns NULL with err. */
net_t *net_new (const net_config_t *cfg, orch_err_t *err);
/* Frees the handle; the bridge, rules and workloads' links stay. */
void net_free (net_t *n);

/* Connects the network namespace of pid (a container's init) to the bridge:
 * a veth pair, an address from the subnet as eth0 inside, lo up, a default
 * route via the bridge, and a DNAT rule per published port. Writes the
 * address into addr. Returns 0 or -1 with err; on failure nothing is left. */
int net_attach_netns (net_t *n, const char *alloc_id, pid_t pid, const net_port_t *ports,
                      size_t n_ports, char *addr, size_t addr_len, orch_err_t *err);

/* The same for a microVM: creates a persistent tap device on the bridge and
 * the DNAT rules; the guest configures addr/prefix with gw as its gateway
 * (passed on the kernel command line). tap_name is in/out: an empty buffer
 * (at least 16 bytes) receives a generated "tap" + 8 hex name, a non-empty
 * one is used as given. */
int net_attach_tap (net_t *n, const char *alloc_id, char *tap_name, size_t tap_len,
                    const net_port_t *ports, size_t n_ports, char *addr, size_t addr_len,
                    int *prefix, char *gw, size_t gw_len, orch_err_t *err);

/* Removes the allocation's link, rules and address lease. Idempotent. May
 * block 15-25 ms in the kernel while a container's veth still exists: call
 * it after the workload has exited, or off the event loop. */
int net_detach (net_t *n, const char *alloc_id, orch_err_t *err);

/* The address leased to alloc_id (after an agent restart), or -1. */
int net_lookup (net_t *n, const char *alloc_id, char *addr, size_t addr_len);

#endif
