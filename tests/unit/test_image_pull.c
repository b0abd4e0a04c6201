/* image_ensure against a scripted registry on loopback (a small HTTP/1.1
 * server on a thread of the test): the cases a real registry does not
 * produce on demand. A manifest list resolved to linux/amd64 behind
 * bearer-token auth, a blob redirected elsewhere, a registry that lies about
 * a manifest's digest, a tampered blob, a Docker schema 1 manifest, an
 * oversized manifest, and blobs larger than their descriptors say. */
#define _GNU_SOURCE
#include <archive.h>
#include <archive_entry.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"
#include "orch_test.h"
#include "orch_util.h"

typedef struct route_s
{
  char *path;
  int status;
  char *headers; /* extra response header lines, each ending in \r\n */
  char *body;
  size_t len;
  bool needs_token; /* 401 + Bearer challenge unless "Authorization: Bearer tok-1" */
} route_t;

typedef struct srv_s
{
  int fd;
  int port;
  pthread_t th;
  route_t routes[32];
  size_t n_routes;
  char log[8192]; /* "METHOD PATH [auth]\n" per request */
  pthread_mutex_t mu;
} srv_t;

static void
srv_route (srv_t *s, const char *path, int status, const char *headers, const char *body,
           size_t len, bool needs_token)
{
  route_t *r = &s->routes[s->n_routes++];
  r->path = xstrdup (path);
  r->status = status;
  r->headers = xstrdup (headers ? headers : "");
  r->body = xmalloc (len + 1);
  memcpy (r->body, body, len);
  r->len = len;
  r->needs_token = needs_token;
}

static void
send_all (int fd, const char *p, size_t n)
{
  while (n > 0)
    {
      ssize_t w = send (fd, p, n, MSG_NOSIGNAL);
      if (w <= 0)
        return;
      p += w;
      n -= (size_t) w;
    }
}

static void *
srv_run (void *arg)
{
  srv_t *s = arg;
  for (;;)
    {
      int c = accept (s->fd, NULL, NULL);
      if (c < 0)
        return NULL;
      char req[8192];
      size_t got = 0;
      req[0] = '\0';
      while (got < sizeof req - 1 && strstr (req, "\r\n\r\n") == NULL)
        {
          ssize_t n = recv (c, req + got, sizeof req - 1 - got, 0);
          if (n <= 0)
            break;
          got += (size_t) n;
          req[got] = '\0';
          if (req[0] == 0x16)
            break; /* a TLS ClientHello: this server speaks plain http only */
        }
      req[got] = '\0';
      if (req[0] == 0x16 || got == 0)
        {
          close (c);
          continue;
        }
      char method[16] = "", path[2048] = "";
      sscanf (req, "%15s %2047s", method, path);
      bool authed = strstr (req, "Authorization: Bearer tok-1\r\n") != NULL;
      pthread_mutex_lock (&s->mu);
      size_t ll = strlen (s->log);
      snprintf (s->log + ll, sizeof s->log - ll, "%s %s%s\n", method, path,
                authed ? " [auth]" : "");
      pthread_mutex_unlock (&s->mu);
      const route_t *r = NULL;
      for (size_t i = 0; i < s->n_routes && r == NULL; i++)
        if (strcmp (s->routes[i].path, path) == 0)
          r = &s->routes[i];
      char *head;
      const char *body = "";
      size_t blen = 0;
      if (r != NULL && r->needs_token && !authed)
        head = xasprintf ("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer "
                          "realm=\"http://127.0.0.1:%d/auth/token?x=1\",service=\"fake\","
                          "scope=\"repository:app:pull\"\r\nContent-Length: 0\r\n"
                          "Connection: close\r\n\r\n",
                          s->port);
      else if (r != NULL)
        {
          head = xasprintf ("HTTP/1.1 %d X\r\n%sContent-Length: %zu\r\nConnection: close\r\n\r\n",
                            r->status, r->headers, r->len);
          body = r->body;
          blen = r->len;
        }
      else
        {
          static const char nf[]
              = "{\"errors\":[{\"code\":\"NAME_UNKNOWN\",\"message\":\"nope\"}]}";
          head = xasprintf ("HTTP/1.1 404 Not Found\r\nContent-Length: %zu\r\nConnection: "
                            "close\r\n\r\n",
                            strlen (nf));
          body = nf;
          blen = strlen (nf);
        }
      send_all (c, head, strlen (head));
      if (strcmp (method, "HEAD") != 0)
        send_all (c, body, blen);
      free (head);
      close (c);
    }
}

static srv_t *
srv_start (void)
{
  srv_t *s = xcalloc (1, sizeof (*s));
  pthread_mutex_init (&s->mu, NULL);
  s->fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true (s->fd >= 0);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  assert_int_equal (bind (s->fd, (struct sockaddr *) &a, sizeof a), 0);
  assert_int_equal (listen (s->fd, 16), 0);
  socklen_t al = sizeof a;
  assert_int_equal (getsockname (s->fd, (struct sockaddr *) &a, &al), 0);
  s->port = ntohs (a.sin_port);
  return s;
}

static void
srv_go (srv_t *s)
{
  assert_int_equal (pthread_create (&s->th, NULL, srv_run, s), 0);
}

static void
srv_stop (srv_t *s)
{
  shutdown (s->fd, SHUT_RDWR);
  close (s->fd);
  pthread_join (s->th, NULL);
  for (size_t i = 0; i < s->n_routes; i++)
    {
      free (s->routes[i].path);
      free (s->routes[i].headers);
      free (s->routes[i].body);
    }
  pthread_mutex_destroy (&s->mu);
  free (s);
}

static char *
digest_of (const char *data, size_t len)
{
  unsigned char md[32];
  unsigned int n = 0;
  assert_int_equal (EVP_Digest (data, len, md, &n, EVP_sha256 (), NULL), 1);
  char *out = xmalloc (72);
  strcpy (out, "sha256:");
  for (unsigned i = 0; i < 32; i++)
    sprintf (out + 7 + 2 * i, "%02x", md[i]);
  return out;
}

/* A gzip'd layer holding one file. */
static char *
make_layer (const char *name, const char *content, size_t *len)
{
  size_t cap = 1 << 16;
  char *buf = xmalloc (cap);
  struct archive *a = archive_write_new ();
  assert_int_equal (archive_write_add_filter_gzip (a), ARCHIVE_OK);
  assert_int_equal (archive_write_set_format_pax_restricted (a), ARCHIVE_OK);
  assert_int_equal (archive_write_open_memory (a, buf, cap, len), ARCHIVE_OK);
  struct archive_entry *e = archive_entry_new ();
  archive_entry_set_pathname (e, name);
  archive_entry_set_filetype (e, AE_IFREG);
  archive_entry_set_perm (e, 0644);
  archive_entry_set_size (e, (la_int64_t) strlen (content));
  assert_int_equal (archive_write_header (a, e), ARCHIVE_OK);
  assert_int_equal (archive_write_data (a, content, strlen (content)),
                    (la_ssize_t) strlen (content));
  archive_entry_free (e);
  assert_int_equal (archive_write_close (a), ARCHIVE_OK);
  archive_write_free (a);
  return buf;
}

typedef struct img_s
{
  char *layer;
  size_t layer_len;
  char *layer_d;
  char *cfg;
  char *cfg_d;
  char *man;
  char *man_d;
} img_t;

/* Serves an image (config + one layer) of repo "app"; returns its parts. */
static void
serve_image (srv_t *s, img_t *im, const char *arch, const char *file, bool token)
{
  im->layer = make_layer (file, arch, &im->layer_len);
  im->layer_d = digest_of (im->layer, im->layer_len);
  im->cfg = xasprintf ("{\"architecture\":\"%s\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
                       "\"diff_ids\":[]}}",
                       arch);
  im->cfg_d = digest_of (im->cfg, strlen (im->cfg));
  im->man = xasprintf ("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution."
                       "manifest.v2+json\",\"config\":{\"mediaType\":\"application/"
                       "vnd.docker.container.image.v1+json\",\"digest\":\"%s\",\"size\":%zu},"
                       "\"layers\":[{\"mediaType\":\"application/"
                       "vnd.docker.image.rootfs.diff.tar.gzip\",\"digest\":\"%s\",\"size\":%zu}]}",
                       im->cfg_d, strlen (im->cfg), im->layer_d, im->layer_len);
  im->man_d = digest_of (im->man, strlen (im->man));
  char *p = xasprintf ("/v2/app/blobs/%s", im->cfg_d);
  srv_route (s, p, 200, NULL, im->cfg, strlen (im->cfg), token);
  free (p);
  p = xasprintf ("/v2/app/manifests/%s", im->man_d);
  srv_route (s, p, 200, "Content-Type: application/vnd.docker.distribution.manifest.v2+json\r\n",
             im->man, strlen (im->man), token);
  free (p);
}

static void
img_free (img_t *im)
{
  free (im->layer);
  free (im->layer_d);
  free (im->cfg);
  free (im->cfg_d);
  free (im->man);
  free (im->man_d);
}

static char *
make_tmpdir (void)
{
  char *d = xstrdup ("/tmp/orch-test-image-pull-XXXXXX");
  assert_non_null (mkdtemp (d));
  return d;
}

static void
assert_nothing_published (const char *stdir)
{
  char *d = xasprintf ("%s/images/refs", stdir);
  char *cmd = xasprintf ("test -z \"$(ls -A '%s' 2>/dev/null)\"", d);
  assert_int_equal (system (cmd), 0);
  free (cmd);
  free (d);
  d = xasprintf ("%s/images/rootfs", stdir);
  cmd = xasprintf ("test -z \"$(ls -A '%s' 2>/dev/null)\"", d);
  assert_int_equal (system (cmd), 0);
  free (cmd);
  free (d);
}

static void
test_pull_index_behind_token_with_redirect (void **state)
{
  srv_t *s = srv_start ();
  img_t arm = { 0 }, amd = { 0 };
  serve_image (s, &arm, "arm64", "ARM", true);
  serve_image (s, &amd, "amd64", "AMD", true);
  /* The amd64 layer is redirected (as registries do to object storage);
   * the arm64 one is never asked for. */
  char *p = xasprintf ("/v2/app/blobs/%s", amd.layer_d);
  char *loc = xasprintf ("Location: http://127.0.0.1:%d/storage/amd-layer\r\n", s->port);
  srv_route (s, p, 307, loc, "", 0, true);
  srv_route (s, "/storage/amd-layer", 200, NULL, amd.layer, amd.layer_len, false);
  char *idx = xasprintf (
      "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution.manifest.list."
      "v2+json\",\"manifests\":[{\"mediaType\":\"application/vnd.docker.distribution.manifest."
      "v2+json\",\"digest\":\"%s\",\"size\":%zu,\"platform\":{\"architecture\":\"arm64\",\"os\":"
      "\"linux\"}},{\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","
      "\"digest\":\"%s\",\"size\":%zu,\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}}]"
      "}",
      arm.man_d, strlen (arm.man), amd.man_d, strlen (amd.man));
  char *idx_d = digest_of (idx, strlen (idx));
  char *hdr = xasprintf ("Content-Type: application/vnd.docker.distribution.manifest.list.v2+json"
                         "\r\nDocker-Content-Digest: %s\r\n",
                         idx_d);
  srv_route (s, "/v2/app/manifests/1", 200, hdr, idx, strlen (idx), true);
  srv_route (s, "/v2/", 401, NULL, "", 0, false);
  srv_route (s, "/auth/token?x=1&scope=repository%3Aapp%3Apull&service=fake", 200, NULL,
             "{\"token\":\"tok-1\"}", 17, false);
  srv_go (s);

  char *tmp = make_tmpdir ();
  char *ref = xasprintf ("127.0.0.1:%d/app:1", s->port);
  char *rootfs = NULL;
  orch_err_t err = { 0 };
  image_pull_opts_t opts = { 0 };
  if (image_ensure (tmp, ref, &opts, &rootfs, &err) < 0)
    fail_msg ("%s\nrequests:\n%s", err.msg, s->log);
  char *f = xasprintf ("%s/AMD", rootfs);
  assert_int_equal (access (f, R_OK), 0);
  free (f);
  f = xasprintf ("%s/ARM", rootfs);
  assert_int_equal (access (f, F_OK), -1);
  free (f);
  /* One token ask, then authorized requests; nothing of arm64 fetched. */
  if (strstr (s->log, "GET /auth/token?x=1&scope=repository%3Aapp%3Apull&service=fake\n") == NULL
      || strstr (s->log, "GET /v2/app/manifests/1 [auth]\n") == NULL
      || strstr (s->log, "GET /storage/amd-layer") == NULL || strstr (s->log, arm.layer_d) != NULL)
    fail_msg ("requests:\n%s", s->log);
  /* The image id is the amd64 config's digest. */
  image_info_t info;
  assert_int_equal (image_inspect (tmp, ref, &info, &err), 0);
  assert_string_equal (info.id, amd.cfg_d);
  assert_string_equal (info.manifest, amd.man_d);
  image_info_free (&info);

  free (rootfs);
  free (ref);
  orch_rm_rf (tmp);
  free (tmp);
  srv_stop (s);
  free (hdr);
  free (idx_d);
  free (idx);
  free (loc);
  free (p);
  img_free (&arm);
  img_free (&amd);
}

/* Runs one pull of 127.0.0.1:PORT/app:1 that must fail; returns the error. */
static orch_err_t
pull_fails (srv_t *s, const image_pull_opts_t *opts)
{
  char *tmp = make_tmpdir ();
  char *ref = xasprintf ("127.0.0.1:%d/app:1", s->port);
  char *rootfs = NULL;
  orch_err_t err = { 0 };
  if (image_ensure (tmp, ref, opts, &rootfs, &err) == 0)
    fail_msg ("pull succeeded: %s", rootfs);
  assert_null (rootfs);
  assert_non_null (strstr (err.msg, ref));
  assert_false (image_present (tmp, ref));
  assert_nothing_published (tmp);
  free (ref);
  orch_rm_rf (tmp);
  free (tmp);
  return err;
}

static void
test_pull_refuses_lying_manifest_digest (void **state)
{
  srv_t *s = srv_start ();
  img_t im = { 0 };
  serve_image (s, &im, "amd64", "F", false);
  srv_route (s, "/v2/", 200, NULL, "{}", 2, false);
  char *hdr = xasprintf ("Docker-Content-Digest: sha256:%064d\r\n", 0);
  srv_route (s, "/v2/app/manifests/1", 200, hdr, im.man, strlen (im.man), false);
  srv_go (s);
  orch_err_t err = pull_fails (s, NULL);
  assert_int_equal (err.code, EBADMSG);
  assert_non_null (strstr (err.msg, "manifest 1: digest mismatch"));
  srv_stop (s);
  free (hdr);
  img_free (&im);
}

static void
test_pull_refuses_tampered_blob (void **state)
{
  srv_t *s = srv_start ();
  img_t im = { 0 };
  serve_image (s, &im, "amd64", "F", false);
  srv_route (s, "/v2/", 200, NULL, "{}", 2, false);
  srv_route (s, "/v2/app/manifests/1", 200, NULL, im.man, strlen (im.man), false);
  /* Same size, one byte changed. */
  char *bad = xmalloc (im.layer_len);
  memcpy (bad, im.layer, im.layer_len);
  bad[im.layer_len / 2] ^= 0x55;
  char *p = xasprintf ("/v2/app/blobs/%s", im.layer_d);
  srv_route (s, p, 200, NULL, bad, im.layer_len, false);
  srv_go (s);
  orch_err_t err = pull_fails (s, NULL);
  assert_int_equal (err.code, EBADMSG);
  char *want = xasprintf ("blob %s: digest mismatch", im.layer_d);
  if (strstr (err.msg, want) == NULL)
    fail_msg ("%s", err.msg);
  free (want);
  srv_stop (s);
  free (p);
  free (bad);
  img_free (&im);
}

static void
test_pull_refuses_oversized_blob (void **state)
{
  srv_t *s = srv_start ();
  img_t im = { 0 };
  serve_image (s, &im, "amd64", "F", false);
  srv_route (s, "/v2/", 200, NULL, "{}", 2, false);
  srv_route (s, "/v2/app/manifests/1", 200, NULL, im.man, strlen (im.man), false);
  /* More bytes than the descriptor's size: cut off while streaming. */
  size_t big = im.layer_len + 100000;
  char *data = xcalloc (1, big);
  memcpy (data, im.layer, im.layer_len);
  char *p = xasprintf ("/v2/app/blobs/%s", im.layer_d);
  srv_route (s, p, 200, NULL, data, big, false);
  srv_go (s);
  orch_err_t err = pull_fails (s, NULL);
  assert_int_equal (err.code, EFBIG);
  assert_non_null (strstr (err.msg, "larger than the limit"));
  /* A per-blob limit below the descriptor's size refuses before fetching. */
  image_pull_opts_t opts = { .max_blob_bytes = 10 };
  err = pull_fails (s, &opts);
  assert_int_equal (err.code, EFBIG);
  assert_non_null (strstr (err.msg, "more than the limit of 10"));
  srv_stop (s);
  free (p);
  free (data);
  img_free (&im);
}

static void
test_pull_refuses_schema1_and_huge_manifests (void **state)
{
  srv_t *s = srv_start ();
  srv_route (s, "/v2/", 200, NULL, "{}", 2, false);
  static const char v1[] = "{\"schemaVersion\":1,\"name\":\"app\",\"tag\":\"1\",\"fsLayers\":[]}";
  srv_route (s, "/v2/app/manifests/1", 200, NULL, v1, strlen (v1), false);
  size_t huge = IMAGE_MAX_MANIFEST + 10;
  char *big = xmalloc (huge);
  memset (big, ' ', huge);
  big[0] = '{';
  big[huge - 1] = '}';
  srv_route (s, "/v2/app/manifests/2", 200, NULL, big, huge, false);
  srv_go (s);
  orch_err_t err = pull_fails (s, NULL);
  assert_int_equal (err.code, ENOTSUP);
  assert_non_null (strstr (err.msg, "schema 1"));

  char *tmp = make_tmpdir ();
  char *ref = xasprintf ("127.0.0.1:%d/app:2", s->port);
  char *rootfs = NULL;
  assert_true (image_ensure (tmp, ref, NULL, &rootfs, &err) < 0);
  assert_int_equal (err.code, EFBIG);
  free (ref);
  /* A missing repository: the registry's own words come through. */
  ref = xasprintf ("127.0.0.1:%d/other:1", s->port);
  assert_true (image_ensure (tmp, ref, NULL, &rootfs, &err) < 0);
  assert_int_equal (err.code, ENOENT);
  assert_non_null (strstr (err.msg, "HTTP 404: NAME_UNKNOWN: nope"));
  free (ref);
  orch_rm_rf (tmp);
  free (tmp);
  srv_stop (s);
  free (big);
}

static const struct CMUnitTest tests[] = {
  cmocka_unit_test (test_pull_index_behind_token_with_redirect),
  cmocka_unit_test (test_pull_refuses_lying_manifest_digest),
  cmocka_unit_test (test_pull_refuses_tampered_blob),
  cmocka_unit_test (test_pull_refuses_oversized_blob),
  cmocka_unit_test (test_pull_refuses_schema1_and_huge_manifests),
};

ORCH_TEST_MAIN (tests)
