/* Runtime-shared parsing: orch-init's exit record, the state file adopt()
 * trusts, /proc/PID/stat's start time, and the container's resolv.conf and
 * hosts files. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "orch_test.h"
#include "orch_util.h"
#include "rt.h"
#include "rt_internal.h"

static char *
make_dir (void)
{
  char *d = xstrdup ("/tmp/orch-test-rt-XXXXXX");
  assert_non_null (mkdtemp (d));
  return d;
}

static void
put_exit (const char *dir, const char *text)
{
  char *p = xasprintf ("%s/exit", dir);
  FILE *f = fopen (p, "w");
  assert_non_null (f);
  fputs (text, f);
  fclose (f);
  free (p);
}

/* Reads a record; returns the call's result. */
static int
read_rec (const char *dir, int *code, char **reason, orch_err_t *err)
{
  *code = -12345;
  *reason = NULL;
  return rt_exit_record_read (dir, code, reason, err);
}

static void
test_exit_record_none_yet (void **state)
{
  (void) state;
  char *d = make_dir ();
  int code;
  char *reason;
  orch_err_t err = { 0 };
  /* No file (the workload never started), then an empty one (running). */
  assert_int_equal (read_rec (d, &code, &reason, &err), 0);
  assert_null (reason);
  put_exit (d, "");
  assert_int_equal (read_rec (d, &code, &reason, &err), 0);
  assert_null (reason);
  assert_string_equal (err.msg, "");
  orch_rm_rf (d);
  free (d);
}

static void
test_exit_record_exited (void **state)
{
  (void) state;
  char *d = make_dir ();
  int code;
  char *reason;
  orch_err_t err = { 0 };
  put_exit (d, "exited 3\n");
  assert_int_equal (read_rec (d, &code, &reason, &err), 1);
  assert_int_equal (code, 3);
  assert_string_equal (reason, "");
  free (reason);
  put_exit (d, "exited 0");
  assert_int_equal (read_rec (d, &code, &reason, &err), 1);
  assert_int_equal (code, 0);
  free (reason);
  orch_rm_rf (d);
  free (d);
}

static void
test_exit_record_signaled (void **state)
{
  (void) state;
  char *d = make_dir ();
  int code;
  char *reason;
  orch_err_t err = { 0 };
  put_exit (d, "signaled 9\n");
  assert_int_equal (read_rec (d, &code, &reason, &err), 1);
  assert_int_equal (code, 137);
  assert_string_equal (reason, "killed by SIGKILL");
  free (reason);
  put_exit (d, "signaled 15\n");
  assert_int_equal (read_rec (d, &code, &reason, &err), 1);
  assert_int_equal (code, 143);
  assert_string_equal (reason, "killed by SIGTERM");
  free (reason);
  orch_rm_rf (d);
  free (d);
}

static void
test_exit_record_failed_exec (void **state)
{
  (void) state;
  char *d = make_dir ();
  int code;
  char *reason;
  orch_err_t err = { 0 };
  put_exit (d, "failed exec /bin/nope: No such file or directory\n");
  assert_int_equal (read_rec (d, &code, &reason, &err), 1);
  assert_int_equal (code, 127);
  assert_string_equal (reason, "failed exec /bin/nope: No such file or directory");
  free (reason);
  orch_rm_rf (d);
  free (d);
}

static void
test_exit_record_malformed (void **state)
{
  (void) state;
  char *d = make_dir ();
  static const char *const bad[] = {
    "exited\n",      "exited 256\n", "exited -1\n", "exited 3x\n",          "signaled 0\n",
    "signaled 65\n", "signaled\n",   "stopped 3\n", "exited 1\nexited 2\n", "failed exec \n",
    "exited  3\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    {
      int code;
      char *reason;
      orch_err_t err = { 0 };
      put_exit (d, bad[i]);
      assert_int_equal (read_rec (d, &code, &reason, &err), -1);
      assert_int_equal (code, -12345);
      assert_null (reason);
      assert_int_equal (err.code, EINVAL);
      assert_non_null (strstr (err.msg, "exit record"));
    }
  /* Bigger than any record orch-init writes. */
  char *big = xmalloc (70000);
  memset (big, 'x', 69999);
  big[69999] = '\0';
  put_exit (d, big);
  free (big);
  int code;
  char *reason;
  orch_err_t err = { 0 };
  assert_int_equal (read_rec (d, &code, &reason, &err), -1);
  assert_null (reason);
  orch_rm_rf (d);
  free (d);
}

static void
test_state_roundtrip (void **state)
{
  (void) state;
  char *d = make_dir ();
  rt__state_t in
      = { .pid = 4242, .starttime = 987654321, .started_ms = 1700000000123, .userns_slot = 7 };
  strcpy (in.address, "10.88.0.5");
  orch_err_t err = { 0 };
  assert_int_equal (rt__state_write (d, &in, &err), 0);
  rt__state_t out;
  assert_int_equal (rt__state_read (d, &out, &err), 0);
  assert_int_equal (out.pid, 4242);
  assert_true (out.starttime == 987654321);
  assert_true (out.started_ms == 1700000000123);
  assert_string_equal (out.address, "10.88.0.5");
  assert_int_equal (out.userns_slot, 7);

  /* No address, no user namespace. */
  rt__state_t in2 = { .pid = 1, .starttime = 0, .userns_slot = -1 };
  assert_int_equal (rt__state_write (d, &in2, &err), 0);
  assert_int_equal (rt__state_read (d, &out, &err), 0);
  assert_string_equal (out.address, "");
  assert_int_equal (out.userns_slot, -1);
  orch_rm_rf (d);
  free (d);
}

static void
test_state_malformed (void **state)
{
  (void) state;
  rt__state_t st;
  assert_int_equal (rt__state_parse ("pid 5\nstarttime 9\n", &st), 0);
  assert_int_equal (st.userns_slot, -1);
  /* Keys from a newer agent are ignored. */
  assert_int_equal (rt__state_parse ("pid 5\nstarttime 9\nfuture x y\n", &st), 0);
  assert_int_equal (rt__state_parse ("starttime 9\n", &st), -EINVAL);
  assert_int_equal (rt__state_parse ("pid 5\n", &st), -EINVAL);
  assert_int_equal (rt__state_parse ("pid 0\nstarttime 9\n", &st), -EINVAL);
  assert_int_equal (rt__state_parse ("pid -3\nstarttime 9\n", &st), -EINVAL);
  assert_int_equal (rt__state_parse ("pid 5x\nstarttime 9\n", &st), -EINVAL);
  assert_int_equal (rt__state_parse ("pid 5\nstarttime 9\nuserns 99999\n", &st), -EINVAL);
  assert_int_equal (rt__state_parse ("pid\n", &st), -EINVAL);

  char *d = make_dir ();
  orch_err_t err = { 0 };
  assert_true (rt__state_read (d, &st, &err) < 0);
  assert_int_equal (err.code, ENOENT);
  orch_rm_rf (d);
  free (d);
}

static void
test_stat_starttime (void **state)
{
  (void) state;
  uint64_t t = 0;
  /* A comm with spaces and a ')' must not shift the fields. */
  const char *line = "1234 (we ird) (x) S 1 1234 1234 0 -1 4194560 100 0 0 0 5 6 0 0 20 0 1 0 "
                     "778899 1000000 100 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0";
  assert_int_equal (rt__parse_stat_starttime (line, &t), 0);
  assert_true (t == 778899);
  assert_int_equal (rt__parse_stat_starttime ("1234 (short) S 1 2 3", &t), -EINVAL);
  assert_int_equal (rt__parse_stat_starttime ("no parens at all", &t), -EINVAL);

  /* Our own start time is stable and matches what a second read says. */
  uint64_t a = 0, b = 0;
  assert_int_equal (rt__proc_starttime (getpid (), &a), 0);
  assert_int_equal (rt__proc_starttime (getpid (), &b), 0);
  assert_true (a == b);
  assert_true (rt__proc_starttime (0x3ffffff0, &a) < 0);
}

static void
test_resolv_conf (void **state)
{
  (void) state;
  const char *host = "# generated\nsearch example.org\nnameserver 127.0.0.53\n"
                     "nameserver 10.0.0.2\n  nameserver\t127.0.0.1\nnameserver ::1\n"
                     "nameserver 2001:db8::1\noptions edns0";
  char *own = rt__resolv_conf (host, true);
  assert_string_equal (own, "# generated\nsearch example.org\nnameserver 10.0.0.2\n"
                            "nameserver 2001:db8::1\noptions edns0\n");
  free (own);
  /* Sharing the host's network, loopback resolvers are reachable. */
  char *shared = rt__resolv_conf (host, false);
  assert_non_null (strstr (shared, "nameserver 127.0.0.53\n"));
  assert_non_null (strstr (shared, "nameserver ::1\n"));
  free (shared);
  char *empty = rt__resolv_conf ("", true);
  assert_string_equal (empty, "");
  free (empty);
}

static void
test_hosts_file (void **state)
{
  (void) state;
  char *h = rt__hosts_file ("web-1", "10.88.0.7");
  assert_non_null (strstr (h, "127.0.0.1\tlocalhost\n"));
  assert_non_null (strstr (h, "\n10.88.0.7\tweb-1\n"));
  free (h);
  h = rt__hosts_file ("web-1", "");
  assert_non_null (strstr (h, "\n127.0.1.1\tweb-1\n"));
  free (h);
}

/* One per line: tests/unit/CMakeLists.txt makes a ctest entry per line. */
/* clang-format off */
static const struct CMUnitTest tests[] = {
  cmocka_unit_test (test_exit_record_none_yet),
  cmocka_unit_test (test_exit_record_exited),
  cmocka_unit_test (test_exit_record_signaled),
  cmocka_unit_test (test_exit_record_failed_exec),
  cmocka_unit_test (test_exit_record_malformed),
  cmocka_unit_test (test_state_roundtrip),
  cmocka_unit_test (test_state_malformed),
  cmocka_unit_test (test_stat_starttime),
  cmocka_unit_test (test_resolv_conf),
  cmocka_unit_test (test_hosts_file),
};
/* clang-format on */

ORCH_TEST_MAIN (tests)
