/* The placement pipeline: resolve a workload, find candidates through the
 * free-capacity index, check each with the feasibility chain, rank, pick,
 * commit; on failure, one full pass over the nodes counts every rejection
 * by reason (and catches anything the index's scan limits skipped, so the
 * engine never reports "no room" when a node fits). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orch_util.h"
#include "place_internal.h"

#define PLACE__MAX_CONSTRAINTS 64
#define PLACE__MAX_VALUES 256
/* Nodes examined per bucket before moving to the next one: a bucket on the
 * boundary of a workload's size may hold many nodes just too small. */
#define PLACE__SCAN_CAP 32
/* Spread looks at this many feasible nodes (most free first), and at most
 * SPREAD_BUDGET nodes in all. */
#define PLACE__SPREAD_FEASIBLE 16
#define PLACE__SPREAD_BUDGET 1024
#define PLACE__OPEN_SCAN 4
#define PLACE__FAIL_CACHE 32
#define PLACE__CLASS_CACHE 16

typedef struct place__rc_s
{
  bool node_id; /* attribute node.id, else a label */
  orch_constraint_op_t op;
  uint32_t key;           /* label key id, PLACE__NONE if no node has it */
  uint32_t *vals;         /* value ids (PLACE__NONE = no node has it) */
  const char *const *raw; /* the values as given (node.id compares these) */
  size_t n_vals;
  const orch_constraint_t *src;
} place__rc_t;

typedef struct place__cc_s /* class-eligibility cache entry */
{
  const orch_constraint_t *key;
  size_t n;
  uint64_t *ok; /* bit per class: label constraints hold */
  size_t n_classes;
} place__cc_t;

typedef struct place__fc_s /* failure cache entry */
{
  int64_t cpu, mem;
  uint32_t ports, tenant;
  orch_isolation_t iso;
  bool untrusted;
  const orch_constraint_t *cons;
  size_t n_cons;
  size_t result; /* input index of the result to copy */
} place__fc_t;

typedef struct place__ctx_s
{
  place_cluster_t *c;
  double ref_cpu, ref_mem;
  bool mem_scarce; /* memory demand is the larger share of its capacity */
  place__rc_t rc[PLACE__MAX_CONSTRAINTS];
  uint32_t val_buf[PLACE__MAX_CONSTRAINTS * 4];
  size_t n_rc;
  bool has_node_pin; /* a node.id = / in constraint: look only at those nodes */
  const uint64_t *class_ok;
  place__cc_t cc[PLACE__CLASS_CACHE];
  size_t cc_next;
  place__fc_t fc[PLACE__FAIL_CACHE];
  size_t n_fc, fc_next;
  uint32_t *parts; /* scratch: partitions to search */
  size_t n_parts, cap_parts;
  /* the workload being placed */
  const place_workload_t *w;
  uint32_t service, tenant;
  bool spread;
  uint32_t constraint_fail[PLACE__MAX_CONSTRAINTS];
  /* allocations committed by a plan, to roll back */
  bool plan;
  uint32_t *committed;
  size_t n_committed, cap_committed;
} place__ctx_t;

typedef struct place__cand_s
{
  uint32_t node;
  bool opens;    /* bin-pack: the node has no allocation yet */
  double score;  /* bin-pack: leftover, or for an empty node minus its size (lower is better) */
  uint32_t same; /* spread: replicas of the service already there */
  double util;   /* spread: utilisation after placement */
} place__cand_t;

static const char *const place__reject_names[PLACE_REJ__MAX] = {
  [PLACE_REJ_NOT_READY] = "not ready",
  [PLACE_REJ_DRAINING] = "draining",
  [PLACE_REJ_NO_BACKEND] = "no backend",
  [PLACE_REJ_TENANT] = "kernel shared with another tenant",
  [PLACE_REJ_CONSTRAINT] = "not matching constraints",
  [PLACE_REJ_PORTS] = "no free host ports",
  [PLACE_REJ_CPU] = "insufficient cpu",
  [PLACE_REJ_MEMORY] = "insufficient memory",
};

const char *
place_reject_name (place_reject_t r)
{
  return r < PLACE_REJ__MAX ? place__reject_names[r] : "unknown";
}

void
place_workload_from_spec (const orch_spec_t *s, place_workload_t *w)
{
  memset (w, 0, sizeof (*w));
  w->service = s->name;
  w->tenant = s->tenant;
  w->cpu_milli = s->cpu_milli;
  w->memory_bytes = s->memory_bytes;
  w->isolation = s->isolation;
  w->untrusted = s->untrusted;
  w->constraints = s->constraints;
  w->n_constraints = s->n_constraints;
  w->spread = s->spread;
  /* Every published port takes a host port, on the bridge (published on
   * the node's address) and on the host network alike. */
  w->host_ports = (uint32_t) s->n_ports;
}

/* ---- resolving a workload ---- */

static const char *
place__op_name (orch_constraint_op_t op)
{
  switch (op)
    {
    case ORCH_OP_EQ:
      return "=";
    case ORCH_OP_NE:
      return "!=";
    case ORCH_OP_IN:
      return "in";
    case ORCH_OP_NOT_IN:
      return "not_in";
    case ORCH_OP_EXISTS:
      return "exists";
    }
  return "?";
}

/* Returns NULL when valid, else the text of the problem (in buf). */
static const char *
place__resolve (place__ctx_t *x, const place_workload_t *w, char *buf, size_t len)
{
  place_cluster_t *c = x->c;
  if (!w->service || !*w->service || strlen (w->service) > PLACE_MAX_STR)
    return "service name must be 1..253 bytes";
  if (w->tenant && strlen (w->tenant) > PLACE_MAX_STR)
    return "tenant name too long";
  if (w->cpu_milli <= 0)
    return "cpu must be > 0";
  if (w->memory_bytes <= 0)
    return "memory must be > 0";
  if (w->isolation != ORCH_ISO_CONTAINER && w->isolation != ORCH_ISO_MICROVM
      && w->isolation != ORCH_ISO_AUTO)
    return "unknown isolation";
  if (w->n_constraints > PLACE__MAX_CONSTRAINTS)
    return "too many constraints (at most 64)";
  size_t nv = 0;
  x->has_node_pin = false;
  for (size_t i = 0; i < w->n_constraints; i++)
    {
      const orch_constraint_t *k = &w->constraints[i];
      place__rc_t *r = &x->rc[i];
      memset (r, 0, sizeof (*r));
      r->src = k;
      r->op = k->op;
      if (k->op > ORCH_OP_EXISTS)
        return "unknown constraint operator";
      if (!k->attribute)
        return "constraint without attribute";
      if (k->op != ORCH_OP_EXISTS && (k->n_values == 0 || !k->values))
        {
          snprintf (buf, len, "constraint %s %s needs a value", k->attribute,
                    place__op_name (k->op));
          return buf;
        }
      if ((k->op == ORCH_OP_EQ || k->op == ORCH_OP_NE) && k->n_values != 1)
        {
          snprintf (buf, len, "constraint %s %s takes one value", k->attribute,
                    place__op_name (k->op));
          return buf;
        }
      if (k->n_values > PLACE__MAX_VALUES)
        return "constraint with too many values (at most 256)";
      r->n_vals = k->op == ORCH_OP_EXISTS ? 0 : k->n_values;
      r->raw = (const char *const *) k->values;
      if (strcmp (k->attribute, "node.id") == 0)
        {
          r->node_id = true;
          if (k->op == ORCH_OP_EQ || k->op == ORCH_OP_IN)
            x->has_node_pin = true;
          continue;
        }
      if (strncmp (k->attribute, "label.", 6) != 0 || k->attribute[6] == '\0')
        {
          snprintf (buf, len, "constraint attribute %.200s: use label.<key> or node.id",
                    k->attribute);
          return buf;
        }
      r->key = place__lookup (&c->strs, k->attribute + 6);
      if (nv + r->n_vals > ORCH_ARRAY_LEN (x->val_buf))
        return "constraints with too many values in all";
      r->vals = &x->val_buf[nv];
      for (size_t j = 0; j < r->n_vals; j++)
        r->vals[j] = k->values[j] ? place__lookup (&c->strs, k->values[j]) : PLACE__NONE;
      nv += r->n_vals;
    }
  x->n_rc = w->n_constraints;
  return NULL;
}

static uint32_t
place__label_of (const uint32_t *labels, uint32_t n, uint32_t key)
{
  uint32_t lo = 0, hi = n;
  while (lo < hi)
    {
      uint32_t mid = (lo + hi) / 2;
      if (labels[2 * mid] < key)
        lo = mid + 1;
      else
        hi = mid;
    }
  return lo < n && labels[2 * lo] == key ? labels[2 * lo + 1] : PLACE__NONE;
}

/* A missing label fails =, in and exists, and satisfies != and not_in (as
 * Kubernetes' NotIn does). Returns the index of the first failing label
 * constraint, or -1. */
static int
place__class_fails (const place__ctx_t *x, const place__class_t *k)
{
  for (size_t i = 0; i < x->n_rc; i++)
    {
      const place__rc_t *r = &x->rc[i];
      if (r->node_id)
        continue;
      uint32_t v
          = r->key == PLACE__NONE ? PLACE__NONE : place__label_of (k->labels, k->n_labels, r->key);
      bool has = v != PLACE__NONE, in = false;
      for (size_t j = 0; j < r->n_vals && has; j++)
        if (r->vals[j] == v)
          in = true;
      bool ok;
      switch (r->op)
        {
        case ORCH_OP_EQ:
        case ORCH_OP_IN:
          ok = in;
          break;
        case ORCH_OP_NE:
        case ORCH_OP_NOT_IN:
          ok = !in;
          break;
        default:
          ok = has;
          break;
        }
      if (!ok)
        return (int) i;
    }
  return -1;
}

static int
place__node_id_fails (const place__ctx_t *x, const place__node_t *n)
{
  for (size_t i = 0; i < x->n_rc; i++)
    {
      const place__rc_t *r = &x->rc[i];
      if (!r->node_id)
        continue;
      bool in = false;
      for (size_t j = 0; j < r->n_vals; j++)
        if (r->raw[j] && strcmp (r->raw[j], n->name) == 0)
          in = true;
      bool ok = (r->op == ORCH_OP_EQ || r->op == ORCH_OP_IN) ? in
                : (r->op == ORCH_OP_EXISTS)                  ? true
                                                             : !in;
      if (!ok)
        return (int) i;
    }
  return -1;
}

/* The label constraints' verdict per class, cached by the constraint array
 * (replicas of one service share it). */
static void
place__class_verdicts (place__ctx_t *x, const place_workload_t *w)
{
  place_cluster_t *c = x->c;
  for (size_t i = 0; i < PLACE__CLASS_CACHE; i++)
    {
      place__cc_t *e = &x->cc[i];
      if (e->ok && e->key == w->constraints && e->n == w->n_constraints
          && e->n_classes == c->n_classes)
        {
          x->class_ok = e->ok;
          return;
        }
    }
  place__cc_t *e = &x->cc[x->cc_next];
  x->cc_next = (x->cc_next + 1) % PLACE__CLASS_CACHE;
  free (e->ok);
  e->key = w->constraints;
  e->n = w->n_constraints;
  e->n_classes = c->n_classes;
  e->ok = xcalloc ((c->n_classes + 63) / 64 + 1, sizeof (uint64_t));
  for (size_t k = 0; k < c->n_classes; k++)
    if (place__class_fails (x, &c->classes[k]) < 0)
      e->ok[k / 64] |= 1ULL << (k % 64);
  x->class_ok = e->ok;
}

static inline bool
place__class_ok (const place__ctx_t *x, uint32_t cls)
{
  return (x->class_ok[cls / 64] >> (cls % 64)) & 1;
}

/* ---- feasibility ---- */

/* The chain, cheapest first. Returns PLACE_REJ__MAX when the node fits.
 * *cfail receives the failing constraint's index for PLACE_REJ_CONSTRAINT. */
static place_reject_t
place__check (const place__ctx_t *x, const place__node_t *n, orch_isolation_t iso, int *cfail)
{
  const place_cluster_t *c = x->c;
  const place_workload_t *w = x->w;
  if (!n->ready)
    return PLACE_REJ_NOT_READY;
  if (n->draining)
    return PLACE_REJ_DRAINING;
  if (!(n->runtimes & (iso == ORCH_ISO_MICROVM ? PLACE_RT_MICROVM : PLACE_RT_CONTAINER)))
    return PLACE_REJ_NO_BACKEND;
  if (iso == ORCH_ISO_CONTAINER)
    {
      uint32_t kt = place__node_kernel_tenant (n);
      if (kt != PLACE__NONE && kt != x->tenant)
        return PLACE_REJ_TENANT;
    }
  if (x->n_rc)
    {
      int f = -1;
      if (!place__class_ok (x, n->cls))
        f = place__class_fails (x, &c->classes[n->cls]);
      if (f < 0)
        f = place__node_id_fails (x, n);
      if (f >= 0)
        {
          if (cfail)
            *cfail = f;
          return PLACE_REJ_CONSTRAINT;
        }
    }
  if (w->host_ports && (uint64_t) n->ports_other + n->ports_alloc + w->host_ports > n->ports_total)
    return PLACE_REJ_PORTS;
  if (place__node_free_cpu (n) < w->cpu_milli)
    return PLACE_REJ_CPU;
  int64_t need = w->memory_bytes + (iso == ORCH_ISO_MICROVM ? place__node_overhead (c, n) : 0);
  if (place__node_free_mem (c, n) < need)
    return PLACE_REJ_MEMORY;
  return PLACE_REJ__MAX;
}

/* ---- ranking ---- */

/* Bin-pack score of a node in use: what is left on it after the request,
 * as a vector (cpu, memory) in units of the cluster's demand mix, and its
 * length. Lower is a tighter fit.
 *
 * Why not Nomad's BestFit or Kubernetes' MostAllocated: they score each
 * node by its own utilisation fractions, so a small empty node that the
 * workload nearly fills beats a big node already half full, and every
 * placement may open another node; nor do they look at the shape of what
 * is left. Here (1) a node in use always beats an empty one (an empty node
 * is opened only when no node in use fits; see place__open_score), (2)
 * leftovers are absolute, so nodes of any size compare fairly, (3) the
 * units are the demand mix (requests of all allocations plus the batch):
 * when most workloads want 4 MiB per millicore, a leftover of 1 core and
 * 4 GiB is balanced and usable, 4 cores and 1 GiB is not; and the length
 * (L2) of the leftover vector prefers balanced leftovers to lopsided ones
 * of the same sum. The VMM overhead is not counted, so that a microVM is
 * never preferred merely for wasting more. */
static inline double
place__leftover (const place__ctx_t *x, const place__node_t *n)
{
  double lc = (double) (place__node_free_cpu (n) - x->w->cpu_milli) / x->ref_cpu;
  double lm = (double) (place__node_free_mem (x->c, n) - x->w->memory_bytes) / x->ref_mem;
  return sqrt (lc * lc + lm * lm);
}

/* An empty node to open: the one with the most usable capacity in units of
 * the demand mix (the smaller of its cpu and memory in those units), less
 * what it would strand of the cluster's scarce dimension (the one whose
 * demand is the larger share of its capacity), then the one that strands
 * less of the other. So few nodes carry the load, the scarce resource on
 * them gets used, and the rest stay empty (room for big workloads, or to
 * be scaled down). Negated: lower is better. */
static inline double
place__open_score (const place__ctx_t *x, const place__node_t *n)
{
  double cc = (double) n->cpu_cap / x->ref_cpu, cm = (double) n->mem_cap / x->ref_mem;
  double lo = cc < cm ? cc : cm;
  double strand_c = cc - lo, strand_m = cm - lo;
  double scarce = x->mem_scarce ? strand_m : strand_c, other = x->mem_scarce ? strand_c : strand_m;
  return -lo + scarce + 1e-3 * other;
}

static double
place__util_after (const place__ctx_t *x, const place__node_t *n, orch_isolation_t iso)
{
  const place_cluster_t *c = x->c;
  double cu = n->cpu_cap > 0 ? (double) (n->cpu_req + x->w->cpu_milli) / (double) n->cpu_cap : 1;
  int64_t m = n->mem_cap - place__node_free_mem (c, n) + x->w->memory_bytes
              + (iso == ORCH_ISO_MICROVM ? place__node_overhead (c, n) : 0);
  double mu = n->mem_cap > 0 ? (double) m / (double) n->mem_cap : 1;
  return cu > mu ? cu : mu;
}

static uint32_t
place__same_service (const place__ctx_t *x, uint32_t node)
{
  const uint32_t *v = place__u64map_get (&x->c->svc_count, ((uint64_t) node << 32) | x->service);
  return v ? *v : 0;
}

static bool
place__better (const place__ctx_t *x, const place__cand_t *a, const place__cand_t *b)
{
  if (b->node == PLACE__NONE)
    return true;
  if (x->spread)
    {
      if (a->same != b->same)
        return a->same < b->same;
      if (a->util != b->util)
        return a->util < b->util;
      return a->node < b->node;
    }
  if (a->opens != b->opens)
    return !a->opens;
  if (a->score != b->score)
    return a->score < b->score;
  return a->node < b->node;
}

/* Checks one node and keeps it if it beats *best; true if it was feasible. */
static bool
place__consider (place__ctx_t *x, uint32_t ni, orch_isolation_t iso, place__cand_t *best)
{
  const place__node_t *n = &x->c->nodes[ni];
  if (place__check (x, n, iso, NULL) != PLACE_REJ__MAX)
    return false;
  place__cand_t cand = { .node = ni, .opens = n->n_allocs == 0 };
  cand.score = cand.opens ? place__open_score (x, n) : place__leftover (x, n);
  if (x->spread)
    {
      cand.same = place__same_service (x, ni);
      cand.util = place__util_after (x, n, iso);
    }
  if (place__better (x, &cand, best))
    *best = cand;
  return true;
}

/* The partitions a workload may use: classes whose labels satisfy its
 * constraints and that offer the runtime; for a container only the
 * kernel-free partitions and its own tenant's. which: 0 all, 1 nodes in
 * use, 2 empty nodes. */
static void
place__collect_parts (place__ctx_t *x, orch_isolation_t iso, int which)
{
  place_cluster_t *c = x->c;
  x->n_parts = 0;
  unsigned rt = iso == ORCH_ISO_MICROVM ? PLACE_RT_MICROVM : PLACE_RT_CONTAINER;
  for (uint32_t k = 0; k < c->n_classes; k++)
    {
      place__class_t *cl = &c->classes[k];
      if (cl->n_nodes == 0 || !(cl->runtimes & rt) || (x->n_rc && !place__class_ok (x, k)))
        continue;
      for (uint32_t i = 0; i < cl->n_parts; i++)
        {
          uint32_t pid = cl->parts[i];
          place__part_t *p = c->parts[pid];
          if (p->n_nodes == 0 || (which == 1 && p->tenant == PLACE__EMPTY)
              || (which == 2 && p->tenant != PLACE__EMPTY))
            continue;
          if (iso == ORCH_ISO_CONTAINER && p->tenant != PLACE__NONE && p->tenant != PLACE__EMPTY
              && p->tenant != x->tenant)
            continue;
          orch_grow ((void **) &x->parts, &x->cap_parts, x->n_parts + 1, sizeof (uint32_t));
          x->parts[x->n_parts++] = pid;
        }
    }
}

static inline int
place__mask_next (const place__mask_t *m, unsigned from)
{
  for (unsigned wi = from >> 6; wi < 2; wi++)
    {
      uint64_t bits = m->w[wi];
      if (wi == from >> 6)
        bits &= ~0ULL << (from & 63);
      if (bits)
        return (int) (wi * 64 + (unsigned) __builtin_ctzll (bits));
    }
  return -1;
}

static inline int
place__mask_prev (const place__mask_t *m, int from)
{
  for (int wi = from >> 6; wi >= 0; wi--)
    {
      uint64_t bits = m->w[wi];
      if (wi == from >> 6 && (from & 63) != 63)
        bits &= (1ULL << ((from & 63) + 1)) - 1;
      if (bits)
        return wi * 64 + 63 - __builtin_clzll (bits);
    }
  return -1;
}

/* Best fit by branch and bound over the buckets: a bucket's lower corner
 * bounds the leftover of every node in it, so buckets are scanned only
 * while they could still hold something better than the best so far. */
static void
place__search_binpack (place__ctx_t *x, orch_isolation_t iso, place__cand_t *best)
{
  place_cluster_t *c = x->c;
  const place_workload_t *w = x->w;
  unsigned bc = place__bucket (w->cpu_milli);
  unsigned bm = place__bucket (w->memory_bytes >> 10);
  place__mask_t rows = { { 0, 0 } };
  for (size_t i = 0; i < x->n_parts; i++)
    {
      rows.w[0] |= c->parts[x->parts[i]]->rows.w[0];
      rows.w[1] |= c->parts[x->parts[i]]->rows.w[1];
    }
  for (int row = place__mask_next (&rows, bc); row >= 0;
       row = place__mask_next (&rows, (unsigned) row + 1))
    {
      double est_c = (double) (place__bucket_lo ((unsigned) row) - w->cpu_milli) / x->ref_cpu;
      if (est_c < 0)
        est_c = 0;
      if (best->node != PLACE__NONE && est_c > best->score)
        break;
      for (size_t pi = 0; pi < x->n_parts; pi++)
        {
          place__part_t *p = c->parts[x->parts[pi]];
          if (!p->heads[row])
            continue;
          for (int col = place__mask_next (&p->cols[row], bm); col >= 0;
               col = place__mask_next (&p->cols[row], (unsigned) col + 1))
            {
              double est_m = (double) ((place__bucket_lo ((unsigned) col) << 10) - w->memory_bytes)
                             / x->ref_mem;
              if (est_m < 0)
                est_m = 0;
              if (best->node != PLACE__NONE && sqrt (est_c * est_c + est_m * est_m) > best->score)
                break;
              unsigned seen = 0;
              for (uint32_t ni = p->heads[row][col]; ni != PLACE__NONE && seen < PLACE__SCAN_CAP;
                   ni = c->nodes[ni].next, seen++)
                place__consider (x, ni, iso, best);
            }
        }
    }
}

/* Opening a node: every non-empty bucket of the empty partitions that can
 * fit the workload, a few nodes from each (nodes in one bucket are of one
 * size, give or take a quarter). */
static void
place__search_open (place__ctx_t *x, orch_isolation_t iso, place__cand_t *best)
{
  place_cluster_t *c = x->c;
  unsigned bc = place__bucket (x->w->cpu_milli);
  unsigned bm = place__bucket (x->w->memory_bytes >> 10);
  for (size_t pi = 0; pi < x->n_parts; pi++)
    {
      place__part_t *p = c->parts[x->parts[pi]];
      for (int row = place__mask_next (&p->rows, bc); row >= 0;
           row = place__mask_next (&p->rows, (unsigned) row + 1))
        for (int col = place__mask_next (&p->cols[row], bm); col >= 0;
             col = place__mask_next (&p->cols[row], (unsigned) col + 1))
          {
            unsigned seen = 0;
            for (uint32_t ni = p->heads[row][col]; ni != PLACE__NONE && seen < PLACE__OPEN_SCAN;
                 ni = c->nodes[ni].next, seen++)
              place__consider (x, ni, iso, best);
          }
    }
}

/* Spread: most free first, the fewest replicas of the service, then the
 * lowest utilisation after placement. */
static void
place__search_spread (place__ctx_t *x, orch_isolation_t iso, place__cand_t *best)
{
  place_cluster_t *c = x->c;
  const place_workload_t *w = x->w;
  unsigned bc = place__bucket (w->cpu_milli);
  unsigned bm = place__bucket (w->memory_bytes >> 10);
  place__mask_t rows = { { 0, 0 } };
  for (size_t i = 0; i < x->n_parts; i++)
    {
      rows.w[0] |= c->parts[x->parts[i]]->rows.w[0];
      rows.w[1] |= c->parts[x->parts[i]]->rows.w[1];
    }
  unsigned feasible = 0, budget = 0;
  for (int row = place__mask_prev (&rows, PLACE__G - 1); row >= (int) bc;
       row = row > 0 ? place__mask_prev (&rows, row - 1) : -1)
    {
      for (size_t pi = 0; pi < x->n_parts; pi++)
        {
          place__part_t *p = c->parts[x->parts[pi]];
          if (!p->heads[row])
            continue;
          for (int col = place__mask_prev (&p->cols[row], PLACE__G - 1); col >= (int) bm;
               col = col > 0 ? place__mask_prev (&p->cols[row], col - 1) : -1)
            for (uint32_t ni = p->heads[row][col]; ni != PLACE__NONE; ni = c->nodes[ni].next)
              {
                if (place__consider (x, ni, iso, best))
                  feasible++;
                if (++budget >= PLACE__SPREAD_BUDGET
                    || (feasible >= PLACE__SPREAD_FEASIBLE && best->same == 0))
                  return;
              }
        }
    }
}

static void
place__search (place__ctx_t *x, orch_isolation_t iso, place__cand_t *best)
{
  best->node = PLACE__NONE;
  if (x->has_node_pin)
    {
      /* Pinned to named nodes: look at exactly those. */
      for (size_t i = 0; i < x->n_rc; i++)
        {
          const place__rc_t *r = &x->rc[i];
          if (!r->node_id || (r->op != ORCH_OP_EQ && r->op != ORCH_OP_IN))
            continue;
          for (size_t j = 0; j < r->n_vals; j++)
            {
              place_node_id_t ni = place_node_find (x->c, r->raw[j]);
              if (ni != PLACE_NODE_NONE)
                place__consider (x, ni, iso, best);
            }
          return;
        }
    }
  if (x->spread)
    {
      place__collect_parts (x, iso, 0);
      place__search_spread (x, iso, best);
      return;
    }
  place__collect_parts (x, iso, 1);
  place__search_binpack (x, iso, best);
  if (best->node == PLACE__NONE)
    {
      place__collect_parts (x, iso, 2);
      place__search_open (x, iso, best);
    }
}

/* ---- results ---- */

static void
place__fail_text (place__ctx_t *x, place_result_t *r, orch_isolation_t iso)
{
  /* Reasons by count, most first; constraints listed one by one. */
  char *p = r->reason;
  size_t left = sizeof (r->reason);
  int k = snprintf (p, left, "0/%u nodes", r->n_nodes);
  p += k;
  left -= (size_t) k;
  const char *sep = ": ";
  bool done[PLACE_REJ__MAX] = { false };
  for (;;)
    {
      int pick = -1;
      for (int i = 0; i < PLACE_REJ__MAX; i++)
        if (!done[i] && r->rejected[i] && (pick < 0 || r->rejected[i] > r->rejected[pick]))
          pick = i;
      if (pick < 0 || left < 2)
        break;
      done[pick] = true;
      if (pick == PLACE_REJ_CONSTRAINT)
        {
          for (size_t ci = 0; ci < x->n_rc && left > 1; ci++)
            {
              if (!x->constraint_fail[ci])
                continue;
              const orch_constraint_t *src = x->rc[ci].src;
              k = snprintf (p, left, "%s%u not matching %s %s", sep, x->constraint_fail[ci],
                            src->attribute, place__op_name (src->op));
              if (k < 0 || (size_t) k >= left)
                break;
              p += k;
              left -= (size_t) k;
              for (size_t j = 0; j < x->rc[ci].n_vals && left > 1; j++)
                {
                  k = snprintf (p, left, "%s%s", j ? "," : " ",
                                x->rc[ci].raw[j] ? x->rc[ci].raw[j] : "");
                  if (k < 0 || (size_t) k >= left)
                    break;
                  p += k;
                  left -= (size_t) k;
                }
              sep = ", ";
            }
          continue;
        }
      const char *name = place__reject_names[pick];
      if (pick == PLACE_REJ_NO_BACKEND)
        name = iso == ORCH_ISO_MICROVM     ? "no microvm backend"
               : iso == ORCH_ISO_CONTAINER ? "no container backend"
                                           : "no container or microvm backend";
      k = snprintf (p, left, "%s%u %s", sep, r->rejected[pick], name);
      if (k < 0 || (size_t) k >= left)
        break;
      p += k;
      left -= (size_t) k;
      sep = ", ";
    }
  if (r->n_nodes == 0)
    snprintf (r->reason, sizeof (r->reason), "0/0 nodes: no nodes in the cluster");
}

/* One pass over every node: counts each rejection and returns the best
 * feasible node if the index's scan limits passed one over. */
static void
place__full_scan (place__ctx_t *x, place_result_t *r, orch_isolation_t *iso_io, place__cand_t *best)
{
  place_cluster_t *c = x->c;
  orch_isolation_t iso = *iso_io;
  place__cand_t bc = { .node = PLACE__NONE }, bv = { .node = PLACE__NONE };
  memset (r->rejected, 0, sizeof (r->rejected));
  memset (x->constraint_fail, 0, sizeof (x->constraint_fail));
  r->n_nodes = (uint32_t) c->n_nodes_live;
  bool auto_ct = iso == ORCH_ISO_AUTO && !x->w->untrusted;
  for (uint32_t ni = 0; ni < c->n_nodes_slots; ni++)
    {
      place__node_t *n = &c->nodes[ni];
      if (!n->name)
        continue;
      int cf = -1;
      place_reject_t why;
      if (iso == ORCH_ISO_CONTAINER || auto_ct)
        {
          why = place__check (x, n, ORCH_ISO_CONTAINER, &cf);
          if (why == PLACE_REJ__MAX)
            {
              place__consider (x, ni, ORCH_ISO_CONTAINER, &bc);
              continue;
            }
          if (!auto_ct || (why != PLACE_REJ_TENANT && why != PLACE_REJ_NO_BACKEND))
            goto rejected;
        }
      cf = -1;
      why = place__check (x, n, ORCH_ISO_MICROVM, &cf);
      if (why == PLACE_REJ__MAX)
        {
          place__consider (x, ni, ORCH_ISO_MICROVM, &bv);
          continue;
        }
    rejected:
      r->rejected[why]++;
      if (why == PLACE_REJ_CONSTRAINT && cf >= 0)
        x->constraint_fail[cf]++;
    }
  if (bc.node != PLACE__NONE && (bv.node == PLACE__NONE || !place__better (x, &bv, &bc)))
    {
      *best = bc;
      *iso_io = ORCH_ISO_CONTAINER;
    }
  else if (bv.node != PLACE__NONE)
    {
      *best = bv;
      *iso_io = ORCH_ISO_MICROVM;
    }
  else
    best->node = PLACE__NONE;
}

static void
place__success_text (place__ctx_t *x, place_result_t *r, const char *why_iso)
{
  const place__node_t *n = &x->c->nodes[r->node];
  double cu = n->cpu_cap > 0 ? 100.0 * (double) n->cpu_req / (double) n->cpu_cap : 100;
  double mu = n->mem_cap > 0 ? 100.0 * (double) (n->mem_cap - place__node_free_mem (x->c, n))
                                   / (double) n->mem_cap
                             : 100;
  if (x->spread)
    {
      uint32_t same = place__same_service (x, r->node);
      snprintf (r->reason, sizeof (r->reason),
                "%s%sspread: %u replica%s of %s on %s, cpu %.0f%%, mem %.0f%% after placement",
                why_iso ? why_iso : "", why_iso ? "; " : "", same, same == 1 ? "" : "s",
                x->w->service, n->name, cu, mu);
    }
  else
    snprintf (r->reason, sizeof (r->reason), "%s%sbest fit: cpu %.0f%%, mem %.0f%% after placement",
              why_iso ? why_iso : "", why_iso ? "; " : "", cu, mu);
}

/* Commits x->w on node as iso and fills the result. For an auto workload
 * placed as a microVM, says why a container was not the answer there. */
static void
place__commit (place__ctx_t *x, place_result_t *r, uint32_t node, orch_isolation_t iso,
               const char *why)
{
  place_cluster_t *c = x->c;
  const place_workload_t *w = x->w;
  char why_iso[256];
  if (w->isolation == ORCH_ISO_AUTO && !w->untrusted && iso == ORCH_ISO_MICROVM)
    {
      const place__node_t *n = &c->nodes[node];
      place_reject_t rc = place__check (x, n, ORCH_ISO_CONTAINER, NULL);
      uint32_t kt = place__node_kernel_tenant (n);
      if (rc == PLACE_REJ_TENANT)
        snprintf (why_iso, sizeof (why_iso),
                  "microvm: tenant %.40s would share node %.60s's kernel with %s%.40s",
                  c->strs.str[x->tenant], n->name, kt == PLACE__MIXED ? "" : "tenant ",
                  kt == PLACE__MIXED ? "several tenants" : c->strs.str[kt]);
      else if (rc == PLACE_REJ_NO_BACKEND)
        snprintf (why_iso, sizeof (why_iso), "microvm: node %.60s has no container backend",
                  n->name);
      else
        snprintf (why_iso, sizeof (why_iso),
                  "microvm: packs better on %.60s than a container elsewhere", n->name);
      why = why_iso;
    }
  uint32_t a = place__alloc_commit (c, node, x->service, x->tenant, iso, w->cpu_milli,
                                    w->memory_bytes, w->host_ports);
  if (x->plan)
    {
      orch_grow ((void **) &x->committed, &x->cap_committed, x->n_committed + 1, sizeof (uint32_t));
      x->committed[x->n_committed++] = a;
    }
  r->node = node;
  r->alloc = x->plan ? PLACE_ALLOC_NONE : a;
  r->isolation = iso;
  place__success_text (x, r, why);
}

static place__fc_t *
place__fail_cached (place__ctx_t *x, const place_workload_t *w)
{
  for (size_t i = 0; i < x->n_fc; i++)
    {
      place__fc_t *f = &x->fc[i];
      if (f->cpu == w->cpu_milli && f->mem == w->memory_bytes && f->ports == w->host_ports
          && f->tenant == x->tenant && f->iso == w->isolation && f->untrusted == w->untrusted
          && f->cons == w->constraints && f->n_cons == w->n_constraints)
        return f;
    }
  return NULL;
}

static void
place__one (place__ctx_t *x, const place_workload_t *w, size_t idx, place_result_t *results)
{
  place_cluster_t *c = x->c;
  place_result_t *r = &results[idx];
  char buf[256];
  memset (r, 0, sizeof (*r));
  r->node = PLACE_NODE_NONE;
  r->alloc = PLACE_ALLOC_NONE;
  r->isolation = w->isolation;
  r->n_nodes = (uint32_t) c->n_nodes_live;
  x->w = w;
  const char *bad = place__resolve (x, w, buf, sizeof (buf));
  if (bad)
    {
      snprintf (r->reason, sizeof (r->reason), "invalid workload: %s", bad);
      return;
    }
  x->service = place__intern (&c->strs, w->service);
  x->tenant = place__intern (&c->strs, w->tenant && *w->tenant ? w->tenant : "default");
  x->spread = w->spread || c->cfg.spread;
  if (x->n_rc)
    place__class_verdicts (x, w);

  /* Identical workloads that failed earlier in this batch fail again: the
   * batch only adds load. */
  place__fc_t *fc = place__fail_cached (x, w);
  if (fc)
    {
      *r = results[fc->result];
      return;
    }

  place__cand_t best = { .node = PLACE__NONE };
  orch_isolation_t iso = w->isolation;
  const char *why = NULL;
  if (iso == ORCH_ISO_AUTO)
    {
      if (w->untrusted)
        {
          iso = ORCH_ISO_MICROVM;
          place__search (x, iso, &best);
          why = "microvm: untrusted";
        }
      else
        {
          place__cand_t bc, bv;
          place__search (x, ORCH_ISO_CONTAINER, &bc);
          place__search (x, ORCH_ISO_MICROVM, &bv);
          if (bc.node != PLACE__NONE && (bv.node == PLACE__NONE || !place__better (x, &bv, &bc)))
            {
              best = bc;
              iso = ORCH_ISO_CONTAINER;
              why = "container";
            }
          else if (bv.node != PLACE__NONE)
            {
              best = bv;
              iso = ORCH_ISO_MICROVM;
            }
        }
    }
  else
    place__search (x, iso, &best);

  if (best.node == PLACE__NONE)
    {
      orch_isolation_t fiso
          = w->isolation == ORCH_ISO_AUTO && w->untrusted ? ORCH_ISO_MICROVM : w->isolation;
      place__full_scan (x, r, &fiso, &best);
      if (best.node == PLACE__NONE)
        {
          place__fail_text (x, r, fiso);
          if (x->n_fc < PLACE__FAIL_CACHE)
            x->n_fc++;
          place__fc_t *f = &x->fc[x->fc_next];
          x->fc_next = (x->fc_next + 1) % PLACE__FAIL_CACHE;
          *f = (place__fc_t){ .cpu = w->cpu_milli,
                              .mem = w->memory_bytes,
                              .ports = w->host_ports,
                              .tenant = x->tenant,
                              .iso = w->isolation,
                              .untrusted = w->untrusted,
                              .cons = w->constraints,
                              .n_cons = w->n_constraints,
                              .result = idx };
          return;
        }
      iso = fiso;
      if (w->isolation == ORCH_ISO_AUTO && !w->untrusted)
        why = iso == ORCH_ISO_CONTAINER ? "container" : NULL;
      memset (r->rejected, 0, sizeof (r->rejected));
    }

  place__commit (x, r, best.node, iso, why);
}

typedef struct place__ord_s
{
  double size;
  size_t idx;
} place__ord_t;

static int
place__cmp_ord (const void *a, const void *b)
{
  const place__ord_t *x = a, *y = b;
  if (x->size != y->size)
    return x->size > y->size ? -1 : 1;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Units for comparing cpu with memory: the demand mix (all allocations plus
 * this batch), scaled to the mean node; the capacity mix when there is no
 * demand yet. The mix is kept within 8x of the capacity mix either way so
 * that one odd batch cannot make a dimension meaningless. */
static void
place__set_units (place__ctx_t *x, const place_workload_t *w, size_t n)
{
  place_cluster_t *c = x->c;
  double nn = c->n_nodes_live ? (double) c->n_nodes_live : 1;
  double cap_c = c->sum_cpu_cap > 0 ? (double) c->sum_cpu_cap / nn : 1000;
  double cap_m = c->sum_mem_cap > 0 ? (double) c->sum_mem_cap / nn : (double) (1LL << 32);
  double dc = (double) c->sum_cpu_req, dm = (double) c->sum_mem_req;
  for (size_t i = 0; i < n; i++)
    if (w[i].cpu_milli > 0 && w[i].memory_bytes > 0)
      {
        dc += (double) w[i].cpu_milli;
        dm += (double) w[i].memory_bytes;
      }
  x->mem_scarce = dm * cap_c >= dc * cap_m;
  x->ref_cpu = cap_c;
  x->ref_mem = cap_m;
  if (dc > 0 && dm > 0)
    {
      /* Memory per millicore in the demand vs in the capacity. */
      double k = (dm / dc) / (cap_m / cap_c);
      if (k > 8)
        k = 8;
      if (k < 0.125)
        k = 0.125;
      x->ref_mem = cap_m * sqrt (k);
      x->ref_cpu = cap_c / sqrt (k);
    }
}

/* ---- filling a node from the batch ----
 *
 * Best fit decides workload by workload; with two dimensions that strands
 * capacity: a node ends full on cpu with memory left, or the reverse,
 * because nothing steered complementary workloads together. So after a
 * workload of a batch lands on a node, the engine fills that node with the
 * batch's remaining workloads that keep it balanced: each step takes,
 * among the largest fitting workload of each memory/cpu ratio class, the
 * one that leaves the node's free cpu and memory fractions closest to
 * each other, larger ones preferred (a bin-centric pass, in the manner of
 * the vector bin-packing heuristics of Panigrahy et al.). Workloads with
 * constraints or spread, and auto workloads that would need a microVM,
 * are left to the main pass. */

#define PLACE__FILL_CLASSES 16
#define PLACE__FILL_SCAN 8
#define PLACE__FILL_SIZE_WEIGHT 0.3

/* Workloads for filling, grouped by where they may go: group 0 holds the
 * microVM-bound ones (any node), then one group per tenant for containers
 * (only that tenant's nodes); within a group, one list per memory/cpu ratio
 * class, largest first. */
typedef struct place__fgroup_s
{
  size_t *items[PLACE__FILL_CLASSES]; /* batch indices, largest first */
  double *size[PLACE__FILL_CLASSES];
  uint32_t *skip[PLACE__FILL_CLASSES]; /* next position not yet placed (path-compressed) */
  size_t n[PLACE__FILL_CLASSES];
} place__fgroup_t;

typedef struct place__fill_s
{
  place__fgroup_t *groups;
  size_t n_groups, cap_groups;
  place__u64map_t group_of; /* tenant id -> group */
  uint8_t *cls;             /* per batch index; UINT8_MAX = not for filling */
  uint32_t *grp, *pos;      /* group, and position in its class */
  uint32_t *tenant, *service;
  const uint64_t **cons_ok; /* per batch index: classes its label constraints allow, or NULL */
  uint64_t **verdicts;      /* the distinct bit sets, owned */
  size_t n_verdicts;
  place__u64map_t verdict_of; /* constraints array address -> verdicts index + 1 */
} place__fill_t;

static size_t
place__fill_find (uint32_t *sk, size_t p)
{
  size_t r = p;
  while (sk[r] != r)
    r = sk[r];
  while (sk[p] != r)
    {
      size_t nx = sk[p];
      sk[p] = (uint32_t) r;
      p = nx;
    }
  return r;
}

static bool
place__fill_is_done (const place__fill_t *f, size_t i)
{
  if (f->cls[i] == UINT8_MAX)
    return false;
  return f->groups[f->grp[i]].skip[f->cls[i]][f->pos[i]] != f->pos[i];
}

static void
place__fill_done (place__fill_t *f, size_t i)
{
  if (f->cls[i] == UINT8_MAX)
    return;
  f->groups[f->grp[i]].skip[f->cls[i]][f->pos[i]] = f->pos[i] + 1;
}

static uint32_t
place__fill_group (place__fill_t *f, uint32_t tenant, bool create)
{
  uint32_t *g = create ? place__u64map_put (&f->group_of, tenant)
                       : place__u64map_get (&f->group_of, tenant);
  if (!g)
    return PLACE__NONE;
  if (*g == 0) /* new: group 0 is the microVMs', so tenant groups start at 1 */
    {
      orch_grow ((void **) &f->groups, &f->cap_groups, f->n_groups + 1, sizeof (place__fgroup_t));
      memset (&f->groups[f->n_groups], 0, sizeof (place__fgroup_t));
      *g = (uint32_t) f->n_groups++;
    }
  return *g;
}

static void
place__fill_init (place__ctx_t *x, place__fill_t *f, const place_workload_t *w, size_t n,
                  const place__ord_t *ord)
{
  place_cluster_t *c = x->c;
  memset (f, 0, sizeof (*f));
  orch_grow ((void **) &f->groups, &f->cap_groups, 1, sizeof (place__fgroup_t));
  memset (&f->groups[0], 0, sizeof (place__fgroup_t));
  f->n_groups = 1;
  f->cls = xmalloc (n);
  f->grp = xmalloc (n * sizeof (uint32_t));
  f->pos = xmalloc (n * sizeof (uint32_t));
  f->tenant = xmalloc (n * sizeof (uint32_t));
  f->service = xmalloc (n * sizeof (uint32_t));
  f->cons_ok = xcalloc (n, sizeof (uint64_t *));
  f->verdicts = xcalloc (n, sizeof (uint64_t *));
  for (size_t k = 0; k < n; k++)
    {
      size_t i = ord[k].idx;
      const place_workload_t *q = &w[i];
      f->cls[i] = UINT8_MAX;
      if (q->n_constraints)
        {
          /* Judge the label constraints once per constraint array; a
           * workload pinned by node.id, or invalid, is left to the main
           * pass. */
          uint32_t *vi
              = place__u64map_put (&f->verdict_of, (uint64_t) (uintptr_t) q->constraints
                                                       ^ ((uint64_t) q->n_constraints << 56));
          if (*vi == 0)
            {
              char buf[256];
              bool usable = place__resolve (x, q, buf, sizeof (buf)) == NULL;
              for (size_t j = 0; usable && j < x->n_rc; j++)
                if (x->rc[j].node_id)
                  usable = false;
              uint64_t *bits = NULL;
              if (usable)
                {
                  bits = xcalloc (c->n_classes / 64 + 1, sizeof (uint64_t));
                  for (size_t cl = 0; cl < c->n_classes; cl++)
                    if (place__class_fails (x, &c->classes[cl]) < 0)
                      bits[cl / 64] |= 1ULL << (cl % 64);
                }
              f->verdicts[f->n_verdicts++] = bits;
              *vi = (uint32_t) f->n_verdicts;
            }
          f->cons_ok[i] = f->verdicts[*vi - 1];
          if (!f->cons_ok[i])
            continue;
        }
      if (q->spread || c->cfg.spread || q->cpu_milli <= 0 || q->memory_bytes <= 0 || !q->service
          || !*q->service || strlen (q->service) > PLACE_MAX_STR
          || (q->tenant && strlen (q->tenant) > PLACE_MAX_STR)
          || (q->isolation != ORCH_ISO_CONTAINER && q->isolation != ORCH_ISO_MICROVM
              && q->isolation != ORCH_ISO_AUTO))
        continue;
      double ratio
          = log2 (((double) q->memory_bytes / x->ref_mem) / ((double) q->cpu_milli / x->ref_cpu));
      int k2 = (int) floor (ratio * 2) + PLACE__FILL_CLASSES / 2;
      if (k2 < 0)
        k2 = 0;
      if (k2 >= PLACE__FILL_CLASSES)
        k2 = PLACE__FILL_CLASSES - 1;
      f->cls[i] = (uint8_t) k2;
      f->service[i] = place__intern (&c->strs, q->service);
      f->tenant[i] = place__intern (&c->strs, q->tenant && *q->tenant ? q->tenant : "default");
      bool vm = q->isolation == ORCH_ISO_MICROVM || (q->isolation == ORCH_ISO_AUTO && q->untrusted);
      f->grp[i] = vm ? 0 : place__fill_group (f, f->tenant[i], true);
      f->groups[f->grp[i]].n[k2]++;
    }
  for (size_t g = 0; g < f->n_groups; g++)
    for (int k2 = 0; k2 < PLACE__FILL_CLASSES; k2++)
      {
        place__fgroup_t *G = &f->groups[g];
        G->items[k2] = xmalloc ((G->n[k2] + 1) * sizeof (size_t));
        G->size[k2] = xmalloc ((G->n[k2] + 1) * sizeof (double));
        G->skip[k2] = xmalloc ((G->n[k2] + 1) * sizeof (uint32_t));
        for (size_t j = 0; j <= G->n[k2]; j++)
          G->skip[k2][j] = (uint32_t) j;
        G->n[k2] = 0;
      }
  for (size_t k = 0; k < n; k++)
    {
      size_t i = ord[k].idx;
      if (f->cls[i] == UINT8_MAX)
        continue;
      place__fgroup_t *G = &f->groups[f->grp[i]];
      int k2 = f->cls[i];
      f->pos[i] = (uint32_t) G->n[k2];
      G->items[k2][G->n[k2]] = i;
      G->size[k2][G->n[k2]] = ord[k].size;
      G->n[k2]++;
    }
}

static void
place__fill_free (place__fill_t *f)
{
  for (size_t g = 0; g < f->n_groups; g++)
    for (int k = 0; k < PLACE__FILL_CLASSES; k++)
      {
        free (f->groups[g].items[k]);
        free (f->groups[g].size[k]);
        free (f->groups[g].skip[k]);
      }
  free (f->groups);
  place__u64map_free (&f->group_of);
  free (f->cls);
  free (f->grp);
  free (f->pos);
  free (f->tenant);
  free (f->service);
  for (size_t v = 0; v < f->n_verdicts; v++)
    free (f->verdicts[v]);
  free (f->verdicts);
  free (f->cons_ok);
  place__u64map_free (&f->verdict_of);
}

/* Fills node ni from the batch; returns how many it placed. */
static int
place__fill (place__ctx_t *x, place__fill_t *f, uint32_t ni, const place_workload_t *w,
             place_result_t *results, const place_batch_opts_t *opts)
{
  place_cluster_t *c = x->c;
  int placed = 0;
  x->spread = false;
  for (;;)
    {
      const place__node_t *n = &c->nodes[ni];
      int64_t fc = place__node_free_cpu (n), fm = place__node_free_mem (c, n);
      if (fc <= 0 || fm <= 0 || n->cpu_cap <= 0 || n->mem_cap <= 0)
        break;
      double bound = (double) fc / x->ref_cpu + (double) fm / x->ref_mem;
      size_t best = SIZE_MAX;
      orch_isolation_t best_iso = ORCH_ISO_CONTAINER;
      double best_s = 0;
      /* microVM-bound workloads fit any node; containers only their own
       * tenant's (any tenant's where no container runs yet). */
      uint32_t kt = place__node_kernel_tenant (n);
      uint32_t own = kt == PLACE__NONE || kt == PLACE__MIXED ? PLACE__NONE
                                                             : place__fill_group (f, kt, false);
      for (size_t g = 0; g < f->n_groups; g++)
        {
          if (g != 0 && !(kt == PLACE__NONE || g == own))
            continue;
          place__fgroup_t *G = &f->groups[g];
          for (int k = 0; k < PLACE__FILL_CLASSES; k++)
            {
              size_t cnt = G->n[k];
              if (!cnt)
                continue;
              /* First position whose size is within the bound (sizes descend). */
              size_t lo = 0, hi = cnt;
              while (lo < hi)
                {
                  size_t mid = (lo + hi) / 2;
                  if (G->size[k][mid] > bound)
                    lo = mid + 1;
                  else
                    hi = mid;
                }
              unsigned scanned = 0;
              for (size_t p = place__fill_find (G->skip[k], lo);
                   p < cnt && scanned < PLACE__FILL_SCAN;
                   p = place__fill_find (G->skip[k], p + 1), scanned++)
                {
                  size_t i = G->items[k][p];
                  const place_workload_t *q = &w[i];
                  if (q->cpu_milli > fc || q->memory_bytes > fm)
                    continue;
                  x->w = q;
                  x->tenant = f->tenant[i];
                  /* Label constraints were judged per class once, at init. */
                  const uint64_t *ok = f->cons_ok[i];
                  if (ok && !((ok[n->cls / 64] >> (n->cls % 64)) & 1))
                    continue;
                  x->n_rc = 0;
                  orch_isolation_t iso = q->isolation == ORCH_ISO_MICROVM || q->untrusted
                                             ? ORCH_ISO_MICROVM
                                             : ORCH_ISO_CONTAINER;
                  if (place__check (x, n, iso, NULL) != PLACE_REJ__MAX)
                    continue;
                  int64_t ovh = iso == ORCH_ISO_MICROVM ? place__node_overhead (c, n) : 0;
                  double a = (double) (fc - q->cpu_milli) / (double) n->cpu_cap;
                  double b = (double) (fm - q->memory_bytes - ovh) / (double) n->mem_cap;
                  double sc = fabs (a - b)
                              - PLACE__FILL_SIZE_WEIGHT
                                    * ((double) q->cpu_milli / (double) n->cpu_cap
                                       + (double) q->memory_bytes / (double) n->mem_cap);
                  if (best == SIZE_MAX || sc < best_s || (sc == best_s && i < best))
                    {
                      best = i;
                      best_s = sc;
                      best_iso = iso;
                    }
                  break;
                }
            }
        }
      if (best == SIZE_MAX)
        break;
      const place_workload_t *q = &w[best];
      place_result_t *r = &results[best];
      memset (r, 0, sizeof (*r));
      r->n_nodes = (uint32_t) c->n_nodes_live;
      x->w = q;
      x->tenant = f->tenant[best];
      x->service = f->service[best];
      x->n_rc = 0;
      place__commit (x, r, ni, best_iso,
                     q->isolation == ORCH_ISO_AUTO
                         ? (best_iso == ORCH_ISO_MICROVM ? "microvm: untrusted" : "container")
                         : NULL);
      place__fill_done (f, best);
      placed++;
      if (opts->on_placed)
        opts->on_placed (opts->userdata, best);
    }
  return placed;
}

int
place_batch (place_cluster_t *c, const place_workload_t *w, size_t n,
             const place_batch_opts_t *opts, place_result_t *results, orch_err_t *err)
{
  place_batch_opts_t def = { 0 };
  if (!opts)
    opts = &def;
  if (n > PLACE_MAX_BATCH)
    return orch_err_set (err, 0, "batch of %zu workloads, at most %u", n, PLACE_MAX_BATCH);
  if (n && (!w || !results))
    return orch_err_set (err, 0, "place_batch: NULL workloads or results");
  if (n == 0)
    return 0;

  place__ctx_t *x = xcalloc (1, sizeof (*x));
  x->c = c;
  place__set_units (x, w, n);

  place__ord_t *ord = xmalloc (n * sizeof (*ord));
  for (size_t i = 0; i < n; i++)
    {
      ord[i].idx = i;
      /* Largest first (best-fit decreasing): big workloads go while there is
       * room for them, small ones fill the gaps. */
      ord[i].size = opts->keep_order ? 0
                                     : (double) w[i].cpu_milli / x->ref_cpu
                                           + (double) w[i].memory_bytes / x->ref_mem;
    }
  if (!opts->keep_order)
    qsort (ord, n, sizeof (*ord), place__cmp_ord);

  uint32_t saved_free = c->alloc_free;
  size_t saved_slots = c->n_alloc_slots;
  x->plan = opts->plan;
  if (opts->plan)
    {
      c->undo_on = true;
      c->n_moves = 0;
    }

  bool fill = !opts->keep_order && n > 1;
  place__fill_t f;
  if (fill)
    place__fill_init (x, &f, w, n, ord);
  int placed = 0;
  for (size_t k = 0; k < n; k++)
    {
      size_t i = ord[k].idx;
      if (fill)
        {
          if (place__fill_is_done (&f, i))
            continue; /* placed by a fill */
          place__fill_done (&f, i);
        }
      place__one (x, &w[i], i, results);
      uint32_t node = results[i].node;
      if (node != PLACE_NODE_NONE)
        placed++;
      if (opts->on_placed)
        opts->on_placed (opts->userdata, i);
      if (fill && node != PLACE_NODE_NONE && !x->spread)
        placed += place__fill (x, &f, node, w, results, opts);
    }
  if (fill)
    place__fill_free (&f);

  if (opts->plan)
    {
      for (size_t k = x->n_committed; k-- > 0;)
        place__alloc_release (c, x->committed[k], true);
      place__index_undo (c, 0);
      c->alloc_free = saved_free;
      c->n_alloc_slots = saved_slots;
      c->undo_on = false;
    }
  free (x->committed);
  free (ord);
  for (size_t i = 0; i < PLACE__CLASS_CACHE; i++)
    free (x->cc[i].ok);
  free (x->parts);
  free (x);
  return placed;
}
