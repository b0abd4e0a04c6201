/* Private declarations of the placement engine, shared by place_*.c. */
#ifndef PLACE_INTERNAL_H
#define PLACE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "orch_map.h"
#include "place.h"

#define PLACE__NONE UINT32_MAX
/* The kernel tenant of a node whose containers belong to several tenants
 * (state inherited from before the rule, or a forced add): no container may
 * join it. */
#define PLACE__MIXED (UINT32_MAX - 1)
/* The partition of nodes without any allocation: bin-packing opens one of
 * them only when no node in use can take a workload. */
#define PLACE__EMPTY (UINT32_MAX - 2)

/* Free capacity is quantised on a log scale, four buckets per power of two
 * (each bucket spans at most 25%), into a grid of PLACE__G x PLACE__G
 * buckets per partition: rows by free cpu, columns by free memory. */
#define PLACE__G 128

typedef struct place__mask_s
{
  uint64_t w[2];
} place__mask_t;

/* Open-addressing map from a 64-bit key to a 32-bit value. */
typedef struct place__u64map_s
{
  uint64_t *keys; /* key + 1; 0 = empty */
  uint32_t *vals;
  size_t cap, len;
} place__u64map_t;

uint32_t *place__u64map_get (const place__u64map_t *m, uint64_t key);
uint32_t *place__u64map_put (place__u64map_t *m, uint64_t key); /* new slots hold 0 */
void place__u64map_del (place__u64map_t *m, uint64_t key);
void place__u64map_free (place__u64map_t *m);

/* Interned strings: id <-> text. */
typedef struct place__strtab_s
{
  orch_map_t map; /* text -> (id + 1) */
  char **str;
  size_t len, cap;
} place__strtab_t;

uint32_t place__intern (place__strtab_t *t, const char *s);
uint32_t place__lookup (const place__strtab_t *t, const char *s); /* PLACE__NONE if absent */
void place__strtab_free (place__strtab_t *t);

typedef struct place__tcount_s
{
  uint32_t tenant;
  uint32_t n;
} place__tcount_t;

typedef struct place__node_s
{
  char *name;       /* NULL = free slot */
  uint32_t *labels; /* pairs (key id, value id), sorted by key id */
  uint32_t n_labels;
  uint32_t cls;
  bool ready, draining;
  unsigned runtimes;
  int64_t cpu_cap, mem_cap;
  int64_t cpu_req, mem_req; /* sums of requests (guest memory for microVMs) */
  int64_t mem_excess;       /* measured use above reservations at the last report */
  int64_t vmm_overhead;     /* 0 = the cluster default */
  uint32_t n_vm, n_allocs;
  uint32_t ports_total, ports_other, ports_alloc;
  place__tcount_t *tenants; /* container count per tenant, usually 0 or 1 entry */
  uint32_t n_tenants, cap_tenants;
  /* Index position: partition, bucket and list links (PLACE__NONE = not indexed). */
  uint32_t part;
  uint8_t row, col;
  uint32_t prev, next;
  uint32_t free_next; /* free-slot list */
} place__node_t;

typedef struct place__alloc_s
{
  uint32_t node; /* PLACE__NONE = free slot */
  uint32_t service, tenant;
  orch_isolation_t isolation;
  int64_t cpu, mem;
  uint32_t ports;
  uint32_t free_next;
} place__alloc_t;

/* Nodes with the same labels and runtimes (a class), indexed per kernel
 * tenant (a partition): a container of tenant t looks only at the
 * partitions (class, none) and (class, t) of the classes that satisfy its
 * constraints. */
typedef struct place__part_s
{
  uint32_t cls, tenant; /* PLACE__NONE = microVMs only, PLACE__EMPTY = no allocations */
  uint32_t n_nodes;
  place__mask_t rows;           /* rows with a non-empty bucket */
  place__mask_t cols[PLACE__G]; /* per row: non-empty columns */
  uint32_t *heads[PLACE__G];    /* per row, allocated on first use: PLACE__G list heads */
} place__part_t;

typedef struct place__class_s
{
  uint32_t *labels; /* as in place__node_t */
  uint32_t n_labels;
  unsigned runtimes;
  uint32_t *parts; /* partition ids of this class */
  uint32_t n_parts, cap_parts;
  uint32_t n_nodes;
} place__class_t;

struct place_cluster_s
{
  place_config_t cfg;
  place__strtab_t strs; /* node ids are not interned; labels, services, tenants are */
  orch_map_t node_by_name;

  place__node_t *nodes;
  size_t n_nodes_slots, cap_nodes, n_nodes_live;
  uint32_t node_free;

  place__alloc_t *allocs;
  size_t n_alloc_slots, cap_allocs, n_allocs_live;
  uint32_t alloc_free;

  place__class_t *classes;
  size_t n_classes, cap_classes;
  orch_map_t class_by_key; /* canonical key text -> id + 1 */

  place__part_t **parts;
  size_t n_parts, cap_parts;
  place__u64map_t part_by_key; /* (cls << 32 | tenant) -> part id */

  place__u64map_t svc_count; /* (node << 32 | service) -> allocations of that service */

  /* Capacity and requests summed over nodes and allocations: they set the
   * units in which cpu and memory are compared (place__set_units). */
  int64_t sum_cpu_cap, sum_mem_cap;
  int64_t sum_cpu_req, sum_mem_req;

  /* Undo support for plans: the position of each node in its bucket list
   * is restored exactly, so a plan leaves no trace in later decisions. */
  bool undo_on;
  struct place__move_s *moves;
  size_t n_moves, cap_moves;
};

typedef struct place__move_s
{
  uint32_t node, part;
  uint8_t row, col;
  uint32_t prev; /* neighbour before it in the old list, PLACE__NONE = head */
} place__move_t;

/* place_index.c */
unsigned place__bucket (int64_t v);
int64_t place__bucket_lo (unsigned b);
void place__index_node (place_cluster_t *c, uint32_t node); /* (re)insert after a change */
void place__unindex_node (place_cluster_t *c, uint32_t node);
uint32_t place__part_get (place_cluster_t *c, uint32_t cls, uint32_t tenant, bool create);
void place__index_undo (place_cluster_t *c, size_t to);
void place__part_free (place__part_t *p);

/* place_cluster.c */
int64_t place__node_overhead (const place_cluster_t *c, const place__node_t *n);
int64_t place__node_free_cpu (const place__node_t *n);
int64_t place__node_free_mem (const place_cluster_t *c, const place__node_t *n);
uint32_t place__node_kernel_tenant (const place__node_t *n);
uint32_t place__alloc_commit (place_cluster_t *c, uint32_t node, uint32_t service, uint32_t tenant,
                              orch_isolation_t iso, int64_t cpu, int64_t mem, uint32_t ports);
void place__alloc_release (place_cluster_t *c, uint32_t alloc, bool rollback);

#endif
