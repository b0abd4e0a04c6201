/* --metrics-listen: the scheduler's state in Prometheus' text format over
 * plain HTTP (GET /metrics), on the scheduler's loop. A request is read up
 * to the end of its header (at most SCHED_METRICS_MAX_REQUEST bytes, within
 * SCHED_METRICS_TIMEOUT_MS), answered and the connection closed; anything
 * else gets 400, 404 or 405. Standbys answer too (orch_scheduler_leader 0). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orch_log.h"
#include "orch_util.h"
#include "sched_internal.h"

#define SCHED_METRICS_MAX_REQUEST 8192
#define SCHED_METRICS_TIMEOUT_MS 5000
#define SCHED_METRICS_MAX_CONNS 64

typedef struct metrics_conn_s
{
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_write_t write;
  sched_t *s;
  char req[SCHED_METRICS_MAX_REQUEST];
  size_t len;
  char *resp;
  int handles; /* open handles; freed when 0 */
  bool answered;
  struct metrics_conn_s *next, **pprev; /* in s->metrics_conns */
} metrics_conn_t;

/* ---- the text ------------------------------------------------------------- */

typedef struct
{
  char *buf;
  size_t len, cap;
} mbuf_t;

static void __attribute__ ((format (printf, 2, 3)))
mb_printf (mbuf_t *b, const char *fmt, ...)
{
  va_list ap;
  for (;;)
    {
      va_start (ap, fmt);
      int n = vsnprintf (b->buf + b->len, b->cap - b->len, fmt, ap);
      va_end (ap);
      if (n >= 0 && (size_t) n < b->cap - b->len)
        {
          b->len += (size_t) n;
          return;
        }
      b->cap = b->cap * 2 + (size_t) (n > 0 ? n : 0) + 256;
      b->buf = xrealloc (b->buf, b->cap);
    }
}

static void
mb_family (mbuf_t *b, const char *name, const char *type, const char *help)
{
  mb_printf (b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Label values: backslash, quote and newline escaped. */
static void
mb_label_value (mbuf_t *b, const char *v)
{
  for (; *v; v++)
    {
      if (*v == '\\' || *v == '"')
        mb_printf (b, "\\%c", *v);
      else if (*v == '\n')
        mb_printf (b, "\\n");
      else
        mb_printf (b, "%c", *v);
    }
}

static const char *const metrics_alloc_states[]
    = { "pending", "pulling", "starting", "running", "exited", "failed", "stopped", "lost" };
static const char *const metrics_node_states[] = { "ready", "down", "draining", "lost" };

char *
sched_metrics_text (const sched_t *s)
{
  mbuf_t b = { .cap = 4096 };
  b.buf = xmalloc (b.cap);
  b.buf[0] = '\0';
  const char *k;
  void *v;

  mb_family (&b, "orch_scheduler_info", "gauge", "This scheduler: its name and version.");
  mb_printf (&b, "orch_scheduler_info{name=\"");
  mb_label_value (&b, s->cfg.identity ? s->cfg.identity : "");
  mb_printf (&b, "\",version=\"%s\"} 1\n", ORCH_VERSION);
  mb_family (&b, "orch_scheduler_leader", "gauge",
             "1 when this scheduler holds /orch/leader, 0 while it stands by.");
  mb_printf (&b, "orch_scheduler_leader %d\n", s->leading ? 1 : 0);
  mb_family (&b, "orch_scheduler_state_loaded", "gauge",
             "1 once the cluster's state was read from etcd.");
  mb_printf (&b, "orch_scheduler_state_loaded %d\n", s->loaded ? 1 : 0);

  mb_family (&b, "orch_services", "gauge", "Services stored.");
  mb_printf (&b, "orch_services %zu\n", s->services.len);
  uint64_t pending = 0;
  for (size_t i = 0; orch_map_next ((orch_map_t *) &s->services, &i, &k, &v);)
    pending += ((const sched_service_t *) v)->pending;
  mb_family (&b, "orch_replicas_pending", "gauge",
             "Replicas that no node can take now (see orchctl describe).");
  mb_printf (&b, "orch_replicas_pending %llu\n", (unsigned long long) pending);

  size_t by_state[ORCH_ARRAY_LEN (metrics_alloc_states) + 1] = { 0 };
  size_t by_iso[2] = { 0 };
  for (size_t i = 0; orch_map_next ((orch_map_t *) &s->allocs, &i, &k, &v);)
    {
      const sched_alloc_t *a = v;
      size_t j = 0;
      while (j < ORCH_ARRAY_LEN (metrics_alloc_states)
             && strcmp (a->status.state, metrics_alloc_states[j]) != 0)
        j++;
      by_state[j]++;
      by_iso[a->isolation != NULL && strcmp (a->isolation, "microvm") == 0]++;
    }
  mb_family (&b, "orch_allocations", "gauge", "Allocations by the state their agent reported.");
  for (size_t j = 0; j < ORCH_ARRAY_LEN (metrics_alloc_states); j++)
    mb_printf (&b, "orch_allocations{state=\"%s\"} %zu\n", metrics_alloc_states[j], by_state[j]);
  if (by_state[ORCH_ARRAY_LEN (metrics_alloc_states)] > 0)
    mb_printf (&b, "orch_allocations{state=\"other\"} %zu\n",
               by_state[ORCH_ARRAY_LEN (metrics_alloc_states)]);
  mb_family (&b, "orch_allocations_by_isolation", "gauge", "Allocations by isolation.");
  mb_printf (&b, "orch_allocations_by_isolation{isolation=\"container\"} %zu\n", by_iso[0]);
  mb_printf (&b, "orch_allocations_by_isolation{isolation=\"microvm\"} %zu\n", by_iso[1]);

  size_t nodes[ORCH_ARRAY_LEN (metrics_node_states) + 1] = { 0 };
  int64_t cap_cpu = 0, cap_mem = 0, used_mem = 0;
  for (size_t i = 0; orch_map_next ((orch_map_t *) &s->nodes, &i, &k, &v);)
    {
      const sched_node_t *n = v;
      const char *st = sched_node_state (s, n);
      size_t j = 0;
      while (j < ORCH_ARRAY_LEN (metrics_node_states) && strcmp (st, metrics_node_states[j]) != 0)
        j++;
      nodes[j]++;
      if (sched_node_ready (s, n))
        {
          cap_cpu += n->cap_cpu_milli;
          cap_mem += n->cap_memory_bytes;
          used_mem += n->used_memory_bytes;
        }
    }
  mb_family (&b, "orch_nodes", "gauge", "Nodes by state.");
  for (size_t j = 0; j < ORCH_ARRAY_LEN (metrics_node_states); j++)
    mb_printf (&b, "orch_nodes{state=\"%s\"} %zu\n", metrics_node_states[j], nodes[j]);
  mb_family (&b, "orch_capacity_cpu_millicores", "gauge", "CPU of the ready nodes.");
  mb_printf (&b, "orch_capacity_cpu_millicores %lld\n", (long long) cap_cpu);
  mb_family (&b, "orch_capacity_memory_bytes", "gauge", "Memory of the ready nodes.");
  mb_printf (&b, "orch_capacity_memory_bytes %lld\n", (long long) cap_mem);
  mb_family (&b, "orch_used_memory_bytes", "gauge",
             "Memory the ready nodes' workloads use, as their agents measure it.");
  mb_printf (&b, "orch_used_memory_bytes %lld\n", (long long) used_mem);

  size_t agents = 0, clients = 0;
  for (const sched_conn_t *c = s->conns; c; c = c->next)
    {
      if (c->kind == SCHED_CONN_AGENT && c->node != NULL)
        agents++;
      else if (c->kind == SCHED_CONN_API && c->hello_done)
        clients++;
    }
  mb_family (&b, "orch_agent_sessions", "gauge", "Agents connected and registered.");
  mb_printf (&b, "orch_agent_sessions %zu\n", agents);
  mb_family (&b, "orch_api_connections", "gauge", "orchctl connections open.");
  mb_printf (&b, "orch_api_connections %zu\n", clients);
  mb_family (&b, "orch_reconcile_passes_total", "counter", "Reconcile passes finished.");
  mb_printf (&b, "orch_reconcile_passes_total %llu\n", (unsigned long long) s->passes_done);
  mb_family (&b, "orch_store_writes_in_flight", "gauge",
             "Batches of etcd writes queued or in flight.");
  mb_printf (&b, "orch_store_writes_in_flight %d\n", s->writes_in_flight);
  return b.buf;
}

/* ---- HTTP ------------------------------------------------------------------ */

static void
metrics_conn_closed (uv_handle_t *h)
{
  metrics_conn_t *c = h->data;
  if (--c->handles > 0)
    return;
  if (c->next != NULL)
    c->next->pprev = c->pprev;
  *c->pprev = c->next;
  c->s->n_metrics_conns--;
  c->s->handles_open--;
  free (c->resp);
  free (c);
}

static void
metrics_conn_close (metrics_conn_t *c)
{
  if (!uv_is_closing ((uv_handle_t *) &c->tcp))
    uv_close ((uv_handle_t *) &c->tcp, metrics_conn_closed);
  if (!uv_is_closing ((uv_handle_t *) &c->timer))
    uv_close ((uv_handle_t *) &c->timer, metrics_conn_closed);
}

static void
on_written (uv_write_t *w, int status)
{
  (void) status;
  metrics_conn_close (w->data);
}

static void
metrics_respond (metrics_conn_t *c, int code, const char *reason, const char *type,
                 const char *body)
{
  c->answered = true;
  uv_read_stop ((uv_stream_t *) &c->tcp);
  c->resp = xasprintf ("HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                       "Connection: close\r\n\r\n%s",
                       code, reason, type, strlen (body), body);
  uv_buf_t buf = uv_buf_init (c->resp, (unsigned) strlen (c->resp));
  c->write.data = c;
  if (uv_write (&c->write, (uv_stream_t *) &c->tcp, &buf, 1, on_written) < 0)
    metrics_conn_close (c);
}

static void
metrics_handle (metrics_conn_t *c)
{
  c->req[c->len] = '\0';
  char *eol = strstr (c->req, "\r\n");
  char method[16], path[256], version[16];
  if (eol == NULL || sscanf (c->req, "%15s %255s %15s", method, path, version) != 3
      || strncmp (version, "HTTP/1.", 7) != 0)
    {
      metrics_respond (c, 400, "Bad Request", "text/plain", "bad request\n");
      return;
    }
  if (strcmp (method, "GET") != 0)
    {
      metrics_respond (c, 405, "Method Not Allowed", "text/plain", "only GET\n");
      return;
    }
  if (strcmp (path, "/metrics") != 0)
    {
      metrics_respond (c, 404, "Not Found", "text/plain", "not found: try /metrics\n");
      return;
    }
  cleanup_free char *text = sched_metrics_text (c->s);
  metrics_respond (c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", text);
}

static void
metrics_alloc (uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
  metrics_conn_t *c = h->data;
  (void) suggested;
  buf->base = c->req + c->len;
  buf->len = sizeof c->req - 1 - c->len;
}

static void
metrics_on_read (uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
  metrics_conn_t *c = st->data;
  (void) buf;
  if (c->answered)
    return;
  if (n < 0)
    {
      metrics_conn_close (c);
      return;
    }
  c->len += (size_t) n;
  c->req[c->len] = '\0';
  if (strstr (c->req, "\r\n\r\n") != NULL || strstr (c->req, "\n\n") != NULL)
    metrics_handle (c);
  else if (c->len >= sizeof c->req - 1)
    metrics_respond (c, 431, "Request Header Fields Too Large", "text/plain", "too large\n");
}

static void
metrics_on_timeout (uv_timer_t *t)
{
  metrics_conn_close (t->data);
}

static void
metrics_on_connection (uv_stream_t *server, int status)
{
  sched_t *s = server->data;
  if (status < 0)
    return;
  metrics_conn_t *c = xcalloc (1, sizeof *c);
  c->s = s;
  uv_tcp_init (s->loop, &c->tcp);
  uv_timer_init (s->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->handles = 2;
  /* Counted as one of the scheduler's handles until both are closed. */
  s->handles_open++;
  s->n_metrics_conns++;
  c->next = s->metrics_conns;
  if (c->next != NULL)
    c->next->pprev = &c->next;
  c->pprev = &s->metrics_conns;
  s->metrics_conns = c;
  if (uv_accept (server, (uv_stream_t *) &c->tcp) < 0 || s->n_metrics_conns > SCHED_METRICS_MAX_CONNS)
    {
      metrics_conn_close (c);
      return;
    }
  uv_timer_start (&c->timer, metrics_on_timeout, SCHED_METRICS_TIMEOUT_MS, 0);
  uv_read_start ((uv_stream_t *) &c->tcp, metrics_alloc, metrics_on_read);
}

void
sched_metrics_close (sched_t *s)
{
  if (s->metrics_listener.loop == s->loop && !uv_is_closing ((uv_handle_t *) &s->metrics_listener))
    uv_close ((uv_handle_t *) &s->metrics_listener, sched_on_handle_closed);
  for (metrics_conn_t *c = s->metrics_conns; c != NULL; c = c->next)
    metrics_conn_close (c);
}

int
sched_metrics_listen (sched_t *s, orch_err_t *err)
{
  struct sockaddr_storage addr;
  if (s->cfg.metrics_listen == NULL || *s->cfg.metrics_listen == '\0')
    return 0;
  if (wire_parse_hostport (s->cfg.metrics_listen, &addr, err) < 0)
    return orch_err_wrap (err, "metrics address %s", s->cfg.metrics_listen);
  uv_tcp_init (s->loop, &s->metrics_listener);
  s->metrics_listener.data = s;
  s->handles_open++;
  int r = uv_tcp_bind (&s->metrics_listener, (const struct sockaddr *) &addr, 0);
  if (r == 0)
    r = uv_listen ((uv_stream_t *) &s->metrics_listener, 64, metrics_on_connection);
  if (r < 0)
    return orch_err_set (err, -r, "listen on %s (metrics): %s", s->cfg.metrics_listen,
                         uv_strerror (r));
  return 0;
}
