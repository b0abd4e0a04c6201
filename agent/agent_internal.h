/* Private parts of orch-agent, split so that each can be unit-tested alone:
 *
 *   agent_restart.c    restart policy and backoff decisions (pure)
 *   agent_reconcile.c  what a DesiredAllocs list means for the table (pure)
 *   agent_node.c       host totals and capacity (pure parsers + two reads)
 *   agent_logs.c       reading the tail of an allocation's log with uv_fs_*,
 *                      following it, and rotating it (copytruncate)
 *   agent_record.c     the record of an allocation kept in its directory, from
 *                      which a restarted agent re-adopts it
 *   agent_sup.c        the allocation table and its state machine; talks to
 *                      the runtime through an rt_ops_t, so tests pass a fake;
 *                      re-adoption of what a previous run left running
 *   agent_health.c     health checks (exec, tcp, http) of running allocations
 *   agent_exec.c       the hidden `orch-agent --exec-in PID -- CMD` helper that
 *                      runs a health command inside a container's namespaces
 *   agent_session.c    the scheduler session (wire_conn): hello, register,
 *                      heartbeat, dispatch, reconnect with backoff
 *   agent_daemon.c     builds everything (the node network too), signals
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

/* Following a log: the tail first (as agent_logs_read), then whatever is
 * appended, polled every AGENT_LOGS_FOLLOW_POLL_MS with uv_fs_* on loop. When
 * the log was truncated by a rotation (copytruncate), what was appended
 * between the last poll and the copy is read from path.1 first, then the new
 * log from its start. */
#define AGENT_LOGS_FOLLOW_POLL_MS 250
#define AGENT_LOGS_FOLLOW_CHUNK (256 * 1024) /* at most this much per poll */

typedef struct agent_logs_follow_s agent_logs_follow_t;

/* Called with each piece of the log (data owned by the follower, valid
 * during the call; len may be 0 on a poll that found nothing new, so that
 * the owner can decide to stop), or with status < 0 on a read error. Returns
 * false to stop following: the follower is then cancelled as by
 * agent_logs_follow_cancel and cb is not called again. */
typedef bool (*agent_logs_follow_cb) (void *ctx, int status, const uint8_t *data, size_t len,
                                      bool truncated);

/* Starts following path (copied). Returns the follower (owned by the loop
 * until cancelled), or NULL with *rc set to a uv error. */
agent_logs_follow_t *agent_logs_follow (uv_loop_t *loop, const char *path, uint64_t tail_bytes,
                                        agent_logs_follow_cb cb, void *ctx, int *rc);

/* Stops following: cb is never called again; the follower frees itself once
 * its timer and any read in flight are done. */
void agent_logs_follow_cancel (agent_logs_follow_t *f);

/* Rotates path when it is larger than max_size: path.(max_files-2) ...
 * path.1 are shifted up one (the oldest dropped), path is copied to path.1
 * and truncated in place. The workload keeps writing through its O_APPEND
 * descriptor, so nothing is reopened (copytruncate; what is written between
 * the copy and the truncation is lost, which is that method's known cost).
 * max_files counts path itself: 3 keeps path, path.1 and path.2; 1 only
 * truncates. Blocking: call it from the thread pool. Returns 1 when rotated,
 * 0 when the file is small enough or missing, or a negative errno. */
int agent_logs_rotate (const char *path, uint64_t max_size, int max_files);

/* ---- Images through the orch-image helper (agent_image.c) ------------------ */

/* The daemon links only the store's lookups (image_present, image_rootfs);
 * pulls and GC run in an orch-image process ($ORCH_IMAGE_HELPER, else next
 * to orch-agent), one per operation. Both BLOCK: call them from the thread
 * pool. Failing calls return -1 with err holding orch-image's own message
 * ("pull localhost:5000/app:1: blob sha256:..: digest mismatch"). */

/* image_ensure() with IMAGE_PULL_IF_MISSING in a helper; insecure_registry
 * may be NULL. Error messages name the image. Setting *cancel makes the helper stop (SIGTERM; it removes
 * its work) and the call fail with ECANCELED. *rootfs: newly allocated. */
int agent_image_pull (const char *state_dir, const char *ref, const char *insecure_registry,
                      const volatile int *cancel, char **rootfs, orch_err_t *err);
/* image_gc() in a helper; EAGAIN when a pull or import holds the store. */
int agent_image_gc (const char *state_dir, int64_t budget_bytes, const char *const *in_use,
                    size_t n_in_use, orch_err_t *err);

/* ---- Allocation supervisor (agent_sup.c) --------------------------------- */

typedef enum
{
  AGENT_ALLOC_PENDING = 0,
  AGENT_ALLOC_PULLING, /* its image is being fetched from a registry */
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
typedef struct agent_health_s agent_health_t;

typedef struct agent_alloc_s
{
  uv_timer_t timer;     /* restart backoff / stop grace */
  uv_poll_t pidfd_poll; /* adopted workloads: readable when the pid exits */
  int handles;          /* handles of this alloc not closed yet; freed at 0 */
  agent_sup_t *sup;
  char *id;
  char *service;
  char *isolation;
  char *spec_json;
  uint64_t spec_version;
  orch_spec_t spec;
  bool spec_ok;
  const rt_ops_t *rt; /* NULL when the isolation has no runtime here */
  net_port_t *ports;  /* published ports (host ports assigned by the scheduler) */
  size_t n_ports;

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
  struct agent_pull_s *pull; /* the image pull in flight, or NULL */
  /* The cleanup after an end, in flight in the thread pool, or NULL: the
   * allocation keeps its state (and restarts, stops wait) until it is done. */
  struct agent_cleanup_s *cleanup;
  bool queued;    /* added by a DesiredAllocs, waiting for its turn to start */

  /* Re-adopted after an agent restart: not our child, so its end is seen
   * through a pidfd and its exit code read from the exit record. */
  bool adopted;
  int pidfd;        /* -1 when none */
  bool poll_inited; /* pidfd_poll initialised and not yet closing */

  /* Health checks. */
  agent_health_t *health;    /* NULL when the spec has none or it is not running */
  const char *health_status; /* "", "healthy", "unhealthy" (static strings) */
  uint32_t health_failures;  /* consecutive */
  char health_why[128];      /* what the last failed probe said */
  bool unhealthy_kill;       /* being stopped to be restarted for failing its check */
} agent_alloc_t;

/* What the scheduler asks to run (borrowed; copied by the supervisor). */
typedef struct agent_alloc_req_s
{
  const char *alloc_id;
  const char *service;
  const char *isolation;
  const char *spec_json;
  uint64_t spec_version;
  const net_port_t *ports;
  size_t n_ports;
} agent_alloc_req_t;

/* ---- The allocation record (agent_record.c) ------------------------------- */

/* <state>/allocs/<id>/alloc.json: what the scheduler asked for and where the
 * allocation stands, rewritten at each start. A restarted agent reads it to
 * re-adopt the workload as the same allocation. */
#define AGENT_RECORD_FILE "alloc.json"
#define AGENT_RECORD_MAX_BYTES (2 * 1024 * 1024) /* a spec is at most 1 MiB */
#define AGENT_RECORD_MAX_PORTS 1024

typedef struct agent_record_s
{
  char *alloc_id;
  char *service;
  char *isolation;
  char *spec_json;
  uint64_t spec_version;
  net_port_t *ports;
  size_t n_ports;
  uint32_t restarts;
  int64_t started_at_ms;
} agent_record_t;

/* Writes the record (tmp file + rename; no fsync: it must survive the agent,
 * not the host, whose crash ends the workloads too). 0 or -1 with err. */
int agent_record_write (const char *alloc_dir, const agent_record_t *r, orch_err_t *err);
/* Reads it into *r (cleared first; free with agent_record_clear). Returns 1
 * when read, 0 when there is none, -1 with err when it is unusable. */
int agent_record_read (const char *alloc_dir, agent_record_t *r, orch_err_t *err);
void agent_record_clear (agent_record_t *r);

/* ---- Health checks (agent_health.c) --------------------------------------- */

/* How a probe is run: from the agent to an address (tcp, http over uv_tcp),
 * or by the helper inside the workload's namespaces (exec, and tcp/http when
 * the workload has its own network namespace without a bridge address). */
typedef struct agent_health_probe_s
{
  enum
  {
    AGENT_PROBE_EXEC,
    AGENT_PROBE_TCP,
    AGENT_PROBE_HTTP
  } kind;
  char address[64]; /* connect here (tcp/http), or "" to go through the helper */
  uint16_t port;
  const char *path;     /* http */
  char *const *argv;    /* exec */
  pid_t pid;            /* the workload's init, for the helper */
  char *const *cgroups; /* exec: the allocation's cgroup directories, NULL-terminated */
  int64_t timeout_ms;
  const char *helper; /* the agent's binary for --exec-in */
} agent_health_probe_t;

/* A probe ended: ok, or why not (a short text, valid during the call). */
typedef void (*agent_health_cb) (void *ctx, bool ok, const char *why);

/* Runs one probe on loop and calls cb exactly once (never from inside this
 * call). Everything in p is copied. Returns the probe (to cancel it), or NULL
 * with *rc when nothing was started. */
typedef struct agent_probe_s agent_probe_t;
agent_probe_t *agent_probe_run (uv_loop_t *loop, const agent_health_probe_t *p, agent_health_cb cb,
                                void *ctx, int *rc);
/* cb is not called any more; the probe frees itself once its handles close. */
void agent_probe_cancel (agent_probe_t *p);

/* Whether an HTTP response that starts with buf says success (2xx or 3xx).
 * 1 yes, 0 no, -1 not enough data yet to tell. */
int agent_health_http_status_ok (const char *buf, size_t len, int *status);

/* Starts the periodic checks of a running allocation (a->health). */
void agent_health_start (agent_sup_t *sup, agent_alloc_t *a);
/* Stops them; a->health becomes NULL. */
void agent_health_stop (agent_alloc_t *a);

/* The hidden helper mode: `orch-agent --exec-in PID -- CMD ARGS...` joins
 * the namespaces of PID and runs CMD there, exiting with its status;
 * `orch-agent --exec-in PID --tcp PORT` / `--http PORT PATH` connects from
 * inside PID's network namespace to 127.0.0.1:PORT. Returns the exit code;
 * argv[1] is "--exec-in". */
int agent_exec_in_main (int argc, char **argv);

/* Things the supervisor needs from the outside world, so tests can fake them. */
typedef struct agent_sup_deps_s
{
  /* The runtime for an isolation name ("container"), or NULL. */
  const rt_ops_t *(*lookup) (void *ctx, const char *isolation);
  /* image_rootfs() of rt.h. */
  char *(*image_rootfs) (const char *state_dir, const char *image, orch_err_t *err);
  void *ctx; /* passed to lookup */
  /* image.h's image_present and image_ensure; NULL = images are never
   * pulled (every image must be in the store already). image_ensure
   * blocks and runs in the thread pool; ctx is the one above; its error
   * messages name the image (they become the allocation's reason as they
   * are). */
  bool (*image_present) (const char *state_dir, const char *ref);
  int (*image_ensure) (void *ctx, const char *state_dir, const char *ref,
                       const volatile int *cancel, char **rootfs, orch_err_t *err);
} agent_sup_deps_t;

/* Called on every state change of a, at once (the session sends an
 * AllocEvent). a is valid only during the call. */
typedef void (*agent_sup_event_cb) (void *ctx, const agent_alloc_t *a);

#define AGENT_DEFAULT_GRACE_MS 10000
#define AGENT_MAX_ALLOCS 4096

#define AGENT_START_CHUNK 16 /* allocations started per loop iteration */
#define AGENT_LOGS_ROTATE_EVERY_MS 2000
#define AGENT_DEFAULT_LOG_MAX_SIZE (10 * 1024 * 1024)
#define AGENT_DEFAULT_LOG_MAX_FILES 3

struct agent_sup_s
{
  uv_loop_t *loop;
  uv_signal_t sigchld;
  uv_idle_t starter; /* starts queued allocations a chunk per iteration */
  bool starter_active;
  uv_timer_t rotate_timer;
  bool rotate_busy;      /* a rotation pass is in the thread pool */
  uint64_t log_max_size; /* 0: never rotate */
  int log_max_files;
  const char *helper; /* binary for the --exec-in helper (default /proc/self/exe) */
  rt_env_t env;       /* state_dir, cg */
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
 * would steal children of the runtime). Re-adopted workloads are not our
 * children: their pidfd reports their end (without pidfd, this sweep checks
 * that their pid still exists). Called on SIGCHLD and at each heartbeat in
 * case a signal was coalesced. */
void agent_sup_reap (agent_sup_t *sup);

/* Records how the workload's init ended (a wait status, or -1 when it could
 * not be waited for and the status is lost) and moves on:
 * stopped / exited / failed, cleanup, event, restart or forget. */
void agent_sup_handle_exit (agent_sup_t *sup, agent_alloc_t *a, int wstatus);

/* Refreshes every running allocation's usage from its cgroup. */
void agent_sup_sample_usage (agent_sup_t *sup);

/* Re-adoption: for each <state>/allocs/<id> with a record, asks its runtime
 * to adopt the workload. A running one joins the table as running (same
 * restarts and started_at) and is watched through a pidfd; one that ended
 * while the agent was away joins it as exited or failed, from its exit
 * record, and is left for the scheduler to decide on. A directory without a
 * usable record is cleaned up as before (cgroup destroyed, directory
 * removed). Call once, before the session starts. */
void agent_sup_adopt_all (agent_sup_t *sup);

/* A health probe result for a (agent_health.c calls it). */
void agent_sup_health_result (agent_sup_t *sup, agent_alloc_t *a, bool ok, const char *why);

/* Starts rotating the logs of the allocations every
 * AGENT_LOGS_ROTATE_EVERY_MS when max_size > 0. */
void agent_sup_set_log_limits (agent_sup_t *sup, uint64_t max_size, int max_files);

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
  size_t sched_idx;       /* the scheduler address in use (cfg->scheduler_addrs) */
  char last_problem[256]; /* last logged failure, to log each change once */
  bool ever_registered;
  int logs_in_flight;
  struct agent_follow_s **follows; /* LogsRequest{follow} being served */
  size_t n_follows;
  size_t cap_follows;
  net_t *net;

  /* CPU rate from successive parent samples, and the last sample sent. */
  int64_t last_cpu_usec;
  int64_t last_cpu_mono_ms;
  int64_t last_usage_mono_ms;
  int64_t usage_memory_bytes;
  int64_t usage_cpu_milli;
  int64_t vmm_overhead_measured; /* mean over running microVMs, 0 when none */

  uv_timer_t gc_timer; /* image GC under --image-budget */
  bool gc_busy;

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

#define AGENT_MAX_FOLLOWS 64
#define AGENT_USAGE_EVERY_MS 10000 /* cgroup usage sampling period */

#endif
