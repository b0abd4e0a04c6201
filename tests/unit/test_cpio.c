/* The cpio "newc" writer of the microvm runtime's initramfs: archives read
 * back with libarchive (and GNU cpio when installed), the exact bytes of a
 * small archive, rejected names, failed writes and aborts. */
#define _GNU_SOURCE
#include "orch_test.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "orch_err.h"
#include "orch_util.h"
#include "rt_cpio.h"

static char *
make_tmpdir (void)
{
  char *d = xstrdup ("/tmp/orch-test-cpio-XXXXXX");
  assert_non_null (mkdtemp (d));
  return d;
}

static bool
exists (const char *path)
{
  struct stat st;
  return lstat (path, &st) == 0;
}

/* Content of a test file of len bytes: differs with the offset and the length. */
static unsigned char *
pattern (size_t len)
{
  unsigned char *p = xmalloc (len + 1);
  for (size_t i = 0; i < len; i++)
    p[i] = (unsigned char) (i * 7 + len);
  return p;
}

typedef struct want_s
{
  const char *name;
  mode_t type;
  mode_t perm;
  size_t len;            /* files */
  unsigned major, minor; /* devices */
} want_t;

static const want_t entries[] = {
  { "d", S_IFDIR, 0755, 0, 0, 0 },
  { "d/sub", S_IFDIR, 0700, 0, 0, 0 },
  { "d/f0", S_IFREG, 0644, 0, 0, 0 },
  { "d/f1", S_IFREG, 0600, 1, 0, 0 },
  { "d/f2", S_IFREG, 0644, 2, 0, 0 },
  { "d/sub/f3", S_IFREG, 0755, 3, 0, 0 },
  { "d/f4", S_IFREG, 0644, 4, 0, 0 },
  { "d/f5", S_IFREG, 04755, 5, 0, 0 },
  { "d/few-kib", S_IFREG, 0644, 5000, 0, 0 },
  /* Larger than the writer's buffer: written around it. */
  { "d/large", S_IFREG, 0444, 200001, 0, 0 },
  { "console", S_IFCHR, 0600, 0, 5, 1 },
  { "d/odd-dev", S_IFCHR, 0666, 0, 254, 300 },
  { "..a", S_IFREG, 0644, 7, 0, 0 },
  { "d/.hidden...", S_IFREG, 0644, 6, 0, 0 },
};

static void
write_entries (const char *path, const want_t *w, size_t n)
{
  orch_err_t err = { 0 };
  rt_cpio_t *c = rt_cpio_open (path, &err);
  assert_non_null (c);
  for (size_t i = 0; i < n; i++)
    {
      int r;
      if (w[i].type == S_IFDIR)
        r = rt_cpio_dir (c, w[i].name, w[i].perm, &err);
      else if (w[i].type == S_IFCHR)
        r = rt_cpio_chardev (c, w[i].name, w[i].perm, w[i].major, w[i].minor, &err);
      else
        {
          cleanup_free unsigned char *data = pattern (w[i].len);
          r = rt_cpio_file (c, w[i].name, w[i].perm, data, w[i].len, &err);
        }
      if (r != 0)
        fail_msg ("%s: %s", w[i].name, err.msg);
    }
  assert_int_equal (rt_cpio_close (c, &err), 0);
}

static void
read_back_with_libarchive (void **state)
{
  cleanup_free char *d = make_tmpdir ();
  cleanup_free char *path = xasprintf ("%s/a.cpio", d);
  (void) state;

  write_entries (path, entries, ORCH_ARRAY_LEN (entries));

  struct archive *a = archive_read_new ();
  assert_non_null (a);
  assert_int_equal (archive_read_support_format_cpio (a), ARCHIVE_OK);
  assert_int_equal (archive_read_open_filename (a, path, 10240), ARCHIVE_OK);
  struct archive_entry *e;
  size_t i = 0;
  int64_t inos[ORCH_ARRAY_LEN (entries)];
  while (archive_read_next_header (a, &e) == ARCHIVE_OK)
    {
      assert_true (i < ORCH_ARRAY_LEN (entries));
      const want_t *w = &entries[i];
      assert_string_equal (archive_entry_pathname (e), w->name);
      assert_int_equal (archive_format (a), ARCHIVE_FORMAT_CPIO_SVR4_NOCRC);
      assert_int_equal (archive_entry_filetype (e), w->type);
      assert_int_equal (archive_entry_perm (e), w->perm);
      assert_int_equal (archive_entry_uid (e), 0);
      assert_int_equal (archive_entry_gid (e), 0);
      assert_int_equal (archive_entry_mtime (e), 0);
      assert_int_equal (archive_entry_nlink (e), w->type == S_IFDIR ? 2 : 1);
      assert_int_equal (archive_entry_size (e), (int64_t) w->len);
      inos[i] = archive_entry_ino64 (e);
      for (size_t j = 0; j < i; j++)
        assert_true (inos[j] != inos[i]);
      if (w->type == S_IFCHR)
        {
          assert_int_equal (archive_entry_rdevmajor (e), w->major);
          assert_int_equal (archive_entry_rdevminor (e), w->minor);
        }
      else
        assert_int_equal (archive_entry_rdev (e), 0);
      if (w->type == S_IFREG)
        {
          cleanup_free unsigned char *expect = pattern (w->len);
          cleanup_free unsigned char *got = xmalloc (w->len + 1);
          size_t off = 0;
          la_ssize_t n;
          while ((n = archive_read_data (a, got + off, w->len + 1 - off)) > 0)
            off += (size_t) n;
          assert_int_equal (n, 0);
          assert_int_equal (off, w->len);
          assert_memory_equal (got, expect, w->len);
        }
      i++;
    }
  assert_int_equal (i, ORCH_ARRAY_LEN (entries));
  assert_int_equal (archive_read_close (a), ARCHIVE_OK);
  archive_read_free (a);
  assert_int_equal (orch_rm_rf (d), 0);
}

/* One directory, one 3-byte file and one device, byte for byte: the fields
 * and the padding worked out by hand. */
static void
exact_bytes (void **state)
{
  /* clang-format off */
  static const char expect[] =
    /* "d": ino 1, mode 040755, nlink 2, namesize 2; 110 + 2 = 112: no padding. */
    "070701" "00000001" "000041ED" "00000000" "00000000" "00000002" "00000000" "00000000"
    "00000000" "00000000" "00000000" "00000000" "00000002" "00000000"
    "d" "\0"
    /* "ab": ino 2, mode 0100644, nlink 1, 3 bytes, namesize 3; 110 + 3 = 113:
     * 3 bytes of padding; then "xyz" and 1 byte of padding. */
    "070701" "00000002" "000081A4" "00000000" "00000000" "00000001" "00000000" "00000003"
    "00000000" "00000000" "00000000" "00000000" "00000003" "00000000"
    "ab" "\0" "\0\0\0"
    "xyz" "\0"
    /* "c": ino 3, mode 020600, nlink 1, rdev 5:1, namesize 2. */
    "070701" "00000003" "00002180" "00000000" "00000000" "00000001" "00000000" "00000000"
    "00000000" "00000000" "00000005" "00000001" "00000002" "00000000"
    "c" "\0"
    /* The trailer: ino 0, mode 0, nlink 1, namesize 11; 110 + 11 = 121: 3 bytes. */
    "070701" "00000000" "00000000" "00000000" "00000000" "00000001" "00000000" "00000000"
    "00000000" "00000000" "00000000" "00000000" "0000000B" "00000000"
    "TRAILER!!!" "\0" "\0\0\0";
  /* clang-format on */
  cleanup_free char *d = make_tmpdir ();
  cleanup_free char *path = xasprintf ("%s/a.cpio", d);
  cleanup_free char *got = NULL;
  size_t len = 0;
  orch_err_t err = { 0 };
  (void) state;

  assert_int_equal (sizeof (expect) - 1, 112 + 116 + 4 + 112 + 124);
  rt_cpio_t *c = rt_cpio_open (path, &err);
  assert_non_null (c);
  assert_int_equal (rt_cpio_dir (c, "d", 0755, &err), 0);
  assert_int_equal (rt_cpio_file (c, "ab", 0644, "xyz", 3, &err), 0);
  assert_int_equal (rt_cpio_chardev (c, "c", 0600, 5, 1, &err), 0);
  assert_int_equal (rt_cpio_close (c, &err), 0);
  assert_string_equal (err.msg, "");

  assert_int_equal (orch_read_file (path, 1 << 20, &got, &len), 0);
  assert_int_equal (len, sizeof (expect) - 1);
  assert_memory_equal (got, expect, len);
  struct stat st;
  assert_int_equal (stat (path, &st), 0);
  assert_int_equal (st.st_mode & 0022, 0);
  assert_int_equal (orch_rm_rf (d), 0);
}

/* An empty archive is the trailer alone. */
static void
empty_archive (void **state)
{
  cleanup_free char *d = make_tmpdir ();
  cleanup_free char *path = xasprintf ("%s/a.cpio", d);
  cleanup_free char *got = NULL;
  size_t len = 0;
  orch_err_t err = { 0 };
  (void) state;

  rt_cpio_t *c = rt_cpio_open (path, &err);
  assert_non_null (c);
  assert_int_equal (rt_cpio_close (c, &err), 0);
  assert_int_equal (orch_read_file (path, 1 << 20, &got, &len), 0);
  assert_int_equal (len, 124);
  assert_memory_equal (got, "070701", 6);
  assert_memory_equal (got + 110, "TRAILER!!!\0\0\0\0", 14);
  assert_int_equal (orch_rm_rf (d), 0);
}

static void
bad_names_rejected (void **state)
{
  static const struct
  {
    const char *name;
    const char *msg;
  } bad[] = {
    { "", "empty entry name" },
    { "/etc/passwd", "entry \"/etc/passwd\": name is absolute" },
    { "..", "entry \"..\": name has a \"..\" component" },
    { "../x", "entry \"../x\": name has a \"..\" component" },
    { "a/../b", "entry \"a/../b\": name has a \"..\" component" },
    { "a/..", "entry \"a/..\": name has a \"..\" component" },
    { "./a", "entry \"./a\": name has a \".\" component" },
    { "a//b", "entry \"a//b\": name has an empty component" },
    { "a/", "entry \"a/\": name has an empty component" },
  };
  cleanup_free char *d = make_tmpdir ();
  cleanup_free char *path = xasprintf ("%s/a.cpio", d);
  (void) state;

  for (size_t i = 0; i < ORCH_ARRAY_LEN (bad); i++)
    for (int kind = 0; kind < 3; kind++)
      {
        orch_err_t err = { 0 };
        rt_cpio_t *c = rt_cpio_open (path, &err);
        assert_non_null (c);
        assert_int_equal (rt_cpio_dir (c, "ok", 0755, &err), 0);
        int r = kind == 0   ? rt_cpio_dir (c, bad[i].name, 0755, &err)
                : kind == 1 ? rt_cpio_file (c, bad[i].name, 0644, "x", 1, &err)
                            : rt_cpio_chardev (c, bad[i].name, 0600, 1, 3, &err);
        assert_int_equal (r, -EINVAL);
        assert_int_equal (err.code, EINVAL);
        cleanup_free char *want = xasprintf ("%s: %s", path, bad[i].msg);
        if (strstr (err.msg, want) == NULL)
          fail_msg ("\"%s\": got \"%s\", want \"%s\"", bad[i].name, err.msg, want);

        /* The first error sticks: later calls and close report it. */
        orch_err_t again = { 0 };
        assert_int_equal (rt_cpio_dir (c, "fine", 0755, &again), -EINVAL);
        assert_string_equal (again.msg, err.msg);
        orch_err_t closed = { 0 };
        assert_int_equal (rt_cpio_close (c, &closed), -EINVAL);
        assert_string_equal (closed.msg, err.msg);
        assert_false (exists (path));
      }

  /* Type bits in the permissions, and a name past the kernel's limit. */
  orch_err_t err = { 0 };
  rt_cpio_t *c = rt_cpio_open (path, &err);
  assert_non_null (c);
  assert_int_equal (rt_cpio_file (c, "f", S_IFREG | 0644, "x", 1, &err), -EINVAL);
  assert_non_null (strstr (err.msg, "\"f\": mode"));
  assert_int_equal (rt_cpio_close (c, NULL), -EINVAL);
  assert_false (exists (path));

  cleanup_free char *longname = xmalloc (RT_CPIO_NAME_MAX + 1);
  memset (longname, 'a', RT_CPIO_NAME_MAX);
  longname[RT_CPIO_NAME_MAX] = '\0';
  c = rt_cpio_open (path, &err);
  assert_non_null (c);
  assert_int_equal (rt_cpio_dir (c, longname, 0755, &err), -ENAMETOOLONG);
  assert_non_null (strstr (err.msg, path));
  rt_cpio_abort (c);
  longname[RT_CPIO_NAME_MAX - 1] = '\0';
  c = rt_cpio_open (path, &err);
  assert_non_null (c);
  assert_int_equal (rt_cpio_dir (c, longname, 0755, &err), 0);
  assert_int_equal (rt_cpio_close (c, &err), 0);
  assert_true (exists (path));
  assert_int_equal (orch_rm_rf (d), 0);
}

static void
abort_removes_file (void **state)
{
  cleanup_free char *d = make_tmpdir ();
  cleanup_free char *path = xasprintf ("%s/a.cpio", d);
  orch_err_t err = { 0 };
  (void) state;

  rt_cpio_t *c = rt_cpio_open (path, &err);
  assert_non_null (c);
  assert_true (exists (path));
  assert_int_equal (rt_cpio_dir (c, "d", 0755, &err), 0);
  cleanup_free unsigned char *data = pattern (100000);
  assert_int_equal (rt_cpio_file (c, "d/f", 0644, data, 100000, &err), 0);
  rt_cpio_abort (c);
  assert_false (exists (path));
  rt_cpio_abort (NULL);
  assert_int_equal (orch_rm_rf (d), 0);
}

static void
open_fails_with_path (void **state)
{
  orch_err_t err = { 0 };
  (void) state;

  assert_null (rt_cpio_open ("/nonexistent-orch-dir/a.cpio", &err));
  assert_int_equal (err.code, ENOENT);
  assert_non_null (strstr (err.msg, "/nonexistent-orch-dir/a.cpio"));
}

/* Writes that fail (a file size limit here) fail the archive, with the path
 * in the message, and leave no partial file. */
static void
write_errors_remove_file (void **state)
{
  cleanup_free char *d = make_tmpdir ();
  cleanup_free char *path = xasprintf ("%s/a.cpio", d);
  cleanup_free unsigned char *data = pattern (100000);
  struct rlimit old, small = { 4096, 0 };
  orch_err_t err = { 0 };
  (void) state;

  assert_int_equal (getrlimit (RLIMIT_FSIZE, &old), 0);
  small.rlim_max = old.rlim_max;
  void (*old_handler) (int) = signal (SIGXFSZ, SIG_IGN);
  assert_int_equal (setrlimit (RLIMIT_FSIZE, &small), 0);

  /* Buffered: the failure shows at close. */
  rt_cpio_t *c = rt_cpio_open (path, &err);
  assert_non_null (c);
  assert_int_equal (rt_cpio_file (c, "f", 0644, data, 5000, &err), 0);
  int r = rt_cpio_close (c, &err);

  /* Larger than the buffer: the failure shows at once. */
  orch_err_t err2 = { 0 };
  cleanup_free char *path2 = xasprintf ("%s/b.cpio", d);
  rt_cpio_t *c2 = rt_cpio_open (path2, &err2);
  assert_non_null (c2);
  int r2 = rt_cpio_file (c2, "f", 0644, data, 100000, &err2);
  int r3 = rt_cpio_dir (c2, "d", 0755, NULL);
  int r4 = rt_cpio_close (c2, NULL);

  assert_int_equal (setrlimit (RLIMIT_FSIZE, &old), 0);
  signal (SIGXFSZ, old_handler);

  assert_int_equal (r, -EFBIG);
  cleanup_free char *want = xasprintf ("%s: write: %s", path, strerror (EFBIG));
  assert_string_equal (err.msg, want);
  assert_false (exists (path));
  assert_int_equal (r2, -EFBIG);
  assert_non_null (strstr (err2.msg, path2));
  assert_int_equal (r3, -EFBIG);
  assert_int_equal (r4, -EFBIG);
  assert_false (exists (path2));
  assert_int_equal (orch_rm_rf (d), 0);
}

/* Runs sh -c cmd; its exit status. */
static int
sh (const char *cmd)
{
  int st = system (cmd);
  return WIFEXITED (st) ? WEXITSTATUS (st) : -1;
}

/* GNU cpio, when installed, lists and unpacks what the writer wrote. */
static void
gnu_cpio_agrees (void **state)
{
  (void) state;
  if (sh ("command -v cpio >/dev/null 2>&1") != 0)
    orch_skip ("GNU cpio is not installed (deploy/install-deps.sh installs it for the tests)");
  cleanup_free char *d = make_tmpdir ();
  cleanup_free char *path = xasprintf ("%s/a.cpio", d);
  cleanup_free char *out = xasprintf ("%s/out", d);
  cleanup_free char *list = xasprintf ("%s/list", d);
  /* Devices are listed, not created: unpacking them would need root. */
  write_entries (path, entries, ORCH_ARRAY_LEN (entries));
  cleanup_free char *cmd = xasprintf ("cpio -it --quiet < %s > %s", path, list);
  assert_int_equal (sh (cmd), 0);
  cleanup_free char *text = NULL;
  size_t len = 0;
  assert_int_equal (orch_read_file (list, 1 << 20, &text, &len), 0);
  cleanup_free char *want = xstrdup ("");
  for (size_t i = 0; i < ORCH_ARRAY_LEN (entries); i++)
    {
      char *next = xasprintf ("%s%s\n", want, entries[i].name);
      free (want);
      want = next;
    }
  assert_string_equal (text, want);

  assert_int_equal (orch_mkdir_p (out, 0755), 0);
  free (cmd);
  cmd = xasprintf ("cd %s && cpio -id --quiet --no-absolute-filenames "
                   "--nonmatching 'console' 'd/odd-dev' < %s",
                   out, path);
  assert_int_equal (sh (cmd), 0);
  for (size_t i = 0; i < ORCH_ARRAY_LEN (entries); i++)
    {
      const want_t *w = &entries[i];
      if (w->type == S_IFCHR)
        continue;
      cleanup_free char *p = xasprintf ("%s/%s", out, w->name);
      struct stat st;
      assert_int_equal (lstat (p, &st), 0);
      assert_int_equal (st.st_mode & S_IFMT, w->type);
      assert_int_equal (st.st_mode & 07777, w->perm);
      if (w->type == S_IFREG)
        {
          cleanup_free char *got = NULL;
          cleanup_free unsigned char *expect = pattern (w->len);
          size_t glen = 0;
          assert_int_equal (orch_read_file (p, 1 << 20, &got, &glen), 0);
          assert_int_equal (glen, w->len);
          assert_memory_equal (got, expect, glen);
        }
    }
  assert_int_equal (orch_rm_rf (d), 0);
}

static const struct CMUnitTest tests[] = {
  cmocka_unit_test (read_back_with_libarchive),
  cmocka_unit_test (exact_bytes),
  cmocka_unit_test (empty_archive),
  cmocka_unit_test (bad_names_rejected),
  cmocka_unit_test (abort_removes_file),
  cmocka_unit_test (open_fails_with_path),
  cmocka_unit_test (write_errors_remove_file),
  cmocka_unit_test (gnu_cpio_agrees),
};

ORCH_TEST_MAIN (tests)
