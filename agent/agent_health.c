/* Health checks of running allocations (spec.health): every interval one
 * probe, bounded by the timeout; failure_threshold failures in a row make
 * the allocation unhealthy, and the supervisor restarts it
 * (agent_sup_health_result).
 *
 * tcp and http probes connect from the agent with uv_tcp to the workload's
 * bridge address (or 127.0.0.1 with host networking). A workload in its own
 * network namespace without a bridge address is reachable from nowhere but
 * inside, and exec probes must run inside: both go through the agent's own
 * binary in its hidden helper mode (agent_exec.c), started with uv_spawn and
 * killed when the timeout passes. Nothing here blocks the loop. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_internal.h"
#include "orch_log.h"
#include "orch_util.h"

#define AGENT_PROBE_MAX_ARGS 256
#define AGENT_PROBE_RESP_MAX 512 /* the status line is all we read */

struct agent_probe_s
{
  uv_loop_t *loop;
  agent_health_cb cb;
  void *ctx;
  bool done;   /* cb called, or cancelled */
  bool torn;   /* handles being closed */
  int handles; /* open handles; freed at 0 */
  int kind;
  bool via_helper;
  int64_t timeout_ms;
  uv_timer_t timer;
  uv_tcp_t tcp;
  bool tcp_inited;
  uv_connect_t connect;
  uv_write_t write;
  uv_process_t proc;
  bool proc_inited;
  bool proc_exited;
  char *request; /* http */
  char resp[AGENT_PROBE_RESP_MAX];
  size_t resp_len;
};

int
agent_health_http_status_ok (const char *buf, size_t len, int *status)
{
  const char *sp;
  int code = 0, i;

  /* "HTTP/1.1 200 OK\r\n": the version, one space, three digits. */
  if (len < 5)
    return memcmp (buf, "HTTP/", len) == 0 ? -1 : 0;
  if (memcmp (buf, "HTTP/", 5) != 0)
    return 0;
  sp = memchr (buf, ' ', len);
  if (sp == NULL)
    return memchr (buf, '\n', len) ? 0 : (len < 16 ? -1 : 0);
  if ((size_t) (sp - buf) + 4 > len)
    return -1;
  for (i = 1; i <= 3; i++)
    {
      if (sp[i] < '0' || sp[i] > '9')
        return 0;
      code = code * 10 + (sp[i] - '0');
    }
  if (status)
    *status = code;
  return code >= 200 && code < 400 ? 1 : 0;
}

static void
agent__probe_free (agent_probe_t *p)
{
  free (p->request);
  free (p);
}

static void
agent__probe_on_close (uv_handle_t *h)
{
  agent_probe_t *p = h->data;

  if (--p->handles == 0)
    agent__probe_free (p);
}

/* Closes what is open; a helper still running is killed and its handle
 * closed when its exit is seen. */
static void
agent__probe_teardown (agent_probe_t *p)
{
  if (p->torn)
    return;
  p->torn = true;
  uv_timer_stop (&p->timer);
  uv_close ((uv_handle_t *) &p->timer, agent__probe_on_close);
  if (p->tcp_inited)
    uv_close ((uv_handle_t *) &p->tcp, agent__probe_on_close);
  if (p->proc_inited && !p->proc_exited)
    uv_process_kill (&p->proc, SIGKILL);
}

static void agent__probe_finish (agent_probe_t *p, bool ok, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
agent__probe_finish (agent_probe_t *p, bool ok, const char *fmt, ...)
{
  char why[256];
  va_list ap;

  if (p->done)
    return;
  p->done = true;
  va_start (ap, fmt);
  vsnprintf (why, sizeof (why), fmt, ap);
  va_end (ap);
  /* Teardown first: cb may cancel other things, never this probe again. */
  agent__probe_teardown (p);
  p->cb (p->ctx, ok, why);
}

static void
agent__probe_on_timeout (uv_timer_t *t)
{
  agent_probe_t *p = t->data;

  agent__probe_finish (p, false, "timed out after %lld ms", (long long) p->timeout_ms);
}

static void
agent__probe_on_exit (uv_process_t *proc, int64_t exit_status, int term_signal)
{
  agent_probe_t *p = proc->data;

  p->proc_exited = true;
  uv_close ((uv_handle_t *) proc, agent__probe_on_close);
  if (term_signal != 0)
    agent__probe_finish (p, false, "%s killed by signal %d",
                         p->kind == AGENT_PROBE_EXEC ? "command" : "probe", term_signal);
  else if (exit_status != 0)
    agent__probe_finish (p, false, "%s exited with code %lld",
                         p->kind == AGENT_PROBE_EXEC ? "command" : "probe",
                         (long long) exit_status);
  else
    agent__probe_finish (p, true, "ok");
}

static void
agent__probe_alloc_cb (uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
  agent_probe_t *p = h->data;

  buf->base = p->resp + p->resp_len;
  buf->len = sizeof (p->resp) - p->resp_len;
}

static void
agent__probe_on_read (uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
  agent_probe_t *p = s->data;
  int code = 0, r;

  if (p->done)
    return;
  if (n > 0)
    p->resp_len += (size_t) n;
  r = agent_health_http_status_ok (p->resp, p->resp_len, &code);
  if (r == 1)
    agent__probe_finish (p, true, "HTTP %d", code);
  else if (r == 0)
    {
      if (code > 0)
        agent__probe_finish (p, false, "HTTP status %d", code);
      else
        agent__probe_finish (p, false, "not an HTTP response");
    }
  else if (n < 0 || p->resp_len == sizeof (p->resp))
    agent__probe_finish (p, false, "%s before an HTTP status line",
                         n < 0 ? (n == UV_EOF ? "connection closed" : uv_strerror ((int) n))
                               : "too much data");
}

static void
agent__probe_on_write (uv_write_t *w, int status)
{
  agent_probe_t *p = w->data;

  if (p->done)
    return;
  if (status < 0)
    agent__probe_finish (p, false, "send request: %s", uv_strerror (status));
}

static void
agent__probe_on_connect (uv_connect_t *c, int status)
{
  agent_probe_t *p = c->data;
  uv_buf_t b;
  int r;

  if (p->done)
    return;
  if (status < 0)
    {
      agent__probe_finish (p, false, "connect: %s", uv_strerror (status));
      return;
    }
  if (p->kind == AGENT_PROBE_TCP)
    {
      agent__probe_finish (p, true, "connected");
      return;
    }
  b = uv_buf_init (p->request, (unsigned) strlen (p->request));
  p->write.data = p;
  r = uv_write (&p->write, (uv_stream_t *) &p->tcp, &b, 1, agent__probe_on_write);
  if (r == 0)
    r = uv_read_start ((uv_stream_t *) &p->tcp, agent__probe_alloc_cb, agent__probe_on_read);
  if (r < 0)
    agent__probe_finish (p, false, "send request: %s", uv_strerror (r));
}

static int
agent__probe_spawn (agent_probe_t *p, const agent_health_probe_t *hp)
{
  char pid_s[24], port_s[8];
  const char *args[AGENT_PROBE_MAX_ARGS + 32];
  uv_process_options_t o;
  size_t n = 0, i;
  int r;

  snprintf (pid_s, sizeof (pid_s), "%ld", (long) hp->pid);
  snprintf (port_s, sizeof (port_s), "%u", (unsigned) hp->port);
  args[n++] = hp->helper;
  args[n++] = "--exec-in";
  args[n++] = pid_s;
  if (hp->kind == AGENT_PROBE_EXEC)
    {
      for (i = 0; hp->cgroups && hp->cgroups[i] && i < 8; i++)
        {
          args[n++] = "--cgroup";
          args[n++] = hp->cgroups[i];
        }
      args[n++] = "--";
      for (i = 0; hp->argv && hp->argv[i]; i++)
        {
          if (i >= AGENT_PROBE_MAX_ARGS)
            return UV_E2BIG;
          args[n++] = hp->argv[i];
        }
      if (i == 0)
        return UV_EINVAL;
    }
  else if (hp->kind == AGENT_PROBE_TCP)
    {
      args[n++] = "--tcp";
      args[n++] = port_s;
    }
  else
    {
      args[n++] = "--http";
      args[n++] = port_s;
      args[n++] = hp->path ? hp->path : "/";
    }
  args[n] = NULL;

  memset (&o, 0, sizeof (o));
  o.file = hp->helper;
  o.args = (char **) args;
  o.exit_cb = agent__probe_on_exit;
  /* stdio: nothing (no pipe to keep alive; the result is the exit code). */
  o.stdio_count = 0;
  p->proc.data = p;
  r = uv_spawn (p->loop, &p->proc, &o);
  if (r < 0)
    {
      /* The handle is initialised even when the spawn fails. */
      p->proc_exited = true;
      p->proc_inited = true;
      p->handles++;
      uv_close ((uv_handle_t *) &p->proc, agent__probe_on_close);
      return r;
    }
  p->proc_inited = true;
  p->handles++;
  return 0;
}

static int
agent__probe_connect (agent_probe_t *p, const agent_health_probe_t *hp)
{
  struct sockaddr_storage ss;
  int r;

  if (strchr (hp->address, ':') != NULL)
    r = uv_ip6_addr (hp->address, hp->port, (struct sockaddr_in6 *) &ss);
  else
    r = uv_ip4_addr (hp->address, hp->port, (struct sockaddr_in *) &ss);
  if (r < 0)
    return r;
  r = uv_tcp_init (p->loop, &p->tcp);
  if (r < 0)
    return r;
  p->tcp.data = p;
  p->tcp_inited = true;
  p->handles++;
  if (hp->kind == AGENT_PROBE_HTTP)
    p->request = xasprintf ("GET %s HTTP/1.0\r\nHost: %s:%u\r\nUser-Agent: orch-agent/%s\r\n"
                            "Connection: close\r\n\r\n",
                            hp->path ? hp->path : "/", hp->address, (unsigned) hp->port,
                            ORCH_AGENT_VERSION);
  p->connect.data = p;
  return uv_tcp_connect (&p->connect, &p->tcp, (const struct sockaddr *) &ss,
                         agent__probe_on_connect);
}

agent_probe_t *
agent_probe_run (uv_loop_t *loop, const agent_health_probe_t *hp, agent_health_cb cb, void *ctx,
                 int *rc)
{
  agent_probe_t *p = xcalloc (1, sizeof (*p));
  int r;

  p->loop = loop;
  p->cb = cb;
  p->ctx = ctx;
  p->kind = hp->kind;
  p->timeout_ms = hp->timeout_ms > 0 ? hp->timeout_ms : 1000;
  p->via_helper = hp->kind == AGENT_PROBE_EXEC || hp->address[0] == '\0';
  uv_timer_init (loop, &p->timer);
  p->timer.data = p;
  p->handles = 1;

  if (p->via_helper)
    r = agent__probe_spawn (p, hp);
  else
    r = agent__probe_connect (p, hp);
  if (r < 0)
    {
      *rc = r;
      p->done = true;
      agent__probe_teardown (p);
      return NULL;
    }
  uv_timer_start (&p->timer, agent__probe_on_timeout, (uint64_t) p->timeout_ms, 0);
  return p;
}

void
agent_probe_cancel (agent_probe_t *p)
{
  if (p == NULL)
    return;
  p->done = true;
  agent__probe_teardown (p);
}

/* ---- The periodic checker of one allocation ------------------------------- */

struct agent_health_s
{
  uv_timer_t timer;
  agent_sup_t *sup;
  agent_alloc_t *a;     /* NULL once stopped */
  agent_probe_t *probe; /* in flight */
};

static void
agent__health_on_close (uv_handle_t *h)
{
  free (h->data);
}

static void
agent__health_on_result (void *ctx, bool ok, const char *why)
{
  agent_health_t *h = ctx;

  h->probe = NULL;
  if (h->a != NULL)
    agent_sup_health_result (h->sup, h->a, ok, why);
}

/* The allocation's cgroup directories, one per hierarchy (v1 has one per
 * controller, v2 one for all), into dirs (NULL-terminated, owned by the
 * caller). None without a cgroup manager (tests). */
static void
agent__cgroup_dirs (agent_sup_t *sup, agent_alloc_t *a, char **dirs, size_t max)
{
  static const char *const controllers[] = { "memory", "pids", "cpu", "cpuacct" };
  cg_manager_t *cg = sup->env.cg;
  size_t i, j, n = 0;

  dirs[0] = NULL;
  if (cg == NULL || cg->ops->path == NULL)
    return;
  for (i = 0; i < ORCH_ARRAY_LEN (controllers) && n + 1 < max; i++)
    {
      char *d = cg->ops->path (cg, a->id, controllers[i]);
      bool dup = false;
      if (d == NULL)
        continue;
      for (j = 0; j < n; j++)
        dup |= strcmp (dirs[j], d) == 0;
      if (dup)
        free (d);
      else
        dirs[n++] = d;
    }
  dirs[n] = NULL;
}

static void
agent__health_on_tick (uv_timer_t *t)
{
  agent_health_t *h = t->data;
  agent_alloc_t *a = h->a;
  const orch_health_t *spec;
  agent_health_probe_t p;
  char *cgroups[8] = { NULL };
  size_t i;
  int rc = 0;

  if (a == NULL || h->probe != NULL || a->state != AGENT_ALLOC_RUNNING || a->proc.pid <= 0)
    return; /* the previous probe is still out: its timeout will tell */
  spec = &a->spec.health;
  memset (&p, 0, sizeof (p));
  if (spec->exec != NULL)
    {
      p.kind = AGENT_PROBE_EXEC;
      p.argv = spec->exec;
    }
  else if (spec->http_port > 0)
    {
      p.kind = AGENT_PROBE_HTTP;
      p.port = spec->http_port;
      p.path = spec->http_path;
    }
  else
    {
      p.kind = AGENT_PROBE_TCP;
      p.port = spec->tcp_port;
    }
  if (a->proc.address[0] != '\0')
    snprintf (p.address, sizeof (p.address), "%s", a->proc.address);
  else if (a->spec.network == ORCH_NET_HOST)
    snprintf (p.address, sizeof (p.address), "127.0.0.1");
  if (strcmp (a->isolation, "microvm") == 0
      || (a->isolation[0] == '\0' && a->spec.isolation == ORCH_ISO_MICROVM))
    {
      /* The helper joins a process's namespaces: for a microVM that is the
       * VMM's, not the guest's. Only the guest's address reaches inside. */
      if (p.kind == AGENT_PROBE_EXEC)
        {
          agent_sup_health_result (
              h->sup, a, false, "exec health checks do not run inside microVMs; use tcp or http");
          return;
        }
      if (p.address[0] == '\0')
        {
          agent_sup_health_result (h->sup, a, false, "the microVM has no address to probe");
          return;
        }
    }
  p.pid = a->proc.pid;
  p.timeout_ms = spec->timeout_ms;
  p.helper = h->sup->helper;
  if (p.kind == AGENT_PROBE_EXEC)
    agent__cgroup_dirs (h->sup, a, cgroups, ORCH_ARRAY_LEN (cgroups));
  p.cgroups = cgroups;
  h->probe = agent_probe_run (h->sup->loop, &p, agent__health_on_result, h, &rc);
  for (i = 0; cgroups[i] != NULL; i++)
    free (cgroups[i]);
  if (h->probe == NULL)
    /* Could not even try (no helper, bad address): that is a failure too. */
    agent_sup_health_result (h->sup, a, false, uv_strerror (rc));
}

void
agent_health_start (agent_sup_t *sup, agent_alloc_t *a)
{
  agent_health_t *h;
  int64_t every;

  if (!a->spec_ok || !a->spec.health.set || a->health != NULL || sup->closing)
    return;
  h = xcalloc (1, sizeof (*h));
  h->sup = sup;
  h->a = a;
  uv_timer_init (sup->loop, &h->timer);
  h->timer.data = h;
  every = a->spec.health.interval_ms > 0 ? a->spec.health.interval_ms : 10000;
  /* The first probe after one interval: a workload needs a moment to listen. */
  uv_timer_start (&h->timer, agent__health_on_tick, (uint64_t) every, (uint64_t) every);
  a->health = h;
}

void
agent_health_stop (agent_alloc_t *a)
{
  agent_health_t *h = a->health;

  if (h == NULL)
    return;
  a->health = NULL;
  h->a = NULL;
  if (h->probe != NULL)
    agent_probe_cancel (h->probe);
  h->probe = NULL;
  uv_timer_stop (&h->timer);
  uv_close ((uv_handle_t *) &h->timer, agent__health_on_close);
}
