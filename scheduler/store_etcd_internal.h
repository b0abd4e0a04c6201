/* Private to the etcd store: building the etcd v3 JSON gateway's request
 * bodies and parsing its responses. Pure functions (no I/O), so that the unit
 * tests drive them with responses captured from a real etcd.
 *
 * The gateway's encoding (etcd 3.4): keys and values are base64, int64
 * fields are JSON strings, and fields at their default value are omitted (an
 * empty range has no "kvs", a failed txn has no "succeeded", a watch PUT
 * event has no "type", an empty value has no "value"). */
#ifndef STORE_ETCD_INTERNAL_H
#define STORE_ETCD_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "orch_err.h"
#include "store.h"

/* Sets err and evaluates to -1: the store's calls return -1, not -errno,
 * whatever the code in err (orch_err_set returns -code). */
#define STORE__FAIL(err, ...) (orch_err_set ((err), __VA_ARGS__), -1)

/* Largest response body (or watch line) accepted; more is a protocol error. */
#define STORE_ETCD_MAX_RESPONSE (64u * 1024 * 1024)

/* ---- base64 (RFC 4648 standard alphabet, padded, as Go's encoding/json) ---- */

/* Length of the encoding of n bytes, without the NUL. */
size_t store_etcd__b64_encoded_len (size_t n);
/* Encodes n bytes into out, which holds store_etcd__b64_encoded_len (n) + 1
 * bytes; NUL-terminates and returns the length written. */
size_t store_etcd__b64_encode (const void *in, size_t n, char *out);
/* Decodes len characters into a newly allocated, NUL-terminated buffer
 * (*out, caller frees; *out_len excludes the NUL). Accepts missing padding;
 * refuses anything else that is not base64. Returns 0 or -EINVAL. */
int store_etcd__b64_decode (const char *in, size_t len, char **out, size_t *out_len);

/* ---- request bodies: each returns a newly allocated NUL-terminated JSON
 * document (caller frees) and its length in *len, or NULL with err set. ---- */

/* range_end for a prefix: the prefix with its last byte incremented (bytes at
 * 0xff are dropped first). Returns a newly allocated buffer of *out_len bytes;
 * for an empty or all-0xff prefix that is the single byte "\0", which etcd
 * reads as "every key >= key". */
char *store_etcd__prefix_end (const char *prefix, size_t len, size_t *out_len);

char *store_etcd__range_body (const char *prefix, size_t *len, orch_err_t *err);
/* Refuses more than STORE_MAX_TXN_OPS ops and key+value bytes above
 * STORE_MAX_REQUEST_BYTES before building anything. */
char *store_etcd__txn_body (const store_cmp_t *cmps, size_t ncmp, const store_op_t *ops,
                            size_t nops, size_t *len, orch_err_t *err);
char *store_etcd__lease_grant_body (int64_t ttl_s, size_t *len, orch_err_t *err);
/* Body of /v3/lease/keepalive and /v3/lease/revoke: {"ID": "<id>"}. */
char *store_etcd__lease_id_body (int64_t lease_id, size_t *len, orch_err_t *err);
/* start_revision <= 0 means "from now". */
char *store_etcd__watch_body (const char *prefix, int64_t start_revision, size_t *len,
                              orch_err_t *err);

/* Checks the same limits as store_etcd__txn_body; shared with store_mem so
 * that both backends refuse the same requests. Returns 0 or -1 with err. */
int store__txn_check_limits (size_t ncmp, const store_op_t *ops, size_t nops, orch_err_t *err);

/* ---- responses. Each parser takes the whole body (not NUL-terminated). An
 * error body ({"error": ..., "code": N, "message": ...}) makes it return -1
 * with err set to etcd's message, err->code mapped from the gRPC code
 * (NOT_FOUND -> ENOENT, INVALID_ARGUMENT -> EINVAL, ...). ---- */

/* kvs are newly allocated (free with store_etcd__kvs_free), sorted as etcd
 * sent them. */
int store_etcd__parse_range (const char *body, size_t len, store_kv_t **kvs, size_t *n,
                             int64_t *revision, orch_err_t *err);
void store_etcd__kvs_free (store_kv_t *kvs, size_t n);

int store_etcd__parse_txn (const char *body, size_t len, bool *succeeded, int64_t *revision,
                           orch_err_t *err);
/* Lease grant, keepalive (wrapped in "result") and revoke responses. For a
 * keepalive of a lease that no longer exists etcd answers without a TTL:
 * *ttl_s is then 0. Revoke answers carry neither: both are 0 and *lease_id is
 * left as the caller set it. */
int store_etcd__parse_lease (const char *body, size_t len, int64_t *lease_id, int64_t *ttl_s,
                             orch_err_t *err);

/* One line of the /v3/watch stream. */
typedef struct store_etcd_watch_msg_s
{
  int64_t revision; /* header.revision; 0 when absent */
  bool created;
  bool canceled;
  int64_t compact_revision; /* > 0: the start revision was compacted */
  char *cancel_reason;      /* NULL when absent */
  store_event_t *events;    /* n_events entries, each kv owned */
  size_t n_events;
} store_etcd_watch_msg_t;

/* Parses one line (without its newline). An error object in the stream
 * ({"error": {"grpc_code": N, "message": ...}}) or an error body returns -1
 * with err. On success msg is filled; free it with store_etcd__watch_msg_free. */
int store_etcd__parse_watch_line (const char *line, size_t len, store_etcd_watch_msg_t *msg,
                                  orch_err_t *err);
void store_etcd__watch_msg_free (store_etcd_watch_msg_t *msg);

/* Maps a gRPC status code to an errno value. */
int store_etcd__grpc_to_errno (int grpc_code);

#endif
