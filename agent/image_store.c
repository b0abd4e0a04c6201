/* The node-local, content-addressed image store (image.h has the layout):
 * the half that writes it. References and lookups are in image_ref.c
 * (image_internal.h). Sections: digests and blobs; ref files; unpacking
 * layers (whiteouts, secure extraction); installing an image from a
 * manifest; import (rootfs dir/tar, docker-archive, OCI layout); registry
 * pull (libcurl easy, run by the caller off its event loop); pull on
 * demand; GC.
 *
 * libarchive's disk writer resolves entry paths against the current
 * directory, and its secure-extraction checks (no "..", no absolute paths,
 * no writing through symlinks) only work on relative paths. The current
 * directory is per-process, so unpacking runs on its own short-lived thread
 * that first unshares its filesystem context (unshare(CLONE_FS)): its chdir
 * touches nobody else, not even a libuv pool thread that called us. */
#define _GNU_SOURCE
#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "image_internal.h"
#include "orch_map.h"
#include "orch_util.h"
#include "rt.h"

#define IMAGE_MAX_JSON (4U << 20)  /* manifest.json, index.json, configs */
#define IMAGE_MAX_TOKEN (1U << 20) /* a token service's answer */
#define IMAGE_MAX_ERRBODY 4096     /* what we keep of an error response */
#define IMAGE_MAX_HEADER 8192      /* one response header we keep */
#define IMAGE_MAX_ARCHIVE_ENTRIES 100000

static const char image_oci_manifest[] = "application/vnd.oci.image.manifest.v1+json";
static const char image_oci_index[] = "application/vnd.oci.image.index.v1+json";
static const char image_docker_manifest[] = "application/vnd.docker.distribution.manifest.v2+json";
static const char image_docker_list[] = "application/vnd.docker.distribution.manifest.list.v2+json";

static unsigned image_seq;

static unsigned
image__next_seq (void)
{
  return __atomic_fetch_add (&image_seq, 1, __ATOMIC_RELAXED);
}

/* ======================================================================
 * Digests and blobs
 * ====================================================================== */


static void
image__md_hex (EVP_MD_CTX *md, char out[IMAGE_DIGEST_LEN + 1])
{
  unsigned char raw[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  static const char hex[] = "0123456789abcdef";
  EVP_DigestFinal_ex (md, raw, &n);
  memcpy (out, "sha256:", 7);
  for (unsigned int i = 0; i < n && i < 32; i++)
    {
      out[7 + 2 * i] = hex[raw[i] >> 4];
      out[8 + 2 * i] = hex[raw[i] & 15];
    }
  out[IMAGE_DIGEST_LEN] = '\0';
}

static EVP_MD_CTX *
image__md_new (void)
{
  EVP_MD_CTX *md = EVP_MD_CTX_new ();
  if (md == NULL || EVP_DigestInit_ex (md, EVP_sha256 (), NULL) != 1)
    abort ();
  return md;
}

static char *
image__blob_path (const char *images, const char *digest)
{
  return xasprintf ("%s/blobs/sha256/%s", images, digest + 7);
}

static bool
image__blob_exists (const char *images, const char *digest)
{
  cleanup_free char *p = image__blob_path (images, digest);
  struct stat st;
  return stat (p, &st) == 0 && S_ISREG (st.st_mode);
}

/* A blob being written: a temporary file under tmp/, hashed as it grows,
 * renamed into blobs/sha256/ only once its digest is known (and checked). */
typedef struct image_blobw_s
{
  int fd;
  char *tmp;
  EVP_MD_CTX *md;
  uint64_t size;
  uint64_t max;
} image_blobw_t;

static int
image__blobw_open (const char *images, uint64_t max, image_blobw_t *w, orch_err_t *err)
{
  memset (w, 0, sizeof (*w));
  w->tmp = xasprintf ("%s/tmp/blob-%d-%u", images, (int) getpid (), image__next_seq ());
  w->fd = open (w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (w->fd < 0)
    {
      int ret = orch_err_sys (err, "create %s", w->tmp);
      free (w->tmp);
      w->tmp = NULL;
      return ret;
    }
  w->md = image__md_new ();
  w->max = max;
  return 0;
}

static void
image__blobw_abort (image_blobw_t *w)
{
  if (w->fd >= 0)
    close (w->fd);
  w->fd = -1;
  if (w->tmp != NULL)
    unlink (w->tmp);
  free (w->tmp);
  w->tmp = NULL;
  EVP_MD_CTX_free (w->md);
  w->md = NULL;
}

static int
image__blobw_write (image_blobw_t *w, const void *data, size_t len, orch_err_t *err)
{
  if (w->size + len > w->max || w->size + len < w->size)
    return orch_err_set (err, EFBIG, "larger than the limit of %llu bytes",
                         (unsigned long long) w->max);
  EVP_DigestUpdate (w->md, data, len);
  const char *p = data;
  while (len > 0)
    {
      ssize_t n = write (w->fd, p, len);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return orch_err_sys (err, "write %s", w->tmp);
      p += n;
      len -= (size_t) n;
      w->size += (uint64_t) n;
    }
  return 0;
}

/* Finishes the blob: when expect is set the content must hash to it. The
 * blob's digest goes to out. The writer is released either way. */
static int
image__blobw_commit (image_blobw_t *w, const char *images, const char *expect,
                     char out[IMAGE_DIGEST_LEN + 1], orch_err_t *err)
{
  char got[IMAGE_DIGEST_LEN + 1];
  image__md_hex (w->md, got);
  if (expect != NULL && strcmp (got, expect) != 0)
    {
      image__blobw_abort (w);
      return orch_err_set (err, EBADMSG, "blob %s: digest mismatch (content hashes to %s)", expect,
                           got);
    }
  /* Blobs are immutable once named: make them durable before naming them. */
  if (fdatasync (w->fd) < 0)
    {
      int ret = orch_err_sys (err, "fdatasync %s", w->tmp);
      image__blobw_abort (w);
      return ret;
    }
  cleanup_free char *final = image__blob_path (images, got);
  if (rename (w->tmp, final) < 0)
    {
      int ret = orch_err_sys (err, "rename %s to %s", w->tmp, final);
      image__blobw_abort (w);
      return ret;
    }
  free (w->tmp);
  w->tmp = NULL;
  image__blobw_abort (w);
  if (out != NULL)
    memcpy (out, got, sizeof (got));
  return 0;
}

/* Copies a file into the blob store (checked against expect when set). */
static int
image__blob_ingest_file (const char *images, const char *path, const char *expect, uint64_t max,
                         char out[IMAGE_DIGEST_LEN + 1], uint64_t *size, orch_err_t *err)
{
  if (expect != NULL && image__blob_exists (images, expect))
    {
      /* Already held (and verified when it came in); still check the
       * source is what it claims to be, cheaply by size. */
      struct stat a, b;
      cleanup_free char *held = image__blob_path (images, expect);
      if (stat (path, &a) == 0 && stat (held, &b) == 0 && a.st_size == b.st_size)
        {
          memcpy (out, expect, IMAGE_DIGEST_LEN + 1);
          if (size != NULL)
            *size = (uint64_t) b.st_size;
          return 0;
        }
    }
  cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return orch_err_sys (err, "open %s", path);
  image_blobw_t w;
  if (image__blobw_open (images, max, &w, err) < 0)
    return -1;
  char buf[64 * 1024];
  for (;;)
    {
      ssize_t n = read (fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          int ret = orch_err_sys (err, "read %s", path);
          image__blobw_abort (&w);
          return ret;
        }
      if (n == 0)
        break;
      if (image__blobw_write (&w, buf, (size_t) n, err) < 0)
        {
          image__blobw_abort (&w);
          return orch_err_wrap (err, "%s", path);
        }
    }
  uint64_t total = w.size;
  if (image__blobw_commit (&w, images, expect, out, err) < 0)
    return -1;
  if (size != NULL)
    *size = total;
  return 0;
}

static int
image__blob_put (const char *images, const void *data, size_t len, char out[IMAGE_DIGEST_LEN + 1],
                 orch_err_t *err)
{
  image_blobw_t w;
  if (image__blobw_open (images, UINT64_MAX, &w, err) < 0)
    return -1;
  if (image__blobw_write (&w, data, len, err) < 0)
    {
      image__blobw_abort (&w);
      return -1;
    }
  return image__blobw_commit (&w, images, NULL, out, err);
}

static int
image__blob_read (const char *images, const char *digest, size_t max, char **data, size_t *len,
                  orch_err_t *err)
{
  cleanup_free char *p = image__blob_path (images, digest);
  int r = orch_read_file (p, max, data, len);
  if (r < 0)
    return orch_err_set (err, -r, "blob %s: %s", digest,
                         r == -EFBIG ? "larger than the limit" : strerror (-r));
  return 0;
}

/* ======================================================================
 * Ref files
 * ====================================================================== */

/* Publishes a ref atomically (a temp name unique to this writer, then rename). */
static int
image__refrec_write (const char *path, const image_refrec_t *rec, orch_err_t *err)
{
  cleanup_free char *tmp = xasprintf ("%s.tmp-%d-%u", path, (int) getpid (), image__next_seq ());
  cleanup_free char *body = xasprintf ("manifest %s\nid %s\n", rec->manifest, rec->id);
  cleanup_close int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return orch_err_sys (err, "create %s", tmp);
  size_t len = strlen (body);
  if (write (fd, body, len) != (ssize_t) len || fdatasync (fd) < 0)
    {
      int ret = orch_err_sys (err, "write %s", tmp);
      unlink (tmp);
      return ret;
    }
  if (rename (tmp, path) < 0)
    {
      int ret = orch_err_sys (err, "rename %s", tmp);
      unlink (tmp);
      return ret;
    }
  return 0;
}

/* ======================================================================
 * The store's directories and lock
 * ====================================================================== */

static int
image__store_init (const char *state_dir, char **images_out, orch_err_t *err)
{
  if (state_dir == NULL || *state_dir == '\0')
    return orch_err_set (err, EINVAL, "missing state dir");
  cleanup_free char *images = xasprintf ("%s/images", state_dir);
  static const char *const sub[] = { "blobs/sha256", "rootfs", "refs", "tmp" };
  for (size_t i = 0; i < ORCH_ARRAY_LEN (sub); i++)
    {
      cleanup_free char *d = xasprintf ("%s/%s", images, sub[i]);
      int r = orch_mkdir_p (d, 0755);
      if (r < 0)
        return orch_err_set (err, -r, "mkdir %s: %s", d, strerror (-r));
    }
  *images_out = TAKE_PTR (images);
  return 0;
}

/* flock on images/.lock: imports and pulls hold it shared, GC exclusive, so
 * GC never removes the blobs of an image being put together. Returns the fd
 * (close to release) or -1 with err. */
static int
image__lock (const char *images, bool exclusive, orch_err_t *err)
{
  cleanup_free char *p = xasprintf ("%s/.lock", images);
  int fd = open (p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    return orch_err_sys (err, "open %s", p);
  /* GC does not wait behind a pull that may take minutes: it tries again
   * at its next round. */
  while (flock (fd, exclusive ? LOCK_EX | LOCK_NB : LOCK_SH) < 0)
    if (errno != EINTR)
      {
        int ret = errno == EWOULDBLOCK
                      ? orch_err_set (err, EAGAIN, "a pull or import is in progress; try later")
                      : orch_err_sys (err, "flock %s", p);
        close (fd);
        return ret;
      }
  return fd;
}

static char *
image__workdir (const char *images, const char *what, orch_err_t *err)
{
  char *d = xasprintf ("%s/tmp/%s-%d-%u", images, what, (int) getpid (), image__next_seq ());
  orch_rm_rf (d);
  if (mkdir (d, 0755) < 0)
    {
      orch_err_sys (err, "mkdir %s", d);
      free (d);
      return NULL;
    }
  return d;
}

/* ======================================================================
 * Unpacking (on a thread of its own; see the top of the file)
 * ====================================================================== */

static const int image_extract_flags
    = ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS
      | ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_OWNER
      | ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_XATTR;

/* For archives holding an image (docker-archive, OCI layout) rather than a
 * root filesystem: only the names and contents matter. */
static const int image_extract_flags_plain = ARCHIVE_EXTRACT_SECURE_NODOTDOT
                                             | ARCHIVE_EXTRACT_SECURE_SYMLINKS
                                             | ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS;

static int
image__arch_err (struct archive *a, orch_err_t *err, const char *what)
{
  return orch_err_set (err, archive_errno (a) > 0 ? archive_errno (a) : EIO, "%s%s%s", what,
                       *what ? ": " : "",
                       archive_error_string (a) ? archive_error_string (a) : "unknown error");
}

static int
image__copy_data (struct archive *in, struct archive *out, const char *path, orch_err_t *err)
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

/* Normalizes an entry name in place: drops leading "/" and "./" and
 * trailing "/"; refuses ".." components. "" is the root. */
static int
image__norm_path (char *p, orch_err_t *err)
{
  char *s = p;
  for (;;)
    {
      if (*s == '/')
        s++;
      else if (s[0] == '.' && (s[1] == '/' || s[1] == '\0'))
        s += 1;
      else
        break;
    }
  memmove (p, s, strlen (s) + 1);
  size_t len = strlen (p);
  while (len > 0 && p[len - 1] == '/')
    p[--len] = '\0';
  for (char *c = p; *c;)
    {
      char *end = strchrnul (c, '/');
      if (end - c == 2 && c[0] == '.' && c[1] == '.')
        return orch_err_set (err, EPERM, "%s: path contains '..'", p);
      c = *end ? end + 1 : end;
    }
  return 0;
}

/* Removes name under the directory dfd, recursively, never following a
 * symlink. */
static int
image__rm_at (int dfd, const char *name, int depth)
{
  struct stat st;
  if (fstatat (dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return errno == ENOENT ? 0 : -errno;
  if (!S_ISDIR (st.st_mode))
    return unlinkat (dfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
  if (depth > 512)
    return -ELOOP;
  int fd = openat (dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  DIR *d = fdopendir (fd);
  if (d == NULL)
    {
      close (fd);
      return -errno;
    }
  int ret = 0;
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      int r = image__rm_at (fd, de->d_name, depth + 1);
      if (r < 0 && ret == 0)
        ret = r;
    }
  closedir (d);
  if (ret == 0 && unlinkat (dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
    ret = -errno;
  return ret;
}

/* Opens directory path (relative to the current directory, the rootfs being
 * built) without following any symlink on the way: a whiteout must never
 * reach outside the image through a link a lower layer planted. Returns the
 * fd, or -1 when there is no such real directory. */
static int
image__open_beneath (const char *path)
{
  int fd = open (".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  cleanup_free char *copy = xstrdup (path);
  char *save = NULL;
  for (char *c = strtok_r (copy, "/", &save); c; c = strtok_r (NULL, "/", &save))
    {
      if (strcmp (c, ".") == 0)
        continue;
      int next = openat (fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      close (fd);
      if (next < 0)
        return -1;
      fd = next;
    }
  return fd;
}

/* Whiteouts are applied while the layer streams, in one pass. Per the OCI
 * image spec they hide only what lower layers left, never what their own
 * layer adds, whatever the order of the entries in the tar: so each layer
 * keeps the set of paths it has written (and their parent directories),
 * and a whiteout or an opaque marker spares those. */
typedef struct image_layer_s
{
  orch_map_t written; /* normalized paths this layer wrote, and their parents */
  bool track;         /* not for the first layer: nothing lies below it */
} image_layer_t;

static void
image__mark_written (image_layer_t *l, const char *norm)
{
  if (!l->track || *norm == '\0')
    return;
  cleanup_free char *p = xstrdup (norm);
  for (char *c = p;; c++)
    if (*c == '/' || *c == '\0')
      {
        char save = *c;
        *c = '\0';
        if (orch_map_get (&l->written, p) == NULL)
          orch_map_put (&l->written, p, (void *) 1);
        *c = save;
        if (save == '\0')
          break;
      }
}

/* Opaque directory dir (normalized, "" for the root, dfd open on it):
 * removes what lower layers put there, recursing into the directories this
 * layer wrote to. */
static int
image__clear_lower (image_layer_t *l, int dfd, const char *dir, int depth)
{
  if (depth > 512)
    return -ELOOP;
  DIR *d = fdopendir (dup (dfd));
  if (d == NULL)
    return -errno;
  int ret = 0;
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      cleanup_free char *p = xasprintf ("%s%s%s", dir, *dir ? "/" : "", de->d_name);
      int r = 0;
      if (orch_map_get (&l->written, p) == NULL)
        r = image__rm_at (dfd, de->d_name, 0);
      else
        {
          int cfd = openat (dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
          if (cfd >= 0)
            {
              r = image__clear_lower (l, cfd, p, depth + 1);
              close (cfd);
            }
        }
      if (r < 0 && ret == 0)
        ret = r;
    }
  closedir (d);
  return ret;
}

/* Applies the whiteout entry norm (".../.wh.NAME" or ".../.wh..wh..opq"). */
static int
image__whiteout (image_layer_t *l, const char *layer, const char *norm, orch_err_t *err)
{
  cleanup_free char *dir = xstrdup (norm);
  char *slash = strrchr (dir, '/');
  const char *file = norm;
  if (slash != NULL)
    {
      *slash = '\0';
      file = slash + 1;
    }
  else
    dir[0] = '\0';
  const char *name = file + 4;
  bool opaque = strcmp (file, ".wh..wh..opq") == 0;
  /* Other ".wh..wh." names are aufs bookkeeping, not whiteouts. */
  if (!opaque
      && (strncmp (file, ".wh..wh.", 8) == 0 || *name == '\0' || strcmp (name, ".") == 0
          || strcmp (name, "..") == 0))
    return 0;
  int dfd = image__open_beneath (*dir ? dir : ".");
  if (dfd < 0)
    return 0; /* no real directory below: nothing to hide */
  int ret = 0;
  if (opaque)
    ret = image__clear_lower (l, dfd, dir, 0);
  else
    {
      cleanup_free char *target = xasprintf ("%s%s%s", dir, *dir ? "/" : "", name);
      if (orch_map_get (&l->written, target) == NULL)
        ret = image__rm_at (dfd, name, 0);
    }
  close (dfd);
  if (ret < 0)
    return orch_err_set (err, -ret, "%s: whiteout %s: %s", layer, norm, strerror (-ret));
  return 0;
}

/* Extracts every entry of in. l: for image layers (whiteouts applied, their
 * markers not extracted); NULL for the files of an image archive. */
static int
image__extract (struct archive *in, struct archive *out, image_layer_t *l, const char *layer,
                orch_err_t *err)
{
  struct archive_entry *entry;
  unsigned long n = 0;
  for (;;)
    {
      int r = archive_read_next_header (in, &entry);
      if (r == ARCHIVE_EOF)
        break;
      if (r < ARCHIVE_WARN)
        return image__arch_err (in, err, "");
      const char *path = archive_entry_pathname (entry);
      if (path == NULL)
        continue;
      if (++n > IMAGE_MAX_ARCHIVE_ENTRIES * 10UL)
        return orch_err_set (err, EFBIG, "more than %lu entries",
                             (unsigned long) IMAGE_MAX_ARCHIVE_ENTRIES * 10UL);
      if (l != NULL)
        {
          const char *base = strrchr (path, '/');
          base = base && base[1] ? base + 1 : path;
          if (strncmp (base, ".wh.", 4) == 0)
            {
              cleanup_free char *norm = xstrdup (path);
              if (image__norm_path (norm, err) < 0)
                return -1;
              if (l->track && image__whiteout (l, layer, norm, err) < 0)
                return -1;
              continue;
            }
          if (l->track)
            {
              cleanup_free char *norm = xstrdup (path);
              /* A bad name is refused by the writer below, with its message. */
              orch_err_t ignored = { 0 };
              if (image__norm_path (norm, &ignored) == 0)
                image__mark_written (l, norm);
            }
        }
      r = archive_write_header (out, entry);
      if (r < ARCHIVE_WARN)
        return orch_err_set (err, archive_errno (out) > 0 ? archive_errno (out) : EIO, "%s: %s",
                             path, archive_error_string (out));
      if (archive_entry_size (entry) > 0 && image__copy_data (in, out, path, err) < 0)
        return -1;
      r = archive_write_finish_entry (out);
      if (r < ARCHIVE_WARN)
        return orch_err_set (err, archive_errno (out) > 0 ? archive_errno (out) : EIO, "%s: %s",
                             path, archive_error_string (out));
    }
  /* Directory permissions and times are applied at close. */
  if (archive_write_close (out) < ARCHIVE_WARN)
    return image__arch_err (out, err, "");
  return 0;
}

typedef struct image_job_s
{
  const char *dest;          /* existing directory to unpack into */
  const char *const *layers; /* archive files, applied in order */
  size_t n_layers;
  /* Image layers (true: whiteouts, owners, modes) or the files of an image
   * archive (false: names and contents only). */
  bool whiteouts;
  orch_err_t err;
  int ret;
} image_job_t;

static struct archive *
image__open_archive (const char *path, orch_err_t *err)
{
  struct archive *in = archive_read_new ();
  if (in == NULL)
    abort ();
  archive_read_support_filter_all (in);
  archive_read_support_format_all (in);
  if (archive_read_open_filename (in, path, 128 * 1024) != ARCHIVE_OK)
    {
      image__arch_err (in, err, "open");
      archive_read_free (in);
      return NULL;
    }
  return in;
}

static void *
image__job_run (void *arg)
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
  for (size_t i = 0; i < job->n_layers; i++)
    {
      const char *layer = job->layers[i];
      image_layer_t l = { .written = ORCH_MAP_INIT, .track = i > 0 };
      struct archive *in = image__open_archive (layer, &job->err);
      if (in == NULL)
        return NULL;
      struct archive *out = archive_write_disk_new ();
      if (out == NULL)
        abort ();
      archive_write_disk_set_options (out, job->whiteouts ? image_extract_flags
                                                          : image_extract_flags_plain);
      int r = image__extract (in, out, job->whiteouts ? &l : NULL, layer, &job->err);
      archive_read_free (in);
      archive_write_free (out);
      orch_map_free (&l.written);
      if (r < 0)
        return NULL;
    }
  job->ret = 0;
  return NULL;
}

static int
image__run_job (image_job_t *job, orch_err_t *err)
{
  pthread_t th;
  int ret = pthread_create (&th, NULL, image__job_run, job);
  if (ret != 0)
    return orch_err_set (err, ret, "pthread_create: %s", strerror (ret));
  pthread_join (th, NULL);
  if (job->ret < 0)
    {
      *err = job->err;
      return -1;
    }
  return 0;
}

/* ======================================================================
 * Installing an image: manifest -> unpacked rootfs + ref
 * ====================================================================== */

typedef struct image_desc_s
{
  char digest[IMAGE_DIGEST_LEN + 1];
  uint64_t size;
  char *media_type;
} image_desc_t;

typedef struct image_manifest_s
{
  bool is_index;
  image_desc_t config;
  image_desc_t *items; /* layers, or an index's manifests */
  size_t n_items;
  char **platforms; /* index only: "os/arch" per item */
} image_manifest_t;

static void
image__manifest_free (image_manifest_t *m)
{
  free (m->config.media_type);
  for (size_t i = 0; i < m->n_items; i++)
    {
      free (m->items[i].media_type);
      if (m->platforms)
        free (m->platforms[i]);
    }
  free (m->items);
  free (m->platforms);
  memset (m, 0, sizeof (*m));
}

static int
image__desc_parse (json_t *j, image_desc_t *d, const char *what, orch_err_t *err)
{
  json_t *dg = json_object_get (j, "digest");
  json_t *sz = json_object_get (j, "size");
  json_t *mt = json_object_get (j, "mediaType");
  if (!json_is_string (dg) || !image__digest_valid (json_string_value (dg)))
    return orch_err_set (err, EBADMSG, "%s: missing or unsupported digest (only sha256)", what);
  if (!json_is_integer (sz) || json_integer_value (sz) < 0)
    return orch_err_set (err, EBADMSG, "%s: missing or negative size", what);
  memcpy (d->digest, json_string_value (dg), IMAGE_DIGEST_LEN + 1);
  d->size = (uint64_t) json_integer_value (sz);
  d->media_type = xstrdup (json_is_string (mt) ? json_string_value (mt) : "");
  return 0;
}

/* Parses an OCI/Docker v2 manifest or index (media_type from the transport,
 * may be NULL: then the document's own mediaType field decides). */
static int
image__manifest_parse (const char *data, size_t len, const char *media_type, image_manifest_t *m,
                       orch_err_t *err)
{
  memset (m, 0, sizeof (*m));
  json_error_t jerr;
  json_t *root = json_loadb (data, len, 0, &jerr);
  if (root == NULL || !json_is_object (root))
    {
      json_decref (root);
      return orch_err_set (err, EBADMSG, "manifest is not a JSON object: %s", jerr.text);
    }
  int ret = -1;
  json_t *sv = json_object_get (root, "schemaVersion");
  json_t *mt = json_object_get (root, "mediaType");
  const char *type = json_is_string (mt) ? json_string_value (mt) : media_type;
  json_t *manifests = json_object_get (root, "manifests");
  json_t *layers = json_object_get (root, "layers");
  if (!json_is_integer (sv) || json_integer_value (sv) != 2)
    {
      orch_err_set (err, ENOTSUP,
                    "manifest schemaVersion is not 2 (Docker schema 1 is not "
                    "supported)");
      goto out;
    }
  if (json_is_array (manifests)
      || (type && (strcmp (type, image_oci_index) == 0 || strcmp (type, image_docker_list) == 0)))
    {
      if (!json_is_array (manifests) || json_array_size (manifests) == 0
          || json_array_size (manifests) > IMAGE_MAX_LAYERS)
        {
          orch_err_set (err, EBADMSG, "index: manifests must be a list of 1 to %d entries",
                        IMAGE_MAX_LAYERS);
          goto out;
        }
      m->is_index = true;
      m->n_items = json_array_size (manifests);
      m->items = xcalloc (m->n_items, sizeof (*m->items));
      m->platforms = xcalloc (m->n_items, sizeof (char *));
      for (size_t i = 0; i < m->n_items; i++)
        {
          json_t *e = json_array_get (manifests, i);
          cleanup_free char *what = xasprintf ("index: manifests[%zu]", i);
          if (image__desc_parse (e, &m->items[i], what, err) < 0)
            goto out;
          json_t *pl = json_object_get (e, "platform");
          json_t *os = json_object_get (pl, "os");
          json_t *arch = json_object_get (pl, "architecture");
          m->platforms[i] = xasprintf ("%s/%s", json_is_string (os) ? json_string_value (os) : "",
                                       json_is_string (arch) ? json_string_value (arch) : "");
        }
      ret = 0;
      goto out;
    }
  if (!json_is_object (json_object_get (root, "config")) || !json_is_array (layers))
    {
      orch_err_set (err, EBADMSG, "manifest has no config or no layers");
      goto out;
    }
  if (json_array_size (layers) > IMAGE_MAX_LAYERS)
    {
      orch_err_set (err, EFBIG, "manifest has %zu layers, more than %d", json_array_size (layers),
                    IMAGE_MAX_LAYERS);
      goto out;
    }
  if (image__desc_parse (json_object_get (root, "config"), &m->config, "manifest: config", err) < 0)
    goto out;
  m->n_items = json_array_size (layers);
  m->items = xcalloc (m->n_items ? m->n_items : 1, sizeof (*m->items));
  for (size_t i = 0; i < m->n_items; i++)
    {
      cleanup_free char *what = xasprintf ("manifest: layers[%zu]", i);
      if (image__desc_parse (json_array_get (layers, i), &m->items[i], what, err) < 0)
        goto out;
      const char *lt = m->items[i].media_type;
      if (strstr (lt, "nondistributable") != NULL || strstr (lt, "foreign") != NULL)
        {
          orch_err_set (err, ENOTSUP, "%s: foreign/non-distributable layers are not supported",
                        what);
          goto out;
        }
    }
  ret = 0;
out:
  json_decref (root);
  if (ret < 0)
    image__manifest_free (m);
  return ret;
}

/* Index entry for linux/amd64, or -1. */
static int
image__index_pick (const image_manifest_t *idx)
{
  for (size_t i = 0; i < idx->n_items; i++)
    if (strcmp (idx->platforms[i], "linux/amd64") == 0)
      return (int) i;
  return -1;
}


/* Unpacks the image whose manifest blob is manifest_digest (config and
 * layers already in blobs/) unless already unpacked, then points canon at
 * it. *rootfs_out: newly allocated path. */
static int
image__install (const char *images, const char *canon, const char *manifest_digest,
                char **rootfs_out, orch_err_t *err)
{
  cleanup_free char *data = NULL;
  size_t len;
  if (image__blob_read (images, manifest_digest, IMAGE_MAX_MANIFEST, &data, &len, err) < 0)
    return -1;
  image_manifest_t m;
  if (image__manifest_parse (data, len, NULL, &m, err) < 0)
    return orch_err_wrap (err, "manifest %s", manifest_digest);
  if (m.is_index)
    {
      image__manifest_free (&m);
      return orch_err_set (err, EINVAL, "manifest %s is an index", manifest_digest);
    }
  int ret = -1;
  cleanup_free char *dir = image__rootfs_dir (images, m.config.digest);
  cleanup_free char *rootfs = xasprintf ("%s/rootfs", dir);
  cleanup_free char *work = NULL;
  char **paths = NULL;
  struct stat st;
  if (stat (rootfs, &st) != 0 || !S_ISDIR (st.st_mode))
    {
      paths = xcalloc (m.n_items + 1, sizeof (char *));
      for (size_t i = 0; i < m.n_items; i++)
        {
          /* Absolute: the unpacking thread changes its directory. */
          cleanup_free char *bp = image__blob_path (images, m.items[i].digest);
          paths[i] = realpath (bp, NULL);
          if (paths[i] == NULL)
            {
              orch_err_set (err, ENOENT, "layer %s is missing from the store", m.items[i].digest);
              goto out;
            }
        }
      work = image__workdir (images, "unpack", err);
      if (work == NULL)
        goto out;
      cleanup_free char *work_rootfs = xasprintf ("%s/rootfs", work);
      if (mkdir (work_rootfs, 0755) < 0)
        {
          orch_err_sys (err, "mkdir %s", work_rootfs);
          goto out;
        }
      image_job_t job = {
        .dest = work_rootfs,
        .layers = (const char *const *) paths,
        .n_layers = m.n_items,
        .whiteouts = true,
      };
      if (image__run_job (&job, err) < 0)
        {
          if (m.n_items > 0)
            orch_err_wrap (err, "unpack layers");
          goto out;
        }
      image__touch_used (work);
      if (rename (work, dir) < 0)
        {
          /* Another pull or import of the same image won the race: fine. */
          if (errno != EEXIST && errno != ENOTEMPTY)
            {
              orch_err_sys (err, "rename %s to %s", work, dir);
              goto out;
            }
        }
      else
        {
          free (work);
          work = NULL;
        }
    }
  image__touch_used (dir);
  if (canon != NULL)
    {
      image_refrec_t rec = { 0 };
      memcpy (rec.manifest, manifest_digest, IMAGE_DIGEST_LEN + 1);
      memcpy (rec.id, m.config.digest, IMAGE_DIGEST_LEN + 1);
      cleanup_free char *rf = image__ref_file (images, canon);
      if (image__refrec_write (rf, &rec, err) < 0)
        goto out;
    }
  if (rootfs_out != NULL)
    *rootfs_out = TAKE_PTR (rootfs);
  ret = 0;
out:
  if (work != NULL)
    orch_rm_rf (work);
  if (paths != NULL)
    for (size_t i = 0; i < m.n_items; i++)
      free (paths[i]);
  free (paths);
  image__manifest_free (&m);
  return ret;
}

/* Writes config + manifest blobs for an image made of the given layers
 * (already in the store); the manifest digest goes to out. */
static int
image__synth_manifest (const char *images, const char *config_digest, uint64_t config_size,
                       const image_desc_t *layers, size_t n, char out[IMAGE_DIGEST_LEN + 1],
                       orch_err_t *err)
{
  json_t *root = json_object ();
  json_t *arr = json_array ();
  json_object_set_new (root, "schemaVersion", json_integer (2));
  json_object_set_new (root, "mediaType", json_string (image_oci_manifest));
  json_object_set_new (root, "config",
                       json_pack ("{s:s, s:s, s:I}", "mediaType",
                                  "application/vnd.oci.image.config.v1+json", "digest",
                                  config_digest, "size", (json_int_t) config_size));
  for (size_t i = 0; i < n; i++)
    json_array_append_new (arr, json_pack ("{s:s, s:s, s:I}", "mediaType",
                                           "application/vnd.oci.image.layer.v1.tar", "digest",
                                           layers[i].digest, "size", (json_int_t) layers[i].size));
  json_object_set_new (root, "layers", arr);
  char *s = json_dumps (root, JSON_COMPACT);
  json_decref (root);
  if (s == NULL)
    abort ();
  int r = image__blob_put (images, s, strlen (s), out, err);
  free (s);
  return r;
}

/* ======================================================================
 * Import
 * ====================================================================== */

/* Reads a JSON file of the unpacked image archive at dir/rel, refusing to
 * leave dir through a symlink. */
static json_t *
image__load_json_in (const char *dir, const char *rel, orch_err_t *err)
{
  cleanup_free char *p = xasprintf ("%s/%s", dir, rel);
  cleanup_free char *real = realpath (p, NULL);
  size_t dl = strlen (dir);
  if (real == NULL)
    {
      orch_err_sys (err, "%s", rel);
      return NULL;
    }
  if (strncmp (real, dir, dl) != 0 || real[dl] != '/')
    {
      orch_err_set (err, EPERM, "%s points outside the image archive", rel);
      return NULL;
    }
  cleanup_free char *data = NULL;
  size_t len;
  int r = orch_read_file (real, IMAGE_MAX_JSON, &data, &len);
  if (r < 0)
    {
      orch_err_set (err, -r, "%s: %s", rel, strerror (-r));
      return NULL;
    }
  json_error_t jerr;
  json_t *j = json_loadb (data, len, 0, &jerr);
  if (j == NULL)
    orch_err_set (err, EBADMSG, "%s: %s (line %d)", rel, jerr.text, jerr.line);
  return j;
}

/* A path inside the unpacked archive dir (realpath, checked to stay in),
 * newly allocated, or NULL with err. */
static char *
image__path_in (const char *dir, const char *rel, orch_err_t *err)
{
  cleanup_free char *p = xasprintf ("%s/%s", dir, rel);
  char *real = realpath (p, NULL);
  size_t dl = strlen (dir);
  if (real == NULL)
    {
      orch_err_sys (err, "%s", rel);
      return NULL;
    }
  if (strncmp (real, dir, dl) != 0 || real[dl] != '/')
    {
      free (real);
      orch_err_set (err, EPERM, "%s points outside the image archive", rel);
      return NULL;
    }
  return real;
}

static bool
image__tag_matches (const char *repo_tag, const image_ref_t *want)
{
  cleanup_free char *canon = image_ref_format (want);
  if (strcmp (repo_tag, canon) == 0)
    return true;
  image_ref_t r;
  orch_err_t e = { 0 };
  if (image_ref_parse (repo_tag, &r, &e) < 0)
    return false;
  /* "docker.io/library/busybox:1" matches a local "busybox:1". */
  const char *repo = r.repo;
  if (strncmp (repo, "library/", 8) == 0 && strchr (want->repo, '/') == NULL)
    repo += 8;
  bool ok = strcmp (repo, want->repo) == 0 && r.tag && want->tag && strcmp (r.tag, want->tag) == 0;
  image_ref_free (&r);
  return ok;
}

/* docker save writes layers uncompressed, so each layer's digest must be
 * the diff_id its config lists: a layer file that was swapped or damaged in
 * the archive is caught here. Compressed layers (which some tools write)
 * cannot be checked without unpacking them twice and are let through. */
static int
image__check_diff_ids (const char *images, const char *cfg_digest, const image_desc_t *layers,
                       size_t n, orch_err_t *err)
{
  cleanup_free char *data = NULL;
  size_t len;
  if (image__blob_read (images, cfg_digest, IMAGE_MAX_JSON, &data, &len, err) < 0)
    return -1;
  json_t *cfg = json_loadb (data, len, 0, NULL);
  json_t *ids = json_object_get (json_object_get (cfg, "rootfs"), "diff_ids");
  int ret = 0;
  if (json_is_array (ids) && json_array_size (ids) != n)
    ret = orch_err_set (err, EBADMSG, "config lists %zu layers, manifest.json %zu",
                        json_array_size (ids), n);
  for (size_t i = 0; ret == 0 && json_is_array (ids) && i < n; i++)
    {
      json_t *id = json_array_get (ids, i);
      if (!json_is_string (id) || strcmp (json_string_value (id), layers[i].digest) == 0)
        continue;
      cleanup_free char *p = image__blob_path (images, layers[i].digest);
      unsigned char magic[6] = { 0 };
      int fd = open (p, O_RDONLY | O_CLOEXEC);
      ssize_t got = fd >= 0 ? read (fd, magic, sizeof magic) : -1;
      if (fd >= 0)
        close (fd);
      bool compressed = got >= 4
                        && ((magic[0] == 0x1f && magic[1] == 0x8b)                        /* gzip */
                            || (magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f) /* zstd */
                            || (magic[0] == 0xfd && magic[1] == '7' && magic[2] == 'z')   /* xz */
                            || (magic[0] == 'B' && magic[1] == 'Z' && magic[2] == 'h')); /* bzip2 */
      if (!compressed)
        ret = orch_err_set (err, EBADMSG,
                            "layer %zu: digest mismatch (content hashes to %s, the config's "
                            "diff_id is %s)",
                            i, layers[i].digest, json_string_value (id));
    }
  json_decref (cfg);
  return ret;
}

/* dir: a docker-archive unpacked (manifest.json). */
static int
image__import_docker (const char *images, const char *dir, const image_ref_t *ref,
                      char out[IMAGE_DIGEST_LEN + 1], orch_err_t *err)
{
  json_t *root = image__load_json_in (dir, "manifest.json", err);
  if (root == NULL)
    return -1;
  int ret = -1;
  image_desc_t *layers = NULL;
  size_t n = 0;
  if (!json_is_array (root) || json_array_size (root) == 0)
    {
      orch_err_set (err, EBADMSG, "manifest.json: not a list of images");
      goto out;
    }
  json_t *pick = json_array_get (root, 0);
  if (json_array_size (root) > 1)
    {
      pick = NULL;
      for (size_t i = 0; i < json_array_size (root) && pick == NULL; i++)
        {
          json_t *tags = json_object_get (json_array_get (root, i), "RepoTags");
          for (size_t k = 0; k < json_array_size (tags); k++)
            if (json_is_string (json_array_get (tags, k))
                && image__tag_matches (json_string_value (json_array_get (tags, k)), ref))
              {
                pick = json_array_get (root, i);
                break;
              }
        }
      if (pick == NULL)
        {
          orch_err_set (err, ENOENT, "manifest.json holds %zu images and none is tagged %s:%s",
                        json_array_size (root), ref->repo, ref->tag ? ref->tag : "latest");
          goto out;
        }
    }
  json_t *cfg = json_object_get (pick, "Config");
  json_t *jl = json_object_get (pick, "Layers");
  if (!json_is_string (cfg) || !json_is_array (jl))
    {
      orch_err_set (err, EBADMSG, "manifest.json: an image needs Config and Layers");
      goto out;
    }
  if (json_array_size (jl) > IMAGE_MAX_LAYERS)
    {
      orch_err_set (err, EFBIG, "manifest.json: more than %d layers", IMAGE_MAX_LAYERS);
      goto out;
    }
  char cfg_digest[IMAGE_DIGEST_LEN + 1];
  uint64_t cfg_size;
  {
    cleanup_free char *p = image__path_in (dir, json_string_value (cfg), err);
    if (p == NULL)
      goto out;
    if (image__blob_ingest_file (images, p, NULL, IMAGE_MAX_JSON, cfg_digest, &cfg_size, err) < 0)
      {
        orch_err_wrap (err, "config %s", json_string_value (cfg));
        goto out;
      }
  }
  n = json_array_size (jl);
  layers = xcalloc (n + 1, sizeof (*layers));
  for (size_t i = 0; i < n; i++)
    {
      json_t *l = json_array_get (jl, i);
      if (!json_is_string (l))
        {
          orch_err_set (err, EBADMSG, "manifest.json: Layers[%zu] is not a path", i);
          goto out;
        }
      cleanup_free char *p = image__path_in (dir, json_string_value (l), err);
      if (p == NULL)
        goto out;
      if (image__blob_ingest_file (images, p, NULL, IMAGE_DEFAULT_MAX_BLOB, layers[i].digest,
                                   &layers[i].size, err)
          < 0)
        goto out;
    }
  if (image__check_diff_ids (images, cfg_digest, layers, n, err) < 0)
    goto out;
  ret = image__synth_manifest (images, cfg_digest, cfg_size, layers, n, out, err);
out:
  free (layers);
  json_decref (root);
  return ret;
}

/* Resolves an OCI layout's index (or nested index) to one image manifest,
 * copying the blobs it needs into the store. */
static int
image__import_oci (const char *images, const char *dir, const image_ref_t *ref,
                   char out[IMAGE_DIGEST_LEN + 1], orch_err_t *err)
{
  json_t *idx = image__load_json_in (dir, "index.json", err);
  if (idx == NULL)
    return -1;
  json_t *ms = json_object_get (idx, "manifests");
  if (!json_is_array (ms) || json_array_size (ms) == 0)
    {
      json_decref (idx);
      return orch_err_set (err, EBADMSG, "index.json: no manifests");
    }
  /* Several images: the one whose ref.name annotation is the tag we
   * import under, else the first. */
  json_t *pick = json_array_get (ms, 0);
  if (json_array_size (ms) > 1 && ref->tag != NULL)
    for (size_t i = 0; i < json_array_size (ms); i++)
      {
        json_t *an = json_object_get (json_object_get (json_array_get (ms, i), "annotations"),
                                      "org.opencontainers.image.ref.name");
        if (json_is_string (an)
            && (strcmp (json_string_value (an), ref->tag) == 0
                || image__tag_matches (json_string_value (an), ref)))
          {
            pick = json_array_get (ms, i);
            break;
          }
      }
  image_desc_t d = { 0 };
  int ret = image__desc_parse (pick, &d, "index.json", err);
  json_decref (idx);
  if (ret < 0)
    return -1;
  free (d.media_type);
  char digest[IMAGE_DIGEST_LEN + 1];
  memcpy (digest, d.digest, sizeof digest);
  for (int depth = 0; depth < 4; depth++)
    {
      cleanup_free char *rel = xasprintf ("blobs/sha256/%s", digest + 7);
      cleanup_free char *p = image__path_in (dir, rel, err);
      if (p == NULL)
        return -1;
      char got[IMAGE_DIGEST_LEN + 1];
      if (image__blob_ingest_file (images, p, digest, IMAGE_MAX_MANIFEST, got, NULL, err) < 0)
        return -1;
      cleanup_free char *data = NULL;
      size_t len;
      if (image__blob_read (images, digest, IMAGE_MAX_MANIFEST, &data, &len, err) < 0)
        return -1;
      image_manifest_t m;
      if (image__manifest_parse (data, len, NULL, &m, err) < 0)
        return orch_err_wrap (err, "manifest %s", digest);
      if (m.is_index)
        {
          int k = image__index_pick (&m);
          if (k < 0)
            {
              image__manifest_free (&m);
              return orch_err_set (err, ENOENT, "index %s has no linux/amd64 image", digest);
            }
          memcpy (digest, m.items[k].digest, sizeof digest);
          image__manifest_free (&m);
          continue;
        }
      ret = 0;
      for (size_t i = 0; i <= m.n_items && ret == 0; i++)
        {
          const image_desc_t *b = i < m.n_items ? &m.items[i] : &m.config;
          cleanup_free char *brel = xasprintf ("blobs/sha256/%s", b->digest + 7);
          cleanup_free char *bp = image__path_in (dir, brel, err);
          if (bp == NULL)
            ret = -1;
          else if (image__blob_ingest_file (images, bp, b->digest, IMAGE_DEFAULT_MAX_BLOB, got,
                                            NULL, err)
                   < 0)
            ret = -1;
        }
      image__manifest_free (&m);
      if (ret == 0)
        memcpy (out, digest, IMAGE_DIGEST_LEN + 1);
      return ret;
    }
  return orch_err_set (err, ELOOP, "index.json: indexes nested too deep");
}

/* Packs a root filesystem directory into a tar blob. */
typedef struct image_tarw_s
{
  image_blobw_t *w;
  orch_err_t *err;
  bool failed;
} image_tarw_t;

static la_ssize_t
image__tar_write_cb (struct archive *a, void *ud, const void *buf, size_t n)
{
  image_tarw_t *t = ud;
  if (image__blobw_write (t->w, buf, n, t->err) < 0)
    {
      t->failed = true;
      archive_set_error (a, EIO, "%s", t->err->msg);
      return -1;
    }
  return (la_ssize_t) n;
}

static int
image__pack_dir (const char *images, const char *src, image_desc_t *out, orch_err_t *err)
{
  image_blobw_t w;
  if (image__blobw_open (images, IMAGE_DEFAULT_MAX_BLOB, &w, err) < 0)
    return -1;
  image_tarw_t t = { &w, err, false };
  struct archive *in = archive_read_disk_new ();
  struct archive *tar = archive_write_new ();
  struct archive_entry *entry = archive_entry_new ();
  int ret = -1;
  if (in == NULL || tar == NULL || entry == NULL)
    abort ();
  archive_write_set_format_pax_restricted (tar);
  archive_write_set_bytes_in_last_block (tar, 1);
  archive_read_disk_set_symlink_physical (in);
  archive_read_disk_set_behavior (in, ARCHIVE_READDISK_NO_TRAVERSE_MOUNTS | ARCHIVE_READDISK_NO_ACL
                                          | ARCHIVE_READDISK_NO_FFLAGS);
  if (archive_write_open2 (tar, &t, NULL, image__tar_write_cb, NULL, NULL) != ARCHIVE_OK)
    {
      image__arch_err (tar, err, "tar");
      goto out;
    }
  if (archive_read_disk_open (in, src) != ARCHIVE_OK)
    {
      image__arch_err (in, err, src);
      goto out;
    }
  size_t strip = strlen (src);
  for (;;)
    {
      int r = archive_read_next_header2 (in, entry);
      if (r == ARCHIVE_EOF)
        break;
      if (r < ARCHIVE_WARN)
        {
          image__arch_err (in, err, src);
          goto out;
        }
      archive_read_disk_descend (in);
      const char *path = archive_entry_pathname (entry);
      const char *tail = strlen (path) > strip ? path + strip : "";
      cleanup_free char *rel = xasprintf ("%s%s", *tail == '/' || *tail == '\0' ? "." : "./", tail);
      archive_entry_set_pathname (entry, rel);
      if (archive_write_header (tar, entry) < ARCHIVE_WARN)
        {
          if (!t.failed)
            image__arch_err (tar, err, rel);
          goto out;
        }
      if (archive_entry_filetype (entry) == AE_IFREG && archive_entry_size (entry) > 0)
        for (;;)
          {
            const void *buf;
            size_t size;
            la_int64_t off;
            r = archive_read_data_block (in, &buf, &size, &off);
            if (r == ARCHIVE_EOF)
              break;
            if (r < ARCHIVE_WARN)
              {
                image__arch_err (in, err, rel);
                goto out;
              }
            if (archive_write_data (tar, buf, size) < 0)
              {
                if (!t.failed)
                  image__arch_err (tar, err, rel);
                goto out;
              }
          }
    }
  if (archive_write_close (tar) != ARCHIVE_OK)
    {
      if (!t.failed)
        image__arch_err (tar, err, "tar");
      goto out;
    }
  out->size = w.size;
  ret = image__blobw_commit (&w, images, NULL, out->digest, err);
out:
  if (ret < 0 && w.md != NULL)
    image__blobw_abort (&w);
  archive_entry_free (entry);
  archive_read_free (in);
  archive_write_free (tar);
  return ret;
}

/* A minimal OCI config for a root filesystem imported as is. Its digest,
 * the image's id, covers the layer's digest, so the same content imports to
 * the same id. */
static int
image__plain_image (const char *images, image_desc_t *layer, char out[IMAGE_DIGEST_LEN + 1],
                    orch_err_t *err)
{
  cleanup_free char *cfg = xasprintf ("{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{},"
                                      "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\"]}}",
                                      layer->digest);
  char cfg_digest[IMAGE_DIGEST_LEN + 1];
  if (image__blob_put (images, cfg, strlen (cfg), cfg_digest, err) < 0)
    return -1;
  return image__synth_manifest (images, cfg_digest, strlen (cfg), layer, 1, out, err);
}

typedef enum
{
  IMAGE_SRC_ROOTFS,
  IMAGE_SRC_DOCKER,
  IMAGE_SRC_OCI,
} image_src_kind_t;

static image_src_kind_t
image__dir_kind (const char *dir)
{
  cleanup_free char *oci = xasprintf ("%s/oci-layout", dir);
  cleanup_free char *idx = xasprintf ("%s/index.json", dir);
  cleanup_free char *man = xasprintf ("%s/manifest.json", dir);
  struct stat st;
  /* docker save since Docker 25 writes both; its index.json is the OCI
   * view of the same image. */
  if (stat (oci, &st) == 0 && stat (idx, &st) == 0)
    return IMAGE_SRC_OCI;
  if (stat (man, &st) == 0 && S_ISREG (st.st_mode))
    return IMAGE_SRC_DOCKER;
  return IMAGE_SRC_ROOTFS;
}

/* Scans an archive's names (no data): does it hold an image rather than a
 * root filesystem? */
static int
image__archive_kind (const char *path, image_src_kind_t *kind, orch_err_t *err)
{
  struct archive *in = image__open_archive (path, err);
  if (in == NULL)
    return -1;
  bool oci = false, idx = false, man = false;
  struct archive_entry *e;
  int ret = 0;
  for (;;)
    {
      int r = archive_read_next_header (in, &e);
      if (r == ARCHIVE_EOF)
        break;
      if (r < ARCHIVE_WARN)
        {
          ret = image__arch_err (in, err, "");
          break;
        }
      const char *n = archive_entry_pathname (e);
      if (n == NULL)
        continue;
      if (strncmp (n, "./", 2) == 0)
        n += 2;
      if (strcmp (n, "oci-layout") == 0)
        oci = true;
      else if (strcmp (n, "index.json") == 0)
        idx = true;
      else if (strcmp (n, "manifest.json") == 0)
        man = true;
    }
  archive_read_free (in);
  *kind = oci && idx ? IMAGE_SRC_OCI : man ? IMAGE_SRC_DOCKER : IMAGE_SRC_ROOTFS;
  return ret;
}

int
image_import (const char *state_dir, const char *name, const char *source, orch_err_t *err)
{
  image_ref_t ref;
  if (image_ref_parse (name, &ref, err) < 0)
    return -1;
  cleanup_free char *canon = image_ref_format (&ref);
  if (ref.digest != NULL)
    {
      image_ref_free (&ref);
      return orch_err_set (err, EINVAL, "import image %s: import under a name:tag, not a digest",
                           name);
    }
  if (state_dir == NULL || source == NULL)
    {
      image_ref_free (&ref);
      return orch_err_set (err, EINVAL, "import image %s: missing state dir or source", name);
    }
  cleanup_free char *images = NULL;
  cleanup_free char *src = NULL;
  cleanup_free char *work = NULL;
  cleanup_close int lock = -1;
  char manifest[IMAGE_DIGEST_LEN + 1];
  struct stat st;
  int ret = -1;

  src = realpath (source, NULL);
  if (src == NULL)
    {
      orch_err_sys (err, "%s", source);
      goto out;
    }
  if (stat (src, &st) < 0)
    {
      orch_err_sys (err, "%s", src);
      goto out;
    }
  if (!S_ISDIR (st.st_mode) && !S_ISREG (st.st_mode))
    {
      orch_err_set (err, EINVAL, "%s is neither a directory nor an archive file", src);
      goto out;
    }
  if (image__store_init (state_dir, &images, err) < 0)
    goto out;
  lock = image__lock (images, false, err);
  if (lock < 0)
    goto out;

  image_src_kind_t kind;
  const char *dir = src;
  if (S_ISDIR (st.st_mode))
    kind = image__dir_kind (src);
  else
    {
      if (image__archive_kind (src, &kind, err) < 0)
        goto out;
      if (kind != IMAGE_SRC_ROOTFS)
        {
          /* An image archive: unpack its files (not a rootfs: no owners,
           * no modes) to read manifest.json / index.json and the blobs. */
          work = image__workdir (images, "import", err);
          if (work == NULL)
            goto out;
          const char *one[] = { src };
          image_job_t job = { .dest = work, .layers = one, .n_layers = 1, .whiteouts = false };
          if (image__run_job (&job, err) < 0)
            goto out;
          cleanup_free char *real = realpath (work, NULL);
          free (work);
          work = TAKE_PTR (real);
          if (work == NULL)
            {
              orch_err_sys (err, "realpath");
              goto out;
            }
          dir = work;
        }
    }
  switch (kind)
    {
    case IMAGE_SRC_DOCKER:
      if (image__import_docker (images, dir, &ref, manifest, err) < 0)
        goto out;
      break;
    case IMAGE_SRC_OCI:
      if (image__import_oci (images, dir, &ref, manifest, err) < 0)
        goto out;
      break;
    case IMAGE_SRC_ROOTFS:
    default:
      {
        image_desc_t layer = { 0 };
        if (S_ISDIR (st.st_mode))
          {
            if (image__pack_dir (images, src, &layer, err) < 0)
              goto out;
          }
        else if (image__blob_ingest_file (images, src, NULL, IMAGE_DEFAULT_MAX_BLOB, layer.digest,
                                          &layer.size, err)
                 < 0)
          goto out;
        if (image__plain_image (images, &layer, manifest, err) < 0)
          goto out;
      }
      break;
    }
  if (image__install (images, canon, manifest, NULL, err) < 0)
    goto out;
  ret = 0;
out:
  if (work != NULL)
    orch_rm_rf (work);
  if (ret < 0)
    orch_err_wrap (err, "import image %s from %s", canon, src ? src : source);
  image_ref_free (&ref);
  return ret;
}

/* ======================================================================
 * Registry pull (OCI distribution API over libcurl easy; blocking)
 * ====================================================================== */

static pthread_once_t image_curl_once = PTHREAD_ONCE_INIT;

static void
image__curl_init (void)
{
  curl_global_init (CURL_GLOBAL_DEFAULT);
}

typedef struct image_resp_s
{
  long status;
  char *www_auth; /* WWW-Authenticate of the last response */
  char *content_type;
  char *docker_digest; /* Docker-Content-Digest */
  /* Body of a 2xx: into mem (bounded by mem_max) or into a blob writer. */
  char *mem;
  size_t mem_len;
  size_t mem_max;
  image_blobw_t *blob;
  orch_err_t *err;
  bool too_big;
  bool write_failed;
  char errbody[IMAGE_MAX_ERRBODY + 1];
  size_t errbody_len;
} image_resp_t;

static void
image__resp_reset (image_resp_t *r)
{
  free (r->www_auth);
  free (r->content_type);
  free (r->docker_digest);
  free (r->mem);
  r->www_auth = r->content_type = r->docker_digest = r->mem = NULL;
  r->mem_len = 0;
  r->status = 0;
  r->too_big = r->write_failed = false;
  r->errbody_len = 0;
  r->errbody[0] = '\0';
}

static char *
image__header_value (const char *line, size_t len, const char *name)
{
  size_t nl = strlen (name);
  if (len <= nl + 1 || strncasecmp (line, name, nl) != 0 || line[nl] != ':')
    return NULL;
  const char *v = line + nl + 1;
  const char *end = line + len;
  while (v < end && (*v == ' ' || *v == '\t'))
    v++;
  while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
    end--;
  return xstrndup (v, (size_t) (end - v));
}

static size_t
image__header_cb (char *buf, size_t size, size_t n, void *ud)
{
  image_resp_t *r = ud;
  size_t len = size * n;
  if (len > IMAGE_MAX_HEADER)
    return len; /* not one we keep */
  if (len > 5 && strncmp (buf, "HTTP/", 5) == 0)
    {
      /* A new response (after a redirect or a 100): forget the last one's. */
      const char *sp = memchr (buf, ' ', len);
      free (r->www_auth);
      free (r->content_type);
      free (r->docker_digest);
      r->www_auth = r->content_type = r->docker_digest = NULL;
      r->status = sp ? strtol (sp + 1, NULL, 10) : 0;
      return len;
    }
  char *v;
  if ((v = image__header_value (buf, len, "WWW-Authenticate")) != NULL)
    {
      free (r->www_auth);
      r->www_auth = v;
    }
  else if ((v = image__header_value (buf, len, "Content-Type")) != NULL)
    {
      free (r->content_type);
      char *semi = strchr (v, ';');
      if (semi)
        *semi = '\0';
      r->content_type = v;
    }
  else if ((v = image__header_value (buf, len, "Docker-Content-Digest")) != NULL)
    {
      free (r->docker_digest);
      r->docker_digest = v;
    }
  return len;
}

static size_t
image__body_cb (char *buf, size_t size, size_t n, void *ud)
{
  image_resp_t *r = ud;
  size_t len = size * n;
  if (r->status < 200 || r->status >= 300)
    {
      size_t room = IMAGE_MAX_ERRBODY - r->errbody_len;
      size_t k = len < room ? len : room;
      memcpy (r->errbody + r->errbody_len, buf, k);
      r->errbody_len += k;
      r->errbody[r->errbody_len] = '\0';
      return len;
    }
  if (r->blob != NULL)
    {
      if (image__blobw_write (r->blob, buf, len, r->err) < 0)
        {
          r->write_failed = true;
          return 0;
        }
      return len;
    }
  if (r->mem_len + len > r->mem_max)
    {
      r->too_big = true;
      return 0;
    }
  r->mem = xrealloc (r->mem, r->mem_len + len + 1);
  memcpy (r->mem + r->mem_len, buf, len);
  r->mem_len += len;
  r->mem[r->mem_len] = '\0';
  return len;
}

static int
image__progress_cb (void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
  const volatile int *cancel = ud;
  return cancel != NULL && *cancel ? 1 : 0;
}

typedef struct image_reg_s
{
  CURL *curl;
  char *base; /* "http://host:port" */
  const image_ref_t *ref;
  const image_pull_opts_t *opts;
  char *bearer;   /* token for this repository, once we have one */
  bool use_basic; /* the registry asked for Basic and we have credentials */
  char errbuf[CURL_ERROR_SIZE];
} image_reg_t;

static bool
image__is_loopback (const char *registry)
{
  cleanup_free char *host = xstrdup (registry);
  if (host[0] == '[')
    {
      char *e = strchr (host, ']');
      if (e)
        *e = '\0';
      return strcmp (host + 1, "::1") == 0;
    }
  char *colon = strchr (host, ':');
  if (colon)
    *colon = '\0';
  return strcmp (host, "localhost") == 0 || strncmp (host, "127.", 4) == 0;
}

static bool
image__insecure (const char *registry, const image_pull_opts_t *opts)
{
  if (image__is_loopback (registry))
    return true;
  for (const char *const *p = opts->insecure_registries; p && *p; p++)
    if (strcmp (*p, registry) == 0)
      return true;
  return false;
}

/* Parses `Bearer realm="..",service="..",scope=".."` (or Basic ...). The
 * scheme goes to *scheme; the parameters asked for to their outputs. */
static void
image__parse_challenge (const char *h, char **scheme, char **realm, char **service, char **scope)
{
  const char *p = h;
  while (*p == ' ')
    p++;
  const char *sp = p;
  while (*p && *p != ' ')
    p++;
  *scheme = xstrndup (sp, (size_t) (p - sp));
  while (*p)
    {
      while (*p == ' ' || *p == ',')
        p++;
      const char *k = p;
      while (*p && *p != '=' && *p != ',')
        p++;
      size_t klen = (size_t) (p - k);
      if (*p != '=')
        continue;
      p++;
      char *val = xmalloc (strlen (p) + 1);
      size_t vl = 0;
      if (*p == '"')
        {
          p++;
          while (*p && *p != '"')
            {
              if (*p == '\\' && p[1])
                p++;
              val[vl++] = *p++;
            }
          if (*p == '"')
            p++;
        }
      else
        while (*p && *p != ',')
          val[vl++] = *p++;
      val[vl] = '\0';
      char **dst = NULL;
      if (klen == 5 && strncasecmp (k, "realm", 5) == 0)
        dst = realm;
      else if (klen == 7 && strncasecmp (k, "service", 7) == 0)
        dst = service;
      else if (klen == 5 && strncasecmp (k, "scope", 5) == 0)
        dst = scope;
      if (dst != NULL)
        {
          free (*dst);
          *dst = val;
        }
      else
        free (val);
    }
}

/* One GET. headers: extra request headers. */
static int
image__http_get (image_reg_t *g, const char *url, const char *accept, bool with_auth,
                 bool basic_only, image_resp_t *resp, orch_err_t *err)
{
  CURL *c = g->curl;
  struct curl_slist *hdrs = NULL;
  cleanup_free char *auth = NULL;
  curl_easy_reset (c);
  curl_easy_setopt (c, CURLOPT_URL, url);
  curl_easy_setopt (c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt (c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt (c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt (c, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt (c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (c, CURLOPT_ERRORBUFFER, g->errbuf);
  long t = g->opts->timeout_s > 0 ? g->opts->timeout_s : 30;
  curl_easy_setopt (c, CURLOPT_CONNECTTIMEOUT, t);
  /* A stalled transfer (under 1 byte/s for t seconds) fails; a slow but
   * moving one of a big layer may take as long as it needs. */
  curl_easy_setopt (c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt (c, CURLOPT_LOW_SPEED_TIME, t);
  curl_easy_setopt (c, CURLOPT_USERAGENT, "orch-agent/" ORCH_VERSION);
  curl_easy_setopt (c, CURLOPT_HEADERFUNCTION, image__header_cb);
  curl_easy_setopt (c, CURLOPT_HEADERDATA, resp);
  curl_easy_setopt (c, CURLOPT_WRITEFUNCTION, image__body_cb);
  curl_easy_setopt (c, CURLOPT_WRITEDATA, resp);
  curl_easy_setopt (c, CURLOPT_XFERINFOFUNCTION, image__progress_cb);
  curl_easy_setopt (c, CURLOPT_XFERINFODATA, (void *) g->opts->cancel);
  curl_easy_setopt (c, CURLOPT_NOPROGRESS, 0L);
  if (g->opts->ca_file != NULL)
    curl_easy_setopt (c, CURLOPT_CAINFO, g->opts->ca_file);
  if (accept != NULL)
    {
      cleanup_free char *h = xasprintf ("Accept: %s", accept);
      hdrs = curl_slist_append (hdrs, h);
    }
  if (with_auth && g->bearer != NULL && !basic_only)
    {
      auth = xasprintf ("Authorization: Bearer %s", g->bearer);
      hdrs = curl_slist_append (hdrs, auth);
    }
  else if (with_auth && (g->use_basic || basic_only) && g->opts->username != NULL)
    {
      curl_easy_setopt (c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
      curl_easy_setopt (c, CURLOPT_USERNAME, g->opts->username);
      curl_easy_setopt (c, CURLOPT_PASSWORD, g->opts->password ? g->opts->password : "");
    }
  if (hdrs != NULL)
    curl_easy_setopt (c, CURLOPT_HTTPHEADER, hdrs);
  g->errbuf[0] = '\0';
  CURLcode rc = curl_easy_perform (c);
  curl_slist_free_all (hdrs);
  if (rc == CURLE_OK)
    return 0;
  if (resp->write_failed)
    return -1; /* err set by the blob writer */
  if (resp->too_big)
    return orch_err_set (err, EFBIG, "GET %s: response larger than %zu bytes", url, resp->mem_max);
  if (rc == CURLE_ABORTED_BY_CALLBACK)
    return orch_err_set (err, ECANCELED, "GET %s: canceled", url);
  return orch_err_set (err,
                       rc == CURLE_COULDNT_CONNECT      ? ECONNREFUSED
                       : rc == CURLE_OPERATION_TIMEDOUT ? ETIMEDOUT
                                                        : EIO,
                       "GET %s: %s", url, g->errbuf[0] ? g->errbuf : curl_easy_strerror (rc));
}

/* The registry's error text: its JSON {"errors":[{"code","message"}]}, or
 * the start of whatever it said. */
static char *
image__registry_error (const image_resp_t *r)
{
  json_t *j = json_loadb (r->errbody, r->errbody_len, 0, NULL);
  json_t *e0 = json_array_get (json_object_get (j, "errors"), 0);
  json_t *code = json_object_get (e0, "code");
  json_t *msg = json_object_get (e0, "message");
  char *out;
  if (json_is_string (code))
    out = xasprintf ("%s%s%s", json_string_value (code), json_is_string (msg) ? ": " : "",
                     json_is_string (msg) ? json_string_value (msg) : "");
  else
    {
      out = xstrndup (r->errbody, 200);
      for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\r')
          *p = ' ';
    }
  json_decref (j);
  return out;
}

/* Follows a Bearer challenge: asks the token service named in it. */
static int
image__fetch_token (image_reg_t *g, const char *challenge, orch_err_t *err)
{
  cleanup_free char *scheme = NULL, *realm = NULL, *service = NULL, *scope = NULL;
  image__parse_challenge (challenge, &scheme, &realm, &service, &scope);
  if (realm == NULL || (strncmp (realm, "http://", 7) != 0 && strncmp (realm, "https://", 8) != 0))
    return orch_err_set (err, EACCES, "Bearer challenge without an http(s) realm");
  cleanup_free char *own_scope = xasprintf ("repository:%s:pull", g->ref->repo);
  char *esc_service = service ? curl_easy_escape (g->curl, service, 0) : NULL;
  char *esc_scope = curl_easy_escape (g->curl, scope ? scope : own_scope, 0);
  cleanup_free char *url
      = xasprintf ("%s%sscope=%s%s%s", realm, strchr (realm, '?') ? "&" : "?", esc_scope,
                   esc_service ? "&service=" : "", esc_service ? esc_service : "");
  curl_free (esc_service);
  curl_free (esc_scope);
  image_resp_t resp = { .mem_max = IMAGE_MAX_TOKEN, .err = err };
  int ret = image__http_get (g, url, NULL, g->opts->username != NULL, true, &resp, err);
  if (ret == 0 && resp.status != 200)
    {
      cleanup_free char *why = image__registry_error (&resp);
      ret = orch_err_set (err, EACCES, "token service %s: HTTP %ld: %s", realm, resp.status, why);
    }
  if (ret == 0)
    {
      json_t *j = json_loadb (resp.mem ? resp.mem : "", resp.mem_len, 0, NULL);
      json_t *tok = json_object_get (j, "token");
      if (!json_is_string (tok))
        tok = json_object_get (j, "access_token");
      if (!json_is_string (tok) || strlen (json_string_value (tok)) == 0
          || strpbrk (json_string_value (tok), "\r\n") != NULL)
        ret = orch_err_set (err, EACCES, "token service %s: no token in its answer", realm);
      else
        {
          free (g->bearer);
          g->bearer = xstrdup (json_string_value (tok));
        }
      json_decref (j);
    }
  image__resp_reset (&resp);
  return ret;
}

/* GET path on the registry with authentication: on a 401 it follows the
 * challenge once (token or Basic) and retries. resp has the final answer;
 * any non-2xx becomes an error naming what. */
static int
image__reg_get (image_reg_t *g, const char *path, const char *accept, const char *what,
                image_resp_t *resp, orch_err_t *err)
{
  cleanup_free char *url = xasprintf ("%s%s", g->base, path);
  for (int attempt = 0;; attempt++)
    {
      if (resp->blob != NULL && resp->blob->size > 0)
        {
          /* Start the blob over after an auth round trip. */
          if (ftruncate (resp->blob->fd, 0) < 0 || lseek (resp->blob->fd, 0, SEEK_SET) < 0)
            return orch_err_sys (err, "truncate %s", resp->blob->tmp);
          EVP_MD_CTX_free (resp->blob->md);
          resp->blob->md = image__md_new ();
          resp->blob->size = 0;
        }
      if (image__http_get (g, url, accept, true, false, resp, err) < 0)
        return orch_err_wrap (err, "%s", what);
      if (resp->status == 401 && attempt == 0 && resp->www_auth != NULL)
        {
          if (strncasecmp (resp->www_auth, "Bearer", 6) == 0)
            {
              cleanup_free char *ch = xstrdup (resp->www_auth);
              if (image__fetch_token (g, ch, err) < 0)
                return orch_err_wrap (err, "%s", what);
              continue;
            }
          if (strncasecmp (resp->www_auth, "Basic", 5) == 0 && g->opts->username != NULL)
            {
              g->use_basic = true;
              continue;
            }
        }
      break;
    }
  if (resp->status >= 200 && resp->status < 300)
    return 0;
  cleanup_free char *why = image__registry_error (resp);
  int code = resp->status == 404                          ? ENOENT
             : resp->status == 401 || resp->status == 403 ? EACCES
                                                          : EIO;
  return orch_err_set (err, code, "%s: HTTP %ld%s%s", what, resp->status, *why ? ": " : "", why);
}

static int
image__fetch_manifest (image_reg_t *g, const char *reference, char **data, size_t *len,
                       char **media_type, char digest[IMAGE_DIGEST_LEN + 1], orch_err_t *err)
{
  cleanup_free char *accept = xasprintf ("%s, %s, %s, %s", image_oci_manifest, image_oci_index,
                                         image_docker_manifest, image_docker_list);
  cleanup_free char *path = xasprintf ("/v2/%s/manifests/%s", g->ref->repo, reference);
  cleanup_free char *what = xasprintf ("manifest %s", reference);
  image_resp_t resp = { .mem_max = IMAGE_MAX_MANIFEST, .err = err };
  if (image__reg_get (g, path, accept, what, &resp, err) < 0)
    {
      image__resp_reset (&resp);
      return -1;
    }
  EVP_MD_CTX *md = image__md_new ();
  EVP_DigestUpdate (md, resp.mem ? resp.mem : "", resp.mem_len);
  image__md_hex (md, digest);
  EVP_MD_CTX_free (md);
  int ret = 0;
  if (strncmp (reference, "sha256:", 7) == 0 && strcmp (reference, digest) != 0)
    ret = orch_err_set (err, EBADMSG, "%s: digest mismatch (content hashes to %s)", what, digest);
  else if (resp.docker_digest != NULL && strncmp (resp.docker_digest, "sha256:", 7) == 0
           && strcmp (resp.docker_digest, digest) != 0)
    ret = orch_err_set (err, EBADMSG,
                        "%s: digest mismatch (registry says %s, content hashes to %s)", what,
                        resp.docker_digest, digest);
  if (ret == 0)
    {
      *data = resp.mem ? resp.mem : xstrdup ("");
      *len = resp.mem_len;
      *media_type = resp.content_type ? xstrdup (resp.content_type) : NULL;
      resp.mem = NULL;
    }
  image__resp_reset (&resp);
  return ret;
}

static int
image__fetch_blob (image_reg_t *g, const char *images, const image_desc_t *d, uint64_t max,
                   orch_err_t *err)
{
  if (image__blob_exists (images, d->digest))
    return 0;
  if (d->size > max)
    return orch_err_set (err, EFBIG, "blob %s: %llu bytes, more than the limit of %llu", d->digest,
                         (unsigned long long) d->size, (unsigned long long) max);
  image_blobw_t w;
  if (image__blobw_open (images, d->size, &w, err) < 0)
    return -1;
  cleanup_free char *path = xasprintf ("/v2/%s/blobs/%s", g->ref->repo, d->digest);
  cleanup_free char *what = xasprintf ("blob %s", d->digest);
  image_resp_t resp = { .blob = &w, .err = err };
  int ret = image__reg_get (g, path, NULL, what, &resp, err);
  if (ret < 0 && resp.write_failed)
    orch_err_wrap (err, "%s", what);
  if (ret == 0 && w.size != d->size)
    ret = orch_err_set (err, EBADMSG, "%s: got %llu bytes, the manifest says %llu", what,
                        (unsigned long long) w.size, (unsigned long long) d->size);
  image__resp_reset (&resp);
  if (ret < 0)
    {
      image__blobw_abort (&w);
      return -1;
    }
  return image__blobw_commit (&w, images, d->digest, NULL, err);
}

/* Registries that may be spoken to over plain http (loopback, or listed as
 * insecure) are still tried over https first, with full verification, as
 * Docker does: http only when the TLS connection itself cannot be made. */
static int
image__pick_scheme (image_reg_t *g, orch_err_t *err)
{
  if (!image__insecure (g->ref->registry, g->opts))
    {
      g->base = xasprintf ("https://%s", g->ref->registry);
      return 0;
    }
  orch_err_t tls_err = { 0 };
  for (int i = 0; i < 2; i++)
    {
      free (g->base);
      g->base = xasprintf ("%s://%s", i == 0 ? "https" : "http", g->ref->registry);
      cleanup_free char *url = xasprintf ("%s/v2/", g->base);
      image_resp_t resp = { .mem_max = IMAGE_MAX_ERRBODY, .err = err };
      orch_err_t e = { 0 };
      int r = image__http_get (g, url, NULL, false, false, &resp, &e);
      long status = resp.status;
      image__resp_reset (&resp);
      /* Over https any answer means the scheme works. Over http only a
       * registry's answer does: a TLS server answers plain http with a
       * 400, and the TLS error (a certificate, say) is the one to report. */
      if (r == 0 && (i == 0 || status == 200 || status == 401))
        return 0;
      if (r == 0)
        orch_err_set (&e, EPROTO, "GET %s: HTTP %ld", url, status);
      if (i == 1)
        return orch_err_set (err, e.code, "ping: %s; %s", tls_err.msg, e.msg);
      /* Nothing listening, no such host, or canceled: http would not fare
       * better. Only a failed TLS exchange (EIO) falls back. */
      if (e.code != EIO)
        return orch_err_set (err, e.code, "ping: %s", e.msg);
      tls_err = e;
    }
  return -1;
}

/* Pulls ref into the store and installs it under canon. */
static int
image__pull (const char *images, const image_ref_t *ref, const char *canon,
             const image_pull_opts_t *opts, char **rootfs_out, orch_err_t *err)
{
  pthread_once (&image_curl_once, image__curl_init);
  image_reg_t g = { .ref = ref, .opts = opts };
  g.curl = curl_easy_init ();
  if (g.curl == NULL)
    abort ();
  uint64_t max_blob = opts->max_blob_bytes ? opts->max_blob_bytes : IMAGE_DEFAULT_MAX_BLOB;
  uint64_t max_image = opts->max_image_bytes ? opts->max_image_bytes : IMAGE_DEFAULT_MAX_IMAGE;
  cleanup_free char *data = NULL;
  cleanup_free char *mtype = NULL;
  size_t len = 0;
  char digest[IMAGE_DIGEST_LEN + 1];
  image_manifest_t m = { 0 };
  int ret = -1;

  if (image__pick_scheme (&g, err) < 0)
    goto out;
  if (image__fetch_manifest (&g, ref->digest ? ref->digest : ref->tag, &data, &len, &mtype, digest,
                             err)
      < 0)
    goto out;
  if (image__manifest_parse (data, len, mtype, &m, err) < 0)
    {
      orch_err_wrap (err, "manifest %s", digest);
      goto out;
    }
  if (m.is_index)
    {
      int k = image__index_pick (&m);
      if (k < 0)
        {
          orch_err_set (err, ENOENT, "index %s has no linux/amd64 image", digest);
          goto out;
        }
      char pick[IMAGE_DIGEST_LEN + 1];
      memcpy (pick, m.items[k].digest, sizeof pick);
      image__manifest_free (&m);
      free (data);
      free (mtype);
      data = mtype = NULL;
      if (image__fetch_manifest (&g, pick, &data, &len, &mtype, digest, err) < 0)
        goto out;
      if (image__manifest_parse (data, len, mtype, &m, err) < 0)
        {
          orch_err_wrap (err, "manifest %s", digest);
          goto out;
        }
      if (m.is_index)
        {
          orch_err_set (err, EBADMSG, "index entry %s is itself an index", digest);
          goto out;
        }
    }
  uint64_t total = m.config.size;
  for (size_t i = 0; i < m.n_items; i++)
    total += m.items[i].size;
  if (total > max_image)
    {
      orch_err_set (err, EFBIG, "image is %llu bytes, more than the limit of %llu",
                    (unsigned long long) total, (unsigned long long) max_image);
      goto out;
    }
  if (image__fetch_blob (&g, images, &m.config,
                         IMAGE_MAX_JSON < max_blob ? IMAGE_MAX_JSON : max_blob, err)
      < 0)
    goto out;
  for (size_t i = 0; i < m.n_items; i++)
    if (image__fetch_blob (&g, images, &m.items[i], max_blob, err) < 0)
      goto out;
  /* The manifest goes in last: a manifest in the store means its blobs are. */
  char stored[IMAGE_DIGEST_LEN + 1];
  if (!image__blob_exists (images, digest) && image__blob_put (images, data, len, stored, err) < 0)
    goto out;
  if (image__install (images, canon, digest, rootfs_out, err) < 0)
    goto out;
  ret = 0;
out:
  image__manifest_free (&m);
  curl_easy_cleanup (g.curl);
  free (g.base);
  free (g.bearer);
  return ret;
}

/* ======================================================================
 * Pull on demand
 * ====================================================================== */

int
image_ensure (const char *state_dir, const char *refstr, const image_pull_opts_t *opts,
              char **rootfs_out, orch_err_t *err)
{
  static const image_pull_opts_t defaults = { 0 };
  if (opts == NULL)
    opts = &defaults;
  image_ref_t ref;
  if (image_ref_parse (refstr, &ref, err) < 0)
    return -1;
  if (ref.registry == NULL && opts->default_registry != NULL)
    ref.registry = xstrdup (opts->default_registry);
  cleanup_free char *canon = image_ref_format (&ref);
  cleanup_free char *images = NULL;
  cleanup_close int lock = -1;
  int ret = -1;

  if (state_dir == NULL)
    {
      orch_err_set (err, EINVAL, "pull %s: missing state dir", canon);
      goto out;
    }
  if (opts->policy != IMAGE_PULL_ALWAYS)
    {
      /* The name as given first (a local image), then as qualified. */
      orch_err_t e = { 0 };
      if (image__find (state_dir, refstr, rootfs_out, NULL, &e) == 0
          || image__find (state_dir, canon, rootfs_out, NULL, &e) == 0)
        {
          ret = 0;
          goto out;
        }
      if (opts->policy == IMAGE_PULL_NEVER)
        {
          orch_err_set (err, ENOENT, "image %s is not in this node's store (pull policy never)",
                        canon);
          goto out;
        }
    }
  if (ref.registry == NULL)
    {
      orch_err_set (err, ENOENT,
                    "image %s is not in this node's store and names no registry (import it with "
                    "orchctl image import, or use host[:port]/repo:tag)",
                    canon);
      goto out;
    }
  if (image__store_init (state_dir, &images, err) < 0)
    goto out;
  lock = image__lock (images, false, err);
  if (lock < 0)
    goto out;
  if (image__pull (images, &ref, canon, opts, rootfs_out, err) < 0)
    {
      orch_err_wrap (err, "pull %s", canon);
      goto out;
    }
  ret = 0;
out:
  image_ref_free (&ref);
  return ret;
}

/* ======================================================================
 * Garbage collection
 * ====================================================================== */

typedef struct image_gc_img_s
{
  char id[IMAGE_DIGEST_LEN + 1];
  int64_t used;  /* mtime of rootfs/<id>/used, ns */
  uint64_t size; /* disk usage */
  bool keep;
  bool removed;
} image_gc_img_t;

typedef struct image_gc_ref_s
{
  char *path;
  image_refrec_t rec;
  bool removed;
} image_gc_ref_t;

typedef struct image_gc_blob_s
{
  char digest[IMAGE_DIGEST_LEN + 1];
  uint64_t size;
  bool removed;
} image_gc_blob_t;

static int
image__gc_cmp_str (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}


/* The blobs a ref needs: its manifest, config and layers (sorted into *set). */
static void
image__gc_mark (const char *images, const image_refrec_t *rec, char ***set, size_t *n, size_t *cap)
{
  orch_grow ((void **) set, cap, *n + 2, sizeof (char *));
  (*set)[(*n)++] = xstrdup (rec->id);
  if (rec->manifest[0] == '\0')
    return;
  (*set)[(*n)++] = xstrdup (rec->manifest);
  cleanup_free char *data = NULL;
  size_t len;
  orch_err_t e = { 0 };
  image_manifest_t m;
  if (image__blob_read (images, rec->manifest, IMAGE_MAX_MANIFEST, &data, &len, &e) < 0
      || image__manifest_parse (data, len, NULL, &m, &e) < 0)
    return;
  orch_grow ((void **) set, cap, *n + m.n_items + 1, sizeof (char *));
  if (!m.is_index)
    (*set)[(*n)++] = xstrdup (m.config.digest);
  for (size_t i = 0; i < m.n_items; i++)
    (*set)[(*n)++] = xstrdup (m.items[i].digest);
  image__manifest_free (&m);
}

int
image_gc (const char *state_dir, uint64_t budget_bytes, const char *const *in_use, size_t n_in_use,
          image_gc_stats_t *stats, orch_err_t *err)
{
  image_gc_stats_t st_local = { 0 };
  image_gc_stats_t *s = stats ? stats : &st_local;
  memset (s, 0, sizeof (*s));
  cleanup_free char *images = NULL;
  if (image__store_init (state_dir, &images, err) < 0)
    return orch_err_wrap (err, "image gc");
  cleanup_close int lock = image__lock (images, true, err);
  if (lock < 0)
    return orch_err_wrap (err, "image gc");

  image_gc_img_t *imgs = NULL;
  image_gc_ref_t *refs = NULL;
  image_gc_blob_t *blobs = NULL;
  size_t n_imgs = 0, c_imgs = 0, n_refs = 0, c_refs = 0, n_blobs = 0, c_blobs = 0;
  DIR *d;
  struct dirent *de;
  int ret = 0;

  /* Work directories: with the lock held exclusively nobody is using one. */
  cleanup_free char *tmpd = xasprintf ("%s/tmp", images);
  if ((d = opendir (tmpd)) != NULL)
    {
      while ((de = readdir (d)) != NULL)
        if (strcmp (de->d_name, ".") != 0 && strcmp (de->d_name, "..") != 0)
          image__rm_at (dirfd (d), de->d_name, 0);
      closedir (d);
    }

  cleanup_free char *refsd = xasprintf ("%s/refs", images);
  if ((d = opendir (refsd)) != NULL)
    {
      while ((de = readdir (d)) != NULL)
        {
          if (de->d_name[0] == '.')
            continue;
          cleanup_free char *p = xasprintf ("%s/%s", refsd, de->d_name);
          image_refrec_t rec;
          if (strstr (de->d_name, ".tmp-") != NULL || image__refrec_read (p, &rec) < 0)
            {
              unlink (p); /* a writer that died, or garbage */
              continue;
            }
          orch_grow ((void **) &refs, &c_refs, n_refs + 1, sizeof (*refs));
          refs[n_refs++] = (image_gc_ref_t){ .path = TAKE_PTR (p), .rec = rec };
        }
      closedir (d);
    }

  cleanup_free char *rootd = xasprintf ("%s/rootfs", images);
  if ((d = opendir (rootd)) != NULL)
    {
      while ((de = readdir (d)) != NULL)
        {
          if (!image__is_hex64 (de->d_name))
            continue;
          image_gc_img_t im = { 0 };
          memcpy (im.id, "sha256:", 7);
          memcpy (im.id + 7, de->d_name, 65);
          cleanup_free char *dir = xasprintf ("%s/%s", rootd, de->d_name);
          cleanup_free char *used = xasprintf ("%s/used", dir);
          struct stat st;
          if (stat (used, &st) == 0)
            im.used = (int64_t) st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
          im.size = image__du (dir);
          orch_grow ((void **) &imgs, &c_imgs, n_imgs + 1, sizeof (*imgs));
          imgs[n_imgs++] = im;
        }
      closedir (d);
    }

  cleanup_free char *blobd = xasprintf ("%s/blobs/sha256", images);
  if ((d = opendir (blobd)) != NULL)
    {
      while ((de = readdir (d)) != NULL)
        {
          if (!image__is_hex64 (de->d_name))
            continue;
          struct stat st;
          if (fstatat (dirfd (d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
          orch_grow ((void **) &blobs, &c_blobs, n_blobs + 1, sizeof (*blobs));
          image_gc_blob_t *b = &blobs[n_blobs++];
          memcpy (b->digest, "sha256:", 7);
          memcpy (b->digest + 7, de->d_name, 65);
          b->size = (uint64_t) st.st_blocks * 512;
          b->removed = false;
        }
      closedir (d);
    }

  /* What running allocations use. */
  for (size_t i = 0; i < n_in_use; i++)
    {
      const char *u = in_use[i];
      if (u == NULL)
        continue;
      image_refrec_t rec = { 0 };
      image_ref_t ref;
      orch_err_t e = { 0 };
      if (!image__digest_valid (u) && u[0] != '/' && image_ref_parse (u, &ref, &e) == 0)
        {
          if (image__lookup (images, &ref, &rec, NULL, NULL) < 0)
            rec.id[0] = '\0';
          image_ref_free (&ref);
        }
      for (size_t k = 0; k < n_imgs; k++)
        {
          if (image__digest_valid (u))
            {
              if (strcmp (imgs[k].id, u) == 0)
                imgs[k].keep = true;
              for (size_t r = 0; r < n_refs; r++)
                if (strcmp (refs[r].rec.manifest, u) == 0
                    && strcmp (refs[r].rec.id, imgs[k].id) == 0)
                  imgs[k].keep = true;
            }
          else if (u[0] == '/' || strstr (u, "/rootfs/") != NULL)
            {
              if (strstr (u, imgs[k].id + 7) != NULL)
                imgs[k].keep = true;
            }
          else if (rec.id[0] && strcmp (rec.id, imgs[k].id) == 0)
            imgs[k].keep = true;
        }
    }

  /* Refs to an image that is not unpacked are dangling: drop them. */
  for (size_t r = 0; r < n_refs; r++)
    {
      bool found = false;
      for (size_t k = 0; k < n_imgs && !found; k++)
        found = strcmp (refs[r].rec.id, imgs[k].id) == 0;
      if (!found)
        {
          unlink (refs[r].path);
          refs[r].removed = true;
        }
    }

  for (size_t b = 0; b < n_blobs; b++)
    s->bytes_before += blobs[b].size;
  for (size_t k = 0; k < n_imgs; k++)
    s->bytes_before += imgs[k].size;

  for (;;)
    {
      /* Blobs no remaining ref (or kept image) needs go, whatever the budget. */
      char **set = NULL;
      size_t n_set = 0, c_set = 0;
      for (size_t r = 0; r < n_refs; r++)
        if (!refs[r].removed)
          image__gc_mark (images, &refs[r].rec, &set, &n_set, &c_set);
      for (size_t k = 0; k < n_imgs; k++)
        if (imgs[k].keep)
          {
            orch_grow ((void **) &set, &c_set, n_set + 1, sizeof (char *));
            set[n_set++] = xstrdup (imgs[k].id);
          }
      if (n_set > 0)
        qsort (set, n_set, sizeof (char *), image__gc_cmp_str);
      for (size_t b = 0; b < n_blobs; b++)
        {
          const char *key = blobs[b].digest;
          if (blobs[b].removed
              || (n_set > 0 && bsearch (&key, set, n_set, sizeof (char *), image__gc_cmp_str)))
            continue;
          cleanup_free char *p = image__blob_path (images, blobs[b].digest);
          if (unlink (p) == 0 || errno == ENOENT)
            {
              blobs[b].removed = true;
              s->blobs_removed++;
            }
        }
      for (size_t i = 0; i < n_set; i++)
        free (set[i]);
      free (set);

      uint64_t total = 0;
      for (size_t b = 0; b < n_blobs; b++)
        if (!blobs[b].removed)
          total += blobs[b].size;
      for (size_t k = 0; k < n_imgs; k++)
        if (!imgs[k].removed)
          total += imgs[k].size;
      s->bytes_after = total;
      if (total <= budget_bytes)
        break;
      /* Least recently used image nobody runs. */
      ssize_t victim = -1;
      for (size_t k = 0; k < n_imgs; k++)
        if (!imgs[k].removed && !imgs[k].keep && (victim < 0 || imgs[k].used < imgs[victim].used))
          victim = (ssize_t) k;
      if (victim < 0)
        break;
      image_gc_img_t *im = &imgs[victim];
      for (size_t r = 0; r < n_refs; r++)
        if (!refs[r].removed && strcmp (refs[r].rec.id, im->id) == 0)
          {
            unlink (refs[r].path);
            refs[r].removed = true;
          }
      cleanup_free char *dir = image__rootfs_dir (images, im->id);
      int rr = orch_rm_rf (dir);
      im->removed = true;
      if (rr < 0)
        {
          ret = orch_err_set (err, -rr, "image gc: remove %s: %s", dir, strerror (-rr));
          break;
        }
      s->images_removed++;
    }

  for (size_t r = 0; r < n_refs; r++)
    free (refs[r].path);
  free (refs);
  free (imgs);
  free (blobs);
  return ret;
}
