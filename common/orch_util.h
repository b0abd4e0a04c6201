/* Memory and ownership helpers (crun's xmalloc and cleanup attributes).
 * Out of memory aborts; destructors accept NULL. */
#ifndef ORCH_UTIL_H
#define ORCH_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

void *xmalloc (size_t n);
void *xcalloc (size_t nmemb, size_t size);
void *xrealloc (void *p, size_t n);
char *xstrdup (const char *s);
char *xstrndup (const char *s, size_t n);
char *xasprintf (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
/* Grows *arr (element size elem) so that it holds at least need elements. */
void orch_grow (void **arr, size_t *cap, size_t need, size_t elem);

void orch_freep (void *p);
void orch_closep (int *fd);
#define cleanup_free __attribute__ ((cleanup (orch_freep)))
#define cleanup_close __attribute__ ((cleanup (orch_closep)))

/* Hands ownership out of a cleanup variable. */
#define TAKE_PTR(p)                                                                                \
  ({                                                                                               \
    __typeof__ (p) _take_ = (p);                                                                   \
    (p) = NULL;                                                                                    \
    _take_;                                                                                        \
  })
#define TAKE_FD(fd)                                                                                \
  ({                                                                                               \
    int _take_ = (fd);                                                                             \
    (fd) = -1;                                                                                     \
    _take_;                                                                                        \
  })

#define ORCH_ARRAY_LEN(a) (sizeof (a) / sizeof ((a)[0]))

/* Milliseconds on CLOCK_MONOTONIC / CLOCK_REALTIME. */
int64_t orch_now_mono_ms (void);
int64_t orch_now_wall_ms (void);

/* Whole-file helpers. orch_read_file returns a NUL-terminated buffer the
 * caller frees, refusing files larger than max; -errno on failure. */
int orch_read_file (const char *path, size_t max, char **out, size_t *len);
/* Writes atomically: path.tmp then rename. Returns 0 or -errno. */
int orch_write_file_atomic (const char *path, const void *data, size_t len, int mode);
/* mkdir -p; returns 0 or -errno. */
int orch_mkdir_p (const char *path, int mode);
/* rm -rf that does not cross mount points; returns 0 or -errno. */
int orch_rm_rf (const char *path);

/* True if s is a DNS label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 chars. */
int orch_is_dns_label (const char *s);

#endif
