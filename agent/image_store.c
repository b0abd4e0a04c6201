/* The node-local image store: <state>/images/<name>/rootfs.
 *
 * An import unpacks into <state>/images/.tmp-<name>-<pid>/rootfs and then
 * swaps that directory with <state>/images/<name> in one rename (exchange
 * when an old one exists), so a reader sees the old image or the new one,
 * never half of one.
 *
 * libarchive's disk writer resolves entry paths against the current
 * directory, and its secure-extraction checks (no "..", no absolute paths,
 * no writing through symlinks) only work on relative paths. The current
 * directory is per-process, so the unpacking runs on its own thread that
 * first unshares its filesystem context (unshare(CLONE_FS)): its chdir
 * touches nobody else. */
#define _GNU_SOURCE
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "orch_util.h"
#include "rt.h"

#define IMAGE_NAME_MAX 128

static const int image_extract_flags
    = ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS
      | ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_OWNER
      | ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_XATTR;

static int
image_check_name (const char *name, orch_err_t *err)
{
  size_t len = name != NULL ? strlen (name) : 0;
  if (len == 0 || len > IMAGE_NAME_MAX)
    return orch_err_set (err, EINVAL, "image name must have 1 to %d characters", IMAGE_NAME_MAX);
  /* A leading dot would collide with the store's temporary directories. */
  if (name[0] == '.')
    return orch_err_set (err, EINVAL, "image name \"%s\" must not start with '.'", name);
  for (const char *p = name; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '_'
          || *p == '-'))
      return orch_err_set (err, EINVAL,
                           "image name \"%s\" may only contain a-z, 0-9, '.', '_' and '-'", name);
  return 0;
}

typedef struct image_job_s
{
  const char *source; /* absolute path of a directory or an archive file */
  bool source_is_dir;
  const char *dest; /* existing empty directory to unpack into */
  orch_err_t err;
  int ret;
} image_job_t;

static int
image_copy_data (struct archive *in, struct archive *out, const char *path, orch_err_t *err)
{
  for (;;)
    {
      const void *buf;
      size_t size;
      la_int64_t offset;
      int r = archive_read_data_block (in, &buf, &size, &offset);
      if (r == ARCHIVE_EOF)
        return 0;
      if (r < ARCHIVE_WARN)
        return orch_err_set (err, archive_errno (in) > 0 ? archive_errno (in) : EIO, "read %s: %s",
                             path, archive_error_string (in));
      la_ssize_t w = archive_write_data_block (out, buf, size, offset);
      if (w < ARCHIVE_WARN)
        return orch_err_set (err, archive_errno (out) > 0 ? archive_errno (out) : EIO,
                             "write %s: %s", path, archive_error_string (out));
    }
}

/* Reads every entry of in and writes it relative to the current directory.
 * strip: length of the prefix to remove from each pathname (a disk walk
 * reports the source path itself), or 0. */
static int
image_unpack (struct archive *in, struct archive *out, size_t strip, bool disk, orch_err_t *err)
{
  struct archive_entry *entry = NULL;
  cleanup_free char *rel = NULL;
  for (;;)
    {
      int r = disk ? archive_read_next_header2 (in, entry = entry ? entry : archive_entry_new ())
                   : archive_read_next_header (in, &entry);
      if (r == ARCHIVE_EOF)
        break;
      if (r < ARCHIVE_WARN)
        {
          int ret = orch_err_set (err, archive_errno (in) > 0 ? archive_errno (in) : EIO, "%s",
                                  archive_error_string (in));
          if (disk)
            archive_entry_free (entry);
          return ret;
        }
      const char *path = archive_entry_pathname (entry);
      if (path == NULL)
        continue;
      if (disk)
        {
          /* "SRC" -> ".", "SRC/a/b" -> "./a/b" (SRC may be "/") */
          free (rel);
          const char *tail = strlen (path) > strip ? path + strip : "";
          rel = xasprintf ("%s%s", *tail == '/' || *tail == '\0' ? "." : "./", tail);
          archive_entry_set_pathname (entry, rel);
          archive_read_disk_descend (in);
          path = rel;
        }
      r = archive_write_header (out, entry);
      if (r < ARCHIVE_WARN)
        {
          int ret = orch_err_set (err, archive_errno (out) > 0 ? archive_errno (out) : EIO,
                                  "%s: %s", path, archive_error_string (out));
          if (disk)
            archive_entry_free (entry);
          return ret;
        }
      if (archive_entry_size (entry) > 0 && image_copy_data (in, out, path, err) < 0)
        {
          if (disk)
            archive_entry_free (entry);
          return -1;
        }
      r = archive_write_finish_entry (out);
      if (r < ARCHIVE_WARN)
        {
          int ret = orch_err_set (err, archive_errno (out) > 0 ? archive_errno (out) : EIO,
                                  "%s: %s", path, archive_error_string (out));
          if (disk)
            archive_entry_free (entry);
          return ret;
        }
    }
  if (disk)
    archive_entry_free (entry);
  /* Directory permissions and times are applied at close. */
  if (archive_write_close (out) < ARCHIVE_WARN)
    return orch_err_set (err, archive_errno (out) > 0 ? archive_errno (out) : EIO, "%s",
                         archive_error_string (out));
  return 0;
}

static void *
image_job_run (void *arg)
{
  image_job_t *job = arg;
  job->ret = -1;
  if (unshare (CLONE_FS) < 0)
    {
      orch_err_sys (&job->err, "unshare(CLONE_FS)");
      return NULL;
    }
  if (chdir (job->dest) < 0)
    {
      orch_err_sys (&job->err, "chdir %s", job->dest);
      return NULL;
    }
  struct archive *out = archive_write_disk_new ();
  struct archive *in = job->source_is_dir ? archive_read_disk_new () : archive_read_new ();
  if (in == NULL || out == NULL)
    abort ();
  archive_write_disk_set_options (out, image_extract_flags);
  int r;
  if (job->source_is_dir)
    {
      archive_read_disk_set_symlink_physical (in);
      archive_read_disk_set_behavior (in, ARCHIVE_READDISK_NO_TRAVERSE_MOUNTS
                                              | ARCHIVE_READDISK_NO_ACL
                                              | ARCHIVE_READDISK_NO_FFLAGS);
      r = archive_read_disk_open (in, job->source);
    }
  else
    {
      archive_read_support_filter_all (in);
      archive_read_support_format_all (in);
      r = archive_read_open_filename (in, job->source, 64 * 1024);
    }
  if (r != ARCHIVE_OK)
    orch_err_set (&job->err, archive_errno (in) > 0 ? archive_errno (in) : EIO, "open: %s",
                  archive_error_string (in));
  else
    job->ret = image_unpack (in, out, job->source_is_dir ? strlen (job->source) : 0,
                             job->source_is_dir, &job->err);
  archive_read_free (in);
  archive_write_free (out);
  return NULL;
}

int
image_import (const char *state_dir, const char *name, const char *source, orch_err_t *err)
{
  if (image_check_name (name, err) < 0)
    return -1;
  if (state_dir == NULL || source == NULL)
    return orch_err_set (err, EINVAL, "import image %s: missing state dir or source", name);

  cleanup_free char *src = realpath (source, NULL);
  if (src == NULL)
    return orch_err_sys (err, "import image %s: %s", name, source);
  struct stat st;
  if (stat (src, &st) < 0)
    return orch_err_sys (err, "import image %s: %s", name, src);
  if (!S_ISDIR (st.st_mode) && !S_ISREG (st.st_mode))
    return orch_err_set (
        err, EINVAL, "import image %s: %s is neither a directory nor an archive file", name, src);

  cleanup_free char *images = xasprintf ("%s/images", state_dir);
  int ret = orch_mkdir_p (images, 0755);
  if (ret < 0)
    return orch_err_set (err, -ret, "import image %s: mkdir %s: %s", name, images, strerror (-ret));
  /* The counter keeps two imports from threads of one process apart. */
  static unsigned seq;
  cleanup_free char *tmp = xasprintf ("%s/.tmp-%s-%d-%u", images, name, (int) getpid (),
                                      __atomic_fetch_add (&seq, 1, __ATOMIC_RELAXED));
  cleanup_free char *tmp_rootfs = xasprintf ("%s/rootfs", tmp);
  cleanup_free char *final = xasprintf ("%s/%s", images, name);

  orch_rm_rf (tmp); /* left by an import that died with this pid */
  if (mkdir (tmp, 0755) < 0 || mkdir (tmp_rootfs, 0755) < 0)
    {
      orch_err_sys (err, "import image %s: mkdir %s", name, tmp_rootfs);
      orch_rm_rf (tmp);
      return -1;
    }

  image_job_t job = {
    .source = src,
    .source_is_dir = S_ISDIR (st.st_mode),
    .dest = tmp_rootfs,
  };
  pthread_t th;
  ret = pthread_create (&th, NULL, image_job_run, &job);
  if (ret != 0)
    {
      orch_rm_rf (tmp);
      return orch_err_set (err, ret, "import image %s: pthread_create: %s", name, strerror (ret));
    }
  pthread_join (th, NULL);
  if (job.ret < 0)
    {
      orch_rm_rf (tmp);
      *err = job.err;
      return orch_err_wrap (err, "import image %s from %s", name, src);
    }

  /* Swap in the new image; the old one (if any) ends up in tmp. */
  if (renameat2 (AT_FDCWD, tmp, AT_FDCWD, final, RENAME_EXCHANGE) < 0)
    {
      if (errno == ENOENT)
        ret = rename (tmp, final);
      else if (errno == EINVAL || errno == ENOSYS)
        {
          /* No exchange on this filesystem: move the old one aside first. */
          cleanup_free char *old = xasprintf ("%s.old", tmp);
          orch_rm_rf (old);
          ret = rename (final, old);
          if (ret == 0 && (ret = rename (tmp, final)) < 0)
            {
              int e = errno;
              (void) rename (old, final);
              errno = e;
            }
          else if (ret == 0)
            orch_rm_rf (old);
        }
      else
        ret = -1;
      if (ret < 0)
        {
          orch_err_sys (err, "import image %s: rename %s to %s", name, tmp, final);
          orch_rm_rf (tmp);
          return -1;
        }
      return 0;
    }
  ret = orch_rm_rf (tmp);
  if (ret < 0)
    return orch_err_set (err, -ret, "import image %s: remove the old image in %s: %s", name, tmp,
                         strerror (-ret));
  return 0;
}

char *
image_rootfs (const char *state_dir, const char *name, orch_err_t *err)
{
  if (image_check_name (name, err) < 0)
    return NULL;
  if (state_dir == NULL)
    {
      orch_err_set (err, EINVAL, "image %s: missing state dir", name);
      return NULL;
    }
  cleanup_free char *path = xasprintf ("%s/images/%s/rootfs", state_dir, name);
  struct stat st;
  if (stat (path, &st) < 0 || !S_ISDIR (st.st_mode))
    {
      orch_err_set (err, ENOENT,
                    "image %s is not imported on this node (orchctl image import %s ROOTFS.tar)",
                    name, name);
      return NULL;
    }
  return TAKE_PTR (path);
}
