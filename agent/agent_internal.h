/* Private parts of orch-agent, split so that each can be unit-tested alone:
 *
 *   agent_restart.c    restart policy and backoff decisions (pure)
 *   agent_reconcile.c  what a DesiredAllocs list means for the table (pure)
 *   agent_node.c       host totals and capacity (pure parsers + two reads)
 *   agent_logs.c       reading the tail of an allocation's log with uv_fs_*
 *   agent_sup.c        the allocation table and its state machine; talks to
 *                      the runtime through an rt_ops_t, so tests pass a fake
 *   agent_session.c    the scheduler session (wire_conn): hello, register,
 *                      heartbeat, dispatch, reconnect with backoff
 *   agent_daemon.c     builds everything, signals, leftovers of a previous run
 */
#ifndef ORCH_AGENT_INTERNAL_H
#define ORCH_AGENT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "agent.h"
#include "cg.h"
#include "orch_err.h"
#include "orch_spec.h"
#include "rt.h"

/* ---- Restart policy (agent_restart.c) ------------------------------------ */

#define AGENT_RESTART_MAX_BACKOFF_MS (5 * 60 * 1000)
#define AGENT_RESTART_MIN_BACKOFF_MS 10

/* The delay before restart number restarts_so_far + 1: base doubled once per
 * restart already made, capped at AGENT_RESTART_MAX_BACKOFF_MS. A base below
 * 10 ms is taken as 10 ms, so that a crash loop cannot spin the agent. */
int64_t agent_restart_backoff_ms (int64_t base_ms, uint32_t restarts_so_far);

/* Decides whether an allocation that has ended is started again. failed is
 * true for a non-zero exit, a kill by signal, an OOM kill or a failed start.
 * max_restarts caps the restarts over the allocation's life (the spec's
 * default is 5; 0 means it is never restarted, as Nomad's attempts = 0).
 * Returns true and
 * stores the delay in *delay_ms when it is restarted. */
bool agent_restart_decide (orch_restart_policy_t policy, uint32_t max_restarts,
                           uint32_t restarts_so_far, bool failed, int64_t base_backoff_ms,
                           int64_t *delay_ms);

/* ---- Reconciliation (agent_reconcile.c) ---------------------------------- */

/* Given the ids the node knows and the complete desired list, computes the
 * indices (into known) to stop and the indices (into desired) to start.
 * Duplicates in desired are started once. Allocations in both lists are left
 * alone whatever their state: a desired one that has exited is the restart
 * policy's business, not the list's. *to_stop and *to_start are malloc'd
 * (NULL when empty); the caller frees them. */
void agent_reconcile_plan (const char *const *known, size_t n_known, const char *const *desired,
                           size_t n_desired, size_t **to_stop, size_t *n_stop, size_t **to_start,
                           size_t *n_start);

/* ---- Node resources (agent_node.c) --------------------------------------- */

/* MemTotal from /proc/meminfo's text, in bytes. 0 or -EINVAL. */
int agent_node_parse_meminfo (const char *text, int64_t *bytes);
/* CPUs this process may run on (sched_getaffinity, else online CPUs). */
int agent_node_host_cpus (void);
/* MemTotal of the host, in bytes; -errno on failure. */
int agent_node_host_memory (int64_t *bytes);

/* Allocatable capacity, per dimension: the cgroup parent's limit when set
 * (non-zero), else the host total minus the reserve (never below 0). */
void agent_node_capacity (const cg_limits_t *parent, int host_cpus, int64_t host_memory,
                          int64_t reserve_cpu_milli, int64_t reserve_memory_bytes,
                          int64_t *cpu_milli, int64_t *memory_bytes);

/* ---- Logs (agent_logs.c) ------------------------------------------------- */

#define AGENT_LOGS_DEFAULT_TAIL (1024 * 1024)
#define AGENT_LOGS_MAX_TAIL (4 * 1024 * 1024)
#define AGENT_LOGS_MAX_IN_FLIGHT 8 /* reads at once: each may hold 4 MiB */

/* Which part of a log of file_size bytes answers a request for tail_bytes
 * (0 = the default, 1 MiB; never more than 4 MiB). */
void agent_logs_window (uint64_t file_size, uint64_t tail_bytes, uint64_t *offset, size_t *len,
                        bool *truncated);

/* Done: status 0 with data (len bytes, owned by the reader and freed when
 * the callback returns; a log that does not exist yet reads as empty), or a
 * negative uv error. */
typedef void (*agent_logs_cb) (void *ctx, int status, const uint8_t *data, size_t len,
                               bool truncated);

/* Reads the tail of path on loop with uv_fs_* (never blocking the loop) and
 * calls cb exactly once. Returns 0, or a uv error when nothing was started
 * (cb is not called then). */
int agent_logs_read (uv_loop_t *loop, const char *path, uint64_t tail_bytes, agent_logs_cb cb,
                     void *ctx);

/* ---- Allocation supervisor (agent_sup.c) --------------------------------- */

typedef enum
{
  AGENT_ALLOC_PENDING = 0,
  AGENT_ALLOC_STARTING,
  AGENT_ALLOC_RUNNING,
  AGENT_ALLOC_EXITED,
  AGENT_ALLOC_FAILED,
  AGENT_ALLOC_STOPPED,
} agent_alloc_state_t;

const char *agent_alloc_state_name (agent_alloc_state_t s);

/* What a timer on an allocation is counting down to. */
typedef enum
{
  AGENT_TIMER_NONE = 0,
  AGENT_TIMER_RESTART, /* backoff before the next start */
  AGENT_TIMER_KILL,    /* grace after SIGTERM before SIGKILL */
} agent_timer_kind_t;

typedef struct agent_sup_s agent_sup_t;

typedef struct agent_alloc_s
{
  uv_timer_t timer; /* the alloc is freed in this handle's close callback */
  agent_sup_t *sup;
  char *id;
  char *service;
  char *isolation;
  char *spec_json;
  uint64_t spec_version;
  orch_spec_t spec;
  bool spec_ok;
  const rt_ops_t *rt; /* NULL when the isolation has no runtime here */

  agent_alloc_state_t state;
  int exit_code;
  char *reason;   /* "" when none; owned */
  rt_proc_t proc; /* pid 0 when not running */
  int64_t started_at_ms;
  int64_t finished_at_ms;
  uint32_t restarts;
  cg_usage_t usage; /* last sample */

  bool stopping; /* the scheduler asked to stop it: never restart, forget once stopped */
  bool killed;   /* SIGKILL sent after the grace */
  int64_t grace_ms;
  agent_timer_kind_t timer_kind;
  bool forgotten; /* removed from the table, waiting for the timer's close */
} agent_alloc_t;

/* What the scheduler asks to run (borrowed; copied by the supervisor). */
typedef struct agent_alloc_req_s
{
  const char *alloc_id;
  const char *service;
  const char *isolation;
  const char *spec_json;
  uint64_t spec_version;
} agent_alloc_req_t;

/* Things the supervisor needs from the outside world, so tests can fake them. */
typedef struct agent_sup_deps_s
{
  /* The runtime for an isolation name ("container"), or NULL. */
  const rt_ops_t *(*lookup) (void *ctx, const char *isolation);
  /* image_rootfs() of rt.h. */
  char *(*image_rootfs) (const char *state_dir, const char *image, orch_err_t *err);
  void *ctx; /* passed to lookup */
} agent_sup_deps_t;

/* Called on every state change of a, at once (the session sends an
 * AllocEvent). a is valid only during the call. */
typedef void (*agent_sup_event_cb) (void *ctx, const agent_alloc_t *a);

#define AGENT_DEFAULT_GRACE_MS 10000
#define AGENT_MAX_ALLOCS 4096

struct agent_sup_s
{
  uv_loop_t *loop;
  uv_signal_t sigchld;
  rt_env_t env; /* state_dir, cg */
  agent_sup_deps_t deps;
  agent_sup_event_cb on_event;
  void *event_ctx;
  agent_alloc_t **allocs; /* a node runs at most a few thousand: a scan is cheap */
  size_t n_allocs;
  size_t cap_allocs;
  bool closing;
};

/* Initialises sup on loop and starts watching SIGCHLD. state_dir is borrowed;
 * cg may be NULL (tests). Returns 0 or a uv error. */
int agent_sup_init (agent_sup_t *sup, uv_loop_t *loop, const char *state_dir, cg_manager_t *cg,
                    const agent_sup_deps_t *deps, agent_sup_event_cb on_event, void *ctx);

/* Closes every handle and frees the table without touching the workloads
 * (they keep running after the agent exits). */
void agent_sup_close (agent_sup_t *sup);

agent_alloc_t *agent_sup_find (agent_sup_t *sup, const char *id);

/* StartAlloc: adds the allocation and starts it. A bad spec or a missing
 * runtime leaves it failed with the reason. An id already known is left
 * alone. Returns 0, or -1 with err when the request itself is unusable (empty
 * id, table full). */
int agent_sup_start (agent_sup_t *sup, const agent_alloc_req_t *req, orch_err_t *err);

/* StopAlloc: SIGTERM, SIGKILL after grace_ms (0 = the spec's stop_grace),
 * cleanup, state "stopped", event, then forgotten. Returns 0, or -1 when the
 * id is unknown. */
int agent_sup_stop (agent_sup_t *sup, const char *id, int64_t grace_ms);

/* DesiredAllocs: stops what is not listed, starts what is listed and unknown. */
void agent_sup_apply_desired (agent_sup_t *sup, const agent_alloc_req_t *reqs, size_t n);

/* Reaps every known pid with waitpid(pid, WNOHANG) (never waitpid(-1), which
 * would steal children of the runtime). Called on SIGCHLD and at each
 * heartbeat in case a signal was coalesced. */
void agent_sup_reap (agent_sup_t *sup);

/* Records how the workload's init ended (a wait status, or -1 when it could
 * not be waited for and the status is lost) and moves on:
 * stopped / exited / failed, cleanup, event, restart or forget. */
void agent_sup_handle_exit (agent_sup_t *sup, agent_alloc_t *a, int wstatus);

/* Refreshes every running allocation's usage from its cgroup. */
void agent_sup_sample_usage (agent_sup_t *sup);

/* ---- The daemon (agent_session.c, agent_daemon.c) ------------------------ */

typedef enum
{
  AGENT_SESS_IDLE = 0,   /* waiting for the retry timer */
  AGENT_SESS_RESOLVING,  /* uv_getaddrinfo */
  AGENT_SESS_CONNECTING, /* TCP connect */
  AGENT_SESS_HELLO,      /* Hello sent, waiting for HelloReply */
  AGENT_SESS_REGISTERED, /* NodeRegister sent; heartbeats flow */
  AGENT_SESS_CLOSED,     /* shutting down */
} agent_sess_state_t;

#define AGENT_RECONNECT_MIN_MS 200
#define AGENT_RECONNECT_MAX_MS 10000
#define AGENT_HELLO_TIMEOUT_MS 10000
#define AGENT_PROBLEM_REMINDER_EVERY 30

/* Reconnect delay after `failures` failed attempts in a row (>= 1): 200 ms
 * doubling to 10 s, then jittered by +-20% with jitter in [0, 1) so that a
 * cluster of agents does not reconnect in lockstep after a scheduler restart. */
int64_t agent_reconnect_delay_ms (unsigned failures, double jitter);

typedef struct wire_conn_s wire_conn_t;

struct agent_s
{
  uv_loop_t *loop;
  const agent_config_t *cfg;
  cg_manager_t *cg;
  agent_sup_t sup;
  bool sup_ready;

  /* Node facts read once at start. */
  int host_cpus;
  int64_t host_memory;
  char **runtimes; /* names of runtimes whose probe succeeded */
  size_t n_runtimes;

  /* Session. */
  agent_sess_state_t state;
  wire_conn_t *conn;
  uint64_t conn_gen; /* bumped on every new connection; stale callbacks compare it */
  uv_getaddrinfo_t gai;
  bool gai_busy;
  uv_timer_t retry_timer;
  uv_timer_t hello_timer;
  uv_timer_t heartbeat_timer;
  unsigned failures;      /* failed attempts since the last registration */
  char last_problem[256]; /* last logged failure, to log each change once */
  bool ever_registered;
  int logs_in_flight;

  /* CPU rate from successive parent samples. */
  int64_t last_cpu_usec;
  int64_t last_cpu_mono_ms;

  uv_signal_t sigterm;
  uv_signal_t sigint;
  bool shutting_down;
  int handles_open; /* handles of this struct not yet closed */
};

/* agent_session.c */
void agent_session_start (agent_t *a);
void agent_session_stop (agent_t *a);
/* Sends an AllocEvent for al when registered (otherwise the next register
 * carries it). */
void agent_session_alloc_event (agent_t *a, const agent_alloc_t *al);

#endif
