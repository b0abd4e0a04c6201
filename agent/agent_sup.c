/* The allocation table and its state machine (pending -> starting ->
 * running -> exited | failed | stopped), restarts with backoff, stop with a
 * grace period, and reaping. The runtime and the image store are reached
 * through agent_sup_deps_t, so unit tests run all of this against a fake. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "agent_internal.h"
#include "orch_log.h"
#include "orch_util.h"

const char *
agent_alloc_state_name (agent_alloc_state_t s)
{
  switch (s)
    {
    case AGENT_ALLOC_PENDING:
      return "pending";
    case AGENT_ALLOC_STARTING:
      return "starting";
    case AGENT_ALLOC_RUNNING:
      return "running";
    case AGENT_ALLOC_EXITED:
      return "exited";
    case AGENT_ALLOC_FAILED:
      return "failed";
    case AGENT_ALLOC_STOPPED:
      return "stopped";
    }
  return "unknown";
}

static void
agent__sup_emit (agent_sup_t *sup, agent_alloc_t *a)
{
  if (sup->on_event)
    sup->on_event (sup->event_ctx, a);
}

static void agent__set_reason (agent_alloc_t *a, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));

static void
agent__set_reason (agent_alloc_t *a, const char *fmt, ...)
{
  va_list ap;
  char *s = NULL;

  va_start (ap, fmt);
  if (vasprintf (&s, fmt, ap) < 0)
    abort ();
  va_end (ap);
  free (a->reason);
  a->reason = s;
}

/* Moves a to state, logs the change once and sends it on. */
static void
agent__transition (agent_sup_t *sup, agent_alloc_t *a, agent_alloc_state_t state)
{
  a->state = state;
  switch (state)
    {
    case AGENT_ALLOC_RUNNING:
      orch_info ("alloc %s: running (pid %ld)", a->id, (long) a->proc.pid);
      break;
    case AGENT_ALLOC_EXITED:
      orch_info ("alloc %s: exited with code %d%s%s", a->id, a->exit_code, *a->reason ? ", " : "",
                 a->reason);
      break;
    case AGENT_ALLOC_FAILED:
      orch_warn ("alloc %s: failed: %s", a->id, a->reason);
      break;
    case AGENT_ALLOC_STOPPED:
      orch_info ("alloc %s: stopped (%s)", a->id, a->reason);
      break;
    default:
      orch_debug ("alloc %s: %s", a->id, agent_alloc_state_name (state));
      break;
    }
  agent__sup_emit (sup, a);
}

static void
agent__alloc_free (agent_alloc_t *a)
{
  free (a->id);
  free (a->service);
  free (a->isolation);
  free (a->spec_json);
  free (a->reason);
  if (a->spec_ok)
    orch_spec_clear (&a->spec);
  free (a);
}

static void
agent__on_timer_close (uv_handle_t *h)
{
  agent__alloc_free (h->data);
}

typedef struct agent__rmdir_s
{
  uv_work_t req;
  char *path;
} agent__rmdir_t;

static void
agent__rmdir_work (uv_work_t *req)
{
  agent__rmdir_t *w = req->data;
  orch_rm_rf (w->path);
}

static void
agent__rmdir_done (uv_work_t *req, int status)
{
  agent__rmdir_t *w = req->data;
  free (w->path);
  free (w);
}

/* Removes the allocation's directory (its log, and whatever the runtime
 * left) in the thread pool: a large log takes a while to unlink. */
static void
agent__remove_alloc_dir (agent_sup_t *sup, const char *id)
{
  agent__rmdir_t *w = xcalloc (1, sizeof (*w));

  w->path = xasprintf ("%s/allocs/%s", sup->env.state_dir, id);
  w->req.data = w;
  if (uv_queue_work (sup->loop, &w->req, agent__rmdir_work, agent__rmdir_done) < 0)
    {
      free (w->path);
      free (w);
    }
}

/* Removes a from the table and its directory (a forgotten allocation has no
 * log left to ask for). a is freed once its timer handle is closed, so a
 * pointer held by a caller up the stack stays valid until the loop turns. */
static void
agent__forget (agent_sup_t *sup, agent_alloc_t *a)
{
  size_t i;

  for (i = 0; i < sup->n_allocs; i++)
    if (sup->allocs[i] == a)
      {
        memmove (&sup->allocs[i], &sup->allocs[i + 1], (sup->n_allocs - i - 1) * sizeof (a));
        sup->n_allocs--;
        break;
      }
  if (a->forgotten)
    return;
  a->forgotten = true;
  agent__remove_alloc_dir (sup, a->id);
  uv_close ((uv_handle_t *) &a->timer, agent__on_timer_close);
}

agent_alloc_t *
agent_sup_find (agent_sup_t *sup, const char *id)
{
  size_t i;

  for (i = 0; i < sup->n_allocs; i++)
    if (strcmp (sup->allocs[i]->id, id) == 0)
      return sup->allocs[i];
  return NULL;
}

static void agent__launch (agent_sup_t *sup, agent_alloc_t *a);

static void
agent__on_timer (uv_timer_t *t)
{
  agent_alloc_t *a = t->data;
  agent_sup_t *sup = a->sup;
  agent_timer_kind_t kind = a->timer_kind;
  orch_err_t err = { 0 };

  a->timer_kind = AGENT_TIMER_NONE;
  switch (kind)
    {
    case AGENT_TIMER_RESTART:
      if (a->stopping || sup->closing)
        return;
      a->restarts++;
      orch_info ("alloc %s: restarting (restart %u)", a->id, a->restarts);
      agent__launch (sup, a);
      break;
    case AGENT_TIMER_KILL:
      if (a->state != AGENT_ALLOC_RUNNING || a->proc.pid <= 0)
        return;
      orch_warn ("alloc %s: still running %lld ms after SIGTERM, sending SIGKILL", a->id,
                 (long long) a->grace_ms);
      a->killed = true;
      if (a->rt->kill (&sup->env, a->id, &a->proc, SIGKILL, &err) < 0)
        orch_warn ("alloc %s: SIGKILL: %s", a->id, err.msg);
      break;
    case AGENT_TIMER_NONE:
      break;
    }
}

/* After an allocation has ended on its own: restart it if its policy says
 * so, after the backoff. */
static void
agent__after_end (agent_sup_t *sup, agent_alloc_t *a, bool failed)
{
  int64_t delay;

  if (sup->closing || a->stopping || !a->spec_ok)
    return;
  if (!agent_restart_decide (a->spec.restart_policy, a->spec.max_restarts, a->restarts, failed,
                             a->spec.restart_backoff_ms, &delay))
    {
      if (a->spec.restart_policy != ORCH_RESTART_NEVER
          && (failed || a->spec.restart_policy == ORCH_RESTART_ALWAYS))
        orch_warn ("alloc %s: not restarted: %u restarts made, the limit is %u", a->id, a->restarts,
                   a->spec.max_restarts);
      return;
    }
  orch_info ("alloc %s: restart policy %s: starting again in %lld ms", a->id,
             orch_restart_policy_name (a->spec.restart_policy), (long long) delay);
  a->timer_kind = AGENT_TIMER_RESTART;
  uv_timer_start (&a->timer, agent__on_timer, (uint64_t) delay, 0);
}

static void
agent__start_failed (agent_sup_t *sup, agent_alloc_t *a)
{
  a->proc.pid = 0;
  a->finished_at_ms = orch_now_wall_ms ();
  agent__transition (sup, a, AGENT_ALLOC_FAILED);
  agent__after_end (sup, a, true);
}

static void
agent__launch (agent_sup_t *sup, agent_alloc_t *a)
{
  orch_err_t err = { 0 };
  cleanup_free char *rootfs = NULL;
  cleanup_free char *alloc_dir = NULL;
  cleanup_free char *log_path = NULL;
  rt_proc_t proc = { 0 };
  rt_alloc_t ra;
  int r;

  a->exit_code = 0;
  a->killed = false;
  agent__set_reason (a, "%s", "");
  memset (&a->usage, 0, sizeof (a->usage));
  agent__transition (sup, a, AGENT_ALLOC_STARTING);

  rootfs = sup->deps.image_rootfs (sup->env.state_dir, a->spec.image, &err);
  if (rootfs == NULL)
    {
      agent__set_reason (a, "image %s: %s", a->spec.image, err.msg);
      agent__start_failed (sup, a);
      return;
    }
  alloc_dir = xasprintf ("%s/allocs/%s", sup->env.state_dir, a->id);
  r = orch_mkdir_p (alloc_dir, 0700);
  if (r < 0)
    {
      agent__set_reason (a, "create %s: %s", alloc_dir, strerror (-r));
      agent__start_failed (sup, a);
      return;
    }
  log_path = xasprintf ("%s/log", alloc_dir);

  ra.alloc_id = a->id;
  ra.spec = &a->spec;
  ra.rootfs = rootfs;
  ra.alloc_dir = alloc_dir;
  ra.log_path = log_path;
  if (a->rt->start (&sup->env, &ra, &proc, &err) < 0)
    {
      agent__set_reason (a, "start: %s", err.msg);
      agent__start_failed (sup, a);
      return;
    }
  a->proc = proc;
  a->started_at_ms = proc.started_ms > 0 ? proc.started_ms : orch_now_wall_ms ();
  a->finished_at_ms = 0;
  agent__transition (sup, a, AGENT_ALLOC_RUNNING);
}

static void
agent__on_sigchld (uv_signal_t *h, int signum)
{
  agent_sup_reap (h->data);
}

int
agent_sup_init (agent_sup_t *sup, uv_loop_t *loop, const char *state_dir, cg_manager_t *cg,
                const agent_sup_deps_t *deps, agent_sup_event_cb on_event, void *ctx)
{
  int r;

  memset (sup, 0, sizeof (*sup));
  sup->loop = loop;
  sup->env.state_dir = state_dir;
  sup->env.cg = cg;
  sup->deps = *deps;
  sup->on_event = on_event;
  sup->event_ctx = ctx;
  r = uv_signal_init (loop, &sup->sigchld);
  if (r < 0)
    return r;
  sup->sigchld.data = sup;
  r = uv_signal_start (&sup->sigchld, agent__on_sigchld, SIGCHLD);
  if (r < 0)
    uv_close ((uv_handle_t *) &sup->sigchld, NULL);
  return r;
}

void
agent_sup_close (agent_sup_t *sup)
{
  size_t i;

  if (sup->closing)
    return;
  sup->closing = true;
  uv_close ((uv_handle_t *) &sup->sigchld, NULL);
  for (i = 0; i < sup->n_allocs; i++)
    {
      agent_alloc_t *a = sup->allocs[i];
      if (!a->forgotten)
        {
          a->forgotten = true;
          uv_close ((uv_handle_t *) &a->timer, agent__on_timer_close);
        }
    }
  free (sup->allocs);
  sup->allocs = NULL;
  sup->n_allocs = sup->cap_allocs = 0;
}

/* Joins validation errors into one line for AllocStatus.reason. */
static char *
agent__join_errors (const orch_errlist_t *errs)
{
  size_t i, n = 0;
  char *s, *p;

  if (errs->len == 0)
    return xstrdup ("invalid spec");
  for (i = 0; i < errs->len; i++)
    n += strlen (errs->items[i]) + 2;
  s = p = xmalloc (n + 1);
  for (i = 0; i < errs->len; i++)
    p += sprintf (p, "%s%s", i ? "; " : "", errs->items[i]);
  return s;
}

int
agent_sup_start (agent_sup_t *sup, const agent_alloc_req_t *req, orch_err_t *err)
{
  orch_errlist_t errs = { 0 };
  agent_alloc_t *a;
  const char *iso;

  if (sup->closing)
    return orch_err_set (err, ESHUTDOWN, "the agent is shutting down");
  if (req->alloc_id == NULL || !orch_is_dns_label (req->alloc_id))
    /* The id names a directory and a cgroup: anything else could escape them. */
    return orch_err_set (err, EINVAL, "allocation id \"%s\" is not a DNS label",
                         req->alloc_id ? req->alloc_id : "");
  if (agent_sup_find (sup, req->alloc_id) != NULL)
    {
      orch_debug ("alloc %s: already known, start ignored", req->alloc_id);
      return 0;
    }
  if (sup->n_allocs >= AGENT_MAX_ALLOCS)
    return orch_err_set (err, ENOSPC, "allocation %s refused: this node already has %d allocations",
                         req->alloc_id, AGENT_MAX_ALLOCS);

  a = xcalloc (1, sizeof (*a));
  a->sup = sup;
  a->id = xstrdup (req->alloc_id);
  a->service = xstrdup (req->service ? req->service : "");
  a->isolation = xstrdup (req->isolation ? req->isolation : "");
  a->spec_json = xstrdup (req->spec_json ? req->spec_json : "");
  a->spec_version = req->spec_version;
  a->reason = xstrdup ("");
  a->state = AGENT_ALLOC_PENDING;
  uv_timer_init (sup->loop, &a->timer);
  a->timer.data = a;
  orch_grow ((void **) &sup->allocs, &sup->cap_allocs, sup->n_allocs + 1, sizeof (a));
  sup->allocs[sup->n_allocs++] = a;
  orch_info ("alloc %s: received (service %s, spec version %llu)", a->id, a->service,
             (unsigned long long) a->spec_version);
  agent__transition (sup, a, AGENT_ALLOC_PENDING);

  if (orch_spec_parse_one (a->spec_json, &a->spec, &errs) < 0)
    {
      cleanup_free char *why = agent__join_errors (&errs);
      orch_errlist_free (&errs);
      memset (&a->spec, 0, sizeof (a->spec));
      agent__set_reason (a, "invalid spec: %s", why);
      a->finished_at_ms = orch_now_wall_ms ();
      agent__transition (sup, a, AGENT_ALLOC_FAILED);
      return 0;
    }
  orch_errlist_free (&errs);
  a->spec_ok = true;

  iso = *a->isolation ? a->isolation : orch_isolation_name (a->spec.isolation);
  a->rt = sup->deps.lookup (sup->deps.ctx, iso);
  if (a->rt == NULL)
    {
      agent__set_reason (a, "no %s runtime on this node", iso);
      a->finished_at_ms = orch_now_wall_ms ();
      agent__transition (sup, a, AGENT_ALLOC_FAILED);
      return 0;
    }
  agent__launch (sup, a);
  return 0;
}

int
agent_sup_stop (agent_sup_t *sup, const char *id, int64_t grace_ms)
{
  agent_alloc_t *a = agent_sup_find (sup, id);
  orch_err_t err = { 0 };

  if (a == NULL)
    return -1;
  if (a->stopping)
    return 0;
  a->stopping = true;
  uv_timer_stop (&a->timer);
  a->timer_kind = AGENT_TIMER_NONE;

  if (a->state == AGENT_ALLOC_RUNNING && a->proc.pid > 0)
    {
      if (grace_ms <= 0)
        grace_ms = a->spec_ok && a->spec.stop_grace_ms > 0 ? a->spec.stop_grace_ms
                                                           : AGENT_DEFAULT_GRACE_MS;
      a->grace_ms = grace_ms;
      orch_info ("alloc %s: stopping (SIGTERM, SIGKILL after %lld ms)", a->id,
                 (long long) grace_ms);
      /* A kill that fails (the process is already gone) changes nothing: the
       * reaper sees the exit and finishes the stop. */
      if (a->rt->kill (&sup->env, a->id, &a->proc, SIGTERM, &err) < 0)
        orch_debug ("alloc %s: SIGTERM: %s", a->id, err.msg);
      a->timer_kind = AGENT_TIMER_KILL;
      uv_timer_start (&a->timer, agent__on_timer, (uint64_t) grace_ms, 0);
      return 0;
    }

  /* Not running (waiting for a restart, or already ended): nothing to kill. */
  agent__set_reason (a, "stopped by the scheduler");
  if (a->finished_at_ms == 0)
    a->finished_at_ms = orch_now_wall_ms ();
  agent__transition (sup, a, AGENT_ALLOC_STOPPED);
  agent__forget (sup, a);
  return 0;
}

void
agent_sup_apply_desired (agent_sup_t *sup, const agent_alloc_req_t *reqs, size_t n)
{
  cleanup_free const char **known = NULL;
  cleanup_free const char **desired = NULL;
  cleanup_free agent_alloc_t **snap = NULL;
  cleanup_free size_t *to_stop = NULL;
  cleanup_free size_t *to_start = NULL;
  size_t i, n_known = sup->n_allocs, n_stop, n_start;

  if (sup->closing)
    return;
  /* Work on a snapshot: stopping an allocation may remove it from the table
   * (it stays allocated until the loop turns). */
  if (n_known > 0)
    {
      snap = xmalloc (n_known * sizeof (*snap));
      known = xmalloc (n_known * sizeof (*known));
      memcpy (snap, sup->allocs, n_known * sizeof (*snap));
      for (i = 0; i < n_known; i++)
        known[i] = snap[i]->id;
    }
  if (n > 0)
    {
      desired = xmalloc (n * sizeof (*desired));
      for (i = 0; i < n; i++)
        desired[i] = reqs[i].alloc_id ? reqs[i].alloc_id : "";
    }
  agent_reconcile_plan (known, n_known, desired, n, &to_stop, &n_stop, &to_start, &n_start);
  if (n_stop > 0 || n_start > 0)
    orch_info ("desired allocations: %zu listed, stopping %zu, starting %zu", n, n_stop, n_start);

  for (i = 0; i < n_stop; i++)
    {
      agent_alloc_t *a = snap[to_stop[i]];
      if (!a->forgotten)
        agent_sup_stop (sup, a->id, 0);
    }
  for (i = 0; i < n_start; i++)
    {
      orch_err_t err = { 0 };
      if (agent_sup_start (sup, &reqs[to_start[i]], &err) < 0)
        orch_warn ("desired allocation refused: %s", err.msg);
    }
}

/* How the workload ended, from the record its init leaves in the
 * allocation's directory ("exited N", "signaled N", "failed exec CMD: why";
 * agent/init/orch_init.c). The wait status only says how the init ended:
 * the record tells a workload killed by a signal from one that exited with
 * 128+N, and names a command that could not be run at all. Best effort: a
 * runtime that writes no record leaves the wait status alone. Returns true
 * when the record says the command could not be executed. */
static bool
agent__read_exit_record (agent_sup_t *sup, agent_alloc_t *a)
{
  cleanup_free char *path = xasprintf ("%s/allocs/%s/exit", sup->env.state_dir, a->id);
  cleanup_free char *text = NULL;
  size_t len;
  char *nl;
  int sig;

  if (orch_read_file (path, 4096, &text, &len) < 0)
    return false;
  nl = strchr (text, '\n');
  if (nl)
    *nl = '\0';
  if (strncmp (text, "failed exec ", 12) == 0)
    {
      agent__set_reason (a, "%s", text);
      return true;
    }
  if (sscanf (text, "signaled %d", &sig) == 1 && sig > 0 && sig < 128)
    agent__set_reason (a, "killed by signal %d", sig);
  return false;
}

void
agent_sup_handle_exit (agent_sup_t *sup, agent_alloc_t *a, int wstatus)
{
  orch_err_t err = { 0 };
  cg_usage_t u = { 0 };
  bool oom = false, exec_failed, failed;

  if (a->rt->usage (&sup->env, a->id, &u, &err) == 0)
    {
      oom = u.oom_kills > 0;
      a->usage = u;
    }
  a->proc.pid = 0;
  a->finished_at_ms = orch_now_wall_ms ();
  uv_timer_stop (&a->timer);
  a->timer_kind = AGENT_TIMER_NONE;

  agent__set_reason (a, "%s", "");
  if (wstatus == -1)
    {
      /* Reaped by someone else: the exit status is lost. */
      a->exit_code = 255;
      agent__set_reason (a, "lost track of the workload's process");
    }
  else if (WIFEXITED (wstatus))
    a->exit_code = WEXITSTATUS (wstatus);
  else if (WIFSIGNALED (wstatus))
    {
      a->exit_code = 128 + WTERMSIG (wstatus);
      agent__set_reason (a, "killed by signal %d", WTERMSIG (wstatus));
    }
  else
    a->exit_code = 255;
  /* Read before cleanup, which removes the record. */
  exec_failed = agent__read_exit_record (sup, a);

  orch_err_clear (&err);
  if (a->rt->cleanup (&sup->env, a->id, &err) < 0)
    orch_warn ("alloc %s: cleanup: %s", a->id, err.msg);

  if (a->stopping)
    {
      if (a->killed)
        agent__set_reason (a, "stopped by the scheduler (SIGKILL after %lld ms)",
                           (long long) a->grace_ms);
      else
        agent__set_reason (a, "stopped by the scheduler");
      agent__transition (sup, a, AGENT_ALLOC_STOPPED);
      agent__forget (sup, a);
      return;
    }
  if (oom || exec_failed)
    {
      if (oom)
        agent__set_reason (a, "oom-killed");
      failed = true;
      agent__transition (sup, a, AGENT_ALLOC_FAILED);
    }
  else
    {
      failed = a->exit_code != 0;
      agent__transition (sup, a, AGENT_ALLOC_EXITED);
    }
  agent__after_end (sup, a, failed);
}

void
agent_sup_reap (agent_sup_t *sup)
{
  cleanup_free agent_alloc_t **done = NULL;
  cleanup_free int *status = NULL;
  size_t i, n_done = 0;

  if (sup->n_allocs == 0)
    return;
  /* Collect first, act after: handling an exit may remove allocations from
   * the table being scanned. */
  done = xmalloc (sup->n_allocs * sizeof (*done));
  status = xmalloc (sup->n_allocs * sizeof (*status));
  for (i = 0; i < sup->n_allocs; i++)
    {
      agent_alloc_t *a = sup->allocs[i];
      int st = 0;
      pid_t r;

      if (a->state != AGENT_ALLOC_RUNNING || a->proc.pid <= 0)
        continue;
      do
        r = waitpid (a->proc.pid, &st, WNOHANG);
      while (r < 0 && errno == EINTR);
      if (r == 0)
        continue;
      if (r < 0)
        {
          /* Not our child (any more): nobody can tell how it ended. */
          orch_warn ("alloc %s: pid %ld is not a child of the agent: %s", a->id, (long) a->proc.pid,
                     strerror (errno));
        }
      done[n_done] = a;
      status[n_done++] = r < 0 ? -1 : st;
    }
  for (i = 0; i < n_done; i++)
    agent_sup_handle_exit (sup, done[i], status[i]);
}

void
agent_sup_sample_usage (agent_sup_t *sup)
{
  size_t i;

  for (i = 0; i < sup->n_allocs; i++)
    {
      agent_alloc_t *a = sup->allocs[i];
      orch_err_t err = { 0 };
      cg_usage_t u = { 0 };

      if (a->state != AGENT_ALLOC_RUNNING || a->rt == NULL)
        continue;
      if (a->rt->usage (&sup->env, a->id, &u, &err) == 0)
        a->usage = u;
    }
}
