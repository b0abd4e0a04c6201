/* orch_run: running a helper program (mke2fs, orch-image) to completion
 * with its output collected, its failure explained and a way to cancel it.
 * Uses /bin/sh as the child. */
#define _GNU_SOURCE
#include "orch_test.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "orch_err.h"
#include "orch_run.h"
#include "orch_util.h"

static int
run_sh (const char *script, size_t out_max, const volatile int *cancel, orch_run_t *r,
        orch_err_t *err)
{
  char *argv[] = { (char *) "/bin/sh", (char *) "-c", (char *) script, NULL };
  memset (r, 0, sizeof *r);
  r->argv = argv;
  r->out_max = out_max;
  r->cancel = cancel;
  return orch_run (r, err);
}

static void
test_run_stdout_and_success (void **state)
{
  (void) state;
  orch_run_t r;
  orch_err_t err = { 0 };
  assert_int_equal (run_sh ("echo /var/lib/orch/images/rootfs/x; echo progress >&2", 4096, NULL,
                            &r, &err),
                    0);
  assert_string_equal (r.out, "/var/lib/orch/images/rootfs/x\n");
  assert_string_equal (r.err_tail, "progress");
  assert_int_equal (r.exit_code, 0);
  orch_run_clear (&r);
  assert_null (r.out);
}

/* The minimal environment: nothing of the caller's leaks to the helper. */
static void
test_run_default_env (void **state)
{
  (void) state;
  orch_run_t r;
  orch_err_t err = { 0 };
  setenv ("ORCH_JOIN_TOKEN", "secret", 1);
  assert_int_equal (run_sh ("env | sort", 4096, NULL, &r, &err), 0);
  assert_null (strstr (r.out, "secret"));
  assert_non_null (strstr (r.out, "LC_ALL=C\n"));
  assert_non_null (strstr (r.out, "PATH=/usr/sbin:/usr/bin:/sbin:/bin\n"));
  orch_run_clear (&r);
  unsetenv ("ORCH_JOIN_TOKEN");
}

static void
test_run_exit_status_explained (void **state)
{
  (void) state;
  orch_run_t r;
  orch_err_t err = { 0 };
  assert_int_equal (run_sh ("echo 'orch-image: error: pull x: not found' >&2; exit 3", 0, NULL, &r,
                            &err),
                    -EIO);
  assert_int_equal (err.code, EIO);
  assert_int_equal (r.exit_code, 3);
  assert_string_equal (err.msg, "sh exited with status 3: orch-image: error: pull x: not found");
  assert_string_equal (r.err_tail, "orch-image: error: pull x: not found");
  assert_null (r.out);
}

static void
test_run_killed_by_signal (void **state)
{
  (void) state;
  orch_run_t r;
  orch_err_t err = { 0 };
  assert_int_equal (run_sh ("kill -9 $$", 0, NULL, &r, &err), -EIO);
  assert_int_equal (r.exit_code, -1);
  assert_string_equal (err.msg, "sh killed by signal 9");
}

static void
test_run_missing_program (void **state)
{
  (void) state;
  char *argv[] = { (char *) "/nonexistent/orch-image", NULL };
  orch_run_t r = { .argv = argv, .out_max = 64 };
  orch_err_t err = { 0 };
  assert_int_equal (orch_run (&r, &err), -ENOENT);
  /* posix_spawn reports exec failures as the exit status 127 of the child
   * on some libcs and as ENOENT on others (glibc): both must say which. */
  assert_non_null (strstr (err.msg, "orch-image"));
  orch_run_clear (&r);
}

/* Only the newest part of a long stderr is kept. */
static void
test_run_stderr_tail (void **state)
{
  (void) state;
  orch_run_t r;
  orch_err_t err = { 0 };
  assert_int_equal (run_sh ("i=0; while [ $i -lt 2000 ]; do echo \"line $i\" >&2; i=$((i+1)); "
                            "done; echo last >&2; exit 1",
                            0, NULL, &r, &err),
                    -EIO);
  assert_true (strlen (r.err_tail) <= ORCH_RUN_ERR_TAIL - 1);
  assert_true (strlen (r.err_tail) > ORCH_RUN_ERR_TAIL - 20);
  const char *end = r.err_tail + strlen (r.err_tail) - strlen ("line 1999\nlast");
  assert_string_equal (end, "line 1999\nlast");
}

static void
test_run_output_limit (void **state)
{
  (void) state;
  orch_run_t r;
  orch_err_t err = { 0 };
  assert_int_equal (run_sh ("yes 0123456789 | head -c 100000", 1000, NULL, &r, &err), -E2BIG);
  assert_int_equal (err.code, E2BIG);
  assert_string_equal (err.msg, "sh: more than 1000 bytes of output");
  orch_run_clear (&r);
}

typedef struct
{
  volatile int *flag;
} setter_t;

static void *
set_later (void *arg)
{
  setter_t *s = arg;
  usleep (200 * 1000);
  *s->flag = 1;
  return NULL;
}

/* A cancelled run gets SIGTERM, may clean up, and is reported as such. */
static void
test_run_cancel_sigterm (void **state)
{
  (void) state;
  char dir[] = "/tmp/orch-test-run-XXXXXX";
  assert_non_null (mkdtemp (dir));
  cleanup_free char *mark = xasprintf ("%s/cleaned", dir);
  cleanup_free char *script
      = xasprintf ("trap 'touch %s; exit 1' TERM; while :; do sleep 0.05; done", mark);
  volatile int cancel = 0;
  setter_t s = { .flag = &cancel };
  pthread_t t;
  assert_int_equal (pthread_create (&t, NULL, set_later, &s), 0);
  orch_run_t r;
  orch_err_t err = { 0 };
  int64_t t0 = orch_now_mono_ms ();
  assert_int_equal (run_sh (script, 64, &cancel, &r, &err), -ECANCELED);
  int64_t took = orch_now_mono_ms () - t0;
  pthread_join (t, NULL);
  assert_int_equal (err.code, ECANCELED);
  assert_string_equal (err.msg, "sh: cancelled");
  assert_int_equal (access (mark, F_OK), 0);
  assert_true (took < 4000);
  orch_run_clear (&r);
  unlink (mark);
  rmdir (dir);
}

/* One that ignores SIGTERM is killed after the grace period. */
static void
test_run_cancel_sigkill (void **state)
{
  (void) state;
  volatile int cancel = 1;
  orch_run_t r;
  orch_err_t err = { 0 };
  int64_t t0 = orch_now_mono_ms ();
  assert_int_equal (run_sh ("trap '' TERM; exec 1>&- 2>&-; while :; do sleep 0.1; done", 0,
                            &cancel, &r, &err),
                    -ECANCELED);
  int64_t took = orch_now_mono_ms () - t0;
  assert_int_equal (err.code, ECANCELED);
  assert_int_equal (r.exit_code, -1);
  assert_true (took >= 4500 && took < 15000);
}

static void
test_program_path (void **state)
{
  (void) state;
  setenv ("ORCH_TEST_PROG", "/opt/x/orch-image", 1);
  cleanup_free char *p = orch_program_path ("ORCH_TEST_PROG", "orch-image");
  assert_string_equal (p, "/opt/x/orch-image");
  setenv ("ORCH_TEST_PROG", "", 1);
  cleanup_free char *q = orch_program_path ("ORCH_TEST_PROG", "orch-image");
  char exe[4096];
  ssize_t n = readlink ("/proc/self/exe", exe, sizeof exe - 1);
  assert_true (n > 0);
  exe[n] = '\0';
  *strrchr (exe, '/') = '\0';
  cleanup_free char *want = xasprintf ("%s/orch-image", exe);
  assert_string_equal (q, want);
  unsetenv ("ORCH_TEST_PROG");
}

static const struct CMUnitTest tests[] = {
  cmocka_unit_test (test_run_stdout_and_success),
  cmocka_unit_test (test_run_default_env),
  cmocka_unit_test (test_run_exit_status_explained),
  cmocka_unit_test (test_run_killed_by_signal),
  cmocka_unit_test (test_run_missing_program),
  cmocka_unit_test (test_run_stderr_tail),
  cmocka_unit_test (test_run_output_limit),
  cmocka_unit_test (test_run_cancel_sigterm),
  cmocka_unit_test (test_run_cancel_sigkill),
  cmocka_unit_test (test_program_path),
};

ORCH_TEST_MAIN (tests)
