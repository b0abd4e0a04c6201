/* Errors with context, in the style of crun's libcrun_error_t.
 *
 * A function that can fail with a message takes `orch_err_t *err`, returns a
 * negative value on failure and fills `err`; success leaves `err` untouched.
 * Callers add context while passing an error up with orch_err_wrap(). */
#ifndef ORCH_ERR_H
#define ORCH_ERR_H

#include <stddef.h>

#define ORCH_ERR_MSG_MAX 1024

typedef struct orch_err_s
{
  int code;                   /* errno value, or 0 when not from a syscall */
  char msg[ORCH_ERR_MSG_MAX]; /* human text, "" when unset */
} orch_err_t;

/* Sets err (if non-NULL) to code + formatted text; returns -1 (or -code when
 * code > 0) so that callers can `return orch_err_set (...)`. */
int orch_err_set (orch_err_t *err, int code, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

/* Like orch_err_set with code = errno and ": strerror(errno)" appended. */
int orch_err_sys (orch_err_t *err, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

/* Prepends "context: " to err's message; returns the same value as orch_err_set. */
int orch_err_wrap (orch_err_t *err, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

/* Clears err. */
void orch_err_clear (orch_err_t *err);

/* A growable list of messages, used where every problem is reported, not only
 * the first (spec validation). Owns its strings. */
typedef struct orch_errlist_s
{
  char **items;
  size_t len;
  size_t cap;
} orch_errlist_t;

void orch_errlist_add (orch_errlist_t *l, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
void orch_errlist_free (orch_errlist_t *l);
/* Joins items with "\n" into a newly allocated string (caller frees). */
char *orch_errlist_join (const orch_errlist_t *l);

#endif
