/* Helpers for unit tests of orch-scheduler's logic: a scheduler over the
 * in-memory store on a libuv loop the test drives, and fake peers (orchctl,
 * agents) speaking the real wire protocol over loopback TCP.
 *
 * Every helper that waits drives the loop itself, until a condition holds or
 * a deadline passes; nothing sleeps. Messages a peer receives are kept as
 * owned copies until stu_clear() or teardown. Helpers that cannot go on fail
 * the current cmocka case (assert_*), so a case reads as a script. */
#ifndef SCHED_TEST_UTIL_H
#define SCHED_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "orch_util.h"
#include "scheduler.h"
#include "store.h"
#include "wire.h"

#define STU_MAX_PEERS 16
#define STU_WAIT_MS 3000 /* how long a helper waits for an answer that must come */

typedef struct stu_fx_s stu_fx_t;

typedef struct stu_peer_s
{
  stu_fx_t *fx;
  wire_conn_t *wc; /* NULL once closed */
  bool connected;
  bool closed;
  char close_reason[256];
  Orch__Envelope **msgs; /* owned copies of what was received, in order */
  size_t n_msgs, cap_msgs;
  uint64_t next_request_id;
  char node_id[64];    /* agents: the node id they registered */
  uv_timer_t hb_timer; /* agents: periodic heartbeats, when started */
  bool hb_running;
} stu_peer_t;

struct stu_fx_s
{
  uv_loop_t loop;
  uv_timer_t ticker; /* wakes UV_RUN_ONCE so that deadlines are checked */
  sched_config_t cfg;
  char api_addr[32];
  char agent_addr[32];
  int api_port, agent_port;
  sched_t *s;
  store_t *store; /* the in-memory store, shared by successive schedulers */
  stu_peer_t *peers[STU_MAX_PEERS];
  size_t n_peers;
  void **garbage; /* freed at teardown, so that a failed case leaks nothing */
  size_t n_garbage, cap_garbage;
};

/* A key and value copied out of a store. */
typedef struct stu_kv_s
{
  char *key;
  char *value;
  size_t value_len;
} stu_kv_t;

/* Loop, free ports for both listeners and a default config (TTL and grace
 * 10 s, no join token). Change fx->cfg before stu_sched_start. */
void stu_fx_init (stu_fx_t *fx);
/* Closes every peer, stops the scheduler, runs the loop until every handle
 * is closed and checks that the loop closes cleanly. */
void stu_fx_teardown (stu_fx_t *fx);

/* Starts a scheduler over fx->store (created on first use; it outlives the
 * scheduler, as etcd does) and waits until it has loaded its state. */
void stu_sched_start (stu_fx_t *fx);
/* Stops the scheduler, waits for its handles to close and frees it; the
 * store stays. */
void stu_sched_stop (stu_fx_t *fx);
/* The same for any scheduler on fx's loop (a second one, in election tests). */
void stu_sched_halt (stu_fx_t *fx, sched_t *s);
/* A loopback port that was free a moment ago. */
int stu_free_port (void);

/* Runs the loop once (at most a few ms). */
void stu_run_once (stu_fx_t *fx);
/* Runs the loop for ms milliseconds. */
void stu_run_for (stu_fx_t *fx, int64_t ms);
/* Runs the loop until cond holds or ms pass; the value of cond at the end. */
#define STU_RUN_UNTIL(fx, cond, ms)                                                                \
  ({                                                                                               \
    int64_t stu_deadline_ = orch_now_mono_ms () + (ms);                                            \
    while (!(cond) && orch_now_mono_ms () < stu_deadline_)                                         \
      stu_run_once (fx);                                                                           \
    (bool) (cond);                                                                                 \
  })

/* Hands p to the fixture, which frees it at teardown; returns p. A case
 * that fails jumps out of its body, so its locals must not own memory. */
void *stu_keep (stu_fx_t *fx, void *p);
char *stu_strdup (stu_fx_t *fx, const char *s);

/* ---- Peers ------------------------------------------------------------------ */

/* Connects to 127.0.0.1:port and waits for the connection. */
stu_peer_t *stu_connect (stu_fx_t *fx, int port);
/* Sends env as it is (its request id included). */
void stu_send_raw (stu_peer_t *p, Orch__Envelope *env);
/* Sends env with a fresh request id, which it returns. */
uint64_t stu_request (stu_peer_t *p, Orch__Envelope *env);
/* The first received message with request_id, waiting up to ms; NULL if none. */
Orch__Envelope *stu_wait_reply (stu_peer_t *p, uint64_t request_id, int64_t ms);
/* Received messages of one kind: how many, and the i-th (NULL past the end). */
size_t stu_count (const stu_peer_t *p, Orch__Envelope__MsgCase kind);
Orch__Envelope *stu_nth (const stu_peer_t *p, Orch__Envelope__MsgCase kind, size_t i);
/* Waits until at least n messages of kind arrived. */
bool stu_wait_count (stu_peer_t *p, Orch__Envelope__MsgCase kind, size_t n, int64_t ms);
/* Forgets what was received so far. */
void stu_clear (stu_peer_t *p);
/* Waits until the scheduler closed the connection. */
bool stu_wait_closed (stu_peer_t *p, int64_t ms);
/* Closes the connection from our side and waits until it is closed. */
void stu_close (stu_peer_t *p);

/* Sends a Hello; returns its request id. */
uint64_t stu_hello (stu_peer_t *p, uint32_t version, const char *role, const char *identity,
                    const char *token);

/* ---- orchctl ---------------------------------------------------------------- */

/* A client connection that passed Hello. */
stu_peer_t *stu_cli (stu_fx_t *fx);
/* Each sends its request and returns the reply (owned by the peer). */
Orch__Envelope *stu_apply (stu_peer_t *cli, const char *spec_json);
Orch__Envelope *stu_get (stu_peer_t *cli, const char *kind, const char *name);
Orch__Envelope *stu_delete (stu_peer_t *cli, const char *name);
Orch__Envelope *stu_drain (stu_peer_t *cli, const char *node_id);
Orch__Envelope *stu_logs (stu_peer_t *cli, const char *alloc_id, uint64_t tail_bytes);

/* The reply's payload, or a failed assertion naming what came instead. */
Orch__ApplyReply *stu_expect_apply (Orch__Envelope *env);
Orch__GetReply *stu_expect_get (Orch__Envelope *env);
Orch__Error *stu_expect_error (Orch__Envelope *env, int code);

/* An allocation of get allocs by id, or NULL. */
Orch__AllocInfo *stu_find_alloc (Orch__GetReply *r, const char *alloc_id);
/* A node of get nodes by id, or NULL. */
Orch__NodeInfo *stu_find_node (Orch__GetReply *r, const char *node_id);

/* ---- Agents ----------------------------------------------------------------- */

/* An agent for node_id that passed Hello and sent NodeRegister with this
 * capacity, the "container" runtime and, as already running, the
 * allocations in running_ids. Waits for the DesiredAllocs that answers the
 * register. */
stu_peer_t *stu_agent (stu_fx_t *fx, const char *node_id, int64_t cpu_milli, int64_t memory_bytes,
                       const char *const *running_ids, size_t n_running);
/* Reports an allocation's state in an AllocEvent. */
void stu_agent_event (stu_peer_t *agent, const char *alloc_id, const char *state);
/* One heartbeat, and heartbeats every interval_ms from now on. */
void stu_agent_heartbeat (stu_peer_t *agent);
void stu_agent_heartbeats (stu_peer_t *agent, uint64_t interval_ms);
/* Allocation ids in the StartAlloc / StopAlloc messages received so far
 * (the list is kept by the fixture). */
size_t stu_started (stu_peer_t *agent, char ***ids);
size_t stu_stopped (stu_peer_t *agent, char ***ids);
/* Whether the list contains id. */
bool stu_has (char **ids, size_t n, const char *id);

/* ---- Store ------------------------------------------------------------------ */

/* Every key under prefix in store, sorted (the scheduler's or another one). */
size_t stu_store_range (stu_fx_t *fx, store_t *store, const char *prefix, stu_kv_t **out);
void stu_kvs_free (stu_kv_t *kvs, size_t n);
/* Writes kvs into store (without leases) in one transaction. */
void stu_store_put (stu_fx_t *fx, store_t *store, const stu_kv_t *kvs, size_t n);
/* Deletes one key, as another writer would. */
void stu_store_delete (stu_fx_t *fx, store_t *store, const char *key);

#endif
