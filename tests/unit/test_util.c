/* util, err and log helpers: the file operations the agent relies on for its
 * state and workload directories, and the error/log formats. */
#define _GNU_SOURCE
#include "orch_test.h"

#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "orch_err.h"
#include "orch_log.h"
#include "orch_util.h"

static char *
make_tmpdir (void)
{
  char *d = xstrdup ("/tmp/orch-test-util-XXXXXX");
  assert_non_null (mkdtemp (d));
  return d;
}

static void
touch (const char *path, const char *content)
{
  FILE *f = fopen (path, "w");
  assert_non_null (f);
  fputs (content, f);
  fclose (f);
}

static int
exists (const char *path)
{
  struct stat st;
  return lstat (path, &st) == 0;
}

static void
rm_rf_removes_tree (void **state)
{
  cleanup_free char *d = make_tmpdir ();
  cleanup_free char *outside = make_tmpdir ();
  cleanup_free char *deep = xasprintf ("%s/a/b/c/d", d);
  cleanup_free char *victim = xasprintf ("%s/keep", outside);
  cleanup_free char *p = NULL;

  (void) state;
  assert_int_equal (orch_mkdir_p (deep, 0755), 0);
  p = xasprintf ("%s/a/f1", d);
  touch (p, "x");
  free (p);
  p = xasprintf ("%s/a/b/c/d/f2", d);
  touch (p, "y");
  free (p);
  /* Links must be removed, never followed. */
  touch (victim, "precious");
  p = xasprintf ("%s/a/b/link-to-outside", d);
  assert_int_equal (symlink (outside, p), 0);
  free (p);
  p = xasprintf ("%s/a/dangling", d);
  assert_int_equal (symlink ("/nonexistent/x", p), 0);
  free (p);
  p = xasprintf ("%s/a/fifo", d);
  assert_int_equal (mkfifo (p, 0600), 0);
  /* A directory without permissions is still removed (we are its owner or root). */
  free (p);
  p = xasprintf ("%s/a/b/c", d);
  assert_int_equal (chmod (p, 0700), 0);

  assert_int_equal (orch_rm_rf (d), 0);
  assert_false (exists (d));
  assert_true (exists (victim));
  assert_int_equal (orch_rm_rf (outside), 0);
  assert_false (exists (outside));
}

static void
rm_rf_missing_and_file (void **state)
{
  cleanup_free char *d = make_tmpdir ();
  cleanup_free char *f = xasprintf ("%s/file", d);
  cleanup_free char *missing = xasprintf ("%s/nope/nope", d);

  (void) state;
  assert_int_equal (orch_rm_rf (missing), 0);
  touch (f, "x");
  assert_int_equal (orch_rm_rf (f), 0);
  assert_false (exists (f));
  assert_int_equal (orch_rm_rf (""), -EINVAL);
  assert_int_equal (orch_rm_rf (d), 0);
}

/* A tmpfs mounted inside the tree must survive, with its contents. */
static void
rm_rf_stops_at_mount_points (void **state)
{
  cleanup_free char *d = make_tmpdir ();
  cleanup_free char *mnt = xasprintf ("%s/sub/mnt", d);
  cleanup_free char *inner = xasprintf ("%s/sub/mnt/inside", d);
  cleanup_free char *sibling = xasprintf ("%s/sub/sibling", d);

  (void) state;
  assert_int_equal (orch_mkdir_p (mnt, 0755), 0);
  if (mount ("orch-test", mnt, "tmpfs", 0, "size=1m") < 0)
    {
      orch_rm_rf (d);
      orch_skip ("cannot mount a tmpfs here (needs root)");
    }
  touch (inner, "on another file system");
  touch (sibling, "x");

  assert_int_equal (orch_rm_rf (d), -EBUSY);
  assert_true (exists (inner));
  assert_false (exists (sibling));

  assert_int_equal (umount2 (mnt, MNT_DETACH), 0);
  assert_int_equal (orch_rm_rf (d), 0);
  assert_false (exists (d));
}

/* A bind mount of a directory of the same file system has the same st_dev;
 * it must still be treated as a mount point. */
static void
rm_rf_stops_at_bind_mounts (void **state)
{
  cleanup_free char *d = make_tmpdir ();
  cleanup_free char *src = make_tmpdir ();
  cleanup_free char *mnt = xasprintf ("%s/bind", d);
  cleanup_free char *keep = xasprintf ("%s/keep", src);

  (void) state;
  touch (keep, "x");
  assert_int_equal (mkdir (mnt, 0755), 0);
  if (mount (src, mnt, NULL, MS_BIND, NULL) < 0)
    {
      orch_rm_rf (d);
      orch_rm_rf (src);
      orch_skip ("cannot mount here (needs root)");
    }
  assert_int_equal (orch_rm_rf (d), -EBUSY);
  assert_true (exists (keep));
  assert_int_equal (umount2 (mnt, MNT_DETACH), 0);
  assert_int_equal (orch_rm_rf (d), 0);
  assert_int_equal (orch_rm_rf (src), 0);
}

static void
mkdir_p_cases (void **state)
{
  cleanup_free char *d = make_tmpdir ();
  cleanup_free char *deep = xasprintf ("%s/x/y//z/", d);
  cleanup_free char *z = xasprintf ("%s/x/y/z", d);
  cleanup_free char *file = xasprintf ("%s/file", d);
  cleanup_free char *under_file = xasprintf ("%s/file/sub", d);
  struct stat st;

  (void) state;
  assert_int_equal (orch_mkdir_p (deep, 0750), 0);
  assert_int_equal (stat (z, &st), 0);
  assert_true (S_ISDIR (st.st_mode));
  /* Again: existing directories are fine. */
  assert_int_equal (orch_mkdir_p (z, 0750), 0);
  touch (file, "x");
  assert_int_equal (orch_mkdir_p (under_file, 0750), -ENOTDIR);
  assert_int_equal (orch_mkdir_p (file, 0750), -ENOTDIR);
  assert_int_equal (orch_mkdir_p ("", 0750), -EINVAL);
  assert_int_equal (orch_rm_rf (d), 0);
}

static void
write_file_atomic_cases (void **state)
{
  cleanup_free char *d = make_tmpdir ();
  cleanup_free char *f = xasprintf ("%s/state.json", d);
  cleanup_free char *tmp = xasprintf ("%s/state.json.tmp", d);
  cleanup_free char *missing = xasprintf ("%s/no/such/dir/f", d);
  cleanup_free char *buf = NULL;
  size_t len = 0;
  struct stat st;

  (void) state;
  assert_int_equal (orch_write_file_atomic (f, "first", 5, 0600), 0);
  assert_int_equal (orch_read_file (f, 1024, &buf, &len), 0);
  assert_int_equal (len, 5);
  assert_string_equal (buf, "first");
  free (TAKE_PTR (buf));
  /* Replacing leaves no temporary file and applies the mode. */
  assert_int_equal (orch_write_file_atomic (f, "second!", 7, 0640), 0);
  assert_int_equal (orch_read_file (f, 1024, &buf, &len), 0);
  assert_string_equal (buf, "second!");
  assert_int_equal (stat (f, &st), 0);
  assert_int_equal (st.st_mode & 07777, 0640);
  assert_false (exists (tmp));
  /* Binary data with NULs keeps its length. */
  assert_int_equal (orch_write_file_atomic (f, "a\0b", 3, 0600), 0);
  free (TAKE_PTR (buf));
  assert_int_equal (orch_read_file (f, 1024, &buf, &len), 0);
  assert_int_equal (len, 3);
  assert_memory_equal (buf, "a\0b", 3);
  assert_int_equal (orch_write_file_atomic (missing, "x", 1, 0600), -ENOENT);
  assert_int_equal (orch_rm_rf (d), 0);
}

static void
read_file_limits (void **state)
{
  cleanup_free char *d = make_tmpdir ();
  cleanup_free char *f = xasprintf ("%s/f", d);
  cleanup_free char *empty = xasprintf ("%s/empty", d);
  cleanup_free char *buf = NULL;
  size_t len = 99;

  (void) state;
  touch (f, "0123456789");
  assert_int_equal (orch_read_file (f, 9, &buf, &len), -EFBIG);
  assert_null (buf);
  assert_int_equal (orch_read_file (f, 10, &buf, &len), 0);
  assert_int_equal (len, 10);
  free (TAKE_PTR (buf));
  touch (empty, "");
  assert_int_equal (orch_read_file (empty, 10, &buf, &len), 0);
  assert_int_equal (len, 0);
  assert_string_equal (buf, "");
  free (TAKE_PTR (buf));
  assert_int_equal (orch_read_file (d, 10, &buf, &len), -EISDIR);
  assert_int_equal (orch_read_file ("/nonexistent/x", 10, &buf, &len), -ENOENT);
  /* /proc files report size 0: the limit applies while reading. */
  assert_int_equal (orch_read_file ("/proc/self/status", 16, &buf, &len), -EFBIG);
  assert_int_equal (orch_read_file ("/proc/self/status", 1 << 20, &buf, &len), 0);
  assert_non_null (strstr (buf, "Name:"));
  assert_int_equal (strlen (buf), len);
  free (TAKE_PTR (buf));
  /* sysfs reports 4096 bytes for a few bytes of content: a small limit
   * must still read it. */
  if (access ("/sys/kernel/mm/transparent_hugepage/enabled", R_OK) == 0)
    {
      assert_int_equal (
          orch_read_file ("/sys/kernel/mm/transparent_hugepage/enabled", 256, &buf, &len), 0);
      assert_non_null (strchr (buf, '['));
    }
  assert_int_equal (orch_rm_rf (d), 0);
}

static void
dns_labels (void **state)
{
  static const char *const good[] = {
    "a", "web", "web-1", "0", "a0-b1-c2", "123",
    "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk", /* 63 */
  };
  static const char *const bad[] = {
    "", "-web", "web-", "Web", "web_1", "web.1", "web 1", "wéb",
    "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl", /* 64 */
  };
  size_t i;

  (void) state;
  for (i = 0; i < ORCH_ARRAY_LEN (good); i++)
    if (!orch_is_dns_label (good[i]))
      fail_msg ("\"%s\" should be a DNS label", good[i]);
  for (i = 0; i < ORCH_ARRAY_LEN (bad); i++)
    if (orch_is_dns_label (bad[i]))
      fail_msg ("\"%s\" should not be a DNS label", bad[i]);
  assert_false (orch_is_dns_label (NULL));
}

static void
err_set_sys_wrap (void **state)
{
  orch_err_t err;

  (void) state;
  orch_err_clear (&err);
  assert_int_equal (orch_err_set (&err, 0, "bad %s", "thing"), -1);
  assert_string_equal (err.msg, "bad thing");
  assert_int_equal (err.code, 0);
  assert_int_equal (orch_err_wrap (&err, "load %d", 7), -1);
  assert_string_equal (err.msg, "load 7: bad thing");

  assert_int_equal (orch_err_set (&err, ENOENT, "open x"), -ENOENT);
  assert_int_equal (orch_err_wrap (&err, "start"), -ENOENT);
  assert_string_equal (err.msg, "start: open x");

  errno = EACCES;
  assert_int_equal (orch_err_sys (&err, "open %s", "/etc/x"), -EACCES);
  assert_int_equal (err.code, EACCES);
  assert_string_equal (err.msg, "open /etc/x: Permission denied");

  orch_err_clear (&err);
  assert_int_equal (err.code, 0);
  assert_string_equal (err.msg, "");
  /* A NULL err is allowed (callers that do not want the text). */
  assert_int_equal (orch_err_set (NULL, EINVAL, "x"), -EINVAL);
}

static void
err_wrap_truncates (void **state)
{
  orch_err_t err;
  char big[2000];
  int i;

  (void) state;
  memset (big, 'a', sizeof (big) - 1);
  big[sizeof (big) - 1] = '\0';
  orch_err_set (&err, 0, "%s", big);
  assert_int_equal (strlen (err.msg), ORCH_ERR_MSG_MAX - 1);
  for (i = 0; i < 5; i++)
    orch_err_wrap (&err, "ctx%d", i);
  assert_int_equal (strncmp (err.msg, "ctx4: ctx3: ", 12), 0);
  assert_true (strlen (err.msg) < ORCH_ERR_MSG_MAX);
}

static void
errlist_join_cases (void **state)
{
  orch_errlist_t l = { 0 };
  cleanup_free char *empty = NULL, *joined = NULL;

  (void) state;
  empty = orch_errlist_join (&l);
  assert_string_equal (empty, "");
  for (int i = 0; i < 100; i++)
    orch_errlist_add (&l, "e%d", i);
  assert_int_equal (l.len, 100);
  joined = orch_errlist_join (&l);
  assert_int_equal (strncmp (joined, "e0\ne1\ne2\n", 9), 0);
  assert_non_null (strstr (joined, "\ne99"));
  assert_int_equal (joined[strlen (joined) - 1], '9');
  orch_errlist_free (&l);
  assert_int_equal (l.len, 0);
  assert_null (l.items);
  orch_errlist_free (&l);
}

static void
grow_and_take (void **state)
{
  int *arr = NULL;
  size_t cap = 0, i;
  cleanup_free char *p = xstrdup ("x");
  char *q;

  (void) state;
  for (i = 0; i < 1000; i++)
    {
      orch_grow ((void **) &arr, &cap, i + 1, sizeof (int));
      arr[i] = (int) i;
    }
  assert_true (cap >= 1000);
  assert_int_equal (arr[999], 999);
  free (arr);
  q = TAKE_PTR (p);
  assert_null (p);
  free (q);
  assert_true (orch_now_mono_ms () > 0);
  assert_true (orch_now_wall_ms () > 1700000000000LL);
}

static void
log_line_format (void **state)
{
  cleanup_free char *d = make_tmpdir ();
  cleanup_free char *f = xasprintf ("%s/log", d);
  cleanup_free char *buf = NULL;
  orch_log_level_t lvl;
  regex_t re;
  int saved, fd;
  size_t len;

  (void) state;
  assert_int_equal (orch_log_level_parse ("warn", &lvl), 0);
  assert_int_equal (lvl, ORCH_LOG_WARN);
  assert_int_equal (orch_log_level_parse ("DEBUG", &lvl), 0);
  assert_int_equal (lvl, ORCH_LOG_DEBUG);
  assert_int_equal (orch_log_level_parse ("loud", &lvl), -1);

  fflush (stderr);
  saved = dup (STDERR_FILENO);
  fd = open (f, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true (fd >= 0);
  dup2 (fd, STDERR_FILENO);
  close (fd);
  orch_log_init ("agent", ORCH_LOG_INFO);
  orch_debug ("hidden %d", 1);
  orch_info ("started on %s", "node-1");
  orch_error ("two\nlines");
  fflush (stderr);
  dup2 (saved, STDERR_FILENO);
  close (saved);

  assert_int_equal (orch_read_file (f, 4096, &buf, &len), 0);
  assert_int_equal (regcomp (&re,
                             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
                             "INFO  agent: started on node-1\n"
                             "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{12}Z ERROR agent: two lines\n$",
                             REG_EXTENDED),
                    0);
  if (regexec (&re, buf, 0, NULL, 0) != 0)
    fail_msg ("unexpected log output:\n%s", buf);
  regfree (&re);
  assert_int_equal (orch_rm_rf (d), 0);
}

static const struct CMUnitTest tests[] = {
  cmocka_unit_test (rm_rf_removes_tree),
  cmocka_unit_test (rm_rf_missing_and_file),
  cmocka_unit_test (rm_rf_stops_at_mount_points),
  cmocka_unit_test (rm_rf_stops_at_bind_mounts),
  cmocka_unit_test (mkdir_p_cases),
  cmocka_unit_test (write_file_atomic_cases),
  cmocka_unit_test (read_file_limits),
  cmocka_unit_test (dns_labels),
  cmocka_unit_test (err_set_sys_wrap),
  cmocka_unit_test (err_wrap_truncates),
  cmocka_unit_test (errlist_join_cases),
  cmocka_unit_test (grow_and_take),
  cmocka_unit_test (log_line_format),
};

ORCH_TEST_MAIN (tests)
