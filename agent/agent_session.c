/* The session with the scheduler (DESIGN.md §6): resolve, connect, Hello,
 * HelloReply, NodeRegister, then heartbeats and allocation events up,
 * StartAlloc / StopAlloc / DesiredAllocs / LogsRequest down. Any failure
 * closes the connection and a timer retries with exponential backoff; the
 * workloads are not touched by any of it. */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_internal.h"
#include "vmm.h"
#include "orch_log.h"
#include "orch_quantity.h"
#include "orch_util.h"
#include "wire.h"

int64_t
agent_reconnect_delay_ms (unsigned failures, double jitter)
{
  int64_t d = AGENT_RECONNECT_MIN_MS;
  unsigned i;

  for (i = 1; i < failures && d < AGENT_RECONNECT_MAX_MS; i++)
    d *= 2;
  if (d > AGENT_RECONNECT_MAX_MS)
    d = AGENT_RECONNECT_MAX_MS;
  if (jitter < 0)
    jitter = 0;
  if (jitter >= 1)
    jitter = 0.999;
  return (int64_t) ((double) d * (0.8 + 0.4 * jitter));
}

static void agent__connect_begin (agent_t *a);

/* Logs a connection problem at warn the first time it is seen and at debug
 * while it repeats, so that a scheduler that is down for an hour costs a
 * handful of lines, not one per retry: a reminder every 30 attempts (about
 * 5 minutes at the 10 s ceiling) says it is still going on. */
static void agent__problem (agent_t *a, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));

static void
agent__problem (agent_t *a, const char *fmt, ...)
{
  char msg[sizeof (a->last_problem)];
  unsigned attempt = a->failures + 1;
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (msg, sizeof (msg), fmt, ap);
  va_end (ap);
  if (strcmp (msg, a->last_problem) != 0)
    {
      orch_warn ("%s; retrying with backoff", msg);
      snprintf (a->last_problem, sizeof (a->last_problem), "%s", msg);
    }
  else if (attempt % AGENT_PROBLEM_REMINDER_EVERY == 0)
    orch_warn ("%s; still retrying (%u attempts)", msg, attempt);
  else
    orch_debug ("%s (attempt %u)", msg, attempt);
}

static void
agent__on_retry (uv_timer_t *t)
{
  agent__connect_begin (t->data);
}

#define AGENT_NEXT_SCHEDULER_MS 50

/* The scheduler address in use, "HOST:PORT". */
static const char *
agent__sched_addr (const agent_t *a)
{
  return a->cfg->scheduler_addrs[a->sched_idx];
}

static void
agent__schedule_retry (agent_t *a)
{
  int64_t delay;

  if (a->shutting_down)
    return;
  a->state = AGENT_SESS_IDLE;
  a->failures++;
  /* The next address at once; the backoff grows with each round through
   * them all (a standby refuses us until it leads). */
  size_t n = a->cfg->n_schedulers;
  a->sched_idx = (a->sched_idx + 1) % n;
  if (a->sched_idx != 0)
    delay = AGENT_NEXT_SCHEDULER_MS;
  else
    delay = agent_reconnect_delay_ms ((unsigned) ((a->failures + n - 1) / n),
                                      (double) random () / ((double) RAND_MAX + 1.0));
  orch_debug ("next connection attempt in %lld ms", (long long) delay);
  uv_timer_start (&a->retry_timer, agent__on_retry, (uint64_t) delay, 0);
}

static int
agent__send (agent_t *a, Orch__Envelope *env)
{
  orch_err_t err = { 0 };

  if (a->conn == NULL)
    return -1;
  if (wire_conn_send (a->conn, env, &err) < 0)
    {
      /* The library closes the connection on a send failure; on_close
       * reconnects. */
      orch_debug ("send to scheduler: %s", err.msg);
      return -1;
    }
  return 0;
}

static void agent__send_error (agent_t *a, uint64_t request_id, int code, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

static void
agent__send_error (agent_t *a, uint64_t request_id, int code, const char *fmt, ...)
{
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  Orch__Error e = ORCH__ERROR__INIT;
  cleanup_free char *msg = NULL;
  va_list ap;

  va_start (ap, fmt);
  if (vasprintf (&msg, fmt, ap) < 0)
    abort ();
  va_end (ap);
  e.code = code;
  e.message = msg;
  env.request_id = request_id;
  env.msg_case = ORCH__ENVELOPE__MSG_ERROR;
  env.error = &e;
  agent__send (a, &env);
}

/* Fills st from al; every string is borrowed from al. */
static void
agent__fill_status (Orch__AllocStatus *st, const agent_alloc_t *al)
{
  orch__alloc_status__init (st);
  st->alloc_id = al->id;
  st->state = (char *) agent_alloc_state_name (al->state);
  st->exit_code = al->exit_code;
  st->reason = al->reason ? al->reason : (char *) "";
  st->memory_bytes = al->usage.memory_bytes;
  st->cpu_usec = al->usage.cpu_usec;
  st->pid = al->state == AGENT_ALLOC_RUNNING ? al->proc.pid : 0;
  st->started_at_ms = al->started_at_ms;
  st->finished_at_ms = al->finished_at_ms;
  st->restarts = al->restarts;
  /* Where it can be reached and what runs it, while it runs. */
  st->address = al->state == AGENT_ALLOC_RUNNING ? (char *) al->proc.address : (char *) "";
  st->vmm = (char *) al->proc.vmm;
  st->guest_kernel = (char *) al->proc.guest_kernel;
  st->health = al->health_status ? (char *) al->health_status : (char *) "";
}

/* Status of every allocation in the table: arrays the caller frees with
 * free(*items) and free(*ptrs). */
static size_t
agent__all_statuses (agent_t *a, Orch__AllocStatus **items, Orch__AllocStatus ***ptrs)
{
  size_t i, n = a->sup.n_allocs;

  *items = NULL;
  *ptrs = NULL;
  if (n == 0)
    return 0;
  *items = xcalloc (n, sizeof (**items));
  *ptrs = xcalloc (n, sizeof (**ptrs));
  for (i = 0; i < n; i++)
    {
      agent__fill_status (&(*items)[i], a->sup.allocs[i]);
      (*ptrs)[i] = &(*items)[i];
    }
  return n;
}

void
agent_session_alloc_event (agent_t *a, const agent_alloc_t *al)
{
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  Orch__AllocEvent ev = ORCH__ALLOC_EVENT__INIT;
  Orch__AllocStatus st;

  /* Before registration the NodeRegister carries every status anyway. */
  if (a->state != AGENT_SESS_REGISTERED)
    return;
  agent__fill_status (&st, al);
  ev.status = &st;
  env.msg_case = ORCH__ENVELOPE__MSG_ALLOC_EVENT;
  env.alloc_event = &ev;
  agent__send (a, &env);
}

static void
agent__local_address (agent_t *a, char *buf, size_t len)
{
  struct sockaddr_storage ss;
  int n = sizeof (ss);

  buf[0] = '\0';
  if (a->cfg->advertise_address)
    {
      snprintf (buf, len, "%s", a->cfg->advertise_address);
      return;
    }
  if (a->conn == NULL || uv_tcp_getsockname (&a->conn->tcp, (struct sockaddr *) &ss, &n) < 0)
    return;
  if (ss.ss_family == AF_INET)
    uv_ip4_name ((struct sockaddr_in *) &ss, buf, len);
  else if (ss.ss_family == AF_INET6)
    uv_ip6_name ((struct sockaddr_in6 *) &ss, buf, len);
}

static void
agent__send_register (agent_t *a)
{
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  Orch__NodeRegister reg = ORCH__NODE_REGISTER__INIT;
  Orch__Resources cap = ORCH__RESOURCES__INIT;
  cleanup_free Orch__NodeRegister__LabelsEntry *labels = NULL;
  cleanup_free Orch__NodeRegister__LabelsEntry **label_ptrs = NULL;
  cleanup_free Orch__AllocStatus *st = NULL;
  cleanup_free Orch__AllocStatus **st_ptrs = NULL;
  cg_limits_t parent = { 0 };
  orch_err_t err = { 0 };
  char addr[INET6_ADDRSTRLEN + 1];
  char cpu_buf[32], mem_buf[32];
  size_t i;

  if (a->cg != NULL && a->cg->ops->parent_limits (a->cg, &parent, &err) < 0)
    {
      orch_debug ("cgroup parent limits: %s; using host totals", err.msg);
      memset (&parent, 0, sizeof (parent));
    }
  agent_node_capacity (&parent, a->host_cpus, a->host_memory, a->cfg->reserve_cpu_milli,
                       a->cfg->reserve_memory_bytes, &cap.cpu_milli, &cap.memory_bytes);

  reg.node_id = a->cfg->node_id;
  if (a->cfg->n_labels > 0)
    {
      labels = xcalloc (a->cfg->n_labels, sizeof (*labels));
      label_ptrs = xcalloc (a->cfg->n_labels, sizeof (*label_ptrs));
      for (i = 0; i < a->cfg->n_labels; i++)
        {
          orch__node_register__labels_entry__init (&labels[i]);
          labels[i].key = a->cfg->labels[i].key;
          labels[i].value = a->cfg->labels[i].value;
          label_ptrs[i] = &labels[i];
        }
      reg.n_labels = a->cfg->n_labels;
      reg.labels = label_ptrs;
    }
  reg.capacity = &cap;
  reg.n_runtimes = a->n_runtimes;
  reg.runtimes = a->runtimes;
  agent__local_address (a, addr, sizeof (addr));
  reg.address = addr;
  reg.cgroup_version = a->cg ? (char *) a->cg->ops->name : (char *) "";
  reg.n_allocs = agent__all_statuses (a, &st, &st_ptrs);
  reg.allocs = st_ptrs;
  reg.agent_version = (char *) ORCH_AGENT_VERSION;
  /* What each microVM costs beyond its guest memory: the reserve its cgroup
   * gets (never below the VMM's measured use), so the scheduler charges what
   * the node actually holds back. */
  for (size_t r = 0; r < a->n_runtimes; r++)
    if (strcmp (a->runtimes[r], "microvm") == 0)
      reg.vmm_overhead_bytes = rt_microvm_reserve (a->cfg->state_dir, 1);

  env.msg_case = ORCH__ENVELOPE__MSG_NODE_REGISTER;
  env.node_register = &reg;
  if (agent__send (a, &env) == 0)
    orch_debug ("register: capacity cpu %s memory %s, address %s, %zu allocations",
                orch_fmt_cpu (cap.cpu_milli, cpu_buf, sizeof (cpu_buf)),
                orch_fmt_memory (cap.memory_bytes, mem_buf, sizeof (mem_buf)), addr, reg.n_allocs);
}

/* The mean VMM overhead of the running microVMs (what each costs beyond
 * its guest memory), reported so that the scheduler can charge it. */
static void
agent__measure_vmm_overhead (agent_t *a)
{
  int64_t sum = 0, n = 0;
  for (size_t i = 0; i < a->sup.n_allocs; i++)
    {
      const agent_alloc_t *al = a->sup.allocs[i];
      if (al->state != AGENT_ALLOC_RUNNING || al->rt == NULL || strcmp (al->rt->name, "microvm") != 0)
        continue;
      cleanup_free char *dir = xasprintf ("%s/allocs/%s", a->cfg->state_dir, al->id);
      int64_t bytes = 0;
      orch_err_t err = { 0 };
      if (rt_microvm_overhead (dir, &bytes, &err) == 0 && bytes > 0)
        {
          sum += bytes;
          n++;
        }
    }
  a->vmm_overhead_measured = n > 0 ? sum / n : 0;
}

static void
agent__on_heartbeat (uv_timer_t *t)
{
  agent_t *a = t->data;
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  Orch__Heartbeat hb = ORCH__HEARTBEAT__INIT;
  Orch__Resources usage = ORCH__RESOURCES__INIT;
  cleanup_free Orch__AllocStatus *st = NULL;
  cleanup_free Orch__AllocStatus **st_ptrs = NULL;
  cg_usage_t u = { 0 };
  orch_err_t err = { 0 };

  if (a->state != AGENT_SESS_REGISTERED)
    return;
  /* A SIGCHLD can be coalesced with another; a periodic sweep catches it. */
  agent_sup_reap (&a->sup);
  /* Usage is read from cgroupfs, one lookup per file per allocation: at
   * hundreds of allocations that dominates an idle agent's CPU. Heartbeats
   * keep their pace (liveness), usage is sampled every AGENT_USAGE_EVERY_MS
   * and the last sample is sent in between. */
  int64_t now = orch_now_mono_ms ();
  if (a->last_usage_mono_ms == 0 || now - a->last_usage_mono_ms >= AGENT_USAGE_EVERY_MS)
    {
      a->last_usage_mono_ms = now;
      agent_sup_sample_usage (&a->sup);
      agent__measure_vmm_overhead (a);
      if (a->cg != NULL && a->cg->ops->parent_usage (a->cg, &u, &err) == 0)
        {
          a->usage_memory_bytes = u.memory_bytes;
          /* CPU usage is a rate: microseconds of CPU per millisecond of wall
           * time are millicores. */
          if (a->last_cpu_mono_ms > 0 && now > a->last_cpu_mono_ms
              && u.cpu_usec >= a->last_cpu_usec)
            a->usage_cpu_milli = (u.cpu_usec - a->last_cpu_usec) / (now - a->last_cpu_mono_ms);
          a->last_cpu_usec = u.cpu_usec;
          a->last_cpu_mono_ms = now;
        }
    }
  usage.memory_bytes = a->usage_memory_bytes;
  usage.cpu_milli = a->usage_cpu_milli;
  hb.usage = &usage;
  hb.vmm_overhead_bytes = a->vmm_overhead_measured;
  hb.n_allocs = agent__all_statuses (a, &st, &st_ptrs);
  hb.allocs = st_ptrs;
  env.msg_case = ORCH__ENVELOPE__MSG_HEARTBEAT;
  env.heartbeat = &hb;
  agent__send (a, &env);
}

static void
agent__on_hello_timeout (uv_timer_t *t)
{
  agent_t *a = t->data;

  if (a->conn != NULL && a->state == AGENT_SESS_HELLO)
    wire_conn_close (a->conn, "no HelloReply within 10 s");
}

/* ---- Messages from the scheduler ----------------------------------------- */

typedef struct agent__logs_ctx_s
{
  agent_t *a;
  uint64_t gen;
  uint64_t request_id;
  char alloc_id[64];
} agent__logs_ctx_t;

static void
agent__on_logs_read (void *ctx, int status, const uint8_t *data, size_t len, bool truncated)
{
  agent__logs_ctx_t *lc = ctx;
  agent_t *a = lc->a;

  a->logs_in_flight--;
  /* The reply belongs to the connection that asked: drop it if that one is
   * gone (the scheduler's request died with it). */
  if (a->conn != NULL && a->conn_gen == lc->gen && a->state == AGENT_SESS_REGISTERED)
    {
      if (status < 0)
        agent__send_error (a, lc->request_id, 4, "reading the log of allocation %s: %s",
                           lc->alloc_id, uv_strerror (status));
      else
        {
          Orch__Envelope env = ORCH__ENVELOPE__INIT;
          Orch__LogsReply rep = ORCH__LOGS_REPLY__INIT;

          rep.data.data = (uint8_t *) data;
          rep.data.len = len;
          rep.truncated = truncated;
          env.request_id = lc->request_id;
          env.msg_case = ORCH__ENVELOPE__MSG_LOGS_REPLY;
          env.logs_reply = &rep;
          agent__send (a, &env);
        }
    }
  free (lc);
}

/* One LogsRequest{follow} being served: its follower sends LogsReply frames
 * with the request's id until a LogsCancel, the allocation is forgotten
 * (then a last LogsReply{eof}), or the connection that asked is gone. */
typedef struct agent_follow_s
{
  agent_t *a;
  uint64_t gen;
  uint64_t request_id;
  char alloc_id[64];
  agent_logs_follow_t *f;
} agent_follow_t;

static void
agent__follow_remove (agent_t *a, agent_follow_t *fo)
{
  size_t i;

  for (i = 0; i < a->n_follows; i++)
    if (a->follows[i] == fo)
      {
        memmove (&a->follows[i], &a->follows[i + 1], (a->n_follows - i - 1) * sizeof (fo));
        a->n_follows--;
        break;
      }
  free (fo);
}

static void
agent__send_logs_reply (agent_t *a, uint64_t request_id, const uint8_t *data, size_t len,
                        bool truncated, bool eof)
{
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  Orch__LogsReply rep = ORCH__LOGS_REPLY__INIT;

  rep.data.data = (uint8_t *) data;
  rep.data.len = len;
  rep.truncated = truncated;
  rep.eof = eof;
  env.request_id = request_id;
  env.msg_case = ORCH__ENVELOPE__MSG_LOGS_REPLY;
  env.logs_reply = &rep;
  agent__send (a, &env);
}

static bool
agent__on_follow (void *ctx, int status, const uint8_t *data, size_t len, bool truncated)
{
  agent_follow_t *fo = ctx;
  agent_t *a = fo->a;
  bool gone;

  if (a->conn == NULL || a->conn_gen != fo->gen || a->state != AGENT_SESS_REGISTERED)
    {
      /* The connection that asked is gone, and the request with it. */
      agent__follow_remove (a, fo);
      return false;
    }
  if (status < 0)
    {
      agent__send_error (a, fo->request_id, 4, "following the log of allocation %s: %s",
                         fo->alloc_id, uv_strerror (status));
      agent__follow_remove (a, fo);
      return false;
    }
  gone = agent_sup_find (&a->sup, fo->alloc_id) == NULL;
  if (len > 0 || gone)
    agent__send_logs_reply (a, fo->request_id, data, len, truncated, gone);
  if (gone)
    {
      orch_debug ("logs of %s: allocation forgotten, follow %llu ended", fo->alloc_id,
                  (unsigned long long) fo->request_id);
      agent__follow_remove (a, fo);
      return false;
    }
  return true;
}

/* Ends every follow (the connection closed, or the agent stops). */
static void
agent__follows_drop (agent_t *a)
{
  while (a->n_follows > 0)
    {
      agent_follow_t *fo = a->follows[a->n_follows - 1];
      agent_logs_follow_cancel (fo->f);
      agent__follow_remove (a, fo);
    }
  free (a->follows);
  a->follows = NULL;
  a->cap_follows = 0;
}

static void
agent__handle_follow (agent_t *a, uint64_t request_id, const char *id, uint64_t tail_bytes)
{
  cleanup_free char *path = NULL;
  agent_follow_t *fo;
  size_t i;
  int rc = 0;

  for (i = 0; i < a->n_follows; i++)
    if (a->follows[i]->request_id == request_id)
      {
        agent__send_error (a, request_id, 4, "request %llu already follows a log",
                           (unsigned long long) request_id);
        return;
      }
  if (a->n_follows >= AGENT_MAX_FOLLOWS)
    {
      agent__send_error (a, request_id, 4, "node %s already follows %d logs; try again later",
                         a->cfg->node_id, AGENT_MAX_FOLLOWS);
      return;
    }
  fo = xcalloc (1, sizeof (*fo));
  fo->a = a;
  fo->gen = a->conn_gen;
  fo->request_id = request_id;
  snprintf (fo->alloc_id, sizeof (fo->alloc_id), "%s", id);
  path = xasprintf ("%s/allocs/%s/log", a->cfg->state_dir, id);
  fo->f = agent_logs_follow (a->loop, path, tail_bytes, agent__on_follow, fo, &rc);
  if (fo->f == NULL)
    {
      agent__send_error (a, request_id, 4, "following the log of allocation %s: %s", id,
                         uv_strerror (rc));
      free (fo);
      return;
    }
  orch_grow ((void **) &a->follows, &a->cap_follows, a->n_follows + 1, sizeof (fo));
  a->follows[a->n_follows++] = fo;
}

static void
agent__handle_logs_cancel (agent_t *a, const Orch__LogsCancel *c)
{
  size_t i;

  for (i = 0; i < a->n_follows; i++)
    {
      agent_follow_t *fo = a->follows[i];
      if (fo->request_id == c->request_id && fo->gen == a->conn_gen)
        {
          agent_logs_follow_cancel (fo->f);
          agent__send_logs_reply (a, fo->request_id, NULL, 0, false, true);
          agent__follow_remove (a, fo);
          return;
        }
    }
  /* Already ended (its eof is on the way or sent): nothing to do. */
  orch_debug ("LogsCancel for request %llu, which is not being followed",
              (unsigned long long) c->request_id);
}

static void
agent__handle_logs (agent_t *a, uint64_t request_id, const Orch__LogsRequest *req)
{
  const char *id = req->alloc_id ? req->alloc_id : "";
  cleanup_free char *path = NULL;
  agent__logs_ctx_t *lc;
  int rc;

  if (agent_sup_find (&a->sup, id) == NULL)
    {
      agent__send_error (a, request_id, 3, "allocation %s is not on node %s", id, a->cfg->node_id);
      return;
    }
  if (req->follow)
    {
      agent__handle_follow (a, request_id, id, req->tail_bytes);
      return;
    }
  if (a->logs_in_flight >= AGENT_LOGS_MAX_IN_FLIGHT)
    {
      agent__send_error (a, request_id, 4, "node %s is busy reading %d logs; try again",
                         a->cfg->node_id, a->logs_in_flight);
      return;
    }
  lc = xcalloc (1, sizeof (*lc));
  lc->a = a;
  lc->gen = a->conn_gen;
  lc->request_id = request_id;
  snprintf (lc->alloc_id, sizeof (lc->alloc_id), "%s", id);
  path = xasprintf ("%s/allocs/%s/log", a->cfg->state_dir, id);
  rc = agent_logs_read (a->loop, path, req->tail_bytes, agent__on_logs_read, lc);
  if (rc == 0)
    a->logs_in_flight++;
  else
    {
      agent__send_error (a, request_id, 4, "reading the log of allocation %s: %s", id,
                         uv_strerror (rc));
      free (lc);
    }
}

/* Fills r from al; r->ports points into ports (al->n_ports entries, owned
 * by the caller). Ports with a bad number are dropped (the scheduler checked
 * them; this only keeps garbage out of nftables). */
static void
agent__req_from_alloc (agent_alloc_req_t *r, const Orch__Alloc *al, net_port_t *ports)
{
  size_t i, n = 0;

  r->alloc_id = al->alloc_id;
  r->service = al->service;
  r->isolation = al->isolation;
  r->spec_json = al->spec_json;
  r->spec_version = al->spec_version;
  for (i = 0; i < al->n_ports && ports != NULL; i++)
    {
      const Orch__PortMapping *pm = al->ports[i];
      if (pm == NULL || pm->port == 0 || pm->port > 65535 || pm->host_port > 65535)
        continue;
      ports[n].port = (uint16_t) pm->port;
      ports[n].host_port = (uint16_t) pm->host_port;
      ports[n].udp = pm->protocol != NULL && strcmp (pm->protocol, "udp") == 0;
      n++;
    }
  r->ports = ports;
  r->n_ports = n;
}

static net_port_t *
agent__ports_for (const Orch__Alloc *al)
{
  if (al->n_ports == 0 || al->n_ports > AGENT_RECORD_MAX_PORTS)
    return NULL;
  return xcalloc (al->n_ports, sizeof (net_port_t));
}

static void
agent__handle_stop (agent_t *a, const Orch__StopAlloc *req)
{
  const char *id = req->alloc_id ? req->alloc_id : "";

  if (agent_sup_stop (&a->sup, id, req->grace_ms) < 0)
    {
      /* Tell the scheduler it is gone all the same, so it can forget it. */
      Orch__Envelope env = ORCH__ENVELOPE__INIT;
      Orch__AllocEvent ev = ORCH__ALLOC_EVENT__INIT;
      Orch__AllocStatus st = ORCH__ALLOC_STATUS__INIT;

      orch_info ("alloc %s: asked to stop but not on this node", id);
      st.alloc_id = (char *) id;
      st.state = (char *) "stopped";
      st.reason = (char *) "not on this node";
      ev.status = &st;
      env.msg_case = ORCH__ENVELOPE__MSG_ALLOC_EVENT;
      env.alloc_event = &ev;
      agent__send (a, &env);
    }
}

static void
agent__handle_desired (agent_t *a, const Orch__DesiredAllocs *d)
{
  cleanup_free agent_alloc_req_t *reqs = NULL;
  cleanup_free net_port_t **ports = NULL;
  size_t i, n = 0;

  if (d->n_allocs > 0)
    {
      reqs = xcalloc (d->n_allocs, sizeof (*reqs));
      ports = xcalloc (d->n_allocs, sizeof (*ports));
    }
  for (i = 0; i < d->n_allocs; i++)
    if (d->allocs[i] != NULL)
      {
        ports[n] = agent__ports_for (d->allocs[i]);
        agent__req_from_alloc (&reqs[n], d->allocs[i], ports[n]);
        n++;
      }
  agent_sup_apply_desired (&a->sup, reqs, n);
  for (i = 0; i < n; i++)
    free (ports[i]);
}

static void
agent__handle_hello_reply (agent_t *a, const Orch__HelloReply *hr)
{
  char reason[128];

  if (hr->protocol_version != WIRE_PROTOCOL_VERSION)
    {
      snprintf (reason, sizeof (reason), "scheduler speaks protocol %u, this agent %u",
                hr->protocol_version, WIRE_PROTOCOL_VERSION);
      wire_conn_close (a->conn, reason);
      return;
    }
  uv_timer_stop (&a->hello_timer);
  a->state = AGENT_SESS_REGISTERED;
  agent__send_register (a);
  if (a->conn == NULL || a->conn->closing)
    return;
  orch_info ("registered with scheduler %s as %s%s", agent__sched_addr (a), a->cfg->node_id,
             a->failures > 0 ? " (after retrying)" : "");
  a->failures = 0;
  a->last_problem[0] = '\0';
  a->ever_registered = true;
  a->last_cpu_mono_ms = 0;
  uv_timer_start (&a->heartbeat_timer, agent__on_heartbeat, (uint64_t) a->cfg->heartbeat_ms,
                  (uint64_t) a->cfg->heartbeat_ms);
}

static void
agent__on_message (wire_conn_t *c, Orch__Envelope *env)
{
  agent_t *a = c->data;
  orch_err_t err = { 0 };

  if (c != a->conn || a->shutting_down)
    return;

  if (a->state == AGENT_SESS_HELLO)
    {
      if (env->msg_case == ORCH__ENVELOPE__MSG_HELLO_REPLY)
        agent__handle_hello_reply (a, env->hello_reply);
      else if (env->msg_case == ORCH__ENVELOPE__MSG_ERROR)
        {
          char reason[200];
          snprintf (reason, sizeof (reason), "hello refused: %s",
                    env->error->message ? env->error->message : "");
          wire_conn_close (c, reason);
        }
      else
        wire_conn_close (c, "first reply to the hello is not a HelloReply");
      return;
    }
  if (a->state != AGENT_SESS_REGISTERED)
    return;

  switch (env->msg_case)
    {
    case ORCH__ENVELOPE__MSG_START_ALLOC:
      if (env->start_alloc->alloc == NULL)
        {
          orch_warn ("StartAlloc without an allocation, ignored");
          break;
        }
      {
        cleanup_free net_port_t *ports = agent__ports_for (env->start_alloc->alloc);
        agent_alloc_req_t r;
        agent__req_from_alloc (&r, env->start_alloc->alloc, ports);
        if (agent_sup_start (&a->sup, &r, &err) < 0)
          orch_warn ("StartAlloc refused: %s", err.msg);
      }
      break;
    case ORCH__ENVELOPE__MSG_STOP_ALLOC:
      agent__handle_stop (a, env->stop_alloc);
      break;
    case ORCH__ENVELOPE__MSG_DESIRED_ALLOCS:
      agent__handle_desired (a, env->desired_allocs);
      break;
    case ORCH__ENVELOPE__MSG_LOGS_REQUEST:
      agent__handle_logs (a, env->request_id, env->logs_request);
      break;
    case ORCH__ENVELOPE__MSG_LOGS_CANCEL:
      agent__handle_logs_cancel (a, env->logs_cancel);
      break;
    case ORCH__ENVELOPE__MSG_ERROR:
      orch_warn ("scheduler reports an error (request %llu, code %d): %s",
                 (unsigned long long) env->request_id, env->error->code,
                 env->error->message ? env->error->message : "");
      break;
    case ORCH__ENVELOPE__MSG_HELLO_REPLY:
      break;
    default:
      orch_debug ("ignoring a message of type %d from the scheduler", (int) env->msg_case);
      break;
    }
}

static void
agent__on_connect (wire_conn_t *c, int status)
{
  agent_t *a = c->data;
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  Orch__Hello hello = ORCH__HELLO__INIT;

  if (c != a->conn || status < 0 || a->shutting_down)
    return; /* on_close follows a failure and says why */
  orch_debug ("connected to scheduler %s (%s), sending hello", agent__sched_addr (a), c->peer);
  hello.protocol_version = WIRE_PROTOCOL_VERSION;
  hello.role = (char *) "agent";
  hello.identity = a->cfg->node_id;
  hello.join_token = a->cfg->join_token ? a->cfg->join_token : (char *) "";
  env.msg_case = ORCH__ENVELOPE__MSG_HELLO;
  env.hello = &hello;
  a->state = AGENT_SESS_HELLO;
  if (agent__send (a, &env) == 0)
    uv_timer_start (&a->hello_timer, agent__on_hello_timeout, AGENT_HELLO_TIMEOUT_MS, 0);
}

static void
agent__on_close (wire_conn_t *c, const char *reason)
{
  agent_t *a = c->data;
  agent_sess_state_t was = a->state;

  if (c != a->conn)
    return;
  a->conn = NULL;
  uv_timer_stop (&a->hello_timer);
  uv_timer_stop (&a->heartbeat_timer);
  agent__follows_drop (a);
  if (a->shutting_down)
    {
      a->state = AGENT_SESS_CLOSED;
      return;
    }
  if (was == AGENT_SESS_REGISTERED)
    {
      orch_warn ("lost the connection to scheduler %s: %s; reconnecting", agent__sched_addr (a),
                 reason ? reason : "closed");
      a->failures = 0;
      a->last_problem[0] = '\0';
    }
  else
    agent__problem (a, "cannot register with scheduler %s: %s", agent__sched_addr (a),
                    reason ? reason : "closed");
  agent__schedule_retry (a);
}

static const wire_conn_ops_t agent__conn_ops = {
  .on_message = agent__on_message,
  .on_connect = agent__on_connect,
  .on_close = agent__on_close,
};

static void
agent__on_resolved (uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
  agent_t *a = req->data;
  wire_conn_t *c;

  a->gai_busy = false;
  if (a->shutting_down)
    {
      uv_freeaddrinfo (res);
      return;
    }
  if (status < 0 || res == NULL)
    {
      uv_freeaddrinfo (res);
      agent__problem (a, "cannot resolve scheduler %s: %s", agent__sched_addr (a),
                      uv_strerror (status < 0 ? status : UV_EAI_NONAME));
      agent__schedule_retry (a);
      return;
    }
  c = wire_conn_new (a->loop, &agent__conn_ops, a, WIRE_MAX_FRAME);
  if (c == NULL)
    {
      uv_freeaddrinfo (res);
      agent__problem (a, "cannot create a socket for scheduler %s", agent__sched_addr (a));
      agent__schedule_retry (a);
      return;
    }
  a->conn = c;
  a->conn_gen++;
  a->state = AGENT_SESS_CONNECTING;
  /* A failure here is reported through on_close, like an asynchronous one. */
  wire_conn_connect (c, res->ai_addr);
  uv_freeaddrinfo (res);
}

static void
agent__connect_begin (agent_t *a)
{
  struct addrinfo hints;
  int rc;

  if (a->shutting_down)
    return;
  memset (&hints, 0, sizeof (hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  a->state = AGENT_SESS_RESOLVING;
  a->gai.data = a;
  rc = uv_getaddrinfo (a->loop, &a->gai, agent__on_resolved, a->cfg->scheduler_hosts[a->sched_idx],
                       a->cfg->scheduler_ports[a->sched_idx], &hints);
  if (rc < 0)
    {
      agent__problem (a, "cannot resolve scheduler %s: %s", agent__sched_addr (a),
                      uv_strerror (rc));
      agent__schedule_retry (a);
      return;
    }
  a->gai_busy = true;
}

void
agent_session_start (agent_t *a)
{
  a->retry_timer.data = a;
  a->hello_timer.data = a;
  a->heartbeat_timer.data = a;
  orch_info ("connecting to scheduler %s as node %s", a->cfg->scheduler, a->cfg->node_id);
  agent__connect_begin (a);
}

void
agent_session_stop (agent_t *a)
{
  uv_timer_stop (&a->retry_timer);
  uv_timer_stop (&a->hello_timer);
  uv_timer_stop (&a->heartbeat_timer);
  if (a->gai_busy)
    uv_cancel ((uv_req_t *) &a->gai);
  agent__follows_drop (a);
  if (a->conn != NULL)
    wire_conn_close (a->conn, "agent shutting down");
  a->state = AGENT_SESS_CLOSED;
}
