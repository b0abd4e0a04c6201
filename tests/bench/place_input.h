/* Inputs shared by the placement benchmark and its independent checker:
 * CSV readers with validation, and the seeded synthetic generator. */
#ifndef PLACE_INPUT_H
#define PLACE_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pin_node_s
{
  char *name;
  int64_t cpu_milli, memory_mib;
  char *labels;      /* "k=v;k2=v2" or NULL */
  unsigned runtimes; /* PLACE_RT_* bits */
} pin_node_t;

typedef struct pin_wl_s
{
  char *name;
  char *service;
  char *tenant;
  int64_t cpu_milli, memory_mib;
  int isolation; /* orch_isolation_t */
  bool untrusted;
  char *constraint_key;   /* label key for the constraint, or NULL */
  char *constraint_value; /* NULL with a key = exists */
} pin_wl_t;

typedef struct pin_set_s
{
  pin_node_t *nodes;
  size_t n_nodes;
  pin_wl_t *wls;
  size_t n_wls;
} pin_set_t;

/* Each returns 0, or -1 with a message naming file, line and column in err. */
int pin_read_nodes (const char *path, pin_set_t *s, char *err, size_t errlen);
int pin_read_workloads (const char *path, pin_set_t *s, char *err, size_t errlen);
void pin_synth_nodes (pin_set_t *s, size_t n, uint64_t seed);
/* fill: fraction of the cluster's binding capacity the workloads demand. */
void pin_synth_workloads (pin_set_t *s, size_t n, uint64_t seed, double fill, int n_tenants);
void pin_free (pin_set_t *s);

/* Reads "workload,node,isolation" lines (a header line is skipped). */
typedef struct pin_placement_s
{
  char *workload, *node;
  int isolation; /* -1 when unplaced */
} pin_placement_t;
int pin_read_placements (const char *path, pin_placement_t **out, size_t *n, char *err,
                         size_t errlen);

#endif
