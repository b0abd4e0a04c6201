/* The node-local, content-addressed image store (DESIGN.md §7, issue 4).
 *
 * Layout under <state>/images:
 *
 *   blobs/sha256/<hex>      every blob by its digest: layers, configs,
 *                           manifests (and indexes), verified on the way in
 *   rootfs/<id>/rootfs      one unpacked, read-only root filesystem per
 *                           image; <id> is the hex of the image's config
 *                           digest. The container overlay uses it as its
 *                           lower dir. rootfs/<id>/used is touched whenever
 *                           the image is looked up (GC goes oldest first).
 *   refs/<escaped ref>      "name:tag" (or "name@sha256:..") -> the image:
 *                           a small text file with the manifest digest and
 *                           the image id, replaced atomically
 *   <name>/rootfs           the older layout (a plain name's rootfs); still
 *                           found by image_rootfs(), never written now
 *   tmp/                    work directories of imports and pulls
 *
 * References: "busybox" (a local name, same as "busybox:latest"),
 * "name:tag", "name@sha256:<64 hex>", "host[:port]/repo[/more]:tag" and
 * "host[:port]/repo@sha256:<hex>". A reference names a registry only when
 * its first component has a '.' or a ':' or is "localhost"; other names are
 * local to this node (there is no default registry unless the caller names
 * one in image_pull_opts_t).
 *
 * Thread safety: every function may be called from any thread, several at a
 * time, and from several processes (the agent and `orchctl image import`) on
 * one state directory: writers publish with rename(), and image_gc() takes
 * an exclusive lock that imports and pulls hold shared (it fails with EAGAIN
 * rather than wait for them). Failing calls return a negative value and
 * fill err (its code an errno value), as everywhere. Nothing here touches
 * a libuv loop; the blocking calls (import, ensure, gc) are meant for
 * uv_queue_work. Nothing logs. */
#ifndef ORCH_IMAGE_H
#define ORCH_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "orch_err.h"

/* ---- references --------------------------------------------------------- */

#define IMAGE_REF_MAX 255

typedef struct image_ref_s
{
  char *registry; /* "localhost:5000", or NULL for a local name */
  char *repo;     /* "busybox", "library/busybox", "team/app" */
  char *tag;      /* "latest" when neither tag nor digest was given */
  char *digest;   /* "sha256:<hex>" or NULL; with a digest, tag may be NULL */
} image_ref_t;

/* Parses s into *out (fields newly allocated; free with image_ref_free).
 * Returns 0, or < 0 with err naming what is wrong ("image reference
 * \"Foo\": repository must be lowercase"). */
int image_ref_parse (const char *s, image_ref_t *out, orch_err_t *err);
void image_ref_free (image_ref_t *r);
/* The canonical form: "[registry/]repo(:tag|@digest|:tag@digest)".
 * Caller frees. */
char *image_ref_format (const image_ref_t *r);

/* ---- pulling -------------------------------------------------------------- */

typedef enum image_pull_policy_e
{
  IMAGE_PULL_IF_MISSING = 0, /* present locally: no network at all */
  IMAGE_PULL_ALWAYS,         /* re-resolve the tag; blobs already held are not fetched again */
  IMAGE_PULL_NEVER,          /* only what is in the store */
} image_pull_policy_t;

/* Everything is borrowed; a zeroed struct is a sensible default. */
typedef struct image_pull_opts_s
{
  image_pull_policy_t policy;
  /* Registries ("host" or "host:port") that may be spoken to over plain
   * http when https (verified) cannot connect; loopback registries
   * (localhost, 127.0.0.0/8, [::1]) always may. NULL-terminated. */
  const char *const *insecure_registries;
  /* The registry for a name that has none and is not in the store, e.g.
   * "registry.example:5000"; NULL: such names are local only. */
  const char *default_registry;
  /* Basic credentials, sent to the registry on a Basic challenge and to the
   * token service of a Bearer challenge. NULL: anonymous. */
  const char *username;
  const char *password;
  const char *ca_file;      /* extra CA bundle for https; NULL: the system's */
  uint64_t max_blob_bytes;  /* per blob; 0: IMAGE_DEFAULT_MAX_BLOB */
  uint64_t max_image_bytes; /* all blobs of one image; 0: IMAGE_DEFAULT_MAX_IMAGE */
  long timeout_s;           /* connect timeout and stall limit per request; 0: 30 */
  /* Set non-zero (from any thread) to abort a pull between chunks; it then
   * fails with ECANCELED and leaves nothing behind. May be NULL. */
  const volatile int *cancel;
} image_pull_opts_t;

#define IMAGE_DEFAULT_MAX_BLOB (4ULL << 30)
#define IMAGE_DEFAULT_MAX_IMAGE (16ULL << 30)
#define IMAGE_MAX_MANIFEST (4U << 20)
#define IMAGE_MAX_LAYERS 256

/* Makes ref available in the store and returns its root filesystem.
 *
 * BLOCKING: it may download gigabytes. The agent runs it in uv_queue_work
 * (showing the allocation as "pulling") and never on its loop.
 *
 * With IMAGE_PULL_IF_MISSING an image already in the store (by ref, by
 * digest, or in the older <name>/rootfs layout) is returned at once. Else
 * the registry is asked: GET /v2/<repo>/manifests/<tag|digest> (OCI and
 * Docker v2 manifests, indexes and manifest lists, resolved to linux/amd64),
 * then the config and every layer as blobs, each verified against its
 * sha256 while it streams, then the layers are unpacked in order (whiteouts
 * and opaque directories applied) and the ref is published. Bearer-token
 * (401 + WWW-Authenticate: Bearer realm=..,service=..,scope=..) and Basic
 * auth are handled. Errors name the ref and the step:
 *   "pull localhost:5000/busybox:1: blob sha256:ab12..: digest mismatch".
 *
 * On success *rootfs_out is a newly allocated path, under state_dir (so
 * absolute when state_dir is), the same image_rootfs() gives; caller frees.
 * On failure no ref or rootfs is published; blobs already verified stay for
 * the next try (image_gc collects them if none comes). */
int image_ensure (const char *state_dir, const char *ref, const image_pull_opts_t *opts,
                  char **rootfs_out, orch_err_t *err);

/* Cheap (a few stats, no network, no locks): true when ref can be started
 * without pulling. Safe to call on the agent's loop. */
bool image_present (const char *state_dir, const char *ref);

/* ---- import ------------------------------------------------------------- */

/* image_import() and image_rootfs() are declared in rt.h (their older home);
 * they are implemented here:
 *
 * image_import (state_dir, ref, source, err): source is a root filesystem
 * directory, a plain root filesystem tar (any compression), a docker-archive
 * (`docker save`: manifest.json + layer tars) or an OCI image layout (a
 * directory or tarball with oci-layout, index.json, blobs/). Layers are
 * applied in order with whiteouts; extraction is secure (no "..", no
 * absolute paths, nothing written through a symlink). The ref then points
 * at the new image (atomically replacing what it named).
 *
 * image_rootfs (state_dir, ref, err): the root filesystem of a ref already
 * in the store (no network), newly allocated, or NULL with err. */
int image_import (const char *state_dir, const char *name, const char *source, orch_err_t *err);
char *image_rootfs (const char *state_dir, const char *name, orch_err_t *err);

/* Identity of a stored image. */
typedef struct image_info_s
{
  char id[72];       /* "sha256:<hex>" of the config */
  char manifest[72]; /* "sha256:<hex>" of the manifest, "" when it had none */
  char *rootfs;      /* absolute path; owned by the struct */
  uint64_t size;     /* disk usage of the unpacked rootfs (walks it) */
  int64_t used_ms;   /* wall clock of the last lookup */
} image_info_t;

/* Looks ref up (no network). 0 with *out filled (free with image_info_free),
 * < 0 with err (ENOENT when absent). */
int image_inspect (const char *state_dir, const char *ref, image_info_t *out, orch_err_t *err);
void image_info_free (image_info_t *i);

/* Removes a ref (not the image: that is image_gc's job). 0, or < 0 with err
 * (ENOENT when there was no such ref). */
int image_untag (const char *state_dir, const char *ref, orch_err_t *err);

/* ---- garbage collection --------------------------------------------------- */

typedef struct image_gc_stats_s
{
  uint64_t bytes_before;
  uint64_t bytes_after;
  unsigned images_removed; /* unpacked root filesystems (and their refs) */
  unsigned blobs_removed;
} image_gc_stats_t;

/* Frees disk space in the store. Always removes blobs no ref needs, and
 * stale work directories; then, while the store is above budget_bytes,
 * removes whole images (rootfs, refs, their blobs) least recently used
 * first. Never removes an image named in in_use: each entry is a ref, an
 * image id ("sha256:<hex>", also a manifest digest), or a rootfs path as
 * image_rootfs/image_ensure returned it. Pass what every allocation that
 * is running, starting or being pulled for uses: a rootfs looked up but not
 * yet mounted is not protected otherwise.
 * Images in the older <name>/rootfs layout are left alone.
 * BLOCKING (walks the store), but it does not wait for pulls and imports:
 * while one runs it fails at once with EAGAIN (try again later). stats may
 * be NULL. 0, or < 0 with err. */
int image_gc (const char *state_dir, uint64_t budget_bytes, const char *const *in_use,
              size_t n_in_use, image_gc_stats_t *stats, orch_err_t *err);

#endif
