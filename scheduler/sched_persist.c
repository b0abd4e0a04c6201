/* Loading state from etcd at start, following the services (the desired
 * state, which other writers may change) with a watch, and writing
 * allocation status changes (coalesced by a short timer). */
#include <inttypes.h>
#include <string.h>

#include "orch_log.h"
#include "orch_util.h"
#include "sched_internal.h"
#include "sched_write.h"

#define SCHED_STATUS_FLUSH_MS 20
#define SCHED_RETRY_MS 1000

static bool
has_prefix (const char *s, const char *p)
{
  return strncmp (s, p, strlen (p)) == 0;
}

void
sched_persist_note_own_revision (sched_t *s, int64_t rev)
{
  s->own_revs[s->own_revs_next] = rev;
  s->own_revs_next = (s->own_revs_next + 1) % ORCH_ARRAY_LEN (s->own_revs);
}

static bool
is_own_revision (const sched_t *s, int64_t rev)
{
  for (size_t i = 0; i < ORCH_ARRAY_LEN (s->own_revs); i++)
    if (s->own_revs[i] == rev)
      return true;
  return false;
}

static void
load_kv (sched_t *s, const store_kv_t *kv)
{
  orch_err_t err = {0};
  if (has_prefix (kv->key, SCHED_SERVICES_PREFIX))
    {
      sched_service_t *svc = sched_service_decode (kv->value, kv->value_len, &err);
      if (svc == NULL)
        {
          orch_warn ("ignoring %s: %s", kv->key, err.msg);
          return;
        }
      svc->mod_revision = kv->mod_revision;
      sched_service_free (orch_map_put (&s->services, svc->name, svc));
    }
  else if (has_prefix (kv->key, SCHED_ALLOCS_PREFIX))
    {
      sched_alloc_t *a = sched_alloc_decode (kv->value, kv->value_len, &err);
      if (a == NULL)
        {
          orch_warn ("ignoring %s: %s", kv->key, err.msg);
          return;
        }
      a->mod_revision = kv->mod_revision;
      sched_alloc_free (orch_map_put (&s->allocs, a->id, a));
    }
  else if (has_prefix (kv->key, SCHED_NODES_PREFIX))
    {
      const char *id = kv->key + strlen (SCHED_NODES_PREFIX);
      sched_node_t *n = orch_map_get (&s->nodes, id);
      if (n == NULL)
        {
          n = sched_node_new (id);
          orch_map_put (&s->nodes, n->id, n);
        }
      if (sched_node_decode_into (n, kv->value, kv->value_len, &err) < 0)
        orch_warn ("ignoring %s: %s", kv->key, err.msg);
      n->lease_id = kv->lease;
      if (n->agent == NULL)
        n->last_heartbeat_ms = orch_now_mono_ms (); /* its agent gets TTL + grace to return */
      n->mod_revision = kv->mod_revision;
    }
}

static void start_watch (sched_t *s, int64_t from);

static void
apply_event (sched_t *s, const store_event_t *ev)
{
  if (is_own_revision (s, ev->kv.mod_revision))
    return;
  const char *key = ev->kv.key;
  if (has_prefix (key, SCHED_SERVICES_PREFIX))
    {
      const char *name = key + strlen (SCHED_SERVICES_PREFIX);
      sched_service_t *cur = orch_map_get (&s->services, name);
      if (cur && cur->mod_revision >= ev->kv.mod_revision)
        return;
      orch_info ("service %s changed in etcd by another writer (revision %" PRId64 ")", name,
                 ev->kv.mod_revision);
      cleanup_free char *name_copy = xstrdup (name);
      if (ev->type == STORE_EV_DELETE)
        sched_service_free (orch_map_del (&s->services, name_copy));
      else
        {
          orch_err_t e = {0};
          sched_service_t *svc = sched_service_decode (ev->kv.value, ev->kv.value_len, &e);
          if (svc == NULL)
            {
              orch_warn ("ignoring %s: %s", key, e.msg);
              return;
            }
          svc->mod_revision = ev->kv.mod_revision;
          sched_service_free (orch_map_put (&s->services, svc->name, svc));
        }
      sched_reconcile_mark (s, name_copy);
    }
}

static void
event_copy (store_event_t *dst, const store_event_t *src)
{
  *dst = *src;
  dst->kv.key = xstrdup (src->kv.key);
  dst->kv.value = src->kv.value ? xstrndup (src->kv.value, src->kv.value_len) : NULL;
}

/* Events that arrive while our own writes are in flight wait until those
 * writes have returned: only then do we know which revisions are ours. */
void
sched_persist_drain_watch (sched_t *s)
{
  if (s->writes_in_flight > 0 || s->watch_backlog_len == 0)
    return;
  for (size_t i = 0; i < s->watch_backlog_len; i++)
    {
      apply_event (s, &s->watch_backlog[i]);
      free (s->watch_backlog[i].kv.key);
      free (s->watch_backlog[i].kv.value);
    }
  s->watch_backlog_len = 0;
}

static void
on_watch (void *ctx, int status, const orch_err_t *err, const store_event_t *evs, size_t n,
          int64_t revision)
{
  sched_t *s = ctx;
  (void) revision;
  if (status < 0)
    {
      s->watching = false;
      if (s->stopping)
        return;
      /* Our in-memory state may have missed changes: rebuild from etcd. */
      orch_warn ("etcd watch ended (%s); reloading state", err ? err->msg : "unknown");
      s->loaded = false;
      s->retry_at_ms = orch_now_mono_ms () + SCHED_RETRY_MS;
      return;
    }
  for (size_t i = 0; i < n; i++)
    {
      orch_grow ((void **) &s->watch_backlog, &s->watch_backlog_cap, s->watch_backlog_len + 1,
                 sizeof *s->watch_backlog);
      event_copy (&s->watch_backlog[s->watch_backlog_len++], &evs[i]);
    }
  sched_persist_drain_watch (s);
}

static void
start_watch (sched_t *s, int64_t from)
{
  orch_err_t err = {0};
  /* Only the desired state is followed: allocation and node records are
   * written by this scheduler alone, and watching them would make etcd send
   * back every record we write (20,000 events for a 10,000-replica apply,
   * a quarter of the scheduler's CPU in cluster_sim). */
  if (s->store->ops->watch_prefix (s->store, SCHED_SERVICES_PREFIX, from, on_watch, s, &err) < 0)
    {
      orch_warn ("cannot watch etcd: %s", err.msg);
      return;
    }
  s->watching = true;
}

static void
clear_state (sched_t *s)
{
  const char *k;
  void *v;
  for (size_t i = 0; orch_map_next (&s->services, &i, &k, &v);)
    sched_service_free (v);
  for (size_t i = 0; orch_map_next (&s->allocs, &i, &k, &v);)
    sched_alloc_free (v);
  orch_map_free (&s->services);
  orch_map_free (&s->allocs);
  /* Nodes stay: their sessions are live. The engine is rebuilt. */
  place_cluster_free (s->cluster);
  s->cluster = place_cluster_new (NULL);
  for (size_t i = 0; orch_map_next (&s->nodes, &i, &k, &v);)
    ((sched_node_t *) v)->place_id = PLACE_NODE_NONE;
}

static void
on_load (void *ctx, int status, const orch_err_t *err, const store_kv_t *kvs, size_t n,
         int64_t revision)
{
  sched_t *s = ctx;
  s->load_pending = 0;
  if (s->stopping)
    return;
  if (status < 0)
    {
      orch_warn ("cannot read state from etcd: %s; retrying", err ? err->msg : "unknown");
      s->retry_at_ms = orch_now_mono_ms () + SCHED_RETRY_MS;
      return;
    }
  clear_state (s);
  for (size_t i = 0; i < n; i++)
    load_kv (s, &kvs[i]);
  s->loaded = true;
  s->retry_at_ms = 0;
  orch_info ("loaded state from etcd at revision %" PRId64 ": %zu services, %zu allocations, "
             "%zu nodes",
             revision, s->services.len, s->allocs.len, s->nodes.len);

  const char *k;
  void *v;
  for (size_t i = 0; orch_map_next (&s->nodes, &i, &k, &v);)
    sched_reconcile_add_node (s, v);
  for (size_t i = 0; orch_map_next (&s->allocs, &i, &k, &v);)
    sched_reconcile_add_alloc (s, v);
  for (size_t i = 0; orch_map_next (&s->services, &i, &k, &v);)
    sched_reconcile_mark (s, k);
  /* Allocations whose service is gone are removed by the reconcile pass. */
  for (size_t i = 0; orch_map_next (&s->allocs, &i, &k, &v);)
    if (orch_map_get (&s->services, ((sched_alloc_t *) v)->service) == NULL)
      sched_reconcile_mark (s, ((sched_alloc_t *) v)->service);
  for (size_t i = 0; orch_map_next (&s->nodes, &i, &k, &v);)
    {
      sched_node_t *node = v;
      if (node->agent)
        sched_send_desired (s, node);
    }
  if (!s->watching)
    start_watch (s, revision + 1);
  sched_reconcile_schedule (s);
}

void
sched_persist_load (sched_t *s)
{
  orch_err_t err = {0};
  if (s->store == NULL || s->load_pending)
    return;
  if (s->store->ops->range_prefix (s->store, SCHED_PREFIX, on_load, s, &err) < 0)
    {
      orch_warn ("cannot read state from etcd: %s; retrying", err.msg);
      s->retry_at_ms = orch_now_mono_ms () + SCHED_RETRY_MS;
      return;
    }
  s->load_pending = 1;
}

/* ---- Status writes --------------------------------------------------------- */

static void on_flush_timer (uv_timer_t *t);

static void
on_status_written (sched_t *s, void *ctx, int status, const char *error, bool failed_compare, int64_t revision)
{
  s->status_flush_running = false;
  if (status < 0)
    {
      orch_warn ("writing allocation status to etcd failed: %s; will retry", error);
      /* Mark everything dirty again: cheap, and rare. */
      const char *k;
      void *v;
      for (size_t i = 0; orch_map_next (&s->allocs, &i, &k, &v);)
        ((sched_alloc_t *) v)->status_dirty = true;
      uv_timer_start (&s->flush_timer, on_flush_timer, SCHED_RETRY_MS, 0);
    }
  (void) ctx;
  (void) failed_compare;
}

static void
on_flush_timer (uv_timer_t *t)
{
  sched_t *s = t->data;
  if (s->status_flush_running || !s->loaded)
    {
      uv_timer_start (&s->flush_timer, on_flush_timer, SCHED_STATUS_FLUSH_MS, 0);
      return;
    }
  sched_batch_t *b = sched_batch_new (s);
  const char *k;
  void *v;
  for (size_t i = 0; orch_map_next (&s->allocs, &i, &k, &v);)
    {
      sched_alloc_t *a = v;
      if (!a->status_dirty || a->removing)
        continue;
      a->status_dirty = false;
      sched_batch_put (b, sched_alloc_key (a), sched_alloc_encode (a), 0);
    }
  s->status_flush_running = true;
  sched_batch_submit (b, on_status_written, NULL);
}

void
sched_persist_flush_status (sched_t *s)
{
  if (s->stopping)
    return;
  if (!uv_is_active ((uv_handle_t *) &s->flush_timer))
    uv_timer_start (&s->flush_timer, on_flush_timer, SCHED_STATUS_FLUSH_MS, 0);
}
