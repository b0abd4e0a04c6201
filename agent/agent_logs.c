/* An allocation's log: its tail read with uv_fs_* so that a slow disk never
 * stalls the session (LogsRequest), followed as it grows (LogsRequest with
 * follow), and rotated when it outgrows its cap. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent_internal.h"
#include "orch_util.h"

void
agent_logs_window (uint64_t file_size, uint64_t tail_bytes, uint64_t *offset, size_t *len,
                   bool *truncated)
{
  uint64_t want = tail_bytes == 0 ? AGENT_LOGS_DEFAULT_TAIL : tail_bytes;

  if (want > AGENT_LOGS_MAX_TAIL)
    want = AGENT_LOGS_MAX_TAIL;
  if (want > file_size)
    want = file_size;
  *len = (size_t) want;
  *offset = file_size - want;
  *truncated = *offset > 0;
}

/* A tail read is one job in the thread pool (stat, open, pread, close):
 * the loop only ever sees the bytes. Right after a rotation the live log is
 * short, so the tail continues into path.1 (the copy made by the rotation):
 * a reader asking for the last megabyte gets it whatever the timing. */
typedef struct agent__logs_req_s
{
  uv_work_t work;
  char *path;
  uint64_t tail;
  int status;
  uint8_t *buf;
  size_t len;
  bool truncated;
  agent_logs_cb cb;
  void *ctx;
} agent__logs_req_t;

/* Reads up to want bytes of fd from offset into buf. Returns the number
 * read (short when the file shrank meanwhile) or a negative errno. */
static ssize_t
agent__pread_all (int fd, uint8_t *buf, size_t want, uint64_t offset)
{
  size_t got = 0;

  while (got < want)
    {
      ssize_t n = pread (fd, buf + got, want - got, (off_t) (offset + got));
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return -errno;
      if (n == 0)
        break;
      got += (size_t) n;
    }
  return (ssize_t) got;
}

/* The tail of path.1 + path read as one stream: tail_bytes of it (as
 * agent_logs_window) into a new *buf (NULL when empty; the caller frees it,
 * also on error), and in *live_end the offset in path where the read ended.
 * 0 or a negative errno. Blocking: thread pool only. */
static int
agent__tail (const char *path, uint64_t tail_bytes, uint8_t **buf, size_t *buf_len, bool *truncated,
             uint64_t *live_end)
{
  cleanup_free char *older = xasprintf ("%s.1", path);
  cleanup_close int fd = -1;
  cleanup_close int fd1 = -1;
  uint64_t size = 0, size1 = 0, offset;
  size_t len, got = 0;
  struct stat st;
  ssize_t n;

  *buf = NULL;
  *buf_len = 0;
  *truncated = false;
  *live_end = 0;
  fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0 && errno != ENOENT)
    return -errno;
  if (fd >= 0)
    {
      if (fstat (fd, &st) < 0)
        return -errno;
      size = (uint64_t) st.st_size;
    }
  fd1 = open (older, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd1 >= 0 && fstat (fd1, &st) == 0 && S_ISREG (st.st_mode))
    size1 = (uint64_t) st.st_size;
  *live_end = size;
  agent_logs_window (size1 + size, tail_bytes, &offset, &len, truncated);
  if (len == 0)
    return 0;
  *buf = xmalloc (len);
  if (offset < size1)
    {
      n = agent__pread_all (fd1, *buf, (size_t) (size1 - offset < len ? size1 - offset : len),
                            offset);
      if (n < 0)
        return (int) n;
      got = (size_t) n;
      offset = size1;
    }
  if (got < len && fd >= 0)
    {
      n = agent__pread_all (fd, *buf + got, len - got, offset - size1);
      if (n < 0)
        return (int) n;
      got += (size_t) n;
      *live_end = offset - size1 + (uint64_t) n;
    }
  *buf_len = got;
  return 0;
}

static void
agent__logs_work (uv_work_t *req)
{
  agent__logs_req_t *r = req->data;
  uint64_t end;

  r->status = agent__tail (r->path, r->tail, &r->buf, &r->len, &r->truncated, &end);
  if (r->status < 0)
    {
      free (r->buf);
      r->buf = NULL;
      r->len = 0;
    }
}

static void
agent__logs_after (uv_work_t *req, int status)
{
  agent__logs_req_t *r = req->data;

  if (status < 0 && r->status == 0)
    r->status = status;
  r->cb (r->ctx, r->status, r->status == 0 ? r->buf : NULL, r->status == 0 ? r->len : 0,
         r->truncated);
  free (r->buf);
  free (r->path);
  free (r);
}

int
agent_logs_read (uv_loop_t *loop, const char *path, uint64_t tail_bytes, agent_logs_cb cb,
                 void *ctx)
{
  agent__logs_req_t *r = xcalloc (1, sizeof (*r));
  int rc;

  r->path = xstrdup (path);
  r->tail = tail_bytes;
  r->cb = cb;
  r->ctx = ctx;
  r->work.data = r;
  rc = uv_queue_work (loop, &r->work, agent__logs_work, agent__logs_after);
  if (rc < 0)
    {
      free (r->path);
      free (r);
      return rc;
    }
  return 0;
}

/* ---- Following -------------------------------------------------------------
 *
 * Each poll is one job in the thread pool (stat, open, pread, close): the
 * loop only ever sees the bytes. A job at a time per follower, so offsets
 * stay consistent. */

struct agent_logs_follow_s
{
  uv_timer_t timer; /* first member: the close callback gets the follower */
  uv_work_t work;
  uv_loop_t *loop;
  char *path;
  agent_logs_follow_cb cb;
  void *ctx;
  uint64_t tail;
  bool started;    /* the tail has been sent; offset is where it ended */
  ino_t older_ino; /* of path.1 at the last poll: a new one means a rotation */
  uint64_t offset;
  bool busy; /* a job is in the thread pool */
  bool cancelled;
  bool timer_closed;
  /* The job's result. */
  int status;
  uint8_t *data;
  size_t len;
  bool truncated;
};

static void
agent__follow_maybe_free (agent_logs_follow_t *f)
{
  if (f->timer_closed && !f->busy)
    {
      free (f->data);
      free (f->path);
      free (f);
    }
}

static void
agent__follow_on_timer_close (uv_handle_t *h)
{
  agent_logs_follow_t *f = (agent_logs_follow_t *) h;

  f->timer_closed = true;
  agent__follow_maybe_free (f);
}

/* Appends up to want bytes of path from offset to f->data. Returns the
 * number read, or a negative errno; a missing file reads as empty. */
static ssize_t
agent__follow_pread (agent_logs_follow_t *f, const char *path, uint64_t offset, size_t want)
{
  int fd;
  size_t got = 0;

  if (want == 0)
    return 0;
  fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return errno == ENOENT ? 0 : -errno;
  f->data = xrealloc (f->data, f->len + want);
  while (got < want)
    {
      ssize_t n = pread (fd, f->data + f->len + got, want - got, (off_t) (offset + got));
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          int e = errno;
          close (fd);
          return -e;
        }
      if (n == 0)
        break;
      got += (size_t) n;
    }
  close (fd);
  f->len += got;
  return (ssize_t) got;
}

static void
agent__follow_work (uv_work_t *req)
{
  agent_logs_follow_t *f = req->data;
  struct stat st;
  uint64_t size;
  ssize_t n;

  f->status = 0;
  f->len = 0;
  f->truncated = false;
  if (stat (f->path, &st) < 0)
    {
      if (errno != ENOENT)
        f->status = -errno;
      else if (!f->started)
        f->started = true; /* nothing written yet: follow from 0 */
      return;
    }
  size = (uint64_t) st.st_size;
  if (!f->started)
    {
      cleanup_free char *older = xasprintf ("%s.1", f->path);
      struct stat st1;
      uint8_t *buf = NULL;
      size_t len = 0;
      if (stat (older, &st1) == 0)
        f->older_ino = st1.st_ino;
      f->started = true;
      f->status = agent__tail (f->path, f->tail, &buf, &len, &f->truncated, &f->offset);
      free (f->data);
      f->data = buf;
      f->len = f->status == 0 ? len : 0;
      return;
    }
  /* Rotated (copytruncate) since the last poll: log.1 is a new file (the
   * copy is renamed into place), or the log is shorter than our offset.
   * What came after our offset and before the copy is at the end of log.1. */
  {
    cleanup_free char *older = xasprintf ("%s.1", f->path);
    struct stat st1;
    bool have1 = stat (older, &st1) == 0;
    bool rotated = size < f->offset || (have1 && st1.st_ino != f->older_ino);

    if (have1)
      f->older_ino = st1.st_ino;
    if (rotated)
      {
        if (have1 && (uint64_t) st1.st_size > f->offset)
          {
            uint64_t more = (uint64_t) st1.st_size - f->offset;
            if (more > AGENT_LOGS_FOLLOW_CHUNK)
              more = AGENT_LOGS_FOLLOW_CHUNK;
            n = agent__follow_pread (f, older, f->offset, (size_t) more);
            if (n < 0)
              f->status = (int) n;
          }
        f->offset = 0;
      }
  }
  if (size > f->offset && f->len < AGENT_LOGS_FOLLOW_CHUNK)
    {
      uint64_t more = size - f->offset;
      if (more > AGENT_LOGS_FOLLOW_CHUNK - f->len)
        more = AGENT_LOGS_FOLLOW_CHUNK - f->len;
      n = agent__follow_pread (f, f->path, f->offset, (size_t) more);
      if (n < 0)
        f->status = (int) n;
      else
        f->offset += (uint64_t) n;
    }
}

static void agent__follow_on_timer (uv_timer_t *t);

static void
agent__follow_after (uv_work_t *req, int status)
{
  agent_logs_follow_t *f = req->data;
  size_t got;
  bool more;

  f->busy = false;
  if (f->cancelled)
    {
      agent__follow_maybe_free (f);
      return;
    }
  if (status < 0)
    f->status = status; /* cancelled by libuv: cannot happen once queued */
  got = f->len;
  more = f->cb (f->ctx, f->status, f->data, f->len, f->truncated);
  /* Not kept between polls: the tail may have been megabytes. */
  free (f->data);
  f->data = NULL;
  f->len = 0;
  if (!more || f->status < 0)
    {
      agent_logs_follow_cancel (f);
      return;
    }
  /* A full chunk means more is waiting: no need to wait for the next tick. */
  uv_timer_start (&f->timer, agent__follow_on_timer,
                  got >= AGENT_LOGS_FOLLOW_CHUNK ? 0 : AGENT_LOGS_FOLLOW_POLL_MS, 0);
}

static void
agent__follow_on_timer (uv_timer_t *t)
{
  agent_logs_follow_t *f = (agent_logs_follow_t *) t;
  int rc;

  if (f->cancelled || f->busy)
    return;
  f->work.data = f;
  rc = uv_queue_work (f->loop, &f->work, agent__follow_work, agent__follow_after);
  if (rc < 0)
    {
      /* Try again at the next tick. */
      uv_timer_start (&f->timer, agent__follow_on_timer, AGENT_LOGS_FOLLOW_POLL_MS, 0);
      return;
    }
  f->busy = true;
}

agent_logs_follow_t *
agent_logs_follow (uv_loop_t *loop, const char *path, uint64_t tail_bytes, agent_logs_follow_cb cb,
                   void *ctx, int *rc)
{
  agent_logs_follow_t *f = xcalloc (1, sizeof (*f));
  int r;

  r = uv_timer_init (loop, &f->timer);
  if (r < 0)
    {
      free (f);
      *rc = r;
      return NULL;
    }
  f->loop = loop;
  f->path = xstrdup (path);
  f->cb = cb;
  f->ctx = ctx;
  f->tail = tail_bytes;
  /* The tail at once. */
  uv_timer_start (&f->timer, agent__follow_on_timer, 0, 0);
  return f;
}

void
agent_logs_follow_cancel (agent_logs_follow_t *f)
{
  if (f == NULL || f->cancelled)
    return;
  f->cancelled = true;
  uv_timer_stop (&f->timer);
  uv_close ((uv_handle_t *) &f->timer, agent__follow_on_timer_close);
}

/* ---- Rotation ------------------------------------------------------------- */

/* Copies src to dst (created or replaced through dst.tmp). 0 or -errno. */
static int
agent__copy_file (const char *src, const char *dst)
{
  cleanup_free char *tmp = xasprintf ("%s.tmp", dst);
  cleanup_close int in = -1;
  cleanup_close int out = -1;
  char buf[64 * 1024];
  int e;

  in = open (src, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (in < 0)
    return -errno;
  out = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (out < 0)
    return -errno;
  for (;;)
    {
      ssize_t n = read (in, buf, sizeof (buf)), off = 0;
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        goto fail;
      if (n == 0)
        break;
      while (off < n)
        {
          ssize_t w = write (out, buf + off, (size_t) (n - off));
          if (w < 0 && errno == EINTR)
            continue;
          if (w < 0)
            goto fail;
          off += w;
        }
    }
  if (rename (tmp, dst) < 0)
    goto fail;
  return 0;

fail:
  e = errno;
  unlink (tmp);
  return -e;
}

int
agent_logs_rotate (const char *path, uint64_t max_size, int max_files)
{
  struct stat st;
  int i, r;

  if (max_size == 0)
    return 0;
  if (stat (path, &st) < 0)
    return errno == ENOENT ? 0 : -errno;
  if ((uint64_t) st.st_size <= max_size)
    return 0;
  if (max_files < 1)
    max_files = 1;
  if (max_files > 1)
    {
      /* Shift path.N-2 .. path.1 up; the oldest is overwritten by rename. */
      for (i = max_files - 2; i >= 1; i--)
        {
          cleanup_free char *from = xasprintf ("%s.%d", path, i);
          cleanup_free char *to = xasprintf ("%s.%d", path, i + 1);
          if (rename (from, to) < 0 && errno != ENOENT)
            return -errno;
        }
      {
        cleanup_free char *first = xasprintf ("%s.1", path);
        r = agent__copy_file (path, first);
        if (r < 0)
          return r;
      }
    }
  /* In place: the workload's O_APPEND descriptor writes at the new end. */
  if (truncate (path, 0) < 0)
    return -errno;
  return 1;
}
