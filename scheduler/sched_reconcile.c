/* The reconciler: makes the allocations in etcd match the services' desired
 * state, with the placement engine deciding where, and keeps every agent's
 * list of allocations current.
 *
 * A pass takes the services marked dirty, works out what to remove
 * (replaced spec versions, scale-down, deleted services) and what to place,
 * places the whole pass as one batch, writes the result in ordered
 * transactions and only then changes memory and tells the agents. On a
 * write failure the engine is rolled back and the services are retried. */
#include <inttypes.h>
#include <string.h>

#include "orch_log.h"
#include "orch_util.h"
#include "sched_internal.h"
#include "sched_write.h"

#define SCHED_RECONCILE_RETRY_MS 1000

/* ---- Engine bookkeeping ---------------------------------------------------- */

static void
node_spec_fill (const sched_t *s, const sched_node_t *n, place_node_spec_t *spec,
                place_label_t *labels)
{
  for (size_t i = 0; i < n->n_labels; i++)
    labels[i] = (place_label_t){ n->label_keys[i], n->label_values[i] };
  *spec = (place_node_spec_t){
    .id = n->id,
    .labels = labels,
    .n_labels = n->n_labels,
    .ready = sched_node_ready (s, n),
    .draining = n->draining,
    .runtimes = (n->rt_container ? PLACE_RT_CONTAINER : 0) | (n->rt_microvm ? PLACE_RT_MICROVM : 0),
    .cpu_milli = n->cap_cpu_milli,
    .memory_bytes = n->cap_memory_bytes,
    .memory_used_bytes = n->used_memory_bytes,
    .vmm_overhead_bytes = n->vmm_overhead_bytes,
  };
}

void
sched_reconcile_add_node (sched_t *s, sched_node_t *n)
{
  place_label_t labels[PLACE_MAX_LABELS];
  place_node_spec_t spec;
  orch_err_t err = {0};
  if (n->n_labels > PLACE_MAX_LABELS)
    n->n_labels = PLACE_MAX_LABELS;
  node_spec_fill (s, n, &spec, labels);
  if (n->place_id != PLACE_NODE_NONE)
    {
      if (place_node_update (s->cluster, n->place_id, &spec, &err) < 0)
        orch_warn ("node %s: %s", n->id, err.msg);
      return;
    }
  if (place_node_add (s->cluster, &spec, &n->place_id, &err) < 0)
    orch_warn ("node %s cannot be used for placement: %s", n->id, err.msg);
}

void
sched_reconcile_update_node (sched_t *s, sched_node_t *n)
{
  sched_reconcile_add_node (s, n);
  sched_reconcile_mark_pending (s);
}

void
sched_reconcile_add_alloc (sched_t *s, sched_alloc_t *a)
{
  sched_node_t *n = orch_map_get (&s->nodes, a->node);
  sched_service_t *svc = orch_map_get (&s->services, a->service);
  if (a->place_id != PLACE_ALLOC_NONE || sched_status_terminal (&a->status))
    return; /* terminal allocations hold no resources */
  if (n == NULL)
    {
      /* A node known only from its allocations: it exists in the engine as
       * a down node so that its allocations are charged when it returns. */
      n = sched_node_new (a->node);
      n->last_heartbeat_ms = orch_now_mono_ms ();
      orch_map_put (&s->nodes, n->id, n);
      sched_reconcile_add_node (s, n);
    }
  if (n->place_id == PLACE_NODE_NONE)
    return;
  place_alloc_spec_t spec = {
    .service = a->service,
    .tenant = svc ? svc->spec.tenant : NULL,
    .node = n->place_id,
    .isolation = strcmp (a->isolation, "microvm") == 0 ? ORCH_ISO_MICROVM : ORCH_ISO_CONTAINER,
    .cpu_milli = svc ? svc->spec.cpu_milli : 0,
    .memory_bytes = svc ? svc->spec.memory_bytes : 0,
    .host_ports = svc ? (uint32_t) svc->spec.n_ports : 0,
  };
  orch_err_t err = {0};
  if (place_alloc_add (s->cluster, &spec, &a->place_id, &err) < 0)
    orch_warn ("allocation %s: %s", a->id, err.msg);
  else
    sched_ports_hold (n, a);
}

void
sched_reconcile_remove_alloc (sched_t *s, sched_alloc_t *a)
{
  if (a->place_id == PLACE_ALLOC_NONE)
    return;
  place_alloc_remove (s->cluster, a->place_id);
  a->place_id = PLACE_ALLOC_NONE;
  sched_node_t *n = orch_map_get (&s->nodes, a->node);
  if (n)
    sched_ports_release (n, a);
}

/* ---- Agents' lists ------------------------------------------------------ */

static bool
alloc_should_run (const sched_alloc_t *a)
{
  return !a->removing && !sched_status_terminal (&a->status);
}

static Orch__Alloc *
alloc_msg (const sched_t *s, const sched_alloc_t *a, Orch__Alloc *m)
{
  sched_service_t *svc = orch_map_get (&s->services, a->service);
  if (svc == NULL)
    return NULL;
  orch__alloc__init (m);
  m->alloc_id = a->id;
  m->service = a->service;
  m->isolation = a->isolation;
  m->spec_json = svc->spec.json;
  m->spec_version = a->spec_version;
  return m;
}

/* Fills m->ports from a; the arrays are returned for the caller to free
 * after sending (the strings are borrowed from a). */
static Orch__PortMapping *
alloc_msg_ports (const sched_alloc_t *a, Orch__Alloc *m, Orch__PortMapping ***ptrs)
{
  Orch__PortMapping *pm = xcalloc (a->n_ports + 1, sizeof *pm);
  *ptrs = xcalloc (a->n_ports + 1, sizeof **ptrs);
  sched_ports_fill_msg (a, pm, *ptrs);
  m->ports = *ptrs;
  m->n_ports = a->n_ports;
  return pm;
}

void
sched_send_desired (sched_t *s, sched_node_t *n)
{
  if (n->agent == NULL)
    return;
  size_t cap = 0, count = 0;
  Orch__Alloc *msgs = NULL;
  Orch__PortMapping **port_arrays = NULL, ***port_ptrs = NULL;
  size_t cap_pa = 0, cap_pp = 0;
  const char *k;
  void *v;
  for (size_t i = 0; orch_map_next (&s->allocs, &i, &k, &v);)
    {
      sched_alloc_t *a = v;
      if (strcmp (a->node, n->id) != 0 || !alloc_should_run (a))
        continue;
      orch_grow ((void **) &msgs, &cap, count + 1, sizeof *msgs);
      if (alloc_msg (s, a, &msgs[count]) == NULL)
        continue;
      orch_grow ((void **) &port_arrays, &cap_pa, count + 1, sizeof *port_arrays);
      orch_grow ((void **) &port_ptrs, &cap_pp, count + 1, sizeof *port_ptrs);
      port_arrays[count] = alloc_msg_ports (a, &msgs[count], &port_ptrs[count]);
      count++;
    }
  Orch__Alloc **ptrs = xcalloc (count + 1, sizeof *ptrs);
  for (size_t i = 0; i < count; i++)
    ptrs[i] = &msgs[i];
  Orch__DesiredAllocs d = ORCH__DESIRED_ALLOCS__INIT;
  d.n_allocs = count;
  d.allocs = ptrs;
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  env.msg_case = ORCH__ENVELOPE__MSG_DESIRED_ALLOCS;
  env.desired_allocs = &d;
  sched_conn_send (n->agent, &env);
  for (size_t i = 0; i < count; i++)
    {
      free (port_arrays[i]);
      free (port_ptrs[i]);
    }
  free (port_arrays);
  free (port_ptrs);
  free (ptrs);
  free (msgs);
}

static void
send_start (sched_t *s, const sched_alloc_t *a)
{
  sched_node_t *n = orch_map_get (&s->nodes, a->node);
  Orch__Alloc m;
  if (n == NULL || n->agent == NULL || alloc_msg (s, a, &m) == NULL)
    return;
  Orch__PortMapping **port_ptrs;
  Orch__PortMapping *ports = alloc_msg_ports (a, &m, &port_ptrs);
  Orch__StartAlloc start = ORCH__START_ALLOC__INIT;
  start.alloc = &m;
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  env.msg_case = ORCH__ENVELOPE__MSG_START_ALLOC;
  env.start_alloc = &start;
  sched_conn_send (n->agent, &env);
  free (ports);
  free (port_ptrs);
}

static void
send_stop (sched_t *s, const sched_alloc_t *a, int64_t grace_ms)
{
  sched_node_t *n = orch_map_get (&s->nodes, a->node);
  if (n == NULL || n->agent == NULL)
    return;
  Orch__StopAlloc stop = ORCH__STOP_ALLOC__INIT;
  stop.alloc_id = a->id;
  stop.grace_ms = (uint32_t) grace_ms;
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  env.msg_case = ORCH__ENVELOPE__MSG_STOP_ALLOC;
  env.stop_alloc = &stop;
  sched_conn_send (n->agent, &env);
}

/* ---- Passes ---------------------------------------------------------------- */

typedef struct pass_s
{
  sched_alloc_t **added;
  size_t n_added, cap_added;
  sched_alloc_t **removed;
  size_t n_removed, cap_removed;
  int64_t *removed_grace;
  char **services;
  size_t n_services;
  uint64_t seq;
} pass_t;

static void
pass_free (pass_t *p)
{
  free (p->added);
  free (p->removed);
  free (p->removed_grace);
  for (size_t i = 0; i < p->n_services; i++)
    free (p->services[i]);
  free (p->services);
  free (p);
}

static void
pass_remove (pass_t *p, sched_t *s, sched_alloc_t *a, int64_t grace_ms)
{
  orch_grow ((void **) &p->removed, &p->cap_removed, p->n_removed + 1, sizeof *p->removed);
  p->removed_grace = xrealloc (p->removed_grace, p->cap_removed * sizeof *p->removed_grace);
  p->removed_grace[p->n_removed] = grace_ms;
  p->removed[p->n_removed++] = a;
  a->removing = true;
  sched_reconcile_remove_alloc (s, a);
}

/* Scale-down order: allocations not yet running go first, then the newest. */
static int
cmp_removal (const void *x, const void *y)
{
  const sched_alloc_t *a = *(sched_alloc_t *const *) x, *b = *(sched_alloc_t *const *) y;
  int ra = strcmp (a->status.state, "running") == 0, rb = strcmp (b->status.state, "running") == 0;
  if (ra != rb)
    return ra - rb;
  if (a->created_at_ms != b->created_at_ms)
    return a->created_at_ms > b->created_at_ms ? -1 : 1;
  return strcmp (b->id, a->id);
}

static void pass_written (sched_t *s, void *ctx, int status, const char *error, bool failed_cmp, int64_t revision);

static void
run_pass (sched_t *s)
{
  if (!s->loaded || s->reconcile_running || s->stopping || s->dirty_services.len == 0)
    return;
  pass_t *p = xcalloc (1, sizeof *p);
  p->seq = ++s->passes_started;
  s->reconcile_running = true;

  /* Take the dirty set. */
  p->services = xcalloc (s->dirty_services.len, sizeof (char *));
  const char *k;
  void *v;
  for (size_t i = 0; orch_map_next (&s->dirty_services, &i, &k, &v);)
    p->services[p->n_services++] = xstrdup (k);
  orch_map_free (&s->dirty_services);

  /* Group the allocations of this pass's services in one scan. */
  typedef struct
  {
    sched_alloc_t **v;
    size_t n, cap;
  } group_t;
  orch_map_t groups = ORCH_MAP_INIT;
  for (size_t i = 0; i < p->n_services; i++)
    orch_map_put (&groups, p->services[i], xcalloc (1, sizeof (group_t)));
  for (size_t i = 0; orch_map_next (&s->allocs, &i, &k, &v);)
    {
      sched_alloc_t *a = v;
      group_t *g = a->removing ? NULL : orch_map_get (&groups, a->service);
      if (g == NULL)
        continue;
      orch_grow ((void **) &g->v, &g->cap, g->n + 1, sizeof *g->v);
      g->v[g->n++] = a;
    }

  place_workload_t *work = NULL;
  sched_service_t **work_svc = NULL;
  size_t n_work = 0, cap_work = 0, cap_work_svc = 0, cap_work_mover = 0;
  sched_alloc_t **work_mover = NULL; /* the allocation each placement replaces, or NULL */

  for (size_t si = 0; si < p->n_services; si++)
    {
      const char *name = p->services[si];
      sched_service_t *svc = orch_map_get (&s->services, name);
      group_t *g = orch_map_get (&groups, name);
      size_t n_live = 0, n_movers = 0;
      sched_alloc_t **movers = xcalloc (g->n + 1, sizeof *movers);
      /* Compacts g->v in place to the allocations that stay. Those on a
       * draining or lost node move: each goes once its replacement is placed. */
      for (size_t i = 0; i < g->n; i++)
        {
          sched_alloc_t *a = g->v[i];
          sched_node_t *node = orch_map_get (&s->nodes, a->node);
          bool move = node && (node->draining || node->lost) && !sched_status_terminal (&a->status);
          if (svc == NULL || a->spec_version != svc->version)
            pass_remove (p, s, a, svc ? svc->spec.stop_grace_ms : a->stop_grace_ms);
          else if (move)
            movers[n_movers++] = a;
          else
            g->v[n_live++] = a;
        }
      if (svc == NULL)
        {
          for (size_t i = 0; i < n_movers; i++)
            pass_remove (p, s, movers[i], movers[i]->stop_grace_ms);
          free (movers);
          continue;
        }
      free (svc->pending_reason);
      svc->pending_reason = NULL;
      svc->pending = 0;
      if (n_live > svc->spec.replicas)
        {
          qsort (g->v, n_live, sizeof *g->v, cmp_removal);
          for (size_t i = 0; i < n_live - svc->spec.replicas; i++)
            pass_remove (p, s, g->v[i], svc->spec.stop_grace_ms);
        }
      size_t need = n_live < svc->spec.replicas ? svc->spec.replicas - n_live : 0;
      /* Movers beyond what is needed go now. */
      while (n_movers > need)
        {
          n_movers--;
          pass_remove (p, s, movers[n_movers], svc->spec.stop_grace_ms);
        }
      for (size_t i = 0; i < need; i++)
        {
          orch_grow ((void **) &work, &cap_work, n_work + 1, sizeof *work);
          orch_grow ((void **) &work_svc, &cap_work_svc, n_work + 1, sizeof *work_svc);
          orch_grow ((void **) &work_mover, &cap_work_mover, n_work + 1, sizeof *work_mover);
          place_workload_from_spec (&svc->spec, &work[n_work]);
          work_mover[n_work] = i < n_movers ? movers[i] : NULL;
          work_svc[n_work++] = svc;
        }
      free (movers);
    }
  for (size_t i = 0; orch_map_next (&groups, &i, &k, &v);)
    {
      free (((group_t *) v)->v);
      free (v);
    }
  orch_map_free (&groups);

  /* Place the whole pass at once: the engine orders it for packing. */
  orch_map_t pass_ids = ORCH_MAP_INIT;
  place_result_t *res = xcalloc (n_work ? n_work : 1, sizeof *res);
  orch_err_t err = {0};
  if (n_work && place_batch (s->cluster, work, n_work, NULL, res, &err) < 0)
    {
      orch_error ("placement failed: %s", err.msg);
      for (size_t i = 0; i < n_work; i++)
        {
          res[i].node = PLACE_NODE_NONE;
          snprintf (res[i].reason, sizeof res[i].reason, "%.300s", err.msg);
        }
    }
  for (size_t i = 0; i < n_work; i++)
    {
      sched_service_t *svc = work_svc[i];
      if (res[i].node == PLACE_NODE_NONE)
        {
          svc->pending++;
          free (svc->pending_reason);
          svc->pending_reason = xstrdup (res[i].reason);
          continue;
        }
      sched_alloc_t *a = sched_alloc_new (
          svc->name, place_node_name (s->cluster, res[i].node),
          res[i].isolation == ORCH_ISO_MICROVM ? "microvm" : "container", res[i].reason,
          svc->version);
      /* Ids carry 32 random bits: draw again on the rare collision with an
       * existing allocation or one placed earlier in this pass. */
      while (orch_map_get (&s->allocs, a->id) || orch_map_get (&pass_ids, a->id))
        sched_alloc_new_id (a);
      orch_map_put (&pass_ids, a->id, a);
      a->place_id = res[i].alloc;
      sched_node_t *node = orch_map_get (&s->nodes, a->node);
      if (node == NULL || sched_ports_assign (node, a, &svc->spec) < 0)
        {
          /* The engine counted free ports, so this means the node's own
           * ports collide with ours: leave the replica pending. */
          place_alloc_remove (s->cluster, a->place_id);
          sched_alloc_free (a);
          svc->pending++;
          free (svc->pending_reason);
          svc->pending_reason = xstrdup ("no free host port on the chosen node");
          continue;
        }
      orch_grow ((void **) &p->added, &p->cap_added, p->n_added + 1, sizeof *p->added);
      p->added[p->n_added++] = a;
      if (work_mover[i])
        pass_remove (p, s, work_mover[i], svc->spec.stop_grace_ms);
    }
  orch_map_free (&pass_ids);
  free (res);
  free (work);
  free (work_svc);
  free (work_mover);

  sched_batch_t *b = sched_batch_new (s);
  for (size_t i = 0; i < p->n_removed; i++)
    sched_batch_del (b, sched_alloc_key (p->removed[i]));
  for (size_t i = 0; i < p->n_added; i++)
    sched_batch_put (b, sched_alloc_key (p->added[i]), sched_alloc_encode (p->added[i]), 0);
  sched_batch_submit (b, pass_written, p);
}

static void
pass_written (sched_t *s, void *ctx, int status, const char *error, bool failed_cmp, int64_t revision)
{
  pass_t *p = ctx;
  (void) failed_cmp;
  (void) revision;
  if (status < 0)
    {
      /* Nothing of this pass is in memory yet: undo the engine and retry. */
      orch_warn ("writing placements to etcd failed: %s; retrying in %d ms", error,
                 SCHED_RECONCILE_RETRY_MS);
      for (size_t i = 0; i < p->n_added; i++)
        {
          sched_reconcile_remove_alloc (s, p->added[i]);
          sched_alloc_free (p->added[i]);
        }
      for (size_t i = 0; i < p->n_removed; i++)
        {
          p->removed[i]->removing = false;
          sched_reconcile_add_alloc (s, p->removed[i]);
        }
      for (size_t i = 0; i < p->n_services; i++)
        orch_map_put (&s->dirty_services, p->services[i], (void *) 1);
      s->retry_at_ms = orch_now_mono_ms () + SCHED_RECONCILE_RETRY_MS;
      s->reconcile_running = false;
      s->passes_done = p->seq;
      sched_api_apply_done (s, -1, error);
      pass_free (p);
      return;
    }
  for (size_t i = 0; i < p->n_removed; i++)
    {
      sched_alloc_t *a = p->removed[i];
      orch_debug ("allocation %s on %s removed", a->id, a->node);
      send_stop (s, a, p->removed_grace[i]);
      orch_map_del (&s->allocs, a->id);
      sched_alloc_free (a);
    }
  for (size_t i = 0; i < p->n_added; i++)
    {
      sched_alloc_t *a = p->added[i];
      a->mod_revision = revision;
      orch_map_put (&s->allocs, a->id, a);
      orch_debug ("allocation %s placed on %s as %s: %s", a->id, a->node, a->isolation, a->reason);
      send_start (s, a);
    }
  /* One line per pass at info (a pass may place thousands); each
   * allocation at debug. */
  if (p->n_added || p->n_removed)
    {
      if (p->n_added == 1 && p->n_removed == 0)
        orch_info ("allocation %s placed on %s as %s: %s", p->added[0]->id, p->added[0]->node,
                   p->added[0]->isolation, p->added[0]->reason);
      else
        orch_info ("reconciled %zu service(s): %zu allocation(s) placed, %zu removed",
                   p->n_services, p->n_added, p->n_removed);
    }
  for (size_t i = 0; i < p->n_services; i++)
    {
      sched_service_t *svc = orch_map_get (&s->services, p->services[i]);
      if (svc && svc->pending)
        orch_info ("service %s: %u replica(s) pending: %s", svc->name, svc->pending,
                   svc->pending_reason);
    }
  s->reconcile_running = false;
  s->passes_done = p->seq;
  /* Removals freed capacity that pending replicas may use. */
  if (p->n_removed)
    sched_reconcile_mark_pending (s);
  pass_free (p);
  sched_api_apply_done (s, 0, NULL);
  sched_reconcile_schedule (s);
}

static void
on_idle (uv_idle_t *h)
{
  sched_t *s = h->data;
  uv_idle_stop (h);
  run_pass (s);
}

void
sched_reconcile_schedule (sched_t *s)
{
  if (s->stopping || !s->loaded || s->reconcile_running || s->dirty_services.len == 0)
    return;
  if (!uv_is_active ((uv_handle_t *) &s->reconcile_idle))
    uv_idle_start (&s->reconcile_idle, on_idle);
}

void
sched_reconcile_mark (sched_t *s, const char *service)
{
  orch_map_put (&s->dirty_services, service, (void *) 1);
  sched_reconcile_schedule (s);
}

void
sched_reconcile_mark_pending (sched_t *s)
{
  const char *k;
  void *v;
  for (size_t i = 0; orch_map_next (&s->services, &i, &k, &v);)
    if (((sched_service_t *) v)->pending)
      sched_reconcile_mark (s, k);
}

/* ---- Plan ------------------------------------------------------------------ */

void
sched_placements_free (Orch__Placement **p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    {
      free (p[i]->service);
      free (p[i]->alloc_id);
      free (p[i]->node);
      free (p[i]->isolation);
      free (p[i]->reason);
      free (p[i]);
    }
  free (p);
}

Orch__Placement *
sched_placement_new (const char *service, const char *alloc_id, const char *node, const char *isolation,
               const char *reason)
{
  Orch__Placement *pl = xmalloc (sizeof *pl);
  orch__placement__init (pl);
  pl->service = xstrdup (service);
  pl->alloc_id = xstrdup (alloc_id ? alloc_id : "");
  pl->node = xstrdup (node ? node : "");
  pl->isolation = xstrdup (isolation);
  pl->reason = xstrdup (reason ? reason : "");
  return pl;
}

/* What applying specs would do, without changing anything: existing
 * allocations that would stay are listed as they are; replaced services are
 * planned as if their old allocations were gone. */
int
sched_plan (sched_t *s, const orch_spec_t *specs, size_t n, Orch__Placement ***out, size_t *n_out)
{
  Orch__Placement **list = NULL;
  size_t count = 0, cap = 0;
  sched_alloc_t **lifted = NULL;
  size_t n_lifted = 0, cap_lifted = 0;
  place_workload_t *work = NULL;
  const orch_spec_t **work_spec = NULL;
  size_t n_work = 0, cap_work = 0, cap_ws = 0;
  const char *k;
  void *v;

  for (size_t si = 0; si < n; si++)
    {
      const orch_spec_t *spec = &specs[si];
      sched_service_t *svc = orch_map_get (&s->services, spec->name);
      bool same = false;
      if (svc)
        {
          sched_service_t *probe = sched_service_new (spec, 0);
          same = strcmp (probe->template_json, svc->template_json) == 0;
          sched_service_free (probe);
        }
      size_t kept = 0;
      for (size_t i = 0; orch_map_next (&s->allocs, &i, &k, &v);)
        {
          sched_alloc_t *a = v;
          if (a->removing || strcmp (a->service, spec->name) != 0)
            continue;
          if (same && a->spec_version == svc->version && kept < spec->replicas)
            {
              orch_grow ((void **) &list, &cap, count + 1, sizeof *list);
              list[count++] = sched_placement_new (a->service, a->id, a->node, a->isolation,
                                             "already placed");
              kept++;
            }
          else if (a->place_id != PLACE_ALLOC_NONE)
            {
              orch_grow ((void **) &lifted, &cap_lifted, n_lifted + 1, sizeof *lifted);
              lifted[n_lifted++] = a;
              sched_reconcile_remove_alloc (s, a);
            }
        }
      for (size_t i = kept; i < spec->replicas; i++)
        {
          orch_grow ((void **) &work, &cap_work, n_work + 1, sizeof *work);
          orch_grow ((void **) &work_spec, &cap_ws, n_work + 1, sizeof *work_spec);
          place_workload_from_spec (spec, &work[n_work]);
          work_spec[n_work++] = spec;
        }
    }
  place_result_t *res = xcalloc (n_work ? n_work : 1, sizeof *res);
  place_batch_opts_t opts = { .plan = true };
  orch_err_t err = {0};
  int r = n_work ? place_batch (s->cluster, work, n_work, &opts, res, &err) : 0;
  for (size_t i = 0; r >= 0 && i < n_work; i++)
    {
      orch_grow ((void **) &list, &cap, count + 1, sizeof *list);
      bool placed = res[i].node != PLACE_NODE_NONE;
      list[count++] = sched_placement_new (
          work_spec[i]->name, NULL, placed ? place_node_name (s->cluster, res[i].node) : NULL,
          res[i].isolation == ORCH_ISO_MICROVM ? "microvm"
                                               : res[i].isolation == ORCH_ISO_AUTO ? "auto"
                                                                                   : "container",
          res[i].reason);
    }
  for (size_t i = 0; i < n_lifted; i++)
    sched_reconcile_add_alloc (s, lifted[i]);
  free (lifted);
  free (res);
  free (work);
  free (work_spec);
  if (r < 0)
    {
      sched_placements_free (list, count);
      return -1;
    }
  *out = list;
  *n_out = count;
  return 0;
}
