/* The scheduler's records and their JSON form in etcd (DESIGN.md §5).
 *
 *   /orch/services/<name>        {"version": N, "created_at_ms": T, "spec": {...}}
 *   /orch/allocs/<service>/<id>  {"id", "service", "node", "isolation", "reason",
 *                                 "spec_version", "created_at_ms", "status": {...}}
 *   /orch/nodes/<id>             {"id", "address", "labels", "capacity", "runtimes", ...}
 */
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include <jansson.h>

#include "orch_util.h"
#include "sched_internal.h"

static char *
json_dump_owned (json_t *j)
{
  char *s = json_dumps (j, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref (j);
  if (s == NULL)
    abort (); /* only fails on out of memory */
  return s;
}

static const char *
json_str (json_t *o, const char *key)
{
  const char *v = json_string_value (json_object_get (o, key));
  return v ? v : "";
}

/* The canonical spec with "replicas" removed: two specs with equal templates
 * differ at most in scale, which never replaces running allocations. */
static char *
spec_template (const char *spec_json)
{
  json_t *j = json_loads (spec_json, 0, NULL);
  if (j == NULL)
    return xstrdup (spec_json);
  json_object_del (j, "replicas");
  return json_dump_owned (j);
}

sched_service_t *
sched_service_new (const orch_spec_t *spec, uint64_t version)
{
  sched_service_t *svc = xcalloc (1, sizeof *svc);
  orch_errlist_t errs = {0};
  /* Re-parse the canonical form: the record owns an independent copy. */
  if (orch_spec_parse_one (spec->json, &svc->spec, &errs) < 0)
    abort (); /* a spec that validated once always re-parses */
  orch_errlist_free (&errs);
  svc->name = xstrdup (spec->name);
  svc->template_json = spec_template (spec->json);
  svc->version = version;
  svc->created_at_ms = orch_now_wall_ms ();
  return svc;
}

void
sched_service_free (sched_service_t *svc)
{
  if (svc == NULL)
    return;
  free (svc->name);
  orch_spec_clear (&svc->spec);
  free (svc->template_json);
  free (svc->pending_reason);
  free (svc);
}

char *
sched_service_encode (const sched_service_t *svc)
{
  json_t *spec = json_loads (svc->spec.json, 0, NULL);
  if (spec == NULL)
    abort ();
  return json_dump_owned (json_pack ("{s:I, s:I, s:o}", "version", (json_int_t) svc->version,
                                     "created_at_ms", (json_int_t) svc->created_at_ms, "spec",
                                     spec));
}

sched_service_t *
sched_service_decode (const char *json, size_t len, orch_err_t *err)
{
  json_error_t jerr;
  json_t *j = json_loadb (json, len, 0, &jerr);
  if (j == NULL)
    {
      orch_err_set (err, EINVAL, "service record is not JSON: %s", jerr.text);
      return NULL;
    }
  json_t *spec = json_object_get (j, "spec");
  char *spec_text = spec ? json_dumps (spec, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  orch_spec_t parsed = {0};
  orch_errlist_t errs = {0};
  sched_service_t *svc = NULL;
  if (spec_text == NULL || orch_spec_parse_one (spec_text, &parsed, &errs) < 0)
    {
      cleanup_free char *why = orch_errlist_join (&errs);
      orch_err_set (err, EINVAL, "service record has an invalid spec: %s",
                    why && *why ? why : "missing");
    }
  else
    {
      svc = sched_service_new (&parsed, (uint64_t) json_integer_value (json_object_get (j, "version")));
      svc->created_at_ms = json_integer_value (json_object_get (j, "created_at_ms"));
    }
  orch_spec_clear (&parsed);
  orch_errlist_free (&errs);
  free (spec_text);
  json_decref (j);
  return svc;
}

static char *
alloc_id_new (const char *service)
{
  uint32_t r;
  if (getrandom (&r, sizeof r, 0) != sizeof r)
    r = (uint32_t) orch_now_mono_ms () ^ (uint32_t) getpid ();
  return xasprintf ("%s-%08x", service, r);
}

void
sched_alloc_new_id (sched_alloc_t *a)
{
  free (a->id);
  a->id = alloc_id_new (a->service);
}

sched_alloc_t *
sched_alloc_new (const char *service, const char *node, const char *isolation, const char *reason,
                 uint64_t spec_version)
{
  sched_alloc_t *a = xcalloc (1, sizeof *a);
  a->id = alloc_id_new (service);
  a->service = xstrdup (service);
  a->node = xstrdup (node);
  a->isolation = xstrdup (isolation);
  a->reason = xstrdup (reason ? reason : "");
  a->spec_version = spec_version;
  a->created_at_ms = orch_now_wall_ms ();
  strcpy (a->status.state, "pending");
  a->place_id = PLACE_ALLOC_NONE;
  a->stop_grace_ms = 10000;
  return a;
}

void
sched_alloc_free (sched_alloc_t *a)
{
  if (a == NULL)
    return;
  free (a->id);
  free (a->service);
  free (a->node);
  free (a->isolation);
  free (a->reason);
  free (a->status.reason);
  free (a->status.address);
  free (a->status.health);
  free (a->status.vmm);
  free (a->status.guest_kernel);
  sched_ports_clear (a);
  free (a);
}

void
sched_status_set_str (char **field, const char *value)
{
  if (*field && value && strcmp (*field, value) == 0)
    return;
  free (*field);
  *field = value && *value ? xstrdup (value) : NULL;
}

char *
sched_alloc_key (const sched_alloc_t *a)
{
  return xasprintf (SCHED_ALLOCS_PREFIX "%s/%s", a->service, a->id);
}

void
sched_status_set_reason (sched_status_t *st, const char *reason)
{
  free (st->reason);
  st->reason = reason && *reason ? xstrdup (reason) : NULL;
}

bool
sched_status_terminal (const sched_status_t *st)
{
  return strcmp (st->state, "exited") == 0 || strcmp (st->state, "failed") == 0
         || strcmp (st->state, "stopped") == 0;
}

char *
sched_alloc_encode (const sched_alloc_t *a)
{
  json_t *st = json_pack ("{s:s, s:i, s:I, s:I, s:i}", "state", a->status.state, "exit_code",
                          (int) a->status.exit_code, "started_at_ms",
                          (json_int_t) a->status.started_at_ms, "finished_at_ms",
                          (json_int_t) a->status.finished_at_ms, "restarts",
                          (int) a->status.restarts);
  if (a->status.reason)
    json_object_set_new (st, "reason", json_string (a->status.reason));
  json_t *ports = json_array ();
  for (size_t i = 0; i < a->n_ports; i++)
    json_array_append_new (ports, json_pack ("{s:s, s:i, s:i, s:s}", "name", a->ports[i].name,
                                             "port", (int) a->ports[i].port, "host_port",
                                             (int) a->ports[i].host_port, "protocol",
                                             a->ports[i].protocol));
  return json_dump_owned (json_pack ("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:o, s:o}", "id", a->id,
                                     "service", a->service, "node", a->node, "isolation",
                                     a->isolation, "reason", a->reason, "spec_version",
                                     (json_int_t) a->spec_version, "created_at_ms",
                                     (json_int_t) a->created_at_ms, "status", st, "ports",
                                     ports));
}

sched_alloc_t *
sched_alloc_decode (const char *json, size_t len, orch_err_t *err)
{
  json_error_t jerr;
  json_t *j = json_loadb (json, len, 0, &jerr);
  if (j == NULL)
    {
      orch_err_set (err, EINVAL, "allocation record is not JSON: %s", jerr.text);
      return NULL;
    }
  const char *id = json_str (j, "id"), *service = json_str (j, "service");
  if (*id == '\0' || *service == '\0')
    {
      json_decref (j);
      orch_err_set (err, EINVAL, "allocation record lacks id or service");
      return NULL;
    }
  sched_alloc_t *a = xcalloc (1, sizeof *a);
  a->id = xstrdup (id);
  a->service = xstrdup (service);
  a->node = xstrdup (json_str (j, "node"));
  a->isolation = xstrdup (*json_str (j, "isolation") ? json_str (j, "isolation") : "container");
  a->reason = xstrdup (json_str (j, "reason"));
  a->spec_version = (uint64_t) json_integer_value (json_object_get (j, "spec_version"));
  a->created_at_ms = json_integer_value (json_object_get (j, "created_at_ms"));
  a->place_id = PLACE_ALLOC_NONE;
  a->stop_grace_ms = 10000;
  json_t *st = json_object_get (j, "status");
  snprintf (a->status.state, sizeof a->status.state, "%s",
            *json_str (st, "state") ? json_str (st, "state") : "pending");
  a->status.exit_code = (int32_t) json_integer_value (json_object_get (st, "exit_code"));
  a->status.started_at_ms = json_integer_value (json_object_get (st, "started_at_ms"));
  a->status.finished_at_ms = json_integer_value (json_object_get (st, "finished_at_ms"));
  a->status.restarts = (uint32_t) json_integer_value (json_object_get (st, "restarts"));
  sched_status_set_reason (&a->status, json_str (st, "reason"));
  json_t *ports = json_object_get (j, "ports");
  size_t idx;
  json_t *pj;
  if (json_is_array (ports) && json_array_size (ports) <= 1024)
    {
      a->ports = xcalloc (json_array_size (ports) + 1, sizeof *a->ports);
      json_array_foreach (ports, idx, pj)
      {
        sched_port_t *p = &a->ports[a->n_ports++];
        p->name = xstrdup (json_str (pj, "name"));
        p->port = (uint16_t) json_integer_value (json_object_get (pj, "port"));
        p->host_port = (uint16_t) json_integer_value (json_object_get (pj, "host_port"));
        snprintf (p->protocol, sizeof p->protocol, "%s",
                  *json_str (pj, "protocol") ? json_str (pj, "protocol") : "tcp");
      }
    }
  json_decref (j);
  return a;
}

sched_node_t *
sched_node_new (const char *id)
{
  sched_node_t *n = xcalloc (1, sizeof *n);
  n->id = xstrdup (id);
  n->address = xstrdup ("");
  n->place_id = PLACE_NODE_NONE;
  return n;
}

static void
node_clear_labels (sched_node_t *n)
{
  for (size_t i = 0; i < n->n_labels; i++)
    {
      free (n->label_keys[i]);
      free (n->label_values[i]);
    }
  free (n->label_keys);
  free (n->label_values);
  n->label_keys = n->label_values = NULL;
  n->n_labels = 0;
}

void
sched_node_set_labels (sched_node_t *n, char **keys, char **values, size_t count)
{
  node_clear_labels (n);
  n->label_keys = xcalloc (count + 1, sizeof (char *));
  n->label_values = xcalloc (count + 1, sizeof (char *));
  for (size_t i = 0; i < count; i++)
    {
      n->label_keys[i] = xstrdup (keys[i]);
      n->label_values[i] = xstrdup (values[i]);
    }
  n->n_labels = count;
}

void
sched_node_free (sched_node_t *n)
{
  if (n == NULL)
    return;
  free (n->id);
  free (n->address);
  node_clear_labels (n);
  free (n->ports_used);
  free (n);
}

char *
sched_node_encode (const sched_node_t *n)
{
  json_t *labels = json_object ();
  for (size_t i = 0; i < n->n_labels; i++)
    json_object_set_new (labels, n->label_keys[i], json_string (n->label_values[i]));
  json_t *runtimes = json_array ();
  if (n->rt_container)
    json_array_append_new (runtimes, json_string ("container"));
  if (n->rt_microvm)
    json_array_append_new (runtimes, json_string ("microvm"));
  return json_dump_owned (json_pack (
      "{s:s, s:s, s:o, s:{s:I, s:I}, s:o, s:s, s:I, s:b}", "id", n->id, "address", n->address,
      "labels", labels, "capacity", "cpu_milli", (json_int_t) n->cap_cpu_milli, "memory_bytes",
      (json_int_t) n->cap_memory_bytes, "runtimes", runtimes, "cgroup_version", n->cgroup_version,
      "vmm_overhead_bytes", (json_int_t) n->vmm_overhead_bytes, "draining", n->draining));
}

int
sched_node_decode_into (sched_node_t *n, const char *json, size_t len, orch_err_t *err)
{
  json_error_t jerr;
  json_t *j = json_loadb (json, len, 0, &jerr);
  if (j == NULL)
    return orch_err_set (err, EINVAL, "node record is not JSON: %s", jerr.text);
  free (n->address);
  n->address = xstrdup (json_str (j, "address"));
  json_t *labels = json_object_get (j, "labels");
  size_t count = json_is_object (labels) ? json_object_size (labels) : 0;
  char **keys = xcalloc (count + 1, sizeof (char *)), **values = xcalloc (count + 1, sizeof (char *));
  size_t i = 0;
  const char *k;
  json_t *v;
  json_object_foreach (labels, k, v)
  {
    keys[i] = (char *) k;
    values[i] = (char *) (json_string_value (v) ? json_string_value (v) : "");
    i++;
  }
  sched_node_set_labels (n, keys, values, i);
  free (keys);
  free (values);
  json_t *cap = json_object_get (j, "capacity");
  n->cap_cpu_milli = json_integer_value (json_object_get (cap, "cpu_milli"));
  n->cap_memory_bytes = json_integer_value (json_object_get (cap, "memory_bytes"));
  n->rt_container = n->rt_microvm = false;
  size_t idx;
  json_array_foreach (json_object_get (j, "runtimes"), idx, v)
  {
    if (json_string_value (v) && strcmp (json_string_value (v), "container") == 0)
      n->rt_container = true;
    if (json_string_value (v) && strcmp (json_string_value (v), "microvm") == 0)
      n->rt_microvm = true;
  }
  snprintf (n->cgroup_version, sizeof n->cgroup_version, "%s", json_str (j, "cgroup_version"));
  n->vmm_overhead_bytes = json_integer_value (json_object_get (j, "vmm_overhead_bytes"));
  n->draining = json_is_true (json_object_get (j, "draining"));
  json_decref (j);
  return 0;
}

bool
sched_node_ready (const sched_t *s, const sched_node_t *n)
{
  if (n->agent == NULL)
    return false;
  return orch_now_mono_ms () - n->last_heartbeat_ms <= s->cfg.node_ttl_ms + s->cfg.node_grace_ms;
}

const char *
sched_node_state (const sched_t *s, const sched_node_t *n)
{
  if (!sched_node_ready (s, n))
    return "down";
  return n->draining ? "draining" : "ready";
}
