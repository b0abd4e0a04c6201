/* Memory, file and clock helpers (see orch_util.h). */
#define _GNU_SOURCE
#include "orch_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>

static void __attribute__ ((noreturn))
orch__oom (void)
{
  /* Nothing sensible can be done without memory; stop loudly. */
  static const char msg[] = "orch: out of memory\n";
  ssize_t r = write (STDERR_FILENO, msg, sizeof (msg) - 1);
  (void) r;
  abort ();
}

void *
xmalloc (size_t n)
{
  void *p = malloc (n ? n : 1);
  if (p == NULL)
    orch__oom ();
  return p;
}

void *
xcalloc (size_t nmemb, size_t size)
{
  void *p = calloc (nmemb ? nmemb : 1, size ? size : 1);
  if (p == NULL)
    orch__oom ();
  return p;
}

void *
xrealloc (void *p, size_t n)
{
  void *q = realloc (p, n ? n : 1);
  if (q == NULL)
    orch__oom ();
  return q;
}

char *
xstrdup (const char *s)
{
  char *p = strdup (s);
  if (p == NULL)
    orch__oom ();
  return p;
}

char *
xstrndup (const char *s, size_t n)
{
  char *p = strndup (s, n);
  if (p == NULL)
    orch__oom ();
  return p;
}

char *
xasprintf (const char *fmt, ...)
{
  va_list ap;
  char *s = NULL;
  int r;

  va_start (ap, fmt);
  r = vasprintf (&s, fmt, ap);
  va_end (ap);
  if (r < 0)
    orch__oom ();
  return s;
}

void
orch_grow (void **arr, size_t *cap, size_t need, size_t elem)
{
  size_t ncap;

  if (need <= *cap)
    return;
  ncap = *cap ? *cap : 4;
  while (ncap < need)
    {
      if (ncap > SIZE_MAX / 2)
        orch__oom ();
      ncap *= 2;
    }
  if (elem != 0 && ncap > SIZE_MAX / elem)
    orch__oom ();
  *arr = xrealloc (*arr, ncap * elem);
  *cap = ncap;
}

void
orch_freep (void *p)
{
  free (*(void **) p);
}

void
orch_closep (int *fd)
{
  if (fd != NULL && *fd >= 0)
    {
      int saved = errno;
      close (*fd);
      *fd = -1;
      errno = saved;
    }
}

static int64_t
orch__clock_ms (clockid_t id)
{
  struct timespec ts;

  clock_gettime (id, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
orch_now_mono_ms (void)
{
  return orch__clock_ms (CLOCK_MONOTONIC);
}

int64_t
orch_now_wall_ms (void)
{
  return orch__clock_ms (CLOCK_REALTIME);
}

int
orch_read_file (const char *path, size_t max, char **out, size_t *len)
{
  cleanup_close int fd = -1;
  cleanup_free char *buf = NULL;
  struct stat st;
  size_t cap, used = 0;

  /* Keeps max + 1 and the doubling below from overflowing. */
  if (max > SIZE_MAX / 4)
    max = SIZE_MAX / 4;
  fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return -errno;
  if (fstat (fd, &st) < 0)
    return -errno;
  if (S_ISDIR (st.st_mode))
    return -EISDIR;
  /* st_size is only a hint for the first buffer: /proc and cgroupfs report
   * 0 and sysfs 4096 whatever the content, so the limit is enforced on the
   * bytes actually read. */
  cap = S_ISREG (st.st_mode) && st.st_size > 0 && (uint64_t) st.st_size < max
            ? (size_t) st.st_size + 1
            : 4096;
  if (cap > max + 1)
    cap = max + 1;
  if (cap == 0)
    cap = 1;
  buf = xmalloc (cap + 1);
  for (;;)
    {
      ssize_t r;

      if (used == cap)
        {
          size_t ncap;
          if (cap > max)
            return -EFBIG;
          ncap = cap > (max + 1) / 2 ? max + 1 : cap * 2;
          buf = xrealloc (buf, ncap + 1);
          cap = ncap;
        }
      r = read (fd, buf + used, cap - used);
      if (r < 0)
        {
          if (errno == EINTR)
            continue;
          return -errno;
        }
      if (r == 0)
        break;
      used += (size_t) r;
      if (used > max)
        return -EFBIG;
    }
  buf[used] = '\0';
  *out = TAKE_PTR (buf);
  if (len != NULL)
    *len = used;
  return 0;
}

static int
orch__write_all (int fd, const void *data, size_t len)
{
  const char *p = data;

  while (len > 0)
    {
      ssize_t w = write (fd, p, len);
      if (w < 0)
        {
          if (errno == EINTR)
            continue;
          return -errno;
        }
      p += w;
      len -= (size_t) w;
    }
  return 0;
}

/* Makes a rename durable by syncing the directory that holds path. */
static void
orch__sync_parent (const char *path)
{
  cleanup_free char *dir = xstrdup (path);
  cleanup_close int fd = -1;
  char *slash = strrchr (dir, '/');

  if (slash == NULL)
    fd = open (".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  else
    {
      if (slash == dir)
        slash[1] = '\0';
      else
        *slash = '\0';
      fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
  if (fd >= 0)
    (void) fsync (fd);
}

int
orch_write_file_atomic (const char *path, const void *data, size_t len, int mode)
{
  cleanup_free char *tmp = xasprintf ("%s.tmp", path);
  cleanup_close int fd = -1;
  int r;

  fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0)
    return -errno;
  /* O_CREAT does not change the mode of a leftover tmp file. */
  if (fchmod (fd, mode) < 0)
    {
      r = -errno;
      goto fail;
    }
  r = orch__write_all (fd, data, len);
  if (r < 0)
    goto fail;
  if (fsync (fd) < 0)
    {
      r = -errno;
      goto fail;
    }
  if (close (TAKE_FD (fd)) < 0)
    {
      r = -errno;
      goto fail;
    }
  if (rename (tmp, path) < 0)
    {
      r = -errno;
      goto fail;
    }
  orch__sync_parent (path);
  return 0;

fail:
  unlink (tmp);
  return r;
}

int
orch_mkdir_p (const char *path, int mode)
{
  cleanup_free char *p = NULL;
  struct stat st;
  size_t i, n;

  if (path == NULL || path[0] == '\0')
    return -EINVAL;
  p = xstrdup (path);
  n = strlen (p);
  /* Create each prefix that ends at a '/', then the whole path. */
  for (i = 1; i <= n; i++)
    {
      char saved;

      if (i < n && p[i] != '/')
        continue;
      if (p[i - 1] == '/')
        continue;
      saved = p[i];
      p[i] = '\0';
      if (mkdir (p, mode) < 0)
        {
          int e = errno;
          if (e != EEXIST)
            return -e;
          if (stat (p, &st) < 0)
            return -errno;
          if (!S_ISDIR (st.st_mode))
            return -ENOTDIR;
        }
      p[i] = saved;
    }
  return 0;
}

/* Identity of the mount a file lives on: st_dev alone misses bind mounts of
 * the same file system, so the mount id is compared too where the kernel
 * reports it (statx STATX_MNT_ID, Linux 5.8). */
typedef struct
{
  uint64_t dev;
  uint64_t mnt_id;
  bool has_mnt_id;
  mode_t mode;
} orch__fid_t;

static int
orch__fid (int dirfd, const char *name, orch__fid_t *out)
{
#ifdef STATX_MNT_ID
  struct statx stx;

  if (statx (dirfd, name, AT_SYMLINK_NOFOLLOW | (name[0] == '\0' ? AT_EMPTY_PATH : 0),
             STATX_TYPE | STATX_MNT_ID, &stx)
      == 0)
    {
      out->dev = makedev (stx.stx_dev_major, stx.stx_dev_minor);
      out->has_mnt_id = (stx.stx_mask & STATX_MNT_ID) != 0;
      out->mnt_id = stx.stx_mnt_id;
      out->mode = stx.stx_mode;
      return 0;
    }
  if (errno != ENOSYS)
    return -errno;
#endif
  {
    struct stat st;
    if (fstatat (dirfd, name, &st, AT_SYMLINK_NOFOLLOW | (name[0] == '\0' ? AT_EMPTY_PATH : 0))
        < 0)
      return -errno;
    out->dev = st.st_dev;
    out->has_mnt_id = false;
    out->mnt_id = 0;
    out->mode = st.st_mode;
  }
  return 0;
}

static bool
orch__same_mount (const orch__fid_t *a, const orch__fid_t *b)
{
  if (a->dev != b->dev)
    return false;
  if (a->has_mnt_id && b->has_mnt_id && a->mnt_id != b->mnt_id)
    return false;
  return true;
}

/* Empties the directory open at dfd (which this function closes), staying on
 * the mount identified by root. Returns 0 or the first -errno met; it keeps
 * going after errors so that as much as possible is removed. */
static int
orch__rm_children (int dfd, const orch__fid_t *root)
{
  DIR *d;
  struct dirent *de;
  int ret = 0;

  d = fdopendir (dfd);
  if (d == NULL)
    {
      int e = -errno;
      close (dfd);
      return e;
    }
  for (;;)
    {
      orch__fid_t fid;
      int r;

      errno = 0;
      de = readdir (d);
      if (de == NULL)
        {
          if (errno != 0 && ret == 0)
            ret = -errno;
          break;
        }
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      r = orch__fid (dirfd (d), de->d_name, &fid);
      if (r < 0)
        {
          if (r != -ENOENT && ret == 0)
            ret = r;
          continue;
        }
      if (!orch__same_mount (&fid, root))
        {
          /* A mount point: leave it and whatever lies below it alone. */
          if (ret == 0)
            ret = -EBUSY;
          continue;
        }
      if (S_ISDIR (fid.mode))
        {
          orch__fid_t opened;
          int cfd = openat (dirfd (d), de->d_name,
                            O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME);
          if (cfd < 0 && errno == EPERM)
            cfd = openat (dirfd (d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
          if (cfd < 0)
            {
              if (errno != ENOENT && ret == 0)
                ret = -errno;
              continue;
            }
          /* Check again on the open fd: something may have been mounted
           * between the stat and the open. */
          r = orch__fid (cfd, "", &opened);
          if (r < 0 || !orch__same_mount (&opened, root))
            {
              close (cfd);
              if (ret == 0)
                ret = r < 0 ? r : -EBUSY;
              continue;
            }
          r = orch__rm_children (cfd, root);
          if (r < 0 && ret == 0)
            ret = r;
          if (unlinkat (dirfd (d), de->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT && ret == 0)
            ret = -errno;
        }
      else if (unlinkat (dirfd (d), de->d_name, 0) < 0 && errno != ENOENT && ret == 0)
        ret = -errno;
    }
  closedir (d);
  return ret;
}

int
orch_rm_rf (const char *path)
{
  orch__fid_t root, opened;
  int fd, r, ret;

  if (path == NULL || path[0] == '\0')
    return -EINVAL;
  r = orch__fid (AT_FDCWD, path, &root);
  if (r == -ENOENT)
    return 0;
  if (r < 0)
    return r;
  if (!S_ISDIR (root.mode))
    {
      if (unlink (path) < 0 && errno != ENOENT)
        return -errno;
      return 0;
    }
  fd = open (path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? 0 : -errno;
  r = orch__fid (fd, "", &opened);
  if (r < 0)
    {
      close (fd);
      return r;
    }
  if (!orch__same_mount (&opened, &root))
    {
      close (fd);
      return -EBUSY;
    }
  ret = orch__rm_children (fd, &root);
  if (rmdir (path) < 0 && errno != ENOENT && ret == 0)
    ret = -errno;
  return ret;
}

int
orch_is_dns_label (const char *s)
{
  size_t i, n;

  if (s == NULL)
    return 0;
  n = strlen (s);
  if (n == 0 || n > 63)
    return 0;
  for (i = 0; i < n; i++)
    {
      char c = s[i];
      bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
      if (alnum)
        continue;
      if (c == '-' && i != 0 && i != n - 1)
        continue;
      return 0;
    }
  return 1;
}
