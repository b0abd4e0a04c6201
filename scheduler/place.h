/* The placement engine (DESIGN.md §4): a pure library (no I/O, no globals, no
 * clock, deterministic for a given sequence of calls) that decides on which
 * node every workload runs and whether it runs as a container or a microVM.
 *
 * The scheduler builds one place_cluster_t, keeps it current with the
 * incremental calls below (nodes join, leave, report usage; allocations are
 * added and removed) and calls place_batch() for every apply, scale-up and
 * replacement. place_batch() commits what it places into the cluster, so a
 * batch sees its own earlier placements and the next batch sees them too;
 * with opts.plan it places the same way and then rolls everything back
 * (`orchctl plan`), leaving the cluster exactly as it was (a plan followed
 * by the same batch for real gives the same answers). Pending work is the
 * caller's: call place_batch() again for it when a node joins or
 * allocations are removed.
 *
 * Pipeline, as in Nomad's stack: feasibility checks, cheapest first, each
 * rejection counted by reason (not ready, draining, no backend, tenant/kernel
 * rule, constraints, host ports, cpu, memory); then ranking; then the pick,
 * ties broken by node handle.
 * - Bin-pack (default): a node already in use always beats an empty one;
 *   among nodes in use, the smallest leftover (cpu, memory) vector, in
 *   units of the cluster's demand mix; an empty node is opened only when
 *   none in use fits, choosing the one with most usable capacity. Within a
 *   batch (largest first), the node just chosen is then filled with the
 *   batch's workloads that keep its cpu and memory balanced, so that
 *   neither is stranded.
 * - Spread (per workload, or cluster-wide): the node with the fewest
 *   replicas of the service, then the lowest utilisation after placement.
 * Nodes are indexed by free capacity (log-scale buckets of free cpu x free
 * memory) per node class (equal labels and runtimes) and kernel tenant, so
 * a placement looks at a handful of buckets, not every node. Labels that
 * are unique per node (a hostname label) make one class per node and slow
 * every placement down: constrain on node.id instead.
 *
 * Constraints: "label.<key>" or "node.id" with =, !=, in, not_in, exists. A
 * node without the label fails =, in and exists and satisfies != and
 * not_in (as Kubernetes' NotIn). Any other attribute makes the workload
 * invalid (its result says so).
 *
 * Resources: a workload is charged its requests; a microVM is also charged
 * its node's VMM overhead (reported by the agent; the configured default
 * until it is). Memory feasibility counts max(reserved, measured): the
 * excess of the node's measured use over what was reserved when it was
 * measured is carried on top of the reservations until the next report.
 * CPU counts reservations only (it is compressible).
 *
 * Host ports are counted, not assigned: a node offers port_max - port_min + 1
 * host ports minus those in use by others; each allocation takes as many as
 * it publishes. The agent picks the concrete ports from the node's range.
 *
 * Handles: nodes and allocations are named by small integer handles
 * (place_node_id_t, place_alloc_id_t) that stay valid until removed; a
 * removed handle may be reused by a later add. Strings passed in are copied
 * (the caller keeps ownership of its own); strings returned are borrowed
 * from the cluster and valid until the named object is removed or the
 * cluster is freed. Not thread-safe: one cluster per thread at a time. */
#ifndef PLACE_H
#define PLACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "orch_err.h"
#include "orch_spec.h"

typedef struct place_cluster_s place_cluster_t;
typedef uint32_t place_node_id_t;
typedef uint32_t place_alloc_id_t;

#define PLACE_NODE_NONE ((place_node_id_t) UINT32_MAX)
#define PLACE_ALLOC_NONE ((place_alloc_id_t) UINT32_MAX)

/* Limits on what callers pass in; larger inputs are refused with an error. */
#define PLACE_MAX_NODES (1u << 20)
#define PLACE_MAX_ALLOCS (1u << 24)
#define PLACE_MAX_LABELS 64 /* per node */
#define PLACE_MAX_STR 253   /* node ids, label keys/values, service and tenant names */
#define PLACE_MAX_BATCH (1u << 20)
#define PLACE_REASON_MAX 320 /* bytes of result text, NUL included */

/* Runtimes a node offers (bit set). */
#define PLACE_RT_CONTAINER (1u << 0)
#define PLACE_RT_MICROVM (1u << 1)

typedef struct place_config_s
{
  int64_t default_vmm_overhead_bytes; /* per microVM until its node reports one (64 MiB) */
  uint16_t port_min, port_max;        /* host port range when a node gives none (30000-32767) */
  bool spread;                        /* cluster-wide: spread every service (default false) */
} place_config_t;

/* Fills c with the defaults above. */
void place_config_init (place_config_t *c);

typedef struct place_label_s
{
  const char *key;
  const char *value;
} place_label_t;

typedef struct place_node_spec_s
{
  const char *id;              /* unique, required */
  const place_label_t *labels; /* matched by constraints "label.<key>" */
  size_t n_labels;
  bool ready;
  bool draining;
  unsigned runtimes;           /* PLACE_RT_* bits */
  int64_t cpu_milli;           /* allocatable, >= 0 */
  int64_t memory_bytes;        /* allocatable, >= 0 */
  int64_t memory_used_bytes;   /* measured (cgroups); 0 = not measured yet */
  int64_t vmm_overhead_bytes;  /* measured per-microVM overhead; 0 = use the default */
  uint16_t port_min, port_max; /* host port range; both 0 = the cluster default */
  uint32_t host_ports_in_use;  /* ports of that range taken by something other than allocs */
} place_node_spec_t;

/* Allocations that already exist (from etcd, or placed by an earlier run).
 * Adding one never fails for lack of capacity: the state is what it is. */
typedef struct place_alloc_spec_s
{
  const char *service;
  const char *tenant; /* NULL = "default" */
  place_node_id_t node;
  orch_isolation_t isolation; /* ORCH_ISO_CONTAINER or ORCH_ISO_MICROVM */
  int64_t cpu_milli;
  int64_t memory_bytes; /* a microVM's guest memory; the overhead is added by the engine */
  uint32_t host_ports;
} place_alloc_spec_t;

/* One workload (one replica) to place. Pointers are borrowed for the call. */
typedef struct place_workload_s
{
  const char *service;
  const char *tenant;   /* NULL = "default" */
  int64_t cpu_milli;    /* > 0 */
  int64_t memory_bytes; /* > 0 */
  orch_isolation_t isolation;
  bool untrusted;
  const orch_constraint_t *constraints; /* attribute "label.<key>" or "node.id" */
  size_t n_constraints;
  bool spread;         /* or'ed with the cluster-wide setting */
  uint32_t host_ports; /* host ports it publishes */
} place_workload_t;

/* Fills w from a parsed spec; w borrows the spec's strings and arrays, so
 * the spec must outlive every use of w. */
void place_workload_from_spec (const orch_spec_t *spec, place_workload_t *w);

/* Why a node was rejected, in the order the checks run. */
typedef enum
{
  PLACE_REJ_NOT_READY = 0,
  PLACE_REJ_DRAINING,
  PLACE_REJ_NO_BACKEND, /* "no microvm backend" / "no container backend" */
  PLACE_REJ_TENANT,     /* containers of another tenant share the kernel */
  PLACE_REJ_CONSTRAINT,
  PLACE_REJ_PORTS,
  PLACE_REJ_CPU,
  PLACE_REJ_MEMORY,
  PLACE_REJ__MAX
} place_reject_t;

/* Short text of a reason ("insufficient memory"); static storage. */
const char *place_reject_name (place_reject_t r);

typedef struct place_result_s
{
  place_node_id_t node;              /* PLACE_NODE_NONE when not placed */
  place_alloc_id_t alloc;            /* the committed allocation; PLACE_ALLOC_NONE if not
                                        placed or opts.plan (nothing committed) */
  orch_isolation_t isolation;        /* chosen: CONTAINER or MICROVM (for a failure:
                                        what was asked, AUTO stays AUTO) */
  uint32_t n_nodes;                  /* nodes considered, for a failure's "0/N nodes" */
  uint32_t rejected[PLACE_REJ__MAX]; /* per reason, filled for failures */
  char reason[PLACE_REASON_MAX];
  /* Placed:  "best fit: cpu 62%, mem 71% after placement"
   *          "microvm: tenant b would share node n1's kernel with tenant a; best fit: ..."
   *          "microvm: untrusted; ..."  "spread: ..."
   * Failed:  "0/5 nodes: 3 insufficient memory, 2 no microvm backend"
   *          "invalid workload: memory must be > 0" */
} place_result_t;

typedef struct place_batch_opts_s
{
  bool plan;       /* dry run: place as usual, then roll back; the cluster is unchanged */
  bool keep_order; /* place in the given order; by default largest first (packs better;
                      results are always in input order) */
  /* Optional; called after each workload is decided, with its input index,
   * in the order the engine places them. Lets a caller time placements
   * without the engine reading a clock. */
  void (*on_placed) (void *userdata, size_t index);
  void *userdata;
} place_batch_opts_t;

/* Creates an empty cluster (cfg NULL = defaults). Free with place_cluster_free. */
place_cluster_t *place_cluster_new (const place_config_t *cfg);
void place_cluster_free (place_cluster_t *c); /* accepts NULL */

/* Replaces the cluster-wide settings (e.g. spread); existing state stays. */
void place_cluster_set_config (place_cluster_t *c, const place_config_t *cfg);

/* Nodes. place_node_add refuses a duplicate id, an empty or too long id or
 * label, negative resources, too many labels or nodes (returns -1, err set). */
int place_node_add (place_cluster_t *c, const place_node_spec_t *spec, place_node_id_t *out,
                    orch_err_t *err);
/* Replaces a node's labels, flags, runtimes, capacity and usage; its
 * allocations stay (the node may end up over-committed: nothing is evicted).
 * spec->id must be the node's id. */
int place_node_update (place_cluster_t *c, place_node_id_t node, const place_node_spec_t *spec,
                       orch_err_t *err);
/* Cheap updates from heartbeats. */
void place_node_set_state (place_cluster_t *c, place_node_id_t node, bool ready, bool draining);
void place_node_set_usage (place_cluster_t *c, place_node_id_t node, int64_t memory_used_bytes);
void place_node_set_vmm_overhead (place_cluster_t *c, place_node_id_t node, int64_t bytes);
/* Removes the node and every allocation on it (their handles become invalid). */
void place_node_remove (place_cluster_t *c, place_node_id_t node);
/* PLACE_NODE_NONE when unknown. */
place_node_id_t place_node_find (const place_cluster_t *c, const char *id);
/* Borrowed; NULL for an invalid handle. */
const char *place_node_name (const place_cluster_t *c, place_node_id_t node);
size_t place_node_count (const place_cluster_t *c);

typedef struct place_node_info_s
{
  int64_t cpu_milli, memory_bytes;       /* allocatable */
  int64_t cpu_reserved, memory_reserved; /* charged to allocations, VMM overhead included */
  int64_t memory_effective;              /* what memory feasibility counts as used */
  uint32_t n_allocs, n_microvms, host_ports_free;
  const char *kernel_tenant; /* tenant of the node's containers, NULL if none; borrowed */
} place_node_info_t;
int place_node_info (const place_cluster_t *c, place_node_id_t node, place_node_info_t *out);

/* Allocations. place_alloc_add refuses an unknown node, AUTO isolation or
 * negative resources; it does not check capacity. */
int place_alloc_add (place_cluster_t *c, const place_alloc_spec_t *spec, place_alloc_id_t *out,
                     orch_err_t *err);
void place_alloc_remove (place_cluster_t *c, place_alloc_id_t alloc);
size_t place_alloc_count (const place_cluster_t *c);

/* Places n workloads. results (caller-owned, n entries) are in input order.
 * Returns the number placed (0..n), or -1 with err set when the call itself
 * is invalid (n > PLACE_MAX_BATCH, NULL arrays); an invalid workload only
 * fails its own result. opts NULL = commit, largest first. */
int place_batch (place_cluster_t *c, const place_workload_t *w, size_t n,
                 const place_batch_opts_t *opts, place_result_t *results, orch_err_t *err);

#endif
