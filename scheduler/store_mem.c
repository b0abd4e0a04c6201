/* In-memory store with etcd's semantics, for unit tests of the scheduler.
 *
 * Like etcd: one global revision (1 on a fresh store), bumped once by every
 * write that changes something; per-key create and mod revisions; a compare
 * on a missing key sees revision 0; a txn may not put the same key twice or
 * put a key it also deletes; keys attached to a lease go when it is revoked
 * (in one revision). Every operation is applied when it is called; its result
 * is queued and delivered from a 0 ms timer, never inside the call. Watch
 * events are kept for the store's lifetime (no compaction), so a watch may
 * start at any past revision. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "orch_util.h"
#include "store.h"
#include "store_etcd_internal.h"

typedef enum
{
  MEM_DONE_RANGE,
  MEM_DONE_TXN,
  MEM_DONE_LEASE,
} mem_done_kind_t;

/* A result waiting for delivery from the loop. */
typedef struct mem_done_s
{
  struct mem_done_s *next;
  mem_done_kind_t kind;
  union
  {
    store_range_cb range;
    store_txn_cb txn;
    store_lease_cb lease;
  } cb;
  void *ctx;
  int status;
  orch_err_t err;
  store_kv_t *kvs;
  size_t n;
  int64_t revision;
  bool succeeded;
  int64_t lease_id;
  int64_t ttl_s;
} mem_done_t;

typedef struct mem_lease_s
{
  int64_t id;
  int64_t ttl_s;
} mem_lease_t;

typedef struct mem_hist_s
{
  int64_t revision;
  store_event_t ev;
} mem_hist_t;

typedef struct store_mem_s
{
  store_t base;
  uv_timer_t timer;
  bool closing;

  int64_t revision;
  store_kv_t *kvs; /* sorted by key */
  size_t nkvs, cap_kvs;

  mem_lease_t *leases;
  size_t nleases, cap_leases;
  int64_t next_lease;

  mem_hist_t *hist; /* every event, in revision order */
  size_t nhist, cap_hist;

  mem_done_t *head, *tail;

  /* The one watch. */
  int watch_id;
  int next_watch_id;
  char *watch_prefix;
  int64_t watch_next_rev;
  store_watch_cb watch_cb;
  void *watch_ctx;
} store_mem_t;

static void mem_timer_cb (uv_timer_t *t);

static void
kv_free_fields (store_kv_t *kv)
{
  free (kv->key);
  free (kv->value);
}

static void
kv_copy (store_kv_t *dst, const store_kv_t *src)
{
  *dst = *src;
  dst->key = xstrdup (src->key);
  dst->value = xmalloc (src->value_len + 1);
  memcpy (dst->value, src->value, src->value_len);
  dst->value[src->value_len] = '\0';
}

static bool
has_prefix (const char *key, const char *prefix)
{
  return strncmp (key, prefix, strlen (prefix)) == 0;
}

/* Index of the first key >= key. */
static size_t
lower_bound (store_mem_t *s, const char *key)
{
  size_t lo = 0, hi = s->nkvs;

  while (lo < hi)
    {
      size_t mid = lo + (hi - lo) / 2;
      if (strcmp (s->kvs[mid].key, key) < 0)
        lo = mid + 1;
      else
        hi = mid;
    }
  return lo;
}

static store_kv_t *
find_kv (store_mem_t *s, const char *key)
{
  size_t i = lower_bound (s, key);
  if (i < s->nkvs && strcmp (s->kvs[i].key, key) == 0)
    return &s->kvs[i];
  return NULL;
}

static mem_lease_t *
find_lease (store_mem_t *s, int64_t id)
{
  size_t i;
  for (i = 0; i < s->nleases; i++)
    if (s->leases[i].id == id)
      return &s->leases[i];
  return NULL;
}

static void
hist_add (store_mem_t *s, store_ev_type_t type, const store_kv_t *kv)
{
  mem_hist_t *h;

  orch_grow ((void **) &s->hist, &s->cap_hist, s->nhist + 1, sizeof (*s->hist));
  h = &s->hist[s->nhist++];
  memset (h, 0, sizeof (*h));
  h->revision = kv->mod_revision;
  h->ev.type = type;
  if (type == STORE_EV_PUT)
    kv_copy (&h->ev.kv, kv);
  else
    {
      /* etcd's DELETE events carry only the key and the deleting revision. */
      h->ev.kv.key = xstrdup (kv->key);
      h->ev.kv.value = xstrdup ("");
      h->ev.kv.mod_revision = kv->mod_revision;
    }
}

static void
arm (store_mem_t *s)
{
  if (!s->closing && !uv_is_active ((uv_handle_t *) &s->timer))
    uv_timer_start (&s->timer, mem_timer_cb, 0, 0);
}

static mem_done_t *
done_new (store_mem_t *s, mem_done_kind_t kind, void *ctx)
{
  mem_done_t *d = xcalloc (1, sizeof (*d));

  d->kind = kind;
  d->ctx = ctx;
  d->revision = s->revision;
  if (s->tail)
    s->tail->next = d;
  else
    s->head = d;
  s->tail = d;
  arm (s);
  return d;
}

static void
done_fail (mem_done_t *d, int code, const char *msg)
{
  d->status = -1;
  orch_err_set (&d->err, code, "%s", msg);
}

static void
done_deliver (mem_done_t *d)
{
  const orch_err_t *err = d->status < 0 ? &d->err : NULL;

  switch (d->kind)
    {
    case MEM_DONE_RANGE:
      d->cb.range (d->ctx, d->status, err, d->kvs, d->n, d->revision);
      break;
    case MEM_DONE_TXN:
      d->cb.txn (d->ctx, d->status, err, d->succeeded, d->revision);
      break;
    case MEM_DONE_LEASE:
      d->cb.lease (d->ctx, d->status, err, d->lease_id, d->ttl_s);
      break;
    }
}

static void
done_free (mem_done_t *d)
{
  size_t i;
  for (i = 0; i < d->n; i++)
    kv_free_fields (&d->kvs[i]);
  free (d->kvs);
  free (d);
}

/* Delivers the pending watch events, all in one batch (etcd may also send
 * several revisions in one response). */
static void
deliver_watch (store_mem_t *s)
{
  size_t lo = 0, hi = s->nhist, i, n = 0;
  store_event_t *evs = NULL;
  int64_t upto = s->revision;
  store_watch_cb cb;
  void *ctx;

  if (s->watch_id == 0 || s->watch_next_rev > upto)
    return;
  while (lo < hi)
    {
      size_t mid = lo + (hi - lo) / 2;
      if (s->hist[mid].revision < s->watch_next_rev)
        lo = mid + 1;
      else
        hi = mid;
    }
  for (i = lo; i < s->nhist; i++)
    if (has_prefix (s->hist[i].ev.kv.key, s->watch_prefix))
      n++;
  s->watch_next_rev = upto + 1;
  if (n == 0)
    return;
  /* Shallow copies: the history outlives the call. */
  evs = xcalloc (n, sizeof (*evs));
  n = 0;
  for (i = lo; i < s->nhist; i++)
    if (has_prefix (s->hist[i].ev.kv.key, s->watch_prefix))
      evs[n++] = s->hist[i].ev;
  cb = s->watch_cb;
  ctx = s->watch_ctx;
  cb (ctx, 0, NULL, evs, n, upto);
  free (evs);
}

static void
mem_timer_cb (uv_timer_t *t)
{
  store_mem_t *s = t->data;
  mem_done_t *d = s->head;

  /* Take the current queue; results queued by the callbacks go to the next
   * round, so a callback that issues a request each time cannot starve the
   * loop. */
  s->head = s->tail = NULL;
  while (d != NULL)
    {
      mem_done_t *next = d->next;
      if (!s->closing)
        done_deliver (d);
      else
        {
          /* destroy() ran inside a callback: the rest fail as closed. */
          done_fail (d, ECANCELED, "store closed");
          done_deliver (d);
        }
      done_free (d);
      d = next;
    }
  if (!s->closing)
    deliver_watch (s);
}

/* ------------------------------------------------------------------- ops */

static int
mem_range_prefix (store_t *base, const char *prefix, store_range_cb cb, void *ctx, orch_err_t *err)
{
  store_mem_t *s = (store_mem_t *) base;
  mem_done_t *d;
  size_t i, first, n = 0;

  if (s->closing)
    return STORE__FAIL (err, ECANCELED, "store closed");
  if (prefix == NULL || cb == NULL)
    return STORE__FAIL (err, EINVAL, "range: prefix and callback are required");
  first = lower_bound (s, prefix);
  for (i = first; i < s->nkvs && has_prefix (s->kvs[i].key, prefix); i++)
    n++;
  d = done_new (s, MEM_DONE_RANGE, ctx);
  d->cb.range = cb;
  if (n > 0)
    d->kvs = xcalloc (n, sizeof (*d->kvs));
  for (i = 0; i < n; i++)
    kv_copy (&d->kvs[i], &s->kvs[first + i]);
  d->n = n;
  return 0;
}

static bool
cmp_holds (store_mem_t *s, const store_cmp_t *c)
{
  store_kv_t *kv = find_kv (s, c->key);
  int64_t have;

  /* etcd compares a missing key as a zero KeyValue: revisions are 0. */
  if (c->target == STORE_CMP_CREATE_REVISION)
    have = kv ? kv->create_revision : 0;
  else
    have = kv ? kv->mod_revision : 0;
  return have == c->revision;
}

static void
delete_index (store_mem_t *s, size_t i, int64_t rev)
{
  store_kv_t *kv = &s->kvs[i];

  kv->mod_revision = rev;
  hist_add (s, STORE_EV_DELETE, kv);
  kv_free_fields (kv);
  memmove (&s->kvs[i], &s->kvs[i + 1], (s->nkvs - i - 1) * sizeof (*s->kvs));
  s->nkvs--;
}

/* Deletes the keys [first, first+n) at rev. */
static void
delete_run (store_mem_t *s, size_t first, size_t n, int64_t rev)
{
  while (n-- > 0)
    delete_index (s, first, rev);
}

static void
put_kv (store_mem_t *s, const store_op_t *op, int64_t rev)
{
  size_t i = lower_bound (s, op->key);
  store_kv_t *kv;

  if (i < s->nkvs && strcmp (s->kvs[i].key, op->key) == 0)
    {
      kv = &s->kvs[i];
      free (kv->value);
    }
  else
    {
      orch_grow ((void **) &s->kvs, &s->cap_kvs, s->nkvs + 1, sizeof (*s->kvs));
      memmove (&s->kvs[i + 1], &s->kvs[i], (s->nkvs - i) * sizeof (*s->kvs));
      s->nkvs++;
      kv = &s->kvs[i];
      memset (kv, 0, sizeof (*kv));
      kv->key = xstrdup (op->key);
      kv->create_revision = rev;
    }
  kv->value = xmalloc (op->value_len + 1);
  if (op->value_len > 0)
    memcpy (kv->value, op->value, op->value_len);
  kv->value[op->value_len] = '\0';
  kv->value_len = op->value_len;
  kv->mod_revision = rev;
  kv->lease = op->lease;
  hist_add (s, STORE_EV_PUT, kv);
}

/* Counts the keys an op would delete and where they start. */
static size_t
op_delete_span (store_mem_t *s, const store_op_t *op, size_t *first)
{
  size_t i, n = 0;

  *first = lower_bound (s, op->key);
  if (op->type == STORE_OP_DELETE)
    return (*first < s->nkvs && strcmp (s->kvs[*first].key, op->key) == 0) ? 1 : 0;
  for (i = *first; i < s->nkvs && has_prefix (s->kvs[i].key, op->key); i++)
    n++;
  return n;
}

/* etcd refuses a txn whose puts repeat a key or fall inside one of its
 * deletes ("duplicate key given in txn request"). */
static bool
txn_has_duplicates (const store_op_t *ops, size_t nops)
{
  size_t i, j;

  for (i = 0; i < nops; i++)
    {
      if (ops[i].type != STORE_OP_PUT)
        continue;
      for (j = 0; j < nops; j++)
        {
          if (i == j)
            continue;
          if (ops[j].type == STORE_OP_PUT && j > i && strcmp (ops[i].key, ops[j].key) == 0)
            return true;
          if (ops[j].type == STORE_OP_DELETE && strcmp (ops[i].key, ops[j].key) == 0)
            return true;
          if (ops[j].type == STORE_OP_DELETE_PREFIX && has_prefix (ops[i].key, ops[j].key))
            return true;
        }
    }
  return false;
}

static int
mem_txn (store_t *base, const store_cmp_t *cmps, size_t ncmp, const store_op_t *ops, size_t nops,
         store_txn_cb cb, void *ctx, orch_err_t *err)
{
  store_mem_t *s = (store_mem_t *) base;
  mem_done_t *d;
  bool changes = false;
  int64_t rev;
  size_t i;

  if (s->closing)
    return STORE__FAIL (err, ECANCELED, "store closed");
  if (cb == NULL || (ncmp > 0 && cmps == NULL) || (nops > 0 && ops == NULL))
    return STORE__FAIL (err, EINVAL, "txn: bad arguments");
  if (store__txn_check_limits (ncmp, ops, nops, err) < 0)
    return -1;
  for (i = 0; i < ncmp; i++)
    if (cmps[i].key == NULL || cmps[i].key[0] == '\0')
      return STORE__FAIL (err, EINVAL, "txn compare %zu has no key", i);

  d = done_new (s, MEM_DONE_TXN, ctx);
  d->cb.txn = cb;
  if (txn_has_duplicates (ops, nops))
    {
      done_fail (d, EINVAL, "etcd: etcdserver: duplicate key given in txn request (gRPC code 3)");
      return 0;
    }
  for (i = 0; i < nops; i++)
    if (ops[i].type == STORE_OP_PUT && ops[i].lease != 0 && find_lease (s, ops[i].lease) == NULL)
      {
        done_fail (d, ENOENT, "etcd: etcdserver: requested lease not found (gRPC code 5)");
        return 0;
      }
  for (i = 0; i < ncmp; i++)
    if (!cmp_holds (s, &cmps[i]))
      {
        d->succeeded = false;
        return 0;
      }

  d->succeeded = true;
  for (i = 0; i < nops && !changes; i++)
    {
      size_t first;
      if (ops[i].type == STORE_OP_PUT || op_delete_span (s, &ops[i], &first) > 0)
        changes = true;
    }
  if (!changes)
    return 0;

  rev = ++s->revision;
  for (i = 0; i < nops; i++)
    {
      size_t first, n;
      if (ops[i].type == STORE_OP_PUT)
        put_kv (s, &ops[i], rev);
      else if ((n = op_delete_span (s, &ops[i], &first)) > 0)
        delete_run (s, first, n, rev);
    }
  d->revision = rev;
  return 0;
}

static int
mem_lease_grant (store_t *base, int64_t ttl_s, store_lease_cb cb, void *ctx, orch_err_t *err)
{
  store_mem_t *s = (store_mem_t *) base;
  mem_done_t *d;
  mem_lease_t *l;

  if (s->closing)
    return STORE__FAIL (err, ECANCELED, "store closed");
  if (cb == NULL)
    return STORE__FAIL (err, EINVAL, "lease grant: callback is required");
  if (ttl_s <= 0)
    return STORE__FAIL (err, EINVAL, "lease TTL must be positive, not %" PRId64, ttl_s);
  orch_grow ((void **) &s->leases, &s->cap_leases, s->nleases + 1, sizeof (*s->leases));
  l = &s->leases[s->nleases++];
  l->id = s->next_lease++;
  l->ttl_s = ttl_s;
  d = done_new (s, MEM_DONE_LEASE, ctx);
  d->cb.lease = cb;
  d->lease_id = l->id;
  d->ttl_s = ttl_s;
  return 0;
}

static int
mem_lease_keepalive (store_t *base, int64_t lease_id, store_lease_cb cb, void *ctx, orch_err_t *err)
{
  store_mem_t *s = (store_mem_t *) base;
  mem_lease_t *l;
  mem_done_t *d;

  if (s->closing)
    return STORE__FAIL (err, ECANCELED, "store closed");
  if (cb == NULL)
    return STORE__FAIL (err, EINVAL, "lease keepalive: callback is required");
  l = find_lease (s, lease_id);
  d = done_new (s, MEM_DONE_LEASE, ctx);
  d->cb.lease = cb;
  d->lease_id = lease_id;
  d->ttl_s = l ? l->ttl_s : 0;
  return 0;
}

/* Removes the lease and deletes its keys in one revision. Returns false when
 * the lease does not exist. */
static bool
lease_drop (store_mem_t *s, int64_t lease_id)
{
  mem_lease_t *l = find_lease (s, lease_id);
  bool any = false;
  int64_t rev;
  size_t i;

  if (l == NULL)
    return false;
  *l = s->leases[--s->nleases];
  for (i = 0; i < s->nkvs; i++)
    if (s->kvs[i].lease == lease_id)
      any = true;
  if (!any)
    return true;
  rev = ++s->revision;
  for (i = 0; i < s->nkvs;)
    if (s->kvs[i].lease == lease_id)
      delete_index (s, i, rev);
    else
      i++;
  arm (s);
  return true;
}

static int
mem_lease_revoke (store_t *base, int64_t lease_id, store_lease_cb cb, void *ctx, orch_err_t *err)
{
  store_mem_t *s = (store_mem_t *) base;
  mem_done_t *d;
  bool found;

  if (s->closing)
    return STORE__FAIL (err, ECANCELED, "store closed");
  if (cb == NULL)
    return STORE__FAIL (err, EINVAL, "lease revoke: callback is required");
  found = lease_drop (s, lease_id);
  d = done_new (s, MEM_DONE_LEASE, ctx);
  d->cb.lease = cb;
  d->lease_id = lease_id;
  if (!found)
    done_fail (d, ENOENT, "etcd: etcdserver: requested lease not found (gRPC code 5)");
  return 0;
}

void
store_mem_expire_lease (store_t *base, int64_t lease_id)
{
  store_mem_t *s = (store_mem_t *) base;

  if (s->closing)
    return;
  lease_drop (s, lease_id);
}

static int
mem_watch_prefix (store_t *base, const char *prefix, int64_t start_revision, store_watch_cb cb,
                  void *ctx, orch_err_t *err)
{
  store_mem_t *s = (store_mem_t *) base;

  if (s->closing)
    return STORE__FAIL (err, ECANCELED, "store closed");
  if (prefix == NULL || cb == NULL)
    return STORE__FAIL (err, EINVAL, "watch: prefix and callback are required");
  if (s->watch_id != 0)
    return STORE__FAIL (err, EBUSY, "a watch is already running on this store");
  s->watch_id = ++s->next_watch_id;
  s->watch_prefix = xstrdup (prefix);
  s->watch_next_rev = start_revision > 0 ? start_revision : s->revision + 1;
  s->watch_cb = cb;
  s->watch_ctx = ctx;
  if (s->watch_next_rev <= s->revision)
    arm (s);
  return s->watch_id;
}

static void
mem_watch_cancel (store_t *base)
{
  store_mem_t *s = (store_mem_t *) base;

  s->watch_id = 0;
  free (s->watch_prefix);
  s->watch_prefix = NULL;
  s->watch_cb = NULL;
  s->watch_ctx = NULL;
}

static void
mem_close_cb (uv_handle_t *h)
{
  store_mem_t *s = h->data;
  size_t i;

  for (i = 0; i < s->nkvs; i++)
    kv_free_fields (&s->kvs[i]);
  free (s->kvs);
  for (i = 0; i < s->nhist; i++)
    kv_free_fields (&s->hist[i].ev.kv);
  free (s->hist);
  free (s->leases);
  free (s);
}

static void
mem_destroy (store_t *base)
{
  store_mem_t *s = (store_mem_t *) base;
  mem_done_t *d;

  if (s == NULL || s->closing)
    return;
  s->closing = true;
  /* Callbacks run here, so that none comes after destroy returns. */
  while ((d = s->head) != NULL)
    {
      s->head = d->next;
      if (s->head == NULL)
        s->tail = NULL;
      done_fail (d, ECANCELED, "store closed");
      done_deliver (d);
      done_free (d);
    }
  if (s->watch_id != 0)
    {
      store_watch_cb cb = s->watch_cb;
      void *ctx = s->watch_ctx;
      orch_err_t e;

      mem_watch_cancel (base);
      orch_err_set (&e, ECANCELED, "store closed");
      cb (ctx, -1, &e, NULL, 0, s->revision);
    }
  uv_timer_stop (&s->timer);
  uv_close ((uv_handle_t *) &s->timer, mem_close_cb);
}

static const store_ops_t store_mem_ops = {
  .name = "mem",
  .range_prefix = mem_range_prefix,
  .txn = mem_txn,
  .lease_grant = mem_lease_grant,
  .lease_keepalive = mem_lease_keepalive,
  .lease_revoke = mem_lease_revoke,
  .watch_prefix = mem_watch_prefix,
  .watch_cancel = mem_watch_cancel,
  .destroy = mem_destroy,
};

store_t *
store_mem_new (uv_loop_t *loop)
{
  store_mem_t *s = xcalloc (1, sizeof (*s));

  s->base.ops = &store_mem_ops;
  s->base.loop = loop;
  s->revision = 1;
  /* Lease ids look like etcd's: large, and never 0 (0 means "no lease"). */
  s->next_lease = 0x7e57000000000001LL;
  uv_timer_init (loop, &s->timer);
  s->timer.data = s;
  return &s->base;
}
