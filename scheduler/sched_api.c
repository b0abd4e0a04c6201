/* The API port: orchctl's requests (apply, plan, get, describe, delete,
 * drain, logs). Replies carry the request's id; refusals are Error messages
 * with a code (1 refused, 2 bad request, 3 not found, 4 unavailable). */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "orch_log.h"
#include "orch_util.h"
#include "sched_internal.h"
#include "sched_write.h"

#define SCHED_LOGS_TIMEOUT_MS 10000

enum
{
  ERR_REFUSED = 1,
  ERR_BAD_REQUEST = 2,
  ERR_NOT_FOUND = 3,
  ERR_UNAVAILABLE = 4,
};

void
sched_api_reply_error (sched_conn_t *c, uint64_t request_id, int code, const char *msg,
                       char **details, size_t n_details)
{
  if (c == NULL || c->wc == NULL)
    return;
  Orch__Error e = ORCH__ERROR__INIT;
  e.code = code;
  e.message = (char *) msg;
  e.details = details;
  e.n_details = n_details;
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  env.request_id = request_id;
  env.msg_case = ORCH__ENVELOPE__MSG_ERROR;
  env.error = &e;
  sched_conn_send (c, &env);
}

/* An Error reply with a formatted message and no details. */
static void __attribute__ ((format (printf, 4, 5)))
refuse (sched_conn_t *c, uint64_t request_id, int code, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  cleanup_free char *msg = NULL;
  if (vasprintf (&msg, fmt, ap) < 0)
    abort ();
  va_end (ap);
  sched_api_reply_error (c, request_id, code, msg, NULL, 0);
}

static bool
require_loaded (sched_conn_t *c, uint64_t request_id)
{
  if (c->s->loaded)
    return true;
  sched_api_reply_error (c, request_id, ERR_UNAVAILABLE,
                         "the scheduler is still loading its state from etcd; try again shortly",
                         NULL, 0);
  return false;
}

static void
waiter_free (sched_waiter_t *w)
{
  for (size_t i = 0; i < w->n_services; i++)
    free (w->services[i]);
  free (w->services);
  for (size_t i = 0; i < w->n_changes; i++)
    {
      free (w->changes[i].name);
      free (w->changes[i].action);
    }
  free (w->changes);
  free (w->alloc_id);
  free (w->node_id);
  sched_conn_unref (w->conn);
  free (w);
}

/* ---- apply ------------------------------------------------------------------ */

static int
cmp_alloc_ptr (const void *x, const void *y)
{
  const sched_alloc_t *a = *(sched_alloc_t *const *) x, *b = *(sched_alloc_t *const *) y;
  int r = strcmp (a->service, b->service);
  return r ? r : strcmp (a->id, b->id);
}

/* The allocations of a service, sorted by id; *out caller-freed (borrowed elements). */
static size_t
service_allocs (sched_t *s, const char *service, sched_alloc_t ***out)
{
  sched_alloc_t **v = NULL;
  size_t n = 0, cap = 0;
  const char *k;
  void *val;
  for (size_t i = 0; orch_map_next (&s->allocs, &i, &k, &val);)
    {
      sched_alloc_t *a = val;
      if (a->removing || (service && strcmp (a->service, service) != 0))
        continue;
      orch_grow ((void **) &v, &cap, n + 1, sizeof *v);
      v[n++] = a;
    }
  if (n)
    qsort (v, n, sizeof *v, cmp_alloc_ptr);
  *out = v;
  return n;
}

/* Answers w's apply (or plan) with its service changes and placements. */
static void
send_apply_reply (const sched_waiter_t *w, Orch__Placement **pl, size_t n_pl)
{
  Orch__ServiceChange **changes = xcalloc (w->n_changes + 1, sizeof *changes);
  for (size_t i = 0; i < w->n_changes; i++)
    changes[i] = &w->changes[i];
  Orch__ApplyReply reply = ORCH__APPLY_REPLY__INIT;
  reply.changes = changes;
  reply.n_changes = w->n_changes;
  reply.placements = pl;
  reply.n_placements = n_pl;
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  env.request_id = w->request_id;
  env.msg_case = ORCH__ENVELOPE__MSG_APPLY_REPLY;
  env.apply_reply = &reply;
  sched_conn_send (w->conn, &env);
  free (changes);
}

/* The current placements of w's services, and the pending replicas. */
static void
apply_reply (sched_t *s, sched_waiter_t *w)
{
  Orch__Placement **pl = NULL;
  size_t n_pl = 0, cap = 0;
  for (size_t i = 0; i < w->n_services; i++)
    {
      sched_service_t *svc = orch_map_get (&s->services, w->services[i]);
      if (svc == NULL)
        continue;
      sched_alloc_t **allocs;
      size_t n = service_allocs (s, svc->name, &allocs);
      for (size_t j = 0; j < n; j++)
        {
          if (allocs[j]->spec_version != svc->version)
            continue;
          Orch__Placement *p = sched_placement_new (svc->name, allocs[j]->id, allocs[j]->node,
                                                    allocs[j]->isolation, allocs[j]->reason);
          orch_grow ((void **) &pl, &cap, n_pl + 1, sizeof *pl);
          pl[n_pl++] = p;
        }
      free (allocs);
      for (uint32_t j = 0; j < svc->pending; j++)
        {
          Orch__Placement *p = sched_placement_new (
              svc->name, NULL, NULL, orch_isolation_name (svc->spec.isolation),
              svc->pending_reason ? svc->pending_reason : "pending");
          orch_grow ((void **) &pl, &cap, n_pl + 1, sizeof *pl);
          pl[n_pl++] = p;
        }
    }
  send_apply_reply (w, pl, n_pl);
  sched_placements_free (pl, n_pl);
}

void
sched_api_apply_done (sched_t *s, int status, const char *error)
{
  (void) error;
  if (status < 0)
    return; /* the pass is retried; waiters are answered when it succeeds */
  for (sched_waiter_t **p = &s->apply_waiters; *p;)
    {
      sched_waiter_t *w = *p;
      if (w->min_pass > s->passes_done)
        {
          p = &w->next;
          continue;
        }
      *p = w->next;
      apply_reply (s, w);
      waiter_free (w);
    }
}

typedef struct apply_ctx_s
{
  sched_waiter_t *w;
  sched_service_t **svcs; /* new records to install, one per changed service */
  size_t n;
} apply_ctx_t;

static void
on_services_written (sched_t *s, void *ctx, int status, const char *error, bool failed_compare,
                     int64_t revision)
{
  apply_ctx_t *ac = ctx;
  sched_waiter_t *w = ac->w;
  if (status < 0)
    {
      if (failed_compare)
        sched_api_reply_error (w->conn, w->request_id, ERR_REFUSED,
                               "a service in this file was changed by someone else meanwhile; "
                               "run apply again",
                               NULL, 0);
      else
        {
          refuse (w->conn, w->request_id, ERR_UNAVAILABLE, "cannot store the services in etcd: %s", error);
        }
      for (size_t i = 0; i < ac->n; i++)
        sched_service_free (ac->svcs[i]);
      waiter_free (w);
    }
  else
    {
      for (size_t i = 0; i < ac->n; i++)
        {
          sched_service_t *svc = ac->svcs[i];
          svc->mod_revision = revision;
          sched_service_t *old = orch_map_put (&s->services, svc->name, svc);
          if (old)
            svc->created_at_ms = old->created_at_ms;
          sched_service_free (old);
          orch_info ("service %s stored (version %" PRIu64 ", %u replicas)", svc->name,
                     svc->version, svc->spec.replicas);
          sched_reconcile_mark (s, svc->name);
        }
      w->min_pass = s->passes_started + 1;
      w->next = s->apply_waiters;
      s->apply_waiters = w;
      sched_reconcile_schedule (s);
    }
  free (ac->svcs);
  free (ac);
}

static void
handle_apply (sched_conn_t *c, uint64_t request_id, const Orch__ApplyRequest *req)
{
  sched_t *s = c->s;
  if (!require_loaded (c, request_id))
    return;
  const char *source = req->source && *req->source ? req->source : "the spec";
  orch_spec_t *specs = NULL;
  size_t n = 0;
  orch_errlist_t errs = {0};
  if (orch_spec_parse_text (req->spec_json, strlen (req->spec_json), &specs, &n, &errs) < 0)
    {
      cleanup_free char *msg = xasprintf ("%s is not valid", source);
      sched_api_reply_error (c, request_id, ERR_BAD_REQUEST, msg, errs.items, errs.len);
      orch_errlist_free (&errs);
      return;
    }
  orch_errlist_free (&errs);

  sched_waiter_t *w = xcalloc (1, sizeof *w);
  w->conn = sched_conn_ref (c);
  w->request_id = request_id;
  w->services = xcalloc (n, sizeof (char *));
  w->changes = xcalloc (n, sizeof *w->changes);
  apply_ctx_t *ac = xcalloc (1, sizeof *ac);
  ac->w = w;
  ac->svcs = xcalloc (n, sizeof *ac->svcs);
  sched_batch_t *b = sched_batch_new (s);
  for (size_t i = 0; i < n; i++)
    {
      sched_service_t *cur = orch_map_get (&s->services, specs[i].name);
      sched_service_t *next = sched_service_new (&specs[i], cur ? cur->version : 1);
      const char *action = "created";
      if (cur)
        {
          if (strcmp (cur->template_json, next->template_json) != 0)
            {
              action = "updated";
              next->version = cur->version + 1;
            }
          else if (cur->spec.replicas != next->spec.replicas)
            action = "scaled";
          else
            action = "unchanged";
        }
      Orch__ServiceChange *ch = &w->changes[w->n_changes++];
      orch__service_change__init (ch);
      ch->name = xstrdup (specs[i].name);
      ch->action = xstrdup (action);
      ch->version = next->version;
      w->services[w->n_services++] = xstrdup (specs[i].name);
      if (req->dry_run || strcmp (action, "unchanged") == 0)
        {
          sched_service_free (next);
          continue;
        }
      ac->svcs[ac->n++] = next;
      char *key = xasprintf (SCHED_SERVICES_PREFIX "%s", next->name);
      if (cur)
        sched_batch_cmp (b, xstrdup (key), STORE_CMP_MOD_REVISION, cur->mod_revision);
      else
        sched_batch_cmp (b, xstrdup (key), STORE_CMP_CREATE_REVISION, 0);
      sched_batch_put (b, key, sched_service_encode (next), 0);
    }

  if (ac->n > 0)
    sched_batch_submit (b, on_services_written, ac);
  else
    {
      /* A plan, or nothing changed: nothing to write. */
      sched_batch_free (b);
      free (ac->svcs);
      free (ac);
      if (req->dry_run)
        {
          Orch__Placement **pl = NULL;
          size_t n_pl = 0;
          sched_plan (s, specs, n, &pl, &n_pl);
          send_apply_reply (w, pl, n_pl);
          sched_placements_free (pl, n_pl);
        }
      else
        apply_reply (s, w);
      waiter_free (w);
    }
  orch_specs_free (specs, n);
}

/* ---- get / describe ------------------------------------------------------- */

static Orch__Resources *
resources (Orch__Resources *r, int64_t cpu, int64_t mem)
{
  orch__resources__init (r);
  r->cpu_milli = cpu;
  r->memory_bytes = mem;
  return r;
}

static int
cmp_name (const void *x, const void *y)
{
  return strcmp (*(const char *const *) x, *(const char *const *) y);
}

/* Sorted keys of a map; caller frees the array (keys borrowed). */
static const char **
sorted_keys (const orch_map_t *m, size_t *n)
{
  const char **keys = xcalloc (m->len + 1, sizeof *keys);
  const char *k;
  size_t count = 0;
  for (size_t i = 0; orch_map_next (m, &i, &k, NULL);)
    keys[count++] = k;
  qsort (keys, count, sizeof *keys, cmp_name);
  *n = count;
  return keys;
}

static void
fill_service (sched_t *s, const sched_service_t *svc, Orch__ServiceInfo *si)
{
  orch__service_info__init (si);
  si->name = svc->name;
  si->tenant = svc->spec.tenant;
  si->replicas = svc->spec.replicas;
  si->isolation = (char *) orch_isolation_name (svc->spec.isolation);
  si->image = svc->spec.image;
  si->version = svc->version;
  si->pending = svc->pending;
  si->pending_reason = svc->pending_reason ? svc->pending_reason : "";
  si->spec_json = svc->spec.json;
  si->cpu_milli = svc->spec.cpu_milli;
  si->memory_bytes = svc->spec.memory_bytes;
  sched_alloc_t **allocs;
  size_t n = service_allocs (s, svc->name, &allocs);
  for (size_t i = 0; i < n; i++)
    if (strcmp (allocs[i]->status.state, "running") == 0)
      si->running++;
  free (allocs);
}

static void
fill_alloc (sched_t *s, const sched_alloc_t *a, Orch__AllocInfo *ai, Orch__AllocStatus *st,
            Orch__PortMapping *pm, Orch__PortMapping **pm_ptrs)
{
  orch__alloc_info__init (ai);
  orch__alloc_status__init (st);
  ai->alloc_id = a->id;
  ai->service = a->service;
  ai->node = a->node;
  ai->isolation = a->isolation;
  ai->reason = a->reason;
  ai->desired = "run";
  ai->spec_version = a->spec_version;
  ai->created_at_ms = a->created_at_ms;
  st->alloc_id = a->id;
  st->state = (char *) a->status.state;
  st->exit_code = a->status.exit_code;
  st->reason = a->status.reason ? a->status.reason : "";
  st->memory_bytes = a->status.memory_bytes;
  st->cpu_usec = a->status.cpu_usec;
  st->pid = a->status.pid;
  st->started_at_ms = a->status.started_at_ms;
  st->finished_at_ms = a->status.finished_at_ms;
  st->restarts = a->status.restarts;
  st->address = a->status.address ? a->status.address : "";
  st->health = a->status.health ? a->status.health : "";
  st->vmm = a->status.vmm ? a->status.vmm : "";
  st->guest_kernel = a->status.guest_kernel ? a->status.guest_kernel : "";
  ai->status = st;
  sched_ports_fill_msg (a, pm, pm_ptrs);
  ai->ports = pm_ptrs;
  ai->n_ports = a->n_ports;
  sched_node_t *n = orch_map_get (&s->nodes, a->node);
  ai->node_address = n ? n->address : "";
}

static void
fill_node (sched_t *s, const sched_node_t *n, Orch__NodeInfo *ni, Orch__Resources *res,
           Orch__NodeInfo__LabelsEntry *labels, Orch__NodeInfo__LabelsEntry **label_ptrs,
           char **runtimes)
{
  orch__node_info__init (ni);
  ni->node_id = n->id;
  ni->address = n->address;
  ni->state = (char *) sched_node_state (s, n);
  for (size_t i = 0; i < n->n_labels; i++)
    {
      orch__node_info__labels_entry__init (&labels[i]);
      labels[i].key = n->label_keys[i];
      labels[i].value = n->label_values[i];
      label_ptrs[i] = &labels[i];
    }
  ni->labels = label_ptrs;
  ni->n_labels = n->n_labels;
  ni->capacity = resources (&res[0], n->cap_cpu_milli, n->cap_memory_bytes);
  ni->usage = resources (&res[1], n->used_cpu_milli, n->used_memory_bytes);
  place_node_info_t info = {0};
  if (n->place_id != PLACE_NODE_NONE)
    place_node_info (s->cluster, n->place_id, &info);
  ni->allocated = resources (&res[2], info.cpu_reserved, info.memory_reserved);
  ni->allocs = info.n_allocs;
  size_t nr = 0;
  if (n->rt_container)
    runtimes[nr++] = "container";
  if (n->rt_microvm)
    runtimes[nr++] = "microvm";
  ni->runtimes = runtimes;
  ni->n_runtimes = nr;
  ni->last_heartbeat_ms = n->agent ? orch_now_wall_ms () - (orch_now_mono_ms () - n->last_heartbeat_ms) : 0;
  ni->cgroup_version = (char *) n->cgroup_version;
}

static void
handle_get (sched_conn_t *c, uint64_t request_id, const Orch__GetRequest *req)
{
  sched_t *s = c->s;
  if (!require_loaded (c, request_id))
    return;
  const char *kind = req->kind ? req->kind : "";
  const char *name = req->name && *req->name ? req->name : NULL;
  Orch__GetReply reply = ORCH__GET_REPLY__INIT;
  /* Everything below points into the scheduler's records; only arrays are ours. */
  Orch__ServiceInfo *svc_infos = NULL;
  Orch__AllocInfo *alloc_infos = NULL;
  Orch__AllocStatus *statuses = NULL;
  Orch__NodeInfo *node_infos = NULL;
  Orch__Resources *res = NULL;
  Orch__NodeInfo__LabelsEntry *labels = NULL;
  Orch__NodeInfo__LabelsEntry **label_ptrs = NULL;
  char **runtimes = NULL;
  Orch__PortMapping *ports = NULL;
  Orch__PortMapping **port_ptrs = NULL;
  sched_alloc_t **allocs = NULL;
  const char **keys = NULL;
  size_t n = 0;

  bool describe = strcmp (kind, "service") == 0;
  if (strcmp (kind, "services") == 0 || describe)
    {
      if (describe && name == NULL)
        {
          sched_api_reply_error (c, request_id, ERR_BAD_REQUEST, "describe needs a service name",
                                 NULL, 0);
          return;
        }
      if (name && orch_map_get (&s->services, name) == NULL)
        {
          refuse (c, request_id, ERR_NOT_FOUND, "service %s not found", name);
          return;
        }
      keys = sorted_keys (&s->services, &n);
      svc_infos = xcalloc (n + 1, sizeof *svc_infos);
      reply.services = xcalloc (n + 1, sizeof *reply.services);
      for (size_t i = 0; i < n; i++)
        {
          if (name && strcmp (keys[i], name) != 0)
            continue;
          fill_service (s, orch_map_get (&s->services, keys[i]), &svc_infos[reply.n_services]);
          reply.services[reply.n_services] = &svc_infos[reply.n_services];
          reply.n_services++;
        }
    }
  if (strcmp (kind, "allocs") == 0 || describe)
    {
      n = service_allocs (s, name, &allocs);
      alloc_infos = xcalloc (n + 1, sizeof *alloc_infos);
      statuses = xcalloc (n + 1, sizeof *statuses);
      reply.allocs = xcalloc (n + 1, sizeof *reply.allocs);
      size_t total_ports = 0;
      for (size_t i = 0; i < n; i++)
        total_ports += allocs[i]->n_ports;
      ports = xcalloc (total_ports + 1, sizeof *ports);
      port_ptrs = xcalloc (total_ports + 1, sizeof *port_ptrs);
      size_t pi = 0;
      for (size_t i = 0; i < n; i++)
        {
          fill_alloc (s, allocs[i], &alloc_infos[i], &statuses[i], &ports[pi], &port_ptrs[pi]);
          pi += allocs[i]->n_ports;
          reply.allocs[i] = &alloc_infos[i];
        }
      reply.n_allocs = n;
    }
  else if (strcmp (kind, "nodes") == 0)
    {
      keys = sorted_keys (&s->nodes, &n);
      size_t total_labels = 0;
      for (size_t i = 0; i < n; i++)
        total_labels += ((sched_node_t *) orch_map_get (&s->nodes, keys[i]))->n_labels;
      node_infos = xcalloc (n + 1, sizeof *node_infos);
      res = xcalloc (3 * n + 1, sizeof *res);
      labels = xcalloc (total_labels + 1, sizeof *labels);
      label_ptrs = xcalloc (total_labels + 1, sizeof *label_ptrs);
      runtimes = xcalloc (2 * n + 1, sizeof *runtimes);
      reply.nodes = xcalloc (n + 1, sizeof *reply.nodes);
      size_t li = 0;
      for (size_t i = 0; i < n; i++)
        {
          sched_node_t *node = orch_map_get (&s->nodes, keys[i]);
          if (name && strcmp (node->id, name) != 0)
            continue;
          fill_node (s, node, &node_infos[reply.n_nodes], &res[3 * i], &labels[li],
                     &label_ptrs[li], &runtimes[2 * i]);
          li += node->n_labels;
          reply.nodes[reply.n_nodes] = &node_infos[reply.n_nodes];
          reply.n_nodes++;
        }
    }
  else if (strcmp (kind, "services") != 0 && !describe)
    {
      refuse (c, request_id, ERR_BAD_REQUEST, "unknown kind \"%s\" (expected services, allocs, nodes or service)", kind);
      return;
    }
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  env.request_id = request_id;
  env.msg_case = ORCH__ENVELOPE__MSG_GET_REPLY;
  env.get_reply = &reply;
  sched_conn_send (c, &env);
  free (reply.services);
  free (reply.allocs);
  free (reply.nodes);
  free (svc_infos);
  free (alloc_infos);
  free (statuses);
  free (node_infos);
  free (res);
  free (labels);
  free (label_ptrs);
  free (runtimes);
  free (ports);
  free (port_ptrs);
  free (allocs);
  free (keys);
}

/* ---- delete / drain --------------------------------------------------------- */

typedef struct delete_ctx_s
{
  sched_conn_t *conn;
  uint64_t request_id;
  char *name;
} delete_ctx_t;

static void
on_service_deleted (sched_t *s, void *ctx, int status, const char *error, bool failed_compare,
                    int64_t revision)
{
  delete_ctx_t *dc = ctx;
  (void) revision;
  if (status < 0)
    {
      if (failed_compare)
        refuse (dc->conn, dc->request_id, ERR_REFUSED,
                "service %s was changed meanwhile; try again", dc->name);
      else
        refuse (dc->conn, dc->request_id, ERR_UNAVAILABLE, "cannot delete service %s in etcd: %s",
                dc->name, error);
    }
  else
    {
      sched_service_t *svc = orch_map_del (&s->services, dc->name);
      sched_alloc_t **allocs;
      size_t n = service_allocs (s, dc->name, &allocs);
      for (size_t i = 0; svc && i < n; i++)
        allocs[i]->stop_grace_ms = svc->spec.stop_grace_ms;
      free (allocs);
      sched_service_free (svc);
      orch_info ("service %s deleted; stopping %zu allocation(s)", dc->name, n);
      sched_reconcile_mark (s, dc->name);
      Orch__DeleteReply reply = ORCH__DELETE_REPLY__INIT;
      reply.stopped = (uint32_t) n;
      Orch__Envelope env = ORCH__ENVELOPE__INIT;
      env.request_id = dc->request_id;
      env.msg_case = ORCH__ENVELOPE__MSG_DELETE_REPLY;
      env.delete_reply = &reply;
      sched_conn_send (dc->conn, &env);
    }
  sched_conn_unref (dc->conn);
  free (dc->name);
  free (dc);
}

static void
handle_delete (sched_conn_t *c, uint64_t request_id, const Orch__DeleteRequest *req)
{
  sched_t *s = c->s;
  if (!require_loaded (c, request_id))
    return;
  if (strcmp (req->kind, "service") != 0)
    {
      refuse (c, request_id, ERR_BAD_REQUEST, "cannot delete \"%s\" (only: service)", req->kind);
      return;
    }
  sched_service_t *svc = orch_map_get (&s->services, req->name);
  if (svc == NULL)
    {
      refuse (c, request_id, ERR_NOT_FOUND, "service %s not found", req->name);
      return;
    }
  delete_ctx_t *dc = xcalloc (1, sizeof *dc);
  dc->conn = sched_conn_ref (c);
  dc->request_id = request_id;
  dc->name = xstrdup (svc->name);
  sched_batch_t *b = sched_batch_new (s);
  char *key = xasprintf (SCHED_SERVICES_PREFIX "%s", svc->name);
  sched_batch_cmp (b, xstrdup (key), STORE_CMP_MOD_REVISION, svc->mod_revision);
  sched_batch_del (b, key);
  sched_batch_submit (b, on_service_deleted, dc);
}

static void
on_node_drained (sched_t *s, void *ctx, int status, const char *error, bool failed_compare,
                 int64_t revision)
{
  sched_waiter_t *w = ctx;
  (void) failed_compare;
  (void) revision;
  if (status < 0)
    {
      refuse (w->conn, w->request_id, ERR_UNAVAILABLE, "cannot store the drain in etcd: %s", error);
    }
  else
    {
      Orch__DrainReply reply = ORCH__DRAIN_REPLY__INIT;
      reply.moved = w->count; /* allocations to be replaced elsewhere */
      Orch__Envelope env = ORCH__ENVELOPE__INIT;
      env.request_id = w->request_id;
      env.msg_case = ORCH__ENVELOPE__MSG_DRAIN_REPLY;
      env.drain_reply = &reply;
      sched_conn_send (w->conn, &env);
    }
  waiter_free (w);
}

/* Draining a node stops new placements there and moves its allocations to
 * other nodes (the reconciler replaces allocations on draining nodes). */
static void
handle_drain (sched_conn_t *c, uint64_t request_id, const Orch__DrainRequest *req)
{
  sched_t *s = c->s;
  if (!require_loaded (c, request_id))
    return;
  sched_node_t *n = orch_map_get (&s->nodes, req->node_id);
  if (n == NULL)
    {
      refuse (c, request_id, ERR_NOT_FOUND, "node %s not found", req->node_id);
      return;
    }
  n->draining = true;
  if (n->place_id != PLACE_NODE_NONE)
    place_node_set_state (s->cluster, n->place_id, sched_node_ready (s, n), true);
  size_t moved = 0;
  const char *k;
  void *v;
  for (size_t i = 0; orch_map_next (&s->allocs, &i, &k, &v);)
    {
      sched_alloc_t *a = v;
      if (strcmp (a->node, n->id) == 0 && !a->removing && !sched_status_terminal (&a->status))
        {
          moved++;
          sched_reconcile_mark (s, a->service);
        }
    }
  orch_info ("node %s draining: %zu allocation(s) to move", n->id, moved);
  sched_waiter_t *w = xcalloc (1, sizeof *w);
  w->conn = sched_conn_ref (c);
  w->request_id = request_id;
  w->count = (uint32_t) moved;
  sched_batch_t *b = sched_batch_new (s);
  sched_batch_put (b, xasprintf (SCHED_NODES_PREFIX "%s", n->id), sched_node_encode (n),
                   n->lease_id);
  sched_batch_submit (b, on_node_drained, w);
}

/* ---- logs ----------------------------------------------------------------- */

static void
handle_logs (sched_conn_t *c, uint64_t request_id, const Orch__LogsRequest *req)
{
  sched_t *s = c->s;
  if (!require_loaded (c, request_id))
    return;
  sched_alloc_t *a = orch_map_get (&s->allocs, req->alloc_id);
  if (a == NULL)
    {
      refuse (c, request_id, ERR_NOT_FOUND, "allocation %s not found", req->alloc_id);
      return;
    }
  sched_node_t *n = orch_map_get (&s->nodes, a->node);
  if (n == NULL || n->agent == NULL)
    {
      refuse (c, request_id, ERR_UNAVAILABLE,
              "node %s of allocation %s is down; its logs are unavailable", a->node, a->id);
      return;
    }
  sched_waiter_t *w = xcalloc (1, sizeof *w);
  w->conn = sched_conn_ref (c);
  w->request_id = request_id;
  w->agent_request_id = s->next_agent_request_id++;
  w->alloc_id = xstrdup (a->id);
  w->node_id = xstrdup (n->id);
  w->follow = req->follow;
  w->deadline_ms = orch_now_mono_ms () + SCHED_LOGS_TIMEOUT_MS;
  w->next = s->logs_waiters;
  s->logs_waiters = w;
  Orch__LogsRequest fwd = ORCH__LOGS_REQUEST__INIT;
  fwd.alloc_id = a->id;
  fwd.tail_bytes = req->tail_bytes;
  fwd.follow = req->follow;
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  env.request_id = w->agent_request_id;
  env.msg_case = ORCH__ENVELOPE__MSG_LOGS_REQUEST;
  env.logs_request = &fwd;
  sched_conn_send (n->agent, &env);
}

/* An agent answered a forwarded logs request (LogsReply or Error). The
 * answer is rebuilt rather than re-sent as received, so that nothing the
 * agent added beyond the schema travels on to orchctl. */
void
sched_api_logs_reply (sched_t *s, uint64_t agent_request_id, Orch__Envelope *env)
{
  for (sched_waiter_t **p = &s->logs_waiters; *p; p = &(*p)->next)
    {
      sched_waiter_t *w = *p;
      if (w->agent_request_id != agent_request_id)
        continue;
      bool more = env->msg_case == ORCH__ENVELOPE__MSG_LOGS_REPLY && w->follow
                  && !env->logs_reply->eof;
      if (more)
        w->deadline_ms = INT64_MAX; /* a follow lasts until cancelled */
      else
        *p = w->next;
      if (env->msg_case == ORCH__ENVELOPE__MSG_LOGS_REPLY)
        {
          Orch__LogsReply reply = ORCH__LOGS_REPLY__INIT;
          reply.data = env->logs_reply->data;
          reply.truncated = env->logs_reply->truncated;
          reply.eof = env->logs_reply->eof;
          Orch__Envelope out = ORCH__ENVELOPE__INIT;
          out.request_id = w->request_id;
          out.msg_case = ORCH__ENVELOPE__MSG_LOGS_REPLY;
          out.logs_reply = &reply;
          sched_conn_send (w->conn, &out);
        }
      else
        sched_api_reply_error (w->conn, w->request_id, env->error->code, env->error->message,
                               env->error->details, env->error->n_details);
      if (!more)
        waiter_free (w);
      return;
    }
}

void
sched_api_tick (sched_t *s)
{
  int64_t now = orch_now_mono_ms ();
  for (sched_waiter_t **p = &s->logs_waiters; *p;)
    {
      sched_waiter_t *w = *p;
      if (w->deadline_ms > now)
        {
          p = &w->next;
          continue;
        }
      *p = w->next;
      refuse (w->conn, w->request_id, ERR_UNAVAILABLE, "the agent did not send the logs of %s within %d s", w->alloc_id, SCHED_LOGS_TIMEOUT_MS / 1000);
      waiter_free (w);
    }
}

static void handle_logs_cancel (sched_conn_t *c, const Orch__LogsCancel *req);

/* ---- dispatch ------------------------------------------------------------- */

void
sched_api_message (sched_conn_t *c, Orch__Envelope *env)
{
  switch (env->msg_case)
    {
    case ORCH__ENVELOPE__MSG_APPLY_REQUEST:
      handle_apply (c, env->request_id, env->apply_request);
      break;
    case ORCH__ENVELOPE__MSG_GET_REQUEST:
      handle_get (c, env->request_id, env->get_request);
      break;
    case ORCH__ENVELOPE__MSG_DELETE_REQUEST:
      handle_delete (c, env->request_id, env->delete_request);
      break;
    case ORCH__ENVELOPE__MSG_DRAIN_REQUEST:
      handle_drain (c, env->request_id, env->drain_request);
      break;
    case ORCH__ENVELOPE__MSG_LOGS_REQUEST:
      handle_logs (c, env->request_id, env->logs_request);
      break;
    case ORCH__ENVELOPE__MSG_LOGS_CANCEL:
      handle_logs_cancel (c, env->logs_cancel);
      break;
    default:
      sched_api_reply_error (c, env->request_id, ERR_BAD_REQUEST,
                             "this message is not a request the API port accepts", NULL, 0);
      break;
    }
}

/* Tells the agent to stop following and forgets the waiter. */
static void
logs_cancel (sched_t *s, sched_waiter_t **link)
{
  sched_waiter_t *w = *link;
  *link = w->next;
  sched_node_t *n = orch_map_get (&s->nodes, w->node_id);
  if (n && n->agent)
    {
      Orch__LogsCancel cancel = ORCH__LOGS_CANCEL__INIT;
      cancel.request_id = w->agent_request_id;
      Orch__Envelope env = ORCH__ENVELOPE__INIT;
      env.msg_case = ORCH__ENVELOPE__MSG_LOGS_CANCEL;
      env.logs_cancel = &cancel;
      sched_conn_send (n->agent, &env);
    }
  waiter_free (w);
}

static void
handle_logs_cancel (sched_conn_t *c, const Orch__LogsCancel *req)
{
  for (sched_waiter_t **p = &c->s->logs_waiters; *p; p = &(*p)->next)
    if ((*p)->conn == c && (*p)->request_id == req->request_id)
      {
        logs_cancel (c->s, p);
        return;
      }
}

void
sched_api_closed (sched_conn_t *c)
{
  /* Follows of a client that went away are cancelled; other waiters keep
   * their reference and their replies are dropped. */
  for (sched_waiter_t **p = &c->s->logs_waiters; *p;)
    {
      if ((*p)->conn == c && (*p)->follow)
        logs_cancel (c->s, p);
      else
        p = &(*p)->next;
    }
}

void
sched_api_agent_gone (sched_t *s, const char *node_id)
{
  for (sched_waiter_t **p = &s->logs_waiters; *p;)
    {
      sched_waiter_t *w = *p;
      if (strcmp (w->node_id, node_id) != 0)
        {
          p = &w->next;
          continue;
        }
      *p = w->next;
      refuse (w->conn, w->request_id, ERR_UNAVAILABLE, "node %s disconnected while sending the logs of %s", node_id, w->alloc_id);
      waiter_free (w);
    }
}
