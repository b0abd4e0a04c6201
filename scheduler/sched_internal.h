/* Internals of orch-scheduler, shared by its sched_*.c files.
 *
 * The scheduler's in-memory model mirrors etcd (DESIGN.md §5): services,
 * allocations and nodes, keyed by name. etcd is the source of truth; memory
 * is rebuilt from it at start and updated only after a write succeeded.
 * Everything runs on one libuv loop. */
#ifndef ORCH_SCHED_INTERNAL_H
#define ORCH_SCHED_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "orch_map.h"
#include "orch_spec.h"
#include "place.h"
#include "scheduler.h"
#include "store.h"
#include "wire.h"

#define SCHED_PREFIX "/orch/"
#define SCHED_SERVICES_PREFIX "/orch/services/"
#define SCHED_ALLOCS_PREFIX "/orch/allocs/"
#define SCHED_NODES_PREFIX "/orch/nodes/"

typedef struct sched_conn_s sched_conn_t;

typedef struct sched_service_s
{
  char *name;
  orch_spec_t spec;
  char *template_json; /* canonical spec without "replicas": equal => no replacement */
  uint64_t version;
  int64_t mod_revision;
  int64_t created_at_ms;
  uint32_t pending;     /* replicas that could not be placed */
  char *pending_reason; /* aggregated reason, NULL when nothing is pending */
} sched_service_t;

/* A published port and the node port assigned to it. */
typedef struct sched_port_s
{
  char *name;
  uint16_t port;      /* inside the workload */
  uint16_t host_port; /* on the node's address */
  char protocol[4];   /* "tcp" | "udp" */
} sched_port_t;

/* The last state an agent reported for an allocation. */
typedef struct sched_status_s
{
  char state[16]; /* "pending" until the agent reports */
  int32_t exit_code;
  char *reason;
  int64_t started_at_ms;
  int64_t finished_at_ms;
  uint32_t restarts;
  /* Usage and pid come with heartbeats and are not persisted. */
  int64_t memory_bytes;
  int64_t cpu_usec;
  int64_t pid;
  char *address; /* reported: the workload's IP on the node bridge */
  char *health;  /* reported: "", "healthy", "unhealthy" */
  char *vmm;
  char *guest_kernel;
} sched_status_t;

typedef struct sched_alloc_s
{
  char *id;
  char *service;
  char *node;
  char *isolation; /* "container" | "microvm" */
  char *reason;    /* why this node and isolation */
  uint64_t spec_version;
  int64_t created_at_ms;
  int64_t mod_revision;
  sched_status_t status;
  bool status_dirty; /* status changed since last persisted */
  bool removing;     /* its deletion is being written; no more status writes */
  int64_t stop_grace_ms; /* from its service; kept for when the service is deleted */
  sched_port_t *ports;   /* host ports assigned at placement */
  size_t n_ports;
  place_alloc_id_t place_id; /* handle in the placement engine */
} sched_alloc_t;

typedef struct sched_node_s
{
  char *id;
  char *address;
  char **label_keys;
  char **label_values;
  size_t n_labels;
  int64_t cap_cpu_milli;
  int64_t cap_memory_bytes;
  int64_t used_cpu_milli;     /* measured; cpu is derived from cpu_usec deltas */
  int64_t used_memory_bytes;  /* measured */
  int64_t vmm_overhead_bytes;      /* charged per microVM beyond its memory */
  int64_t vmm_overhead_registered; /* the reserve the agent registered with */
  bool rt_container;
  bool rt_microvm;
  bool draining;
  bool lost; /* down longer than TTL + grace: its allocations are replaced */
  char cgroup_version[8];
  sched_conn_t *agent; /* live session or NULL */
  int64_t last_heartbeat_ms; /* monotonic */
  int64_t lease_id;
  int64_t lease_renewed_ms;
  bool lease_in_flight;
  int64_t mod_revision;
  place_node_id_t place_id;
  uint8_t *ports_used;   /* bitmap over the host port range, NULL when none used */
  unsigned ports_cursor; /* where the next port search starts */ /* the agent's desired list must be sent again */
} sched_node_t;

/* A client or agent connection. */
typedef enum
{
  SCHED_CONN_API = 0,
  SCHED_CONN_AGENT,
} sched_conn_kind_t;

struct sched_conn_s
{
  sched_t *s;
  wire_conn_t *wc;
  sched_conn_kind_t kind;
  bool hello_done;
  sched_node_t *node; /* agents, after register */
  char *identity;
  int refs;           /* the wire conn holds one; pending requests hold one each */
  sched_conn_t *next; /* in s->conns */
};

/* An orchctl request waiting for something (a reconcile pass, an agent's logs). */
typedef struct sched_waiter_s
{
  struct sched_waiter_s *next;
  sched_conn_t *conn; /* a reference; its wc is NULL once the client went away */
  uint64_t request_id;
  /* apply */
  char **services;
  size_t n_services;
  Orch__ServiceChange *changes;
  size_t n_changes;
  uint64_t min_pass; /* replied after this reconcile pass has finished */
  uint32_t count; /* drain: allocations to move */
  /* logs */
  uint64_t agent_request_id;
  char *alloc_id;
  char *node_id; /* logs: the node the request was forwarded to */
  bool follow;
  int64_t deadline_ms;
} sched_waiter_t;

struct sched_s
{
  uv_loop_t *loop;
  sched_config_t cfg;
  store_t *store;
  bool owns_store; /* false when the caller passed its own (tests) */
  uv_tcp_t api_listener;
  uv_tcp_t agent_listener;
  uv_timer_t tick;         /* node liveness, lease renewals, retries */
  uv_timer_t flush_timer;  /* coalesces status writes */
  uv_idle_t reconcile_idle;/* runs a reconcile pass once the loop is idle */
  bool stopping;
  int handles_open; /* of the handles above; sched_free only once it is 0 */

  bool loaded;           /* state read from etcd */
  int load_pending;      /* ranges still outstanding */
  int64_t retry_at_ms;   /* next load / reconcile retry after an etcd error */

  orch_map_t services; /* name -> sched_service_t */
  orch_map_t allocs;   /* id -> sched_alloc_t */
  orch_map_t nodes;    /* id -> sched_node_t */

  place_cluster_t *cluster;

  /* Reconcile: services needing a pass, and whether one is in flight. */
  orch_map_t dirty_services; /* name -> (void*)1 */
  bool reconcile_all_pending;
  bool reconcile_running;
  uint64_t passes_started;
  uint64_t passes_done;
  sched_waiter_t *apply_waiters;
  sched_waiter_t *logs_waiters;
  uint64_t next_agent_request_id;

  bool status_flush_running;

  /* Our own write revisions, so the watch can tell them from others'. */
  int64_t own_revs[1024];
  size_t own_revs_next;
  int writes_in_flight;
  struct sched_batch_s *write_queue; /* sched_write.c: ordered writes, head in flight */
  bool watching;
  store_event_t *watch_backlog; /* events held while our writes are in flight (owned) */
  size_t watch_backlog_len, watch_backlog_cap;

  sched_conn_t *conns;

  /* sched_leader.c */
  bool leading;          /* this scheduler holds /orch/leader */
  int64_t lease_id;      /* its own lease (leader or candidate), 0 until granted */
  int64_t leader_rev;    /* create_revision of /orch/leader while leading */
  int64_t lease_ok_ms;   /* last keep-alive answered */
  int leader_req;        /* election requests in flight */
  char *leader_seen;     /* standing by: who leads, as last read (owned) */
  uv_timer_t leader_timer;
  int exit_code;         /* what main returns: 1 after losing the leadership */

  /* sched_metrics.c */
  uv_tcp_t metrics_listener; /* initialised only with --metrics-listen */
  struct metrics_conn_s *metrics_conns;
  int n_metrics_conns;
};

/* sched_state.c: records and their etcd encoding. */
sched_service_t *sched_service_new (const orch_spec_t *spec, uint64_t version);
void sched_service_free (sched_service_t *svc);
char *sched_service_encode (const sched_service_t *svc); /* JSON, caller frees */
sched_service_t *sched_service_decode (const char *json, size_t len, orch_err_t *err);
sched_alloc_t *sched_alloc_new (const char *service, const char *node, const char *isolation,
                                const char *reason, uint64_t spec_version);
void sched_alloc_free (sched_alloc_t *a);
void sched_alloc_new_id (sched_alloc_t *a); /* draws another random id */
char *sched_alloc_encode (const sched_alloc_t *a);
sched_alloc_t *sched_alloc_decode (const char *json, size_t len, orch_err_t *err);
char *sched_alloc_key (const sched_alloc_t *a);
void sched_status_set_reason (sched_status_t *st, const char *reason);
bool sched_status_terminal (const sched_status_t *st);
sched_node_t *sched_node_new (const char *id);
void sched_node_free (sched_node_t *n);
char *sched_node_encode (const sched_node_t *n);
int sched_node_decode_into (sched_node_t *n, const char *json, size_t len, orch_err_t *err);
void sched_node_set_labels (sched_node_t *n, char **keys, char **values, size_t count);
const char *sched_node_state (const sched_t *s, const sched_node_t *n);
bool sched_node_ready (const sched_t *s, const sched_node_t *n);

/* sched_persist.c: loading, watching and writing state. */
void sched_persist_load (sched_t *s);
void sched_persist_note_own_revision (sched_t *s, int64_t rev);
void sched_persist_flush_status (sched_t *s);
void sched_persist_drain_watch (sched_t *s);

/* sched_reconcile.c: placement and the agents' desired lists. */
void sched_reconcile_mark (sched_t *s, const char *service);
void sched_reconcile_mark_pending (sched_t *s);
void sched_reconcile_schedule (sched_t *s);
void sched_reconcile_add_node (sched_t *s, sched_node_t *n);
void sched_reconcile_update_node (sched_t *s, sched_node_t *n);
void sched_reconcile_add_alloc (sched_t *s, sched_alloc_t *a);
void sched_reconcile_remove_alloc (sched_t *s, sched_alloc_t *a);
void sched_send_desired (sched_t *s, sched_node_t *n);
/* Plans the given specs against the current state without committing. */
int sched_plan (sched_t *s, const orch_spec_t *specs, size_t n, Orch__Placement ***out,
                size_t *n_out);
void sched_placements_free (Orch__Placement **p, size_t n);
/* A placement message owning copies of its strings (NULL reads as ""). */
Orch__Placement *sched_placement_new (const char *service, const char *alloc_id, const char *node,
                                      const char *isolation, const char *reason);

/* sched_ports.c: host ports per node. */
int sched_ports_assign (sched_node_t *n, sched_alloc_t *a, const orch_spec_t *spec);
void sched_ports_hold (sched_node_t *n, const sched_alloc_t *a);
void sched_ports_release (sched_node_t *n, const sched_alloc_t *a);
void sched_ports_clear (sched_alloc_t *a);
/* Points pm[0..n_ports) at a's ports (strings borrowed) and ptrs at pm. */
void sched_ports_fill_msg (const sched_alloc_t *a, Orch__PortMapping *pm,
                           Orch__PortMapping **ptrs);
void sched_status_set_str (char **field, const char *value);

/* sched_agents.c */
void sched_agent_message (sched_conn_t *c, Orch__Envelope *env);
void sched_agent_closed (sched_conn_t *c);
void sched_agents_tick (sched_t *s);

/* sched_api.c */
void sched_api_message (sched_conn_t *c, Orch__Envelope *env);
void sched_api_closed (sched_conn_t *c);
void sched_api_reply_error (sched_conn_t *c, uint64_t request_id, int code, const char *msg,
                            char **details, size_t n_details);
void sched_api_apply_done (sched_t *s, int status, const char *error);
void sched_api_logs_reply (sched_t *s, uint64_t agent_request_id, Orch__Envelope *env);
void sched_api_tick (sched_t *s);
void sched_api_agent_gone (sched_t *s, const char *node_id);

/* sched_leader.c: election on /orch/leader (see the top of the file). */
#define SCHED_LEADER_KEY "/orch/leader"
#define SCHED_DEFAULT_LEADER_TTL_MS 10000
void sched_leader_start (sched_t *s);
/* A fenced write failed its compares: is /orch/leader still ours? */
void sched_leader_check (sched_t *s);
/* Standing by: who leads, for refusals; NULL before it is known. */
const char *sched_leader_seen (const sched_t *s);
/* Stops campaigning; revokes the lease when there is one and calls done
 * once etcd answered (true), or returns false at once (done not called). */
bool sched_leader_release (sched_t *s, void (*done) (sched_t *s));

/* sched_metrics.c: GET /metrics on cfg.metrics_listen (none when NULL). */
int sched_metrics_listen (sched_t *s, orch_err_t *err);
void sched_metrics_close (sched_t *s);
/* The metrics in Prometheus' text format; caller frees. */
char *sched_metrics_text (const sched_t *s);

/* sched_core.c. A connection outlives its socket while requests hold
 * references to it; sending on a closed one does nothing. */
void sched_on_handle_closed (uv_handle_t *h);
void sched_conn_send (sched_conn_t *c, Orch__Envelope *env);
sched_conn_t *sched_conn_ref (sched_conn_t *c);
void sched_conn_unref (sched_conn_t *c);

#endif
