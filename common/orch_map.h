/* A string-keyed hash map (open addressing, linear probing) for the daemons'
 * tables: services, allocations and nodes by name. Keys are copied and owned
 * by the map; values are borrowed pointers the caller owns. */
#ifndef ORCH_MAP_H
#define ORCH_MAP_H

#include <stddef.h>

typedef struct orch_map_entry_s
{
  char *key; /* NULL = empty slot */
  void *value;
  int tomb;  /* deleted slot kept for probing */
} orch_map_entry_t;

typedef struct orch_map_s
{
  orch_map_entry_t *slots;
  size_t cap;  /* power of two, 0 before first insert */
  size_t len;  /* live entries */
  size_t used; /* live + tombstones */
} orch_map_t;

#define ORCH_MAP_INIT {NULL, 0, 0, 0}

void *orch_map_get (const orch_map_t *m, const char *key);
/* Inserts or replaces; returns the previous value or NULL. */
void *orch_map_put (orch_map_t *m, const char *key, void *value);
/* Removes key; returns its value or NULL. */
void *orch_map_del (orch_map_t *m, const char *key);
/* Frees the map's own memory (not the values). */
void orch_map_free (orch_map_t *m);

/* Iteration: for (size_t i = 0; orch_map_next (m, &i, &k, &v);) ... Removing the
 * entry just returned is allowed during iteration. */
int orch_map_next (const orch_map_t *m, size_t *iter, const char **key, void **value);

#endif
