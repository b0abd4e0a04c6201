/* What a DesiredAllocs list asks of the allocation table (pure). */
#include <stdlib.h>
#include <string.h>

#include "agent_internal.h"
#include "orch_util.h"

static int
agent__cmp_str (const void *a, const void *b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

static bool
agent__sorted_has (const char **sorted, size_t n, const char *key)
{
  return n > 0 && bsearch (&key, sorted, n, sizeof (char *), agent__cmp_str) != NULL;
}

/* Both lists are sorted copies searched with bsearch, so a list of thousands
 * costs n log n, not n * m. */
void
agent_reconcile_plan (const char *const *known, size_t n_known, const char *const *desired,
                      size_t n_desired, size_t **to_stop, size_t *n_stop, size_t **to_start,
                      size_t *n_start)
{
  cleanup_free const char **sk = NULL;
  cleanup_free const char **sd = NULL;
  cleanup_free bool *picked = NULL; /* parallel to sd: already in to_start */
  size_t i;

  *to_stop = *to_start = NULL;
  *n_stop = *n_start = 0;

  if (n_known > 0)
    {
      sk = xmalloc (n_known * sizeof (char *));
      memcpy (sk, known, n_known * sizeof (char *));
      qsort (sk, n_known, sizeof (char *), agent__cmp_str);
    }
  if (n_desired > 0)
    {
      sd = xmalloc (n_desired * sizeof (char *));
      memcpy (sd, desired, n_desired * sizeof (char *));
      qsort (sd, n_desired, sizeof (char *), agent__cmp_str);
      *to_start = xmalloc (n_desired * sizeof (size_t));
      picked = xcalloc (n_desired, sizeof (bool));
    }
  if (n_known > 0)
    *to_stop = xmalloc (n_known * sizeof (size_t));

  for (i = 0; i < n_known; i++)
    if (!agent__sorted_has (sd, n_desired, known[i]))
      (*to_stop)[(*n_stop)++] = i;

  for (i = 0; i < n_desired; i++)
    {
      const char **hit;
      size_t pos;

      if (agent__sorted_has (sk, n_known, desired[i]))
        continue;
      /* Duplicates share one "picked" flag: that of the first of their run in
       * the sorted copy. The first occurrence in the list wins. */
      hit = bsearch (&desired[i], sd, n_desired, sizeof (char *), agent__cmp_str);
      pos = (size_t) (hit - sd);
      while (pos > 0 && strcmp (sd[pos - 1], desired[i]) == 0)
        pos--;
      if (picked[pos])
        continue;
      picked[pos] = true;
      (*to_start)[(*n_start)++] = i;
    }

  if (*n_stop == 0)
    {
      free (*to_stop);
      *to_stop = NULL;
    }
  if (*n_start == 0)
    {
      free (*to_start);
      *to_start = NULL;
    }
}
