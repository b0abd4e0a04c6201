/* The node-local image store: imports from a directory and from archives,
 * refusal of hostile archives, atomic replacement, the missing-image error. */
#define _GNU_SOURCE
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "orch_test.h"
#include "orch_util.h"
#include "rt.h"

typedef struct
{
  const char *path;
  mode_t type; /* S_IFREG, S_IFDIR, S_IFLNK */
  mode_t perm;
  const char *data; /* file contents or symlink target */
} tar_item_t;

static char *
make_tmpdir (void)
{
  char *d = xstrdup ("/tmp/orch-test-image-XXXXXX");
  assert_non_null (mkdtemp (d));
  return d;
}

/* Writes a gzip-compressed pax tar with the given entries. */
static void
write_tar (const char *path, const tar_item_t *items, size_t n)
{
  struct archive *a = archive_write_new ();
  assert_int_equal (archive_write_add_filter_gzip (a), ARCHIVE_OK);
  assert_int_equal (archive_write_set_format_pax_restricted (a), ARCHIVE_OK);
  assert_int_equal (archive_write_open_filename (a, path), ARCHIVE_OK);
  for (size_t i = 0; i < n; i++)
    {
      struct archive_entry *e = archive_entry_new ();
      archive_entry_set_pathname (e, items[i].path);
      archive_entry_set_filetype (e, items[i].type);
      archive_entry_set_perm (e, items[i].perm);
      archive_entry_set_uid (e, 0);
      archive_entry_set_gid (e, 0);
      archive_entry_set_mtime (e, 1700000000, 0);
      size_t len = 0;
      if (items[i].type == S_IFLNK)
        archive_entry_set_symlink (e, items[i].data);
      else if (items[i].type == S_IFREG)
        len = strlen (items[i].data);
      archive_entry_set_size (e, (la_int64_t) len);
      assert_int_equal (archive_write_header (a, e), ARCHIVE_OK);
      if (len > 0)
        assert_int_equal (archive_write_data (a, items[i].data, len), (la_ssize_t) len);
      archive_entry_free (e);
    }
  assert_int_equal (archive_write_close (a), ARCHIVE_OK);
  archive_write_free (a);
}

static void
write_text (const char *path, const char *text, mode_t mode)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, mode);
  assert_true (fd >= 0);
  assert_int_equal (write (fd, text, strlen (text)), (ssize_t) strlen (text));
  assert_int_equal (fchmod (fd, mode), 0);
  close (fd);
}

static void
assert_file (const char *path, const char *text, mode_t perm)
{
  char *data = NULL;
  size_t len = 0;
  assert_int_equal (orch_read_file (path, 1 << 20, &data, &len), 0);
  assert_string_equal (data, text);
  free (data);
  struct stat st;
  assert_int_equal (lstat (path, &st), 0);
  assert_true (S_ISREG (st.st_mode));
  assert_int_equal (st.st_mode & 07777, perm);
}

static void
assert_symlink (const char *path, const char *target)
{
  char buf[PATH_MAX];
  ssize_t n = readlink (path, buf, sizeof buf - 1);
  assert_true (n > 0);
  buf[n] = '\0';
  assert_string_equal (buf, target);
}

/* Names in dir, space-separated and sorted. */
static char *
list_dir (const char *dir)
{
  struct dirent **names;
  int n = scandir (dir, &names, NULL, alphasort);
  if (n < 0)
    return xstrdup ("<missing>");
  char *out = xstrdup ("");
  for (int i = 0; i < n; i++)
    {
      if (strcmp (names[i]->d_name, ".") != 0 && strcmp (names[i]->d_name, "..") != 0)
        {
          char *next = xasprintf ("%s%s%s", out, *out ? " " : "", names[i]->d_name);
          free (out);
          out = next;
        }
      free (names[i]);
    }
  free (names);
  return out;
}

static void
test_import_from_dir (void **state)
{
  char *tmp = make_tmpdir ();
  char *src = xasprintf ("%s/src", tmp);
  char *stdir = xasprintf ("%s/state", tmp);
  assert_int_equal (orch_mkdir_p (src, 0755), 0);
  char *bin = xasprintf ("%s/bin", src);
  assert_int_equal (mkdir (bin, 0750), 0);
  char *tool = xasprintf ("%s/bin/tool", src);
  write_text (tool, "#!/bin/sh\necho hi\n", 0755);
  char *conf = xasprintf ("%s/conf", src);
  write_text (conf, "x=1\n", 0600);
  char *link = xasprintf ("%s/bin/sh", src);
  assert_int_equal (symlink ("tool", link), 0);

  orch_err_t err = { 0 };
  int ret = image_import (stdir, "busy-box_1.0", src, &err);
  if (ret < 0)
    fail_msg ("%s", err.msg);
  char *root = image_rootfs (stdir, "busy-box_1.0", &err);
  assert_non_null (root);
  char *want_root = xasprintf ("%s/images/busy-box_1.0/rootfs", stdir);
  assert_string_equal (root, want_root);

  char *p = xasprintf ("%s/bin/tool", root);
  assert_file (p, "#!/bin/sh\necho hi\n", 0755);
  free (p);
  p = xasprintf ("%s/conf", root);
  assert_file (p, "x=1\n", 0600);
  free (p);
  p = xasprintf ("%s/bin/sh", root);
  assert_symlink (p, "tool");
  free (p);
  struct stat st;
  p = xasprintf ("%s/bin", root);
  assert_int_equal (stat (p, &st), 0);
  assert_int_equal (st.st_mode & 07777, 0750);
  free (p);
  /* Nothing but the image is left in the store. */
  char *images = xasprintf ("%s/images", stdir);
  char *names = list_dir (images);
  assert_string_equal (names, "busy-box_1.0");

  free (names);
  free (images);
  free (want_root);
  free (root);
  orch_rm_rf (tmp);
  free (link);
  free (conf);
  free (tool);
  free (bin);
  free (stdir);
  free (src);
  free (tmp);
}

static void
test_import_from_tar (void **state)
{
  char *tmp = make_tmpdir ();
  char *tar = xasprintf ("%s/img.tar.gz", tmp);
  char *stdir = xasprintf ("%s/state", tmp);
  const tar_item_t items[] = {
    { "./", S_IFDIR, 0755, NULL },
    { "./bin/", S_IFDIR, 0755, NULL },
    { "./bin/busybox", S_IFREG, 0755, "ELF-ish" },
    { "./bin/sh", S_IFLNK, 0777, "busybox" },
    { "./etc/", S_IFDIR, 0755, NULL },
    { "./etc/passwd", S_IFREG, 0644, "root:x:0:0:root:/root:/bin/sh\n" },
    { "./tmp/", S_IFDIR, 01777, NULL },
  };
  write_tar (tar, items, ORCH_ARRAY_LEN (items));

  orch_err_t err = { 0 };
  if (image_import (stdir, "busybox", tar, &err) < 0)
    fail_msg ("%s", err.msg);
  char *root = image_rootfs (stdir, "busybox", &err);
  assert_non_null (root);
  char *p = xasprintf ("%s/bin/busybox", root);
  assert_file (p, "ELF-ish", 0755);
  free (p);
  p = xasprintf ("%s/bin/sh", root);
  assert_symlink (p, "busybox");
  free (p);
  p = xasprintf ("%s/etc/passwd", root);
  assert_file (p, "root:x:0:0:root:/root:/bin/sh\n", 0644);
  free (p);
  struct stat st;
  p = xasprintf ("%s/tmp", root);
  assert_int_equal (stat (p, &st), 0);
  assert_int_equal (st.st_mode & 07777, 01777);
  free (p);
  /* Times are kept. */
  p = xasprintf ("%s/etc/passwd", root);
  assert_int_equal (stat (p, &st), 0);
  assert_int_equal (st.st_mtime, 1700000000);
  free (p);

  free (root);
  orch_rm_rf (tmp);
  free (stdir);
  free (tar);
  free (tmp);
}

static void
test_import_refuses_dotdot (void **state)
{
  char *tmp = make_tmpdir ();
  char *tar = xasprintf ("%s/evil.tar", tmp);
  char *stdir = xasprintf ("%s/state", tmp);
  const tar_item_t items[] = {
    { "ok", S_IFREG, 0644, "fine" },
    { "../evil", S_IFREG, 0644, "gotcha" },
  };
  write_tar (tar, items, ORCH_ARRAY_LEN (items));

  orch_err_t err = { 0 };
  assert_true (image_import (stdir, "evil", tar, &err) < 0);
  /* The message names the image, the archive and the entry. */
  assert_non_null (strstr (err.msg, "evil"));
  assert_non_null (strstr (err.msg, tar));
  assert_non_null (strstr (err.msg, "../evil"));
  /* Nothing left: no image, no temporary directory, nothing outside. */
  char *images = xasprintf ("%s/images", stdir);
  char *names = list_dir (images);
  assert_string_equal (names, "");
  char *outside = xasprintf ("%s/evil", images);
  assert_int_equal (access (outside, F_OK), -1);
  orch_err_t err2 = { 0 };
  assert_null (image_rootfs (stdir, "evil", &err2));

  free (outside);
  free (names);
  free (images);
  orch_rm_rf (tmp);
  free (stdir);
  free (tar);
  free (tmp);
}

static void
test_import_refuses_symlink_escape (void **state)
{
  char *tmp = make_tmpdir ();
  char *tar = xasprintf ("%s/evil.tar", tmp);
  char *stdir = xasprintf ("%s/state", tmp);
  char *victim_dir = xasprintf ("%s/victim", tmp);
  assert_int_equal (mkdir (victim_dir, 0755), 0);
  const tar_item_t items[] = {
    { "etc", S_IFLNK, 0777, victim_dir },
    { "etc/passwd", S_IFREG, 0644, "pwned" },
  };
  write_tar (tar, items, ORCH_ARRAY_LEN (items));

  orch_err_t err = { 0 };
  assert_true (image_import (stdir, "evil", tar, &err) < 0);
  char *victim = xasprintf ("%s/passwd", victim_dir);
  assert_int_equal (access (victim, F_OK), -1);
  char *images = xasprintf ("%s/images", stdir);
  char *names = list_dir (images);
  assert_string_equal (names, "");

  free (names);
  free (images);
  free (victim);
  orch_rm_rf (tmp);
  free (victim_dir);
  free (stdir);
  free (tar);
  free (tmp);
}

static void
test_import_replaces (void **state)
{
  char *tmp = make_tmpdir ();
  char *tar1 = xasprintf ("%s/v1.tar", tmp);
  char *tar2 = xasprintf ("%s/v2.tar", tmp);
  char *stdir = xasprintf ("%s/state", tmp);
  const tar_item_t v1[]
      = { { "version", S_IFREG, 0644, "1\n" }, { "only-v1", S_IFREG, 0644, "x" } };
  const tar_item_t v2[] = { { "version", S_IFREG, 0644, "2\n" } };
  write_tar (tar1, v1, ORCH_ARRAY_LEN (v1));
  write_tar (tar2, v2, ORCH_ARRAY_LEN (v2));

  orch_err_t err = { 0 };
  if (image_import (stdir, "app", tar1, &err) < 0)
    fail_msg ("%s", err.msg);
  char *root = image_rootfs (stdir, "app", &err);
  assert_non_null (root);
  char *ver = xasprintf ("%s/version", root);
  assert_file (ver, "1\n", 0644);

  if (image_import (stdir, "app", tar2, &err) < 0)
    fail_msg ("%s", err.msg);
  assert_file (ver, "2\n", 0644);
  char *old = xasprintf ("%s/only-v1", root);
  assert_int_equal (access (old, F_OK), -1);
  char *images = xasprintf ("%s/images", stdir);
  char *names = list_dir (images);
  assert_string_equal (names, "app");

  /* A failed replacement keeps the current image. */
  const tar_item_t bad[] = { { "/abs", S_IFREG, 0644, "x" } };
  write_tar (tar1, bad, ORCH_ARRAY_LEN (bad));
  assert_true (image_import (stdir, "app", tar1, &err) < 0);
  assert_file (ver, "2\n", 0644);
  free (names);
  names = list_dir (images);
  assert_string_equal (names, "app");

  free (names);
  free (images);
  free (old);
  free (ver);
  free (root);
  orch_rm_rf (tmp);
  free (stdir);
  free (tar2);
  free (tar1);
  free (tmp);
}

static void
test_missing_image (void **state)
{
  char *tmp = make_tmpdir ();
  orch_err_t err = { 0 };
  assert_null (image_rootfs (tmp, "nginx", &err));
  assert_string_equal (err.msg,
                       "image nginx is not imported on this node (orchctl image import nginx "
                       "ROOTFS.tar)");
  orch_rm_rf (tmp);
  free (tmp);
}

static void
test_bad_names (void **state)
{
  char *tmp = make_tmpdir ();
  static const char *const bad[] = { "", "../x", "a/b", "UPPER", ".hidden", "sp ace", NULL };
  for (size_t i = 0; bad[i] != NULL; i++)
    {
      orch_err_t err = { 0 };
      assert_true (image_import (tmp, bad[i], tmp, &err) < 0);
      assert_int_equal (err.code, EINVAL);
      assert_null (image_rootfs (tmp, bad[i], &err));
    }
  char longname[130];
  memset (longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  orch_err_t err = { 0 };
  assert_true (image_import (tmp, longname, tmp, &err) < 0);
  /* Nothing was created for a refused name. */
  char *names = list_dir (tmp);
  assert_string_equal (names, "");
  free (names);
  orch_rm_rf (tmp);
  free (tmp);
}

static void
test_missing_source (void **state)
{
  char *tmp = make_tmpdir ();
  char *src = xasprintf ("%s/nope.tar", tmp);
  orch_err_t err = { 0 };
  assert_true (image_import (tmp, "x", src, &err) < 0);
  assert_non_null (strstr (err.msg, src));
  /* Not an archive: the libarchive message is passed on. */
  write_text (src, "this is not a tar file\n", 0644);
  orch_err_clear (&err);
  assert_true (image_import (tmp, "x", src, &err) < 0);
  assert_non_null (strstr (err.msg, src));
  assert_non_null (strstr (err.msg, "format"));
  orch_rm_rf (tmp);
  free (src);
  free (tmp);
}

static const struct CMUnitTest tests[] = {
  cmocka_unit_test (test_import_from_dir),
  cmocka_unit_test (test_import_from_tar),
  cmocka_unit_test (test_import_refuses_dotdot),
  cmocka_unit_test (test_import_refuses_symlink_escape),
  cmocka_unit_test (test_import_replaces),
  cmocka_unit_test (test_missing_image),
  cmocka_unit_test (test_bad_names),
  cmocka_unit_test (test_missing_source),
};

ORCH_TEST_MAIN (tests)
