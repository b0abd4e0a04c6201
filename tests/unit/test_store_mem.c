/* The in-memory store: etcd's revision, txn, lease and watch semantics, and
 * the asynchronous delivery every caller of the store relies on. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "orch_test.h"
#include "orch_util.h"
#include "store.h"

/* What the callbacks saw. */
typedef struct res_s
{
  int calls;
  int status;
  int err_code;
  char err_msg[ORCH_ERR_MSG_MAX];
  store_kv_t kvs[16];
  size_t n;
  int64_t revision;
  bool succeeded;
  int64_t lease_id;
  int64_t ttl;
} res_t;

typedef struct watch_log_s
{
  int batches;
  int ended;
  char end_msg[ORCH_ERR_MSG_MAX];
  size_t n;
  store_ev_type_t type[64];
  char key[64][64];
  char value[64][64];
  int64_t mod_rev[64];
  int64_t create_rev[64];
} watch_log_t;

typedef struct fx_s
{
  uv_loop_t loop;
  store_t *s;
} fx_t;

static void
res_clear (res_t *r)
{
  size_t i;
  for (i = 0; i < r->n; i++)
    {
      free (r->kvs[i].key);
      free (r->kvs[i].value);
    }
  memset (r, 0, sizeof (*r));
}

static void
note_err (res_t *r, int status, const orch_err_t *err)
{
  r->calls++;
  r->status = status;
  if (status < 0)
    {
      assert_non_null (err);
      r->err_code = err->code;
      snprintf (r->err_msg, sizeof (r->err_msg), "%s", err->msg);
    }
}

static void
range_cb (void *ctx, int status, const orch_err_t *err, const store_kv_t *kvs, size_t n,
          int64_t revision)
{
  res_t *r = ctx;
  size_t i;

  note_err (r, status, err);
  r->revision = revision;
  assert_true (n <= ORCH_ARRAY_LEN (r->kvs));
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
  note_err (r, status, err);
  r->succeeded = succeeded;
  r->revision = revision;
}

static void
lease_cb (void *ctx, int status, const orch_err_t *err, int64_t lease_id, int64_t ttl_s)
{
  res_t *r = ctx;
  note_err (r, status, err);
  r->lease_id = lease_id;
  r->ttl = ttl_s;
}

static void
watch_cb (void *ctx, int status, const orch_err_t *err, const store_event_t *evs, size_t n,
          int64_t revision)
{
  watch_log_t *w = ctx;
  size_t i;

  if (status < 0)
    {
      w->ended++;
      snprintf (w->end_msg, sizeof (w->end_msg), "%s", err ? err->msg : "(no err)");
      return;
    }
  assert_true (n > 0);
  w->batches++;
  for (i = 0; i < n && w->n < ORCH_ARRAY_LEN (w->type); i++, w->n++)
    {
      w->type[w->n] = evs[i].type;
      snprintf (w->key[w->n], sizeof (w->key[0]), "%s", evs[i].kv.key);
      snprintf (w->value[w->n], sizeof (w->value[0]), "%.*s", (int) evs[i].kv.value_len,
                evs[i].kv.value);
      w->mod_rev[w->n] = evs[i].kv.mod_revision;
      w->create_rev[w->n] = evs[i].kv.create_revision;
      assert_true (evs[i].kv.mod_revision <= revision);
    }
}

static int
setup (void **state)
{
  fx_t *f = xcalloc (1, sizeof (*f));
  uv_loop_init (&f->loop);
  f->s = store_mem_new (&f->loop);
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  fx_t *f = *state;
  if (f->s)
    f->s->ops->destroy (f->s);
  uv_run (&f->loop, UV_RUN_DEFAULT);
  assert_int_equal (uv_loop_close (&f->loop), 0);
  free (f);
  return 0;
}

static void
run (fx_t *f)
{
  uv_run (&f->loop, UV_RUN_DEFAULT);
}

/* A put through a txn, run to completion. Returns the txn's revision. */
static int64_t
put (fx_t *f, const char *key, const char *value, int64_t lease)
{
  store_op_t op = {
    .type = STORE_OP_PUT, .key = key, .value = value, .value_len = strlen (value), .lease = lease
  };
  res_t r = { 0 };

  assert_int_equal (f->s->ops->txn (f->s, NULL, 0, &op, 1, txn_cb, &r, NULL), 0);
  run (f);
  assert_int_equal (r.calls, 1);
  assert_int_equal (r.status, 0);
  assert_true (r.succeeded);
  return r.revision;
}

static void
range (fx_t *f, const char *prefix, res_t *r)
{
  res_clear (r);
  assert_int_equal (f->s->ops->range_prefix (f->s, prefix, range_cb, r, NULL), 0);
  run (f);
  assert_int_equal (r->calls, 1);
  assert_int_equal (r->status, 0);
}

static void
test_fresh_store_and_async_delivery (void **state)
{
  fx_t *f = *state;
  res_t r = { 0 };

  assert_string_equal (f->s->ops->name, "mem");
  assert_int_equal (f->s->ops->range_prefix (f->s, "/orch/", range_cb, &r, NULL), 0);
  /* Never called from inside the call. */
  assert_int_equal (r.calls, 0);
  run (f);
  assert_int_equal (r.calls, 1);
  assert_int_equal (r.n, 0);
  assert_int_equal (r.revision, 1);
  res_clear (&r);
}

static void
test_put_range_revisions (void **state)
{
  fx_t *f = *state;
  res_t r = { 0 };
  store_op_t op = { .type = STORE_OP_PUT, .key = "/orch/nodes/b", .value = "x\0y", .value_len = 3 };
  res_t t = { 0 };

  assert_int_equal (put (f, "/orch/nodes/a", "one", 0), 2);
  assert_int_equal (f->s->ops->txn (f->s, NULL, 0, &op, 1, txn_cb, &t, NULL), 0);
  run (f);
  assert_int_equal (t.revision, 3);
  assert_int_equal (put (f, "/orch/nodes/a", "two", 0), 4);
  assert_int_equal (put (f, "/orch/nodesX", "not under the prefix", 0), 5);
  assert_int_equal (put (f, "/orch/node", "nor this", 0), 6);

  range (f, "/orch/nodes/", &r);
  assert_int_equal (r.revision, 6);
  assert_int_equal (r.n, 2);
  assert_string_equal (r.kvs[0].key, "/orch/nodes/a");
  assert_string_equal (r.kvs[0].value, "two");
  assert_int_equal (r.kvs[0].create_revision, 2);
  assert_int_equal (r.kvs[0].mod_revision, 4);
  assert_string_equal (r.kvs[1].key, "/orch/nodes/b");
  assert_int_equal (r.kvs[1].value_len, 3);
  assert_memory_equal (r.kvs[1].value, "x\0y", 3);
  assert_int_equal (r.kvs[1].value[3], '\0');

  /* The empty prefix is the whole keyspace, sorted by key. */
  range (f, "", &r);
  assert_int_equal (r.n, 4);
  assert_string_equal (r.kvs[0].key, "/orch/node");
  assert_string_equal (r.kvs[3].key, "/orch/nodesX");
  res_clear (&r);
}

static void
test_txn_compare_and_swap (void **state)
{
  fx_t *f = *state;
  res_t t = { 0 }, r = { 0 };
  int64_t rev = put (f, "/orch/services/web", "v1", 0);
  store_cmp_t cmp
      = { .key = "/orch/services/web", .target = STORE_CMP_MOD_REVISION, .revision = rev };
  store_op_t op
      = { .type = STORE_OP_PUT, .key = "/orch/services/web", .value = "v2", .value_len = 2 };

  assert_int_equal (f->s->ops->txn (f->s, &cmp, 1, &op, 1, txn_cb, &t, NULL), 0);
  run (f);
  assert_int_equal (t.status, 0);
  assert_true (t.succeeded);
  assert_int_equal (t.revision, rev + 1);

  /* The same compare now fails: status 0, succeeded false, nothing written. */
  memset (&t, 0, sizeof (t));
  op.value = "v3";
  assert_int_equal (f->s->ops->txn (f->s, &cmp, 1, &op, 1, txn_cb, &t, NULL), 0);
  run (f);
  assert_int_equal (t.calls, 1);
  assert_int_equal (t.status, 0);
  assert_false (t.succeeded);
  assert_int_equal (t.revision, rev + 1);
  range (f, "/orch/services/web", &r);
  assert_string_equal (r.kvs[0].value, "v2");
  res_clear (&r);
}

static void
test_txn_create_if_absent (void **state)
{
  fx_t *f = *state;
  res_t t = { 0 };
  store_cmp_t cmp = { .key = "/orch/leader", .target = STORE_CMP_CREATE_REVISION, .revision = 0 };
  store_op_t op = { .type = STORE_OP_PUT, .key = "/orch/leader", .value = "a", .value_len = 1 };
  store_cmp_t mod0 = { .key = "/orch/absent", .target = STORE_CMP_MOD_REVISION, .revision = 0 };

  assert_int_equal (f->s->ops->txn (f->s, &cmp, 1, &op, 1, txn_cb, &t, NULL), 0);
  run (f);
  assert_true (t.succeeded);
  memset (&t, 0, sizeof (t));
  op.value = "b";
  assert_int_equal (f->s->ops->txn (f->s, &cmp, 1, &op, 1, txn_cb, &t, NULL), 0);
  run (f);
  assert_int_equal (t.status, 0);
  assert_false (t.succeeded);

  /* A missing key compares as mod_revision 0, as in etcd. */
  memset (&t, 0, sizeof (t));
  assert_int_equal (f->s->ops->txn (f->s, &mod0, 1, NULL, 0, txn_cb, &t, NULL), 0);
  run (f);
  assert_true (t.succeeded);
  /* Nothing changed: the revision stays. */
  assert_int_equal (t.revision, 2);
}

static void
test_txn_delete_and_prefix (void **state)
{
  fx_t *f = *state;
  res_t t = { 0 }, r = { 0 };
  store_op_t ops[] = {
    { .type = STORE_OP_DELETE_PREFIX, .key = "/orch/allocs/web/" },
    { .type = STORE_OP_DELETE, .key = "/orch/services/web" },
    { .type = STORE_OP_PUT, .key = "/orch/services/api", .value = "new", .value_len = 3 },
  };
  store_op_t missing = { .type = STORE_OP_DELETE, .key = "/orch/nothing" };

  put (f, "/orch/allocs/web/1", "a", 0);
  put (f, "/orch/allocs/web/2", "b", 0);
  put (f, "/orch/allocs/webx/1", "c", 0);
  put (f, "/orch/services/web", "s", 0);
  assert_int_equal (f->s->ops->txn (f->s, NULL, 0, ops, 3, txn_cb, &t, NULL), 0);
  run (f);
  assert_true (t.succeeded);
  /* Every op of a txn shares one revision. */
  assert_int_equal (t.revision, 6);

  range (f, "/orch/", &r);
  assert_int_equal (r.n, 2);
  assert_string_equal (r.kvs[0].key, "/orch/allocs/webx/1");
  assert_string_equal (r.kvs[1].key, "/orch/services/api");
  assert_int_equal (r.kvs[1].mod_revision, 6);

  /* Deleting nothing changes nothing, revision included. */
  memset (&t, 0, sizeof (t));
  assert_int_equal (f->s->ops->txn (f->s, NULL, 0, &missing, 1, txn_cb, &t, NULL), 0);
  run (f);
  assert_true (t.succeeded);
  assert_int_equal (t.revision, 6);
  res_clear (&r);
}

static void
test_txn_refusals (void **state)
{
  fx_t *f = *state;
  store_op_t ops[STORE_MAX_TXN_OPS + 1];
  char keys[STORE_MAX_TXN_OPS + 1][32];
  store_op_t dup[] = {
    { .type = STORE_OP_PUT, .key = "/k", .value = "1", .value_len = 1 },
    { .type = STORE_OP_DELETE_PREFIX, .key = "/" },
  };
  store_op_t leased
      = { .type = STORE_OP_PUT, .key = "/k", .value = "1", .value_len = 1, .lease = 12345 };
  orch_err_t err = { 0 };
  res_t t = { 0 }, r = { 0 };
  size_t i;

  for (i = 0; i < ORCH_ARRAY_LEN (ops); i++)
    {
      snprintf (keys[i], sizeof (keys[i]), "/orch/k/%03zu", i);
      ops[i] = (store_op_t){ .type = STORE_OP_PUT, .key = keys[i], .value = "v", .value_len = 1 };
    }
  /* Over etcd's limit: refused at once, no callback. */
  assert_int_equal (f->s->ops->txn (f->s, NULL, 0, ops, STORE_MAX_TXN_OPS + 1, txn_cb, &t, &err),
                    -1);
  assert_int_equal (err.code, E2BIG);
  run (f);
  assert_int_equal (t.calls, 0);

  assert_int_equal (f->s->ops->txn (f->s, NULL, 0, ops, STORE_MAX_TXN_OPS, txn_cb, &t, NULL), 0);
  run (f);
  assert_true (t.succeeded);
  assert_int_equal (t.revision, 2);
  range (f, "/orch/k/127", &r);
  assert_int_equal (r.n, 1);
  assert_int_equal (r.kvs[0].mod_revision, 2);
  res_clear (&r);

  /* A put inside one of the same txn's deletes: etcd's "duplicate key". */
  memset (&t, 0, sizeof (t));
  assert_int_equal (f->s->ops->txn (f->s, NULL, 0, dup, 2, txn_cb, &t, NULL), 0);
  run (f);
  assert_int_equal (t.status, -1);
  assert_int_equal (t.err_code, EINVAL);
  assert_non_null (strstr (t.err_msg, "duplicate key"));

  memset (&t, 0, sizeof (t));
  assert_int_equal (f->s->ops->txn (f->s, NULL, 0, &leased, 1, txn_cb, &t, NULL), 0);
  run (f);
  assert_int_equal (t.status, -1);
  assert_int_equal (t.err_code, ENOENT);
  assert_non_null (strstr (t.err_msg, "lease not found"));
}

static void
test_leases (void **state)
{
  fx_t *f = *state;
  res_t l = { 0 }, r = { 0 };
  int64_t id, rev;

  assert_int_equal (f->s->ops->lease_grant (f->s, 10, lease_cb, &l, NULL), 0);
  assert_int_equal (l.calls, 0);
  run (f);
  assert_int_equal (l.status, 0);
  assert_int_equal (l.ttl, 10);
  id = l.lease_id;
  assert_true (id != 0);

  put (f, "/orch/nodes/n1", "up", id);
  put (f, "/orch/nodes/n1-status", "ok", id);
  rev = put (f, "/orch/nodes/n2", "up", 0);

  memset (&l, 0, sizeof (l));
  assert_int_equal (f->s->ops->lease_keepalive (f->s, id, lease_cb, &l, NULL), 0);
  run (f);
  assert_int_equal (l.status, 0);
  assert_int_equal (l.lease_id, id);
  assert_int_equal (l.ttl, 10);

  range (f, "/orch/nodes/", &r);
  assert_int_equal (r.n, 3);
  assert_int_equal (r.kvs[0].lease, id);

  memset (&l, 0, sizeof (l));
  assert_int_equal (f->s->ops->lease_revoke (f->s, id, lease_cb, &l, NULL), 0);
  run (f);
  assert_int_equal (l.status, 0);

  /* Both attached keys went, in one revision. */
  range (f, "/orch/nodes/", &r);
  assert_int_equal (r.n, 1);
  assert_string_equal (r.kvs[0].key, "/orch/nodes/n2");
  assert_int_equal (r.revision, rev + 1);

  /* A keepalive of a gone lease answers TTL 0; a revoke fails. */
  memset (&l, 0, sizeof (l));
  assert_int_equal (f->s->ops->lease_keepalive (f->s, id, lease_cb, &l, NULL), 0);
  run (f);
  assert_int_equal (l.status, 0);
  assert_int_equal (l.ttl, 0);
  memset (&l, 0, sizeof (l));
  assert_int_equal (f->s->ops->lease_revoke (f->s, id, lease_cb, &l, NULL), 0);
  run (f);
  assert_int_equal (l.status, -1);
  assert_int_equal (l.err_code, ENOENT);
  res_clear (&r);
}

static void
test_lease_expiry (void **state)
{
  fx_t *f = *state;
  res_t l = { 0 }, r = { 0 };

  assert_int_equal (f->s->ops->lease_grant (f->s, 5, lease_cb, &l, NULL), 0);
  run (f);
  put (f, "/orch/nodes/n1", "up", l.lease_id);
  store_mem_expire_lease (f->s, l.lease_id);
  range (f, "/orch/nodes/", &r);
  assert_int_equal (r.n, 0);
  memset (&l, 0, sizeof (l));
  assert_int_equal (f->s->ops->lease_grant (f->s, 0, lease_cb, &l, NULL), -1);
  res_clear (&r);
}

static void
test_watch_from_now (void **state)
{
  fx_t *f = *state;
  watch_log_t w = { 0 };
  store_op_t del = { .type = STORE_OP_DELETE_PREFIX, .key = "/orch/nodes/" };
  res_t t = { 0 };
  int id;

  put (f, "/orch/nodes/old", "before", 0); /* rev 2, not seen */
  id = f->s->ops->watch_prefix (f->s, "/orch/nodes/", 0, watch_cb, &w, NULL);
  assert_true (id > 0);
  run (f);
  assert_int_equal (w.n, 0);

  put (f, "/orch/nodes/a", "1", 0); /* rev 3 */
  put (f, "/orch/other", "x", 0);   /* rev 4, other prefix */
  put (f, "/orch/nodes/a", "2", 0); /* rev 5 */
  assert_int_equal (f->s->ops->txn (f->s, NULL, 0, &del, 1, txn_cb, &t, NULL), 0); /* rev 6 */
  run (f);

  assert_int_equal (w.ended, 0);
  assert_int_equal (w.n, 4);
  assert_int_equal (w.type[0], STORE_EV_PUT);
  assert_string_equal (w.key[0], "/orch/nodes/a");
  assert_string_equal (w.value[0], "1");
  assert_int_equal (w.mod_rev[0], 3);
  assert_int_equal (w.create_rev[0], 3);
  assert_int_equal (w.type[1], STORE_EV_PUT);
  assert_string_equal (w.value[1], "2");
  assert_int_equal (w.mod_rev[1], 5);
  assert_int_equal (w.create_rev[1], 3);
  /* The prefix delete: one DELETE per key, in key order, same revision. */
  assert_int_equal (w.type[2], STORE_EV_DELETE);
  assert_string_equal (w.key[2], "/orch/nodes/a");
  assert_int_equal (w.mod_rev[2], 6);
  assert_int_equal (w.type[3], STORE_EV_DELETE);
  assert_string_equal (w.key[3], "/orch/nodes/old");
  assert_int_equal (w.mod_rev[3], 6);

  /* A second watch is refused; after cancel nothing more arrives. */
  assert_int_equal (f->s->ops->watch_prefix (f->s, "/", 0, watch_cb, &w, NULL), -1);
  f->s->ops->watch_cancel (f->s);
  put (f, "/orch/nodes/b", "3", 0);
  assert_int_equal (w.n, 4);
  assert_int_equal (w.ended, 0);
}

static void
test_watch_replays_history (void **state)
{
  fx_t *f = *state;
  watch_log_t w = { 0 };
  int64_t rev;

  put (f, "/orch/s/a", "1", 0);       /* 2 */
  rev = put (f, "/orch/s/b", "1", 0); /* 3 */
  put (f, "/orch/s/a", "2", 0);       /* 4 */
  /* As the scheduler does: read at rev, watch from rev + 1. */
  assert_true (f->s->ops->watch_prefix (f->s, "/orch/s/", rev + 1, watch_cb, &w, NULL) > 0);
  assert_int_equal (w.n, 0);
  run (f);
  assert_int_equal (w.n, 1);
  assert_string_equal (w.key[0], "/orch/s/a");
  assert_int_equal (w.mod_rev[0], 4);
  put (f, "/orch/s/c", "1", 0); /* 5 */
  assert_int_equal (w.n, 2);
  assert_int_equal (w.mod_rev[1], 5);
}

static void
test_watch_sees_lease_expiry (void **state)
{
  fx_t *f = *state;
  watch_log_t w = { 0 };
  res_t l = { 0 };

  assert_int_equal (f->s->ops->lease_grant (f->s, 5, lease_cb, &l, NULL), 0);
  run (f);
  put (f, "/orch/nodes/n1", "up", l.lease_id);
  assert_true (f->s->ops->watch_prefix (f->s, "/orch/nodes/", 0, watch_cb, &w, NULL) > 0);
  store_mem_expire_lease (f->s, l.lease_id);
  run (f);
  assert_int_equal (w.n, 1);
  assert_int_equal (w.type[0], STORE_EV_DELETE);
  assert_string_equal (w.key[0], "/orch/nodes/n1");
}

static void
test_destroy_fails_outstanding (void **state)
{
  fx_t *f = *state;
  watch_log_t w = { 0 };
  res_t r = { 0 }, t = { 0 };
  store_op_t op = { .type = STORE_OP_PUT, .key = "/k", .value = "v", .value_len = 1 };
  orch_err_t err = { 0 };

  assert_true (f->s->ops->watch_prefix (f->s, "/", 0, watch_cb, &w, NULL) > 0);
  assert_int_equal (f->s->ops->range_prefix (f->s, "/", range_cb, &r, NULL), 0);
  assert_int_equal (f->s->ops->txn (f->s, NULL, 0, &op, 1, txn_cb, &t, NULL), 0);
  f->s->ops->destroy (f->s);
  /* Every callback ran exactly once, with "store closed". */
  assert_int_equal (r.calls, 1);
  assert_int_equal (r.status, -1);
  assert_string_equal (r.err_msg, "store closed");
  assert_int_equal (t.calls, 1);
  assert_int_equal (t.status, -1);
  assert_int_equal (w.ended, 1);
  assert_string_equal (w.end_msg, "store closed");
  assert_int_equal (w.n, 0);
  f->s = NULL;
  run (f);
  assert_int_equal (r.calls, 1);
  assert_int_equal (t.calls, 1);
  (void) err;
}

/* A callback that destroys the store while other results are queued. */
static store_t *destroy_target;
static void
destroying_txn_cb (void *ctx, int status, const orch_err_t *err, bool succeeded, int64_t revision)
{
  txn_cb (ctx, status, err, succeeded, revision);
  destroy_target->ops->destroy (destroy_target);
}

static void
test_destroy_from_callback (void **state)
{
  fx_t *f = *state;
  res_t t1 = { 0 }, t2 = { 0 };
  store_op_t op = { .type = STORE_OP_PUT, .key = "/k", .value = "v", .value_len = 1 };

  destroy_target = f->s;
  assert_int_equal (f->s->ops->txn (f->s, NULL, 0, &op, 1, destroying_txn_cb, &t1, NULL), 0);
  assert_int_equal (f->s->ops->txn (f->s, NULL, 0, &op, 1, txn_cb, &t2, NULL), 0);
  f->s = NULL;
  run (f);
  assert_int_equal (t1.calls, 1);
  assert_int_equal (t1.status, 0);
  assert_int_equal (t2.calls, 1);
  assert_int_equal (t2.status, -1);
  assert_string_equal (t2.err_msg, "store closed");
}

static const struct CMUnitTest tests[] = {
  cmocka_unit_test_setup_teardown (test_fresh_store_and_async_delivery, setup, teardown),
  cmocka_unit_test_setup_teardown (test_put_range_revisions, setup, teardown),
  cmocka_unit_test_setup_teardown (test_txn_compare_and_swap, setup, teardown),
  cmocka_unit_test_setup_teardown (test_txn_create_if_absent, setup, teardown),
  cmocka_unit_test_setup_teardown (test_txn_delete_and_prefix, setup, teardown),
  cmocka_unit_test_setup_teardown (test_txn_refusals, setup, teardown),
  cmocka_unit_test_setup_teardown (test_leases, setup, teardown),
  cmocka_unit_test_setup_teardown (test_lease_expiry, setup, teardown),
  cmocka_unit_test_setup_teardown (test_watch_from_now, setup, teardown),
  cmocka_unit_test_setup_teardown (test_watch_replays_history, setup, teardown),
  cmocka_unit_test_setup_teardown (test_watch_sees_lease_expiry, setup, teardown),
  cmocka_unit_test_setup_teardown (test_destroy_fails_outstanding, setup, teardown),
  cmocka_unit_test_setup_teardown (test_destroy_from_callback, setup, teardown),
};

ORCH_TEST_MAIN (tests)
