/* Errors with context (see orch_err.h). */
#define _GNU_SOURCE
#include "orch_err.h"
#include "orch_util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int
orch__err_ret (int code)
{
  return code > 0 ? -code : -1;
}

int
orch_err_set (orch_err_t *err, int code, const char *fmt, ...)
{
  va_list ap;

  if (err == NULL)
    return orch__err_ret (code);
  err->code = code;
  va_start (ap, fmt);
  vsnprintf (err->msg, sizeof (err->msg), fmt, ap);
  va_end (ap);
  return orch__err_ret (code);
}

int
orch_err_sys (orch_err_t *err, const char *fmt, ...)
{
  /* Save errno first: formatting may clobber it. */
  int saved = errno;
  va_list ap;
  size_t n;

  if (err == NULL)
    return orch__err_ret (saved);
  err->code = saved;
  va_start (ap, fmt);
  vsnprintf (err->msg, sizeof (err->msg), fmt, ap);
  va_end (ap);
  n = strlen (err->msg);
  if (n < sizeof (err->msg))
    snprintf (err->msg + n, sizeof (err->msg) - n, ": %s", strerror (saved));
  return orch__err_ret (saved);
}

int
orch_err_wrap (orch_err_t *err, const char *fmt, ...)
{
  char ctx[ORCH_ERR_MSG_MAX];
  char old[ORCH_ERR_MSG_MAX];
  va_list ap;
  size_t n;

  if (err == NULL)
    return -1;
  va_start (ap, fmt);
  vsnprintf (ctx, sizeof (ctx), fmt, ap);
  va_end (ap);
  memcpy (old, err->msg, sizeof (old));
  old[sizeof (old) - 1] = '\0';
  /* Long messages are cut at the end, keeping the outer context. */
  n = strlen (ctx);
  memcpy (err->msg, ctx, n + 1);
  if (old[0] != '\0' && n + 2 < sizeof (err->msg))
    {
      size_t room = sizeof (err->msg) - n - 3, m = strlen (old);
      if (m > room)
        m = room;
      memcpy (err->msg + n, ": ", 2);
      memcpy (err->msg + n + 2, old, m);
      err->msg[n + 2 + m] = '\0';
    }
  return orch__err_ret (err->code);
}

void
orch_err_clear (orch_err_t *err)
{
  if (err == NULL)
    return;
  err->code = 0;
  err->msg[0] = '\0';
}

void
orch_errlist_add (orch_errlist_t *l, const char *fmt, ...)
{
  va_list ap;
  char *s = NULL;
  int r;

  va_start (ap, fmt);
  r = vasprintf (&s, fmt, ap);
  va_end (ap);
  if (r < 0)
    abort ();
  orch_grow ((void **) &l->items, &l->cap, l->len + 1, sizeof (char *));
  l->items[l->len++] = s;
}

void
orch_errlist_free (orch_errlist_t *l)
{
  size_t i;

  if (l == NULL)
    return;
  for (i = 0; i < l->len; i++)
    free (l->items[i]);
  free (l->items);
  l->items = NULL;
  l->len = 0;
  l->cap = 0;
}

char *
orch_errlist_join (const orch_errlist_t *l)
{
  size_t total = 1, i, off = 0;
  char *out;

  for (i = 0; i < l->len; i++)
    total += strlen (l->items[i]) + 1;
  out = xmalloc (total);
  for (i = 0; i < l->len; i++)
    {
      size_t n = strlen (l->items[i]);
      if (i > 0)
        out[off++] = '\n';
      memcpy (out + off, l->items[i], n);
      off += n;
    }
  out[off] = '\0';
  return out;
}
