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

static const struct CMUnitTest tests[] = {
  cmocka_unit_test (test_logs_window_bounds),
  cmocka_unit_test (test_logs_read_tail),
  cmocka_unit_test (test_logs_read_caps_large_logs),
  cmocka_unit_test (test_logs_read_missing_and_empty),
  cmocka_unit_test (test_logs_read_error),
};

ORCH_TEST_MAIN (tests)
