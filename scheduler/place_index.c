/* The free-capacity index: per partition (class x kernel tenant), a grid of
 * log-scale buckets over (free cpu, free memory), each bucket a doubly
 * linked list of nodes, with bit masks of the non-empty rows and columns so
 * that a query skips empty space with a count-trailing-zeros. A node moves
 * only when its free capacity crosses a bucket boundary, in O(1). */
#include <string.h>

#include "orch_util.h"
#include "place_internal.h"

unsigned
place__bucket (int64_t v)
{
  if (v <= 0)
    return 0;
  unsigned e = 63u - (unsigned) __builtin_clzll ((unsigned long long) v);
  unsigned m2 = e >= 2 ? (unsigned) ((v >> (e - 2)) & 3) : (unsigned) ((v << (2 - e)) & 3);
  unsigned b = 1 + 4 * e + m2;
  return b >= PLACE__G ? PLACE__G - 1 : b;
}

int64_t
place__bucket_lo (unsigned b)
{
  if (b == 0)
    return 0;
  unsigned e = (b - 1) / 4, m2 = (b - 1) % 4;
  return e >= 2 ? (int64_t) (4 + m2) << (e - 2) : ((int64_t) (4 + m2) << e) >> 2;
}

static inline void
place__mask_set (place__mask_t *m, unsigned b)
{
  m->w[b >> 6] |= 1ULL << (b & 63);
}

static inline void
place__mask_clear (place__mask_t *m, unsigned b)
{
  m->w[b >> 6] &= ~(1ULL << (b & 63));
}

uint32_t
place__part_get (place_cluster_t *c, uint32_t cls, uint32_t tenant, bool create)
{
  uint64_t key = ((uint64_t) cls << 32) | tenant;
  uint32_t *v = place__u64map_get (&c->part_by_key, key);
  if (v)
    return *v;
  if (!create)
    return PLACE__NONE;
  place__part_t *p = xcalloc (1, sizeof (*p));
  p->cls = cls;
  p->tenant = tenant;
  orch_grow ((void **) &c->parts, &c->cap_parts, c->n_parts + 1, sizeof (*c->parts));
  uint32_t id = (uint32_t) c->n_parts++;
  c->parts[id] = p;
  *place__u64map_put (&c->part_by_key, key) = id;
  place__class_t *k = &c->classes[cls];
  if (k->n_parts == k->cap_parts)
    {
      k->cap_parts = k->cap_parts ? k->cap_parts * 2 : 4;
      k->parts = xrealloc (k->parts, k->cap_parts * sizeof (uint32_t));
    }
  k->parts[k->n_parts++] = id;
  return id;
}

void
place__part_free (place__part_t *p)
{
  if (!p)
    return;
  for (unsigned i = 0; i < PLACE__G; i++)
    free (p->heads[i]);
  free (p);
}

static void
place__link (place_cluster_t *c, uint32_t ni, uint32_t part, unsigned row, unsigned col,
             uint32_t after)
{
  place__part_t *p = c->parts[part];
  place__node_t *n = &c->nodes[ni];
  if (!p->heads[row])
    {
      p->heads[row] = xmalloc (PLACE__G * sizeof (uint32_t));
      memset (p->heads[row], 0xff, PLACE__G * sizeof (uint32_t));
    }
  uint32_t *head = &p->heads[row][col];
  if (after == PLACE__NONE)
    {
      n->prev = PLACE__NONE;
      n->next = *head;
      if (*head != PLACE__NONE)
        c->nodes[*head].prev = ni;
      *head = ni;
    }
  else
    {
      place__node_t *a = &c->nodes[after];
      n->prev = after;
      n->next = a->next;
      if (a->next != PLACE__NONE)
        c->nodes[a->next].prev = ni;
      a->next = ni;
    }
  place__mask_set (&p->rows, row);
  place__mask_set (&p->cols[row], col);
  n->part = part;
  n->row = (uint8_t) row;
  n->col = (uint8_t) col;
  p->n_nodes++;
}

static void
place__unlink (place_cluster_t *c, uint32_t ni)
{
  place__node_t *n = &c->nodes[ni];
  if (n->part == PLACE__NONE)
    return;
  place__part_t *p = c->parts[n->part];
  uint32_t *head = &p->heads[n->row][n->col];
  if (n->prev != PLACE__NONE)
    c->nodes[n->prev].next = n->next;
  else
    *head = n->next;
  if (n->next != PLACE__NONE)
    c->nodes[n->next].prev = n->prev;
  if (*head == PLACE__NONE)
    {
      place__mask_clear (&p->cols[n->row], n->col);
      if (p->cols[n->row].w[0] == 0 && p->cols[n->row].w[1] == 0)
        place__mask_clear (&p->rows, n->row);
    }
  p->n_nodes--;
  n->part = PLACE__NONE;
  n->prev = n->next = PLACE__NONE;
}

static void
place__log_move (place_cluster_t *c, uint32_t ni)
{
  if (!c->undo_on)
    return;
  place__node_t *n = &c->nodes[ni];
  orch_grow ((void **) &c->moves, &c->cap_moves, c->n_moves + 1, sizeof (place__move_t));
  c->moves[c->n_moves++] = (place__move_t){
    .node = ni, .part = n->part, .row = n->row, .col = n->col, .prev = n->prev
  };
}

void
place__unindex_node (place_cluster_t *c, uint32_t ni)
{
  if (c->nodes[ni].part == PLACE__NONE)
    return;
  place__log_move (c, ni);
  place__unlink (c, ni);
}

void
place__index_node (place_cluster_t *c, uint32_t ni)
{
  place__node_t *n = &c->nodes[ni];
  if (!n->ready || n->draining || n->runtimes == 0)
    {
      place__unindex_node (c, ni);
      return;
    }
  uint32_t part = place__part_get (
      c, n->cls, n->n_allocs == 0 ? PLACE__EMPTY : place__node_kernel_tenant (n), true);
  unsigned row = place__bucket (place__node_free_cpu (n));
  unsigned col = place__bucket (place__node_free_mem (c, n) >> 10);
  if (n->part == part && n->row == row && n->col == col)
    return;
  place__log_move (c, ni);
  place__unlink (c, ni);
  place__link (c, ni, part, row, col, PLACE__NONE);
}

/* Puts every node moved since the log had `to` entries back where it was,
 * in reverse order, so each list regains its exact former order. */
void
place__index_undo (place_cluster_t *c, size_t to)
{
  while (c->n_moves > to)
    {
      place__move_t m = c->moves[--c->n_moves];
      place__unlink (c, m.node);
      if (m.part != PLACE__NONE)
        place__link (c, m.node, m.part, m.row, m.col, m.prev);
    }
}
