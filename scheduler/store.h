/* The scheduler's state store: an ops table with an etcd v3 backend (its JSON
 * gateway, via libcurl's multi interface driven by the libuv loop) and an
 * in-memory backend for unit tests of the scheduler's logic.
 *
 * Every call is asynchronous: it returns at once (0, or -1 with err when the
 * request could not even be queued) and its callback runs later from the
 * loop, exactly once, also on failure. Nothing blocks the loop. Keys and
 * values are byte strings; values may contain NULs.
 *
 * Errors: a call refused up front returns -1 without a callback (more than
 * STORE_MAX_TXN_OPS ops: E2BIG; more than STORE_MAX_REQUEST_BYTES of raw key
 * and value bytes: EMSGSIZE — etcd's own limit counts the encoded request,
 * so keep a margin; a second watch: EBUSY; any call after destroy:
 * ECANCELED). In callbacks err->code is ENOENT for a missing lease, EINVAL
 * for a request etcd refused, EAGAIN when etcd has no leader, and ERANGE
 * when a watch's start revision was compacted. watch_cancel is silent: no
 * callback follows it. destroy runs every outstanding callback before it
 * returns, with ECANCELED "store closed". */
#ifndef ORCH_STORE_H
#define ORCH_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "orch_err.h"

/* etcd's limits (FACTS.md); callers batch under them. */
#define STORE_MAX_TXN_OPS 128
#define STORE_MAX_REQUEST_BYTES (1536 * 1024)

typedef struct store_s store_t;

typedef struct store_kv_s
{
  char *key;
  char *value; /* NUL-terminated for convenience; value_len is authoritative */
  size_t value_len;
  int64_t create_revision;
  int64_t mod_revision;
  int64_t lease;
} store_kv_t;

typedef enum
{
  STORE_OP_PUT = 0,
  STORE_OP_DELETE,        /* one key */
  STORE_OP_DELETE_PREFIX, /* every key starting with key */
} store_op_type_t;

typedef struct store_op_s
{
  store_op_type_t type;
  const char *key;
  const char *value; /* PUT only */
  size_t value_len;
  int64_t lease; /* PUT only; 0 = none */
} store_op_t;

typedef enum
{
  STORE_CMP_MOD_REVISION = 0,    /* key's mod_revision == revision */
  STORE_CMP_CREATE_REVISION,     /* key's create_revision == revision (0: key absent) */
} store_cmp_target_t;

typedef struct store_cmp_s
{
  const char *key;
  store_cmp_target_t target;
  int64_t revision;
} store_cmp_t;

typedef enum
{
  STORE_EV_PUT = 0,
  STORE_EV_DELETE,
} store_ev_type_t;

typedef struct store_event_s
{
  store_ev_type_t type;
  store_kv_t kv; /* for DELETE only key and mod_revision are set */
} store_event_t;

/* Callbacks. status is 0 on success or -1 with err filled. Data passed to a
 * callback is owned by the store and valid only during the call. */
typedef void (*store_range_cb) (void *ctx, int status, const orch_err_t *err, const store_kv_t *kvs,
                                size_t n, int64_t revision);
/* succeeded is false when a compare failed (status is still 0). */
typedef void (*store_txn_cb) (void *ctx, int status, const orch_err_t *err, bool succeeded,
                              int64_t revision);
typedef void (*store_lease_cb) (void *ctx, int status, const orch_err_t *err, int64_t lease_id,
                                int64_t ttl_s);
/* Called for each batch of events in revision order. A status of -1 means the
 * watch ended (err says why: compacted, connection lost) and no more events
 * follow; the caller re-reads and watches again. */
typedef void (*store_watch_cb) (void *ctx, int status, const orch_err_t *err,
                                const store_event_t *evs, size_t n, int64_t revision);

typedef struct store_ops_s
{
  const char *name;
  /* All keys starting with prefix, sorted by key, and the store revision. */
  int (*range_prefix) (store_t *s, const char *prefix, store_range_cb cb, void *ctx, orch_err_t *err);
  /* If every compare holds, applies every op atomically. ncmp may be 0.
   * At most STORE_MAX_TXN_OPS ops. */
  int (*txn) (store_t *s, const store_cmp_t *cmps, size_t ncmp, const store_op_t *ops, size_t nops,
              store_txn_cb cb, void *ctx, orch_err_t *err);
  int (*lease_grant) (store_t *s, int64_t ttl_s, store_lease_cb cb, void *ctx, orch_err_t *err);
  /* One keep-alive; cb gets ttl_s = 0 when the lease no longer exists. */
  int (*lease_keepalive) (store_t *s, int64_t lease_id, store_lease_cb cb, void *ctx,
                          orch_err_t *err);
  int (*lease_revoke) (store_t *s, int64_t lease_id, store_lease_cb cb, void *ctx, orch_err_t *err);
  /* Follows every change under prefix from start_revision on. One watch per
   * store at a time; returns a handle id > 0. */
  int (*watch_prefix) (store_t *s, const char *prefix, int64_t start_revision, store_watch_cb cb,
                       void *ctx, orch_err_t *err);
  void (*watch_cancel) (store_t *s);
  /* Cancels everything outstanding (callbacks get status -1, "store closed")
   * and frees s once its handles are closed. */
  void (*destroy) (store_t *s);
} store_ops_t;

struct store_s
{
  const store_ops_t *ops;
  uv_loop_t *loop;
};

/* etcd backend. endpoints is a comma-separated list of base URLs
 * ("http://127.0.0.1:2379,http://10.0.0.2:2379"); requests fail over to the
 * next endpoint when one cannot be reached. */
store_t *store_etcd_new (uv_loop_t *loop, const char *endpoints, orch_err_t *err);

/* In-memory backend with etcd's revision semantics, for unit tests. Leases
 * never expire on their own; store_mem_expire_lease() simulates expiry. */
store_t *store_mem_new (uv_loop_t *loop);
void store_mem_expire_lease (store_t *s, int64_t lease_id);

#endif
