/* The etcd JSON gateway client: request bodies and the parsing of responses
 * captured from a real etcd 3.4.23 (tests/fixtures/etcd/), then the etcd
 * backend's HTTP handling against a scripted fake server on loopback (watch
 * lines split across TCP segments, error statuses, streams that end,
 * destroy with requests in flight). tests/integration/test_store_etcd.sh
 * runs the backend against a real etcd. */
#define _GNU_SOURCE /* strcasestr */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "orch_test.h"
#include "orch_util.h"
#include "store_etcd_internal.h"

static char *
fixture (const char *name, size_t *len)
{
  char path[512];
  char *buf = NULL;
  int r;

  snprintf (path, sizeof (path), "%s/etcd/%s", ORCH_FIXTURES, name);
  r = orch_read_file (path, 1 << 20, &buf, len);
  if (r < 0)
    fail_msg ("cannot read fixture %s: %s", path, strerror (-r));
  /* Fixtures were saved by curl; drop the trailing newline a unary answer
   * never has, so that the parser sees exactly the body. */
  while (*len > 0 && buf[*len - 1] == '\n')
    buf[--*len] = '\0';
  return buf;
}

/* Returns line i (0-based) of a .jsonl fixture, newly allocated. */
static char *
fixture_line (const char *name, int i, size_t *len)
{
  size_t flen;
  cleanup_free char *all = fixture (name, &flen);
  char *p = all, *nl;

  while (i-- > 0)
    {
      p = strchr (p, '\n');
      assert_non_null (p);
      p++;
    }
  nl = strchr (p, '\n');
  *len = nl ? (size_t) (nl - p) : strlen (p);
  return xstrndup (p, *len);
}

static json_t *
load (const char *body, size_t len)
{
  json_error_t jerr;
  json_t *j = json_loadb (body, len, 0, &jerr);
  if (j == NULL)
    fail_msg ("not JSON: %s: %.*s", jerr.text, (int) len, body);
  return j;
}

/* Decodes base64 string field key of obj. */
static char *
b64_field (json_t *obj, const char *key, size_t *len)
{
  json_t *v = json_object_get (obj, key);
  char *out = NULL;

  assert_non_null (v);
  assert_true (json_is_string (v));
  assert_int_equal (
      store_etcd__b64_decode (json_string_value (v), json_string_length (v), &out, len), 0);
  return out;
}

static void
test_b64_roundtrip (void **state)
{
  static const char *const known[][2] = {
    { "", "" },
    { "f", "Zg==" },
    { "fo", "Zm8=" },
    { "foo", "Zm9v" },
    { "foob", "Zm9vYg==" },
    { "fooba", "Zm9vYmE=" },
    { "foobar", "Zm9vYmFy" },
  };
  unsigned char all[256];
  char enc[400];
  char *dec = NULL;
  size_t i, n;

  for (i = 0; i < ORCH_ARRAY_LEN (known); i++)
    {
      n = store_etcd__b64_encode (known[i][0], strlen (known[i][0]), enc);
      assert_int_equal (n, strlen (known[i][1]));
      assert_string_equal (enc, known[i][1]);
      assert_int_equal (store_etcd__b64_decode (enc, n, &dec, &n), 0);
      assert_int_equal (n, strlen (known[i][0]));
      assert_memory_equal (dec, known[i][0], n);
      assert_int_equal (dec[n], '\0');
      free (dec);
    }
  for (i = 0; i < 256; i++)
    all[i] = (unsigned char) i;
  for (i = 0; i <= 256; i++)
    {
      size_t m = store_etcd__b64_encode (all, i, enc);
      assert_int_equal (m, store_etcd__b64_encoded_len (i));
      assert_int_equal (store_etcd__b64_decode (enc, m, &dec, &n), 0);
      assert_int_equal (n, i);
      if (i > 0)
        assert_memory_equal (dec, all, i);
      free (dec);
    }
}

static void
test_b64_rejects_garbage (void **state)
{
  static const char *const bad[]
      = { "Zg=",  "Z",     "Zm9v!A==", "Zm 9v",   "Zh==", /* stray bits */
          "=Zm9", "Zg===", "Zm9vY===", "Zg==Zg==" };
  char *dec = NULL;
  size_t i, n;

  for (i = 0; i < ORCH_ARRAY_LEN (bad); i++)
    {
      if (store_etcd__b64_decode (bad[i], strlen (bad[i]), &dec, &n) != -EINVAL)
        fail_msg ("\"%s\" was accepted", bad[i]);
    }
  /* Unpadded input is accepted. */
  assert_int_equal (store_etcd__b64_decode ("Zm8", 3, &dec, &n), 0);
  assert_int_equal (n, 2);
  assert_memory_equal (dec, "fo", 2);
  free (dec);
}

static void
test_prefix_end (void **state)
{
  size_t n;
  char *e;

  e = store_etcd__prefix_end ("/orch/nodes/", 12, &n);
  assert_int_equal (n, 12);
  assert_memory_equal (e, "/orch/nodes0", 12);
  free (e);

  e = store_etcd__prefix_end ("a\xff\xff", 3, &n);
  assert_int_equal (n, 1);
  assert_memory_equal (e, "b", 1);
  free (e);

  e = store_etcd__prefix_end ("\xff", 1, &n);
  assert_int_equal (n, 1);
  assert_int_equal (e[0], '\0');
  free (e);

  e = store_etcd__prefix_end ("", 0, &n);
  assert_int_equal (n, 1);
  assert_int_equal (e[0], '\0');
  free (e);
}

static void
test_range_body (void **state)
{
  size_t len, n;
  cleanup_free char *body = store_etcd__range_body ("/orch/nodes/", &len, NULL);
  json_t *j;
  char *k, *e;

  assert_non_null (body);
  assert_int_equal (len, strlen (body));
  j = load (body, len);
  k = b64_field (j, "key", &n);
  assert_string_equal (k, "/orch/nodes/");
  e = b64_field (j, "range_end", &n);
  assert_string_equal (e, "/orch/nodes0");
  free (k);
  free (e);
  json_decref (j);

  /* The whole keyspace: key "\0", range_end "\0". */
  body = (free (body), store_etcd__range_body ("", &len, NULL));
  j = load (body, len);
  k = b64_field (j, "key", &n);
  assert_int_equal (n, 1);
  assert_int_equal (k[0], '\0');
  e = b64_field (j, "range_end", &n);
  assert_int_equal (n, 1);
  assert_int_equal (e[0], '\0');
  free (k);
  free (e);
  json_decref (j);
}

static void
test_txn_body (void **state)
{
  const store_cmp_t cmps[] = {
    { .key = "/orch/services/web", .target = STORE_CMP_MOD_REVISION, .revision = 42 },
    { .key = "/orch/leader", .target = STORE_CMP_CREATE_REVISION, .revision = 0 },
  };
  const store_op_t ops[] = {
    { .type = STORE_OP_PUT, .key = "/orch/a", .value = "x\0y", .value_len = 3, .lease = 0 },
    { .type = STORE_OP_PUT,
      .key = "/orch/leader",
      .value = "me",
      .value_len = 2,
      .lease = 7587862143946201607LL },
    { .type = STORE_OP_DELETE, .key = "/orch/b" },
    { .type = STORE_OP_DELETE_PREFIX, .key = "/orch/allocs/web/" },
  };
  size_t len, n;
  cleanup_free char *body = store_etcd__txn_body (cmps, 2, ops, 4, &len, NULL);
  json_t *j, *c, *s, *r;
  char *v;

  assert_non_null (body);
  j = load (body, len);
  c = json_object_get (j, "compare");
  assert_int_equal (json_array_size (c), 2);
  v = b64_field (json_array_get (c, 0), "key", &n);
  assert_string_equal (v, "/orch/services/web");
  free (v);
  assert_string_equal (json_string_value (json_object_get (json_array_get (c, 0), "target")),
                       "MOD");
  assert_string_equal (json_string_value (json_object_get (json_array_get (c, 0), "result")),
                       "EQUAL");
  /* int64 as a JSON string, as the gateway expects. */
  assert_string_equal (json_string_value (json_object_get (json_array_get (c, 0), "mod_revision")),
                       "42");
  assert_string_equal (json_string_value (json_object_get (json_array_get (c, 1), "target")),
                       "CREATE");
  assert_string_equal (
      json_string_value (json_object_get (json_array_get (c, 1), "create_revision")), "0");

  s = json_object_get (j, "success");
  assert_int_equal (json_array_size (s), 4);
  r = json_object_get (json_array_get (s, 0), "request_put");
  assert_non_null (r);
  v = b64_field (r, "value", &n);
  assert_int_equal (n, 3);
  assert_memory_equal (v, "x\0y", 3);
  free (v);
  assert_null (json_object_get (r, "lease"));
  r = json_object_get (json_array_get (s, 1), "request_put");
  assert_string_equal (json_string_value (json_object_get (r, "lease")), "7587862143946201607");
  r = json_object_get (json_array_get (s, 2), "request_delete_range");
  assert_non_null (r);
  assert_null (json_object_get (r, "range_end"));
  r = json_object_get (json_array_get (s, 3), "request_delete_range");
  v = b64_field (r, "range_end", &n);
  assert_string_equal (v, "/orch/allocs/web0");
  free (v);
  json_decref (j);
}

static void
test_txn_body_limits (void **state)
{
  store_op_t ops[STORE_MAX_TXN_OPS + 1];
  orch_err_t err = { 0 };
  static char big[STORE_MAX_REQUEST_BYTES];
  size_t len, i;
  char *body;

  for (i = 0; i < ORCH_ARRAY_LEN (ops); i++)
    ops[i] = (store_op_t){ .type = STORE_OP_PUT, .key = "/k", .value = "v", .value_len = 1 };
  assert_null (store_etcd__txn_body (NULL, 0, ops, STORE_MAX_TXN_OPS + 1, &len, &err));
  assert_int_equal (err.code, E2BIG);

  /* 128 distinct-enough ops are fine (duplicates are etcd's to refuse). */
  body = store_etcd__txn_body (NULL, 0, ops, STORE_MAX_TXN_OPS, &len, NULL);
  assert_non_null (body);
  free (body);

  ops[0].value = big;
  ops[0].value_len = sizeof (big);
  orch_err_clear (&err);
  assert_null (store_etcd__txn_body (NULL, 0, ops, 1, &len, &err));
  assert_int_equal (err.code, EMSGSIZE);

  ops[0] = (store_op_t){ .type = STORE_OP_PUT, .key = "", .value = "v", .value_len = 1 };
  orch_err_clear (&err);
  assert_null (store_etcd__txn_body (NULL, 0, ops, 1, &len, &err));
  assert_int_equal (err.code, EINVAL);
}

static void
test_lease_and_watch_bodies (void **state)
{
  size_t len, n;
  cleanup_free char *g = store_etcd__lease_grant_body (10, &len, NULL);
  cleanup_free char *k = NULL, *w = NULL, *w0 = NULL;
  json_t *j, *c;
  char *v;

  assert_string_equal (g, "{\"TTL\":\"10\"}");
  assert_null (store_etcd__lease_grant_body (0, &len, NULL));
  k = store_etcd__lease_id_body (685851190128796944LL, &len, NULL);
  assert_string_equal (k, "{\"ID\":\"685851190128796944\"}");

  w = store_etcd__watch_body ("/orch/", 17, &len, NULL);
  j = load (w, len);
  c = json_object_get (j, "create_request");
  assert_non_null (c);
  v = b64_field (c, "key", &n);
  assert_string_equal (v, "/orch/");
  free (v);
  v = b64_field (c, "range_end", &n);
  assert_string_equal (v, "/orch0");
  free (v);
  assert_string_equal (json_string_value (json_object_get (c, "start_revision")), "17");
  json_decref (j);

  w0 = store_etcd__watch_body ("/orch/", 0, &len, NULL);
  j = load (w0, len);
  assert_null (json_object_get (json_object_get (j, "create_request"), "start_revision"));
  json_decref (j);
}

static void
test_parse_range_empty (void **state)
{
  size_t len, n = 99;
  cleanup_free char *body = fixture ("range_empty.json", &len);
  store_kv_t *kvs = (store_kv_t *) 1;
  int64_t rev = -1;

  /* No "kvs" and no "count" at all when nothing matches. */
  assert_int_equal (store_etcd__parse_range (body, len, &kvs, &n, &rev, NULL), 0);
  assert_int_equal (n, 0);
  assert_null (kvs);
  assert_int_equal (rev, 1);
}

static void
test_parse_range_two (void **state)
{
  size_t len, n = 0;
  cleanup_free char *body = fixture ("range_two.json", &len);
  store_kv_t *kvs = NULL;
  int64_t rev = 0;

  assert_int_equal (store_etcd__parse_range (body, len, &kvs, &n, &rev, NULL), 0);
  assert_int_equal (rev, 5);
  assert_int_equal (n, 2);
  assert_string_equal (kvs[0].key, "/orch/nodes/a");
  assert_int_equal (kvs[0].value_len, 6);
  assert_string_equal (kvs[0].value, "alpha2");
  assert_int_equal (kvs[0].create_revision, 2);
  assert_int_equal (kvs[0].mod_revision, 4);
  assert_int_equal (kvs[0].lease, 0);
  assert_string_equal (kvs[1].key, "/orch/nodes/b");
  /* A value with a NUL inside: value_len is authoritative. */
  assert_int_equal (kvs[1].value_len, 7);
  assert_memory_equal (kvs[1].value, "bin\0val", 7);
  assert_int_equal (kvs[1].create_revision, 3);
  assert_int_equal (kvs[1].mod_revision, 3);
  store_etcd__kvs_free (kvs, n);
}

static void
test_parse_range_leased (void **state)
{
  size_t len, n = 0;
  cleanup_free char *body = fixture ("range_leased.json", &len);
  store_kv_t *kvs = NULL;
  int64_t rev = 0;

  assert_int_equal (store_etcd__parse_range (body, len, &kvs, &n, &rev, NULL), 0);
  assert_int_equal (n, 1);
  assert_int_equal (kvs[0].lease, 685851190128796944LL);
  assert_string_equal (kvs[0].value, "L");
  store_etcd__kvs_free (kvs, n);
}

static void
test_parse_txn (void **state)
{
  size_t len;
  cleanup_free char *ok = fixture ("txn_success.json", &len);
  cleanup_free char *failed = NULL, *create = NULL;
  bool succeeded = false;
  int64_t rev = 0;

  assert_int_equal (store_etcd__parse_txn (ok, len, &succeeded, &rev, NULL), 0);
  assert_true (succeeded);
  assert_int_equal (rev, 6);

  /* A failed compare: no "succeeded" field at all, still not an error. */
  failed = fixture ("txn_failed.json", &len);
  succeeded = true;
  assert_int_equal (store_etcd__parse_txn (failed, len, &succeeded, &rev, NULL), 0);
  assert_false (succeeded);
  assert_int_equal (rev, 6);

  create = fixture ("txn_create_delete.json", &len);
  assert_int_equal (store_etcd__parse_txn (create, len, &succeeded, &rev, NULL), 0);
  assert_true (succeeded);
  assert_int_equal (rev, 7);
}

static void
test_parse_errors (void **state)
{
  static const struct
  {
    const char *file;
    int code;
    const char *text;
  } cases[] = {
    { "error_too_many_ops.json", EINVAL, "too many operations in txn request" },
    { "error_duplicate_key.json", EINVAL, "duplicate key given in txn request" },
    { "error_request_too_large.json", EINVAL, "request is too large" },
    { "error_bad_request.json", EINVAL, "unknown value \"BOGUS\"" },
    { "put_lease_missing.json", ENOENT, "requested lease not found" },
  };
  size_t i, len;

  for (i = 0; i < ORCH_ARRAY_LEN (cases); i++)
    {
      cleanup_free char *body = fixture (cases[i].file, &len);
      orch_err_t err = { 0 };
      bool ok = true;
      int64_t rev = 0;

      assert_int_equal (store_etcd__parse_txn (body, len, &ok, &rev, &err), -1);
      assert_int_equal (err.code, cases[i].code);
      if (strstr (err.msg, cases[i].text) == NULL)
        fail_msg ("%s: message \"%s\" lacks \"%s\"", cases[i].file, err.msg, cases[i].text);
    }
}

static void
test_parse_malformed (void **state)
{
  static const char *const bad[] = {
    "not json",
    "[1,2]",
    "{\"kvs\": 3}",
    "{\"kvs\": [{\"key\": \"!!\"}]}",
    "{\"kvs\": [{\"key\": \"YQ==\", \"mod_revision\": \"12x\"}]}",
    "{\"kvs\": [{\"key\": \"YQ==\", \"mod_revision\": \"99999999999999999999\"}]}",
    "{\"kvs\": [{\"value\": \"YQ==\"}]}",
    "{\"header\": 5}",
  };
  size_t i, n;

  for (i = 0; i < ORCH_ARRAY_LEN (bad); i++)
    {
      store_kv_t *kvs = NULL;
      orch_err_t err = { 0 };
      int64_t rev;

      if (store_etcd__parse_range (bad[i], strlen (bad[i]), &kvs, &n, &rev, &err) != -1)
        fail_msg ("accepted: %s", bad[i]);
      assert_int_equal (err.code, EPROTO);
    }
}

static void
test_parse_lease (void **state)
{
  size_t len;
  cleanup_free char *grant = fixture ("lease_grant.json", &len);
  cleanup_free char *ka = NULL, *ka_missing = NULL, *revoke = NULL, *revoke_missing = NULL;
  int64_t id = 0, ttl = 0;
  orch_err_t err = { 0 };

  assert_int_equal (store_etcd__parse_lease (grant, len, &id, &ttl, NULL), 0);
  assert_int_equal (id, 685851190128796944LL);
  assert_int_equal (ttl, 30);

  ka = fixture ("lease_keepalive.json", &len);
  id = 0;
  assert_int_equal (store_etcd__parse_lease (ka, len, &id, &ttl, NULL), 0);
  assert_int_equal (id, 685851190128796944LL);
  assert_int_equal (ttl, 30);

  /* Keepalive of a revoked lease: an answer without TTL, i.e. TTL 0. */
  ka_missing = fixture ("lease_keepalive_missing.json", &len);
  ttl = 99;
  assert_int_equal (store_etcd__parse_lease (ka_missing, len, &id, &ttl, NULL), 0);
  assert_int_equal (ttl, 0);

  revoke = fixture ("lease_revoke.json", &len);
  id = 5;
  assert_int_equal (store_etcd__parse_lease (revoke, len, &id, &ttl, NULL), 0);
  assert_int_equal (id, 5);
  assert_int_equal (ttl, 0);

  revoke_missing = fixture ("lease_revoke_missing.json", &len);
  assert_int_equal (store_etcd__parse_lease (revoke_missing, len, &id, &ttl, &err), -1);
  assert_int_equal (err.code, ENOENT);
  assert_non_null (strstr (err.msg, "requested lease not found"));
}

static void
test_parse_watch_history (void **state)
{
  size_t len;
  cleanup_free char *l0 = fixture_line ("watch_history.jsonl", 0, &len);
  cleanup_free char *l1 = NULL;
  store_etcd_watch_msg_t msg;

  assert_int_equal (store_etcd__parse_watch_line (l0, len, &msg, NULL), 0);
  assert_true (msg.created);
  assert_false (msg.canceled);
  assert_int_equal (msg.n_events, 0);
  assert_int_equal (msg.revision, 9);
  store_etcd__watch_msg_free (&msg);

  l1 = fixture_line ("watch_history.jsonl", 1, &len);
  assert_int_equal (store_etcd__parse_watch_line (l1, len, &msg, NULL), 0);
  assert_false (msg.created);
  assert_int_equal (msg.n_events, 7);
  /* PUT events carry no "type" (it is enum 0). */
  assert_int_equal (msg.events[0].type, STORE_EV_PUT);
  assert_string_equal (msg.events[0].kv.key, "/orch/nodes/a");
  assert_string_equal (msg.events[0].kv.value, "alpha");
  assert_int_equal (msg.events[0].kv.mod_revision, 2);
  assert_int_equal (msg.events[1].kv.value_len, 7);
  assert_memory_equal (msg.events[1].kv.value, "bin\0val", 7);
  assert_int_equal (msg.events[3].kv.mod_revision, 6);
  assert_int_equal (msg.events[3].kv.create_revision, 2);
  assert_int_equal (msg.events[5].kv.lease, 685851190128796944LL);
  assert_int_equal (msg.events[6].type, STORE_EV_DELETE);
  assert_string_equal (msg.events[6].kv.key, "/orch/nodes/leased");
  assert_int_equal (msg.events[6].kv.mod_revision, 9);
  assert_int_equal (msg.events[6].kv.value_len, 0);
  store_etcd__watch_msg_free (&msg);
}

static void
test_parse_watch_live (void **state)
{
  store_etcd_watch_msg_t msg;
  size_t len;
  int i;
  static const struct
  {
    int n;
    store_ev_type_t type;
    const char *key;
    int64_t rev;
  } want[] = {
    { 0, STORE_EV_PUT, NULL, 9 },
    { 1, STORE_EV_PUT, "/orch/w/k1", 10 },
    { 1, STORE_EV_PUT, "/orch/w/k2", 11 },
    { 2, STORE_EV_DELETE, "/orch/w/k1", 12 },
  };

  for (i = 0; i < 4; i++)
    {
      cleanup_free char *l = fixture_line ("watch_live.jsonl", i, &len);
      assert_int_equal (store_etcd__parse_watch_line (l, len, &msg, NULL), 0);
      assert_int_equal (msg.revision, want[i].rev);
      assert_int_equal (msg.n_events, want[i].n);
      if (want[i].n > 0)
        {
          assert_int_equal (msg.events[0].type, want[i].type);
          assert_string_equal (msg.events[0].kv.key, want[i].key);
          assert_int_equal (msg.events[0].kv.mod_revision, want[i].rev);
        }
      if (i == 2)
        {
          /* An empty value is omitted entirely. */
          assert_int_equal (msg.events[0].kv.value_len, 0);
          assert_string_equal (msg.events[0].kv.value, "");
        }
      if (i == 3)
        {
          assert_int_equal (msg.events[1].type, STORE_EV_DELETE);
          assert_string_equal (msg.events[1].kv.key, "/orch/w/k2");
        }
      store_etcd__watch_msg_free (&msg);
    }
}

static void
test_parse_watch_compacted (void **state)
{
  size_t len;
  cleanup_free char *l = fixture_line ("watch_compacted.jsonl", 1, &len);
  store_etcd_watch_msg_t msg;

  assert_int_equal (store_etcd__parse_watch_line (l, len, &msg, NULL), 0);
  assert_true (msg.canceled);
  assert_int_equal (msg.compact_revision, 8);
  /* The header has no revision here: omitted as 0. */
  assert_int_equal (msg.revision, 0);
  assert_int_equal (msg.n_events, 0);
  store_etcd__watch_msg_free (&msg);
}

static void
test_parse_watch_errors (void **state)
{
  /* The shape grpc-gateway uses for an error inside a stream (hand-written:
   * a real one needs an etcd losing its leader mid-watch). */
  static const char stream_err[]
      = "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"etcdserver: no leader\","
        "\"http_status\":\"Service Unavailable\"}}";
  static const char no_result[] = "{\"header\":{}}";
  static const char bad_type[]
      = "{\"result\":{\"events\":[{\"type\":\"BOGUS\",\"kv\":{\"key\":\"YQ==\"}}]}}";
  store_etcd_watch_msg_t msg;
  orch_err_t err = { 0 };

  assert_int_equal (store_etcd__parse_watch_line (stream_err, strlen (stream_err), &msg, &err), -1);
  assert_int_equal (err.code, EAGAIN);
  assert_non_null (strstr (err.msg, "no leader"));
  assert_int_equal (store_etcd__parse_watch_line (no_result, strlen (no_result), &msg, &err), -1);
  assert_int_equal (store_etcd__parse_watch_line (bad_type, strlen (bad_type), &msg, &err), -1);
  assert_int_equal (err.code, EPROTO);
}

/* ------------------------------------------------------------------------
 * A scripted HTTP server on the test's loop. Each connection reads one
 * request (headers and Content-Length body), then writes the script's
 * chunks 10 ms apart and closes, unless hold is set. */

static uv_loop_t *fake_loop;

typedef struct fake_s
{
  uv_tcp_t listener;
  int port;
  const char *const *chunks;
  size_t nchunks;
  bool hold; /* never answer */
  char req[8192];
  size_t req_len;
  int requests;
} fake_t;

typedef struct fake_conn_s
{
  uv_tcp_t tcp;
  uv_timer_t timer;
  fake_t *f;
  size_t next;
  bool answering;
  int open;
} fake_conn_t;

static void
fake_conn_closed (uv_handle_t *h)
{
  fake_conn_t *c = h->data;
  if (--c->open == 0)
    free (c);
}

static void
fake_conn_close (fake_conn_t *c)
{
  if (!uv_is_closing ((uv_handle_t *) &c->tcp))
    {
      uv_close ((uv_handle_t *) &c->tcp, fake_conn_closed);
      uv_close ((uv_handle_t *) &c->timer, fake_conn_closed);
    }
}

static void
fake_write_done (uv_write_t *w, int status)
{
  free (w);
}

static void
fake_next_chunk (uv_timer_t *t)
{
  fake_conn_t *c = t->data;
  const char *chunk;
  uv_write_t *w;
  uv_buf_t buf;

  if (c->next >= c->f->nchunks)
    {
      fake_conn_close (c);
      return;
    }
  chunk = c->f->chunks[c->next++];
  w = xmalloc (sizeof (*w));
  buf = uv_buf_init ((char *) chunk, (unsigned) strlen (chunk));
  if (uv_write (w, (uv_stream_t *) &c->tcp, &buf, 1, fake_write_done) < 0)
    free (w);
  uv_timer_start (&c->timer, fake_next_chunk, 10, 0);
}

static void
fake_alloc (uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
  static char slab[65536];
  *buf = uv_buf_init (slab, sizeof (slab));
}

static void
fake_read (uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
  fake_conn_t *c = st->data;
  fake_t *f = c->f;
  const char *hdr_end, *cl;

  if (n < 0)
    {
      fake_conn_close (c);
      return;
    }
  if (c->answering)
    return;
  if ((size_t) n > sizeof (f->req) - 1 - f->req_len)
    n = (ssize_t) (sizeof (f->req) - 1 - f->req_len);
  memcpy (f->req + f->req_len, buf->base, (size_t) n);
  f->req_len += (size_t) n;
  f->req[f->req_len] = '\0';
  hdr_end = strstr (f->req, "\r\n\r\n");
  if (hdr_end == NULL)
    return;
  cl = strcasestr (f->req, "Content-Length:");
  if (cl != NULL && cl < hdr_end
      && f->req_len < (size_t) (hdr_end + 4 - f->req) + strtoul (cl + 15, NULL, 10))
    return;
  c->answering = true;
  f->requests++;
  if (!f->hold)
    fake_next_chunk (&c->timer);
}

static void
fake_accept (uv_stream_t *l, int status)
{
  fake_t *f = l->data;
  fake_conn_t *c = xcalloc (1, sizeof (*c));

  assert_int_equal (status, 0);
  c->f = f;
  c->open = 2;
  uv_tcp_init (l->loop, &c->tcp);
  uv_timer_init (l->loop, &c->timer);
  c->tcp.data = c;
  c->timer.data = c;
  /* One request per connection: what came before belongs to another. */
  f->req_len = 0;
  f->req[0] = '\0';
  assert_int_equal (uv_accept (l, (uv_stream_t *) &c->tcp), 0);
  uv_read_start ((uv_stream_t *) &c->tcp, fake_alloc, fake_read);
}

static void
fake_start (uv_loop_t *loop, fake_t *f)
{
  struct sockaddr_in a;
  int alen = sizeof (a);

  fake_loop = loop;
  uv_ip4_addr ("127.0.0.1", 0, &a);
  assert_int_equal (uv_tcp_init (loop, &f->listener), 0);
  f->listener.data = f;
  assert_int_equal (uv_tcp_bind (&f->listener, (struct sockaddr *) &a, 0), 0);
  assert_int_equal (uv_listen ((uv_stream_t *) &f->listener, 16, fake_accept), 0);
  assert_int_equal (uv_tcp_getsockname (&f->listener, (struct sockaddr *) &a, &alen), 0);
  f->port = ntohs (a.sin_port);
}

/* By then the store is destroyed: what is still open is the fake server's
 * listener (data: the fake_t) or one of its connections' handles. */
static void
close_walk (uv_handle_t *h, void *arg)
{
  if (uv_is_closing (h))
    return;
  if (h->data == arg)
    uv_close (h, NULL);
  else
    fake_conn_close (h->data);
}

/* Closes the fake server and whatever connections remain, and checks that
 * the store left nothing on the loop. */
static void
fake_stop (uv_loop_t *loop, fake_t *f)
{
  uv_walk (loop, close_walk, f);
  /* Twice: a callback's uv_stop () may still be pending and end the first
   * run before it closes anything. */
  uv_run (loop, UV_RUN_DEFAULT);
  uv_run (loop, UV_RUN_DEFAULT);
  assert_int_equal (uv_loop_close (loop), 0);
}

/* Runs the loop until *counter reaches want (the fake server's listener
 * keeps the loop alive, so UV_RUN_DEFAULT would not return). Callbacks stop
 * the loop's turn so that a completion in a timer callback does not leave
 * uv_run blocked in poll. */
static void
run_until (uv_loop_t *loop, const int *counter, int want)
{
  uint64_t deadline = uv_now (loop) + 20000;

  while (*counter < want)
    {
      uv_run (loop, UV_RUN_ONCE);
      uv_update_time (loop);
      if (uv_now (loop) > deadline)
        fail_msg ("no callback within 20 s");
    }
}

typedef struct wres_s
{
  int batches;
  int ended;
  int end_code;
  char end_msg[ORCH_ERR_MSG_MAX];
  size_t n;
  store_ev_type_t type[8];
  char key[8][32];
  char value[8][32];
  int64_t rev[8];
  int64_t batch_rev[8];
} wres_t;

static void
fake_watch_cb (void *ctx, int status, const orch_err_t *err, const store_event_t *evs, size_t n,
               int64_t revision)
{
  wres_t *w = ctx;
  size_t i;

  uv_stop (fake_loop);
  if (status < 0)
    {
      w->ended++;
      w->end_code = err->code;
      snprintf (w->end_msg, sizeof (w->end_msg), "%s", err->msg);
      return;
    }
  assert_int_equal (w->ended, 0);
  w->batch_rev[w->batches++] = revision;
  for (i = 0; i < n && w->n < 8; i++, w->n++)
    {
      w->type[w->n] = evs[i].type;
      snprintf (w->key[w->n], sizeof (w->key[0]), "%s", evs[i].kv.key);
      snprintf (w->value[w->n], sizeof (w->value[0]), "%.*s", (int) evs[i].kv.value_len,
                evs[i].kv.value);
      w->rev[w->n] = evs[i].kv.mod_revision;
    }
}

typedef struct rres_s
{
  int calls;
  int status;
  int code;
  char msg[ORCH_ERR_MSG_MAX];
  size_t n;
  char key0[64];
  int64_t revision;
} rres_t;

static void
fake_range_cb (void *ctx, int status, const orch_err_t *err, const store_kv_t *kvs, size_t n,
               int64_t revision)
{
  rres_t *r = ctx;

  uv_stop (fake_loop);
  r->calls++;
  r->status = status;
  r->n = n;
  r->revision = revision;
  if (status < 0)
    {
      r->code = err->code;
      snprintf (r->msg, sizeof (r->msg), "%s", err->msg);
    }
  if (n > 0)
    snprintf (r->key0, sizeof (r->key0), "%s", kvs[0].key);
}

static store_t *
fake_store (uv_loop_t *loop, fake_t *f, const char *before)
{
  orch_err_t err = { 0 };
  cleanup_free char *ep = xasprintf ("%shttp://127.0.0.1:%d", before, f->port);
  store_t *s = store_etcd_new (loop, ep, &err);

  if (s == NULL)
    fail_msg ("store_etcd_new: %s", err.msg);
  return s;
}

static void
test_http_watch_lines_across_segments (void **state)
{
  static const char *const script[] = {
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
    "{\"result\":{\"header\":{\"revision\":\"5\"},\"created\":true}}\n{\"result\":{\"header\":",
    "{\"revision\":\"6\"},\"events\":[{\"kv\":{\"key\":\"L3cvYQ==\",\"create_revision\":\"6\",",
    "\"mod_revision\":\"6\",\"value\":\"eA==\"}}]}}\n",
    "{\"result\":{\"header\":{\"revision\":\"7\"},\"events\":[{\"type\":\"DELETE\",\"kv\":{\"key\":"
    "\"L3cvYQ==\",\"mod_revision\":\"7\"}}]}}\n{\"result\":{\"header\":{\"revision\":\"8\"},\"ev",
  };
  uv_loop_t loop;
  fake_t f = { .chunks = script, .nchunks = ORCH_ARRAY_LEN (script) };
  wres_t w = { 0 };
  store_t *s;
  int id;

  uv_loop_init (&loop);
  fake_start (&loop, &f);
  s = fake_store (&loop, &f, "");
  id = s->ops->watch_prefix (s, "/w/", 6, fake_watch_cb, &w, NULL);
  assert_true (id > 0);
  run_until (&loop, &w.ended, 1);

  /* The request: a POST of the create_request to /v3/watch. */
  assert_non_null (strstr (f.req, "POST /v3/watch HTTP/1.1"));
  assert_non_null (strstr (f.req, "\"start_revision\":\"6\""));
  assert_null (strstr (f.req, "Expect:"));

  /* A line split over three segments arrives whole; the server's close
   * (with half a line pending) ends the watch once, after the events. */
  assert_int_equal (w.batches, 2);
  assert_int_equal (w.n, 2);
  assert_int_equal (w.type[0], STORE_EV_PUT);
  assert_string_equal (w.key[0], "/w/a");
  assert_string_equal (w.value[0], "x");
  assert_int_equal (w.rev[0], 6);
  assert_int_equal (w.batch_rev[0], 6);
  assert_int_equal (w.type[1], STORE_EV_DELETE);
  assert_int_equal (w.rev[1], 7);
  assert_int_equal (w.ended, 1);
  assert_non_null (strstr (w.end_msg, "watch connection lost"));
  assert_non_null (strstr (w.end_msg, "inside a line"));

  s->ops->destroy (s);
  assert_int_equal (w.ended, 1);
  fake_stop (&loop, &f);
}

static void
test_http_watch_compacted (void **state)
{
  static const char *const script[] = {
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n"
    "{\"result\":{\"header\":{\"revision\":\"12\"},\"created\":true}}\n",
    "{\"result\":{\"header\":{},\"canceled\":true,\"compact_revision\":\"8\"}}\n",
  };
  uv_loop_t loop;
  fake_t f = { .chunks = script, .nchunks = ORCH_ARRAY_LEN (script) };
  wres_t w = { 0 };
  store_t *s;

  uv_loop_init (&loop);
  fake_start (&loop, &f);
  s = fake_store (&loop, &f, "");
  assert_true (s->ops->watch_prefix (s, "/w/", 2, fake_watch_cb, &w, NULL) > 0);
  run_until (&loop, &w.ended, 1);
  assert_int_equal (w.n, 0);
  assert_int_equal (w.ended, 1);
  assert_string_equal (w.end_msg, "watch compacted at revision 8");
  /* The watch is over: another may start. */
  assert_true (s->ops->watch_prefix (s, "/w/", 0, fake_watch_cb, &w, NULL) > 0);
  s->ops->watch_cancel (s);
  s->ops->destroy (s);
  assert_int_equal (w.ended, 1);
  fake_stop (&loop, &f);
}

static void
test_http_watch_refused (void **state)
{
  /* etcd's answer to a malformed create_request, without a newline. */
  static const char *const script[] = {
    "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
    "{\"error\":\"illegal base64 data at input byte 0\",\"message\":\"illegal base64 data at "
    "input byte 0\",\"code\":3}",
  };
  /* A last line that lost its newline still counts. */
  static const char *const last[] = {
    "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
    "{\"result\":{\"header\":{\"revision\":\"4\"},\"events\":[{\"kv\":{\"key\":\"YQ==\","
    "\"mod_revision\":\"4\"}}]}}",
  };
  uv_loop_t loop;
  fake_t f = { .chunks = script, .nchunks = 1 };
  wres_t w = { 0 };
  store_t *s;

  uv_loop_init (&loop);
  fake_start (&loop, &f);
  s = fake_store (&loop, &f, "");
  assert_true (s->ops->watch_prefix (s, "/w/", 0, fake_watch_cb, &w, NULL) > 0);
  run_until (&loop, &w.ended, 1);
  assert_int_equal (w.n, 0);
  assert_int_equal (w.end_code, EINVAL);
  assert_non_null (strstr (w.end_msg, "etcd watch /w/: etcd: illegal base64"));

  memset (&w, 0, sizeof (w));
  f.chunks = last;
  assert_true (s->ops->watch_prefix (s, "/w/", 0, fake_watch_cb, &w, NULL) > 0);
  run_until (&loop, &w.ended, 1);
  assert_int_equal (w.n, 1);
  assert_string_equal (w.key[0], "a");
  assert_int_equal (w.rev[0], 4);
  assert_int_equal (w.end_code, EPIPE);
  assert_non_null (strstr (w.end_msg, "watch connection lost"));
  assert_null (strstr (w.end_msg, "inside a line"));
  s->ops->destroy (s);
  fake_stop (&loop, &f);
}

static void
test_http_error_statuses (void **state)
{
  static const char *const status500[] = {
    "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
  };
  static const char *const unavailable[] = {
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
    "\r\n{\"error\":\"etcdserver: no leader\",\"message\":\"etcdserver: no leader\",\"code\":14}",
  };
  static const char *const ok[] = {
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
    "{\"header\":{\"revision\":\"3\"},\"kvs\":[{\"key\":\"L2Evaw==\",\"mod_revision\":\"3\"}],"
    "\"count\":\"1\"}",
  };
  uv_loop_t loop;
  fake_t f = { .chunks = status500, .nchunks = 1 };
  rres_t r = { 0 };
  store_t *s;

  uv_loop_init (&loop);
  fake_start (&loop, &f);
  s = fake_store (&loop, &f, "");

  assert_int_equal (s->ops->range_prefix (s, "/a/", fake_range_cb, &r, NULL), 0);
  assert_int_equal (r.calls, 0);
  run_until (&loop, &r.calls, 1);
  assert_int_equal (r.calls, 1);
  assert_int_equal (r.status, -1);
  assert_non_null (strstr (r.msg, "HTTP 500"));
  assert_non_null (strstr (f.req, "POST /v3/kv/range HTTP/1.1"));
  /* base64 of "/a/" and of its range end "/a0". */
  assert_non_null (strstr (f.req, "\"key\":\"L2Ev\""));
  assert_non_null (strstr (f.req, "\"range_end\":\"L2Ew\""));

  memset (&r, 0, sizeof (r));
  f.chunks = unavailable;
  assert_int_equal (s->ops->range_prefix (s, "/a/", fake_range_cb, &r, NULL), 0);
  run_until (&loop, &r.calls, 1);
  assert_int_equal (r.status, -1);
  assert_int_equal (r.code, EAGAIN);
  assert_non_null (strstr (r.msg, "no leader"));

  memset (&r, 0, sizeof (r));
  f.chunks = ok;
  assert_int_equal (s->ops->range_prefix (s, "/a/", fake_range_cb, &r, NULL), 0);
  run_until (&loop, &r.calls, 1);
  assert_int_equal (r.status, 0);
  assert_int_equal (r.n, 1);
  assert_string_equal (r.key0, "/a/k");
  assert_int_equal (r.revision, 3);
  assert_int_equal (f.requests, 3);

  s->ops->destroy (s);
  fake_stop (&loop, &f);
}

static void
test_http_failover_and_destroy (void **state)
{
  uv_loop_t loop;
  fake_t f = { .hold = true };
  rres_t r1 = { 0 }, r2 = { 0 };
  wres_t w = { 0 };
  uv_tcp_t dead;
  struct sockaddr_in a;
  int alen = sizeof (a), dead_port;
  cleanup_free char *before = NULL;
  store_t *s;

  uv_loop_init (&loop);
  fake_start (&loop, &f);
  /* A bound, never listening socket: connections to it are refused. */
  uv_tcp_init (&loop, &dead);
  uv_ip4_addr ("127.0.0.1", 0, &a);
  assert_int_equal (uv_tcp_bind (&dead, (struct sockaddr *) &a, 0), 0);
  uv_tcp_getsockname (&dead, (struct sockaddr *) &a, &alen);
  dead_port = ntohs (a.sin_port);
  before = xasprintf ("http://127.0.0.1:%d/ , ", dead_port);
  s = fake_store (&loop, &f, before);

  assert_true (s->ops->watch_prefix (s, "/", 0, fake_watch_cb, &w, NULL) > 0);
  assert_int_equal (s->ops->range_prefix (s, "/a/", fake_range_cb, &r1, NULL), 0);
  assert_int_equal (s->ops->range_prefix (s, "/b/", fake_range_cb, &r2, NULL), 0);
  /* Run until the held server has all three requests (each moved on from
   * the refusing endpoint), then destroy with them in flight. */
  run_until (&loop, &f.requests, 3);
  assert_int_equal (r1.calls, 0);
  s->ops->destroy (s);
  assert_int_equal (r1.calls, 1);
  assert_int_equal (r1.status, -1);
  assert_string_equal (r1.msg, "store closed");
  assert_int_equal (r2.calls, 1);
  assert_int_equal (w.ended, 1);
  assert_string_equal (w.end_msg, "store closed");
  uv_close ((uv_handle_t *) &dead, NULL);
  fake_stop (&loop, &f);
  assert_int_equal (r1.calls, 1);
}

static store_t *destroy_me;

static void
destroying_range_cb (void *ctx, int status, const orch_err_t *err, const store_kv_t *kvs, size_t n,
                     int64_t revision)
{
  fake_range_cb (ctx, status, err, kvs, n, revision);
  destroy_me->ops->destroy (destroy_me);
}

static void
test_http_destroy_from_callback (void **state)
{
  static const char *const ok[] = {
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 27\r\n\r\n"
    "{\"header\":{\"revision\":\"9\"}}",
  };
  uv_loop_t loop;
  fake_t f = { .chunks = ok, .nchunks = 1 };
  rres_t r[4] = { { 0 } };
  wres_t w = { 0 };
  store_t *s;
  int i;

  uv_loop_init (&loop);
  fake_start (&loop, &f);
  s = fake_store (&loop, &f, "");
  destroy_me = s;
  assert_true (s->ops->watch_prefix (s, "/", 0, fake_watch_cb, &w, NULL) > 0);
  assert_int_equal (s->ops->range_prefix (s, "/a/", destroying_range_cb, &r[0], NULL), 0);
  for (i = 1; i < 4; i++)
    assert_int_equal (s->ops->range_prefix (s, "/b/", fake_range_cb, &r[i], NULL), 0);
  run_until (&loop, &r[0].calls, 1);
  /* Whatever had not completed when the store went got "store closed";
   * each callback ran exactly once either way. */
  assert_int_equal (r[0].status, 0);
  assert_int_equal (r[0].revision, 9);
  for (i = 1; i < 4; i++)
    {
      assert_int_equal (r[i].calls, 1);
      if (r[i].status < 0)
        assert_string_equal (r[i].msg, "store closed");
    }
  assert_int_equal (w.ended, 1);
  fake_stop (&loop, &f);
  for (i = 0; i < 4; i++)
    assert_int_equal (r[i].calls, 1);
}

static void
test_http_bad_endpoints (void **state)
{
  uv_loop_t loop;
  orch_err_t err = { 0 };

  uv_loop_init (&loop);
  assert_null (store_etcd_new (&loop, "", &err));
  assert_int_equal (err.code, EINVAL);
  assert_null (store_etcd_new (&loop, "127.0.0.1:2379", &err));
  assert_non_null (strstr (err.msg, "not an http(s) URL"));
  assert_null (store_etcd_new (&loop, "http://a:1,ftp://b", &err));
  assert_int_equal (uv_loop_close (&loop), 0);
}

static const struct CMUnitTest tests[] = {
  cmocka_unit_test (test_b64_roundtrip),
  cmocka_unit_test (test_b64_rejects_garbage),
  cmocka_unit_test (test_prefix_end),
  cmocka_unit_test (test_range_body),
  cmocka_unit_test (test_txn_body),
  cmocka_unit_test (test_txn_body_limits),
  cmocka_unit_test (test_lease_and_watch_bodies),
  cmocka_unit_test (test_parse_range_empty),
  cmocka_unit_test (test_parse_range_two),
  cmocka_unit_test (test_parse_range_leased),
  cmocka_unit_test (test_parse_txn),
  cmocka_unit_test (test_parse_errors),
  cmocka_unit_test (test_parse_malformed),
  cmocka_unit_test (test_parse_lease),
  cmocka_unit_test (test_parse_watch_history),
  cmocka_unit_test (test_parse_watch_live),
  cmocka_unit_test (test_parse_watch_compacted),
  cmocka_unit_test (test_parse_watch_errors),
  cmocka_unit_test (test_http_watch_lines_across_segments),
  cmocka_unit_test (test_http_watch_compacted),
  cmocka_unit_test (test_http_watch_refused),
  cmocka_unit_test (test_http_error_statuses),
  cmocka_unit_test (test_http_failover_and_destroy),
  cmocka_unit_test (test_http_destroy_from_callback),
  cmocka_unit_test (test_http_bad_endpoints),
};

ORCH_TEST_MAIN (tests)
