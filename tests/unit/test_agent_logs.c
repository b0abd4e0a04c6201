/* LogsRequest: which bytes of an allocation's log are returned, and the
 * asynchronous read that returns them. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "orch_test.h"

#include "agent_internal.h"
#include "orch_util.h"

#define MIB (1024u * 1024u)

static void
test_logs_window_bounds (void **state)
{
  static const struct
  {
    uint64_t size, tail;
    uint64_t offset;
    size_t len;
    bool truncated;
  } cases[] = {
    { 0, 0, 0, 0, false },                         /* empty log */
    { 100, 0, 0, 100, false },                     /* 0 = default tail, whole small log */
    { 3 * MIB, 0, 2 * MIB, MIB, true },            /* default tail is 1 MiB */
    { 100, 10, 90, 10, true },                     /* the last 10 bytes */
    { 100, 100, 0, 100, false },                   /* exactly the whole log */
    { 100, 1000, 0, 100, false },                  /* more than there is */
    { 10 * MIB, 8 * MIB, 6 * MIB, 4 * MIB, true }, /* never more than 4 MiB */
    { 10 * MIB, UINT64_MAX, 6 * MIB, 4 * MIB, true },
    { 4 * MIB, UINT64_MAX, 0, 4 * MIB, false },
  };
  size_t i;

  for (i = 0; i < sizeof (cases) / sizeof (cases[0]); i++)
    {
      uint64_t off;
      size_t len;
      bool tr;

      agent_logs_window (cases[i].size, cases[i].tail, &off, &len, &tr);
      if (off != cases[i].offset || len != cases[i].len || tr != cases[i].truncated)
        fail_msg ("case %zu: offset %llu len %zu truncated %d", i, (unsigned long long) off, len,
                  tr);
    }
}

typedef struct
{
  int calls;
  int status;
  uint8_t *data;
  size_t len;
  bool truncated;
} result_t;

static void
on_read (void *ctx, int status, const uint8_t *data, size_t len, bool truncated)
{
  result_t *r = ctx;

  r->calls++;
  r->status = status;
  r->len = len;
  r->truncated = truncated;
  free (r->data);
  r->data = NULL;
  if (len > 0)
    {
      r->data = malloc (len);
      memcpy (r->data, data, len);
    }
}

static void
read_tail (const char *path, uint64_t tail, result_t *r)
{
  uv_loop_t loop;

  memset (r, 0, sizeof (*r));
  assert_int_equal (uv_loop_init (&loop), 0);
  assert_int_equal (agent_logs_read (&loop, path, tail, on_read, r), 0);
  uv_run (&loop, UV_RUN_DEFAULT);
  assert_int_equal (uv_loop_close (&loop), 0);
  assert_int_equal (r->calls, 1); /* exactly once */
}

/* A file of n bytes where byte i is (i * 7 + i / 251) & 0xff, so any
 * misplaced offset shows. */
static char *
make_log (size_t n)
{
  char *dir = strdup ("/tmp/test_agent_logs.XXXXXX");
  char *path;
  uint8_t *buf = malloc (n ? n : 1);
  size_t i;
  int fd;

  assert_non_null (mkdtemp (dir));
  path = xasprintf ("%s/log", dir);
  free (dir);
  for (i = 0; i < n; i++)
    buf[i] = (uint8_t) ((i * 7 + i / 251) & 0xff);
  fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true (fd >= 0);
  assert_int_equal (write (fd, buf, n), (ssize_t) n);
  close (fd);
  free (buf);
  return path;
}

static void
remove_log (char *path)
{
  char *slash = strrchr (path, '/');

  unlink (path);
  *slash = '\0';
  rmdir (path);
  free (path);
}

static void
check_bytes (const result_t *r, size_t file_off)
{
  size_t i;

  for (i = 0; i < r->len; i++)
    {
      size_t k = file_off + i;
      if (r->data[i] != (uint8_t) ((k * 7 + k / 251) & 0xff))
        fail_msg ("byte %zu (file offset %zu) is wrong", i, k);
    }
}

static void
test_logs_read_tail (void **state)
{
  char *path = make_log (5000);
  result_t r;

  read_tail (path, 10, &r);
  assert_int_equal (r.status, 0);
  assert_int_equal (r.len, 10);
  assert_true (r.truncated);
  check_bytes (&r, 4990);
  free (r.data);

  read_tail (path, 0, &r);
  assert_int_equal (r.status, 0);
  assert_int_equal (r.len, 5000);
  assert_false (r.truncated);
  check_bytes (&r, 0);
  free (r.data);
  remove_log (path);
}

static void
test_logs_read_caps_large_logs (void **state)
{
  char *path = make_log (5 * MIB + 123);
  result_t r;

  /* Default: the last 1 MiB. */
  read_tail (path, 0, &r);
  assert_int_equal (r.status, 0);
  assert_int_equal (r.len, MIB);
  assert_true (r.truncated);
  check_bytes (&r, 4 * MIB + 123);
  free (r.data);

  /* Asked for everything: never more than 4 MiB. */
  read_tail (path, 100 * MIB, &r);
  assert_int_equal (r.len, 4 * MIB);
  assert_true (r.truncated);
  check_bytes (&r, MIB + 123);
  free (r.data);
  remove_log (path);
}

static void
test_logs_read_missing_and_empty (void **state)
{
  char *path = make_log (0);
  result_t r;

  read_tail (path, 0, &r);
  assert_int_equal (r.status, 0);
  assert_int_equal (r.len, 0);
  assert_false (r.truncated);
  remove_log (path);

  /* A workload that has written nothing yet has no log file: empty, not an error. */
  read_tail ("/tmp/test_agent_logs.does-not-exist/log", 0, &r);
  assert_int_equal (r.status, 0);
  assert_int_equal (r.len, 0);
}

static void
test_logs_read_error (void **state)
{
  result_t r;

  /* A directory cannot be read as a log: the error comes back, once. */
  read_tail ("/", 0, &r);
  assert_true (r.status < 0);
  assert_int_equal (r.len, 0);
}

/* ---- Rotation ------------------------------------------------------------ */

static char *
tmpdir (void)
{
  char *dir = strdup ("/tmp/test_agent_logs.XXXXXX");
  assert_non_null (mkdtemp (dir));
  return dir;
}

static void
write_file (const char *path, const char *text, int flags)
{
  int fd = open (path, O_WRONLY | O_CREAT | flags, 0600);
  assert_true (fd >= 0);
  assert_int_equal (write (fd, text, strlen (text)), (ssize_t) strlen (text));
  close (fd);
}

static char *
slurp (const char *path)
{
  char *text = NULL;
  size_t len;
  if (orch_read_file (path, 1 << 20, &text, &len) < 0)
    return NULL;
  return text;
}

static void
test_logs_rotate_copytruncate (void **state)
{
  char *dir = tmpdir ();
  cleanup_free char *log = xasprintf ("%s/log", dir);
  cleanup_free char *l1 = xasprintf ("%s/log.1", dir);
  cleanup_free char *l2 = xasprintf ("%s/log.2", dir);
  cleanup_free char *l3 = xasprintf ("%s/log.3", dir);
  char *t;
  int fd;

  /* Under the cap, or missing: nothing happens. */
  assert_int_equal (agent_logs_rotate (log, 10, 3), 0);
  write_file (log, "0123456789", O_TRUNC);
  assert_int_equal (agent_logs_rotate (log, 10, 3), 0);

  /* The workload's descriptor, as the runtime opens it. */
  fd = open (log, O_WRONLY | O_APPEND);
  assert_true (fd >= 0);
  assert_int_equal (write (fd, "first-over", 10), 10);
  assert_int_equal (agent_logs_rotate (log, 10, 3), 1);
  t = slurp (l1);
  assert_string_equal (t, "0123456789first-over");
  free (t);
  t = slurp (log);
  assert_string_equal (t, "");
  free (t);
  /* The same descriptor keeps writing at the (new) start of the file. */
  assert_int_equal (write (fd, "second-batch", 12), 12);
  t = slurp (log);
  assert_string_equal (t, "second-batch");
  free (t);

  /* Second rotation shifts log.1 to log.2; a third drops the oldest: at
   * most 3 files (log, log.1, log.2). */
  assert_int_equal (agent_logs_rotate (log, 10, 3), 1);
  t = slurp (l2);
  assert_string_equal (t, "0123456789first-over");
  free (t);
  t = slurp (l1);
  assert_string_equal (t, "second-batch");
  free (t);
  assert_int_equal (write (fd, "third-batch", 11), 11);
  assert_int_equal (agent_logs_rotate (log, 10, 3), 1);
  t = slurp (l2);
  assert_string_equal (t, "second-batch");
  free (t);
  t = slurp (l1);
  assert_string_equal (t, "third-batch");
  free (t);
  assert_int_equal (access (l3, F_OK), -1);

  /* One file: truncated only. */
  assert_int_equal (write (fd, "fourth-batch", 12), 12);
  assert_int_equal (agent_logs_rotate (log, 10, 1), 1);
  t = slurp (log);
  assert_string_equal (t, "");
  free (t);
  t = slurp (l1);
  assert_string_equal (t, "third-batch");
  free (t);
  close (fd);
  orch_rm_rf (dir);
  free (dir);
}

static void
test_logs_read_continues_into_rotated (void **state)
{
  char *dir = tmpdir ();
  cleanup_free char *log = xasprintf ("%s/log", dir);
  cleanup_free char *l1 = xasprintf ("%s/log.1", dir);
  result_t r;

  /* Just rotated: the live log has one line, the rest is in log.1. */
  write_file (l1, "old-1\nold-2\n", O_TRUNC);
  write_file (log, "new-1\n", O_TRUNC);
  read_tail (log, 12, &r);
  assert_int_equal (r.status, 0);
  assert_int_equal (r.len, 12);
  assert_memory_equal (r.data, "old-2\nnew-1\n", 12);
  assert_true (r.truncated);
  free (r.data);
  read_tail (log, 0, &r);
  assert_int_equal (r.len, 18);
  assert_memory_equal (r.data, "old-1\nold-2\nnew-1\n", 18);
  assert_false (r.truncated);
  free (r.data);
  /* Only what the live log holds when that is enough. */
  read_tail (log, 6, &r);
  assert_memory_equal (r.data, "new-1\n", 6);
  free (r.data);
  orch_rm_rf (dir);
  free (dir);
}

/* ---- Following ------------------------------------------------------------ */

typedef struct
{
  char buf[8192];
  size_t len;
  int calls;
  int status;
  bool first_truncated;
  int stop_after; /* return false once len reaches it (0: never) */
  bool stopped;
} follow_t;

static bool
on_follow (void *ctx, int status, const uint8_t *data, size_t len, bool truncated)
{
  follow_t *f = ctx;

  assert_false (f->stopped); /* never called after it said stop */
  if (f->calls++ == 0)
    f->first_truncated = truncated;
  f->status = status;
  assert_true (f->len + len < sizeof (f->buf));
  memcpy (f->buf + f->len, data, len);
  f->len += len;
  f->buf[f->len] = '\0';
  if (f->stop_after > 0 && f->len >= (size_t) f->stop_after)
    {
      f->stopped = true;
      return false;
    }
  return true;
}

static void
tick (uv_timer_t *t)
{
}

/* Runs the loop until the follower has collected want, or 3 s. */
static void
follow_until (uv_loop_t *loop, follow_t *f, const char *want)
{
  int64_t deadline = orch_now_mono_ms () + 3000;
  uv_timer_t t;

  uv_timer_init (loop, &t);
  uv_timer_start (&t, tick, 20, 20);
  while (strcmp (f->buf, want) != 0 && orch_now_mono_ms () < deadline)
    uv_run (loop, UV_RUN_ONCE);
  uv_close ((uv_handle_t *) &t, NULL);
  uv_run (loop, UV_RUN_NOWAIT);
  assert_string_equal (f->buf, want);
}

static void
test_logs_follow_tail_then_appends (void **state)
{
  char *dir = tmpdir ();
  cleanup_free char *log = xasprintf ("%s/log", dir);
  follow_t f = { 0 };
  agent_logs_follow_t *fl;
  uv_loop_t loop;
  int rc = 0, fd;

  write_file (log, "line-1\nline-2\n", O_TRUNC);
  assert_int_equal (uv_loop_init (&loop), 0);
  /* The tail first: the last 7 bytes only, marked truncated. */
  fl = agent_logs_follow (&loop, log, 7, on_follow, &f, &rc);
  assert_non_null (fl);
  follow_until (&loop, &f, "line-2\n");
  assert_true (f.first_truncated);

  /* Then what is appended, in order, once. */
  fd = open (log, O_WRONLY | O_APPEND);
  assert_int_equal (write (fd, "line-3\n", 7), 7);
  follow_until (&loop, &f, "line-2\nline-3\n");
  assert_int_equal (write (fd, "line-4\n", 7), 7);
  follow_until (&loop, &f, "line-2\nline-3\nline-4\n");

  /* A rotation in between polls loses nothing that was copied: the part
   * after our offset comes from log.1, then the new log from its start. */
  assert_int_equal (write (fd, "line-5\n", 7), 7);
  assert_int_equal (agent_logs_rotate (log, 1, 3), 1);
  assert_int_equal (write (fd, "line-6\n", 7), 7);
  follow_until (&loop, &f, "line-2\nline-3\nline-4\nline-5\nline-6\n");
  assert_int_equal (f.status, 0);

  /* A rotation after which the new log outgrows the old offset before the
   * next poll is still seen (log.1 is a new file). */
  {
    char big[101];
    char want[512];
    memset (big, 'x', 99);
    big[99] = '\n';
    big[100] = '\0';
    assert_int_equal (write (fd, "line-7\n", 7), 7);
    assert_int_equal (agent_logs_rotate (log, 1, 3), 1);
    assert_int_equal (write (fd, big, 100), 100);
    snprintf (want, sizeof (want), "line-2\nline-3\nline-4\nline-5\nline-6\nline-7\n%s", big);
    follow_until (&loop, &f, want);
  }
  close (fd);

  /* Cancelled: no more calls, and the loop ends (no handle left). */
  agent_logs_follow_cancel (fl);
  write_file (log, "after-cancel\n", O_APPEND);
  uv_run (&loop, UV_RUN_DEFAULT);
  assert_null (strstr (f.buf, "after-cancel"));
  assert_int_equal (uv_loop_close (&loop), 0);
  orch_rm_rf (dir);
  free (dir);
}

static void
test_logs_follow_missing_then_created_and_stop (void **state)
{
  char *dir = tmpdir ();
  cleanup_free char *log = xasprintf ("%s/log", dir);
  follow_t f = { 0 };
  uv_loop_t loop;
  int rc = 0;

  assert_int_equal (uv_loop_init (&loop), 0);
  f.stop_after = 6;
  /* No log yet (the workload has written nothing): follow from its start. */
  assert_non_null (agent_logs_follow (&loop, log, 0, on_follow, &f, &rc));
  write_file (log, "hello\n", O_TRUNC);
  follow_until (&loop, &f, "hello\n");
  /* The callback said stop: the follower frees itself and the loop ends. */
  assert_true (f.stopped);
  uv_run (&loop, UV_RUN_DEFAULT);
  assert_int_equal (uv_loop_close (&loop), 0);
  orch_rm_rf (dir);
  free (dir);
}

static const struct CMUnitTest tests[] = {
  cmocka_unit_test (test_logs_window_bounds),
  cmocka_unit_test (test_logs_read_tail),
  cmocka_unit_test (test_logs_read_caps_large_logs),
  cmocka_unit_test (test_logs_read_missing_and_empty),
  cmocka_unit_test (test_logs_read_error),
  cmocka_unit_test (test_logs_rotate_copytruncate),
  cmocka_unit_test (test_logs_read_continues_into_rotated),
  cmocka_unit_test (test_logs_follow_tail_then_appends),
  cmocka_unit_test (test_logs_follow_missing_then_created_and_stop),
};

ORCH_TEST_MAIN (tests)
