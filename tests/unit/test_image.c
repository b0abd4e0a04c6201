/* The node-local image store: reference parsing, imports from a directory,
 * plain archives, docker-archives and OCI layouts (layers with whiteouts and
 * opaque directories), refusal of hostile archives and of blobs that do not
 * match their digest, atomic replacement, the missing-image error, GC. */
#define _GNU_SOURCE
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "orch_test.h"
#include "orch_util.h"
#include <openssl/evp.h>
#include <utime.h>

#include "image.h"
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

static void write_tar_z (const char *path, const tar_item_t *items, size_t n, bool gzip);

/* Writes a gzip-compressed pax tar with the given entries. */
static void
write_tar (const char *path, const tar_item_t *items, size_t n)
{
  write_tar_z (path, items, n, true);
}

static void
write_plain_tar (const char *path, const tar_item_t *items, size_t n)
{
  write_tar_z (path, items, n, false);
}

static void
write_tar_z (const char *path, const tar_item_t *items, size_t n, bool gzip)
{
  struct archive *a = archive_write_new ();
  if (gzip)
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

/* A failed import publishes nothing: no ref, no rootfs, no work dir. */
static void
assert_store_empty (const char *stdir)
{
  static const char *const subs[] = { "refs", "rootfs", "tmp" };
  for (size_t i = 0; i < ORCH_ARRAY_LEN (subs); i++)
    {
      char *d = xasprintf ("%s/images/%s", stdir, subs[i]);
      char *names = list_dir (d);
      if (strcmp (names, "<missing>") != 0)
        assert_string_equal (names, "");
      free (names);
      free (d);
    }
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
  /* Content-addressed: images/rootfs/<config hex>/rootfs. */
  char *want_root = xasprintf ("%s/images/rootfs/", stdir);
  assert_memory_equal (root, want_root, strlen (want_root));
  assert_int_equal (strlen (root), strlen (want_root) + 64 + strlen ("/rootfs"));

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
  /* The ref is published under its canonical name; no work dir is left. */
  char *images = xasprintf ("%s/images/refs", stdir);
  char *names = list_dir (images);
  assert_string_equal (names, "busy-box_1.0%3Alatest");
  assert_true (image_present (stdir, "busy-box_1.0"));
  assert_true (image_present (stdir, "busy-box_1.0:latest"));
  assert_false (image_present (stdir, "busy-box_1.0:2"));
  free (names);
  free (images);
  images = xasprintf ("%s/images/tmp", stdir);
  names = list_dir (images);
  assert_string_equal (names, "");

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
  assert_store_empty (stdir);
  char *images = xasprintf ("%s/images", stdir);
  char *names = NULL;
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
  assert_store_empty (stdir);

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
  /* The ref now names the new image; the old one is left to GC (a running
   * allocation may still use it). */
  char *root2 = image_rootfs (stdir, "app", &err);
  assert_non_null (root2);
  assert_string_not_equal (root, root2);
  free (ver);
  ver = xasprintf ("%s/version", root2);
  assert_file (ver, "2\n", 0644);
  char *old = xasprintf ("%s/only-v1", root2);
  assert_int_equal (access (old, F_OK), -1);
  char *images = xasprintf ("%s/images/refs", stdir);
  char *names = list_dir (images);
  assert_string_equal (names, "app%3Alatest");

  /* A failed replacement keeps the current image. */
  const tar_item_t bad[] = { { "/abs", S_IFREG, 0644, "x" } };
  write_tar (tar1, bad, ORCH_ARRAY_LEN (bad));
  assert_true (image_import (stdir, "app", tar1, &err) < 0);
  char *root3 = image_rootfs (stdir, "app", &err);
  assert_non_null (root3);
  assert_string_equal (root3, root2);
  assert_file (ver, "2\n", 0644);
  free (names);
  names = list_dir (images);
  assert_string_equal (names, "app%3Alatest");
  free (root3);
  free (root2);

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
  static const char *const bad[]
      = { "", "../x", "a//b", "UPPER", ".hidden", "sp ace", "x@sha256:12", NULL };
  for (size_t i = 0; bad[i] != NULL; i++)
    {
      orch_err_t err = { 0 };
      assert_true (image_import (tmp, bad[i], tmp, &err) < 0);
      assert_int_equal (err.code, EINVAL);
      assert_null (image_rootfs (tmp, bad[i], &err));
    }
  char longname[300];
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

/* ---- references ---------------------------------------------------------- */

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void
test_ref_parse_table (void **state)
{
  static const struct
  {
    const char *in, *registry, *repo, *tag, *digest, *canon;
  } ok[] = {
    { "busybox", NULL, "busybox", "latest", NULL, "busybox:latest" },
    { "busybox:1.36", NULL, "busybox", "1.36", NULL, "busybox:1.36" },
    { "library/busybox:1", NULL, "library/busybox", "1", NULL, "library/busybox:1" },
    { "team/app", NULL, "team/app", "latest", NULL, "team/app:latest" },
    { "localhost:5000/busybox:1", "localhost:5000", "busybox", "1", NULL,
      "localhost:5000/busybox:1" },
    { "localhost/busybox", "localhost", "busybox", "latest", NULL, "localhost/busybox:latest" },
    { "registry.example.com/team/app@sha256:" HEX64, "registry.example.com", "team/app", NULL,
      "sha256:" HEX64, "registry.example.com/team/app@sha256:" HEX64 },
    { "r.io:443/a/b:v1.2-rc_3@sha256:" HEX64, "r.io:443", "a/b", "v1.2-rc_3", "sha256:" HEX64,
      "r.io:443/a/b:v1.2-rc_3@sha256:" HEX64 },
    { "[::1]:5000/x:Y", "[::1]:5000", "x", "Y", NULL, "[::1]:5000/x:Y" },
    { "my-app_2.0", NULL, "my-app_2.0", "latest", NULL, "my-app_2.0:latest" },
  };
  for (size_t i = 0; i < ORCH_ARRAY_LEN (ok); i++)
    {
      image_ref_t r;
      orch_err_t err = { 0 };
      if (image_ref_parse (ok[i].in, &r, &err) < 0)
        fail_msg ("%s: %s", ok[i].in, err.msg);
      if (ok[i].registry)
        assert_string_equal (r.registry, ok[i].registry);
      else
        assert_null (r.registry);
      assert_string_equal (r.repo, ok[i].repo);
      if (ok[i].tag)
        assert_string_equal (r.tag, ok[i].tag);
      else
        assert_null (r.tag);
      if (ok[i].digest)
        assert_string_equal (r.digest, ok[i].digest);
      else
        assert_null (r.digest);
      char *c = image_ref_format (&r);
      assert_string_equal (c, ok[i].canon);
      free (c);
      image_ref_free (&r);
    }
  static const struct
  {
    const char *in, *why;
  } bad[] = {
    { "", "1 to 255" },
    { "Busybox", "lowercase" },
    { "busybox:", "tag" },
    { ":tag", "empty repository" },
    { "busybox@sha256:abc", "digest" },
    { "busybox@md5:" HEX64, "digest" },
    { "a//b", "empty path component" },
    { "a/", "trailing" },
    { "-a", "start and end" },
    { "a:b:c", "not allowed" },
    { "host.io:99999/x", "port" },
    { "busybox:-bad", "bad tag" },
    { "sp ace", "spaces" },
    { "a/../b", "start and end" },
  };
  for (size_t i = 0; i < ORCH_ARRAY_LEN (bad); i++)
    {
      image_ref_t r;
      orch_err_t err = { 0 };
      if (image_ref_parse (bad[i].in, &r, &err) == 0)
        fail_msg ("\"%s\" was accepted", bad[i].in);
      assert_int_equal (err.code, EINVAL);
      if (strstr (err.msg, bad[i].why) == NULL)
        fail_msg ("\"%s\": \"%s\" does not say \"%s\"", bad[i].in, err.msg, bad[i].why);
    }
}

/* ---- image archives built here ------------------------------------------- */

static char *
sha256_file (const char *path)
{
  char *data = NULL;
  size_t len = 0;
  assert_int_equal (orch_read_file (path, 64 << 20, &data, &len), 0);
  unsigned char md[32];
  unsigned int n = 0;
  assert_int_equal (EVP_Digest (data, len, md, &n, EVP_sha256 (), NULL), 1);
  free (data);
  char *out = xmalloc (72);
  strcpy (out, "sha256:");
  for (unsigned i = 0; i < 32; i++)
    sprintf (out + 7 + 2 * i, "%02x", md[i]);
  return out;
}

static void
write_data (const char *path, const char *data)
{
  write_text (path, data, 0644);
}

/* Writes a plain tar holding the given files of dir (names relative to it). */
static void
write_tar_of (const char *tar, const char *dir, const char *const *names, size_t n)
{
  struct archive *a = archive_write_new ();
  assert_int_equal (archive_write_set_format_pax_restricted (a), ARCHIVE_OK);
  assert_int_equal (archive_write_open_filename (a, tar), ARCHIVE_OK);
  for (size_t i = 0; i < n; i++)
    {
      char *p = xasprintf ("%s/%s", dir, names[i]);
      char *data = NULL;
      size_t len = 0;
      assert_int_equal (orch_read_file (p, 64 << 20, &data, &len), 0);
      struct archive_entry *e = archive_entry_new ();
      archive_entry_set_pathname (e, names[i]);
      archive_entry_set_filetype (e, S_IFREG);
      archive_entry_set_perm (e, 0644);
      archive_entry_set_size (e, (la_int64_t) len);
      assert_int_equal (archive_write_header (a, e), ARCHIVE_OK);
      if (len > 0)
        assert_int_equal (archive_write_data (a, data, len), (la_ssize_t) len);
      archive_entry_free (e);
      free (data);
      free (p);
    }
  assert_int_equal (archive_write_close (a), ARCHIVE_OK);
  archive_write_free (a);
}

/* Three layers exercising whiteouts. Layer 3 also tries to delete a file
 * outside the image through a symlink layer 1 planted. */
static void
write_whiteout_layers (const char *dir, const char *victim_dir)
{
  const tar_item_t l1[] = {
    { "./", S_IFDIR, 0755, NULL },
    { "etc/", S_IFDIR, 0755, NULL },
    { "etc/a", S_IFREG, 0644, "A1" },
    { "etc/b", S_IFREG, 0644, "B1" },
    { "dir/", S_IFDIR, 0755, NULL },
    { "dir/x", S_IFREG, 0644, "X" },
    { "dir/sub/", S_IFDIR, 0755, NULL },
    { "dir/sub/y", S_IFREG, 0644, "Y" },
    { "dir/keepsub/", S_IFDIR, 0755, NULL },
    { "dir/keepsub/old", S_IFREG, 0644, "OLD" },
    { "keep/", S_IFDIR, 0755, NULL },
    { "keep/k", S_IFREG, 0644, "K" },
    { "victimlink", S_IFLNK, 0777, victim_dir },
    { "gone/", S_IFDIR, 0755, NULL },
    { "gone/deep", S_IFREG, 0644, "D" },
  };
  /* dir/new and dir/keepsub/fresh come before the opaque marker: entries
   * of the same layer must survive it, but not what lower layers left in a
   * directory this layer writes into (dir/keepsub/old). */
  const tar_item_t l2[] = {
    { "etc/.wh.a", S_IFREG, 0644, "" },
    { "dir/new", S_IFREG, 0644, "NEW" },
    { "dir/keepsub/fresh", S_IFREG, 0644, "FRESH" },
    { "dir/.wh..wh..opq", S_IFREG, 0644, "" },
    { "etc/c", S_IFREG, 0644, "C2" },
    { "keep/k2", S_IFREG, 0644, "K2" },
    { "./.wh.gone", S_IFREG, 0644, "" },
    { "etc/b", S_IFREG, 0600, "B2" },
  };
  const tar_item_t l3[] = {
    { "victimlink/.wh.file", S_IFREG, 0644, "" }, { ".wh.nonexistent", S_IFREG, 0644, "" },
    { "etc/.wh..", S_IFREG, 0644, "" },           { "gone/", S_IFDIR, 0700, NULL },
    { "gone/again", S_IFREG, 0644, "G3" },
  };
  char *p = xasprintf ("%s/l1.tar.gz", dir);
  write_tar (p, l1, ORCH_ARRAY_LEN (l1));
  free (p);
  p = xasprintf ("%s/l2.tar.gz", dir);
  write_tar (p, l2, ORCH_ARRAY_LEN (l2));
  free (p);
  p = xasprintf ("%s/l3.tar.gz", dir);
  write_tar (p, l3, ORCH_ARRAY_LEN (l3));
  free (p);
}

static void
assert_whiteouts_applied (const char *root, const char *victim_dir)
{
  char *p;
  p = xasprintf ("%s/etc/a", root);
  assert_int_equal (access (p, F_OK), -1);
  free (p);
  p = xasprintf ("%s/etc/b", root);
  assert_file (p, "B2", 0600);
  free (p);
  p = xasprintf ("%s/etc/c", root);
  assert_file (p, "C2", 0644);
  free (p);
  p = xasprintf ("%s/dir", root);
  char *names = list_dir (p);
  assert_string_equal (names, "keepsub new");
  free (names);
  free (p);
  p = xasprintf ("%s/dir/keepsub", root);
  names = list_dir (p);
  assert_string_equal (names, "fresh");
  free (names);
  free (p);
  p = xasprintf ("%s/keep", root);
  names = list_dir (p);
  assert_string_equal (names, "k k2");
  free (names);
  free (p);
  /* A whiteout then a re-creation in a later layer: only the new content. */
  p = xasprintf ("%s/gone", root);
  names = list_dir (p);
  assert_string_equal (names, "again");
  free (names);
  free (p);
  /* No whiteout marker made it into the rootfs. */
  p = xasprintf ("%s/etc", root);
  names = list_dir (p);
  assert_string_equal (names, "b c");
  free (names);
  free (p);
  /* The file behind the planted symlink is untouched. */
  p = xasprintf ("%s/file", victim_dir);
  assert_file (p, "precious", 0644);
  free (p);
}

static void
test_docker_archive_whiteouts (void **state)
{
  char *tmp = make_tmpdir ();
  char *stdir = xasprintf ("%s/state", tmp);
  char *src = xasprintf ("%s/src", tmp);
  char *victim_dir = xasprintf ("%s/victim", tmp);
  assert_int_equal (mkdir (src, 0755), 0);
  assert_int_equal (mkdir (victim_dir, 0755), 0);
  char *vf = xasprintf ("%s/file", victim_dir);
  write_data (vf, "precious");
  write_whiteout_layers (src, victim_dir);
  char *cfg = xasprintf ("%s/cafe.json", src);
  write_data (cfg, "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{}}");
  /* Two images in one archive: the import picks the one tagged as asked. */
  char *man = xasprintf ("%s/manifest.json", src);
  write_data (man,
              "[{\"Config\":\"cafe.json\",\"RepoTags\":[\"other:1\"],\"Layers\":[\"l1.tar.gz\"]},"
              "{\"Config\":\"cafe.json\",\"RepoTags\":[\"docker.io/library/app:1\"],"
              "\"Layers\":[\"l1.tar.gz\",\"l2.tar.gz\",\"l3.tar.gz\"]}]");
  char *tar = xasprintf ("%s/app.tar", tmp);
  static const char *const files[]
      = { "l1.tar.gz", "l2.tar.gz", "l3.tar.gz", "cafe.json", "manifest.json" };
  write_tar_of (tar, src, files, ORCH_ARRAY_LEN (files));

  orch_err_t err = { 0 };
  if (image_import (stdir, "app:1", tar, &err) < 0)
    fail_msg ("%s", err.msg);
  char *root = image_rootfs (stdir, "app:1", &err);
  assert_non_null (root);
  assert_whiteouts_applied (root, victim_dir);
  assert_false (image_present (stdir, "app"));
  /* By the digest of its config (the image id) too. */
  image_info_t info;
  assert_int_equal (image_inspect (stdir, "app:1", &info, &err), 0);
  char *byid = xasprintf ("app@%s", info.id);
  char *root2 = image_rootfs (stdir, byid, &err);
  assert_non_null (root2);
  assert_string_equal (root, root2);
  image_info_free (&info);

  /* The same archive as a directory (docker save | tar x), under its full
   * name; a tag it does not hold is refused, naming the tag. */
  if (image_import (stdir, "docker.io/library/app:1", src, &err) < 0)
    fail_msg ("%s", err.msg);
  char *root3 = image_rootfs (stdir, "docker.io/library/app:1", &err);
  assert_string_equal (root3, root);
  orch_err_clear (&err);
  assert_true (image_import (stdir, "app:2", src, &err) < 0);
  assert_non_null (strstr (err.msg, "none is tagged app:2"));
  assert_false (image_present (stdir, "app:2"));

  free (root3);
  free (root2);
  free (byid);
  free (root);
  orch_rm_rf (tmp);
  free (tar);
  free (man);
  free (cfg);
  free (vf);
  free (victim_dir);
  free (src);
  free (stdir);
  free (tmp);
}

static char *
blob_of (const char *blobdir, const char *text, long long *size)
{
  char *tmp = xasprintf ("%s/tmp-blob", blobdir);
  write_data (tmp, text);
  char *d = sha256_file (tmp);
  char *to = xasprintf ("%s/%s", blobdir, d + 7);
  assert_int_equal (rename (tmp, to), 0);
  *size = (long long) strlen (text);
  free (to);
  free (tmp);
  return d;
}

static void
test_docker_archive_diff_id_mismatch (void **state)
{
  /* docker save writes uncompressed layers whose digests are the config's
   * diff_ids: a swapped layer is refused. */
  char *tmp = make_tmpdir ();
  char *stdir = xasprintf ("%s/state", tmp);
  char *src = xasprintf ("%s/src", tmp);
  assert_int_equal (mkdir (src, 0755), 0);
  const tar_item_t good[] = { { "ok", S_IFREG, 0644, "good" } };
  const tar_item_t bad[] = { { "ok", S_IFREG, 0644, "evil" } };
  char *lp = xasprintf ("%s/layer.tar", src);
  write_plain_tar (lp, good, ORCH_ARRAY_LEN (good));
  char *diff_id = sha256_file (lp);
  write_plain_tar (lp, bad, ORCH_ARRAY_LEN (bad));
  char *cfg = xasprintf ("%s/c.json", src);
  char *cfg_text = xasprintf ("{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":"
                              "{\"type\":\"layers\",\"diff_ids\":[\"%s\"]}}",
                              diff_id);
  write_data (cfg, cfg_text);
  char *man = xasprintf ("%s/manifest.json", src);
  write_data (man, "[{\"Config\":\"c.json\",\"RepoTags\":[\"x:1\"],\"Layers\":[\"layer.tar\"]}]");

  orch_err_t err = { 0 };
  assert_true (image_import (stdir, "x:1", src, &err) < 0);
  if (strstr (err.msg, "digest mismatch") == NULL || strstr (err.msg, diff_id) == NULL)
    fail_msg ("unexpected: %s", err.msg);
  assert_false (image_present (stdir, "x:1"));
  assert_store_empty (stdir);

  /* The genuine layer imports. */
  write_plain_tar (lp, good, ORCH_ARRAY_LEN (good));
  if (image_import (stdir, "x:1", src, &err) < 0)
    fail_msg ("%s", err.msg);
  char *root = image_rootfs (stdir, "x:1", &err);
  char *p = xasprintf ("%s/ok", root);
  assert_file (p, "good", 0644);

  free (p);
  free (root);
  free (man);
  free (cfg_text);
  free (cfg);
  free (diff_id);
  free (lp);
  orch_rm_rf (tmp);
  free (src);
  free (stdir);
  free (tmp);
}

static void
test_import_refuses_hardlink_escape (void **state)
{
  char *tmp = make_tmpdir ();
  char *stdir = xasprintf ("%s/state", tmp);
  char *tar = xasprintf ("%s/evil.tar", tmp);
  struct archive *a = archive_write_new ();
  assert_int_equal (archive_write_set_format_pax_restricted (a), ARCHIVE_OK);
  assert_int_equal (archive_write_open_filename (a, tar), ARCHIVE_OK);
  struct archive_entry *e = archive_entry_new ();
  archive_entry_set_pathname (e, "passwd");
  archive_entry_set_filetype (e, AE_IFREG);
  archive_entry_set_perm (e, 0644);
  archive_entry_set_hardlink (e, "../../../../../../../../etc/passwd");
  archive_entry_set_size (e, 0);
  assert_int_equal (archive_write_header (a, e), ARCHIVE_OK);
  archive_entry_free (e);
  assert_int_equal (archive_write_close (a), ARCHIVE_OK);
  archive_write_free (a);

  orch_err_t err = { 0 };
  assert_true (image_import (stdir, "evil", tar, &err) < 0);
  assert_false (image_present (stdir, "evil"));
  assert_store_empty (stdir);
  free (tar);
  orch_rm_rf (tmp);
  free (stdir);
  free (tmp);
}

/* Writes an OCI layout under dir: an index pointing at a nested index
 * (arm64 first, amd64 second) pointing at the manifest of the whiteout
 * layers. Returns the manifest's digest. */
static char *
write_oci_layout (const char *dir, const char *victim_dir)
{
  char *blobs = xasprintf ("%s/blobs/sha256", dir);
  assert_int_equal (orch_mkdir_p (blobs, 0755), 0);
  write_whiteout_layers (dir, victim_dir);
  char *layer_json = xstrdup ("");
  static const char *const layers[] = { "l1.tar.gz", "l2.tar.gz", "l3.tar.gz" };
  for (size_t i = 0; i < 3; i++)
    {
      char *p = xasprintf ("%s/%s", dir, layers[i]);
      char *d = sha256_file (p);
      struct stat st;
      assert_int_equal (stat (p, &st), 0);
      char *to = xasprintf ("%s/%s", blobs, d + 7);
      assert_int_equal (rename (p, to), 0);
      char *next = xasprintf ("%s%s{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\","
                              "\"digest\":\"%s\",\"size\":%lld}",
                              layer_json, i ? "," : "", d, (long long) st.st_size);
      free (layer_json);
      layer_json = next;
      free (to);
      free (d);
      free (p);
    }
  long long cfg_size, man_size, idx_size;
  char *cfg
      = blob_of (blobs, "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{}}", &cfg_size);
  char *man_text = xasprintf ("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image."
                              "manifest.v1+json\",\"config\":{\"mediaType\":\"application/"
                              "vnd.oci.image.config.v1+json\",\"digest\":\"%s\",\"size\":%lld},"
                              "\"layers\":[%s]}",
                              cfg, cfg_size, layer_json);
  char *man = blob_of (blobs, man_text, &man_size);
  char *idx_text = xasprintf (
      "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
      "\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":"
      "\"sha256:%s\",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\"}},"
      "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"%s\",\"size\":"
      "%lld,\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}}]}",
      HEX64, man, man_size);
  char *idx = blob_of (blobs, idx_text, &idx_size);
  char *top = xasprintf ("{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/"
                         "vnd.oci.image.index.v1+json\",\"digest\":\"%s\",\"size\":%lld,"
                         "\"annotations\":{\"org.opencontainers.image.ref.name\":\"1\"}}]}",
                         idx, idx_size);
  char *p = xasprintf ("%s/index.json", dir);
  write_data (p, top);
  free (p);
  p = xasprintf ("%s/oci-layout", dir);
  write_data (p, "{\"imageLayoutVersion\":\"1.0.0\"}");
  free (p);
  free (top);
  free (idx);
  free (idx_text);
  free (man_text);
  free (cfg);
  free (layer_json);
  free (blobs);
  return man;
}

/* Tars up a directory tree (as skopeo's oci-archive: does). */
static void
tar_dir (const char *tar, const char *dir)
{
  char *cmd = xasprintf ("tar -C '%s' -cf '%s' .", dir, tar);
  assert_int_equal (system (cmd), 0);
  free (cmd);
}

static void
test_oci_layout_import (void **state)
{
  char *tmp = make_tmpdir ();
  char *stdir = xasprintf ("%s/state", tmp);
  char *src = xasprintf ("%s/oci", tmp);
  char *victim_dir = xasprintf ("%s/victim", tmp);
  assert_int_equal (mkdir (victim_dir, 0755), 0);
  char *vf = xasprintf ("%s/file", victim_dir);
  write_data (vf, "precious");
  char *man = write_oci_layout (src, victim_dir);

  orch_err_t err = { 0 };
  if (image_import (stdir, "localhost:5000/app:1", src, &err) < 0)
    fail_msg ("%s", err.msg);
  char *root = image_rootfs (stdir, "localhost:5000/app:1", &err);
  assert_non_null (root);
  assert_whiteouts_applied (root, victim_dir);
  /* Found by the digest of the manifest that was picked for linux/amd64,
   * without any registry. */
  char *bydigest = xasprintf ("localhost:5000/app@%s", man);
  assert_true (image_present (stdir, bydigest));
  char *rootfs = NULL;
  image_pull_opts_t opts = { .policy = IMAGE_PULL_IF_MISSING };
  if (image_ensure (stdir, bydigest, &opts, &rootfs, &err) < 0)
    fail_msg ("%s", err.msg);
  assert_string_equal (rootfs, root);
  /* The blobs of the image are in the store under their digests. */
  char *blob = xasprintf ("%s/images/blobs/sha256/%s", stdir, man + 7);
  assert_int_equal (access (blob, R_OK), 0);

  /* The same layout as a tarball. */
  char *tar = xasprintf ("%s/oci.tar", tmp);
  tar_dir (tar, src);
  if (image_import (stdir, "app-tar", tar, &err) < 0)
    fail_msg ("%s", err.msg);
  char *root2 = image_rootfs (stdir, "app-tar", &err);
  assert_string_equal (root2, root);

  free (root2);
  free (tar);
  free (blob);
  free (rootfs);
  free (bydigest);
  free (root);
  free (man);
  orch_rm_rf (tmp);
  free (vf);
  free (victim_dir);
  free (src);
  free (stdir);
  free (tmp);
}

static void
test_oci_layout_digest_mismatch (void **state)
{
  char *tmp = make_tmpdir ();
  char *stdir = xasprintf ("%s/state", tmp);
  char *src = xasprintf ("%s/oci", tmp);
  char *victim_dir = xasprintf ("%s/victim", tmp);
  assert_int_equal (mkdir (victim_dir, 0755), 0);
  char *man = write_oci_layout (src, victim_dir);
  /* Replace the first layer's content: its name no longer matches. */
  char *mp = xasprintf ("%s/blobs/sha256/%s", src, man + 7);
  char *text = NULL;
  size_t len;
  assert_int_equal (orch_read_file (mp, 1 << 20, &text, &len), 0);
  char *d = strstr (text, "\"layers\":[");
  assert_non_null (d);
  d = strstr (d, "sha256:");
  char layer[72];
  memcpy (layer, d, 71);
  layer[71] = '\0';
  char *lp = xasprintf ("%s/blobs/sha256/%s", src, layer + 7);
  const tar_item_t evil[] = { { "etc/", S_IFDIR, 0755, NULL },
                              { "etc/passwd", S_IFREG, 0644, "root::0:0::/:/bin/sh\n" } };
  write_tar (lp, evil, ORCH_ARRAY_LEN (evil));

  orch_err_t err = { 0 };
  assert_true (image_import (stdir, "app:1", src, &err) < 0);
  assert_int_equal (err.code, EBADMSG);
  if (strstr (err.msg, "digest mismatch") == NULL || strstr (err.msg, layer) == NULL
      || strstr (err.msg, "app:1") == NULL)
    fail_msg ("unexpected message: %s", err.msg);
  assert_false (image_present (stdir, "app:1"));
  assert_store_empty (stdir);
  /* The bad content did not make it into the blob store either. */
  char *blob = xasprintf ("%s/images/blobs/sha256/%s", stdir, layer + 7);
  assert_int_equal (access (blob, F_OK), -1);

  free (blob);
  free (lp);
  free (text);
  free (mp);
  free (man);
  orch_rm_rf (tmp);
  free (victim_dir);
  free (src);
  free (stdir);
  free (tmp);
}

/* ---- hostile and malformed metadata ------------------------------------------ */

static void
test_docker_archive_paths_stay_inside (void **state)
{
  /* manifest.json naming files outside the archive (directly or through a
   * symlink in it) is refused before anything is read from there. */
  char *tmp = make_tmpdir ();
  char *stdir = xasprintf ("%s/state", tmp);
  char *src = xasprintf ("%s/src", tmp);
  assert_int_equal (mkdir (src, 0755), 0);
  char *secret = xasprintf ("%s/secret.json", tmp);
  write_data (secret, "{\"architecture\":\"amd64\",\"os\":\"linux\"}");
  char *link = xasprintf ("%s/link.json", src);
  assert_int_equal (symlink (secret, link), 0);
  char *man = xasprintf ("%s/manifest.json", src);
  static const char *const bad[] = {
    "[{\"Config\":\"../secret.json\",\"Layers\":[]}]",
    "[{\"Config\":\"link.json\",\"Layers\":[]}]",
  };
  for (size_t i = 0; i < ORCH_ARRAY_LEN (bad); i++)
    {
      write_data (man, bad[i]);
      orch_err_t err = { 0 };
      assert_true (image_import (stdir, "x", src, &err) < 0);
      if (strstr (err.msg, "outside the image archive") == NULL)
        fail_msg ("%s: %s", bad[i], err.msg);
      assert_store_empty (stdir);
    }
  free (man);
  free (link);
  free (secret);
  orch_rm_rf (tmp);
  free (src);
  free (stdir);
  free (tmp);
}

static void
test_malformed_metadata_is_refused (void **state)
{
  /* Truncated, mistyped and nonsensical index.json / manifest.json: each
   * import fails with a message and publishes nothing (and, under ASan,
   * reads nothing it should not). */
  char *tmp = make_tmpdir ();
  char *stdir = xasprintf ("%s/state", tmp);
  char *src = xasprintf ("%s/oci", tmp);
  char *victim_dir = xasprintf ("%s/victim", tmp);
  assert_int_equal (mkdir (victim_dir, 0755), 0);
  char *man = write_oci_layout (src, victim_dir);
  char *idx_path = xasprintf ("%s/index.json", src);
  char *idx = NULL;
  size_t idx_len;
  assert_int_equal (orch_read_file (idx_path, 1 << 20, &idx, &idx_len), 0);
  static const char *const docs[] = {
    "",
    "{",
    "[]",
    "null",
    "{\"manifests\":\"x\"}",
    "{\"manifests\":[]}",
    "{\"manifests\":[{}]}",
    "{\"manifests\":[{\"digest\":123,\"size\":1}]}",
    "{\"manifests\":[{\"digest\":\"sha512:00\",\"size\":1}]}",
    "{\"manifests\":[{\"digest\":\"sha256:../../../../etc/passwd\",\"size\":1}]}",
    "{\"manifests\":[{\"digest\":\"sha256:" HEX64 "\",\"size\":-1}]}",
    "{\"manifests\":[{\"digest\":\"sha256:" HEX64 "\",\"size\":1}]}",
  };
  for (size_t i = 0; i < ORCH_ARRAY_LEN (docs) + idx_len / 7; i++)
    {
      char *doc;
      if (i < ORCH_ARRAY_LEN (docs))
        doc = xstrdup (docs[i]);
      else
        doc = xstrndup (idx, (i - ORCH_ARRAY_LEN (docs)) * 7); /* truncations */
      write_data (idx_path, doc);
      orch_err_t err = { 0 };
      assert_true (image_import (stdir, "x", src, &err) < 0);
      assert_true (err.msg[0] != '\0');
      assert_false (image_present (stdir, "x"));
      free (doc);
    }
  /* The genuine index still imports after all that. */
  write_data (idx_path, idx);
  orch_err_t err = { 0 };
  if (image_import (stdir, "x", src, &err) < 0)
    fail_msg ("%s", err.msg);

  free (idx);
  free (idx_path);
  free (man);
  orch_rm_rf (tmp);
  free (victim_dir);
  free (src);
  free (stdir);
  free (tmp);
}

static void
test_ref_parse_random (void **state)
{
  /* Random strings over the reference alphabet: never a crash, and what is
   * accepted formats to a canonical form that parses to itself. */
  static const char alphabet[] = "abcxyz019AZ._-/:@[]";
  unsigned seed = 12345;
  for (int n = 0; n < 20000; n++)
    {
      char buf[40];
      seed = seed * 1103515245u + 12345u;
      size_t len = (seed >> 16) % (sizeof buf - 1);
      for (size_t i = 0; i < len; i++)
        {
          seed = seed * 1103515245u + 12345u;
          buf[i] = alphabet[(seed >> 16) % (sizeof alphabet - 1)];
        }
      buf[len] = '\0';
      image_ref_t r;
      orch_err_t err = { 0 };
      if (image_ref_parse (buf, &r, &err) < 0)
        {
          assert_true (err.msg[0] != '\0');
          continue;
        }
      char *c = image_ref_format (&r);
      image_ref_t r2;
      if (image_ref_parse (c, &r2, &err) < 0)
        fail_msg ("\"%s\" -> \"%s\" does not parse: %s", buf, c, err.msg);
      char *c2 = image_ref_format (&r2);
      assert_string_equal (c, c2);
      free (c2);
      free (c);
      image_ref_free (&r2);
      image_ref_free (&r);
    }
}

/* ---- GC -------------------------------------------------------------------- */

static void
set_used (const char *rootfs, time_t when)
{
  /* rootfs is .../rootfs/<id>/rootfs; "used" sits next to it. */
  char *p = xasprintf ("%s/../used", rootfs);
  struct utimbuf t = { when, when };
  assert_int_equal (utime (p, &t), 0);
  free (p);
}

static char *
import_sized (const char *tmp, const char *stdir, const char *name, size_t size)
{
  char *dir = xasprintf ("%s/src-%s", tmp, name);
  assert_int_equal (orch_mkdir_p (dir, 0755), 0);
  char *f = xasprintf ("%s/data", dir);
  char *data = xmalloc (size + 1);
  memset (data, 'a' + (int) (strlen (name) % 26), size);
  data[size] = '\0';
  memcpy (data, name, strlen (name));
  write_data (f, data);
  orch_err_t err = { 0 };
  if (image_import (stdir, name, dir, &err) < 0)
    fail_msg ("%s", err.msg);
  char *root = image_rootfs (stdir, name, &err);
  assert_non_null (root);
  free (data);
  free (f);
  free (dir);
  return root;
}

static size_t
count_entries (const char *dir)
{
  char *names = list_dir (dir);
  size_t n = 0;
  if (*names)
    {
      n = 1;
      for (char *p = names; *p; p++)
        n += *p == ' ';
    }
  free (names);
  return n;
}

static void
test_gc_keeps_in_use (void **state)
{
  char *tmp = make_tmpdir ();
  char *stdir = xasprintf ("%s/state", tmp);
  char *a = import_sized (tmp, stdir, "a", 100000);
  char *b = import_sized (tmp, stdir, "b", 100000);
  char *c = import_sized (tmp, stdir, "c", 100000);
  time_t now = time (NULL);
  set_used (a, now - 300); /* oldest, but running */
  set_used (b, now - 200);
  set_used (c, now - 100);
  char *blobs = xasprintf ("%s/images/blobs/sha256", stdir);
  /* Garbage: a blob nothing refers to. */
  char *junk = xasprintf ("%s/%s", blobs, HEX64);
  write_data (junk, "junk");
  size_t blobs_before = count_entries (blobs);
  assert_int_equal (blobs_before, 3 * 3 + 1);

  /* A big budget only drops the garbage. */
  image_gc_stats_t st;
  orch_err_t err = { 0 };
  const char *in_use[] = { a };
  assert_int_equal (image_gc (stdir, 1ULL << 40, in_use, 1, &st, &err), 0);
  assert_int_equal (st.blobs_removed, 1);
  assert_int_equal (st.images_removed, 0);
  assert_int_equal (access (junk, F_OK), -1);
  assert_true (image_present (stdir, "a") && image_present (stdir, "b")
               && image_present (stdir, "c"));

  /* Just under what the three take: the least recently used unused one
   * (b) goes, a stays although older. */
  uint64_t budget = st.bytes_after - 1;
  assert_int_equal (image_gc (stdir, budget, in_use, 1, &st, &err), 0);
  assert_int_equal (st.images_removed, 1);
  assert_int_equal (st.blobs_removed, 3);
  assert_true (st.bytes_after <= budget);
  assert_true (image_present (stdir, "a"));
  assert_false (image_present (stdir, "b"));
  assert_true (image_present (stdir, "c"));
  assert_int_equal (access (b, F_OK), -1);

  /* Budget 0: everything not in use goes; the running image (named by ref
   * this time) and its blobs stay. */
  const char *in_use2[] = { "a:latest" };
  assert_int_equal (image_gc (stdir, 0, in_use2, 1, &st, &err), 0);
  assert_int_equal (st.images_removed, 1);
  assert_true (image_present (stdir, "a"));
  assert_false (image_present (stdir, "c"));
  char *p = xasprintf ("%s/data", a);
  assert_int_equal (access (p, R_OK), 0);
  free (p);
  assert_int_equal (count_entries (blobs), 3);
  char *refs = xasprintf ("%s/images/refs", stdir);
  char *names = list_dir (refs);
  assert_string_equal (names, "a%3Alatest");
  free (names);

  /* Nothing in use: the store empties. */
  assert_int_equal (image_gc (stdir, 0, NULL, 0, &st, &err), 0);
  assert_false (image_present (stdir, "a"));
  assert_int_equal (count_entries (blobs), 0);
  assert_true (st.bytes_after == 0);

  free (refs);
  free (junk);
  free (blobs);
  free (a);
  free (b);
  free (c);
  orch_rm_rf (tmp);
  free (stdir);
  free (tmp);
}

static void
test_gc_does_not_wait_for_pulls (void **state)
{
  /* A pull or import holds the store's lock shared; GC then refuses at once
   * (EAGAIN) instead of removing blobs being put together. */
  char *tmp = make_tmpdir ();
  char *root = import_sized (tmp, tmp, "a", 1000);
  char *lock = xasprintf ("%s/images/.lock", tmp);
  int fd = open (lock, O_RDWR | O_CLOEXEC);
  assert_true (fd >= 0);
  assert_int_equal (flock (fd, LOCK_SH), 0);
  orch_err_t err = { 0 };
  image_gc_stats_t st;
  assert_true (image_gc (tmp, 0, NULL, 0, &st, &err) < 0);
  assert_int_equal (err.code, EAGAIN);
  assert_true (image_present (tmp, "a"));
  close (fd);
  assert_int_equal (image_gc (tmp, 0, NULL, 0, &st, &err), 0);
  assert_false (image_present (tmp, "a"));
  free (lock);
  free (root);
  orch_rm_rf (tmp);
  free (tmp);
}

static void
test_plain_name_legacy_layout (void **state)
{
  /* Images unpacked by older agents (<state>/images/NAME/rootfs) are still
   * found by their plain name. */
  char *tmp = make_tmpdir ();
  char *bin = xasprintf ("%s/images/busybox/rootfs/bin", tmp);
  assert_int_equal (orch_mkdir_p (bin, 0755), 0);
  orch_err_t err = { 0 };
  char *root = image_rootfs (tmp, "busybox", &err);
  assert_non_null (root);
  char *want = xasprintf ("%s/images/busybox/rootfs", tmp);
  assert_string_equal (root, want);
  assert_true (image_present (tmp, "busybox:latest"));
  assert_false (image_present (tmp, "busybox:1"));
  /* An import of the same name takes precedence. */
  char *src = xasprintf ("%s/src", tmp);
  assert_int_equal (mkdir (src, 0755), 0);
  assert_int_equal (image_import (tmp, "busybox", src, &err), 0);
  char *root2 = image_rootfs (tmp, "busybox", &err);
  assert_string_not_equal (root2, want);
  /* image_ensure of a local name never goes to the network. */
  char *out = NULL;
  assert_true (image_ensure (tmp, "nope:1", NULL, &out, &err) < 0);
  assert_int_equal (err.code, ENOENT);
  assert_non_null (strstr (err.msg, "names no registry"));
  free (root2);
  free (src);
  free (want);
  free (root);
  orch_rm_rf (tmp);
  free (bin);
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
  cmocka_unit_test (test_ref_parse_table),
  cmocka_unit_test (test_docker_archive_whiteouts),
  cmocka_unit_test (test_oci_layout_import),
  cmocka_unit_test (test_oci_layout_digest_mismatch),
  cmocka_unit_test (test_docker_archive_diff_id_mismatch),
  cmocka_unit_test (test_import_refuses_hardlink_escape),
  cmocka_unit_test (test_docker_archive_paths_stay_inside),
  cmocka_unit_test (test_malformed_metadata_is_refused),
  cmocka_unit_test (test_ref_parse_random),
  cmocka_unit_test (test_gc_keeps_in_use),
  cmocka_unit_test (test_gc_does_not_wait_for_pulls),
  cmocka_unit_test (test_plain_name_legacy_layout),
};

ORCH_TEST_MAIN (tests)
