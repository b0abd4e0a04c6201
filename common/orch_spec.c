/* The service spec (see orch_spec.h and DESIGN.md §3).
 *
 * Validation walks the whole document and records every problem with its
 * JSON path; a spec is built alongside and thrown away if any problem was
 * recorded, which keeps the parse all-or-nothing without a second pass. */
#define _GNU_SOURCE
#include "orch_spec.h"
#include "orch_quantity.h"
#include "orch_util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <seccomp.h>

#define ORCH__IMAGE_MAX 255
#define ORCH__MAX_RESTARTS_MAX 1000000
#define ORCH__STOP_GRACE_MAX_MS (5 * 60 * 1000)
#define ORCH__FAILURE_THRESHOLD_MAX 1000
#define ORCH__PIDS_MIN 16
#define ORCH__PIDS_MAX (4 * 1024 * 1024)
#define ORCH__SYSCALLS_MAX 128
/* Values quoted in messages are cut to this many bytes. */
#define ORCH__QUOTE_MAX 64

static void
orch__json_decrefp (json_t **p)
{
  if (*p != NULL)
    json_decref (*p);
}
#define cleanup_json __attribute__ ((cleanup (orch__json_decrefp)))

/* ---- paths and messages ---- */

static bool
orch__plain_key (const char *k)
{
  if (*k == '\0')
    return false;
  for (; *k; k++)
    {
      char c = *k;
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'
            || c == '-'))
        return false;
    }
  return true;
}

/* Quotes s for a message: JSON-style escapes so that a message stays one
 * line whatever the input holds, cut after ORCH__QUOTE_MAX bytes. */
static char *
orch__quote (const char *s)
{
  size_t n = strlen (s), i, cut = n, off = 0;
  char *out;

  if (cut > ORCH__QUOTE_MAX)
    {
      cut = ORCH__QUOTE_MAX;
      /* Do not split a UTF-8 sequence. */
      while (cut > 0 && ((unsigned char) s[cut] & 0xC0) == 0x80)
        cut--;
    }
  out = xmalloc (cut * 6 + 8);
  out[off++] = '"';
  for (i = 0; i < cut; i++)
    {
      unsigned char c = (unsigned char) s[i];
      if (c == '"' || c == '\\')
        {
          out[off++] = '\\';
          out[off++] = (char) c;
        }
      else if (c < 0x20 || c == 0x7f)
        off += (size_t) sprintf (out + off, "\\u%04x", c);
      else
        out[off++] = (char) c;
    }
  if (cut < n)
    {
      memcpy (out + off, "...", 3);
      off += 3;
    }
  out[off++] = '"';
  out[off] = '\0';
  return out;
}

static char *
orch__path_key (const char *base, const char *key)
{
  if (orch__plain_key (key))
    return base[0] ? xasprintf ("%s.%s", base, key) : xstrdup (key);
  cleanup_free char *q = orch__quote (key);
  return xasprintf ("%s[%s]", base, q);
}

static char *
orch__path_index (const char *base, size_t i)
{
  return xasprintf ("%s[%zu]", base, i);
}

static const char *
orch__path_show (const char *path)
{
  return path[0] ? path : "document";
}

static void
orch__err (orch_errlist_t *errs, const char *path, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
orch__err (orch_errlist_t *errs, const char *path, const char *fmt, ...)
{
  cleanup_free char *msg = NULL;
  va_list ap;

  va_start (ap, fmt);
  if (vasprintf (&msg, fmt, ap) < 0)
    abort ();
  va_end (ap);
  orch_errlist_add (errs, "%s: %s", orch__path_show (path), msg);
}

static const char *
orch__kind (const json_t *v)
{
  switch (json_typeof (v))
    {
    case JSON_OBJECT:
      return "an object";
    case JSON_ARRAY:
      return "an array";
    case JSON_STRING:
      return "a string";
    case JSON_INTEGER:
      return "an integer";
    case JSON_REAL:
      return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
      return "a boolean";
    case JSON_NULL:
      return "null";
    }
  return "a value";
}

static char *orch__quote (const char *s);

static void
orch__err_type (orch_errlist_t *errs, const char *path, const char *expected, const json_t *v)
{
  /* Showing a string helps with the common slip of quoting a number. */
  if (json_is_string (v))
    {
      cleanup_free char *q = orch__quote (json_string_value (v));
      orch__err (errs, path, "expected %s, got a string (%s)", expected, q);
    }
  else
    orch__err (errs, path, "expected %s, got %s", expected, orch__kind (v));
}

static void
orch__err_missing (orch_errlist_t *errs, const char *base, const char *key)
{
  cleanup_free char *p = orch__path_key (base, key);
  orch__err (errs, p, "required field is missing");
}

static size_t
orch__edit_distance (const char *a, const char *b)
{
  size_t la = strlen (a), lb = strlen (b), i, j;
  size_t row[65];

  if (la > 64 || lb > 64)
    return SIZE_MAX;
  for (j = 0; j <= lb; j++)
    row[j] = j;
  for (i = 1; i <= la; i++)
    {
      size_t diag = row[0];
      row[0] = i;
      for (j = 1; j <= lb; j++)
        {
          size_t up = row[j];
          size_t best = diag + (a[i - 1] == b[j - 1] ? 0 : 1);
          if (up + 1 < best)
            best = up + 1;
          if (row[j - 1] + 1 < best)
            best = row[j - 1] + 1;
          row[j] = best;
          diag = up;
        }
    }
  return row[lb];
}

/* Reports every key of obj not in allowed (a NULL-terminated list), with a
 * suggestion when the key looks like a misspelt known one. */
static void
orch__check_keys (orch_errlist_t *errs, const char *base, json_t *obj, const char *const *allowed)
{
  const char *key;
  json_t *v;

  json_object_foreach (obj, key, v)
    {
      const char *best = NULL;
      size_t best_d = SIZE_MAX, i;
      bool known = false;

      for (i = 0; allowed[i]; i++)
        {
          size_t d;
          if (strcmp (key, allowed[i]) == 0)
            {
              known = true;
              break;
            }
          d = orch__edit_distance (key, allowed[i]);
          if (d < best_d)
            {
              best_d = d;
              best = allowed[i];
            }
        }
      if (known)
        continue;
      cleanup_free char *p = orch__path_key (base, key);
      if (best != NULL && best_d <= 2 && best_d < strlen (key))
        orch__err (errs, p, "unknown field (did you mean \"%s\"?)", best);
      else
        orch__err (errs, p, "unknown field");
    }
}

/* ---- typed getters: each reports its own problem and returns false ---- */

static bool
orch__get_string (orch_errlist_t *errs, const char *path, json_t *v, const char **out)
{
  if (!json_is_string (v))
    {
      orch__err_type (errs, path, "a string", v);
      return false;
    }
  /* A json_t built by a caller may hold a NUL; C strings cannot. */
  if (strlen (json_string_value (v)) != json_string_length (v))
    {
      orch__err (errs, path, "contains a NUL character");
      return false;
    }
  *out = json_string_value (v);
  return true;
}

static bool
orch__get_bool (orch_errlist_t *errs, const char *path, json_t *v, bool *out)
{
  if (!json_is_boolean (v))
    {
      orch__err_type (errs, path, "a boolean (true or false)", v);
      return false;
    }
  *out = json_is_true (v);
  return true;
}

static bool
orch__get_int (orch_errlist_t *errs, const char *path, json_t *v, int64_t min, int64_t max,
               int64_t *out)
{
  int64_t x;

  if (!json_is_integer (v))
    {
      if (json_is_real (v))
        orch__err (errs, path, "expected an integer, got %.15g", json_real_value (v));
      else
        orch__err_type (errs, path, "an integer", v);
      return false;
    }
  x = json_integer_value (v);
  if (x < min || x > max)
    {
      if (max == INT64_MAX)
        orch__err (errs, path, "must be at least %lld (got %lld)", (long long) min, (long long) x);
      else
        orch__err (errs, path, "must be between %lld and %lld (got %lld)", (long long) min,
                   (long long) max, (long long) x);
      return false;
    }
  *out = x;
  return true;
}

/* Returns the index of v's string in names (NULL-terminated), or -1 after
 * reporting. */
static int
orch__get_enum (orch_errlist_t *errs, const char *path, json_t *v, const char *const *names)
{
  const char *s;
  char list[256];
  size_t off = 0;
  int i;

  if (!orch__get_string (errs, path, v, &s))
    return -1;
  for (i = 0; names[i]; i++)
    if (strcmp (s, names[i]) == 0)
      return i;
  list[0] = '\0';
  for (i = 0; names[i] && off < sizeof (list); i++)
    off += (size_t) snprintf (list + off, sizeof (list) - off, "%s\"%s\"",
                              i == 0 ? "" : (names[i + 1] ? ", " : " or "), names[i]);
  cleanup_free char *q = orch__quote (s);
  orch__err (errs, path, "%s is not one of %s", q, list);
  return -1;
}

static bool
orch__get_dns_label (orch_errlist_t *errs, const char *path, json_t *v, const char **out)
{
  const char *s;

  if (!orch__get_string (errs, path, v, &s))
    return false;
  if (!orch_is_dns_label (s))
    {
      cleanup_free char *q = orch__quote (s);
      orch__err (errs, path,
                 "%s is not a DNS label (lower-case letters, digits and '-', starting and "
                 "ending with a letter or digit, at most 63 characters)",
                 q);
      return false;
    }
  *out = s;
  return true;
}

static bool
orch__get_duration (orch_errlist_t *errs, const char *path, json_t *v, int64_t min_ms,
                    int64_t max_ms, const char *max_text, int64_t *out)
{
  const char *s;
  int64_t ms;
  int r;

  if (!json_is_string (v))
    {
      orch__err_type (errs, path, "a duration string such as \"10s\"", v);
      return false;
    }
  if (!orch__get_string (errs, path, v, &s))
    return false;
  cleanup_free char *q = orch__quote (s);
  r = orch_parse_duration_ms (s, &ms);
  if (r == -ERANGE)
    {
      orch__err (errs, path, "%s is too large", q);
      return false;
    }
  if (r < 0)
    {
      orch__err (errs, path,
                 "%s is not a duration; use a number with ms, s, m or h (e.g. \"500ms\", "
                 "\"10s\", \"1m30s\")",
                 q);
      return false;
    }
  if (ms < 0)
    {
      orch__err (errs, path, "must not be negative (got %s)", q);
      return false;
    }
  if (ms < min_ms)
    {
      orch__err (errs, path, "must be greater than zero (got %s)", q);
      return false;
    }
  if (ms > max_ms)
    {
      orch__err (errs, path, "%s is longer than the maximum of %s", q, max_text);
      return false;
    }
  *out = ms;
  return true;
}

/* An array of at least one string, as a NULL-terminated argv. */
static char **
orch__get_argv (orch_errlist_t *errs, const char *path, json_t *v)
{
  size_t n, i, before = errs->len;
  char **argv;

  if (!json_is_array (v))
    {
      orch__err_type (errs, path, "an array of strings", v);
      return NULL;
    }
  n = json_array_size (v);
  if (n == 0)
    {
      orch__err (errs, path, "must not be empty");
      return NULL;
    }
  argv = xcalloc (n + 1, sizeof (char *));
  for (i = 0; i < n; i++)
    {
      cleanup_free char *p = orch__path_index (path, i);
      const char *s;
      if (!orch__get_string (errs, p, json_array_get (v, i), &s))
        continue;
      if (i == 0 && s[0] == '\0')
        {
          orch__err (errs, p, "the program must not be empty");
          continue;
        }
      argv[i] = xstrdup (s);
    }
  if (errs->len != before)
    {
      for (i = 0; i < n; i++)
        free (argv[i]);
      free (argv);
      return NULL;
    }
  return argv;
}

static void
orch__free_argv (char **argv)
{
  if (argv == NULL)
    return;
  for (char **p = argv; *p; p++)
    free (*p);
  free (argv);
}

/* ---- fields ---- */

static void
orch__parse_image (orch_errlist_t *errs, const char *path, json_t *v, orch_spec_t *s)
{
  const char *img;
  size_t i, n;

  if (!orch__get_string (errs, path, v, &img))
    return;
  n = strlen (img);
  if (n == 0)
    {
      orch__err (errs, path, "must not be empty");
      return;
    }
  if (n > ORCH__IMAGE_MAX)
    {
      orch__err (errs, path, "is %zu characters long; at most %d are allowed", n,
                 ORCH__IMAGE_MAX);
      return;
    }
  for (i = 0; i < n; i++)
    {
      char c = img[i];
      if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
          || strchr ("._/:@-", c) != NULL)
        continue;
      cleanup_free char *q = orch__quote (img);
      if ((unsigned char) c < 0x20 || (unsigned char) c >= 0x7f)
        orch__err (errs, path,
                   "%s holds a character that is not allowed at offset %zu; use letters, digits "
                   "and . _ / : @ -",
                   q, i);
      else
        orch__err (errs, path,
                   "%s holds '%c', which is not allowed; use letters, digits and . _ / : @ -", q,
                   c);
      return;
    }
  s->image = xstrdup (img);
}

static bool
orch__env_name_ok (const char *k)
{
  if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || *k == '_'))
    return false;
  for (k++; *k; k++)
    if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9')
          || *k == '_'))
      return false;
  return true;
}

static int
orch__env_cmp (const void *a, const void *b)
{
  const char *x = *(const char *const *) a, *y = *(const char *const *) b;
  size_t lx = strcspn (x, "="), ly = strcspn (y, "=");
  int c = memcmp (x, y, lx < ly ? lx : ly);

  if (c != 0)
    return c;
  return lx < ly ? -1 : lx > ly;
}

static void
orch__parse_env (orch_errlist_t *errs, const char *path, json_t *v, orch_spec_t *s)
{
  size_t before = errs->len, n, i = 0;
  const char *key;
  json_t *val;
  char **env;

  if (!json_is_object (v))
    {
      orch__err_type (errs, path, "an object of strings", v);
      return;
    }
  n = json_object_size (v);
  if (n == 0)
    return;
  env = xcalloc (n + 1, sizeof (char *));
  json_object_foreach (v, key, val)
    {
      cleanup_free char *p = orch__path_key (path, key);
      const char *sv;

      if (!orch__env_name_ok (key))
        {
          cleanup_free char *q = orch__quote (key);
          orch__err (errs, p,
                     "%s is not a valid environment variable name (letters, digits and '_', "
                     "not starting with a digit)",
                     q);
          continue;
        }
      if (!orch__get_string (errs, p, val, &sv))
        continue;
      env[i++] = xasprintf ("%s=%s", key, sv);
    }
  if (errs->len != before)
    {
      orch__free_argv (env);
      return;
    }
  qsort (env, i, sizeof (char *), orch__env_cmp);
  s->env = env;
}

/* Shape of a quantity string, to say more than "invalid" when it fails. */
static size_t
orch__number_prefix (const char *s)
{
  size_t i = 0;

  if (s[i] == '-')
    i++;
  while ((s[i] >= '0' && s[i] <= '9') || s[i] == '.')
    i++;
  return i;
}

static void
orch__parse_cpu (orch_errlist_t *errs, const char *path, json_t *v, orch_spec_t *s)
{
  int64_t milli;

  if (json_is_integer (v))
    {
      json_int_t x = json_integer_value (v);
      if (x > INT64_MAX / 1000 || x < -(INT64_MAX / 1000))
        {
          orch__err (errs, path, "%lld cores is too large", (long long) x);
          return;
        }
      milli = (int64_t) x * 1000;
    }
  else if (json_is_real (v))
    {
      /* Rounded by hand: libm is not linked for this one use. */
      double d = json_real_value (v) * 1000.0, r, diff;
      if (!isfinite (d) || d > 9e15 || d < -9e15)
        {
          orch__err (errs, path, "%.15g cores is too large", json_real_value (v));
          return;
        }
      r = (double) (int64_t) (d + (d >= 0 ? 0.5 : -0.5));
      diff = d - r;
      if (diff > 1e-6 || diff < -1e-6)
        {
          orch__err (errs, path,
                     "%.15g is finer than 1 millicore; use at most 3 decimals (or \"250m\")",
                     json_real_value (v));
          return;
        }
      milli = (int64_t) r;
    }
  else if (json_is_string (v))
    {
      const char *str;
      int r;

      if (!orch__get_string (errs, path, v, &str))
        return;
      cleanup_free char *q = orch__quote (str);
      r = orch_parse_cpu_milli (str, &milli);
      if (r == -ERANGE)
        {
          orch__err (errs, path, "%s is too large", q);
          return;
        }
      if (r < 0)
        {
          const char *dot = strchr (str, '.');
          size_t np = orch__number_prefix (str);
          if (dot != NULL && (str[np] == '\0' || (str[np] == 'm' && str[np + 1] == '\0'))
              && strchr (dot + 1, '.') == NULL && np > 0 && str[np - 1] != '.')
            orch__err (errs, path,
                       "%s is finer than 1 millicore; use at most 3 decimals of a core, or "
                       "whole millicores (\"250m\")",
                       q);
          else
            orch__err (errs, path,
                       "%s is not a CPU quantity; use cores (\"0.5\", \"2\") or millicores "
                       "(\"250m\")",
                       q);
          return;
        }
    }
  else
    {
      orch__err_type (errs, path, "a string such as \"250m\" or \"0.5\", or a number", v);
      return;
    }
  if (milli <= 0)
    {
      if (json_is_string (v))
        {
          cleanup_free char *q = orch__quote (json_string_value (v));
          orch__err (errs, path, "must be greater than zero (got %s)", q);
        }
      else
        orch__err (errs, path, "must be greater than zero");
      return;
    }
  s->cpu_milli = milli;
}

static void
orch__parse_memory (orch_errlist_t *errs, const char *path, json_t *v, orch_spec_t *s)
{
  const char *str;
  int64_t bytes;
  int r;

  if (!json_is_string (v))
    {
      orch__err_type (errs, path, "a string such as \"64Mi\"", v);
      return;
    }
  if (!orch__get_string (errs, path, v, &str))
    return;
  cleanup_free char *q = orch__quote (str);
  r = orch_parse_memory_bytes (str, &bytes);
  if (r == -ERANGE)
    {
      orch__err (errs, path, "%s is too large", q);
      return;
    }
  if (r < 0)
    {
      size_t np = orch__number_prefix (str);
      const char *suf = str + np;
      int64_t ignored;
      char ex[64] = "64Mi";

      /* Valid number and suffix but not a whole number of bytes? */
      if (np > 0 && str[np - 1] != '.' && strchr (str, '.') != NULL)
        {
          cleanup_free char *probe = xasprintf ("1%s", suf);
          if (orch_parse_memory_bytes (probe, &ignored) == 0)
            {
              orch__err (errs, path, "%s is not a whole number of bytes", q);
              return;
            }
        }
      /* Suggest the binary unit the user most likely meant: "64MB" -> "64Mi". */
      while (*suf == ' ' || *suf == '\t')
        suf++;
      if (np > 0 && np < 24 && str[0] != '-' && *suf != '\0' && strchr ("kKmMgGtTpPeE", *suf))
        {
          char u = *suf >= 'a' ? (char) (*suf - 'a' + 'A') : *suf;
          snprintf (ex, sizeof (ex), "%.*s%ci", (int) np, str, u);
          if (orch_parse_memory_bytes (ex, &ignored) != 0)
            snprintf (ex, sizeof (ex), "64Mi");
        }
      orch__err (errs, path, "%s is not a quantity; use Mi or Gi (e.g. \"%s\")", q, ex);
      return;
    }
  if (bytes <= 0)
    {
      orch__err (errs, path, "must be greater than zero (got %s)", q);
      return;
    }
  s->memory_bytes = bytes;
}

static void
orch__parse_resources (orch_errlist_t *errs, const char *path, json_t *v, orch_spec_t *s)
{
  static const char *const keys[] = { "cpu", "memory", "pids", NULL };
  json_t *f;
  int64_t x;

  if (!json_is_object (v))
    {
      orch__err_type (errs, path, "an object", v);
      return;
    }
  if ((f = json_object_get (v, "pids")) != NULL)
    {
      cleanup_free char *p = orch__path_key (path, "pids");
      if (orch__get_int (errs, p, f, ORCH__PIDS_MIN, ORCH__PIDS_MAX, &x))
        s->pids_max = x;
    }
  orch__check_keys (errs, path, v, keys);
  if ((f = json_object_get (v, "cpu")) == NULL)
    orch__err_missing (errs, path, "cpu");
  else
    {
      cleanup_free char *p = orch__path_key (path, "cpu");
      orch__parse_cpu (errs, p, f, s);
    }
  if ((f = json_object_get (v, "memory")) == NULL)
    orch__err_missing (errs, path, "memory");
  else
    {
      cleanup_free char *p = orch__path_key (path, "memory");
      orch__parse_memory (errs, p, f, s);
    }
}

static void
orch__parse_ports (orch_errlist_t *errs, const char *path, json_t *v, orch_spec_t *s)
{
  static const char *const keys[] = { "name", "port", "protocol", NULL };
  static const char *const protos[] = { "tcp", "udp", NULL };
  size_t n, i, j;

  if (!json_is_array (v))
    {
      orch__err_type (errs, path, "an array", v);
      return;
    }
  n = json_array_size (v);
  if (n == 0)
    return;
  s->ports = xcalloc (n, sizeof (orch_port_t));
  s->n_ports = n;
  for (i = 0; i < n; i++)
    {
      cleanup_free char *pp = orch__path_index (path, i);
      json_t *e = json_array_get (v, i), *f;
      orch_port_t *port = &s->ports[i];
      int64_t num;
      const char *str;

      if (!json_is_object (e))
        {
          orch__err_type (errs, pp, "an object such as {\"port\": 8080}", e);
          continue;
        }
      orch__check_keys (errs, pp, e, keys);
      if ((f = json_object_get (e, "name")) != NULL)
        {
          cleanup_free char *p = orch__path_key (pp, "name");
          if (orch__get_dns_label (errs, p, f, &str))
            {
              port->name = xstrdup (str);
              for (j = 0; j < i; j++)
                if (s->ports[j].name != NULL && strcmp (s->ports[j].name, str) == 0)
                  {
                    orch__err (errs, p, "duplicate port name \"%s\" (also %s[%zu].name)", str,
                               path, j);
                    break;
                  }
            }
        }
      if ((f = json_object_get (e, "protocol")) != NULL)
        {
          cleanup_free char *p = orch__path_key (pp, "protocol");
          int k = orch__get_enum (errs, p, f, protos);
          if (k >= 0)
            port->protocol = xstrdup (protos[k]);
        }
      else
        port->protocol = xstrdup ("tcp");
      if ((f = json_object_get (e, "port")) == NULL)
        orch__err_missing (errs, pp, "port");
      else
        {
          cleanup_free char *p = orch__path_key (pp, "port");
          if (orch__get_int (errs, p, f, 1, 65535, &num))
            {
              port->port = (uint16_t) num;
              /* The same number may serve tcp and udp (DNS on 53); the same
               * number and protocol twice cannot both be bound. */
              for (j = 0; j < i; j++)
                if (s->ports[j].port == port->port && port->protocol != NULL
                    && s->ports[j].protocol != NULL
                    && strcmp (s->ports[j].protocol, port->protocol) == 0)
                  {
                    orch__err (errs, p, "duplicate port %u/%s (also %s[%zu].port)",
                               (unsigned) port->port, port->protocol, path, j);
                    break;
                  }
            }
        }
    }
}

static void
orch__parse_constraints (orch_errlist_t *errs, const char *path, json_t *v, orch_spec_t *s)
{
  static const char *const keys[] = { "attribute", "operator", "value", "values", NULL };
  static const char *const ops[] = { "=", "!=", "in", "not_in", "exists", NULL };
  size_t n, i, k;

  if (!json_is_array (v))
    {
      orch__err_type (errs, path, "an array", v);
      return;
    }
  n = json_array_size (v);
  if (n == 0)
    return;
  s->constraints = xcalloc (n, sizeof (orch_constraint_t));
  s->n_constraints = n;
  for (i = 0; i < n; i++)
    {
      cleanup_free char *cp = orch__path_index (path, i);
      cleanup_free char *vp = NULL, *vsp = NULL;
      json_t *e = json_array_get (v, i), *f, *value, *values;
      orch_constraint_t *c = &s->constraints[i];
      const char *str;
      int op = -1;

      if (!json_is_object (e))
        {
          orch__err_type (errs, cp, "an object", e);
          continue;
        }
      orch__check_keys (errs, cp, e, keys);
      if ((f = json_object_get (e, "attribute")) == NULL)
        orch__err_missing (errs, cp, "attribute");
      else
        {
          cleanup_free char *p = orch__path_key (cp, "attribute");
          if (orch__get_string (errs, p, f, &str))
            {
              if (str[0] == '\0')
                orch__err (errs, p, "must not be empty");
              else
                c->attribute = xstrdup (str);
            }
        }
      if ((f = json_object_get (e, "operator")) == NULL)
        orch__err_missing (errs, cp, "operator");
      else
        {
          cleanup_free char *p = orch__path_key (cp, "operator");
          op = orch__get_enum (errs, p, f, ops);
        }
      if (op < 0)
        continue;
      c->op = (orch_constraint_op_t) op;
      value = json_object_get (e, "value");
      values = json_object_get (e, "values");
      vp = orch__path_key (cp, "value");
      vsp = orch__path_key (cp, "values");
      switch (c->op)
        {
        case ORCH_OP_EQ:
        case ORCH_OP_NE:
          if (values != NULL)
            orch__err (errs, vsp, "not allowed with operator \"%s\" (use \"value\")", ops[op]);
          if (value == NULL)
            orch__err (errs, vp, "required with operator \"%s\"", ops[op]);
          else if (orch__get_string (errs, vp, value, &str))
            {
              c->values = xcalloc (1, sizeof (char *));
              c->values[0] = xstrdup (str);
              c->n_values = 1;
            }
          break;
        case ORCH_OP_IN:
        case ORCH_OP_NOT_IN:
          if (value != NULL)
            orch__err (errs, vp, "not allowed with operator \"%s\" (use \"values\")", ops[op]);
          if (values == NULL)
            orch__err (errs, vsp, "required with operator \"%s\"", ops[op]);
          else if (!json_is_array (values))
            orch__err_type (errs, vsp, "an array of strings", values);
          else if (json_array_size (values) == 0)
            orch__err (errs, vsp, "must not be empty");
          else
            {
              size_t nv = json_array_size (values);
              c->values = xcalloc (nv, sizeof (char *));
              for (k = 0; k < nv; k++)
                {
                  cleanup_free char *p = orch__path_index (vsp, k);
                  if (orch__get_string (errs, p, json_array_get (values, k), &str))
                    c->values[c->n_values++] = xstrdup (str);
                }
            }
          break;
        case ORCH_OP_EXISTS:
          if (value != NULL)
            orch__err (errs, vp, "not allowed with operator \"exists\"");
          if (values != NULL)
            orch__err (errs, vsp, "not allowed with operator \"exists\"");
          break;
        }
    }
}

static void
orch__parse_restart (orch_errlist_t *errs, const char *path, json_t *v, orch_spec_t *s)
{
  static const char *const keys[] = { "policy", "max_restarts", "backoff", NULL };
  static const char *const policies[] = { "never", "on-failure", "always", NULL };
  json_t *f;
  int64_t x;

  if (!json_is_object (v))
    {
      orch__err_type (errs, path, "an object", v);
      return;
    }
  orch__check_keys (errs, path, v, keys);
  if ((f = json_object_get (v, "policy")) != NULL)
    {
      cleanup_free char *p = orch__path_key (path, "policy");
      int k = orch__get_enum (errs, p, f, policies);
      if (k >= 0)
        s->restart_policy = (orch_restart_policy_t) k;
    }
  if ((f = json_object_get (v, "max_restarts")) != NULL)
    {
      cleanup_free char *p = orch__path_key (path, "max_restarts");
      if (orch__get_int (errs, p, f, 0, ORCH__MAX_RESTARTS_MAX, &x))
        s->max_restarts = (uint32_t) x;
    }
  if ((f = json_object_get (v, "backoff")) != NULL)
    {
      cleanup_free char *p = orch__path_key (path, "backoff");
      orch__get_duration (errs, p, f, 0, INT64_MAX, "", &s->restart_backoff_ms);
    }
}

static void
orch__parse_health (orch_errlist_t *errs, const char *path, json_t *v, orch_spec_t *s)
{
  static const char *const keys[]
      = { "exec", "tcp", "http", "interval", "timeout", "failure_threshold", NULL };
  static const char *const http_keys[] = { "port", "path", NULL };
  static const char *const kinds[] = { "exec", "tcp", "http" };
  orch_health_t *h = &s->health;
  const char *present[3];
  size_t n_present = 0, i;
  json_t *f;
  int64_t x;

  if (!json_is_object (v))
    {
      orch__err_type (errs, path, "an object", v);
      return;
    }
  orch__check_keys (errs, path, v, keys);
  h->set = true;
  for (i = 0; i < 3; i++)
    if (json_object_get (v, kinds[i]) != NULL)
      present[n_present++] = kinds[i];
  if (n_present == 0)
    orch__err (errs, path, "needs exactly one probe: \"exec\", \"tcp\" or \"http\"");
  else if (n_present > 1)
    orch__err (errs, path, "has both \"%s\" and \"%s\"; use exactly one probe", present[0],
               present[1]);
  if ((f = json_object_get (v, "exec")) != NULL)
    {
      cleanup_free char *p = orch__path_key (path, "exec");
      h->exec = orch__get_argv (errs, p, f);
    }
  if ((f = json_object_get (v, "tcp")) != NULL)
    {
      cleanup_free char *p = orch__path_key (path, "tcp");
      if (orch__get_int (errs, p, f, 1, 65535, &x))
        h->tcp_port = (uint16_t) x;
    }
  if ((f = json_object_get (v, "http")) != NULL)
    {
      cleanup_free char *hp = orch__path_key (path, "http");
      json_t *g;
      if (!json_is_object (f))
        orch__err_type (errs, hp, "an object such as {\"port\": 8080, \"path\": \"/health\"}", f);
      else
        {
          orch__check_keys (errs, hp, f, http_keys);
          if ((g = json_object_get (f, "port")) == NULL)
            orch__err_missing (errs, hp, "port");
          else
            {
              cleanup_free char *p = orch__path_key (hp, "port");
              if (orch__get_int (errs, p, g, 1, 65535, &x))
                h->http_port = (uint16_t) x;
            }
          if ((g = json_object_get (f, "path")) == NULL)
            h->http_path = xstrdup ("/");
          else
            {
              cleanup_free char *p = orch__path_key (hp, "path");
              const char *str;
              if (orch__get_string (errs, p, g, &str))
                {
                  if (str[0] != '/')
                    {
                      cleanup_free char *q = orch__quote (str);
                      orch__err (errs, p, "%s must start with '/'", q);
                    }
                  else
                    h->http_path = xstrdup (str);
                }
            }
        }
    }
  if ((f = json_object_get (v, "interval")) != NULL)
    {
      cleanup_free char *p = orch__path_key (path, "interval");
      orch__get_duration (errs, p, f, 1, INT64_MAX, "", &h->interval_ms);
    }
  if ((f = json_object_get (v, "timeout")) != NULL)
    {
      cleanup_free char *p = orch__path_key (path, "timeout");
      orch__get_duration (errs, p, f, 1, INT64_MAX, "", &h->timeout_ms);
    }
  if ((f = json_object_get (v, "failure_threshold")) != NULL)
    {
      cleanup_free char *p = orch__path_key (path, "failure_threshold");
      if (orch__get_int (errs, p, f, 1, ORCH__FAILURE_THRESHOLD_MAX, &x))
        h->failure_threshold = (uint32_t) x;
    }
}

static void
orch__parse_update (orch_errlist_t *errs, const char *path, json_t *v, orch_spec_t *s)
{
  static const char *const keys[] = { "max_parallel", NULL };
  json_t *f;
  int64_t x;

  if (!json_is_object (v))
    {
      orch__err_type (errs, path, "an object", v);
      return;
    }
  orch__check_keys (errs, path, v, keys);
  if ((f = json_object_get (v, "max_parallel")) != NULL)
    {
      cleanup_free char *p = orch__path_key (path, "max_parallel");
      if (orch__get_int (errs, p, f, 1, ORCH_SPEC_MAX_REPLICAS, &x))
        s->update_max_parallel = (uint32_t) x;
    }
}

/* A list of system call names, each known to libseccomp; NULL-terminated,
 * or NULL after reporting a problem. */
static char **
orch__get_syscalls (orch_errlist_t *errs, const char *path, json_t *v)
{
  size_t i, n_ok = 0;
  json_t *e;

  if (!json_is_array (v))
    {
      orch__err_type (errs, path, "an array of system call names", v);
      return NULL;
    }
  if (json_array_size (v) > ORCH__SYSCALLS_MAX)
    {
      orch__err (errs, path, "at most %d system calls (got %zu)", ORCH__SYSCALLS_MAX,
                 json_array_size (v));
      return NULL;
    }
  char **out = xcalloc (json_array_size (v) + 1, sizeof (char *));
  json_array_foreach (v, i, e)
  {
    cleanup_free char *p = orch__path_index (path, i);
    const char *name;
    if (!orch__get_string (errs, p, e, &name))
      continue;
    if (seccomp_syscall_resolve_name (name) == __NR_SCMP_ERROR)
      {
        cleanup_free char *q = orch__quote (name);
        orch__err (errs, p, "%s is not a system call this host knows", q);
        continue;
      }
    out[n_ok++] = xstrdup (name);
  }
  if (n_ok != json_array_size (v))
    {
      orch__free_argv (out);
      return NULL;
    }
  return out;
}

/* "seccomp": {"allow": [...], "deny": [...]} adjusts the default filter;
 * there is no way to turn it off. */
static void
orch__parse_seccomp (orch_errlist_t *errs, const char *path, json_t *v, orch_spec_t *s)
{
  static const char *const keys[] = { "allow", "deny", NULL };
  json_t *f;

  if (!json_is_object (v))
    {
      orch__err_type (errs, path, "an object", v);
      return;
    }
  orch__check_keys (errs, path, v, keys);
  if ((f = json_object_get (v, "allow")) != NULL)
    {
      cleanup_free char *p = orch__path_key (path, "allow");
      s->seccomp_allow = orch__get_syscalls (errs, p, f);
    }
  if ((f = json_object_get (v, "deny")) != NULL)
    {
      cleanup_free char *p = orch__path_key (path, "deny");
      s->seccomp_deny = orch__get_syscalls (errs, p, f);
    }
  for (size_t i = 0; s->seccomp_deny && s->seccomp_deny[i]; i++)
    for (size_t j = 0; s->seccomp_allow && s->seccomp_allow[j]; j++)
      if (strcmp (s->seccomp_deny[i], s->seccomp_allow[j]) == 0)
        {
          cleanup_free char *p = orch__path_key (path, "deny");
          cleanup_free char *pi = orch__path_index (p, i);
          cleanup_free char *q = orch__quote (s->seccomp_deny[i]);
          orch__err (errs, pi, "%s is also in allow", q);
        }
}

/* Handlers for the fields of a service, one per key; each reports its own
 * problems and fills s only from valid input. */
typedef void (*orch__field_fn) (orch_errlist_t *errs, const char *path, json_t *v,
                                orch_spec_t *s);

static void
orch__f_name (orch_errlist_t *errs, const char *path, json_t *v, orch_spec_t *s)
{
  const char *str;
  if (orch__get_dns_label (errs, path, v, &str))
    s->name = xstrdup (str);
}

static void
orch__f_tenant (orch_errlist_t *errs, const char *path, json_t *v, orch_spec_t *s)
{
  const char *str;
  if (orch__get_dns_label (errs, path, v, &str))
    {
      free (s->tenant);
      s->tenant = xstrdup (str);
    }
}

static void
orch__f_replicas (orch_errlist_t *errs, const char *path, json_t *v, orch_spec_t *s)
{
  int64_t x;
  if (orch__get_int (errs, path, v, 0, ORCH_SPEC_MAX_REPLICAS, &x))
    s->replicas = (uint32_t) x;
}

static void
orch__f_isolation (orch_errlist_t *errs, const char *path, json_t *v, orch_spec_t *s)
{
  static const char *const names[] = { "container", "microvm", "auto", NULL };
  int k = orch__get_enum (errs, path, v, names);
  if (k >= 0)
    s->isolation = (orch_isolation_t) k;
}

static void
orch__f_untrusted (orch_errlist_t *errs, const char *path, json_t *v, orch_spec_t *s)
{
  orch__get_bool (errs, path, v, &s->untrusted);
}

static void
orch__f_command (orch_errlist_t *errs, const char *path, json_t *v, orch_spec_t *s)
{
  s->command = orch__get_argv (errs, path, v);
}

static void
orch__f_network (orch_errlist_t *errs, const char *path, json_t *v, orch_spec_t *s)
{
  static const char *const names[] = { "bridge", "host", NULL };
  int k = orch__get_enum (errs, path, v, names);
  if (k >= 0)
    s->network = (orch_network_t) k;
}

static void
orch__f_spread (orch_errlist_t *errs, const char *path, json_t *v, orch_spec_t *s)
{
  orch__get_bool (errs, path, v, &s->spread);
}

static void
orch__f_stop_grace (orch_errlist_t *errs, const char *path, json_t *v, orch_spec_t *s)
{
  orch__get_duration (errs, path, v, 0, ORCH__STOP_GRACE_MAX_MS, "5m", &s->stop_grace_ms);
}

static void
orch__f_user_namespace (orch_errlist_t *errs, const char *path, json_t *v, orch_spec_t *s)
{
  orch__get_bool (errs, path, v, &s->user_namespace);
}

static const struct
{
  const char *key;
  bool required;
  orch__field_fn fn;
} orch__service_fields[] = {
  { "name", true, orch__f_name },
  { "tenant", false, orch__f_tenant },
  { "replicas", false, orch__f_replicas },
  { "isolation", false, orch__f_isolation },
  { "untrusted", false, orch__f_untrusted },
  { "image", true, orch__parse_image },
  { "command", false, orch__f_command },
  { "env", false, orch__parse_env },
  { "resources", true, orch__parse_resources },
  { "ports", false, orch__parse_ports },
  { "network", false, orch__f_network },
  { "constraints", false, orch__parse_constraints },
  { "spread", false, orch__f_spread },
  { "restart", false, orch__parse_restart },
  { "health", false, orch__parse_health },
  { "update", false, orch__parse_update },
  { "stop_grace", false, orch__f_stop_grace },
  { "user_namespace", false, orch__f_user_namespace },
  { "seccomp", false, orch__parse_seccomp },
};

#define ORCH__N_SERVICE_FIELDS (sizeof (orch__service_fields) / sizeof (orch__service_fields[0]))

static void
orch__spec_defaults (orch_spec_t *s)
{
  memset (s, 0, sizeof (*s));
  s->tenant = xstrdup ("default");
  s->replicas = 1;
  s->isolation = ORCH_ISO_CONTAINER;
  s->network = ORCH_NET_BRIDGE;
  s->restart_policy = ORCH_RESTART_ON_FAILURE;
  s->max_restarts = 5;
  s->restart_backoff_ms = 1000;
  s->health.interval_ms = 10000;
  s->health.timeout_ms = 2000;
  s->health.failure_threshold = 3;
  s->update_max_parallel = 1;
  s->stop_grace_ms = 10000;
}

/* Validates one service object at base ("" or "services[i]") into s. The
 * caller checks errs->len to learn whether it succeeded. */
static void
orch__parse_service (orch_errlist_t *errs, const char *base, json_t *obj, orch_spec_t *s)
{
  const char *keys[ORCH__N_SERVICE_FIELDS + 1];
  size_t before = errs->len, i;

  orch__spec_defaults (s);
  for (i = 0; i < ORCH__N_SERVICE_FIELDS; i++)
    keys[i] = orch__service_fields[i].key;
  keys[i] = NULL;
  orch__check_keys (errs, base, obj, keys);
  for (i = 0; i < ORCH__N_SERVICE_FIELDS; i++)
    {
      json_t *f = json_object_get (obj, orch__service_fields[i].key);
      if (f == NULL)
        {
          if (orch__service_fields[i].required)
            orch__err_missing (errs, base, orch__service_fields[i].key);
          continue;
        }
      cleanup_free char *p = orch__path_key (base, orch__service_fields[i].key);
      orch__service_fields[i].fn (errs, p, f, s);
    }
  if (errs->len == before)
    {
      /* Re-serialised as given, without defaults, so that equal input gives
       * equal text whatever the key order or spacing. */
      s->json = json_dumps (obj, JSON_COMPACT | JSON_SORT_KEYS);
      if (s->json == NULL)
        abort ();
    }
}

/* ---- public ---- */

void
orch_spec_clear (orch_spec_t *s)
{
  size_t i, j;

  if (s == NULL)
    return;
  free (s->name);
  free (s->tenant);
  free (s->image);
  orch__free_argv (s->command);
  orch__free_argv (s->env);
  for (i = 0; i < s->n_ports; i++)
    {
      free (s->ports[i].name);
      free (s->ports[i].protocol);
    }
  free (s->ports);
  for (i = 0; i < s->n_constraints; i++)
    {
      free (s->constraints[i].attribute);
      for (j = 0; j < s->constraints[i].n_values; j++)
        free (s->constraints[i].values[j]);
      free (s->constraints[i].values);
    }
  free (s->constraints);
  orch__free_argv (s->health.exec);
  free (s->health.http_path);
  orch__free_argv (s->seccomp_allow);
  orch__free_argv (s->seccomp_deny);
  free (s->json);
  memset (s, 0, sizeof (*s));
}

void
orch_specs_free (orch_spec_t *specs, size_t n)
{
  size_t i;

  if (specs == NULL)
    return;
  for (i = 0; i < n; i++)
    orch_spec_clear (&specs[i]);
  free (specs);
}

int
orch_spec_parse_doc (json_t *doc, orch_spec_t **out, size_t *n, orch_errlist_t *errs)
{
  static const char *const top_keys[] = { "services", NULL };
  size_t before = errs->len, count, i, j;
  orch_spec_t *specs;
  json_t *list;

  if (doc == NULL || !json_is_object (doc))
    {
      orch__err (errs, "",
                 "expected a service object or {\"services\": [...]}, got %s",
                 doc == NULL ? "nothing" : orch__kind (doc));
      return -1;
    }
  list = json_object_get (doc, "services");
  if (list == NULL)
    {
      specs = xcalloc (1, sizeof (orch_spec_t));
      orch__parse_service (errs, "", doc, &specs[0]);
      count = 1;
    }
  else
    {
      orch__check_keys (errs, "", doc, top_keys);
      if (!json_is_array (list))
        {
          orch__err_type (errs, "services", "an array of service objects", list);
          return -1;
        }
      count = json_array_size (list);
      if (count == 0)
        {
          orch__err (errs, "services", "must not be empty");
          return -1;
        }
      if (count > ORCH_SPEC_MAX_SERVICES)
        {
          orch__err (errs, "services", "holds %zu services; at most %d are allowed", count,
                     ORCH_SPEC_MAX_SERVICES);
          return -1;
        }
      specs = xcalloc (count, sizeof (orch_spec_t));
      for (i = 0; i < count; i++)
        {
          cleanup_free char *p = orch__path_index ("services", i);
          json_t *e = json_array_get (list, i);

          if (!json_is_object (e))
            {
              orch__err_type (errs, p, "a service object", e);
              continue;
            }
          orch__parse_service (errs, p, e, &specs[i]);
          if (specs[i].name == NULL)
            continue;
          for (j = 0; j < i; j++)
            if (specs[j].name != NULL && strcmp (specs[j].name, specs[i].name) == 0)
              {
                cleanup_free char *np = orch__path_key (p, "name");
                orch__err (errs, np, "duplicate service name \"%s\" (also services[%zu].name)",
                           specs[i].name, j);
                break;
              }
        }
    }
  if (errs->len != before)
    {
      orch_specs_free (specs, count);
      return -1;
    }
  *out = specs;
  *n = count;
  return 0;
}

static json_t *
orch__load (const char *text, size_t len, orch_errlist_t *errs)
{
  json_error_t jerr;
  json_t *doc;

  if (text == NULL)
    {
      orch__err (errs, "", "no input");
      return NULL;
    }
  /* The limit applies before any parsing allocates. */
  if (len > ORCH_SPEC_MAX_BYTES)
    {
      orch__err (errs, "", "%zu bytes is more than the limit of %d bytes", len,
                 ORCH_SPEC_MAX_BYTES);
      return NULL;
    }
  {
    size_t i = 0;
    while (i < len && strchr (" \t\r\n", text[i]) != NULL && text[i] != '\0')
      i++;
    if (i == len)
      {
        orch__err (errs, "", "is empty; expected a service object or {\"services\": [...]}");
        return NULL;
      }
  }
  doc = json_loadb (text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
  if (doc == NULL)
    {
      /* jansson quotes the offending input; keep the message on one line. */
      for (char *c = jerr.text; *c; c++)
        if ((unsigned char) *c < 0x20 || (unsigned char) *c == 0x7f)
          *c = ' ';
      orch_errlist_add (errs, "line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
      return NULL;
    }
  return doc;
}

int
orch_spec_parse_text (const char *text, size_t len, orch_spec_t **out, size_t *n,
                      orch_errlist_t *errs)
{
  cleanup_json json_t *doc = orch__load (text, len, errs);

  if (doc == NULL)
    return -1;
  return orch_spec_parse_doc (doc, out, n, errs);
}

int
orch_spec_parse_one (const char *json_text, orch_spec_t *out, orch_errlist_t *errs)
{
  cleanup_json json_t *doc = NULL;
  size_t before = errs->len;
  orch_spec_t s;

  if (json_text == NULL)
    {
      orch__err (errs, "", "no input");
      return -1;
    }
  doc = orch__load (json_text, strlen (json_text), errs);
  if (doc == NULL)
    return -1;
  if (!json_is_object (doc))
    {
      orch__err (errs, "", "expected a service object, got %s", orch__kind (doc));
      return -1;
    }
  orch__parse_service (errs, "", doc, &s);
  if (errs->len != before)
    {
      orch_spec_clear (&s);
      return -1;
    }
  *out = s;
  return 0;
}

const char *
orch_isolation_name (orch_isolation_t iso)
{
  switch (iso)
    {
    case ORCH_ISO_CONTAINER:
      return "container";
    case ORCH_ISO_MICROVM:
      return "microvm";
    case ORCH_ISO_AUTO:
      return "auto";
    }
  return "unknown";
}

const char *
orch_restart_policy_name (orch_restart_policy_t p)
{
  switch (p)
    {
    case ORCH_RESTART_NEVER:
      return "never";
    case ORCH_RESTART_ON_FAILURE:
      return "on-failure";
    case ORCH_RESTART_ALWAYS:
      return "always";
    }
  return "unknown";
}
