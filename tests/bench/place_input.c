/* CSV input and synthetic clusters for place_bench and place_check. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orch_spec.h"
#include "orch_util.h"
#include "place.h"
#include "place_input.h"

#define PIN_MAX_LINE 4096
#define PIN_MAX_ROWS (1u << 22)

static void
pin_chomp (char *s)
{
  size_t n = strlen (s);
  while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
    s[--n] = '\0';
}

/* Splits a line on commas in place; returns the number of fields. */
static size_t
pin_split (char *line, char **f, size_t max)
{
  size_t n = 0;
  char *p = line;
  while (n < max)
    {
      f[n++] = p;
      char *comma = strchr (p, ',');
      if (!comma)
        break;
      *comma = '\0';
      p = comma + 1;
    }
  for (size_t i = 0; i < n; i++)
    {
      while (*f[i] == ' ')
        f[i]++;
      size_t l = strlen (f[i]);
      while (l && f[i][l - 1] == ' ')
        f[i][--l] = '\0';
    }
  return n;
}

static int
pin_col (char **hdr, size_t n, const char *name)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp (hdr[i], name) == 0)
      return (int) i;
  return -1;
}

/* A positive integer, or an error naming the column. */
static int
pin_positive (const char *path, size_t line, const char *col, const char *v, int64_t *out,
              char *err, size_t errlen)
{
  if (!v || !*v)
    {
      snprintf (err, errlen, "%s:%zu: %s is missing", path, line, col);
      return -1;
    }
  char *end;
  errno = 0;
  long long x = strtoll (v, &end, 10);
  if (errno || *end || x < 0)
    {
      snprintf (err, errlen, "%s:%zu: %s \"%s\" is not a non-negative integer", path, line, col, v);
      return -1;
    }
  if (x == 0)
    {
      snprintf (err, errlen, "%s:%zu: %s is zero; every workload and node needs resources", path,
                line, col);
      return -1;
    }
  *out = x;
  return 0;
}

typedef int (*pin_row_fn) (const char *path, size_t line, char **f, size_t nf, const int *cols,
                           pin_set_t *s, char *err, size_t errlen);

static int
pin_read_csv (const char *path, const char *const *need, size_t n_need, const char *const *opt,
              size_t n_opt, pin_row_fn row, pin_set_t *s, char *err, size_t errlen)
{
  FILE *fp = fopen (path, "re");
  if (!fp)
    {
      snprintf (err, errlen, "%s: %s", path, strerror (errno));
      return -1;
    }
  char buf[PIN_MAX_LINE], hbuf[PIN_MAX_LINE];
  char *hdr[32], *f[32];
  int cols[16];
  size_t nh = 0, line = 0, rows = 0;
  int rc = 0;
  while (fgets (buf, sizeof (buf), fp))
    {
      line++;
      if (!strchr (buf, '\n') && !feof (fp))
        {
          snprintf (err, errlen, "%s:%zu: line longer than %d bytes", path, line, PIN_MAX_LINE);
          rc = -1;
          break;
        }
      pin_chomp (buf);
      if (line == 1)
        {
          memcpy (hbuf, buf, sizeof (hbuf));
          nh = pin_split (hbuf, hdr, 32);
          for (size_t i = 0; i < n_need; i++)
            if ((cols[i] = pin_col (hdr, nh, need[i])) < 0)
              {
                snprintf (err, errlen, "%s:1: header lacks column %s", path, need[i]);
                rc = -1;
                goto out;
              }
          for (size_t i = 0; i < n_opt; i++)
            cols[n_need + i] = pin_col (hdr, nh, opt[i]);
          continue;
        }
      if (buf[0] == '\0' || buf[0] == '#')
        continue;
      if (++rows > PIN_MAX_ROWS)
        {
          snprintf (err, errlen, "%s:%zu: more than %u rows", path, line, PIN_MAX_ROWS);
          rc = -1;
          break;
        }
      size_t nf = pin_split (buf, f, 32);
      if (row (path, line, f, nf, cols, s, err, errlen) < 0)
        {
          rc = -1;
          break;
        }
    }
  if (rc == 0 && line == 0)
    {
      snprintf (err, errlen, "%s: empty file (a header line is required)", path);
      rc = -1;
    }
out:
  fclose (fp);
  return rc;
}

static const char *
pin_field (char **f, size_t nf, int col)
{
  return col >= 0 && (size_t) col < nf ? f[col] : NULL;
}

static int
pin_node_row (const char *path, size_t line, char **f, size_t nf, const int *cols, pin_set_t *s,
              char *err, size_t errlen)
{
  const char *name = pin_field (f, nf, cols[0]);
  if (!name || !*name)
    {
      snprintf (err, errlen, "%s:%zu: name is missing", path, line);
      return -1;
    }
  pin_node_t n = { 0 };
  if (pin_positive (path, line, "cpu_milli", pin_field (f, nf, cols[1]), &n.cpu_milli, err, errlen)
          < 0
      || pin_positive (path, line, "memory_mib", pin_field (f, nf, cols[2]), &n.memory_mib, err,
                       errlen)
             < 0)
    return -1;
  const char *labels = pin_field (f, nf, cols[3]);
  const char *rt = pin_field (f, nf, cols[4]);
  n.runtimes = PLACE_RT_CONTAINER | PLACE_RT_MICROVM;
  if (rt && *rt)
    {
      n.runtimes = 0;
      if (strstr (rt, "container"))
        n.runtimes |= PLACE_RT_CONTAINER;
      if (strstr (rt, "microvm"))
        n.runtimes |= PLACE_RT_MICROVM;
      if (!n.runtimes)
        {
          snprintf (err, errlen, "%s:%zu: runtimes \"%s\": use container, microvm or both (;)",
                    path, line, rt);
          return -1;
        }
    }
  n.name = xstrdup (name);
  n.labels = labels && *labels ? xstrdup (labels) : NULL;
  s->nodes = xrealloc (s->nodes, (s->n_nodes + 1) * sizeof (pin_node_t));
  s->nodes[s->n_nodes++] = n;
  return 0;
}

int
pin_read_nodes (const char *path, pin_set_t *s, char *err, size_t errlen)
{
  static const char *const need[] = { "name", "cpu_milli", "memory_mib" };
  static const char *const opt[] = { "labels", "runtimes" };
  return pin_read_csv (path, need, 3, opt, 2, pin_node_row, s, err, errlen);
}

static int
pin_wl_row (const char *path, size_t line, char **f, size_t nf, const int *cols, pin_set_t *s,
            char *err, size_t errlen)
{
  const char *name = pin_field (f, nf, cols[0]);
  if (!name || !*name)
    {
      snprintf (err, errlen, "%s:%zu: name is missing", path, line);
      return -1;
    }
  pin_wl_t w = { 0 };
  if (pin_positive (path, line, "cpu_milli", pin_field (f, nf, cols[1]), &w.cpu_milli, err, errlen)
          < 0
      || pin_positive (path, line, "memory_mib", pin_field (f, nf, cols[2]), &w.memory_mib, err,
                       errlen)
             < 0)
    return -1;
  const char *iso = pin_field (f, nf, cols[3]);
  w.isolation = ORCH_ISO_CONTAINER;
  if (iso && *iso)
    {
      if (strcmp (iso, "container") == 0)
        w.isolation = ORCH_ISO_CONTAINER;
      else if (strcmp (iso, "microvm") == 0)
        w.isolation = ORCH_ISO_MICROVM;
      else if (strcmp (iso, "auto") == 0)
        w.isolation = ORCH_ISO_AUTO;
      else if (strcmp (iso, "untrusted") == 0)
        {
          w.isolation = ORCH_ISO_AUTO;
          w.untrusted = true;
        }
      else
        {
          snprintf (err, errlen, "%s:%zu: isolation \"%s\": use container, microvm or auto", path,
                    line, iso);
          return -1;
        }
    }
  const char *tenant = pin_field (f, nf, cols[4]);
  const char *svc = pin_field (f, nf, cols[5]);
  w.name = xstrdup (name);
  w.tenant = xstrdup (tenant && *tenant ? tenant : "default");
  w.service = xstrdup (svc && *svc ? svc : name);
  const char *con = pin_field (f, nf, cols[6]);
  if (con && *con)
    {
      const char *eq = strchr (con, '=');
      w.constraint_key = eq ? xstrndup (con, (size_t) (eq - con)) : xstrdup (con);
      w.constraint_value = eq ? xstrdup (eq + 1) : NULL;
    }
  s->wls = xrealloc (s->wls, (s->n_wls + 1) * sizeof (pin_wl_t));
  s->wls[s->n_wls++] = w;
  return 0;
}

int
pin_read_workloads (const char *path, pin_set_t *s, char *err, size_t errlen)
{
  static const char *const need[] = { "name", "cpu_milli", "memory_mib" };
  static const char *const opt[] = { "isolation", "tenant", "service", "constraint" };
  return pin_read_csv (path, need, 3, opt, 4, pin_wl_row, s, err, errlen);
}

/* ---- synthetic inputs ---- */

static uint64_t
pin_rand (uint64_t *st)
{
  /* splitmix64: small, seedable, good enough for workload mixes. */
  uint64_t z = (*st += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static double
pin_unif (uint64_t *st)
{
  return ((double) (pin_rand (st) >> 11) + 0.5) / 9007199254740992.0;
}

void
pin_synth_nodes (pin_set_t *s, size_t n, uint64_t seed)
{
  /* Node shapes: general purpose in three sizes, memory- and
   * compute-optimised; a fifth of the nodes offer containers only. */
  static const struct
  {
    int64_t cpu, mib;
    int weight;
  } shapes[] = {
    { 4000, 16384, 3 }, { 8000, 32768, 3 },  { 16000, 65536, 2 },
    { 8000, 65536, 1 }, { 32000, 65536, 1 },
  };
  uint64_t st = seed * 2 + 1;
  s->nodes = xcalloc (n ? n : 1, sizeof (pin_node_t));
  s->n_nodes = n;
  for (size_t i = 0; i < n; i++)
    {
      int pick = (int) (pin_rand (&st) % 10), k = 0;
      while (pick >= shapes[k].weight)
        pick -= shapes[k++].weight;
      pin_node_t *nd = &s->nodes[i];
      nd->name = xasprintf ("node-%05zu", i);
      nd->cpu_milli = shapes[k].cpu;
      nd->memory_mib = shapes[k].mib;
      nd->runtimes
          = pin_rand (&st) % 5 == 0 ? PLACE_RT_CONTAINER : PLACE_RT_CONTAINER | PLACE_RT_MICROVM;
      nd->labels = xasprintf ("zone=z%d%s", (int) (pin_rand (&st) % 3),
                              pin_rand (&st) % 10 < 3 ? ";disk=ssd" : "");
    }
}

void
pin_synth_workloads (pin_set_t *s, size_t n, uint64_t seed, double fill, int n_tenants)
{
  uint64_t st = seed * 2 + 7;
  static const char *const tenants[]
      = { "acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "tyrell" };
  s->wls = xcalloc (n ? n : 1, sizeof (pin_wl_t));
  s->n_wls = n;
  double dem_cpu = 0, dem_mem = 0;
  size_t i = 0, svc = 0;
  while (i < n)
    {
      /* A service: replicas, size and memory/cpu ratio from heavy tails. */
      size_t reps = (size_t) floor (pow (pin_unif (&st), -1.0 / 1.2));
      if (reps > 100)
        reps = 100;
      if (reps > n - i)
        reps = n - i;
      double cpu = 50.0 * pow (pin_unif (&st), -1.0 / 1.4);
      if (cpu > 8000)
        cpu = 8000;
      double ratio = pow (2.0, pin_unif (&st) * 3.5); /* MiB per millicore, 1..11 */
      double mib = cpu * ratio;
      if (mib < 16)
        mib = 16;
      if (mib > 32768)
        mib = 32768;
      /* Tenants: a few large ones (Zipf-like). */
      double tz = pin_unif (&st);
      int t = tz < 0.35   ? 0
              : tz < 0.55 ? 1
              : tz < 0.7  ? 2
              : tz < 0.8  ? 3
                          : 4 + (int) (pin_rand (&st) % 4);
      if (n_tenants < 8)
        t %= n_tenants;
      int r = (int) (pin_rand (&st) % 100);
      int iso = r < 75 ? ORCH_ISO_CONTAINER : r < 85 ? ORCH_ISO_MICROVM : ORCH_ISO_AUTO;
      bool untrusted = iso == ORCH_ISO_AUTO && pin_rand (&st) % 3 == 0;
      int c = (int) (pin_rand (&st) % 100);
      char *svcname = xasprintf ("svc-%05zu", svc++);
      for (size_t k = 0; k < reps; k++, i++)
        {
          pin_wl_t *w = &s->wls[i];
          w->name = xasprintf ("%s-%zu", svcname, k);
          w->service = xstrdup (svcname);
          w->tenant = xstrdup (tenants[t]);
          w->cpu_milli = (int64_t) cpu;
          w->memory_mib = (int64_t) mib;
          w->isolation = iso;
          w->untrusted = untrusted;
          if (c < 8)
            {
              w->constraint_key = xstrdup ("zone");
              w->constraint_value = xasprintf ("z%d", c % 3);
            }
          else if (c < 12)
            w->constraint_key = xstrdup ("disk");
          dem_cpu += cpu;
          dem_mem += mib + (iso == ORCH_ISO_MICROVM || untrusted ? 64 : 0);
        }
      free (svcname);
    }
  /* Scale sizes so that the demand fills `fill` of the cluster on its
   * binding dimension. */
  double cap_cpu = 0, cap_mem = 0;
  for (size_t k = 0; k < s->n_nodes; k++)
    {
      cap_cpu += (double) s->nodes[k].cpu_milli;
      cap_mem += (double) s->nodes[k].memory_mib;
    }
  if (cap_cpu <= 0 || dem_cpu <= 0)
    return;
  double f = fill / fmax (dem_cpu / cap_cpu, dem_mem / cap_mem);
  for (size_t k = 0; k < n; k++)
    {
      pin_wl_t *w = &s->wls[k];
      /* At most half the common node shape (8 cores, 32 GiB): the tail is
       * heavy, but every workload fits some node. */
      w->cpu_milli = (int64_t) fmin (4000, fmax (10, round ((double) w->cpu_milli * f / 10) * 10));
      w->memory_mib = (int64_t) fmin (16384, fmax (16, round ((double) w->memory_mib * f)));
    }
}

void
pin_free (pin_set_t *s)
{
  for (size_t i = 0; i < s->n_nodes; i++)
    {
      free (s->nodes[i].name);
      free (s->nodes[i].labels);
    }
  for (size_t i = 0; i < s->n_wls; i++)
    {
      free (s->wls[i].name);
      free (s->wls[i].service);
      free (s->wls[i].tenant);
      free (s->wls[i].constraint_key);
      free (s->wls[i].constraint_value);
    }
  free (s->nodes);
  free (s->wls);
  memset (s, 0, sizeof (*s));
}

int
pin_read_placements (const char *path, pin_placement_t **out, size_t *n, char *err, size_t errlen)
{
  FILE *fp = fopen (path, "re");
  if (!fp)
    {
      snprintf (err, errlen, "%s: %s", path, strerror (errno));
      return -1;
    }
  char buf[PIN_MAX_LINE];
  char *f[4];
  size_t line = 0;
  pin_placement_t *p = NULL;
  size_t np = 0, cap = 0;
  while (fgets (buf, sizeof (buf), fp))
    {
      line++;
      pin_chomp (buf);
      if (line == 1 && strcmp (buf, "workload,node,isolation") == 0)
        continue;
      if (!*buf)
        continue;
      if (pin_split (buf, f, 4) != 3)
        {
          snprintf (err, errlen, "%s:%zu: want workload,node,isolation", path, line);
          fclose (fp);
          free (p);
          return -1;
        }
      orch_grow ((void **) &p, &cap, np + 1, sizeof (*p));
      pin_placement_t *q = &p[np++];
      q->workload = xstrdup (f[0]);
      q->node = xstrdup (f[1]);
      q->isolation = !*f[1]                            ? -1
                     : strcmp (f[2], "microvm") == 0   ? ORCH_ISO_MICROVM
                     : strcmp (f[2], "container") == 0 ? ORCH_ISO_CONTAINER
                                                       : -2;
      if (q->isolation == -2)
        {
          snprintf (err, errlen, "%s:%zu: isolation \"%s\" of a placed workload", path, line, f[2]);
          fclose (fp);
          *out = p;
          *n = np;
          return -1;
        }
    }
  fclose (fp);
  *out = p;
  *n = np;
  return 0;
}
