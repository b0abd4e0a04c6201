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
#define PLACE__SCAN_CAP 16
/* Spread looks at this many feasible nodes (most free first), and at most
 * SPREAD_BUDGET nodes in all. */
#define PLACE__SPREAD_FEASIBLE 16
#define PLACE__SPREAD_BUDGET 1024
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
} place__ctx_t;

typedef struct place__cand_s
{
  uint32_t node;
  double score;   /* bin-pack: leftover (lower is better) */
  uint32_t same;  /* spread: replicas of the service already there */
  double util;    /* spread: utilisation after placement */
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
          snprintf (buf, len, "constraint %s %s needs a value", k->attribute, place__op_name (k->op));
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
      uint32_t v = r->key == PLACE__NONE ? PLACE__NONE : place__label_of (k->labels, k->n_labels, r->key);
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
                : (r->op == ORCH_OP_EXISTS)                 ? true
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

/* Bin-pack score: what is left on the node after the request, cpu and
 * memory each in units of the mean node, summed. Lower is a tighter fit.
 * Absolute units (not per-node fractions, as Nomad's BestFit uses) make a
 * small node's leftover compare fairly with a big one's, and the sum keeps
 * both dimensions tight rather than one. The VMM overhead is not counted,
 * so that a microVM is never preferred merely for wasting more. */
static inline double
place__leftover (const place__ctx_t *x, const place__node_t *n)
{
  double lc = (double) (place__node_free_cpu (n) - x->w->cpu_milli) / x->ref_cpu;
  double lm = (double) (place__node_free_mem (x->c, n) - x->w->memory_bytes) / x->ref_mem;
  return lc + lm;
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
  place__cand_t cand = { .node = ni, .score = place__leftover (x, n) };
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
 * kernel-free partition and its own tenant's. */
static void
place__collect_parts (place__ctx_t *x, orch_isolation_t iso)
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
          if (p->n_nodes == 0)
            continue;
          if (iso == ORCH_ISO_CONTAINER && p->tenant != PLACE__NONE && p->tenant != x->tenant)
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
  for (int row = place__mask_next (&rows, bc); row >= 0; row = place__mask_next (&rows, (unsigned) row + 1))
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
              if (best->node != PLACE__NONE && est_c + est_m > best->score)
                break;
              unsigned seen = 0;
              for (uint32_t ni = p->heads[row][col]; ni != PLACE__NONE && seen < PLACE__SCAN_CAP;
                   ni = c->nodes[ni].next, seen++)
                place__consider (x, ni, iso, best);
            }
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
  place__collect_parts (x, iso);
  if (x->spread)
    place__search_spread (x, iso, best);
  else
    place__search_binpack (x, iso, best);
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
                  k = snprintf (p, left, "%s%s", j ? "," : " ", x->rc[ci].raw[j] ? x->rc[ci].raw[j] : "");
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
        name = iso == ORCH_ISO_MICROVM ? "no microvm backend"
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
place__one (place__ctx_t *x, const place_workload_t *w, size_t idx, place_result_t *results,
            bool plan, uint32_t **committed, size_t *n_committed, size_t *cap_committed)
{
  place_cluster_t *c = x->c;
  place_result_t *r = &results[idx];
  char buf[PLACE_REASON_MAX];
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
  char why_iso[256];
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
      orch_isolation_t fiso = w->isolation == ORCH_ISO_AUTO && w->untrusted ? ORCH_ISO_MICROVM
                                                                           : w->isolation;
      place__full_scan (x, r, &fiso, &best);
      if (best.node == PLACE__NONE)
        {
          place__fail_text (x, r, fiso);
          if (x->n_fc < PLACE__FAIL_CACHE)
            x->n_fc++;
          place__fc_t *f = &x->fc[x->fc_next];
          x->fc_next = (x->fc_next + 1) % PLACE__FAIL_CACHE;
          *f = (place__fc_t){ .cpu = w->cpu_milli, .mem = w->memory_bytes, .ports = w->host_ports,
                              .tenant = x->tenant, .iso = w->isolation,
                              .untrusted = w->untrusted, .cons = w->constraints,
                              .n_cons = w->n_constraints, .result = idx };
          return;
        }
      iso = fiso;
      if (w->isolation == ORCH_ISO_AUTO && !w->untrusted)
        why = iso == ORCH_ISO_CONTAINER ? "container" : NULL;
      memset (r->rejected, 0, sizeof (r->rejected));
    }

  if (w->isolation == ORCH_ISO_AUTO && !w->untrusted && iso == ORCH_ISO_MICROVM)
    {
      /* Say why a container was not the answer on the chosen node. */
      const place__node_t *n = &c->nodes[best.node];
      place_reject_t rc = place__check (x, n, ORCH_ISO_CONTAINER, NULL);
      uint32_t kt = place__node_kernel_tenant (n);
      if (rc == PLACE_REJ_TENANT)
        snprintf (why_iso, sizeof (why_iso), "microvm: tenant %.40s would share node %.60s's kernel with %s%.40s",
                  c->strs.str[x->tenant], n->name, kt == PLACE__MIXED ? "" : "tenant ",
                  kt == PLACE__MIXED ? "several tenants" : c->strs.str[kt]);
      else if (rc == PLACE_REJ_NO_BACKEND)
        snprintf (why_iso, sizeof (why_iso), "microvm: node %.60s has no container backend",
                  n->name);
      else
        snprintf (why_iso, sizeof (why_iso), "microvm: packs better on %.60s than a container elsewhere",
                  n->name);
      why = why_iso;
    }

  uint32_t a = place__alloc_commit (c, best.node, x->service, x->tenant, iso, w->cpu_milli,
                                    w->memory_bytes, w->host_ports);
  if (plan)
    {
      orch_grow ((void **) committed, cap_committed, *n_committed + 1, sizeof (uint32_t));
      (*committed)[(*n_committed)++] = a;
    }
  r->node = best.node;
  r->alloc = plan ? PLACE_ALLOC_NONE : a;
  r->isolation = iso;
  place__success_text (x, r, why);
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
  x->ref_cpu = c->n_nodes_live && c->sum_cpu_cap > 0 ? (double) c->sum_cpu_cap / (double) c->n_nodes_live : 1000;
  x->ref_mem = c->n_nodes_live && c->sum_mem_cap > 0 ? (double) c->sum_mem_cap / (double) c->n_nodes_live : (double) (1 << 30);

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
  uint32_t *committed = NULL;
  size_t n_committed = 0, cap_committed = 0;
  if (opts->plan)
    {
      c->undo_on = true;
      c->n_moves = 0;
    }

  int placed = 0;
  for (size_t k = 0; k < n; k++)
    {
      size_t i = ord[k].idx;
      place__one (x, &w[i], i, results, opts->plan, &committed, &n_committed, &cap_committed);
      if (results[i].node != PLACE_NODE_NONE)
        placed++;
      if (opts->on_placed)
        opts->on_placed (opts->userdata, i);
    }

  if (opts->plan)
    {
      for (size_t k = n_committed; k-- > 0;)
        place__alloc_release (c, committed[k], true);
      place__index_undo (c, 0);
      c->alloc_free = saved_free;
      c->n_alloc_slots = saved_slots;
      c->undo_on = false;
    }
  free (committed);
  free (ord);
  for (size_t i = 0; i < PLACE__CLASS_CACHE; i++)
    free (x->cc[i].ok);
  free (x->parts);
  free (x);
  return placed;
}
