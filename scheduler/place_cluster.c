/* Cluster state: nodes, allocations, classes, and the bookkeeping that keeps
 * the free-capacity index current as they change. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orch_util.h"
#include "place_internal.h"

void
place_config_init (place_config_t *cfg)
{
  memset (cfg, 0, sizeof (*cfg));
  cfg->default_vmm_overhead_bytes = 64LL << 20;
  cfg->port_min = 30000;
  cfg->port_max = 32767;
  cfg->spread = false;
}

place_cluster_t *
place_cluster_new (const place_config_t *cfg)
{
  place_cluster_t *c = xcalloc (1, sizeof (*c));
  if (cfg)
    c->cfg = *cfg;
  else
    place_config_init (&c->cfg);
  c->node_free = PLACE__NONE;
  c->alloc_free = PLACE__NONE;
  return c;
}

void
place_cluster_set_config (place_cluster_t *c, const place_config_t *cfg)
{
  c->cfg = *cfg;
  /* The default overhead enters every microVM-carrying node's free memory. */
  for (size_t i = 0; i < c->n_nodes_slots; i++)
    if (c->nodes[i].name)
      place__index_node (c, (uint32_t) i);
}

void
place_cluster_free (place_cluster_t *c)
{
  if (!c)
    return;
  for (size_t i = 0; i < c->n_nodes_slots; i++)
    {
      free (c->nodes[i].name);
      free (c->nodes[i].labels);
      free (c->nodes[i].tenants);
    }
  free (c->nodes);
  free (c->allocs);
  for (size_t i = 0; i < c->n_classes; i++)
    {
      free (c->classes[i].labels);
      free (c->classes[i].parts);
    }
  free (c->classes);
  orch_map_free (&c->class_by_key);
  for (size_t i = 0; i < c->n_parts; i++)
    place__part_free (c->parts[i]);
  free (c->parts);
  place__u64map_free (&c->part_by_key);
  place__u64map_free (&c->svc_count);
  orch_map_free (&c->node_by_name);
  place__strtab_free (&c->strs);
  free (c->moves);
  free (c);
}

int64_t
place__node_overhead (const place_cluster_t *c, const place__node_t *n)
{
  return n->vmm_overhead > 0 ? n->vmm_overhead : c->cfg.default_vmm_overhead_bytes;
}

int64_t
place__node_free_cpu (const place__node_t *n)
{
  return n->cpu_cap - n->cpu_req;
}

static int64_t
place__node_mem_reserved (const place_cluster_t *c, const place__node_t *n)
{
  return n->mem_req + (int64_t) n->n_vm * place__node_overhead (c, n);
}

int64_t
place__node_free_mem (const place_cluster_t *c, const place__node_t *n)
{
  return n->mem_cap - place__node_mem_reserved (c, n) - n->mem_excess;
}

uint32_t
place__node_kernel_tenant (const place__node_t *n)
{
  if (n->n_tenants == 0)
    return PLACE__NONE;
  return n->n_tenants == 1 ? n->tenants[0].tenant : PLACE__MIXED;
}

static bool
place__node_valid (const place_cluster_t *c, place_node_id_t id)
{
  return id < c->n_nodes_slots && c->nodes[id].name != NULL;
}

static int
place__cmp_label (const void *a, const void *b)
{
  const uint32_t *x = a, *y = b;
  return x[0] < y[0] ? -1 : x[0] > y[0];
}

/* Validates a node spec; on success fills *labels with the interned,
 * key-sorted pairs (caller frees). */
static int
place__node_spec_check (place_cluster_t *c, const place_node_spec_t *s, uint32_t **labels,
                        orch_err_t *err)
{
  if (!s->id || !*s->id || strlen (s->id) > PLACE_MAX_STR)
    return orch_err_set (err, 0, "node id must be 1..%d bytes", PLACE_MAX_STR);
  if (s->n_labels > PLACE_MAX_LABELS)
    return orch_err_set (err, 0, "node %s: %zu labels, at most %d", s->id, s->n_labels,
                         PLACE_MAX_LABELS);
  if (s->cpu_milli < 0 || s->memory_bytes < 0 || s->memory_used_bytes < 0
      || s->vmm_overhead_bytes < 0)
    return orch_err_set (err, 0, "node %s: negative resources", s->id);
  if (s->port_min > s->port_max)
    return orch_err_set (err, 0, "node %s: port range %u-%u is empty", s->id, s->port_min,
                         s->port_max);
  for (size_t i = 0; i < s->n_labels; i++)
    {
      const place_label_t *l = &s->labels[i];
      if (!l->key || !*l->key || strlen (l->key) > PLACE_MAX_STR || !l->value
          || strlen (l->value) > PLACE_MAX_STR)
        return orch_err_set (err, 0, "node %s: label %zu: key must be 1..%d bytes, value 0..%d",
                             s->id, i, PLACE_MAX_STR, PLACE_MAX_STR);
      for (size_t j = 0; j < i; j++)
        if (strcmp (s->labels[j].key, l->key) == 0)
          return orch_err_set (err, 0, "node %s: label %s given twice", s->id, l->key);
    }
  uint32_t *kv = xmalloc ((s->n_labels ? s->n_labels : 1) * 2 * sizeof (uint32_t));
  for (size_t i = 0; i < s->n_labels; i++)
    {
      kv[2 * i] = place__intern (&c->strs, s->labels[i].key);
      kv[2 * i + 1] = place__intern (&c->strs, s->labels[i].value);
    }
  qsort (kv, s->n_labels, 2 * sizeof (uint32_t), place__cmp_label);
  *labels = kv;
  return 0;
}

static uint32_t
place__class_for (place_cluster_t *c, const uint32_t *labels, uint32_t n_labels, unsigned rt)
{
  /* Key text: runtimes then the sorted (key, value) ids; equal label sets
   * share a class, whose feasibility a batch evaluates once. */
  size_t cap = 16 + (size_t) n_labels * 24;
  cleanup_free char *key = xmalloc (cap);
  size_t off = (size_t) snprintf (key, cap, "%u", rt);
  for (uint32_t i = 0; i < n_labels; i++)
    off += (size_t) snprintf (key + off, cap - off, "|%u=%u", labels[2 * i], labels[2 * i + 1]);
  void *v = orch_map_get (&c->class_by_key, key);
  if (v)
    return (uint32_t) ((uintptr_t) v - 1);
  orch_grow ((void **) &c->classes, &c->cap_classes, c->n_classes + 1, sizeof (place__class_t));
  uint32_t id = (uint32_t) c->n_classes++;
  place__class_t *k = &c->classes[id];
  memset (k, 0, sizeof (*k));
  k->labels = xmalloc ((n_labels ? n_labels : 1) * 2 * sizeof (uint32_t));
  memcpy (k->labels, labels, (size_t) n_labels * 2 * sizeof (uint32_t));
  k->n_labels = n_labels;
  k->runtimes = rt;
  orch_map_put (&c->class_by_key, key, (void *) (uintptr_t) (id + 1));
  return id;
}

static void
place__node_apply_spec (place_cluster_t *c, place__node_t *n, const place_node_spec_t *s,
                        uint32_t *labels)
{
  if (n->cls != PLACE__NONE)
    c->classes[n->cls].n_nodes--;
  c->sum_cpu_cap -= n->cpu_cap;
  c->sum_mem_cap -= n->mem_cap;
  free (n->labels);
  n->labels = labels;
  n->n_labels = (uint32_t) s->n_labels;
  n->runtimes = s->runtimes & (PLACE_RT_CONTAINER | PLACE_RT_MICROVM);
  n->cls = place__class_for (c, labels, n->n_labels, n->runtimes);
  c->classes[n->cls].n_nodes++;
  n->ready = s->ready;
  n->draining = s->draining;
  n->cpu_cap = s->cpu_milli;
  n->mem_cap = s->memory_bytes;
  c->sum_cpu_cap += n->cpu_cap;
  c->sum_mem_cap += n->mem_cap;
  n->vmm_overhead = s->vmm_overhead_bytes;
  uint16_t lo = s->port_min, hi = s->port_max;
  if (lo == 0 && hi == 0)
    {
      lo = c->cfg.port_min;
      hi = c->cfg.port_max;
    }
  n->ports_total = hi >= lo ? (uint32_t) (hi - lo) + 1 : 0;
  n->ports_other = s->host_ports_in_use;
  int64_t reserved = place__node_mem_reserved (c, n);
  n->mem_excess = s->memory_used_bytes > reserved ? s->memory_used_bytes - reserved : 0;
}

int
place_node_add (place_cluster_t *c, const place_node_spec_t *s, place_node_id_t *out,
                orch_err_t *err)
{
  uint32_t *labels = NULL;
  if (place__node_spec_check (c, s, &labels, err) < 0)
    return -1;
  if (orch_map_get (&c->node_by_name, s->id))
    {
      free (labels);
      return orch_err_set (err, 0, "node %s already exists", s->id);
    }
  if (c->n_nodes_live >= PLACE_MAX_NODES)
    {
      free (labels);
      return orch_err_set (err, 0, "node %s: too many nodes (at most %u)", s->id, PLACE_MAX_NODES);
    }
  uint32_t id;
  if (c->node_free != PLACE__NONE)
    {
      id = c->node_free;
      c->node_free = c->nodes[id].free_next;
    }
  else
    {
      orch_grow ((void **) &c->nodes, &c->cap_nodes, c->n_nodes_slots + 1, sizeof (place__node_t));
      id = (uint32_t) c->n_nodes_slots++;
    }
  place__node_t *n = &c->nodes[id];
  memset (n, 0, sizeof (*n));
  n->name = xstrdup (s->id);
  n->cls = PLACE__NONE;
  n->part = PLACE__NONE;
  n->prev = n->next = PLACE__NONE;
  place__node_apply_spec (c, n, s, labels);
  orch_map_put (&c->node_by_name, s->id, (void *) (uintptr_t) (id + 1));
  c->n_nodes_live++;
  place__index_node (c, id);
  if (out)
    *out = id;
  return 0;
}

int
place_node_update (place_cluster_t *c, place_node_id_t id, const place_node_spec_t *s,
                   orch_err_t *err)
{
  if (!place__node_valid (c, id))
    return orch_err_set (err, 0, "no node with handle %u", id);
  if (!s->id || strcmp (s->id, c->nodes[id].name) != 0)
    return orch_err_set (err, 0, "node %s: the id of a node cannot change", c->nodes[id].name);
  uint32_t *labels = NULL;
  if (place__node_spec_check (c, s, &labels, err) < 0)
    return -1;
  place__node_t *n = &c->nodes[id];
  /* The class may change, and with it the partition: leave the index first. */
  place__unindex_node (c, id);
  place__node_apply_spec (c, n, s, labels);
  place__index_node (c, id);
  return 0;
}

void
place_node_set_state (place_cluster_t *c, place_node_id_t id, bool ready, bool draining)
{
  if (!place__node_valid (c, id))
    return;
  c->nodes[id].ready = ready;
  c->nodes[id].draining = draining;
  place__index_node (c, id);
}

void
place_node_set_usage (place_cluster_t *c, place_node_id_t id, int64_t used)
{
  if (!place__node_valid (c, id))
    return;
  place__node_t *n = &c->nodes[id];
  int64_t reserved = place__node_mem_reserved (c, n);
  n->mem_excess = used > reserved ? used - reserved : 0;
  place__index_node (c, id);
}

void
place_node_set_vmm_overhead (place_cluster_t *c, place_node_id_t id, int64_t bytes)
{
  if (!place__node_valid (c, id) || bytes < 0)
    return;
  c->nodes[id].vmm_overhead = bytes;
  place__index_node (c, id);
}

void
place_node_remove (place_cluster_t *c, place_node_id_t id)
{
  if (!place__node_valid (c, id))
    return;
  for (size_t a = 0; a < c->n_alloc_slots && c->nodes[id].n_allocs > 0; a++)
    if (c->allocs[a].node == id)
      place__alloc_release (c, (uint32_t) a, false);
  place__unindex_node (c, id);
  place__node_t *n = &c->nodes[id];
  c->classes[n->cls].n_nodes--;
  c->sum_cpu_cap -= n->cpu_cap;
  c->sum_mem_cap -= n->mem_cap;
  orch_map_del (&c->node_by_name, n->name);
  free (n->name);
  free (n->labels);
  free (n->tenants);
  memset (n, 0, sizeof (*n));
  n->part = PLACE__NONE;
  n->free_next = c->node_free;
  c->node_free = id;
  c->n_nodes_live--;
}

place_node_id_t
place_node_find (const place_cluster_t *c, const char *name)
{
  void *v = name ? orch_map_get (&c->node_by_name, name) : NULL;
  return v ? (place_node_id_t) ((uintptr_t) v - 1) : PLACE_NODE_NONE;
}

const char *
place_node_name (const place_cluster_t *c, place_node_id_t id)
{
  return place__node_valid (c, id) ? c->nodes[id].name : NULL;
}

size_t
place_node_count (const place_cluster_t *c)
{
  return c->n_nodes_live;
}

int
place_node_info (const place_cluster_t *c, place_node_id_t id, place_node_info_t *out)
{
  if (!place__node_valid (c, id))
    return -1;
  const place__node_t *n = &c->nodes[id];
  memset (out, 0, sizeof (*out));
  out->cpu_milli = n->cpu_cap;
  out->memory_bytes = n->mem_cap;
  out->cpu_reserved = n->cpu_req;
  out->memory_reserved = place__node_mem_reserved (c, n);
  out->memory_effective = out->memory_reserved + n->mem_excess;
  out->n_allocs = n->n_allocs;
  out->n_microvms = n->n_vm;
  uint32_t used = n->ports_other + n->ports_alloc;
  out->host_ports_free = n->ports_total > used ? n->ports_total - used : 0;
  uint32_t t = place__node_kernel_tenant (n);
  out->kernel_tenant = t == PLACE__NONE ? NULL : t == PLACE__MIXED ? "(several)" : c->strs.str[t];
  return 0;
}

static void
place__tenant_add (place__node_t *n, uint32_t tenant, int delta)
{
  for (uint32_t i = 0; i < n->n_tenants; i++)
    if (n->tenants[i].tenant == tenant)
      {
        if (delta > 0)
          n->tenants[i].n++;
        else if (--n->tenants[i].n == 0)
          n->tenants[i] = n->tenants[--n->n_tenants];
        return;
      }
  if (delta < 0)
    return;
  if (n->n_tenants == n->cap_tenants)
    {
      n->cap_tenants = n->cap_tenants ? n->cap_tenants * 2 : 1;
      n->tenants = xrealloc (n->tenants, n->cap_tenants * sizeof (place__tcount_t));
    }
  n->tenants[n->n_tenants++] = (place__tcount_t){ tenant, 1 };
}

uint32_t
place__alloc_commit (place_cluster_t *c, uint32_t node, uint32_t service, uint32_t tenant,
                     orch_isolation_t iso, int64_t cpu, int64_t mem, uint32_t ports)
{
  uint32_t id;
  if (c->alloc_free != PLACE__NONE)
    {
      id = c->alloc_free;
      c->alloc_free = c->allocs[id].free_next;
    }
  else
    {
      orch_grow ((void **) &c->allocs, &c->cap_allocs, c->n_alloc_slots + 1,
                 sizeof (place__alloc_t));
      id = (uint32_t) c->n_alloc_slots++;
      c->allocs[id].free_next = PLACE__NONE;
    }
  place__alloc_t *a = &c->allocs[id];
  /* free_next is left as it was, so that a plan's rollback can restore the
   * free list by restoring its head. */
  a->node = node;
  a->service = service;
  a->tenant = tenant;
  a->isolation = iso;
  a->cpu = cpu;
  a->mem = mem;
  a->ports = ports;
  place__node_t *n = &c->nodes[node];
  n->cpu_req += cpu;
  n->mem_req += mem;
  c->sum_cpu_req += cpu;
  c->sum_mem_req += mem;
  n->ports_alloc += ports;
  n->n_allocs++;
  if (iso == ORCH_ISO_MICROVM)
    n->n_vm++;
  else
    place__tenant_add (n, tenant, +1);
  (*place__u64map_put (&c->svc_count, ((uint64_t) node << 32) | service))++;
  c->n_allocs_live++;
  place__index_node (c, node);
  return id;
}

void
place__alloc_release (place_cluster_t *c, uint32_t id, bool rollback)
{
  place__alloc_t *a = &c->allocs[id];
  place__node_t *n = &c->nodes[a->node];
  n->cpu_req -= a->cpu;
  n->mem_req -= a->mem;
  c->sum_cpu_req -= a->cpu;
  c->sum_mem_req -= a->mem;
  n->ports_alloc -= a->ports;
  n->n_allocs--;
  if (a->isolation == ORCH_ISO_MICROVM)
    n->n_vm--;
  else
    place__tenant_add (n, a->tenant, -1);
  uint64_t key = ((uint64_t) a->node << 32) | a->service;
  uint32_t *cnt = place__u64map_get (&c->svc_count, key);
  if (cnt && --*cnt == 0)
    place__u64map_del (&c->svc_count, key);
  c->n_allocs_live--;
  uint32_t node = a->node;
  a->node = PLACE__NONE;
  /* A rollback restores the free list and the index positions wholesale
   * afterwards (place_engine.c). */
  if (!rollback)
    {
      a->free_next = c->alloc_free;
      c->alloc_free = id;
      place__index_node (c, node);
    }
}

int
place_alloc_add (place_cluster_t *c, const place_alloc_spec_t *s, place_alloc_id_t *out,
                 orch_err_t *err)
{
  if (!s->service || !*s->service || strlen (s->service) > PLACE_MAX_STR)
    return orch_err_set (err, 0, "allocation: service name must be 1..%d bytes", PLACE_MAX_STR);
  if (s->tenant && strlen (s->tenant) > PLACE_MAX_STR)
    return orch_err_set (err, 0, "allocation of %s: tenant name too long", s->service);
  if (!place__node_valid (c, s->node))
    return orch_err_set (err, 0, "allocation of %s: no node with handle %u", s->service, s->node);
  if (s->isolation != ORCH_ISO_CONTAINER && s->isolation != ORCH_ISO_MICROVM)
    return orch_err_set (err, 0, "allocation of %s: isolation must be container or microvm",
                         s->service);
  if (s->cpu_milli < 0 || s->memory_bytes < 0)
    return orch_err_set (err, 0, "allocation of %s: negative resources", s->service);
  if (c->n_allocs_live >= PLACE_MAX_ALLOCS)
    return orch_err_set (err, 0, "allocation of %s: too many allocations", s->service);
  uint32_t svc = place__intern (&c->strs, s->service);
  uint32_t ten = place__intern (&c->strs, s->tenant && *s->tenant ? s->tenant : "default");
  place_alloc_id_t id = place__alloc_commit (c, s->node, svc, ten, s->isolation, s->cpu_milli,
                                             s->memory_bytes, s->host_ports);
  if (out)
    *out = id;
  return 0;
}

void
place_alloc_remove (place_cluster_t *c, place_alloc_id_t id)
{
  if (id >= c->n_alloc_slots || c->allocs[id].node == PLACE__NONE)
    return;
  place__alloc_release (c, id, false);
}

size_t
place_alloc_count (const place_cluster_t *c)
{
  return c->n_allocs_live;
}
