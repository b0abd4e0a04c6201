/* etcd v3 JSON gateway encoding: request bodies and response parsing (see
 * store_etcd_internal.h). No I/O here. */
#include "store_etcd_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "orch_util.h"

static void
store_etcd__json_decref (json_t **j)
{
  if (*j != NULL)
    json_decref (*j);
}
#define cleanup_json __attribute__ ((cleanup (store_etcd__json_decref)))

/* ------------------------------------------------------------------ base64 */

static const char b64_alphabet[]
    = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t
store_etcd__b64_encoded_len (size_t n)
{
  return (n + 2) / 3 * 4;
}

size_t
store_etcd__b64_encode (const void *in, size_t n, char *out)
{
  const unsigned char *p = in;
  size_t i, o = 0;

  for (i = 0; i + 2 < n; i += 3)
    {
      uint32_t v = ((uint32_t) p[i] << 16) | ((uint32_t) p[i + 1] << 8) | p[i + 2];
      out[o++] = b64_alphabet[(v >> 18) & 0x3f];
      out[o++] = b64_alphabet[(v >> 12) & 0x3f];
      out[o++] = b64_alphabet[(v >> 6) & 0x3f];
      out[o++] = b64_alphabet[v & 0x3f];
    }
  if (n - i == 1)
    {
      uint32_t v = (uint32_t) p[i] << 16;
      out[o++] = b64_alphabet[(v >> 18) & 0x3f];
      out[o++] = b64_alphabet[(v >> 12) & 0x3f];
      out[o++] = '=';
      out[o++] = '=';
    }
  else if (n - i == 2)
    {
      uint32_t v = ((uint32_t) p[i] << 16) | ((uint32_t) p[i + 1] << 8);
      out[o++] = b64_alphabet[(v >> 18) & 0x3f];
      out[o++] = b64_alphabet[(v >> 12) & 0x3f];
      out[o++] = b64_alphabet[(v >> 6) & 0x3f];
      out[o++] = '=';
    }
  out[o] = '\0';
  return o;
}

static int
b64_value (unsigned char c)
{
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+')
    return 62;
  if (c == '/')
    return 63;
  return -1;
}

int
store_etcd__b64_decode (const char *in, size_t len, char **out, size_t *out_len)
{
  cleanup_free char *buf = NULL;
  size_t i, o = 0, pad = 0;
  uint32_t acc = 0;
  int bits = 0;

  /* Padding: at most two '=' and only at the end of a 4-character group. */
  while (len > 0 && in[len - 1] == '=' && pad < 2)
    {
      len--;
      pad++;
    }
  if (pad > 0 && (len + pad) % 4 != 0)
    return -EINVAL;
  if (len % 4 == 1)
    return -EINVAL;

  buf = xmalloc (len / 4 * 3 + 3);
  for (i = 0; i < len; i++)
    {
      int v = b64_value ((unsigned char) in[i]);
      if (v < 0)
        return -EINVAL;
      acc = (acc << 6) | (uint32_t) v;
      bits += 6;
      if (bits >= 8)
        {
          bits -= 8;
          buf[o++] = (char) ((acc >> bits) & 0xff);
        }
    }
  /* Leftover bits must be zero, or two encodings would decode alike. */
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
    return -EINVAL;
  buf[o] = '\0';
  *out_len = o;
  *out = TAKE_PTR (buf);
  return 0;
}

static json_t *
b64_json (const void *data, size_t n)
{
  size_t elen = store_etcd__b64_encoded_len (n);
  cleanup_free char *buf = xmalloc (elen + 1);
  json_t *j;

  store_etcd__b64_encode (data, n, buf);
  j = json_stringn_nocheck (buf, elen);
  if (j == NULL)
    abort ();
  return j;
}

static json_t *
int64_json (int64_t v)
{
  char buf[32];
  json_t *j;

  snprintf (buf, sizeof (buf), "%" PRId64, v);
  j = json_string (buf);
  if (j == NULL)
    abort ();
  return j;
}

/* json_object_set_new that aborts on failure (only out of memory can fail
 * with the keys used here), as xmalloc does. */
static void
jset (json_t *obj, const char *key, json_t *val)
{
  if (val == NULL || json_object_set_new (obj, key, val) < 0)
    abort ();
}

static json_t *
jobject (void)
{
  json_t *j = json_object ();
  if (j == NULL)
    abort ();
  return j;
}

static json_t *
jarray (void)
{
  json_t *j = json_array ();
  if (j == NULL)
    abort ();
  return j;
}

static void
jappend (json_t *arr, json_t *val)
{
  if (val == NULL || json_array_append_new (arr, val) < 0)
    abort ();
}

static char *
dump (json_t *j, size_t *len, orch_err_t *err)
{
  char *s = json_dumps (j, JSON_COMPACT);
  if (s == NULL)
    {
      orch_err_set (err, ENOMEM, "encode etcd request");
      return NULL;
    }
  *len = strlen (s);
  return s;
}

/* ------------------------------------------------------------ request bodies */

char *
store_etcd__prefix_end (const char *prefix, size_t len, size_t *out_len)
{
  char *end;

  while (len > 0 && (unsigned char) prefix[len - 1] == 0xff)
    len--;
  if (len == 0)
    {
      end = xmalloc (1);
      end[0] = '\0';
      *out_len = 1;
      return end;
    }
  end = xmalloc (len);
  memcpy (end, prefix, len);
  end[len - 1] = (char) ((unsigned char) end[len - 1] + 1);
  *out_len = len;
  return end;
}

/* Sets "key" and, for a prefix, "range_end" on obj. An empty prefix means
 * every key: key "\0", range_end "\0". */
static void
set_prefix_range (json_t *obj, const char *prefix)
{
  size_t plen = strlen (prefix), elen;
  cleanup_free char *end = store_etcd__prefix_end (prefix, plen, &elen);

  if (plen == 0)
    jset (obj, "key", b64_json ("", 1));
  else
    jset (obj, "key", b64_json (prefix, plen));
  jset (obj, "range_end", b64_json (end, elen));
}

char *
store_etcd__range_body (const char *prefix, size_t *len, orch_err_t *err)
{
  cleanup_json json_t *req = jobject ();

  set_prefix_range (req, prefix);
  return dump (req, len, err);
}

int
store__txn_check_limits (size_t ncmp, const store_op_t *ops, size_t nops, orch_err_t *err)
{
  size_t i, bytes = 0;

  if (nops > STORE_MAX_TXN_OPS || ncmp > STORE_MAX_TXN_OPS)
    return STORE__FAIL (err, E2BIG, "txn has %zu compares and %zu ops; at most %d of each", ncmp,
                        nops, STORE_MAX_TXN_OPS);
  for (i = 0; i < nops; i++)
    {
      if (ops[i].key == NULL || ops[i].key[0] == '\0')
        {
          if (ops[i].type != STORE_OP_DELETE_PREFIX)
            return STORE__FAIL (err, EINVAL, "txn op %zu has an empty key", i);
          if (ops[i].key == NULL)
            return STORE__FAIL (err, EINVAL, "txn op %zu has no key", i);
        }
      if (ops[i].type != STORE_OP_PUT && ops[i].type != STORE_OP_DELETE
          && ops[i].type != STORE_OP_DELETE_PREFIX)
        return STORE__FAIL (err, EINVAL, "txn op %zu has unknown type %d", i, (int) ops[i].type);
      if (ops[i].type == STORE_OP_PUT && ops[i].value == NULL && ops[i].value_len > 0)
        return STORE__FAIL (err, EINVAL, "txn op %zu has no value", i);
      bytes += strlen (ops[i].key);
      if (ops[i].type == STORE_OP_PUT)
        {
          if (ops[i].value_len > STORE_MAX_REQUEST_BYTES)
            bytes = (size_t) STORE_MAX_REQUEST_BYTES + 1;
          else
            bytes += ops[i].value_len;
        }
      if (bytes > STORE_MAX_REQUEST_BYTES)
        return STORE__FAIL (err, EMSGSIZE, "txn carries more than %d bytes of keys and values",
                            STORE_MAX_REQUEST_BYTES);
    }
  return 0;
}

char *
store_etcd__txn_body (const store_cmp_t *cmps, size_t ncmp, const store_op_t *ops, size_t nops,
                      size_t *len, orch_err_t *err)
{
  cleanup_json json_t *req = NULL;
  json_t *compare, *success;
  size_t i;

  if (store__txn_check_limits (ncmp, ops, nops, err) < 0)
    return NULL;
  for (i = 0; i < ncmp; i++)
    if (cmps[i].key == NULL || cmps[i].key[0] == '\0')
      {
        orch_err_set (err, EINVAL, "txn compare %zu has no key", i);
        return NULL;
      }

  req = jobject ();
  compare = jarray ();
  jset (req, "compare", compare);
  for (i = 0; i < ncmp; i++)
    {
      json_t *c = jobject ();
      jappend (compare, c);
      jset (c, "key", b64_json (cmps[i].key, strlen (cmps[i].key)));
      jset (c, "result", json_string ("EQUAL"));
      if (cmps[i].target == STORE_CMP_CREATE_REVISION)
        {
          jset (c, "target", json_string ("CREATE"));
          jset (c, "create_revision", int64_json (cmps[i].revision));
        }
      else
        {
          jset (c, "target", json_string ("MOD"));
          jset (c, "mod_revision", int64_json (cmps[i].revision));
        }
    }

  success = jarray ();
  jset (req, "success", success);
  for (i = 0; i < nops; i++)
    {
      json_t *op = jobject (), *r = jobject ();
      jappend (success, op);
      switch (ops[i].type)
        {
        case STORE_OP_PUT:
          jset (op, "request_put", r);
          jset (r, "key", b64_json (ops[i].key, strlen (ops[i].key)));
          jset (r, "value", b64_json (ops[i].value ? ops[i].value : "", ops[i].value_len));
          if (ops[i].lease != 0)
            jset (r, "lease", int64_json (ops[i].lease));
          break;
        case STORE_OP_DELETE:
          jset (op, "request_delete_range", r);
          jset (r, "key", b64_json (ops[i].key, strlen (ops[i].key)));
          break;
        case STORE_OP_DELETE_PREFIX:
          jset (op, "request_delete_range", r);
          set_prefix_range (r, ops[i].key);
          break;
        }
    }
  return dump (req, len, err);
}

char *
store_etcd__lease_grant_body (int64_t ttl_s, size_t *len, orch_err_t *err)
{
  cleanup_json json_t *req = jobject ();

  if (ttl_s <= 0)
    {
      orch_err_set (err, EINVAL, "lease TTL must be positive, not %" PRId64, ttl_s);
      return NULL;
    }
  jset (req, "TTL", int64_json (ttl_s));
  return dump (req, len, err);
}

char *
store_etcd__lease_id_body (int64_t lease_id, size_t *len, orch_err_t *err)
{
  cleanup_json json_t *req = jobject ();

  jset (req, "ID", int64_json (lease_id));
  return dump (req, len, err);
}

char *
store_etcd__watch_body (const char *prefix, int64_t start_revision, size_t *len, orch_err_t *err)
{
  cleanup_json json_t *req = jobject ();
  json_t *create = jobject ();

  jset (req, "create_request", create);
  set_prefix_range (create, prefix);
  if (start_revision > 0)
    jset (create, "start_revision", int64_json (start_revision));
  return dump (req, len, err);
}

/* --------------------------------------------------------------- responses */

int
store_etcd__grpc_to_errno (int grpc_code)
{
  switch (grpc_code)
    {
    case 1: /* CANCELLED */
      return ECANCELED;
    case 3: /* INVALID_ARGUMENT */
    case 9: /* FAILED_PRECONDITION */
      return EINVAL;
    case 4: /* DEADLINE_EXCEEDED */
      return ETIMEDOUT;
    case 5: /* NOT_FOUND */
      return ENOENT;
    case 6: /* ALREADY_EXISTS */
      return EEXIST;
    case 7:  /* PERMISSION_DENIED */
    case 16: /* UNAUTHENTICATED */
      return EACCES;
    case 8: /* RESOURCE_EXHAUSTED (NOSPACE alarm, too large) */
      return ENOSPC;
    case 10: /* ABORTED */
    case 14: /* UNAVAILABLE (no leader, ...) */
      return EAGAIN;
    case 11: /* OUT_OF_RANGE (compacted, future revision) */
      return ERANGE;
    case 12: /* UNIMPLEMENTED */
      return ENOSYS;
    default:
      return EIO;
    }
}

/* Reads an int64 that etcd encodes as a JSON string (a JSON integer is
 * accepted too). A missing field is 0, etcd's default. */
static int
get_int64 (json_t *obj, const char *key, int64_t *out, orch_err_t *err)
{
  json_t *v = json_object_get (obj, key);
  const char *s;
  char *end;
  long long ll;

  *out = 0;
  if (v == NULL || json_is_null (v))
    return 0;
  if (json_is_integer (v))
    {
      *out = (int64_t) json_integer_value (v);
      return 0;
    }
  if (!json_is_string (v))
    return STORE__FAIL (err, EPROTO, "etcd response: \"%s\" is not an integer", key);
  s = json_string_value (v);
  errno = 0;
  ll = strtoll (s, &end, 10);
  if (s[0] == '\0' || *end != '\0' || errno != 0)
    return STORE__FAIL (err, EPROTO, "etcd response: \"%s\" is not an int64: \"%.40s\"", key, s);
  *out = (int64_t) ll;
  return 0;
}

static bool
get_bool (json_t *obj, const char *key)
{
  json_t *v = json_object_get (obj, key);
  return v != NULL && json_is_true (v);
}

/* Decodes a base64 field; missing means empty (etcd omits empty values). */
static int
get_b64 (json_t *obj, const char *key, char **out, size_t *out_len, orch_err_t *err)
{
  json_t *v = json_object_get (obj, key);

  if (v == NULL || json_is_null (v))
    {
      *out = xstrdup ("");
      *out_len = 0;
      return 0;
    }
  if (!json_is_string (v))
    return STORE__FAIL (err, EPROTO, "etcd response: \"%s\" is not a string", key);
  if (store_etcd__b64_decode (json_string_value (v), json_string_length (v), out, out_len) < 0)
    return STORE__FAIL (err, EPROTO, "etcd response: \"%s\" is not base64", key);
  return 0;
}

static int
header_revision (json_t *obj, int64_t *revision, orch_err_t *err)
{
  json_t *h = json_object_get (obj, "header");

  *revision = 0;
  if (h == NULL)
    return 0;
  if (!json_is_object (h))
    return STORE__FAIL (err, EPROTO, "etcd response: \"header\" is not an object");
  return get_int64 (h, "revision", revision, err);
}

/* If obj is an error body, fills err and returns -1. Two shapes exist: a
 * unary error {"error": "text", "code": N, "message": "text"} and an error
 * inside a stream {"error": {"grpc_code": N, "http_code": N, "message":
 * "text", "http_status": "..."}}. */
static int
check_error (json_t *obj, orch_err_t *err)
{
  json_t *e = json_object_get (obj, "error");
  json_t *src = obj;
  const char *msg = NULL;
  json_t *code;
  int grpc = 2;

  if (e == NULL)
    return 0;
  if (json_is_object (e))
    src = e;
  code = json_object_get (src, "code");
  if (code == NULL)
    code = json_object_get (src, "grpc_code");
  if (json_is_integer (code))
    grpc = (int) json_integer_value (code);
  if (json_is_string (json_object_get (src, "message")))
    msg = json_string_value (json_object_get (src, "message"));
  else if (json_is_string (e))
    msg = json_string_value (e);
  if (msg == NULL || msg[0] == '\0')
    msg = "unknown error";
  orch_err_set (err, store_etcd__grpc_to_errno (grpc), "etcd: %s (gRPC code %d)", msg, grpc);
  return -1;
}

/* Parses body into a JSON object, and fails on an error body. */
static json_t *
load_object (const char *body, size_t len, orch_err_t *err)
{
  json_error_t jerr;
  json_t *j;

  if (len > STORE_ETCD_MAX_RESPONSE)
    {
      orch_err_set (err, EMSGSIZE, "etcd response of %zu bytes is too large", len);
      return NULL;
    }
  j = json_loadb (body, len, 0, &jerr);
  if (j == NULL)
    {
      orch_err_set (err, EPROTO, "etcd response is not JSON: %s (at %d:%d)", jerr.text, jerr.line,
                    jerr.column);
      return NULL;
    }
  if (!json_is_object (j))
    {
      json_decref (j);
      orch_err_set (err, EPROTO, "etcd response is not a JSON object");
      return NULL;
    }
  if (check_error (j, err) < 0)
    {
      json_decref (j);
      return NULL;
    }
  return j;
}

static void
kv_clear (store_kv_t *kv)
{
  free (kv->key);
  free (kv->value);
  memset (kv, 0, sizeof (*kv));
}

/* Fills kv from an etcd mvccpb.KeyValue object. */
static int
parse_kv (json_t *o, store_kv_t *kv, orch_err_t *err)
{
  size_t klen;

  memset (kv, 0, sizeof (*kv));
  if (!json_is_object (o))
    return STORE__FAIL (err, EPROTO, "etcd response: kv is not an object");
  if (json_object_get (o, "key") == NULL)
    return STORE__FAIL (err, EPROTO, "etcd response: kv without key");
  if (get_b64 (o, "key", &kv->key, &klen, err) < 0)
    goto fail;
  if (strlen (kv->key) != klen)
    {
      orch_err_set (err, EPROTO, "etcd response: key contains a NUL byte");
      goto fail;
    }
  if (get_b64 (o, "value", &kv->value, &kv->value_len, err) < 0)
    goto fail;
  if (get_int64 (o, "create_revision", &kv->create_revision, err) < 0
      || get_int64 (o, "mod_revision", &kv->mod_revision, err) < 0
      || get_int64 (o, "lease", &kv->lease, err) < 0)
    goto fail;
  return 0;

fail:
  kv_clear (kv);
  return -1;
}

void
store_etcd__kvs_free (store_kv_t *kvs, size_t n)
{
  size_t i;

  if (kvs == NULL)
    return;
  for (i = 0; i < n; i++)
    kv_clear (&kvs[i]);
  free (kvs);
}

int
store_etcd__parse_range (const char *body, size_t len, store_kv_t **kvs_out, size_t *n_out,
                         int64_t *revision, orch_err_t *err)
{
  cleanup_json json_t *j = load_object (body, len, err);
  json_t *arr;
  store_kv_t *kvs = NULL;
  size_t i, n;

  if (j == NULL)
    return -1;
  if (header_revision (j, revision, err) < 0)
    return -1;
  arr = json_object_get (j, "kvs");
  n = arr ? json_array_size (arr) : 0;
  if (arr != NULL && !json_is_array (arr))
    return STORE__FAIL (err, EPROTO, "etcd response: \"kvs\" is not an array");
  if (n > 0)
    kvs = xcalloc (n, sizeof (*kvs));
  for (i = 0; i < n; i++)
    if (parse_kv (json_array_get (arr, i), &kvs[i], err) < 0)
      {
        store_etcd__kvs_free (kvs, i);
        return -1;
      }
  *kvs_out = kvs;
  *n_out = n;
  return 0;
}

int
store_etcd__parse_txn (const char *body, size_t len, bool *succeeded, int64_t *revision,
                       orch_err_t *err)
{
  cleanup_json json_t *j = load_object (body, len, err);

  if (j == NULL)
    return -1;
  if (header_revision (j, revision, err) < 0)
    return -1;
  *succeeded = get_bool (j, "succeeded");
  return 0;
}

int
store_etcd__parse_lease (const char *body, size_t len, int64_t *lease_id, int64_t *ttl_s,
                         orch_err_t *err)
{
  cleanup_json json_t *j = load_object (body, len, err);
  json_t *r;
  int64_t id;

  if (j == NULL)
    return -1;
  /* Keepalive is a stream: its answer is wrapped in "result". */
  r = json_object_get (j, "result");
  if (r != NULL)
    {
      if (!json_is_object (r))
        return STORE__FAIL (err, EPROTO, "etcd response: \"result\" is not an object");
      if (check_error (r, err) < 0)
        return -1;
    }
  else
    r = j;
  if (get_int64 (r, "TTL", ttl_s, err) < 0 || get_int64 (r, "ID", &id, err) < 0)
    return -1;
  if (json_object_get (r, "ID") != NULL)
    *lease_id = id;
  if (*ttl_s < 0)
    *ttl_s = 0;
  return 0;
}

void
store_etcd__watch_msg_free (store_etcd_watch_msg_t *msg)
{
  size_t i;

  if (msg == NULL)
    return;
  for (i = 0; i < msg->n_events; i++)
    kv_clear (&msg->events[i].kv);
  free (msg->events);
  free (msg->cancel_reason);
  memset (msg, 0, sizeof (*msg));
}

int
store_etcd__parse_watch_line (const char *line, size_t len, store_etcd_watch_msg_t *msg,
                              orch_err_t *err)
{
  cleanup_json json_t *j = load_object (line, len, err);
  json_t *r, *evs, *reason;
  size_t i, n;

  memset (msg, 0, sizeof (*msg));
  if (j == NULL)
    return -1;
  r = json_object_get (j, "result");
  if (r == NULL || !json_is_object (r))
    return STORE__FAIL (err, EPROTO, "etcd watch: line without \"result\"");
  if (header_revision (r, &msg->revision, err) < 0)
    return -1;
  msg->created = get_bool (r, "created");
  msg->canceled = get_bool (r, "canceled");
  if (get_int64 (r, "compact_revision", &msg->compact_revision, err) < 0)
    return -1;
  reason = json_object_get (r, "cancel_reason");
  if (json_is_string (reason) && json_string_length (reason) > 0)
    msg->cancel_reason = xstrdup (json_string_value (reason));

  evs = json_object_get (r, "events");
  if (evs != NULL && !json_is_array (evs))
    {
      store_etcd__watch_msg_free (msg);
      return STORE__FAIL (err, EPROTO, "etcd watch: \"events\" is not an array");
    }
  n = evs ? json_array_size (evs) : 0;
  if (n > 0)
    msg->events = xcalloc (n, sizeof (*msg->events));
  for (i = 0; i < n; i++)
    {
      json_t *ev = json_array_get (evs, i), *type;
      store_event_t *out = &msg->events[i];

      if (!json_is_object (ev))
        {
          store_etcd__watch_msg_free (msg);
          return STORE__FAIL (err, EPROTO, "etcd watch: event is not an object");
        }
      /* PUT is enum value 0 and therefore omitted. */
      type = json_object_get (ev, "type");
      if (type == NULL || (json_is_string (type) && strcmp (json_string_value (type), "PUT") == 0)
          || (json_is_integer (type) && json_integer_value (type) == 0))
        out->type = STORE_EV_PUT;
      else if ((json_is_string (type) && strcmp (json_string_value (type), "DELETE") == 0)
               || (json_is_integer (type) && json_integer_value (type) == 1))
        out->type = STORE_EV_DELETE;
      else
        {
          store_etcd__watch_msg_free (msg);
          return STORE__FAIL (err, EPROTO, "etcd watch: unknown event type");
        }
      if (parse_kv (json_object_get (ev, "kv"), &out->kv, err) < 0)
        {
          store_etcd__watch_msg_free (msg);
          return -1;
        }
      msg->n_events = i + 1;
    }
  return 0;
}
