/* Output for people (aligned tables, describe pages) and for programs (one
 * stable JSON document per command, keys sorted, two-space indentation).
 *
 * Nothing here talks to the network or reads the clock: every function takes
 * the reply it prints, and "now" where ages are shown, so that tests check
 * the exact text. */
#define _GNU_SOURCE
#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "orch_quantity.h"
#include "orch_util.h"

#define CLI_COL_GAP "   "

/* ---- Tables ----------------------------------------------------------------- */

void
cli_table_add (cli_table_t *t, const char *const *cells)
{
  size_t base = t->nrows * t->ncols;

  orch_grow ((void **) &t->cells, &t->cap, base + t->ncols, sizeof (char *));
  for (size_t i = 0; i < t->ncols; i++)
    t->cells[base + i] = xstrdup (cells[i] != NULL ? cells[i] : "-");
  t->nrows++;
}

void
cli_table_init (cli_table_t *t, size_t ncols, const char *const *headers)
{
  memset (t, 0, sizeof (*t));
  t->ncols = ncols;
  cli_table_add (t, headers);
}

void
cli_table_print (const cli_table_t *t, FILE *out, const char *indent)
{
  cleanup_free size_t *width = xcalloc (t->ncols, sizeof (size_t));

  for (size_t r = 0; r < t->nrows; r++)
    for (size_t c = 0; c < t->ncols; c++)
      {
        size_t w = strlen (t->cells[r * t->ncols + c]);
        if (w > width[c])
          width[c] = w;
      }
  for (size_t r = 0; r < t->nrows; r++)
    {
      fputs (indent != NULL ? indent : "", out);
      for (size_t c = 0; c < t->ncols; c++)
        {
          const char *cell = t->cells[r * t->ncols + c];
          if (c + 1 == t->ncols)
            fputs (cell, out);
          else
            fprintf (out, "%-*s" CLI_COL_GAP, (int) width[c], cell);
        }
      fputc ('\n', out);
    }
}

void
cli_table_free (cli_table_t *t)
{
  for (size_t i = 0; i < t->nrows * t->ncols; i++)
    free (t->cells[i]);
  free (t->cells);
  memset (t, 0, sizeof (*t));
}

/* ---- Small formats ---------------------------------------------------------- */

const char *
cli_fmt_age (int64_t now_ms, int64_t then_ms, char *buf, size_t len)
{
  int64_t s;

  if (then_ms <= 0)
    {
      snprintf (buf, len, "-");
      return buf;
    }
  s = now_ms > then_ms ? (now_ms - then_ms) / 1000 : 0;
  if (s < 120)
    snprintf (buf, len, "%" PRId64 "s", s);
  else if (s < 120 * 60)
    snprintf (buf, len, "%" PRId64 "m", s / 60);
  else if (s < 48 * 3600)
    snprintf (buf, len, "%" PRId64 "h", s / 3600);
  else
    snprintf (buf, len, "%" PRId64 "d", s / 86400);
  return buf;
}

const char *
cli_fmt_cpu_time (int64_t usec, char *buf, size_t len)
{
  int64_t cs = usec > 0 ? usec / 10000 : 0; /* hundredths of a second */
  int64_t s = cs / 100;

  if (s < 60)
    snprintf (buf, len, "%" PRId64 ".%02" PRId64 "s", s, cs % 100);
  else if (s < 3600)
    snprintf (buf, len, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
  else
    snprintf (buf, len, "%" PRId64 "h%02" PRId64 "m", s / 3600, (s / 60) % 60);
  return buf;
}

const char *
cli_fmt_duration (int64_t ms, char *buf, size_t len)
{
  if (ms % 1000 == 0)
    snprintf (buf, len, "%" PRId64 "s", ms / 1000);
  else
    snprintf (buf, len, "%" PRId64 "ms", ms);
  return buf;
}

static const char *
cli__s (const char *s)
{
  return s != NULL && *s ? s : "-";
}

static const char *
cli__u64 (uint64_t v, char *buf, size_t len)
{
  snprintf (buf, len, "%" PRIu64, v);
  return buf;
}

/* ---- JSON ------------------------------------------------------------------- */

static json_t *
cli__jstr (const char *s)
{
  return json_string (s != NULL ? s : "");
}

static json_t *
cli__jres (const Orch__Resources *r)
{
  return json_pack ("{s:I, s:I}", "cpu_milli", (json_int_t) (r != NULL ? r->cpu_milli : 0),
                    "memory_bytes", (json_int_t) (r != NULL ? r->memory_bytes : 0));
}

json_t *
cli_json_service (const Orch__ServiceInfo *s)
{
  json_t *o = json_object ();
  json_t *spec = NULL;

  json_object_set_new (o, "name", cli__jstr (s->name));
  json_object_set_new (o, "tenant", cli__jstr (s->tenant));
  json_object_set_new (o, "replicas", json_integer (s->replicas));
  json_object_set_new (o, "isolation", cli__jstr (s->isolation));
  json_object_set_new (o, "image", cli__jstr (s->image));
  json_object_set_new (o, "version", json_integer ((json_int_t) s->version));
  json_object_set_new (o, "running", json_integer (s->running));
  json_object_set_new (o, "pending", json_integer (s->pending));
  json_object_set_new (o, "pending_reason", cli__jstr (s->pending_reason));
  json_object_set_new (o, "resources",
                       json_pack ("{s:I, s:I}", "cpu_milli", (json_int_t) s->cpu_milli,
                                  "memory_bytes", (json_int_t) s->memory_bytes));
  /* The spec is embedded as a JSON object, not as a string holding JSON, so
   * that `jq .services[0].spec.replicas` works. */
  if (s->spec_json != NULL && *s->spec_json)
    spec = json_loads (s->spec_json, 0, NULL);
  json_object_set_new (o, "spec", spec != NULL ? spec : json_null ());
  return o;
}

json_t *
cli_json_alloc (const Orch__AllocInfo *a)
{
  const Orch__AllocStatus *st = a->status;
  json_t *o = json_object ();
  json_t *s = json_object ();

  json_object_set_new (o, "alloc_id", cli__jstr (a->alloc_id));
  json_object_set_new (o, "service", cli__jstr (a->service));
  json_object_set_new (o, "node", cli__jstr (a->node));
  json_object_set_new (o, "isolation", cli__jstr (a->isolation));
  json_object_set_new (o, "reason", cli__jstr (a->reason));
  json_object_set_new (o, "desired", cli__jstr (a->desired));
  json_object_set_new (o, "spec_version", json_integer ((json_int_t) a->spec_version));
  json_object_set_new (o, "created_at_ms", json_integer (a->created_at_ms));
  /* An allocation the agent has not reported on yet is pending. */
  json_object_set_new (s, "alloc_id", cli__jstr (st != NULL ? st->alloc_id : a->alloc_id));
  json_object_set_new (
      s, "state",
      cli__jstr (st != NULL && st->state != NULL && *st->state ? st->state : "pending"));
  json_object_set_new (s, "exit_code", json_integer (st != NULL ? st->exit_code : 0));
  json_object_set_new (s, "reason", cli__jstr (st != NULL ? st->reason : ""));
  json_object_set_new (s, "memory_bytes", json_integer (st != NULL ? st->memory_bytes : 0));
  json_object_set_new (s, "cpu_usec", json_integer (st != NULL ? st->cpu_usec : 0));
  json_object_set_new (s, "pid", json_integer (st != NULL ? st->pid : 0));
  json_object_set_new (s, "started_at_ms", json_integer (st != NULL ? st->started_at_ms : 0));
  json_object_set_new (s, "finished_at_ms", json_integer (st != NULL ? st->finished_at_ms : 0));
  json_object_set_new (s, "restarts", json_integer (st != NULL ? st->restarts : 0));
  json_object_set_new (s, "address", cli__jstr (st != NULL ? st->address : ""));
  json_object_set_new (s, "health", cli__jstr (st != NULL ? st->health : ""));
  json_object_set_new (s, "vmm", cli__jstr (st != NULL ? st->vmm : ""));
  json_object_set_new (s, "guest_kernel", cli__jstr (st != NULL ? st->guest_kernel : ""));
  json_object_set_new (o, "status", s);
  json_object_set_new (o, "node_address", cli__jstr (a->node_address));
  json_t *ports = json_array ();
  for (size_t i = 0; i < a->n_ports; i++)
    {
      const Orch__PortMapping *p = a->ports[i];
      json_t *pj = json_pack ("{s:o, s:I, s:I, s:o}", "name", cli__jstr (p->name), "port",
                              (json_int_t) p->port, "host_port", (json_int_t) p->host_port,
                              "protocol", cli__jstr (p->protocol));
      /* Where a client reaches it: the node's address and the host port. */
      if (p->host_port && a->node_address && *a->node_address)
        json_object_set_new (pj, "endpoint",
                             json_sprintf ("%s:%u", a->node_address, (unsigned) p->host_port));
      json_array_append_new (ports, pj);
    }
  json_object_set_new (o, "ports", ports);
  return o;
}

/* "node-ip:host_port->port" for each published port, or "-". Caller frees. */
static char *
cli__alloc_ports (const Orch__AllocInfo *a)
{
  if (a->n_ports == 0)
    return xstrdup ("-");
  char *out = xstrdup ("");
  for (size_t i = 0; i < a->n_ports; i++)
    {
      const Orch__PortMapping *p = a->ports[i];
      char *next = xasprintf ("%s%s%s:%u->%u%s", out, i ? "," : "",
                              a->node_address && *a->node_address ? a->node_address : "?",
                              (unsigned) p->host_port, (unsigned) p->port,
                              p->protocol && strcmp (p->protocol, "udp") == 0 ? "/udp" : "");
      free (out);
      out = next;
    }
  return out;
}

json_t *
cli_json_node (const Orch__NodeInfo *n)
{
  json_t *o = json_object ();
  json_t *labels = json_object ();
  json_t *rt = json_array ();

  for (size_t i = 0; i < n->n_labels; i++)
    json_object_set_new (labels, n->labels[i]->key, cli__jstr (n->labels[i]->value));
  for (size_t i = 0; i < n->n_runtimes; i++)
    json_array_append_new (rt, cli__jstr (n->runtimes[i]));
  json_object_set_new (o, "node_id", cli__jstr (n->node_id));
  json_object_set_new (o, "address", cli__jstr (n->address));
  json_object_set_new (o, "state", cli__jstr (n->state));
  json_object_set_new (o, "labels", labels);
  json_object_set_new (o, "capacity", cli__jres (n->capacity));
  json_object_set_new (o, "usage", cli__jres (n->usage));
  json_object_set_new (o, "allocated", cli__jres (n->allocated));
  json_object_set_new (o, "runtimes", rt);
  json_object_set_new (o, "last_heartbeat_ms", json_integer (n->last_heartbeat_ms));
  json_object_set_new (o, "allocs", json_integer (n->allocs));
  json_object_set_new (o, "cgroup_version", cli__jstr (n->cgroup_version));
  return o;
}

json_t *
cli_json_apply_reply (const Orch__ApplyReply *r)
{
  json_t *changes = json_array ();
  json_t *placements = json_array ();

  for (size_t i = 0; i < r->n_changes; i++)
    {
      const Orch__ServiceChange *c = r->changes[i];
      json_array_append_new (changes,
                             json_pack ("{s:o, s:o, s:I}", "name", cli__jstr (c->name), "action",
                                        cli__jstr (c->action), "version", (json_int_t) c->version));
    }
  for (size_t i = 0; i < r->n_placements; i++)
    {
      const Orch__Placement *p = r->placements[i];
      json_array_append_new (placements,
                             json_pack ("{s:o, s:o, s:o, s:o, s:o}", "service",
                                        cli__jstr (p->service), "alloc_id", cli__jstr (p->alloc_id),
                                        "node", cli__jstr (p->node), "isolation",
                                        cli__jstr (p->isolation), "reason", cli__jstr (p->reason)));
    }
  return json_pack ("{s:o, s:o}", "changes", changes, "placements", placements);
}

int
cli_json_print (FILE *out, json_t *doc)
{
  int r;

  if (doc == NULL)
    return -1;
  r = json_dumpf (doc, out, JSON_INDENT (2) | JSON_SORT_KEYS);
  fputc ('\n', out);
  json_decref (doc);
  return r;
}

/* ---- Sorting ---------------------------------------------------------------- */

static int
cli__strcmp0 (const char *a, const char *b)
{
  return strcmp (a != NULL ? a : "", b != NULL ? b : "");
}

static int
cli__cmp_service (const void *a, const void *b)
{
  const Orch__ServiceInfo *x = *(Orch__ServiceInfo *const *) a;
  const Orch__ServiceInfo *y = *(Orch__ServiceInfo *const *) b;
  return cli__strcmp0 (x->name, y->name);
}

static int
cli__cmp_alloc (const void *a, const void *b)
{
  const Orch__AllocInfo *x = *(Orch__AllocInfo *const *) a;
  const Orch__AllocInfo *y = *(Orch__AllocInfo *const *) b;
  int r = cli__strcmp0 (x->service, y->service);
  return r != 0 ? r : cli__strcmp0 (x->alloc_id, y->alloc_id);
}

static int
cli__cmp_node (const void *a, const void *b)
{
  const Orch__NodeInfo *x = *(Orch__NodeInfo *const *) a;
  const Orch__NodeInfo *y = *(Orch__NodeInfo *const *) b;
  return cli__strcmp0 (x->node_id, y->node_id);
}

static int
cli__cmp_label (const void *a, const void *b)
{
  const Orch__NodeInfo__LabelsEntry *x = *(Orch__NodeInfo__LabelsEntry *const *) a;
  const Orch__NodeInfo__LabelsEntry *y = *(Orch__NodeInfo__LabelsEntry *const *) b;
  return cli__strcmp0 (x->key, y->key);
}

/* A sorted copy of a repeated field's pointer array (the reply is const). */
static void **
cli__sorted (void *const *items, size_t n, int (*cmp) (const void *, const void *))
{
  void **v = xcalloc (n ? n : 1, sizeof (void *));

  if (n > 0)
    {
      memcpy (v, items, n * sizeof (void *));
      qsort (v, n, sizeof (void *), cmp);
    }
  return v;
}

/* ---- get services ----------------------------------------------------------- */

void
cli_print_services (FILE *out, const Orch__GetReply *r, cli_output_t o)
{
  cleanup_free Orch__ServiceInfo **v = (Orch__ServiceInfo **) cli__sorted (
      (void *const *) r->services, r->n_services, cli__cmp_service);
  static const char *const headers[]
      = { "NAME",    "TENANT", "ISOLATION", "REPLICAS", "RUNNING", "IMAGE",
          "VERSION", "CPU",    "MEMORY",    "PENDING",  "REASON" };
  cli_table_t t;

  if (o == CLI_OUT_JSON)
    {
      json_t *arr = json_array ();
      for (size_t i = 0; i < r->n_services; i++)
        json_array_append_new (arr, cli_json_service (v[i]));
      cli_json_print (out, json_pack ("{s:o}", "services", arr));
      return;
    }
  cli_table_init (&t, o == CLI_OUT_WIDE ? 11 : 7, headers);
  for (size_t i = 0; i < r->n_services; i++)
    {
      const Orch__ServiceInfo *s = v[i];
      char rep[24], run[24], ver[24], cpu[32], mem[32], pend[24];
      const char *row[] = {
        s->name,
        s->tenant,
        s->isolation,
        cli__u64 (s->replicas, rep, sizeof (rep)),
        cli__u64 (s->running, run, sizeof (run)),
        s->image,
        cli__u64 (s->version, ver, sizeof (ver)),
        orch_fmt_cpu (s->cpu_milli, cpu, sizeof (cpu)),
        orch_fmt_memory (s->memory_bytes, mem, sizeof (mem)),
        cli__u64 (s->pending, pend, sizeof (pend)),
        cli__s (s->pending_reason),
      };
      cli_table_add (&t, row);
    }
  cli_table_print (&t, out, NULL);
  cli_table_free (&t);
}

/* ---- get allocs ------------------------------------------------------------- */

static const char *
cli__alloc_state (const Orch__AllocInfo *a)
{
  const char *state = a->status != NULL && a->status->state != NULL && *a->status->state
                          ? a->status->state
                          : "pending";

  /* Asked to stop but not yet reported gone: say so rather than "running". */
  if (a->desired != NULL && strcmp (a->desired, "stop") == 0
      && (strcmp (state, "running") == 0 || strcmp (state, "starting") == 0))
    return "stopping";
  return state;
}

static const char *
cli__alloc_exit (const Orch__AllocInfo *a, char *buf, size_t len)
{
  const Orch__AllocStatus *st = a->status;

  if (st == NULL || st->state == NULL)
    return "-";
  if (strcmp (st->state, "exited") == 0 || (strcmp (st->state, "failed") == 0 && st->exit_code))
    {
      snprintf (buf, len, "%d", st->exit_code);
      return buf;
    }
  return "-";
}

static const char *
cli__alloc_reason (const Orch__AllocInfo *a)
{
  /* What went wrong matters more than why the node was chosen. */
  if (a->status != NULL && a->status->reason != NULL && *a->status->reason)
    return a->status->reason;
  return cli__s (a->reason);
}

void
cli_print_allocs (FILE *out, const Orch__GetReply *r, cli_output_t o, int64_t now_ms)
{
  cleanup_free Orch__AllocInfo **v
      = (Orch__AllocInfo **) cli__sorted ((void *const *) r->allocs, r->n_allocs, cli__cmp_alloc);
  static const char *const headers[] = { "ID",  "SERVICE", "NODE", "ISOLATION", "STATE", "EXIT",
                                         "CPU", "MEM",     "AGE",  "PORTS",     "PID",   "REASON" };
  cli_table_t t;

  if (o == CLI_OUT_JSON)
    {
      json_t *arr = json_array ();
      for (size_t i = 0; i < r->n_allocs; i++)
        json_array_append_new (arr, cli_json_alloc (v[i]));
      cli_json_print (out, json_pack ("{s:o}", "allocs", arr));
      return;
    }
  cli_table_init (&t, o == CLI_OUT_WIDE ? 12 : 10, headers);
  for (size_t i = 0; i < r->n_allocs; i++)
    {
      const Orch__AllocInfo *a = v[i];
      const Orch__AllocStatus *st = a->status;
      char ex[16], cpu[32], mem[32], age[32], pid[24];
      cleanup_free char *ports = cli__alloc_ports (a);
      const char *row[] = {
        a->alloc_id,
        a->service,
        cli__s (a->node),
        cli__s (a->isolation),
        cli__alloc_state (a),
        cli__alloc_exit (a, ex, sizeof (ex)),
        st != NULL && st->cpu_usec > 0 ? cli_fmt_cpu_time (st->cpu_usec, cpu, sizeof (cpu)) : "-",
        st != NULL && st->memory_bytes > 0 ? orch_fmt_memory (st->memory_bytes, mem, sizeof (mem))
                                           : "-",
        cli_fmt_age (now_ms, a->created_at_ms, age, sizeof (age)),
        ports,
        st != NULL && st->pid > 0 ? cli__u64 ((uint64_t) st->pid, pid, sizeof (pid)) : "-",
        cli__alloc_reason (a),
      };
      cli_table_add (&t, row);
    }
  cli_table_print (&t, out, NULL);
  cli_table_free (&t);
}

/* ---- get nodes -------------------------------------------------------------- */

static char *
cli__triple (const Orch__NodeInfo *n, bool cpu)
{
  char a[32], b[32], c[32];
  const Orch__Resources *u = n->usage, *al = n->allocated, *cap = n->capacity;

  if (cpu)
    return xasprintf ("%s/%s/%s", orch_fmt_cpu (u != NULL ? u->cpu_milli : 0, a, sizeof (a)),
                      orch_fmt_cpu (al != NULL ? al->cpu_milli : 0, b, sizeof (b)),
                      orch_fmt_cpu (cap != NULL ? cap->cpu_milli : 0, c, sizeof (c)));
  return xasprintf ("%s/%s/%s", orch_fmt_memory (u != NULL ? u->memory_bytes : 0, a, sizeof (a)),
                    orch_fmt_memory (al != NULL ? al->memory_bytes : 0, b, sizeof (b)),
                    orch_fmt_memory (cap != NULL ? cap->memory_bytes : 0, c, sizeof (c)));
}

static char *
cli__join (char *const *items, size_t n, const char *sep)
{
  size_t len = 1, off = 0;
  char *s;

  for (size_t i = 0; i < n; i++)
    len += strlen (items[i]) + strlen (sep);
  s = xmalloc (len);
  s[0] = '\0';
  for (size_t i = 0; i < n; i++)
    off += (size_t) sprintf (s + off, "%s%s", i ? sep : "", items[i]);
  return s;
}

static char *
cli__labels (const Orch__NodeInfo *n)
{
  cleanup_free Orch__NodeInfo__LabelsEntry **v = (Orch__NodeInfo__LabelsEntry **) cli__sorted (
      (void *const *) n->labels, n->n_labels, cli__cmp_label);
  char *s = xstrdup ("");

  for (size_t i = 0; i < n->n_labels; i++)
    {
      char *t = xasprintf ("%s%s%s=%s", s, i ? "," : "", v[i]->key, v[i]->value);
      free (s);
      s = t;
    }
  return s;
}

void
cli_print_nodes (FILE *out, const Orch__GetReply *r, cli_output_t o, int64_t now_ms)
{
  cleanup_free Orch__NodeInfo **v
      = (Orch__NodeInfo **) cli__sorted ((void *const *) r->nodes, r->n_nodes, cli__cmp_node);
  static const char *const headers[]
      = { "NAME",   "STATE",    "ADDRESS", "CPU(used/alloc/cap)", "MEMORY(used/alloc/cap)",
          "ALLOCS", "RUNTIMES", "CGROUP",  "HEARTBEAT",           "LABELS" };
  cli_table_t t;

  if (o == CLI_OUT_JSON)
    {
      json_t *arr = json_array ();
      for (size_t i = 0; i < r->n_nodes; i++)
        json_array_append_new (arr, cli_json_node (v[i]));
      cli_json_print (out, json_pack ("{s:o}", "nodes", arr));
      return;
    }
  cli_table_init (&t, o == CLI_OUT_WIDE ? 10 : 7, headers);
  for (size_t i = 0; i < r->n_nodes; i++)
    {
      const Orch__NodeInfo *n = v[i];
      cleanup_free char *cpu = cli__triple (n, true);
      cleanup_free char *mem = cli__triple (n, false);
      cleanup_free char *rt = cli__join (n->runtimes, n->n_runtimes, ",");
      cleanup_free char *labels = cli__labels (n);
      char nal[24], hb[32];
      const char *row[] = {
        n->node_id,
        cli__s (n->state),
        cli__s (n->address),
        cpu,
        mem,
        cli__u64 (n->allocs, nal, sizeof (nal)),
        cli__s (rt),
        cli__s (n->cgroup_version),
        cli_fmt_age (now_ms, n->last_heartbeat_ms, hb, sizeof (hb)),
        cli__s (labels),
      };
      cli_table_add (&t, row);
    }
  cli_table_print (&t, out, NULL);
  cli_table_free (&t);
}

/* ---- describe service ------------------------------------------------------- */

void
cli_print_describe (FILE *out, const Orch__ServiceInfo *s, const Orch__GetReply *r, cli_output_t o,
                    int64_t now_ms)
{
  cleanup_free Orch__AllocInfo **v
      = (Orch__AllocInfo **) cli__sorted ((void *const *) r->allocs, r->n_allocs, cli__cmp_alloc);
  static const char *const headers[]
      = { "ID", "NODE", "ISOLATION", "STATE", "EXIT", "RESTARTS", "AGE", "PLACEMENT" };
  char cpu[32], mem[32];
  json_t *spec = NULL;
  bool problems = false;
  cli_table_t t;

  if (o == CLI_OUT_JSON)
    {
      json_t *arr = json_array ();
      for (size_t i = 0; i < r->n_allocs; i++)
        json_array_append_new (arr, cli_json_alloc (v[i]));
      cli_json_print (out,
                      json_pack ("{s:o, s:o}", "service", cli_json_service (s), "allocs", arr));
      return;
    }

  fprintf (out, "Name:         %s\n", cli__s (s->name));
  fprintf (out, "Tenant:       %s\n", cli__s (s->tenant));
  fprintf (out, "Version:      %" PRIu64 "\n", s->version);
  fprintf (out, "Isolation:    %s\n", cli__s (s->isolation));
  fprintf (out, "Image:        %s\n", cli__s (s->image));
  fprintf (out, "Resources:    cpu %s, memory %s\n", orch_fmt_cpu (s->cpu_milli, cpu, sizeof (cpu)),
           orch_fmt_memory (s->memory_bytes, mem, sizeof (mem)));
  fprintf (out, "Replicas:     %u desired, %u running, %u pending\n", s->replicas, s->running,
           s->pending);
  if (s->pending > 0)
    fprintf (out, "Pending:      %u %s: %s\n", s->pending, s->pending == 1 ? "replica" : "replicas",
             s->pending_reason != NULL && *s->pending_reason ? s->pending_reason
                                                             : "not placed yet");

  if (s->spec_json != NULL && *s->spec_json)
    spec = json_loads (s->spec_json, 0, NULL);
  if (spec != NULL)
    {
      cleanup_free char *text = json_dumps (spec, JSON_INDENT (2) | JSON_SORT_KEYS);
      fputs ("Spec:\n", out);
      /* Indent the whole document under its heading. */
      for (char *line = text, *nl; line != NULL && *line; line = nl != NULL ? nl + 1 : NULL)
        {
          nl = strchr (line, '\n');
          fprintf (out, "  %.*s\n", nl != NULL ? (int) (nl - line) : (int) strlen (line), line);
        }
      json_decref (spec);
    }

  if (r->n_allocs == 0)
    {
      fputs ("Allocations:  none\n", out);
      return;
    }
  fputs ("Allocations:\n", out);
  cli_table_init (&t, 8, headers);
  for (size_t i = 0; i < r->n_allocs; i++)
    {
      const Orch__AllocInfo *a = v[i];
      char ex[16], rs[16], age[32];
      const char *row[] = {
        a->alloc_id,
        cli__s (a->node),
        cli__s (a->isolation),
        cli__alloc_state (a),
        cli__alloc_exit (a, ex, sizeof (ex)),
        cli__u64 (a->status != NULL ? a->status->restarts : 0, rs, sizeof (rs)),
        cli_fmt_age (now_ms, a->created_at_ms, age, sizeof (age)),
        cli__s (a->reason),
      };
      cli_table_add (&t, row);
    }
  cli_table_print (&t, out, "  ");
  cli_table_free (&t);

  /* What only some allocations have: an address, published ports, a health
   * state, a VMM and guest kernel. */
  bool details = false;
  for (size_t i = 0; i < r->n_allocs; i++)
    {
      const Orch__AllocInfo *a = v[i];
      const Orch__AllocStatus *st = a->status;
      bool has = a->n_ports > 0
                 || (st != NULL
                     && ((st->address && *st->address) || (st->health && *st->health)
                         || (st->vmm && *st->vmm)));
      if (!has)
        continue;
      if (!details)
        fputs ("Details:\n", out);
      details = true;
      const char *sep = " ";
      fprintf (out, "  %s:", a->alloc_id);
      if (st != NULL && st->address && *st->address)
        {
          fprintf (out, "%saddress %s", sep, st->address);
          sep = ", ";
        }
      if (a->n_ports > 0)
        {
          cleanup_free char *ports = cli__alloc_ports (a);
          fprintf (out, "%sports %s", sep, ports);
          sep = ", ";
        }
      if (st != NULL && st->health && *st->health)
        {
          fprintf (out, "%s%s", sep, st->health);
          sep = ", ";
        }
      if (st != NULL && st->vmm && *st->vmm)
        fprintf (out, "%svmm %s, guest kernel %s", sep, st->vmm,
                 st->guest_kernel && *st->guest_kernel ? st->guest_kernel : "?");
      fputc ('\n', out);
    }

  for (size_t i = 0; i < r->n_allocs; i++)
    {
      const Orch__AllocInfo *a = v[i];
      if (a->status == NULL || a->status->reason == NULL || !*a->status->reason)
        continue;
      if (!problems)
        fputs ("Problems:\n", out);
      problems = true;
      fprintf (out, "  %s: %s: %s\n", a->alloc_id, cli__alloc_state (a), a->status->reason);
    }
}

/* ---- apply and plan --------------------------------------------------------- */

static bool
cli__placed (const Orch__Placement *p)
{
  /* A plan places without creating allocations: a node alone means placed. */
  return p->node != NULL && *p->node;
}

typedef struct cli_pending_s
{
  const char *service;
  const char *reason;
  size_t count;
} cli_pending_t;

/* Unplaced replicas grouped by (service, reason), in order of first
 * appearance. Reasons are few even when replicas are many, so a linear
 * search over the groups is cheap. */
static cli_pending_t *
cli__group_pending (const Orch__ApplyReply *r, size_t *n_out)
{
  cli_pending_t *g = NULL;
  size_t n = 0, cap = 0;

  for (size_t i = 0; i < r->n_placements; i++)
    {
      const Orch__Placement *p = r->placements[i];
      size_t j;

      if (cli__placed (p))
        continue;
      for (j = 0; j < n; j++)
        if (cli__strcmp0 (g[j].service, p->service) == 0
            && cli__strcmp0 (g[j].reason, p->reason) == 0)
          break;
      if (j == n)
        {
          orch_grow ((void **) &g, &cap, n + 1, sizeof (*g));
          g[n++] = (cli_pending_t){ p->service, p->reason, 0 };
        }
      g[j].count++;
    }
  *n_out = n;
  return g;
}

static void
cli__print_service_placements (FILE *out, const Orch__ApplyReply *r, const char *service,
                               const cli_pending_t *g, size_t n_groups)
{
  for (size_t i = 0; i < r->n_placements; i++)
    {
      const Orch__Placement *p = r->placements[i];
      if (!cli__placed (p) || (service != NULL && cli__strcmp0 (p->service, service) != 0))
        continue;
      fprintf (out, "  %s -> %s (%s)%s%s\n", p->alloc_id, p->node, cli__s (p->isolation),
               p->reason != NULL && *p->reason ? ": " : "", p->reason != NULL ? p->reason : "");
    }
  for (size_t i = 0; i < n_groups; i++)
    {
      if (service != NULL && cli__strcmp0 (g[i].service, service) != 0)
        continue;
      fprintf (out, "  %s: %zu %s pending: %s\n", cli__s (g[i].service), g[i].count,
               g[i].count == 1 ? "replica" : "replicas",
               g[i].reason != NULL && *g[i].reason ? g[i].reason : "no reason given");
    }
}

void
cli_print_apply (FILE *out, const Orch__ApplyReply *r)
{
  size_t n_groups = 0;
  cleanup_free cli_pending_t *g = cli__group_pending (r, &n_groups);

  for (size_t i = 0; i < r->n_changes; i++)
    {
      const Orch__ServiceChange *c = r->changes[i];
      fprintf (out, "service/%s %s (version %" PRIu64 ")\n", c->name, cli__s (c->action),
               c->version);
      cli__print_service_placements (out, r, c->name, g, n_groups);
    }
  /* A reply without changes still says where things went. */
  if (r->n_changes == 0)
    cli__print_service_placements (out, r, NULL, g, n_groups);
}

static const char *
cli__would (const char *action)
{
  if (action == NULL || !*action)
    return "would change";
  if (strcmp (action, "unchanged") == 0)
    return "is unchanged";
  if (strcmp (action, "created") == 0)
    return "would be created";
  if (strcmp (action, "updated") == 0)
    return "would be updated";
  if (strcmp (action, "scaled") == 0)
    return "would be scaled";
  return action;
}

void
cli_print_plan (FILE *out, const Orch__ApplyReply *r, cli_output_t o)
{
  static const char *const headers[] = { "SERVICE", "ALLOC", "NODE", "ISOLATION", "REASON" };
  size_t n_groups = 0;
  cleanup_free cli_pending_t *g = NULL;
  cli_table_t t;

  if (o == CLI_OUT_JSON)
    {
      cli_json_print (out, cli_json_apply_reply (r));
      return;
    }
  for (size_t i = 0; i < r->n_changes; i++)
    fprintf (out, "service/%s %s (version %" PRIu64 ")\n", r->changes[i]->name,
             cli__would (r->changes[i]->action), r->changes[i]->version);
  if (r->n_placements == 0)
    {
      fputs ("no placements\n", out);
      return;
    }
  if (r->n_changes > 0)
    fputc ('\n', out);
  g = cli__group_pending (r, &n_groups);
  cli_table_init (&t, 5, headers);
  for (size_t i = 0; i < r->n_placements; i++)
    {
      const Orch__Placement *p = r->placements[i];
      const char *row[]
          = { p->service, p->alloc_id, p->node, cli__s (p->isolation), cli__s (p->reason) };
      if (cli__placed (p))
        cli_table_add (&t, row);
    }
  for (size_t i = 0; i < n_groups; i++)
    {
      char what[48];
      const char *row[] = { g[i].service, what, "-", "-", cli__s (g[i].reason) };
      snprintf (what, sizeof (what), "(%zu pending)", g[i].count);
      cli_table_add (&t, row);
    }
  cli_table_print (&t, out, NULL);
  cli_table_free (&t);
}

/* ---- logs ------------------------------------------------------------------- */

size_t
cli_tail_lines (const char *data, size_t len, uint64_t n)
{
  size_t end = len;
  uint64_t seen = 0;

  if (n == 0)
    return len;
  /* The final newline ends the last line; it does not begin another one. */
  if (end > 0 && data[end - 1] == '\n')
    end--;
  for (size_t i = end; i > 0; i--)
    if (data[i - 1] == '\n' && ++seen == n)
      return i;
  return 0;
}
