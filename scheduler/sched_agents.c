/* Agent sessions: registration, heartbeats, allocation events, node liveness
 * and the node records in etcd (each attached to a lease that expires when
 * the node is gone). */
#include <inttypes.h>
#include <string.h>

#include "orch_log.h"
#include "orch_quantity.h"
#include "orch_util.h"
#include "sched_internal.h"
#include "sched_write.h"

#define SCHED_MAX_LABELS 64

static void
reply_error (sched_conn_t *c, uint64_t request_id, const char *msg)
{
  sched_api_reply_error (c, request_id, 2, msg, NULL, 0);
}

/* ---- Node records and leases ----------------------------------------------- */

static void
on_node_written (sched_t *s, void *ctx, int status, const char *error, bool failed_cmp, int64_t revision)
{
  char *id = ctx;
  if (status < 0)
    orch_warn ("writing node %s to etcd failed: %s", id, error);
  free (id);
  (void) s;
  (void) failed_cmp;
}

static void
node_write (sched_t *s, sched_node_t *n)
{
  sched_batch_t *b = sched_batch_new (s);
  sched_batch_put (b, xasprintf (SCHED_NODES_PREFIX "%s", n->id), sched_node_encode (n),
                   n->lease_id);
  sched_batch_submit (b, on_node_written, xstrdup (n->id));
}

typedef struct lease_ctx_s
{
  sched_t *s;
  char *node_id;
} lease_ctx_t;

static void
on_lease_granted (void *ctx, int status, const orch_err_t *err, int64_t lease_id, int64_t ttl_s)
{
  lease_ctx_t *lc = ctx;
  sched_node_t *n = lc->s->stopping ? NULL : orch_map_get (&lc->s->nodes, lc->node_id);
  if (n)
    {
      n->lease_in_flight = false;
      if (status < 0)
        orch_warn ("lease for node %s: %s", n->id, err ? err->msg : "unknown error");
      else
        {
          n->lease_id = lease_id;
          n->lease_renewed_ms = orch_now_mono_ms ();
          node_write (lc->s, n);
        }
    }
  free (lc->node_id);
  free (lc);
  (void) ttl_s;
}

static void
on_lease_kept (void *ctx, int status, const orch_err_t *err, int64_t lease_id, int64_t ttl_s)
{
  lease_ctx_t *lc = ctx;
  sched_node_t *n = lc->s->stopping ? NULL : orch_map_get (&lc->s->nodes, lc->node_id);
  if (n)
    {
      n->lease_in_flight = false;
      if (status == 0 && ttl_s > 0)
        n->lease_renewed_ms = orch_now_mono_ms ();
      else if (status == 0)
        n->lease_id = 0; /* expired: the next tick grants a new one and rewrites the record */
      else
        orch_warn ("lease keep-alive for node %s: %s", n->id, err ? err->msg : "unknown");
    }
  free (lc->node_id);
  free (lc);
  (void) lease_id;
}

static void
node_lease_refresh (sched_t *s, sched_node_t *n)
{
  if (s->store == NULL || n->lease_in_flight || n->agent == NULL)
    return;
  int64_t ttl_s = (s->cfg.node_ttl_ms + s->cfg.node_grace_ms + 999) / 1000;
  int64_t now = orch_now_mono_ms ();
  lease_ctx_t *lc = xcalloc (1, sizeof *lc);
  lc->s = s;
  lc->node_id = xstrdup (n->id);
  orch_err_t err = {0};
  int r;
  if (n->lease_id == 0)
    r = s->store->ops->lease_grant (s->store, ttl_s, on_lease_granted, lc, &err);
  else if (now - n->lease_renewed_ms >= ttl_s * 1000 / 3)
    r = s->store->ops->lease_keepalive (s->store, n->lease_id, on_lease_kept, lc, &err);
  else
    {
      free (lc->node_id);
      free (lc);
      return;
    }
  if (r < 0)
    {
      orch_warn ("lease for node %s: %s", n->id, err.msg);
      free (lc->node_id);
      free (lc);
      return;
    }
  n->lease_in_flight = true;
}

/* ---- Status from agents ------------------------------------------------------ */

static void
apply_status (sched_t *s, sched_node_t *n, const Orch__AllocStatus *st)
{
  if (st == NULL || st->alloc_id == NULL)
    return;
  sched_alloc_t *a = orch_map_get (&s->allocs, st->alloc_id);
  if (a == NULL || strcmp (a->node, n->id) != 0)
    return; /* not ours (any more); the desired list tells the agent to stop it */
  bool was_terminal = sched_status_terminal (&a->status);
  bool changed = strncmp (a->status.state, st->state, sizeof a->status.state) != 0
                 || a->status.exit_code != st->exit_code || a->status.restarts != st->restarts
                 || a->status.started_at_ms != st->started_at_ms;
  if (changed)
    {
      snprintf (a->status.state, sizeof a->status.state, "%s", st->state);
      a->status.exit_code = st->exit_code;
      sched_status_set_reason (&a->status, st->reason);
      a->status.started_at_ms = st->started_at_ms;
      a->status.finished_at_ms = st->finished_at_ms;
      a->status.restarts = st->restarts;
      a->status_dirty = true;
      sched_persist_flush_status (s);
      /* Starting and running are routine; anything else is worth a line. */
      orch_log (strcmp (a->status.state, "running") == 0 || strcmp (a->status.state, "starting") == 0
                    ? ORCH_LOG_DEBUG
                    : ORCH_LOG_INFO,
                "allocation %s on %s is %s%s%s", a->id, n->id, a->status.state,
                   a->status.reason ? ": " : "", a->status.reason ? a->status.reason : "");
    }
  a->status.memory_bytes = st->memory_bytes;
  a->status.cpu_usec = st->cpu_usec;
  a->status.pid = st->pid;
  sched_status_set_str (&a->status.address, st->address);
  sched_status_set_str (&a->status.vmm, st->vmm);
  sched_status_set_str (&a->status.guest_kernel, st->guest_kernel);
  if (st->health && (a->status.health == NULL || strcmp (a->status.health, st->health) != 0)
      && *st->health)
    orch_info ("allocation %s on %s is %s", a->id, n->id, st->health);
  sched_status_set_str (&a->status.health, st->health);
  bool terminal = sched_status_terminal (&a->status);
  if (terminal && !was_terminal)
    {
      /* A finished allocation holds no resources. */
      sched_reconcile_remove_alloc (s, a);
      sched_reconcile_mark_pending (s);
    }
  else if (!terminal && was_terminal)
    sched_reconcile_add_alloc (s, a);
}

static void
handle_register (sched_conn_t *c, uint64_t request_id, Orch__NodeRegister *r)
{
  sched_t *s = c->s;
  if (strcmp (r->node_id, c->identity) != 0)
    {
      reply_error (c, request_id, "node id in register differs from the Hello identity");
      wire_conn_close (c->wc, "register for another node id");
      return;
    }
  if (r->n_labels > SCHED_MAX_LABELS)
    {
      reply_error (c, request_id, "too many labels");
      wire_conn_close (c->wc, "too many labels");
      return;
    }
  sched_node_t *n = orch_map_get (&s->nodes, r->node_id);
  if (n == NULL)
    {
      n = sched_node_new (r->node_id);
      orch_map_put (&s->nodes, n->id, n);
    }
  if (n->agent && n->agent != c)
    {
      /* A second session for the node replaces the first (a reconnect that
       * raced the old connection's close). */
      sched_conn_t *old = n->agent;
      old->node = NULL;
      wire_conn_close (old->wc, "replaced by a new session for the same node");
    }
  n->agent = c;
  n->lost = false;
  c->node = n;
  free (n->address);
  n->address = xstrdup (r->address ? r->address : "");
  char **keys = xcalloc (r->n_labels + 1, sizeof (char *));
  char **values = xcalloc (r->n_labels + 1, sizeof (char *));
  for (size_t i = 0; i < r->n_labels; i++)
    {
      keys[i] = r->labels[i]->key;
      values[i] = r->labels[i]->value;
    }
  sched_node_set_labels (n, keys, values, r->n_labels);
  free (keys);
  free (values);
  n->cap_cpu_milli = r->capacity ? r->capacity->cpu_milli : 0;
  n->cap_memory_bytes = r->capacity ? r->capacity->memory_bytes : 0;
  n->rt_container = n->rt_microvm = false;
  for (size_t i = 0; i < r->n_runtimes; i++)
    {
      if (strcmp (r->runtimes[i], "container") == 0)
        n->rt_container = true;
      else if (strcmp (r->runtimes[i], "microvm") == 0)
        n->rt_microvm = true;
    }
  n->vmm_overhead_bytes = n->vmm_overhead_registered = r->vmm_overhead_bytes;
  snprintf (n->cgroup_version, sizeof n->cgroup_version, "%s", r->cgroup_version);
  n->last_heartbeat_ms = orch_now_mono_ms ();
  char cpu[32], mem[32];
  orch_info ("node %s registered from %s: %s cpu, %s memory, cgroup %s, %zu allocations running",
             n->id, c->wc->peer, orch_fmt_cpu (n->cap_cpu_milli, cpu, sizeof cpu),
             orch_fmt_memory (n->cap_memory_bytes, mem, sizeof mem), n->cgroup_version,
             r->n_allocs);
  if (s->loaded)
    {
      for (size_t i = 0; i < r->n_allocs; i++)
        apply_status (s, n, r->allocs[i]);
      sched_reconcile_update_node (s, n);
      sched_send_desired (s, n);
    }
  if (n->lease_id)
    node_write (s, n); /* the lease from before a scheduler restart may still live */
  node_lease_refresh (s, n);
}

static void
handle_heartbeat (sched_conn_t *c, Orch__Heartbeat *hb)
{
  sched_t *s = c->s;
  sched_node_t *n = c->node;
  int64_t now = orch_now_mono_ms ();
  bool was_ready = sched_node_ready (s, n);
  n->last_heartbeat_ms = now;
  if (hb->usage)
    {
      n->used_memory_bytes = hb->usage->memory_bytes;
      n->used_cpu_milli = hb->usage->cpu_milli;
    }
  /* A microVM is charged the larger of what the node holds back for its
   * VMM (registered) and what its VMMs are measured to use. */
  int64_t overhead = hb->vmm_overhead_bytes > n->vmm_overhead_registered
                         ? hb->vmm_overhead_bytes
                         : n->vmm_overhead_registered;
  if (overhead != n->vmm_overhead_bytes)
    {
      n->vmm_overhead_bytes = overhead;
      if (n->place_id != PLACE_NODE_NONE)
        place_node_set_vmm_overhead (s->cluster, n->place_id, overhead);
    }
  if (s->loaded)
    {
      for (size_t i = 0; i < hb->n_allocs; i++)
        apply_status (s, n, hb->allocs[i]);
      if (n->place_id != PLACE_NODE_NONE)
        {
          place_node_set_usage (s->cluster, n->place_id, n->used_memory_bytes);
          if (!was_ready)
            {
              place_node_set_state (s->cluster, n->place_id, true, n->draining);
              sched_reconcile_mark_pending (s);
            }
        }
    }
  node_lease_refresh (s, n);
}

void
sched_agent_message (sched_conn_t *c, Orch__Envelope *env)
{
  sched_t *s = c->s;
  if (c->node == NULL && env->msg_case != ORCH__ENVELOPE__MSG_NODE_REGISTER)
    {
      reply_error (c, env->request_id, "protocol error: register before anything else");
      wire_conn_close (c->wc, "message before register");
      return;
    }
  switch (env->msg_case)
    {
    case ORCH__ENVELOPE__MSG_NODE_REGISTER:
      handle_register (c, env->request_id, env->node_register);
      break;
    case ORCH__ENVELOPE__MSG_HEARTBEAT:
      handle_heartbeat (c, env->heartbeat);
      break;
    case ORCH__ENVELOPE__MSG_ALLOC_EVENT:
      if (s->loaded)
        apply_status (s, c->node, env->alloc_event->status);
      break;
    case ORCH__ENVELOPE__MSG_LOGS_REPLY:
    case ORCH__ENVELOPE__MSG_ERROR:
      sched_api_logs_reply (s, env->request_id, env);
      break;
    default:
      orch_warn ("agent %s sent an unexpected message (%d); ignored", c->node->id,
                 (int) env->msg_case);
      break;
    }
}

void
sched_agent_closed (sched_conn_t *c)
{
  sched_node_t *n = c->node;
  if (n == NULL)
    return;
  n->agent = NULL;
  c->node = NULL;
  if (n->place_id != PLACE_NODE_NONE)
    place_node_set_state (c->s->cluster, n->place_id, false, n->draining);
  sched_api_agent_gone (c->s, n->id);
}

/* Marks nodes that stopped heartbeating as down, once. */
void
sched_agents_tick (sched_t *s)
{
  const char *k;
  void *v;
  int64_t now = orch_now_mono_ms ();
  for (size_t i = 0; orch_map_next (&s->nodes, &i, &k, &v);)
    {
      sched_node_t *n = v;
      if (n->agent && !sched_node_ready (s, n))
        {
          orch_warn ("node %s missed heartbeats for %" PRId64 " ms: marking it down", n->id,
                     now - n->last_heartbeat_ms);
          sched_conn_t *c = n->agent;
          wire_conn_close (c->wc, "heartbeat timeout");
          sched_agent_closed (c);
        }
      if (n->agent == NULL)
        {
          if (!n->lost && s->loaded
              && now - n->last_heartbeat_ms > s->cfg.node_ttl_ms + s->cfg.node_grace_ms)
            {
              n->lost = true;
              const char *ak;
              void *av;
              for (size_t j = 0; orch_map_next (&s->allocs, &j, &ak, &av);)
                if (strcmp (((sched_alloc_t *) av)->node, n->id) == 0)
                  sched_reconcile_mark (s, ((sched_alloc_t *) av)->service);
            }
          continue;
        }
      node_lease_refresh (s, n);
    }
}
