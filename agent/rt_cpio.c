/* cpio "newc" writer (see rt_cpio.h). Each entry is the 6-byte magic
 * "070701", 13 fields of 8 hex digits (ino, mode, uid, gid, nlink, mtime,
 * filesize, devmajor, devminor, rdevmajor, rdevminor, namesize with its NUL,
 * check), the name and its NUL padded to a multiple of 4 bytes from the
 * archive's start, then the data padded likewise; an entry named
 * "TRAILER!!!" ends the archive (the kernel's
 * Documentation/driver-api/early-userspace/buffer-format.rst). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "orch_util.h"
#include "rt_cpio.h"

#define CPIO_HEADER_LEN 110
#define CPIO_BUF 65536
#define CPIO_TRAILER "TRAILER!!!"

struct rt_cpio_s
{
  char *path;
  int fd;
  uint32_t ino;     /* the last inode number handed out; 0 is the trailer's */
  uint64_t off;     /* bytes of archive so far, flushed or not: padding is from the start */
  size_t used;      /* bytes waiting in buf */
  orch_err_t error; /* the first error, when failed */
  bool failed;
  unsigned char buf[CPIO_BUF];
};

/* Hands the recorded first error to err again; returns -code. */
static int
cpio_again (const rt_cpio_t *c, orch_err_t *err)
{
  if (err != NULL)
    *err = c->error;
  return -c->error.code;
}

/* Records the first error and hands it to err; returns -code. */
static int cpio_fail (rt_cpio_t *c, orch_err_t *err, int code, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

static int
cpio_fail (rt_cpio_t *c, orch_err_t *err, int code, const char *fmt, ...)
{
  va_list ap;
  size_t n;

  if (!c->failed)
    {
      c->failed = true;
      c->error.code = code;
      n = (size_t) snprintf (c->error.msg, sizeof (c->error.msg), "%s: ", c->path);
      if (n < sizeof (c->error.msg))
        {
          va_start (ap, fmt);
          vsnprintf (c->error.msg + n, sizeof (c->error.msg) - n, fmt, ap);
          va_end (ap);
        }
    }
  return cpio_again (c, err);
}

/* Writes all of data to the file; 0 or -errno. */
static int
cpio_write_all (int fd, const unsigned char *data, size_t len)
{
  while (len > 0)
    {
      ssize_t w = write (fd, data, len);
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0)
        return -errno;
      if (w == 0)
        return -EIO;
      data += w;
      len -= (size_t) w;
    }
  return 0;
}

static int
cpio_flush (rt_cpio_t *c, orch_err_t *err)
{
  int r = cpio_write_all (c->fd, c->buf, c->used);
  c->used = 0;
  if (r < 0)
    return cpio_fail (c, err, -r, "write: %s", strerror (-r));
  return 0;
}

/* Appends len bytes (zeros when data is NULL): through the buffer, or
 * straight to the file when they would not fit in it anyway. */
static int
cpio_put (rt_cpio_t *c, const void *data, size_t len, orch_err_t *err)
{
  c->off += len;
  if (c->used + len > CPIO_BUF && cpio_flush (c, err) < 0)
    return -c->error.code;
  if (len >= CPIO_BUF && data != NULL)
    {
      int r = cpio_write_all (c->fd, data, len);
      if (r < 0)
        return cpio_fail (c, err, -r, "write: %s", strerror (-r));
      return 0;
    }
  /* Only padding comes without data: at most 3 bytes, so it fits. */
  if (data != NULL)
    memcpy (c->buf + c->used, data, len);
  else
    memset (c->buf + c->used, 0, len);
  c->used += len;
  return 0;
}

static int
cpio_pad (rt_cpio_t *c, orch_err_t *err)
{
  size_t n = (size_t) ((4 - c->off % 4) % 4);
  return n > 0 ? cpio_put (c, NULL, n, err) : 0;
}

/* Checks an entry name (see rt_cpio.h); 0 or -errno with err set. */
static int
cpio_check_name (rt_cpio_t *c, const char *name, orch_err_t *err)
{
  size_t len = strlen (name);

  if (len == 0)
    return cpio_fail (c, err, EINVAL, "empty entry name");
  if (len + 1 > RT_CPIO_NAME_MAX)
    return cpio_fail (c, err, ENAMETOOLONG, "entry name of %zu bytes (the limit is %d)", len,
                      RT_CPIO_NAME_MAX - 1);
  if (name[0] == '/')
    return cpio_fail (c, err, EINVAL, "entry \"%s\": name is absolute", name);
  for (const char *p = name; *p != '\0';)
    {
      size_t n = strcspn (p, "/");
      if (n == 0)
        return cpio_fail (c, err, EINVAL, "entry \"%s\": name has an empty component", name);
      if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
        return cpio_fail (c, err, EINVAL, "entry \"%s\": name has a \"%.*s\" component", name,
                          (int) n, p);
      p += n;
      if (*p == '/')
        p++;
      if (*p == '\0' && p[-1] == '/')
        return cpio_fail (c, err, EINVAL, "entry \"%s\": name has an empty component", name);
    }
  return 0;
}

/* Writes one header and name; size is the data length to follow. */
static int
cpio_header (rt_cpio_t *c, const char *name, uint32_t ino, uint32_t mode, uint32_t nlink,
             uint32_t size, uint32_t rmajor, uint32_t rminor, orch_err_t *err)
{
  char h[CPIO_HEADER_LEN + 1];
  size_t namesize = strlen (name) + 1;

  snprintf (h, sizeof (h), "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", ino, mode,
            0u /* uid */, 0u /* gid */, nlink, 0u /* mtime */, size, 0u /* devmajor */,
            0u /* devminor */, rmajor, rminor, (uint32_t) namesize, 0u /* check */);
  if (cpio_put (c, h, CPIO_HEADER_LEN, err) < 0 || cpio_put (c, name, namesize, err) < 0)
    return -c->error.code;
  return cpio_pad (c, err);
}

/* The checks and header shared by every kind of entry. */
static int
cpio_entry (rt_cpio_t *c, const char *name, mode_t type, mode_t perm, uint32_t nlink, size_t size,
            unsigned rmajor, unsigned rminor, orch_err_t *err)
{
  if (c->failed)
    return cpio_again (c, err);
  if (cpio_check_name (c, name, err) < 0)
    return -c->error.code;
  if ((perm & ~(mode_t) 07777) != 0)
    return cpio_fail (c, err, EINVAL, "entry \"%s\": mode %#o has more than permission bits", name,
                      (unsigned) perm);
  if (size > UINT32_MAX)
    return cpio_fail (c, err, EFBIG, "entry \"%s\": %zu bytes (newc's limit is 4 GiB - 1)", name,
                      size);
  if (c->ino == UINT32_MAX)
    return cpio_fail (c, err, EOVERFLOW, "entry \"%s\": out of inode numbers", name);
  c->ino++;
  return cpio_header (c, name, c->ino, (uint32_t) (type | perm), nlink, (uint32_t) size, rmajor,
                      rminor, err);
}

rt_cpio_t *
rt_cpio_open (const char *path, orch_err_t *err)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    {
      orch_err_sys (err, "%s: create", path);
      return NULL;
    }
  rt_cpio_t *c = xcalloc (1, sizeof (*c));
  c->path = xstrdup (path);
  c->fd = fd;
  return c;
}

int
rt_cpio_dir (rt_cpio_t *c, const char *name, mode_t perm, orch_err_t *err)
{
  /* nlink 2 as for an empty directory; the kernel ignores it for one. */
  return cpio_entry (c, name, S_IFDIR, perm, 2, 0, 0, 0, err);
}

int
rt_cpio_file (rt_cpio_t *c, const char *name, mode_t perm, const void *data, size_t len,
              orch_err_t *err)
{
  /* nlink 1: with more, the kernel would link entries of the same inode. */
  if (cpio_entry (c, name, S_IFREG, perm, 1, len, 0, 0, err) < 0)
    return -c->error.code;
  if (len > 0 && cpio_put (c, data, len, err) < 0)
    return -c->error.code;
  return cpio_pad (c, err);
}

int
rt_cpio_chardev (rt_cpio_t *c, const char *name, mode_t perm, unsigned major, unsigned minor,
                 orch_err_t *err)
{
  return cpio_entry (c, name, S_IFCHR, perm, 1, 0, major, minor, err);
}

static void
cpio_free (rt_cpio_t *c)
{
  free (c->path);
  free (c);
}

int
rt_cpio_close (rt_cpio_t *c, orch_err_t *err)
{
  if (!c->failed && cpio_header (c, CPIO_TRAILER, 0, 0, 1, 0, 0, 0, err) == 0)
    cpio_flush (c, err);
  if (close (c->fd) < 0 && !c->failed)
    cpio_fail (c, err, errno, "close: %s", strerror (errno));
  c->fd = -1;
  if (!c->failed)
    {
      cpio_free (c);
      return 0;
    }
  unlink (c->path);
  int r = cpio_again (c, err);
  cpio_free (c);
  return r;
}

void
rt_cpio_abort (rt_cpio_t *c)
{
  if (c == NULL)
    return;
  close (c->fd);
  unlink (c->path);
  cpio_free (c);
}
