/* orch-scheduler as a library: the daemon's main parses flags into a
 * sched_config_t and runs the loop; tests can drive the same code. */
#ifndef ORCH_SCHEDULER_H
#define ORCH_SCHEDULER_H

#include <stdint.h>
#include <uv.h>

#include "orch_err.h"

typedef struct sched_config_s
{
  const char *etcd_endpoints; /* "http://127.0.0.1:2379[,http://...]" */
  const char *api_listen;     /* "127.0.0.1:7700" */
  const char *agent_listen;   /* "0.0.0.0:7701" */
  const char *join_token;     /* NULL or "" = no token required */
  int64_t node_ttl_ms;        /* heartbeat TTL (default 10 s) */
  int64_t node_grace_ms;      /* extra time before a silent node is down (default 10 s) */
  const char *identity;       /* this scheduler's name, for Hello replies and logs */
  int64_t leader_ttl_ms;      /* lease of /orch/leader; 0 = 10 s */
  const char *metrics_listen; /* "127.0.0.1:7780" for GET /metrics, or NULL */
} sched_config_t;

typedef struct sched_s sched_t;

/* Creates the scheduler on loop: opens the store, binds both listeners and
 * campaigns for /orch/leader; the leader loads the state from etcd and
 * serves, others stand by (refusing connections with the leader's name)
 * until it is gone. Returns NULL with err when a listener cannot be bound
 * or the store cannot be created. */
sched_t *sched_new (uv_loop_t *loop, const sched_config_t *cfg, orch_err_t *err);

/* The same over a given store (the in-memory one in unit tests). The caller
 * keeps owning store: it must outlive the scheduler (destroy it after
 * sched_free), and may be handed to a new scheduler to test a restart. */
typedef struct store_s store_t;
sched_t *sched_new_with_store (uv_loop_t *loop, const sched_config_t *cfg, store_t *store,
                               orch_err_t *err);

/* Starts a clean shutdown: closes listeners and connections, cancels store
 * requests; the loop ends once every handle is closed. */
void sched_stop (sched_t *s);

/* Frees what is left after the loop has ended. */
void sched_free (sched_t *s);

/* What the daemon exits with once the loop has ended: 0 after a stop asked
 * for, 1 when it stopped because it lost the leadership. */
int sched_exit_code (const sched_t *s);

#endif
