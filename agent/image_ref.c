/* The cheap half of the image store: references, ref files and lookups
 * (image_internal.h says which half is which). No network, no archive or
 * crypto library: the agent daemon links only this, and runs pulls, imports
 * and GC in the orch-image helper (agent_image.c). */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image_internal.h"
#include "orch_sha256.h"
#include "orch_util.h"

bool
image__is_hex64 (const char *s)
{
  size_t i;
  for (i = 0; i < 64; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  return s[64] == '\0';
}

/* "sha256:<64 lowercase hex>" is the only algorithm accepted. */
bool
image__digest_valid (const char *d)
{
  return d != NULL && strncmp (d, "sha256:", 7) == 0 && strlen (d) == IMAGE_DIGEST_LEN
         && image__is_hex64 (d + 7);
}

/* ======================================================================
 * References
 * ====================================================================== */

void
image_ref_free (image_ref_t *r)
{
  if (r == NULL)
    return;
  free (r->registry);
  free (r->repo);
  free (r->tag);
  free (r->digest);
  memset (r, 0, sizeof (*r));
}

static bool
image__alnum_lower (char c)
{
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int
image__check_repo (const char *ref, const char *repo, orch_err_t *err)
{
  const char *p = repo;
  if (*p == '\0')
    return orch_err_set (err, EINVAL, "image reference \"%s\": empty repository name", ref);
  while (*p)
    {
      const char *end = strchrnul (p, '/');
      if (end == p)
        return orch_err_set (err, EINVAL, "image reference \"%s\": empty path component", ref);
      for (const char *q = p; q < end; q++)
        {
          if (*q >= 'A' && *q <= 'Z')
            return orch_err_set (err, EINVAL,
                                 "image reference \"%s\": repository must be lowercase", ref);
          if (!image__alnum_lower (*q) && *q != '.' && *q != '_' && *q != '-')
            return orch_err_set (err, EINVAL,
                                 "image reference \"%s\": '%c' is not allowed in a repository name",
                                 ref, *q);
        }
      if (!image__alnum_lower (*p) || !image__alnum_lower (end[-1]))
        return orch_err_set (err, EINVAL,
                             "image reference \"%s\": each name component must start and end "
                             "with a-z or 0-9",
                             ref);
      p = *end ? end + 1 : end;
      if (*end && *p == '\0')
        return orch_err_set (err, EINVAL, "image reference \"%s\": trailing '/'", ref);
    }
  return 0;
}

static int
image__check_tag (const char *ref, const char *tag, orch_err_t *err)
{
  size_t len = strlen (tag);
  if (len == 0 || len > 128)
    return orch_err_set (err, EINVAL, "image reference \"%s\": a tag has 1 to 128 characters", ref);
  for (size_t i = 0; i < len; i++)
    {
      char c = tag[i];
      bool ok = isalnum ((unsigned char) c) || c == '_' || (i > 0 && (c == '.' || c == '-'));
      if (!ok)
        return orch_err_set (err, EINVAL, "image reference \"%s\": bad tag \"%s\"", ref, tag);
    }
  return 0;
}

static int
image__check_registry (const char *ref, const char *reg, orch_err_t *err)
{
  for (const char *p = reg; *p; p++)
    if (!isalnum ((unsigned char) *p) && *p != '.' && *p != '-' && *p != ':' && *p != '['
        && *p != ']')
      return orch_err_set (err, EINVAL, "image reference \"%s\": bad registry host \"%s\"", ref,
                           reg);
  if (reg[0] != '[')
    {
      /* Host name labels: non-empty, starting and ending with a letter or
       * digit ("..", ".x", "x-" are not hosts). */
      size_t hl = strcspn (reg, ":");
      for (size_t i = 0; i < hl;)
        {
          size_t l = strcspn (reg + i, ".:");
          if (l > hl - i)
            l = hl - i;
          if (l == 0 || !isalnum ((unsigned char) reg[i])
              || !isalnum ((unsigned char) reg[i + l - 1]))
            return orch_err_set (err, EINVAL, "image reference \"%s\": bad registry host \"%s\"",
                                 ref, reg);
          i += l + 1;
        }
      if (strchr (reg, '[') || strchr (reg, ']') || strchr (reg + hl + (reg[hl] ? 1 : 0), ':'))
        return orch_err_set (err, EINVAL, "image reference \"%s\": bad registry host \"%s\"", ref,
                             reg);
    }
  const char *colon = reg[0] == '[' ? strstr (reg, "]:") : strrchr (reg, ':');
  if (colon != NULL)
    {
      const char *port = colon + (reg[0] == '[' ? 2 : 1);
      char *end;
      long v = strtol (port, &end, 10);
      if (*port == '\0' || *end != '\0' || v < 1 || v > 65535)
        return orch_err_set (err, EINVAL, "image reference \"%s\": bad registry port", ref);
    }
  return 0;
}

int
image_ref_parse (const char *s, image_ref_t *out, orch_err_t *err)
{
  memset (out, 0, sizeof (*out));
  size_t len = s != NULL ? strlen (s) : 0;
  if (len == 0 || len > IMAGE_REF_MAX)
    return orch_err_set (err, EINVAL, "image reference must have 1 to %d characters",
                         IMAGE_REF_MAX);
  for (size_t i = 0; i < len; i++)
    if ((unsigned char) s[i] <= ' ' || (unsigned char) s[i] >= 0x7f)
      return orch_err_set (err, EINVAL,
                           "image reference \"%s\": must not contain spaces or "
                           "control characters",
                           s);
  cleanup_free char *name = xstrdup (s);
  image_ref_t r = { 0 };
  char *at = strchr (name, '@');
  if (at != NULL)
    {
      *at = '\0';
      if (!image__digest_valid (at + 1))
        {
          orch_err_set (err, EINVAL,
                        "image reference \"%s\": digest must be sha256: and 64 lowercase hex "
                        "digits",
                        s);
          return -1;
        }
      r.digest = xstrdup (at + 1);
    }
  char *rest = name;
  char *slash = strchr (name, '/');
  if (slash != NULL)
    {
      *slash = '\0';
      if (strchr (name, '.') != NULL || strchr (name, ':') != NULL
          || strcmp (name, "localhost") == 0)
        {
          r.registry = xstrdup (name);
          rest = slash + 1;
        }
      else
        *slash = '/';
    }
  char *colon = strrchr (rest, ':');
  if (colon != NULL)
    {
      *colon = '\0';
      r.tag = xstrdup (colon + 1);
    }
  r.repo = xstrdup (rest);
  if ((r.registry != NULL && image__check_registry (s, r.registry, err) < 0)
      || image__check_repo (s, r.repo, err) < 0
      || (r.tag != NULL && image__check_tag (s, r.tag, err) < 0))
    {
      image_ref_free (&r);
      return -1;
    }
  if (r.tag == NULL && r.digest == NULL)
    r.tag = xstrdup ("latest");
  *out = r;
  return 0;
}

char *
image_ref_format (const image_ref_t *r)
{
  return xasprintf ("%s%s%s%s%s%s%s", r->registry ? r->registry : "", r->registry ? "/" : "",
                    r->repo, r->tag ? ":" : "", r->tag ? r->tag : "", r->digest ? "@" : "",
                    r->digest ? r->digest : "");
}

/* The file name of a ref: the canonical form with everything but
 * [A-Za-z0-9._-] percent-escaped, or a hash where that would be too long. */
char *
image__ref_file (const char *images, const char *canon)
{
  size_t len = strlen (canon);
  char *esc = xmalloc (len * 3 + 1);
  size_t o = 0;
  for (size_t i = 0; i < len; i++)
    {
      unsigned char c = (unsigned char) canon[i];
      if (isalnum (c) || c == '.' || c == '_' || c == '-')
        esc[o++] = (char) c;
      else
        o += (size_t) sprintf (esc + o, "%%%02X", c);
    }
  esc[o] = '\0';
  char *path;
  if (o > 200)
    {
      char d[ORCH_SHA256_DIGEST_STR];
      orch_sha256_digest_str (canon, len, d);
      path = xasprintf ("%s/refs/h-%s", images, d + 7);
    }
  else
    path = xasprintf ("%s/refs/%s", images, esc);
  free (esc);
  return path;
}

int
image__refrec_read (const char *path, image_refrec_t *rec)
{
  cleanup_free char *data = NULL;
  size_t len;
  int r = orch_read_file (path, 4096, &data, &len);
  if (r < 0)
    return r;
  memset (rec, 0, sizeof (*rec));
  char *save = NULL;
  for (char *line = strtok_r (data, "\n", &save); line; line = strtok_r (NULL, "\n", &save))
    {
      if (strncmp (line, "manifest ", 9) == 0 && image__digest_valid (line + 9))
        memcpy (rec->manifest, line + 9, IMAGE_DIGEST_LEN + 1);
      else if (strncmp (line, "id ", 3) == 0 && image__digest_valid (line + 3))
        memcpy (rec->id, line + 3, IMAGE_DIGEST_LEN + 1);
    }
  return rec->id[0] ? 0 : -EBADMSG;
}


char *
image__rootfs_dir (const char *images, const char *id)
{
  return xasprintf ("%s/rootfs/%s", images, id + 7);
}

void
image__touch_used (const char *dir)
{
  cleanup_free char *used = xasprintf ("%s/used", dir);
  int fd = open (used, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd >= 0)
    {
      futimens (fd, NULL);
      close (fd);
    }
}


/* ======================================================================
 * Lookup
 * ====================================================================== */

/* Finds ref in the store without network. 0 with *rec (and the rootfs dir
 * path when dir_out), -ENOENT when absent. Legacy <name>/rootfs images come
 * back with an empty rec and their rootfs in *legacy. */
int
image__lookup (const char *images, const image_ref_t *ref, image_refrec_t *rec, char **dir_out,
               char **legacy)
{
  cleanup_free char *canon = image_ref_format (ref);
  cleanup_free char *rf = image__ref_file (images, canon);
  struct stat st;
  memset (rec, 0, sizeof (*rec));
  if (image__refrec_read (rf, rec) == 0)
    {
      cleanup_free char *dir = image__rootfs_dir (images, rec->id);
      cleanup_free char *root = xasprintf ("%s/rootfs", dir);
      if (stat (root, &st) == 0 && S_ISDIR (st.st_mode))
        {
          if (dir_out)
            *dir_out = TAKE_PTR (dir);
          return 0;
        }
    }
  if (ref->digest != NULL)
    {
      /* By digest: any ref whose manifest (or image id) it is will do, the
       * content being the same by definition. */
      cleanup_free char *refs = xasprintf ("%s/refs", images);
      DIR *d = opendir (refs);
      struct dirent *de;
      bool found = false;
      while (d != NULL && !found && (de = readdir (d)) != NULL)
        {
          if (de->d_name[0] == '.' || strstr (de->d_name, ".tmp-") != NULL)
            continue;
          cleanup_free char *p = xasprintf ("%s/%s", refs, de->d_name);
          image_refrec_t r;
          if (image__refrec_read (p, &r) == 0
              && (strcmp (r.manifest, ref->digest) == 0 || strcmp (r.id, ref->digest) == 0))
            {
              cleanup_free char *dir = image__rootfs_dir (images, r.id);
              cleanup_free char *root = xasprintf ("%s/rootfs", dir);
              if (stat (root, &st) == 0 && S_ISDIR (st.st_mode))
                {
                  *rec = r;
                  if (dir_out)
                    *dir_out = TAKE_PTR (dir);
                  found = true;
                }
            }
        }
      if (d)
        closedir (d);
      if (found)
        return 0;
    }
  if (legacy != NULL && ref->registry == NULL && ref->digest == NULL && ref->tag != NULL
      && strcmp (ref->tag, "latest") == 0 && strchr (ref->repo, '/') == NULL)
    {
      cleanup_free char *old = xasprintf ("%s/%s/rootfs", images, ref->repo);
      if (stat (old, &st) == 0 && S_ISDIR (st.st_mode))
        {
          *legacy = TAKE_PTR (old);
          return 0;
        }
    }
  return -ENOENT;
}

int
image__find (const char *state_dir, const char *refstr, char **rootfs_out, image_refrec_t *rec,
             orch_err_t *err)
{
  image_ref_t ref;
  if (image_ref_parse (refstr, &ref, err) < 0)
    return -1;
  if (state_dir == NULL)
    {
      image_ref_free (&ref);
      return orch_err_set (err, EINVAL, "image %s: missing state dir", refstr);
    }
  cleanup_free char *images = xasprintf ("%s/images", state_dir);
  cleanup_free char *dir = NULL;
  cleanup_free char *legacy = NULL;
  image_refrec_t r;
  int ret = image__lookup (images, &ref, &r, &dir, &legacy);
  image_ref_free (&ref);
  if (ret < 0)
    return orch_err_set (err, ENOENT,
                         "image %s is not imported on this node (orchctl image import %s "
                         "ROOTFS.tar)",
                         refstr, refstr);
  if (rec)
    *rec = r;
  if (legacy != NULL)
    {
      *rootfs_out = TAKE_PTR (legacy);
      return 0;
    }
  image__touch_used (dir);
  *rootfs_out = xasprintf ("%s/rootfs", dir);
  return 0;
}

char *
image_rootfs (const char *state_dir, const char *name, orch_err_t *err)
{
  char *out = NULL;
  if (image__find (state_dir, name, &out, NULL, err) < 0)
    return NULL;
  return out;
}

bool
image_present (const char *state_dir, const char *refstr)
{
  image_ref_t ref;
  orch_err_t e = { 0 };
  if (state_dir == NULL || image_ref_parse (refstr, &ref, &e) < 0)
    return false;
  cleanup_free char *images = xasprintf ("%s/images", state_dir);
  cleanup_free char *legacy = NULL;
  image_refrec_t rec;
  int r = image__lookup (images, &ref, &rec, NULL, &legacy);
  image_ref_free (&ref);
  return r == 0;
}

int
image_inspect (const char *state_dir, const char *refstr, image_info_t *out, orch_err_t *err)
{
  memset (out, 0, sizeof (*out));
  image_refrec_t rec;
  char *root = NULL;
  if (image__find (state_dir, refstr, &root, &rec, err) < 0)
    return -1;
  out->rootfs = root;
  memcpy (out->id, rec.id, sizeof (out->id) < sizeof (rec.id) ? sizeof (out->id) : sizeof rec.id);
  memcpy (out->manifest, rec.manifest, sizeof (rec.manifest));
  cleanup_free char *used = xasprintf ("%s/../used", root);
  struct stat st;
  out->used_ms = stat (used, &st) == 0
                     ? (int64_t) st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000
                     : orch_now_wall_ms ();
  out->size = root != NULL ? image__du (root) : 0;
  return 0;
}

void
image_info_free (image_info_t *i)
{
  if (i == NULL)
    return;
  free (i->rootfs);
  i->rootfs = NULL;
}

int
image_untag (const char *state_dir, const char *refstr, orch_err_t *err)
{
  image_ref_t ref;
  if (image_ref_parse (refstr, &ref, err) < 0)
    return -1;
  cleanup_free char *canon = image_ref_format (&ref);
  image_ref_free (&ref);
  if (state_dir == NULL)
    return orch_err_set (err, EINVAL, "untag %s: missing state dir", canon);
  cleanup_free char *images = xasprintf ("%s/images", state_dir);
  cleanup_free char *rf = image__ref_file (images, canon);
  if (unlink (rf) < 0)
    return orch_err_sys (err, "untag %s", canon);
  return 0;
}


static uint64_t
image__du_at (int dfd, int depth)
{
  uint64_t total = 0;
  DIR *d = fdopendir (dfd);
  if (d == NULL)
    {
      close (dfd);
      return 0;
    }
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      struct stat st;
      if (fstatat (dirfd (d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        continue;
      total += (uint64_t) st.st_blocks * 512;
      if (S_ISDIR (st.st_mode) && depth < 256)
        {
          int fd = openat (dirfd (d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
          if (fd >= 0)
            total += image__du_at (fd, depth + 1);
        }
    }
  closedir (d);
  return total;
}

uint64_t
image__du (const char *path)
{
  int fd = open (path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  return fd < 0 ? 0 : image__du_at (fd, 0);
}
