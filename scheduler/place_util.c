/* Small containers the engine needs: a u64 -> u32 hash map and a string
 * intern table. */
#include <string.h>

#include "orch_util.h"
#include "place_internal.h"

static inline size_t
place__hash64 (uint64_t k)
{
  /* splitmix64 finaliser: keys are small packed integers, which would
   * cluster badly under linear probing without mixing. */
  k ^= k >> 30;
  k *= 0xbf58476d1ce4e5b9ULL;
  k ^= k >> 27;
  k *= 0x94d049bb133111ebULL;
  k ^= k >> 31;
  return (size_t) k;
}

uint32_t *
place__u64map_get (const place__u64map_t *m, uint64_t key)
{
  if (m->cap == 0)
    return NULL;
  size_t mask = m->cap - 1;
  for (size_t i = place__hash64 (key) & mask;; i = (i + 1) & mask)
    {
      if (m->keys[i] == 0)
        return NULL;
      if (m->keys[i] == key + 1)
        return &m->vals[i];
    }
}

static void
place__u64map_grow (place__u64map_t *m)
{
  size_t ncap = m->cap ? m->cap * 2 : 64;
  uint64_t *ok = m->keys;
  uint32_t *ov = m->vals;
  size_t ocap = m->cap;
  m->keys = xcalloc (ncap, sizeof (uint64_t));
  m->vals = xcalloc (ncap, sizeof (uint32_t));
  m->cap = ncap;
  for (size_t i = 0; i < ocap; i++)
    if (ok[i])
      {
        size_t j = place__hash64 (ok[i] - 1) & (ncap - 1);
        while (m->keys[j])
          j = (j + 1) & (ncap - 1);
        m->keys[j] = ok[i];
        m->vals[j] = ov[i];
      }
  free (ok);
  free (ov);
}

uint32_t *
place__u64map_put (place__u64map_t *m, uint64_t key)
{
  uint32_t *v = place__u64map_get (m, key);
  if (v)
    return v;
  if ((m->len + 1) * 4 > m->cap * 3)
    place__u64map_grow (m);
  size_t mask = m->cap - 1;
  size_t i = place__hash64 (key) & mask;
  while (m->keys[i])
    i = (i + 1) & mask;
  m->keys[i] = key + 1;
  m->vals[i] = 0;
  m->len++;
  return &m->vals[i];
}

void
place__u64map_del (place__u64map_t *m, uint64_t key)
{
  if (m->cap == 0)
    return;
  size_t mask = m->cap - 1;
  size_t i = place__hash64 (key) & mask;
  for (;; i = (i + 1) & mask)
    {
      if (m->keys[i] == 0)
        return;
      if (m->keys[i] == key + 1)
        break;
    }
  /* Backward-shift deletion: no tombstones, so lookups stay short however
   * often allocations come and go. */
  size_t j = i;
  for (;;)
    {
      j = (j + 1) & mask;
      if (m->keys[j] == 0)
        break;
      size_t home = place__hash64 (m->keys[j] - 1) & mask;
      /* Move j into the hole at i unless its home lies cyclically in (i, j]. */
      bool between = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
      if (!between)
        {
          m->keys[i] = m->keys[j];
          m->vals[i] = m->vals[j];
          i = j;
        }
    }
  m->keys[i] = 0;
  m->vals[i] = 0;
  m->len--;
}

void
place__u64map_free (place__u64map_t *m)
{
  free (m->keys);
  free (m->vals);
  memset (m, 0, sizeof (*m));
}

uint32_t
place__lookup (const place__strtab_t *t, const char *s)
{
  void *v = orch_map_get (&t->map, s);
  return v ? (uint32_t) ((uintptr_t) v - 1) : PLACE__NONE;
}

uint32_t
place__intern (place__strtab_t *t, const char *s)
{
  uint32_t id = place__lookup (t, s);
  if (id != PLACE__NONE)
    return id;
  orch_grow ((void **) &t->str, &t->cap, t->len + 1, sizeof (char *));
  id = (uint32_t) t->len;
  t->str[t->len++] = xstrdup (s);
  orch_map_put (&t->map, s, (void *) (uintptr_t) (id + 1));
  return id;
}

void
place__strtab_free (place__strtab_t *t)
{
  for (size_t i = 0; i < t->len; i++)
    free (t->str[i]);
  free (t->str);
  orch_map_free (&t->map);
  memset (t, 0, sizeof (*t));
}
