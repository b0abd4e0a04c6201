/* Builds the agent (cgroups, network, runtimes, supervisor, session),
 * handles the stop signals, and re-adopts what a previous run left running. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent_internal.h"
#include "image.h"
#include "orch_log.h"
#include "orch_quantity.h"
#include "orch_util.h"

/* The runtimes the agent knows by name; only those whose probe succeeded
 * are offered to the scheduler and used. */
static const char *const agent__runtime_names[] = { "container", "microvm" };

/* The supervisor's lookup: a runtime by isolation name, only if it probed
 * fine on this host. */
static const rt_ops_t *
agent__lookup_runtime (void *ctx, const char *isolation)
{
  agent_t *a = ctx;
  size_t i;

  for (i = 0; i < a->n_runtimes; i++)
    if (strcmp (a->runtimes[i], isolation) == 0)
      return rt_lookup (isolation);
  return NULL;
}

static void
agent__on_alloc_event (void *ctx, const agent_alloc_t *al)
{
  agent_session_alloc_event (ctx, al);
}

static void
agent__on_stop_signal (uv_signal_t *h, int signum)
{
  agent_shutdown (h->data, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* The node's bridge network (net.h). Without it (no permission, nftables
 * missing) the agent still runs workloads: host networking works, and a
 * bridged workload gets a network namespace with only lo. */
static void
agent__net_setup (agent_t *a)
{
  net_config_t nc = {
    .state_dir = a->cfg->state_dir,
    .bridge = a->cfg->bridge,
    .subnet = a->cfg->bridge_subnet ? a->cfg->bridge_subnet : AGENT_DEFAULT_BRIDGE_SUBNET,
  };
  orch_err_t err = { 0 };

  if (a->cfg->bridge == NULL)
    {
      orch_info ("node network: none (--bridge none): workloads get no bridge address");
      return;
    }
  a->net = net_new (&nc, &err);
  if (a->net == NULL)
    {
      orch_warn ("node network (bridge %s, subnet %s) unavailable, workloads get no bridge "
                 "address and no published ports: %s",
                 nc.bridge, nc.subnet, err.msg);
      return;
    }
  a->sup.env.net = a->net;
  orch_info ("node network: bridge %s, subnet %s", nc.bridge, nc.subnet);
}

static void
agent__probe_runtimes (agent_t *a)
{
  size_t i;

  for (i = 0; i < ORCH_ARRAY_LEN (agent__runtime_names); i++)
    {
      const rt_ops_t *rt = rt_lookup (agent__runtime_names[i]);
      orch_err_t err = { 0 };

      if (rt == NULL)
        continue;
      if (rt->probe (&a->sup.env, &err) < 0)
        {
          orch_warn ("runtime %s is not available on this node: %s", rt->name, err.msg);
          continue;
        }
      a->runtimes = xrealloc (a->runtimes, (a->n_runtimes + 1) * sizeof (char *));
      a->runtimes[a->n_runtimes++] = xstrdup (agent__runtime_names[i]);
    }
  if (a->n_runtimes == 0)
    orch_warn ("no runtime is available on this node: it will accept no allocation");
}

/* Pulls for the supervisor (in the thread pool, through orch-image): the
 * image if missing, with the registry this node may speak plain http to. */
static int
agent__image_ensure (void *ctx, const char *state_dir, const char *ref, const volatile int *cancel,
                     char **rootfs, orch_err_t *err)
{
  agent_t *a = ctx;
  return agent_image_pull (state_dir, ref, a->cfg->insecure_registry, cancel, rootfs, err);
}

/* ---- Image GC ------------------------------------------------------------ */

typedef struct agent_gc_s
{
  uv_work_t work;
  agent_t *agent;
  char **in_use; /* images of every allocation the node holds */
  size_t n_in_use;
  orch_err_t err;
  int status;
} agent_gc_t;

static void
agent__gc_work (uv_work_t *w)
{
  agent_gc_t *g = w->data;
  g->status = agent_image_gc (g->agent->cfg->state_dir, g->agent->cfg->image_budget,
                              (const char *const *) g->in_use, g->n_in_use, &g->err);
}

static void
agent__gc_done (uv_work_t *w, int status)
{
  agent_gc_t *g = w->data;
  g->agent->gc_busy = false;
  if (status == 0 && g->status < 0 && g->err.code != EAGAIN)
    orch_warn ("image garbage collection: %s", g->err.msg);
  for (size_t i = 0; i < g->n_in_use; i++)
    free (g->in_use[i]);
  free (g->in_use);
  free (g);
}

static void
agent__on_gc_timer (uv_timer_t *t)
{
  agent_t *a = t->data;
  if (a->gc_busy || a->shutting_down)
    return;
  agent_gc_t *g = xcalloc (1, sizeof *g);
  g->agent = a;
  g->in_use = xcalloc (a->sup.n_allocs + 1, sizeof (char *));
  for (size_t i = 0; i < a->sup.n_allocs; i++)
    if (a->sup.allocs[i]->spec_ok)
      g->in_use[g->n_in_use++] = xstrdup (a->sup.allocs[i]->spec.image);
  g->work.data = g;
  if (uv_queue_work (a->loop, &g->work, agent__gc_work, agent__gc_done) == 0)
    a->gc_busy = true;
  else
    agent__gc_done (&g->work, 0);
}

agent_t *
agent_new (uv_loop_t *loop, const agent_config_t *cfg, orch_err_t *err)
{
  agent_sup_deps_t deps = {
    .lookup = agent__lookup_runtime,
    .image_rootfs = image_rootfs,
    .image_present = image_present,
    .image_ensure = agent__image_ensure,
  };
  cleanup_free char *allocs_dir = NULL;
  char cpu_buf[32], mem_buf[32];
  int64_t cap_cpu, cap_mem;
  cg_limits_t parent = { 0 };
  orch_err_t lerr = { 0 };
  agent_t *a;
  size_t i;
  int r;

  /* The microvm runtime finds its kernels through the environment (so that
   * tests and tools share one way); set it before the runtimes are probed,
   * while the agent still has one thread. */
  if (cfg->guest_kernel_dir)
    setenv ("ORCH_GUEST_KERNEL_DIR", cfg->guest_kernel_dir, 1);

  a = xcalloc (1, sizeof (*a));
  deps.ctx = a;
  a->loop = loop;
  a->cfg = cfg;

  allocs_dir = xasprintf ("%s/allocs", cfg->state_dir);
  r = orch_mkdir_p (allocs_dir, 0700);
  if (r < 0)
    {
      orch_err_set (err, -r, "cannot create %s: %s", allocs_dir, strerror (-r));
      free (a);
      return NULL;
    }

  a->cg = cg_manager_new (cfg->cgroup_parent, err);
  if (a->cg == NULL)
    {
      orch_err_wrap (err, "cgroup parent %s", cfg->cgroup_parent);
      free (a);
      return NULL;
    }

  a->host_cpus = agent_node_host_cpus ();
  r = agent_node_host_memory (&a->host_memory);
  if (r < 0)
    {
      orch_warn ("cannot read the host's memory from /proc/meminfo: %s", strerror (-r));
      a->host_memory = 0;
    }

  r = agent_sup_init (&a->sup, loop, cfg->state_dir, a->cg, &deps, agent__on_alloc_event, a);
  if (r < 0)
    {
      orch_err_set (err, -r, "cannot watch SIGCHLD: %s", uv_strerror (r));
      cg_manager_free (a->cg);
      free (a);
      return NULL;
    }
  a->sup_ready = true;

  agent__net_setup (a);
  agent__probe_runtimes (a);
  agent_sup_set_log_limits (&a->sup, (uint64_t) cfg->log_max_size, (int) cfg->log_max_files);
  /* Before the session starts: the first NodeRegister carries them. */
  agent_sup_adopt_all (&a->sup);

  uv_timer_init (loop, &a->retry_timer);
  uv_timer_init (loop, &a->hello_timer);
  uv_timer_init (loop, &a->heartbeat_timer);
  uv_timer_init (loop, &a->gc_timer);
  a->gc_timer.data = a;
  if (cfg->image_budget > 0)
    uv_timer_start (&a->gc_timer, agent__on_gc_timer, (uint64_t) cfg->image_gc_interval_ms,
                    (uint64_t) cfg->image_gc_interval_ms);
  uv_signal_init (loop, &a->sigterm);
  uv_signal_init (loop, &a->sigint);
  a->sigterm.data = a;
  a->sigint.data = a;
  uv_signal_start (&a->sigterm, agent__on_stop_signal, SIGTERM);
  uv_signal_start (&a->sigint, agent__on_stop_signal, SIGINT);

  /* Jitter for reconnects differs between agents started together. */
  srandom ((unsigned) (time (NULL) ^ (getpid () << 16)));

  if (a->cg->ops->parent_limits (a->cg, &parent, &lerr) < 0)
    memset (&parent, 0, sizeof (parent));
  agent_node_capacity (&parent, a->host_cpus, a->host_memory, cfg->reserve_cpu_milli,
                       cfg->reserve_memory_bytes, &cap_cpu, &cap_mem);
  {
    char rts[64] = "";
    for (i = 0; i < a->n_runtimes; i++)
      snprintf (rts + strlen (rts), sizeof (rts) - strlen (rts), "%s%s", i ? "," : "",
                a->runtimes[i]);
    orch_info ("orch-agent %s starting: node %s, state %s, cgroup %s (%s), capacity cpu %s "
               "memory %s (%s), runtimes: %s",
               ORCH_AGENT_VERSION, cfg->node_id, cfg->state_dir, cfg->cgroup_parent,
               a->cg->ops->name, orch_fmt_cpu (cap_cpu, cpu_buf, sizeof (cpu_buf)),
               orch_fmt_memory (cap_mem, mem_buf, sizeof (mem_buf)),
               parent.cpu_milli > 0 || parent.memory_bytes > 0 ? "cgroup limits" : "host totals",
               a->n_runtimes ? rts : "none");
  }

  agent_session_start (a);
  return a;
}

int
agent_run (agent_t *a)
{
  uv_run (a->loop, UV_RUN_DEFAULT);
  return 0;
}

void
agent_shutdown (agent_t *a, const char *why)
{
  size_t i, running = 0;

  if (a->shutting_down)
    return;
  a->shutting_down = true;
  for (i = 0; i < a->sup.n_allocs; i++)
    running += a->sup.allocs[i]->state == AGENT_ALLOC_RUNNING;
  orch_info ("%s: shutting down; %zu workload(s) keep running", why ? why : "stop requested",
             running);
  agent_session_stop (a);
  uv_close ((uv_handle_t *) &a->retry_timer, NULL);
  uv_close ((uv_handle_t *) &a->hello_timer, NULL);
  uv_close ((uv_handle_t *) &a->heartbeat_timer, NULL);
  uv_close ((uv_handle_t *) &a->gc_timer, NULL);
  uv_close ((uv_handle_t *) &a->sigterm, NULL);
  uv_close ((uv_handle_t *) &a->sigint, NULL);
  if (a->sup_ready)
    agent_sup_close (&a->sup);
}

void
agent_free (agent_t *a)
{
  size_t i;

  if (a == NULL)
    return;
  for (i = 0; i < a->n_runtimes; i++)
    free (a->runtimes[i]);
  free (a->runtimes);
  net_free (a->net);
  cg_manager_free (a->cg);
  free (a);
}
