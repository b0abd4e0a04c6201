/* Drives the etcd store against a real etcd (run by test_store_etcd.sh):
 *   store_etcd_check http://127.0.0.1:PORT
 * Exits 0 when every check holds, 1 with a message on the first that does
 * not. Each step issues requests and runs the loop until their callbacks
 * have run, with a deadline so that a lost callback fails instead of
 * hanging. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "orch_util.h"
#include "store.h"

static uv_loop_t *loop;
static char prefix[128];
static const char *endpoint;

static void __attribute__ ((format (printf, 1, 2), noreturn)) die (const char *fmt, ...)
{
  va_list ap;

  fprintf (stderr, "store_etcd_check: FAIL: ");
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fputc ('\n', stderr);
  exit (1);
}

#define CHECK(cond, ...)                                                                           \
  do                                                                                               \
    {                                                                                              \
      if (!(cond))                                                                                 \
        die (__VA_ARGS__);                                                                         \
    }                                                                                              \
  while (0)

typedef struct res_s
{
  int calls;
  int status;
  orch_err_t err;
  store_kv_t *kvs;
  size_t n;
  int64_t revision;
  bool succeeded;
  int64_t lease_id;
  int64_t ttl;
} res_t;

static void
res_reset (res_t *r)
{
  size_t i;
  for (i = 0; i < r->n; i++)
    {
      free (r->kvs[i].key);
      free (r->kvs[i].value);
    }
  free (r->kvs);
  memset (r, 0, sizeof (*r));
}

/* Every callback stops the loop's current turn: a completion that happens in
 * a timer callback would otherwise leave uv_run (UV_RUN_ONCE) blocked in its
 * poll phase until some other event. */
static void
note (res_t *r, int status, const orch_err_t *err)
{
  uv_stop (loop);
  r->calls++;
  r->status = status;
  if (status < 0 && err != NULL)
    r->err = *err;
}

static void
range_cb (void *ctx, int status, const orch_err_t *err, const store_kv_t *kvs, size_t n,
          int64_t revision)
{
  res_t *r = ctx;
  size_t i;

  note (r, status, err);
  r->revision = revision;
  r->kvs = n ? xcalloc (n, sizeof (*r->kvs)) : NULL;
  for (i = 0; i < n; i++)
    {
      r->kvs[i] = kvs[i];
      r->kvs[i].key = xstrdup (kvs[i].key);
      r->kvs[i].value = xmalloc (kvs[i].value_len + 1);
      memcpy (r->kvs[i].value, kvs[i].value, kvs[i].value_len + 1);
    }
  r->n = n;
}

static void
txn_cb (void *ctx, int status, const orch_err_t *err, bool succeeded, int64_t revision)
{
  res_t *r = ctx;
  note (r, status, err);
  r->succeeded = succeeded;
  r->revision = revision;
}

static void
lease_cb (void *ctx, int status, const orch_err_t *err, int64_t lease_id, int64_t ttl_s)
{
  res_t *r = ctx;
  note (r, status, err);
  r->lease_id = lease_id;
  r->ttl = ttl_s;
}

typedef struct wlog_s
{
  size_t n;
  store_ev_type_t type[512];
  char *key[512];
  int64_t rev[512];
  int64_t last_rev;
  int ended;
  orch_err_t end_err;
} wlog_t;

static void
watch_cb (void *ctx, int status, const orch_err_t *err, const store_event_t *evs, size_t n,
          int64_t revision)
{
  wlog_t *w = ctx;
  size_t i;

  uv_stop (loop);
  if (status < 0)
    {
      w->ended++;
      if (err)
        w->end_err = *err;
      return;
    }
  for (i = 0; i < n; i++)
    {
      CHECK (w->n < 512, "too many watch events");
      w->type[w->n] = evs[i].type;
      w->key[w->n] = xstrdup (evs[i].kv.key);
      w->rev[w->n] = evs[i].kv.mod_revision;
      CHECK (evs[i].kv.mod_revision >= w->last_rev,
             "watch events out of order: %" PRId64 " after %" PRId64, evs[i].kv.mod_revision,
             w->last_rev);
      w->last_rev = evs[i].kv.mod_revision;
      w->n++;
    }
  (void) revision;
}

static void
wlog_reset (wlog_t *w)
{
  size_t i;
  for (i = 0; i < w->n; i++)
    free (w->key[i]);
  memset (w, 0, sizeof (*w));
}

static bool timed_out;
static void
deadline_cb (uv_timer_t *t)
{
  timed_out = true;
}

/* Runs the loop until *counter reaches want, or dies after 15 s. */
static void
wait_for (const int *counter, int want, const char *what)
{
  uv_timer_t deadline;

  timed_out = false;
  uv_timer_init (loop, &deadline);
  uv_timer_start (&deadline, deadline_cb, 15000, 0);
  while (*counter < want && !timed_out)
    uv_run (loop, UV_RUN_ONCE);
  uv_timer_stop (&deadline);
  uv_close ((uv_handle_t *) &deadline, NULL);
  uv_run (loop, UV_RUN_NOWAIT);
  CHECK (*counter >= want, "%s: no callback within 15 s", what);
}

static bool
rev_reached (wlog_t *w, int64_t rev)
{
  return w->last_rev >= rev;
}

static void
wait_watch (wlog_t *w, int64_t rev)
{
  uv_timer_t deadline;

  timed_out = false;
  uv_timer_init (loop, &deadline);
  uv_timer_start (&deadline, deadline_cb, 15000, 0);
  while (!rev_reached (w, rev) && !timed_out && w->ended == 0)
    uv_run (loop, UV_RUN_ONCE);
  uv_timer_stop (&deadline);
  uv_close ((uv_handle_t *) &deadline, NULL);
  uv_run (loop, UV_RUN_NOWAIT);
  CHECK (rev_reached (w, rev) && w->ended == 0,
         "watch did not reach revision %" PRId64 " (at %" PRId64 ", ended %d: %s)", rev,
         w->last_rev, w->ended, w->end_err.msg);
}

static char *
k (const char *suffix)
{
  return xasprintf ("%s%s", prefix, suffix);
}

static void
do_range (store_t *s, const char *p, res_t *r)
{
  orch_err_t err = { 0 };

  res_reset (r);
  CHECK (s->ops->range_prefix (s, p, range_cb, r, &err) == 0, "range %s: %s", p, err.msg);
  CHECK (r->calls == 0, "range callback ran inside the call");
  {
    cleanup_free char *what = xasprintf ("range %s on store %p", p, (void *) s);
    wait_for (&r->calls, 1, what);
  }
  CHECK (r->calls == 1, "range callback ran %d times", r->calls);
}

static void
do_txn (store_t *s, const store_cmp_t *cmps, size_t ncmp, const store_op_t *ops, size_t nops,
        res_t *r)
{
  orch_err_t err = { 0 };

  res_reset (r);
  CHECK (s->ops->txn (s, cmps, ncmp, ops, nops, txn_cb, r, &err) == 0, "txn: %s", err.msg);
  wait_for (&r->calls, 1, "txn");
}

static int64_t
do_put (store_t *s, const char *key, const char *val, size_t len, int64_t lease)
{
  store_op_t op
      = { .type = STORE_OP_PUT, .key = key, .value = val, .value_len = len, .lease = lease };
  res_t r = { 0 };

  do_txn (s, NULL, 0, &op, 1, &r);
  CHECK (r.status == 0 && r.succeeded, "put %s: status %d succeeded %d: %s", key, r.status,
         r.succeeded, r.err.msg);
  return r.revision;
}

/* A loopback port nothing listens on: bound, never listened, then closed. */
static int
dead_port (void)
{
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  socklen_t alen = sizeof (a);
  int fd = socket (AF_INET, SOCK_STREAM, 0), port;

  CHECK (fd >= 0, "socket: %s", strerror (errno));
  CHECK (bind (fd, (struct sockaddr *) &a, sizeof (a)) == 0, "bind: %s", strerror (errno));
  CHECK (getsockname (fd, (struct sockaddr *) &a, &alen) == 0, "getsockname");
  port = ntohs (a.sin_port);
  close (fd);
  return port;
}

/* Compacts etcd up to rev, synchronously (test-only; the store has no
 * compaction call and nothing else runs on the loop meanwhile). */
static void
compact (int64_t rev)
{
  CURL *e = curl_easy_init ();
  cleanup_free char *url = xasprintf ("%s/v3/kv/compaction", endpoint);
  cleanup_free char *body = xasprintf ("{\"revision\":\"%" PRId64 "\",\"physical\":true}", rev);
  FILE *devnull = fopen ("/dev/null", "w");
  CURLcode rc;
  long http = 0;

  CHECK (e != NULL && devnull != NULL, "curl_easy_init");
  curl_easy_setopt (e, CURLOPT_URL, url);
  curl_easy_setopt (e, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt (e, CURLOPT_WRITEDATA, devnull);
  curl_easy_setopt (e, CURLOPT_TIMEOUT, 10L);
  rc = curl_easy_perform (e);
  curl_easy_getinfo (e, CURLINFO_RESPONSE_CODE, &http);
  curl_easy_cleanup (e);
  fclose (devnull);
  CHECK (rc == CURLE_OK && http == 200, "compaction: %s (HTTP %ld)", curl_easy_strerror (rc), http);
}

int
main (int argc, char **argv)
{
  uv_loop_t l;
  orch_err_t err = { 0 };
  store_t *s;
  res_t r = { 0 };
  wlog_t w = { 0 };
  int64_t r0, ra1, rb, ra2, rc, rbatch, rdel, rlease_del, rfinal;
  size_t i;

  if (argc != 2)
    {
      fprintf (stderr, "usage: store_etcd_check ENDPOINT\n");
      return 2;
    }
  endpoint = argv[1];
  snprintf (prefix, sizeof (prefix), "/orch-check/%ld/", (long) getpid ());
  uv_loop_init (&l);
  loop = &l;

  s = store_etcd_new (loop, endpoint, &err);
  CHECK (s != NULL, "store_etcd_new: %s", err.msg);
  CHECK (strcmp (s->ops->name, "etcd") == 0, "name is %s", s->ops->name);

  /* An empty prefix: no kvs, a revision. */
  do_range (s, prefix, &r);
  CHECK (r.status == 0, "range: %s", r.err.msg);
  CHECK (r.n == 0 && r.revision > 0, "empty range: n %zu revision %" PRId64, r.n, r.revision);
  r0 = r.revision;

  /* The watch starts right after what was read, as the scheduler's does. */
  CHECK (s->ops->watch_prefix (s, prefix, r0 + 1, watch_cb, &w, &err) > 0, "watch: %s", err.msg);
  CHECK (s->ops->watch_prefix (s, prefix, r0 + 1, watch_cb, &w, &err) < 0,
         "a second watch was accepted");

  {
    cleanup_free char *a = k ("a"), *b = k ("b"), *c = k ("c");
    store_cmp_t cas = { .key = a, .target = STORE_CMP_MOD_REVISION };
    store_cmp_t absent = { .key = a, .target = STORE_CMP_CREATE_REVISION, .revision = 0 };
    store_op_t put_a = { .type = STORE_OP_PUT, .key = a, .value = "2", .value_len = 1 };
    store_op_t put_c = { .type = STORE_OP_PUT, .key = c, .value = "c", .value_len = 1 };

    ra1 = do_put (s, a, "1", 1, 0);
    CHECK (ra1 > r0, "put revision %" PRId64 " not after %" PRId64, ra1, r0);
    rb = do_put (s, b, "x\0y", 3, 0);
    do_range (s, prefix, &r);
    CHECK (r.status == 0 && r.n == 2, "range after puts: status %d n %zu", r.status, r.n);
    CHECK (strcmp (r.kvs[0].key, a) == 0 && strcmp (r.kvs[1].key, b) == 0, "range order");
    CHECK (r.kvs[0].create_revision == ra1 && r.kvs[0].mod_revision == ra1, "a's revisions");
    CHECK (r.kvs[1].value_len == 3 && memcmp (r.kvs[1].value, "x\0y", 3) == 0,
           "binary value came back as %zu bytes", r.kvs[1].value_len);
    CHECK (r.revision == rb, "range revision %" PRId64 " != %" PRId64, r.revision, rb);

    /* CAS: succeeds once on a's mod_revision, then fails (status 0). */
    cas.revision = ra1;
    do_txn (s, &cas, 1, &put_a, 1, &r);
    CHECK (r.status == 0 && r.succeeded, "CAS should succeed: %s", r.err.msg);
    ra2 = r.revision;
    CHECK (ra2 == rb + 1, "CAS revision");
    do_txn (s, &cas, 1, &put_a, 1, &r);
    CHECK (r.status == 0 && !r.succeeded, "stale CAS should fail with status 0 (status %d: %s)",
           r.status, r.err.msg);
    CHECK (r.revision == ra2, "failed CAS changed the revision");

    /* Create-if-absent. */
    do_txn (s, &absent, 1, &put_a, 1, &r);
    CHECK (r.status == 0 && !r.succeeded, "create-if-absent on an existing key succeeded");
    absent.key = c;
    do_txn (s, &absent, 1, &put_c, 1, &r);
    CHECK (r.status == 0 && r.succeeded, "create-if-absent on a new key failed: %s", r.err.msg);
    rc = r.revision;

    /* etcd refuses a put and a delete of one key in one txn. */
    {
      store_op_t dup[] = { put_a, { .type = STORE_OP_DELETE, .key = a } };
      do_txn (s, NULL, 0, dup, 2, &r);
      CHECK (r.status == -1 && strstr (r.err.msg, "duplicate key") != NULL,
             "duplicate-key txn: status %d: %s", r.status, r.err.msg);
    }
  }

  /* 128 ops in one txn; 129 refused before sending. */
  {
    store_op_t ops[STORE_MAX_TXN_OPS + 1];
    char *keys[STORE_MAX_TXN_OPS + 1];
    cleanup_free char *bp = k ("batch/");

    for (i = 0; i <= STORE_MAX_TXN_OPS; i++)
      {
        keys[i] = xasprintf ("%sbatch/%03zu", prefix, i);
        ops[i] = (store_op_t){ .type = STORE_OP_PUT, .key = keys[i], .value = "v", .value_len = 1 };
      }
    orch_err_clear (&err);
    CHECK (s->ops->txn (s, NULL, 0, ops, STORE_MAX_TXN_OPS + 1, txn_cb, &r, &err) < 0,
           "129 ops accepted");
    CHECK (err.code == E2BIG, "129 ops: %s", err.msg);
    do_txn (s, NULL, 0, ops, STORE_MAX_TXN_OPS, &r);
    CHECK (r.status == 0 && r.succeeded, "128-op txn: %s", r.err.msg);
    rbatch = r.revision;
    CHECK (rbatch == rc + 1, "128 ops took more than one revision");
    do_range (s, bp, &r);
    CHECK (r.n == STORE_MAX_TXN_OPS, "batch range has %zu keys", r.n);
    CHECK (r.kvs[STORE_MAX_TXN_OPS - 1].mod_revision == rbatch, "batch key revision");
    for (i = 0; i <= STORE_MAX_TXN_OPS; i++)
      free (keys[i]);

    /* Delete the prefix: everything under batch/ goes in one revision. */
    ops[0] = (store_op_t){ .type = STORE_OP_DELETE_PREFIX, .key = bp };
    do_txn (s, NULL, 0, ops, 1, &r);
    CHECK (r.status == 0 && r.succeeded, "delete prefix: %s", r.err.msg);
    rdel = r.revision;
    do_range (s, bp, &r);
    CHECK (r.n == 0, "%zu keys left after delete prefix", r.n);
    do_range (s, prefix, &r);
    CHECK (r.n == 3, "delete prefix went beyond its prefix: %zu keys left", r.n);
  }

  /* A value near the request limit (curl must not wait for 100-continue). */
  {
    size_t big_len = 1024 * 1024;
    cleanup_free char *big = xmalloc (big_len);
    cleanup_free char *bk = k ("big");
    for (i = 0; i < big_len; i++)
      big[i] = (char) (i * 7);
    do_put (s, bk, big, big_len, 0);
    do_range (s, bk, &r);
    CHECK (r.n == 1 && r.kvs[0].value_len == big_len && memcmp (r.kvs[0].value, big, big_len) == 0,
           "1 MiB value did not round-trip");
    {
      store_op_t del = { .type = STORE_OP_DELETE, .key = bk };
      do_txn (s, NULL, 0, &del, 1, &r);
      CHECK (r.status == 0, "delete big: %s", r.err.msg);
    }
  }

  /* Leases: grant, attach, keep alive, revoke deletes attached keys. */
  {
    cleanup_free char *n1 = k ("nodes/n1"), *n2 = k ("nodes/n2"), *np = k ("nodes/");
    int64_t id;

    res_reset (&r);
    CHECK (s->ops->lease_grant (s, 30, lease_cb, &r, &err) == 0, "grant: %s", err.msg);
    wait_for (&r.calls, 1, "lease grant");
    CHECK (r.status == 0 && r.lease_id != 0 && r.ttl == 30,
           "grant: status %d id %" PRId64 " ttl %" PRId64 ": %s", r.status, r.lease_id, r.ttl,
           r.err.msg);
    id = r.lease_id;
    do_put (s, n1, "up", 2, id);
    do_put (s, n2, "up", 2, id);
    do_range (s, n1, &r);
    CHECK (r.n == 1 && r.kvs[0].lease == id, "key not attached to the lease");

    res_reset (&r);
    CHECK (s->ops->lease_keepalive (s, id, lease_cb, &r, &err) == 0, "keepalive: %s", err.msg);
    wait_for (&r.calls, 1, "keepalive");
    CHECK (r.status == 0 && r.lease_id == id && r.ttl > 0 && r.ttl <= 30,
           "keepalive: status %d ttl %" PRId64 ": %s", r.status, r.ttl, r.err.msg);

    res_reset (&r);
    CHECK (s->ops->lease_revoke (s, id, lease_cb, &r, &err) == 0, "revoke: %s", err.msg);
    wait_for (&r.calls, 1, "revoke");
    CHECK (r.status == 0, "revoke: %s", r.err.msg);
    do_range (s, np, &r);
    CHECK (r.n == 0, "revoke left %zu attached keys", r.n);
    rlease_del = r.revision;

    res_reset (&r);
    CHECK (s->ops->lease_keepalive (s, id, lease_cb, &r, &err) == 0, "keepalive: %s", err.msg);
    wait_for (&r.calls, 1, "keepalive after revoke");
    CHECK (r.status == 0 && r.ttl == 0, "keepalive of a revoked lease: status %d ttl %" PRId64,
           r.status, r.ttl);

    res_reset (&r);
    CHECK (s->ops->lease_revoke (s, id, lease_cb, &r, &err) == 0, "revoke: %s", err.msg);
    wait_for (&r.calls, 1, "second revoke");
    CHECK (r.status == -1 && r.err.code == ENOENT, "second revoke: status %d: %s", r.status,
           r.err.msg);
  }

  /* The watch saw every change, in order. */
  wait_watch (&w, rlease_del);
  {
    static const struct
    {
      store_ev_type_t type;
      const char *suffix;
    } want[] = {
      { STORE_EV_PUT, "a" },
      { STORE_EV_PUT, "b" },
      { STORE_EV_PUT, "a" },
      { STORE_EV_PUT, "c" },
    };
    cleanup_free char *n1 = k ("nodes/n1"), *n2 = k ("nodes/n2"), *b0 = k ("batch/000");
    size_t j = 0, puts_batch = 0, dels_batch = 0, n_del_nodes = 0;

    for (i = 0; i < ORCH_ARRAY_LEN (want); i++, j++)
      {
        cleanup_free char *key = k (want[i].suffix);
        CHECK (j < w.n && w.type[j] == want[i].type && strcmp (w.key[j], key) == 0,
               "watch event %zu: want %s %s, got %s %s", j,
               want[i].type == STORE_EV_PUT ? "PUT" : "DELETE", key,
               j < w.n ? (w.type[j] == STORE_EV_PUT ? "PUT" : "DELETE") : "-",
               j < w.n ? w.key[j] : "-");
      }
    CHECK (w.rev[0] == ra1 && w.rev[1] == rb && w.rev[2] == ra2 && w.rev[3] == rc,
           "watch revisions");
    for (; j < w.n; j++)
      {
        if (w.rev[j] == rbatch && w.type[j] == STORE_EV_PUT)
          puts_batch++;
        if (w.rev[j] == rdel && w.type[j] == STORE_EV_DELETE)
          dels_batch++;
        if (w.rev[j] == rlease_del && w.type[j] == STORE_EV_DELETE
            && (strcmp (w.key[j], n1) == 0 || strcmp (w.key[j], n2) == 0))
          n_del_nodes++;
      }
    CHECK (strcmp (w.key[4], b0) == 0, "first batch event is %s", w.key[4]);
    CHECK (puts_batch == STORE_MAX_TXN_OPS, "watch saw %zu batch puts", puts_batch);
    CHECK (dels_batch == STORE_MAX_TXN_OPS, "watch saw %zu batch deletes", dels_batch);
    CHECK (n_del_nodes == 2, "watch saw %zu lease deletes", n_del_nodes);
  }
  printf ("ok: kv, txn, 128-op txn, delete prefix, 1 MiB value, leases; watch saw %zu events\n",
          w.n);
  s->ops->watch_cancel (s);
  rfinal = do_put (s, prefix, "after cancel", 12, 0);
  CHECK (w.ended == 0, "a cancelled watch called back");

  /* Failover: the first endpoint refuses connections. */
  {
    cleanup_free char *list = xasprintf ("http://127.0.0.1:%d, %s/", dead_port (), endpoint);
    cleanup_free char *dead = xasprintf ("http://127.0.0.1:%d", dead_port ());
    store_t *s2 = store_etcd_new (loop, list, &err);
    store_t *s3 = store_etcd_new (loop, dead, &err);

    CHECK (s2 != NULL && s3 != NULL, "store_etcd_new: %s", err.msg);
    do_range (s2, prefix, &r);
    CHECK (r.status == 0 && r.revision >= rfinal, "failover range: %s", r.err.msg);
    do_range (s2, prefix, &r);
    CHECK (r.status == 0, "second failover range: %s", r.err.msg);
    do_range (s3, prefix, &r);
    CHECK (r.status == -1, "a dead endpoint answered");
    CHECK (strstr (r.err.msg, "127.0.0.1") != NULL, "error without the endpoint: %s", r.err.msg);
    printf ("ok: failover; a dead endpoint alone fails with: %s\n", r.err.msg);

    /* destroy fails what is outstanding, once, with "store closed". */
    res_reset (&r);
    wlog_reset (&w);
    CHECK (s2->ops->watch_prefix (s2, prefix, 0, watch_cb, &w, &err) > 0, "watch: %s", err.msg);
    CHECK (s2->ops->range_prefix (s2, prefix, range_cb, &r, &err) == 0, "range: %s", err.msg);
    s2->ops->destroy (s2);
    CHECK (r.calls == 1 && r.status == -1 && strcmp (r.err.msg, "store closed") == 0,
           "destroy: range got %d calls, status %d: %s", r.calls, r.status, r.err.msg);
    CHECK (w.ended == 1 && strcmp (w.end_err.msg, "store closed") == 0, "destroy: watch");
    s3->ops->destroy (s3);
  }

  /* A watch from a compacted revision ends with the compaction named. */
  {
    char want[64];
    compact (rfinal);
    wlog_reset (&w);
    CHECK (s->ops->watch_prefix (s, prefix, r0 + 1, watch_cb, &w, &err) > 0, "watch: %s", err.msg);
    wait_for (&w.ended, 1, "compacted watch");
    snprintf (want, sizeof (want), "watch compacted at revision %" PRId64, rfinal);
    CHECK (strstr (w.end_err.msg, want) != NULL, "compacted watch ended with: %s", w.end_err.msg);
    CHECK (w.n == 0, "compacted watch delivered events");
    printf ("ok: compacted watch ended with: %s\n", w.end_err.msg);
  }

  /* With ETCD_PID set (test_store_etcd.sh does), kill etcd under a live
   * watch: the watch ends with a reason and requests fail, with the
   * endpoint named, instead of hanging. */
  if (getenv ("ETCD_PID") != NULL && atoi (getenv ("ETCD_PID")) > 0)
    {
      cleanup_free char *key = k ("last");
      wlog_reset (&w);
      CHECK (s->ops->watch_prefix (s, prefix, 0, watch_cb, &w, &err) > 0, "watch: %s", err.msg);
      rfinal = do_put (s, key, "1", 1, 0);
      wait_watch (&w, rfinal);
      CHECK (kill (atoi (getenv ("ETCD_PID")), SIGKILL) == 0, "kill etcd: %s", strerror (errno));
      wait_for (&w.ended, 1, "watch after etcd died");
      CHECK (strstr (w.end_err.msg, "watch connection lost") != NULL, "watch ended with: %s",
             w.end_err.msg);
      printf ("ok: etcd killed; watch ended with: %s\n", w.end_err.msg);
      do_range (s, prefix, &r);
      CHECK (r.status == -1 && strstr (r.err.msg, endpoint) != NULL,
             "range with etcd dead: status %d: %s", r.status, r.err.msg);
      printf ("ok: range with etcd dead failed with: %s\n", r.err.msg);
    }

  res_reset (&r);
  s->ops->destroy (s);
  uv_run (loop, UV_RUN_DEFAULT);
  CHECK (uv_loop_close (loop) == 0, "handles left open on the loop");
  wlog_reset (&w);
  printf ("store_etcd_check: all checks passed against %s\n", endpoint);
  return 0;
}
