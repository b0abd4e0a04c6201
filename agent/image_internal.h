/* What the two halves of the image store share (image.h has the layout).
 *
 * image_ref.c: references, ref files and lookups — no network, no archive
 * or crypto library, cheap enough for the agent daemon, which links only
 * this half (orch_image_ref).
 * image_store.c: blobs, import, registry pull and GC (libarchive, libcurl,
 * OpenSSL), linked by the orch-image helper and orchctl (orch_image). */
#ifndef ORCH_IMAGE_INTERNAL_H
#define ORCH_IMAGE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "image.h"

#define IMAGE_DIGEST_LEN 71 /* "sha256:" + 64 */

/* A ref file's contents: the manifest digest ("" for an image that had
 * none) and the image id (its config digest). */
typedef struct image_refrec_s
{
  char manifest[IMAGE_DIGEST_LEN + 1];
  char id[IMAGE_DIGEST_LEN + 1];
} image_refrec_t;

/* 64 lowercase hex digits and the end of s. */
bool image__is_hex64 (const char *s);
/* "sha256:<64 lowercase hex>" is the only algorithm accepted. */
bool image__digest_valid (const char *d);

/* <images>/refs/<file> of a canonical ref; caller frees. */
char *image__ref_file (const char *images, const char *canon);
/* 0 with *rec, or -errno (-EBADMSG for a file without an id). */
int image__refrec_read (const char *path, image_refrec_t *rec);
/* <images>/rootfs/<hex of id>; caller frees. */
char *image__rootfs_dir (const char *images, const char *id);
/* Marks an unpacked image as just used (GC goes least recently used first). */
void image__touch_used (const char *dir);

/* Finds ref in the store without network. 0 with *rec (and the rootfs dir
 * path when dir_out), -ENOENT when absent. Legacy <name>/rootfs images come
 * back with an empty rec and their rootfs in *legacy (when legacy != NULL). */
int image__lookup (const char *images, const image_ref_t *ref, image_refrec_t *rec,
                   char **dir_out, char **legacy);
/* image__lookup by a ref string under state_dir, touching the image's
 * "used" mark: 0 with *rootfs_out (newly allocated) and *rec when rec,
 * or -1 with err (ENOENT: not in the store). */
int image__find (const char *state_dir, const char *refstr, char **rootfs_out,
                 image_refrec_t *rec, orch_err_t *err);

/* Disk usage of a tree (st_blocks, symlinks not followed), 0 when absent. */
uint64_t image__du (const char *path);

#endif
