#include "orch_map.h"

#include <stdint.h>
#include <string.h>

#include "orch_util.h"

static uint64_t
map_hash (const char *s)
{
  /* FNV-1a: short keys, no adversarial control over them beyond validated names. */
  uint64_t h = 1469598103934665603ULL;
  for (; *s; s++)
    {
      h ^= (unsigned char) *s;
      h *= 1099511628211ULL;
    }
  return h;
}

static orch_map_entry_t *
map_find (const orch_map_t *m, const char *key)
{
  if (m->cap == 0)
    return NULL;
  size_t mask = m->cap - 1;
  for (size_t i = map_hash (key) & mask;; i = (i + 1) & mask)
    {
      orch_map_entry_t *e = &m->slots[i];
      if (e->key == NULL && !e->tomb)
        return NULL;
      if (e->key && strcmp (e->key, key) == 0)
        return e;
    }
}

static void
map_rehash (orch_map_t *m, size_t cap)
{
  orch_map_entry_t *old = m->slots;
  size_t old_cap = m->cap;
  m->slots = xcalloc (cap, sizeof *m->slots);
  m->cap = cap;
  m->used = m->len;
  size_t mask = cap - 1;
  for (size_t j = 0; j < old_cap; j++)
    {
      if (old[j].key == NULL)
        continue;
      size_t i = map_hash (old[j].key) & mask;
      while (m->slots[i].key)
        i = (i + 1) & mask;
      m->slots[i].key = old[j].key;
      m->slots[i].value = old[j].value;
    }
  free (old);
}

void *
orch_map_get (const orch_map_t *m, const char *key)
{
  orch_map_entry_t *e = map_find (m, key);
  return e ? e->value : NULL;
}

void *
orch_map_put (orch_map_t *m, const char *key, void *value)
{
  orch_map_entry_t *e = map_find (m, key);
  if (e)
    {
      void *prev = e->value;
      e->value = value;
      return prev;
    }
  if ((m->used + 1) * 4 >= m->cap * 3)
    map_rehash (m, m->cap ? (m->len * 2 >= m->cap ? m->cap * 2 : m->cap) : 16);
  size_t mask = m->cap - 1;
  size_t i = map_hash (key) & mask;
  while (m->slots[i].key)
    i = (i + 1) & mask;
  if (!m->slots[i].tomb)
    m->used++;
  m->slots[i].key = xstrdup (key);
  m->slots[i].value = value;
  m->slots[i].tomb = 0;
  m->len++;
  return NULL;
}

void *
orch_map_del (orch_map_t *m, const char *key)
{
  orch_map_entry_t *e = map_find (m, key);
  if (e == NULL)
    return NULL;
  void *prev = e->value;
  free (e->key);
  e->key = NULL;
  e->value = NULL;
  e->tomb = 1;
  m->len--;
  return prev;
}

void
orch_map_free (orch_map_t *m)
{
  for (size_t i = 0; i < m->cap; i++)
    free (m->slots[i].key);
  free (m->slots);
  memset (m, 0, sizeof *m);
}

int
orch_map_next (const orch_map_t *m, size_t *iter, const char **key, void **value)
{
  for (; *iter < m->cap; (*iter)++)
    {
      orch_map_entry_t *e = &m->slots[*iter];
      if (e->key)
        {
          if (key)
            *key = e->key;
          if (value)
            *value = e->value;
          (*iter)++;
          return 1;
        }
    }
  return 0;
}
