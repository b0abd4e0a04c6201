/* Helper of tests/integration/test_registry.sh, against a real registry:
 *
 *   registry_check mkoci LAYER.tar LAYER.tar.gz OUTDIR
 *       writes an OCI image layout to OUTDIR with two refs: "1", a
 *       linux/amd64 image of that one layer, and "multi", an index of a
 *       linux/arm64 decoy and that amd64 image (for `skopeo copy --all`)
 *   registry_check pull STATE REF --cancel
 *       image_ensure with its cancel flag already set: the error, exit 1
 *       (the test pulls with orch-image; a cancel flag is the library's
 *       own interface)
 *   registry_check present STATE REF
 *       exit 0 when image_present says so, else 1 */
#define _GNU_SOURCE
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"
#include "orch_util.h"

static void __attribute__ ((format (printf, 1, 2), noreturn)) die (const char *fmt, ...)
{
  va_list ap;
  fprintf (stderr, "registry_check: ");
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fputc ('\n', stderr);
  exit (2);
}

static char *
sha256_hex (const char *data, size_t len)
{
  unsigned char md[32];
  unsigned int n = 0;
  if (EVP_Digest (data, len, md, &n, EVP_sha256 (), NULL) != 1)
    die ("sha256 failed");
  char *out = xmalloc (72);
  strcpy (out, "sha256:");
  for (unsigned i = 0; i < 32; i++)
    sprintf (out + 7 + 2 * i, "%02x", md[i]);
  return out;
}

/* Stores data as a blob of the layout; returns its digest. */
static char *
put_blob (const char *dir, const char *data, size_t len)
{
  char *d = sha256_hex (data, len);
  cleanup_free char *p = xasprintf ("%s/blobs/sha256/%s", dir, d + 7);
  int r = orch_write_file_atomic (p, data, len, 0644);
  if (r < 0)
    die ("write %s", p);
  return d;
}

static char *
read_all (const char *path, size_t *len)
{
  char *data = NULL;
  if (orch_read_file (path, 1U << 30, &data, len) < 0)
    die ("read %s", path);
  return data;
}

/* A one-file gzip'd tar in memory, for the arm64 decoy. */
static char *
tiny_layer (size_t *len)
{
  size_t cap = 1 << 16;
  char *buf = xmalloc (cap);
  struct archive *a = archive_write_new ();
  archive_write_add_filter_gzip (a);
  archive_write_set_format_pax_restricted (a);
  size_t used = 0;
  if (archive_write_open_memory (a, buf, cap, &used) != ARCHIVE_OK)
    die ("archive_write_open_memory");
  struct archive_entry *e = archive_entry_new ();
  archive_entry_set_pathname (e, "ARCH");
  archive_entry_set_filetype (e, AE_IFREG);
  archive_entry_set_perm (e, 0644);
  archive_entry_set_size (e, 6);
  archive_write_header (a, e);
  archive_write_data (a, "arm64\n", 6);
  archive_entry_free (e);
  archive_write_close (a);
  archive_write_free (a);
  *len = used;
  return buf;
}

static char *
image_manifest (const char *dir, const char *arch, const char *diff_id, const char *layer,
                size_t layer_len, size_t *man_len)
{
  cleanup_free char *cfg
      = xasprintf ("{\"architecture\":\"%s\",\"os\":\"linux\",\"config\":{\"Cmd\":[\"/bin/sh\"]},"
                   "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\"]}}",
                   arch, diff_id);
  cleanup_free char *cfg_d = put_blob (dir, cfg, strlen (cfg));
  char *man = xasprintf (
      "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
      "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"%s\","
      "\"size\":%zu},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\","
      "\"digest\":\"%s\",\"size\":%zu}]}",
      cfg_d, strlen (cfg), layer, layer_len);
  *man_len = strlen (man);
  return man;
}

static int
cmd_mkoci (const char *tar, const char *gz, const char *dir)
{
  cleanup_free char *blobs = xasprintf ("%s/blobs/sha256", dir);
  if (orch_mkdir_p (blobs, 0755) < 0)
    die ("mkdir %s", blobs);
  size_t tar_len, gz_len;
  cleanup_free char *tar_data = read_all (tar, &tar_len);
  cleanup_free char *gz_data = read_all (gz, &gz_len);
  cleanup_free char *diff_id = sha256_hex (tar_data, tar_len);
  cleanup_free char *layer = put_blob (dir, gz_data, gz_len);
  size_t man_len;
  cleanup_free char *man = image_manifest (dir, "amd64", diff_id, layer, gz_len, &man_len);
  cleanup_free char *man_d = put_blob (dir, man, man_len);

  size_t tiny_len;
  cleanup_free char *tiny = tiny_layer (&tiny_len);
  cleanup_free char *tiny_d = put_blob (dir, tiny, tiny_len);
  size_t arm_len;
  /* The diff_id of the decoy is not checked by anyone; any digest will do. */
  cleanup_free char *arm = image_manifest (dir, "arm64", tiny_d, tiny_d, tiny_len, &arm_len);
  cleanup_free char *arm_d = put_blob (dir, arm, arm_len);
  cleanup_free char *idx = xasprintf (
      "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
      "\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":"
      "\"%s\",\"size\":%zu,\"platform\":{\"architecture\":\"arm64\",\"os\":\"linux\"}},"
      "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"%s\",\"size\":"
      "%zu,\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}}]}",
      arm_d, arm_len, man_d, man_len);
  cleanup_free char *idx_d = put_blob (dir, idx, strlen (idx));

  cleanup_free char *top = xasprintf (
      "{\"schemaVersion\":2,\"manifests\":["
      "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"%s\",\"size\":"
      "%zu,\"annotations\":{\"org.opencontainers.image.ref.name\":\"1\"}},"
      "{\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"digest\":\"%s\",\"size\":%zu,"
      "\"annotations\":{\"org.opencontainers.image.ref.name\":\"multi\"}}]}",
      man_d, man_len, idx_d, strlen (idx));
  cleanup_free char *p = xasprintf ("%s/index.json", dir);
  if (orch_write_file_atomic (p, top, strlen (top), 0644) < 0)
    die ("write %s", p);
  free (p);
  p = xasprintf ("%s/oci-layout", dir);
  static const char layout[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
  if (orch_write_file_atomic (p, layout, strlen (layout), 0644) < 0)
    die ("write %s", p);
  printf ("%s %s %s\n", man_d, idx_d, layer);
  return 0;
}

/* A pull cancelled before it starts, as the agent's flag would stop one. */
static int
cmd_pull_cancelled (const char *state, const char *ref)
{
  static volatile int cancel = 1;
  image_pull_opts_t opts = { .cancel = &cancel };
  char *rootfs = NULL;
  orch_err_t err = { 0 };
  if (image_ensure (state, ref, &opts, &rootfs, &err) < 0)
    {
      fprintf (stderr, "%s\n", err.msg);
      return 1;
    }
  printf ("%s\n", rootfs);
  free (rootfs);
  return 0;
}

int
main (int argc, char **argv)
{
  if (argc >= 5 && strcmp (argv[1], "mkoci") == 0)
    return cmd_mkoci (argv[2], argv[3], argv[4]);
  if (argc == 5 && strcmp (argv[1], "pull") == 0 && strcmp (argv[4], "--cancel") == 0)
    return cmd_pull_cancelled (argv[2], argv[3]);
  if (argc == 4 && strcmp (argv[1], "present") == 0)
    return image_present (argv[2], argv[3]) ? 0 : 1;
  fprintf (stderr, "usage: registry_check mkoci|pull|present ...\n");
  return 2;
}
