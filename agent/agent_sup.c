/* The allocation table and its state machine (pending -> starting ->
 * running -> exited | failed | stopped), restarts with backoff, stop with a
 * grace period, and reaping. The runtime and the image store are reached
 * through agent_sup_deps_t, so unit tests run all of this against a fake. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

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
    case AGENT_ALLOC_PULLING:
      return "pulling";
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
  free (a->ports);
  if (a->spec_ok)
    orch_spec_clear (&a->spec);
  free (a);
}

/* Each handle of an allocation closes on its own; the last one frees it. */
static void
agent__on_handle_close (uv_handle_t *h)
{
  agent_alloc_t *a = h->data;

  if (--a->handles == 0)
    agent__alloc_free (a);
}

static void
agent__on_poll_close (uv_handle_t *h)
{
  agent_alloc_t *a = h->data;

  /* The fd may be closed only once libuv is done with it. */
  if (a->pidfd >= 0)
    close (a->pidfd);
  a->pidfd = -1;
  agent__on_handle_close (h);
}

/* Stops watching an adopted workload's pidfd. */
static void
agent__unwatch (agent_alloc_t *a)
{
  if (!a->poll_inited)
    return;
  a->poll_inited = false;
  uv_poll_stop (&a->pidfd_poll);
  uv_close ((uv_handle_t *) &a->pidfd_poll, agent__on_poll_close);
}

/* Closes every handle of a; it is freed once they are closed. */
static void
agent__close_alloc (agent_alloc_t *a)
{
  if (a->forgotten)
    return;
  a->forgotten = true;
  agent_health_stop (a);
  agent__unwatch (a);
  uv_close ((uv_handle_t *) &a->timer, agent__on_handle_close);
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
  agent__remove_alloc_dir (sup, a->id);
  agent__close_alloc (a);
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
  memset (&a->proc, 0, sizeof (a->proc));
  a->finished_at_ms = orch_now_wall_ms ();
  agent__transition (sup, a, AGENT_ALLOC_FAILED);
  agent__after_end (sup, a, true);
}

/* Keeps what a restarted agent needs to re-adopt a in its directory. A
 * failure costs only the re-adoption of this one allocation. */
static void
agent__save_record (agent_sup_t *sup, agent_alloc_t *a, const char *alloc_dir)
{
  agent_record_t r = {
    .alloc_id = a->id,
    .service = a->service,
    .isolation = a->isolation,
    .spec_json = a->spec_json,
    .spec_version = a->spec_version,
    .ports = a->ports,
    .n_ports = a->n_ports,
    .restarts = a->restarts,
    .started_at_ms = a->started_at_ms,
  };
  orch_err_t err = { 0 };

  if (agent_record_write (alloc_dir, &r, &err) < 0)
    orch_warn ("alloc %s: cannot save its record, it will not be re-adopted after an agent "
               "restart: %s",
               a->id, err.msg);
}

/* Work done in the thread pool before a start: pulling the image when it is
 * not in the store, then the runtime's prepare (a microVM's root disk). It
 * outlives its allocation if that is stopped meanwhile: the allocation sets
 * cancel and forgets it, and the completion finds nobody waiting for it. */
typedef struct agent_pull_s
{
  uv_work_t work;
  agent_sup_t *sup;
  const rt_ops_t *rt;
  char *alloc_id;
  char *ref;  /* image to pull, NULL when it is in the store */
  volatile int cancel;
  char *rootfs; /* in: when not pulling; out: the image's root filesystem */
  orch_err_t err;
  const char *step; /* what failed: "pull" or "prepare" */
  int status;
} agent_pull_t;

static void agent__launch_rootfs (agent_sup_t *sup, agent_alloc_t *a, char *rootfs);

static void
agent__pull_work (uv_work_t *w)
{
  agent_pull_t *p = w->data;
  agent_sup_t *sup = p->sup;
  if (p->ref != NULL)
    {
      p->step = "pull";
      p->status = sup->deps.image_ensure (sup->deps.ctx, sup->env.state_dir, p->ref, &p->cancel,
                                          &p->rootfs, &p->err);
      if (p->status < 0)
        return;
    }
  if (p->rt->prepare != NULL && !p->cancel)
    {
      p->step = "prepare";
      p->status = p->rt->prepare (&sup->env, p->rootfs, &p->err);
    }
}

static void
agent__pull_done (uv_work_t *w, int status)
{
  agent_pull_t *p = w->data;
  agent_sup_t *sup = p->sup;
  agent_alloc_t *a = sup->closing ? NULL : agent_sup_find (sup, p->alloc_id);
  if (a != NULL && a->pull == p)
    {
      a->pull = NULL;
      if (status < 0 || p->status < 0)
        {
          if (status == 0 && strcmp (p->step, "pull") == 0)
            agent__set_reason (a, "%s", p->err.msg); /* names the image already */
          else
            agent__set_reason (a, "%s %s: %s", p->step, a->spec.image,
                               status < 0 ? uv_strerror (status) : p->err.msg);
          agent__start_failed (sup, a);
        }
      else
        {
          if (p->ref != NULL)
            orch_info ("alloc %s: image %s pulled", a->id, a->spec.image);
          if (a->state != AGENT_ALLOC_STARTING)
            agent__transition (sup, a, AGENT_ALLOC_STARTING);
          agent__launch_rootfs (sup, a, TAKE_PTR (p->rootfs));
        }
    }
  free (p->rootfs);
  free (p->alloc_id);
  free (p->ref);
  free (p);
}

/* Cancels a's pull, if any (its completion then finds nobody waiting). */
static void
agent__pull_abandon (agent_alloc_t *a)
{
  if (a->pull == NULL)
    return;
  a->pull->cancel = 1;
  a->pull = NULL;
}

/* Queues the thread-pool part of a start; false when it could not be. */
static bool
agent__queue_prepare (agent_sup_t *sup, agent_alloc_t *a, const char *ref, char *rootfs)
{
  agent_pull_t *p = xcalloc (1, sizeof *p);
  p->sup = sup;
  p->rt = a->rt;
  p->alloc_id = xstrdup (a->id);
  p->ref = ref ? xstrdup (ref) : NULL;
  p->rootfs = rootfs;
  p->work.data = p;
  if (uv_queue_work (sup->loop, &p->work, agent__pull_work, agent__pull_done) < 0)
    {
      free (p->alloc_id);
      free (p->ref);
      free (p);
      return false;
    }
  a->pull = p;
  return true;
}

static void
agent__launch (agent_sup_t *sup, agent_alloc_t *a)
{
  orch_err_t err = { 0 };
  char *rootfs = NULL;

  a->exit_code = 0;
  a->killed = false;
  agent__set_reason (a, "%s", "");
  memset (&a->usage, 0, sizeof (a->usage));

  /* An image that is not in the store yet is pulled off the loop. */
  if (sup->deps.image_present && sup->deps.image_ensure
      && !sup->deps.image_present (sup->env.state_dir, a->spec.image))
    {
      if (agent__queue_prepare (sup, a, a->spec.image, NULL))
        {
          orch_info ("alloc %s: pulling image %s", a->id, a->spec.image);
          agent__transition (sup, a, AGENT_ALLOC_PULLING);
          return;
        }
    }
  agent__transition (sup, a, AGENT_ALLOC_STARTING);
  rootfs = sup->deps.image_rootfs (sup->env.state_dir, a->spec.image, &err);
  if (rootfs == NULL)
    {
      agent__set_reason (a, "image %s: %s", a->spec.image, err.msg);
      agent__start_failed (sup, a);
      return;
    }
  /* A runtime with slow preparation (a microVM's disk) gets it off the loop. */
  if (a->rt->prepare != NULL && agent__queue_prepare (sup, a, NULL, rootfs))
    return;
  agent__launch_rootfs (sup, a, rootfs);
}

/* Starts a on its image's root filesystem (taken over). */
static void
agent__launch_rootfs (agent_sup_t *sup, agent_alloc_t *a, char *rootfs_owned)
{
  orch_err_t err = { 0 };
  cleanup_free char *rootfs = rootfs_owned;
  cleanup_free char *alloc_dir = NULL;
  cleanup_free char *log_path = NULL;
  rt_proc_t proc = { 0 };
  rt_alloc_t ra;
  int r;

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
  ra.ports = a->ports;
  ra.n_ports = a->n_ports;
  if (a->rt->start (&sup->env, &ra, &proc, &err) < 0)
    {
      agent__set_reason (a, "start: %s", err.msg);
      agent__start_failed (sup, a);
      return;
    }
  a->proc = proc;
  a->adopted = false;
  a->unhealthy_kill = false;
  a->health_failures = 0;
  a->started_at_ms = proc.started_ms > 0 ? proc.started_ms : orch_now_wall_ms ();
  a->finished_at_ms = 0;
  agent__save_record (sup, a, alloc_dir);
  agent__transition (sup, a, AGENT_ALLOC_RUNNING);
  agent_health_start (sup, a);
}

static void
agent__on_sigchld (uv_signal_t *h, int signum)
{
  agent_sup_reap (h->data);
}

static void agent__on_rotate_timer (uv_timer_t *t);

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
  sup->helper = "/proc/self/exe";
  sup->log_max_files = AGENT_DEFAULT_LOG_MAX_FILES;
  r = uv_signal_init (loop, &sup->sigchld);
  if (r < 0)
    return r;
  sup->sigchld.data = sup;
  r = uv_signal_start (&sup->sigchld, agent__on_sigchld, SIGCHLD);
  if (r < 0)
    {
      uv_close ((uv_handle_t *) &sup->sigchld, NULL);
      return r;
    }
  uv_idle_init (loop, &sup->starter);
  sup->starter.data = sup;
  uv_timer_init (loop, &sup->rotate_timer);
  sup->rotate_timer.data = sup;
  return 0;
}

void
agent_sup_close (agent_sup_t *sup)
{
  size_t i;

  if (sup->closing)
    return;
  sup->closing = true;
  uv_close ((uv_handle_t *) &sup->sigchld, NULL);
  uv_close ((uv_handle_t *) &sup->starter, NULL);
  uv_close ((uv_handle_t *) &sup->rotate_timer, NULL);
  for (i = 0; i < sup->n_allocs; i++)
    agent__close_alloc (sup->allocs[i]);
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

/* Adds an allocation to the table in state pending, with its spec parsed
 * and its runtime looked up. Returns it, NULL when it was already known (or
 * -1 semantics through err when the request is unusable: *refused). When
 * the spec or the runtime is unusable it is left failed (ready is false). */
static agent_alloc_t *
agent__add (agent_sup_t *sup, const agent_alloc_req_t *req, bool *ready, orch_err_t *err, int *rc)
{
  orch_errlist_t errs = { 0 };
  agent_alloc_t *a;
  const char *iso;

  *ready = false;
  *rc = 0;
  if (sup->closing)
    {
      *rc = orch_err_set (err, ESHUTDOWN, "the agent is shutting down");
      return NULL;
    }
  if (req->alloc_id == NULL || !orch_is_dns_label (req->alloc_id))
    {
      /* The id names a directory and a cgroup: anything else could escape them. */
      *rc = orch_err_set (err, EINVAL, "allocation id \"%s\" is not a DNS label",
                          req->alloc_id ? req->alloc_id : "");
      return NULL;
    }
  if (agent_sup_find (sup, req->alloc_id) != NULL)
    {
      orch_debug ("alloc %s: already known, start ignored", req->alloc_id);
      return NULL;
    }
  if (sup->n_allocs >= AGENT_MAX_ALLOCS)
    {
      *rc = orch_err_set (err, ENOSPC,
                          "allocation %s refused: this node already has %d allocations",
                          req->alloc_id, AGENT_MAX_ALLOCS);
      return NULL;
    }
  if (req->n_ports > AGENT_RECORD_MAX_PORTS)
    {
      *rc = orch_err_set (err, E2BIG, "allocation %s refused: more than %d ports", req->alloc_id,
                          AGENT_RECORD_MAX_PORTS);
      return NULL;
    }

  a = xcalloc (1, sizeof (*a));
  a->sup = sup;
  a->id = xstrdup (req->alloc_id);
  a->service = xstrdup (req->service ? req->service : "");
  a->isolation = xstrdup (req->isolation ? req->isolation : "");
  a->spec_json = xstrdup (req->spec_json ? req->spec_json : "");
  a->spec_version = req->spec_version;
  if (req->n_ports > 0)
    {
      a->ports = xcalloc (req->n_ports, sizeof (*a->ports));
      memcpy (a->ports, req->ports, req->n_ports * sizeof (*a->ports));
      a->n_ports = req->n_ports;
    }
  a->reason = xstrdup ("");
  a->health_status = "";
  a->pidfd = -1;
  a->state = AGENT_ALLOC_PENDING;
  uv_timer_init (sup->loop, &a->timer);
  a->timer.data = a;
  a->handles = 1;
  orch_grow ((void **) &sup->allocs, &sup->cap_allocs, sup->n_allocs + 1, sizeof (a));
  sup->allocs[sup->n_allocs++] = a;

  if (orch_spec_parse_one (a->spec_json, &a->spec, &errs) < 0)
    {
      cleanup_free char *why = agent__join_errors (&errs);
      orch_errlist_free (&errs);
      memset (&a->spec, 0, sizeof (a->spec));
      agent__set_reason (a, "invalid spec: %s", why);
      return a;
    }
  orch_errlist_free (&errs);
  a->spec_ok = true;

  iso = *a->isolation ? a->isolation : orch_isolation_name (a->spec.isolation);
  a->rt = sup->deps.lookup (sup->deps.ctx, iso);
  if (a->rt == NULL)
    {
      agent__set_reason (a, "no %s runtime on this node", iso);
      return a;
    }
  *ready = true;
  return a;
}

/* A request that cannot run at all: failed with the reason agent__add left. */
static void
agent__refuse (agent_sup_t *sup, agent_alloc_t *a)
{
  a->finished_at_ms = orch_now_wall_ms ();
  agent__transition (sup, a, AGENT_ALLOC_FAILED);
}

int
agent_sup_start (agent_sup_t *sup, const agent_alloc_req_t *req, orch_err_t *err)
{
  agent_alloc_t *a;
  bool ready;
  int rc;

  a = agent__add (sup, req, &ready, err, &rc);
  if (a == NULL)
    return rc;
  orch_info ("alloc %s: received (service %s, spec version %llu)", a->id, a->service,
             (unsigned long long) a->spec_version);
  agent__transition (sup, a, AGENT_ALLOC_PENDING);
  if (!ready)
    agent__refuse (sup, a);
  else
    agent__launch (sup, a);
  return 0;
}

/* Starts up to AGENT_START_CHUNK queued allocations per loop iteration, so
 * that a DesiredAllocs of hundreds (a node registering) lets heartbeats and
 * the session's I/O through between chunks: the idle handle makes the loop
 * poll without blocking while work remains. */
static void
agent__on_starter (uv_idle_t *h)
{
  agent_sup_t *sup = h->data;
  cleanup_free agent_alloc_t **batch = NULL;
  size_t i, n = 0;

  batch = xmalloc (AGENT_START_CHUNK * sizeof (*batch));
  for (i = 0; i < sup->n_allocs && n < AGENT_START_CHUNK; i++)
    if (sup->allocs[i]->queued)
      batch[n++] = sup->allocs[i];
  if (n < AGENT_START_CHUNK)
    {
      uv_idle_stop (&sup->starter);
      sup->starter_active = false;
    }
  for (i = 0; i < n; i++)
    {
      agent_alloc_t *a = batch[i];
      /* Launching one can only change the others' state through events:
       * each is checked again here. */
      if (!a->queued || a->forgotten || sup->closing)
        continue;
      a->queued = false;
      agent__launch (sup, a);
    }
}

/* Like agent_sup_start, but the launch waits for the starter. */
static int
agent__start_queued (agent_sup_t *sup, const agent_alloc_req_t *req, orch_err_t *err)
{
  agent_alloc_t *a;
  bool ready;
  int rc;

  a = agent__add (sup, req, &ready, err, &rc);
  if (a == NULL)
    return rc;
  orch_info ("alloc %s: received (service %s, spec version %llu)", a->id, a->service,
             (unsigned long long) a->spec_version);
  agent__transition (sup, a, AGENT_ALLOC_PENDING);
  if (!ready)
    {
      agent__refuse (sup, a);
      return 0;
    }
  a->queued = true;
  if (!sup->starter_active)
    {
      uv_idle_start (&sup->starter, agent__on_starter);
      sup->starter_active = true;
    }
  return 0;
}

/* SIGTERM now, SIGKILL after grace_ms (the kill timer). */
static void
agent__terminate (agent_sup_t *sup, agent_alloc_t *a, int64_t grace_ms)
{
  orch_err_t err = { 0 };

  uv_timer_stop (&a->timer);
  a->grace_ms = grace_ms;
  /* A kill that fails (the process is already gone) changes nothing: the
   * reaper sees the exit and finishes the stop. */
  if (a->rt->kill (&sup->env, a->id, &a->proc, SIGTERM, &err) < 0)
    orch_debug ("alloc %s: SIGTERM: %s", a->id, err.msg);
  a->timer_kind = AGENT_TIMER_KILL;
  uv_timer_start (&a->timer, agent__on_timer, (uint64_t) grace_ms, 0);
}

static int64_t
agent__grace (const agent_alloc_t *a, int64_t grace_ms)
{
  if (grace_ms > 0)
    return grace_ms;
  return a->spec_ok && a->spec.stop_grace_ms > 0 ? a->spec.stop_grace_ms : AGENT_DEFAULT_GRACE_MS;
}

int
agent_sup_stop (agent_sup_t *sup, const char *id, int64_t grace_ms)
{
  agent_alloc_t *a = agent_sup_find (sup, id);

  if (a == NULL)
    return -1;
  if (a->stopping)
    return 0;
  a->stopping = true;
  a->queued = false;
  uv_timer_stop (&a->timer);
  a->timer_kind = AGENT_TIMER_NONE;
  agent_health_stop (a);
  agent__pull_abandon (a);
  /* Ended, and being cleaned up: the cleanup's end finishes the stop. */
  if (a->cleanup != NULL)
    return 0;

  if (a->state == AGENT_ALLOC_RUNNING && a->proc.pid > 0)
    {
      grace_ms = agent__grace (a, grace_ms);
      orch_info ("alloc %s: stopping (SIGTERM, SIGKILL after %lld ms)", a->id,
                 (long long) grace_ms);
      agent__terminate (sup, a, grace_ms);
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
      if (agent__start_queued (sup, &reqs[to_start[i]], &err) < 0)
        orch_warn ("desired allocation refused: %s", err.msg);
    }
}

/* The signal's name for reasons: "killed by SIGTERM". */
static void
agent__reason_signal (agent_alloc_t *a, int sig)
{
  const char *abbrev = sigabbrev_np (sig);

  if (abbrev != NULL)
    agent__set_reason (a, "killed by SIG%s", abbrev);
  else
    agent__set_reason (a, "killed by signal %d", sig);
}

/* How the workload ended, from the record its init leaves in the
 * allocation's directory (rt_exit_record_read). The wait status only says
 * how the init ended: the record tells a workload killed by a signal from one
 * that exited with 128+N, and names a command that could not be run at all.
 * Returns 1 when a record was read (a->exit_code and a->reason set, *exec_failed
 * when the command could not be executed), 0 when there is none. */
static int
agent__read_exit_record (agent_sup_t *sup, agent_alloc_t *a, bool *exec_failed)
{
  cleanup_free char *dir = xasprintf ("%s/allocs/%s", sup->env.state_dir, a->id);
  cleanup_free char *reason = NULL;
  orch_err_t err = { 0 };
  int code = 0, r;

  *exec_failed = false;
  r = rt_exit_record_read (dir, &code, &reason, &err);
  if (r < 0)
    orch_warn ("alloc %s: %s", a->id, err.msg);
  if (r <= 0)
    return 0;
  a->exit_code = code;
  agent__set_reason (a, "%s", reason);
  *exec_failed = strncmp (reason, "failed exec ", 12) == 0;
  return 1;
}

/* What follows the cleanup of an ended workload: the state it ends in and
 * the restart policy. */
static void
agent__finish_end (agent_sup_t *sup, agent_alloc_t *a, bool oom, bool exec_failed)
{
  bool failed;

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
  if (oom || exec_failed || a->unhealthy_kill)
    {
      if (oom)
        agent__set_reason (a, "oom-killed");
      else if (a->unhealthy_kill)
        agent__set_reason (a, "unhealthy: failed %u health checks in a row (last: %s)%s",
                           a->health_failures, a->health_why,
                           a->killed ? "; SIGKILL after the grace" : "");
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

/* A runtime's cleanup of one allocation (its cgroup, network, overlay),
 * run in the thread pool: removing a cgroup waits for its last task and
 * detaching from the bridge takes netlink and nftables round trips, tens
 * of milliseconds that the loop, with hundreds of workloads, cannot spare. */
typedef struct agent_cleanup_s
{
  uv_work_t work;
  agent_sup_t *sup;
  const rt_ops_t *rt;
  char *alloc_id;
  bool oom;
  bool exec_failed;
  orch_err_t err;
  int status;
} agent_cleanup_t;

static void
agent__cleanup_work (uv_work_t *w)
{
  agent_cleanup_t *c = w->data;
  c->status = c->rt->cleanup (&c->sup->env, c->alloc_id, &c->err);
}

static void
agent__cleanup_done (uv_work_t *w, int status)
{
  agent_cleanup_t *c = w->data;
  agent_sup_t *sup = c->sup;
  agent_alloc_t *a;

  if (status == 0 && c->status < 0)
    orch_warn ("alloc %s: cleanup: %s", c->alloc_id, c->err.msg);
  a = sup->closing ? NULL : agent_sup_find (sup, c->alloc_id);
  if (a != NULL && a->cleanup == c)
    {
      a->cleanup = NULL;
      agent__finish_end (sup, a, c->oom, c->exec_failed);
    }
  free (c->alloc_id);
  free (c);
}

/* The common end of a workload, whoever saw it: usage and OOM, then the
 * cleanup (in the thread pool when it can be queued), then
 * agent__finish_end. a->exit_code and a->reason are set. */
static void
agent__ended (agent_sup_t *sup, agent_alloc_t *a, bool exec_failed)
{
  orch_err_t err = { 0 };
  cg_usage_t u = { 0 };
  agent_cleanup_t *c;
  bool oom = false;

  if (a->rt->usage (&sup->env, a->id, &u, &err) == 0)
    {
      oom = u.oom_kills > 0;
      a->usage = u;
    }
  c = xcalloc (1, sizeof (*c));
  c->sup = sup;
  c->rt = a->rt;
  c->alloc_id = xstrdup (a->id);
  c->oom = oom;
  c->exec_failed = exec_failed;
  c->work.data = c;
  if (uv_queue_work (sup->loop, &c->work, agent__cleanup_work, agent__cleanup_done) == 0)
    {
      a->cleanup = c;
      return;
    }
  free (c->alloc_id);
  free (c);
  orch_err_clear (&err);
  if (a->rt->cleanup (&sup->env, a->id, &err) < 0)
    orch_warn ("alloc %s: cleanup: %s", a->id, err.msg);
  agent__finish_end (sup, a, oom, exec_failed);
}

/* Bookkeeping common to both ways of seeing an end. */
static void
agent__mark_ended (agent_alloc_t *a)
{
  agent_health_stop (a);
  agent__unwatch (a);
  a->adopted = false;
  a->proc.pid = 0;
  a->finished_at_ms = orch_now_wall_ms ();
  uv_timer_stop (&a->timer);
  a->timer_kind = AGENT_TIMER_NONE;
  agent__set_reason (a, "%s", "");
}

void
agent_sup_handle_exit (agent_sup_t *sup, agent_alloc_t *a, int wstatus)
{
  bool exec_failed = false;

  agent__mark_ended (a);
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
      agent__reason_signal (a, WTERMSIG (wstatus));
    }
  else
    a->exit_code = 255;
  /* Read before cleanup, which removes the record. A runtime that writes
   * none leaves the wait status alone. */
  agent__read_exit_record (sup, a, &exec_failed);
  agent__ended (sup, a, exec_failed);
}

/* An adopted workload ended: it is not our child, so its exit code comes
 * from the exit record alone. */
static void
agent__adopted_exit (agent_sup_t *sup, agent_alloc_t *a)
{
  bool exec_failed = false;

  agent__mark_ended (a);
  if (!agent__read_exit_record (sup, a, &exec_failed))
    {
      /* The init itself was killed (SIGKILL leaves no record). */
      a->exit_code = 255;
      agent__set_reason (a, "the workload's init ended without an exit record");
    }
  agent__ended (sup, a, exec_failed);
}

static void
agent__on_pidfd (uv_poll_t *h, int status, int events)
{
  agent_alloc_t *a = h->data;

  if (a->forgotten || a->sup->closing)
    return;
  orch_debug ("alloc %s: adopted pid %ld ended (poll status %d)", a->id, (long) a->proc.pid,
              status);
  agent__adopted_exit (a->sup, a);
}

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

/* Watches pid, which is not our child, through a pidfd (Linux >= 5.3): it
 * becomes readable when the process exits. 0 or a negative errno (the
 * process is already gone: -ESRCH). */
static int
agent__watch (agent_sup_t *sup, agent_alloc_t *a)
{
  int fd, r;

  fd = (int) syscall (SYS_pidfd_open, a->proc.pid, 0);
  if (fd < 0)
    return -errno;
  r = uv_poll_init (sup->loop, &a->pidfd_poll, fd);
  if (r < 0)
    {
      close (fd);
      return r;
    }
  a->pidfd = fd;
  a->pidfd_poll.data = a;
  a->poll_inited = true;
  a->handles++;
  r = uv_poll_start (&a->pidfd_poll, UV_READABLE, agent__on_pidfd);
  if (r < 0)
    {
      agent__unwatch (a);
      return r;
    }
  return 0;
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
      /* Adopted workloads are not our children: their pidfd says when, or
       * without one (old kernels), whether the pid still exists. */
      if (a->adopted)
        {
          if (!a->poll_inited && kill (a->proc.pid, 0) < 0 && errno == ESRCH)
            {
              done[n_done] = a;
              status[n_done++] = -2;
            }
          continue;
        }
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
    if (status[i] == -2)
      agent__adopted_exit (sup, done[i]);
    else
      agent_sup_handle_exit (sup, done[i], status[i]);
}

/* ---- Re-adoption ---------------------------------------------------------- */

/* Clears a directory that cannot be re-adopted: anything still running in
 * its cgroup is killed by the runtime's cleanup, the cgroup destroyed and
 * the directory removed, so that what the agent registers is all there is. */
static bool
agent__clear_leftover (agent_sup_t *sup, const char *id, const char *path)
{
  const rt_ops_t *rt = rt_lookup ("container");
  orch_err_t err = { 0 };
  bool ok = true;
  int r;

  if (rt != NULL && rt->cleanup (&sup->env, id, &err) < 0)
    {
      orch_warn ("alloc %s (previous run): cleanup: %s", id, err.msg);
      ok = false;
    }
  orch_err_clear (&err);
  if (sup->env.cg != NULL && sup->env.cg->ops->destroy (sup->env.cg, id, &err) < 0)
    {
      orch_warn ("alloc %s (previous run): destroy cgroup: %s", id, err.msg);
      ok = false;
    }
  r = orch_rm_rf (path);
  if (r < 0)
    {
      orch_warn ("alloc %s (previous run): remove %s: %s", id, path, strerror (-r));
      ok = false;
    }
  return ok;
}

/* Re-adopts the allocation in dir from its record. 1 running, 0 ended, -1
 * with err when it cannot be re-adopted (the caller clears it). */
static int
agent__adopt_one (agent_sup_t *sup, const char *id, const char *dir, orch_err_t *err)
{
  agent_record_t rec;
  agent_alloc_req_t req;
  agent_alloc_t *a;
  rt_proc_t proc = { 0 };
  bool ready, exec_failed;
  int r, rc;

  r = agent_record_read (dir, &rec, err);
  if (r < 0)
    return -1;
  if (r == 0)
    return orch_err_set (err, ENOENT, "no %s (written by agents since re-adoption exists)",
                         AGENT_RECORD_FILE);
  if (strcmp (rec.alloc_id, id) != 0)
    {
      orch_err_set (err, EINVAL, "its record names allocation %s", rec.alloc_id);
      agent_record_clear (&rec);
      return -1;
    }
  req.alloc_id = rec.alloc_id;
  req.service = rec.service;
  req.isolation = rec.isolation;
  req.spec_json = rec.spec_json;
  req.spec_version = rec.spec_version;
  req.ports = rec.ports;
  req.n_ports = rec.n_ports;
  a = agent__add (sup, &req, &ready, err, &rc);
  if (a == NULL)
    {
      if (rc == 0)
        orch_err_set (err, EEXIST, "already in the table");
      agent_record_clear (&rec);
      return -1;
    }
  a->restarts = rec.restarts;
  a->started_at_ms = rec.started_at_ms;
  agent_record_clear (&rec);
  if (!ready || a->rt->adopt == NULL)
    {
      if (ready)
        orch_err_set (err, ENOTSUP, "runtime %s cannot re-adopt", a->rt->name);
      else
        orch_err_set (err, EINVAL, "%s", a->reason);
      /* Out of the table again, without an event: it was never reported. */
      sup->n_allocs--;
      agent__close_alloc (a);
      return -1;
    }

  r = a->rt->adopt (&sup->env, a->id, dir, &proc, err);
  if (r < 0)
    {
      sup->n_allocs--;
      agent__close_alloc (a);
      return -1;
    }
  if (r == 1)
    {
      a->proc = proc;
      a->adopted = true;
      a->state = AGENT_ALLOC_RUNNING;
      rc = agent__watch (sup, a);
      if (rc == -ENOSYS)
        {
          /* A kernel before 5.3: no pidfd. The reaper's sweep (SIGCHLD and
           * every heartbeat) checks that the pid still exists instead. */
          orch_warn ("alloc %s: no pidfd_open on this kernel: its end is noticed at the next "
                     "heartbeat, without an exit code if its init is killed",
                     a->id);
          rc = 0;
        }
      if (rc == 0)
        {
          orch_info ("alloc %s: re-adopted, running (pid %ld, %u restarts, started at %lld)", a->id,
                     (long) a->proc.pid, a->restarts, (long long) a->started_at_ms);
          agent__sup_emit (sup, a);
          agent_health_start (sup, a);
          return 1;
        }
      /* Gone between adopt and pidfd_open: it ended; read how below. */
      orch_debug ("alloc %s: pidfd_open(%ld): %s", a->id, (long) a->proc.pid, strerror (-rc));
    }

  /* It ended while the agent was away: report it as it ended, and leave
   * what to do to the scheduler (which replaces a finished allocation). */
  a->proc.pid = 0;
  a->adopted = false;
  a->finished_at_ms = orch_now_wall_ms ();
  {
    cleanup_free char *exit_path = xasprintf ("%s/exit", dir);
    struct stat st;
    if (stat (exit_path, &st) == 0)
      a->finished_at_ms = (int64_t) st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
  }
  if (!agent__read_exit_record (sup, a, &exec_failed))
    {
      a->exit_code = 255;
      agent__set_reason (a, "ended while the agent was down, without an exit record");
      exec_failed = true; /* nothing says it succeeded */
    }
  orch_err_clear (err);
  if (a->rt->cleanup (&sup->env, a->id, err) < 0)
    orch_warn ("alloc %s: cleanup: %s", a->id, err->msg);
  /* As for an end seen live: exited with its code, failed when the command
   * never ran or nothing says how it ended. */
  a->state = exec_failed ? AGENT_ALLOC_FAILED : AGENT_ALLOC_EXITED;
  orch_info ("alloc %s: re-adopted as %s: it ended while the agent was down (code %d%s%s)", a->id,
             agent_alloc_state_name (a->state), a->exit_code, *a->reason ? ", " : "", a->reason);
  agent__sup_emit (sup, a);
  return 0;
}

void
agent_sup_adopt_all (agent_sup_t *sup)
{
  cleanup_free char *dir = xasprintf ("%s/allocs", sup->env.state_dir);
  size_t running = 0, ended = 0, cleared = 0, failed = 0;
  struct dirent *de;
  DIR *d;

  d = opendir (dir);
  if (d == NULL)
    {
      if (errno != ENOENT)
        orch_warn ("cannot read %s: %s", dir, strerror (errno));
      return;
    }
  while ((de = readdir (d)) != NULL)
    {
      cleanup_free char *path = NULL;
      orch_err_t err = { 0 };
      struct stat st;
      int r;

      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      path = xasprintf ("%s/%s", dir, de->d_name);
      if (lstat (path, &st) < 0 || !S_ISDIR (st.st_mode))
        continue;
      if (!orch_is_dns_label (de->d_name))
        {
          orch_warn ("leaving %s alone: not an allocation directory", path);
          continue;
        }
      r = agent__adopt_one (sup, de->d_name, path, &err);
      if (r == 1)
        running++;
      else if (r == 0)
        ended++;
      else
        {
          orch_warn ("alloc %s (previous run): cannot re-adopt: %s; stopping and removing it",
                     de->d_name, err.msg);
          if (agent__clear_leftover (sup, de->d_name, path))
            cleared++;
          else
            failed++;
        }
    }
  closedir (d);
  if (running + ended + cleared + failed > 0)
    orch_info ("previous run: re-adopted %zu running and %zu ended allocation(s), cleared %zu "
               "that could not be re-adopted%s",
               running, ended, cleared, failed ? "; some could not be cleared, see above" : "");
}

/* ---- Health --------------------------------------------------------------- */

void
agent_sup_health_result (agent_sup_t *sup, agent_alloc_t *a, bool ok, const char *why)
{
  uint32_t threshold;

  if (a->forgotten || a->stopping || a->state != AGENT_ALLOC_RUNNING || a->unhealthy_kill)
    return;
  if (ok)
    {
      a->health_failures = 0;
      if (strcmp (a->health_status, "healthy") != 0)
        {
          a->health_status = "healthy";
          orch_info ("alloc %s: healthy", a->id);
          agent__sup_emit (sup, a);
        }
      return;
    }
  a->health_failures++;
  snprintf (a->health_why, sizeof (a->health_why), "%s", why);
  threshold = a->spec.health.failure_threshold > 0 ? a->spec.health.failure_threshold : 1;
  orch_debug ("alloc %s: health check failed (%u of %u): %s", a->id, a->health_failures, threshold,
              why);
  if (a->health_failures < threshold)
    return;
  orch_warn ("alloc %s: unhealthy: %u health checks failed in a row, last: %s; restarting it",
             a->id, a->health_failures, why);
  a->health_status = "unhealthy";
  agent__sup_emit (sup, a);
  /* Stopped like a stop (SIGTERM, grace, SIGKILL); its end is a failure, so
   * the restart policy restarts it and counts it. */
  a->unhealthy_kill = true;
  agent_health_stop (a);
  agent__terminate (sup, a, agent__grace (a, 0));
}

/* ---- Log rotation --------------------------------------------------------- */

typedef struct agent__rotate_s
{
  uv_work_t req;
  agent_sup_t *sup;
  char **paths;
  size_t n;
  uint64_t max_size;
  int max_files;
  size_t rotated;
} agent__rotate_t;

static void
agent__rotate_work (uv_work_t *req)
{
  agent__rotate_t *w = req->data;
  size_t i;

  for (i = 0; i < w->n; i++)
    if (agent_logs_rotate (w->paths[i], w->max_size, w->max_files) > 0)
      w->rotated++;
}

static void
agent__rotate_done (uv_work_t *req, int status)
{
  agent__rotate_t *w = req->data;
  size_t i;

  if (w->rotated > 0)
    orch_debug ("rotated %zu allocation log(s)", w->rotated);
  for (i = 0; i < w->n; i++)
    free (w->paths[i]);
  free (w->paths);
  /* The supervisor may be closing; its memory outlives the loop. */
  w->sup->rotate_busy = false;
  free (w);
}

static void
agent__on_rotate_timer (uv_timer_t *t)
{
  agent_sup_t *sup = t->data;
  agent__rotate_t *w;
  size_t i;

  if (sup->rotate_busy || sup->n_allocs == 0 || sup->closing)
    return;
  w = xcalloc (1, sizeof (*w));
  w->sup = sup;
  w->max_size = sup->log_max_size;
  w->max_files = sup->log_max_files;
  w->paths = xcalloc (sup->n_allocs, sizeof (char *));
  /* Every allocation in the table may still be written to (an ended one by
   * nothing, but a check of a small file costs one stat). */
  for (i = 0; i < sup->n_allocs; i++)
    w->paths[w->n++] = xasprintf ("%s/allocs/%s/log", sup->env.state_dir, sup->allocs[i]->id);
  w->req.data = w;
  if (uv_queue_work (sup->loop, &w->req, agent__rotate_work, agent__rotate_done) < 0)
    {
      for (i = 0; i < w->n; i++)
        free (w->paths[i]);
      free (w->paths);
      free (w);
      return;
    }
  sup->rotate_busy = true;
}

void
agent_sup_set_log_limits (agent_sup_t *sup, uint64_t max_size, int max_files)
{
  sup->log_max_size = max_size;
  sup->log_max_files = max_files > 0 ? max_files : 1;
  uv_timer_stop (&sup->rotate_timer);
  if (max_size > 0 && !sup->closing)
    uv_timer_start (&sup->rotate_timer, agent__on_rotate_timer, AGENT_LOGS_ROTATE_EVERY_MS,
                    AGENT_LOGS_ROTATE_EVERY_MS);
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

      if (a->state != AGENT_ALLOC_RUNNING || a->rt == NULL || a->cleanup != NULL)
        continue;
      if (a->rt->usage (&sup->env, a->id, &u, &err) == 0)
        a->usage = u;
    }
}
