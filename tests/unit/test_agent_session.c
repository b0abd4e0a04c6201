/* The agent's scheduler session against an in-process fake scheduler on
 * loopback (the real wire library on both ends): Hello, NodeRegister,
 * heartbeats, allocation events, logs, errors, reconnects, shutdown.
 *
 * agent_new needs cgroups (root); the cases skip when it cannot run. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "orch_test.h"

#include "agent_internal.h"
#include "orch_log.h"
#include "orch_util.h"
#include "wire.h"

#define MAX_MSGS 512

/* What the fake scheduler received (copied out of the envelopes). */
typedef struct
{
  int type; /* Orch__Envelope__MsgCase */
  uint64_t request_id;
  char s1[256];   /* hello identity / alloc id / error message / register node id */
  char s2[256];   /* hello token / alloc state / register address */
  char s3[256];   /* hello role / alloc reason / register cgroup version */
  int64_t n1, n2; /* code, capacity cpu/memory, exit code, ... */
  uint32_t u1;    /* protocol version, n_allocs, ... */
  size_t len;     /* logs data length */
  bool flag;      /* logs truncated */
  bool eof;       /* logs eof */
  char data[256]; /* logs data (NUL-terminated, cut) */
  char labels[256];
  char runtimes[64];
} msg_t;

typedef struct
{
  uv_loop_t loop;
  uv_tcp_t server;
  int port;
  wire_conn_t *peer; /* the agent's connection, server side */
  int accepted;
  bool refuse_hello;
  uint32_t reply_version; /* 0: WIRE_PROTOCOL_VERSION */
  msg_t msgs[MAX_MSGS];
  size_t n_msgs;

  agent_config_t cfg;
  agent_t *agent;
  char state_dir[64];
  char cgroup_parent[64];
} fx_t;

static void
srv_on_message (wire_conn_t *c, Orch__Envelope *env)
{
  fx_t *fx = c->data;
  msg_t *m;
  size_t i;

  if (fx->n_msgs >= MAX_MSGS)
    return;
  m = &fx->msgs[fx->n_msgs++];
  memset (m, 0, sizeof (*m));
  m->type = env->msg_case;
  m->request_id = env->request_id;
  switch (env->msg_case)
    {
    case ORCH__ENVELOPE__MSG_HELLO:
      snprintf (m->s1, sizeof (m->s1), "%s", env->hello->identity);
      snprintf (m->s2, sizeof (m->s2), "%s", env->hello->join_token);
      snprintf (m->s3, sizeof (m->s3), "%s", env->hello->role);
      m->u1 = env->hello->protocol_version;
      {
        Orch__Envelope r = ORCH__ENVELOPE__INIT;
        Orch__HelloReply hr = ORCH__HELLO_REPLY__INIT;
        Orch__Error e = ORCH__ERROR__INIT;
        if (fx->refuse_hello)
          {
            e.code = 1;
            e.message = (char *) "bad join token";
            r.msg_case = ORCH__ENVELOPE__MSG_ERROR;
            r.error = &e;
          }
        else
          {
            hr.protocol_version = fx->reply_version ? fx->reply_version : WIRE_PROTOCOL_VERSION;
            hr.identity = (char *) "fake-scheduler";
            r.msg_case = ORCH__ENVELOPE__MSG_HELLO_REPLY;
            r.hello_reply = &hr;
          }
        wire_conn_send (c, &r, NULL);
      }
      break;
    case ORCH__ENVELOPE__MSG_NODE_REGISTER:
      {
        Orch__NodeRegister *nr = env->node_register;
        snprintf (m->s1, sizeof (m->s1), "%s", nr->node_id);
        snprintf (m->s2, sizeof (m->s2), "%s", nr->address);
        snprintf (m->s3, sizeof (m->s3), "%s|%s", nr->cgroup_version, nr->agent_version);
        m->n1 = nr->capacity ? nr->capacity->cpu_milli : -1;
        m->n2 = nr->capacity ? nr->capacity->memory_bytes : -1;
        m->u1 = (uint32_t) nr->n_allocs;
        for (i = 0; i < nr->n_labels; i++)
          snprintf (m->labels + strlen (m->labels), sizeof (m->labels) - strlen (m->labels),
                    "%s%s=%s", i ? "," : "", nr->labels[i]->key, nr->labels[i]->value);
        for (i = 0; i < nr->n_runtimes; i++)
          snprintf (m->runtimes + strlen (m->runtimes), sizeof (m->runtimes) - strlen (m->runtimes),
                    "%s%s", i ? "," : "", nr->runtimes[i]);
      }
      break;
    case ORCH__ENVELOPE__MSG_HEARTBEAT:
      m->u1 = (uint32_t) env->heartbeat->n_allocs;
      m->n2 = env->heartbeat->usage ? env->heartbeat->usage->memory_bytes : -1;
      break;
    case ORCH__ENVELOPE__MSG_ALLOC_EVENT:
      if (env->alloc_event->status)
        {
          Orch__AllocStatus *st = env->alloc_event->status;
          snprintf (m->s1, sizeof (m->s1), "%s", st->alloc_id);
          snprintf (m->s2, sizeof (m->s2), "%s", st->state);
          snprintf (m->s3, sizeof (m->s3), "%s", st->reason);
          m->n1 = st->exit_code;
        }
      break;
    case ORCH__ENVELOPE__MSG_ERROR:
      m->n1 = env->error->code;
      snprintf (m->s1, sizeof (m->s1), "%s", env->error->message);
      break;
    case ORCH__ENVELOPE__MSG_LOGS_REPLY:
      m->len = env->logs_reply->data.len;
      m->flag = env->logs_reply->truncated;
      m->eof = env->logs_reply->eof;
      snprintf (m->data, sizeof (m->data), "%.*s", (int) env->logs_reply->data.len,
                env->logs_reply->data.data ? (const char *) env->logs_reply->data.data : "");
      break;
    default:
      break;
    }
}

static void
srv_on_close (wire_conn_t *c, const char *reason)
{
  fx_t *fx = c->data;

  if (fx->peer == c)
    fx->peer = NULL;
}

static const wire_conn_ops_t srv_ops = { srv_on_message, NULL, srv_on_close };

static void
srv_on_connection (uv_stream_t *server, int status)
{
  fx_t *fx = server->data;
  wire_conn_t *c;

  if (status < 0)
    return;
  c = wire_conn_new (&fx->loop, &srv_ops, fx, WIRE_MAX_FRAME);
  if (wire_conn_accept (server, c) < 0)
    return;
  /* One agent: a new connection replaces the old one. */
  if (fx->peer)
    wire_conn_close (fx->peer, "replaced");
  fx->peer = c;
  fx->accepted++;
}

static void
srv_send (fx_t *fx, Orch__Envelope *env)
{
  orch_err_t err = { 0 };

  assert_non_null (fx->peer);
  assert_int_equal (wire_conn_send (fx->peer, env, &err), 0);
}

static size_t
count (fx_t *fx, int type)
{
  size_t i, n = 0;

  for (i = 0; i < fx->n_msgs; i++)
    n += fx->msgs[i].type == type;
  return n;
}

static const msg_t *
last (fx_t *fx, int type)
{
  size_t i;

  for (i = fx->n_msgs; i > 0; i--)
    if (fx->msgs[i - 1].type == type)
      return &fx->msgs[i - 1];
  return NULL;
}

static void
on_tick (uv_timer_t *t)
{
}

typedef bool (*pred_fn) (fx_t *fx, const void *arg);

static bool
run_until (fx_t *fx, pred_fn pred, const void *arg, int timeout_ms)
{
  int64_t deadline = orch_now_mono_ms () + timeout_ms;
  uv_timer_t tick;
  bool ok;

  uv_timer_init (&fx->loop, &tick);
  uv_timer_start (&tick, on_tick, 5, 5);
  while (!(ok = pred (fx, arg)) && orch_now_mono_ms () < deadline)
    uv_run (&fx->loop, UV_RUN_ONCE);
  uv_close ((uv_handle_t *) &tick, NULL);
  uv_run (&fx->loop, UV_RUN_NOWAIT);
  return ok;
}

typedef struct
{
  int type;
  size_t n;
} count_arg_t;

static bool
has_count (fx_t *fx, const void *arg)
{
  const count_arg_t *c = arg;
  return count (fx, c->type) >= c->n;
}

static void
wait_count (fx_t *fx, int type, size_t n, int timeout_ms)
{
  count_arg_t c = { type, n };
  if (!run_until (fx, has_count, &c, timeout_ms))
    fail_msg ("waited for %zu messages of type %d, got %zu", n, type, count (fx, type));
}

/* Waits for an AllocEvent of id in state. */
typedef struct
{
  const char *id;
  const char *state;
} ev_arg_t;

static bool
has_event (fx_t *fx, const void *arg)
{
  const ev_arg_t *e = arg;
  size_t i;

  for (i = 0; i < fx->n_msgs; i++)
    if (fx->msgs[i].type == ORCH__ENVELOPE__MSG_ALLOC_EVENT && strcmp (fx->msgs[i].s1, e->id) == 0
        && strcmp (fx->msgs[i].s2, e->state) == 0)
      return true;
  return false;
}

static const msg_t *
wait_event (fx_t *fx, const char *id, const char *state)
{
  ev_arg_t e = { id, state };
  size_t i;

  if (!run_until (fx, has_event, &e, 3000))
    fail_msg ("no AllocEvent %s %s", id, state);
  for (i = fx->n_msgs; i > 0; i--)
    if (fx->msgs[i - 1].type == ORCH__ENVELOPE__MSG_ALLOC_EVENT
        && strcmp (fx->msgs[i - 1].s1, id) == 0 && strcmp (fx->msgs[i - 1].s2, state) == 0)
      return &fx->msgs[i - 1];
  return NULL;
}

static int
setup (void **state)
{
  fx_t *fx = calloc (1, sizeof (*fx));
  struct sockaddr_in addr;
  struct sockaddr_storage bound;
  int len = sizeof (bound);
  char sched[64];
  orch_err_t err = { 0 };

  orch_log_init ("test", getenv ("TEST_AGENT_DEBUG") ? ORCH_LOG_DEBUG : ORCH_LOG_ERROR);
  assert_int_equal (uv_loop_init (&fx->loop), 0);
  assert_int_equal (uv_tcp_init (&fx->loop, &fx->server), 0);
  fx->server.data = fx;
  uv_ip4_addr ("127.0.0.1", 0, &addr);
  assert_int_equal (uv_tcp_bind (&fx->server, (struct sockaddr *) &addr, 0), 0);
  assert_int_equal (uv_listen ((uv_stream_t *) &fx->server, 8, srv_on_connection), 0);
  assert_int_equal (uv_tcp_getsockname (&fx->server, (struct sockaddr *) &bound, &len), 0);
  fx->port = ntohs (((struct sockaddr_in *) &bound)->sin_port);

  snprintf (fx->state_dir, sizeof (fx->state_dir), "/tmp/test_agent_session.XXXXXX");
  assert_non_null (mkdtemp (fx->state_dir));
  snprintf (fx->cgroup_parent, sizeof (fx->cgroup_parent), "orch-agentd-test-%d", (int) getpid ());
  snprintf (sched, sizeof (sched), "127.0.0.1:%d", fx->port);
  {
    const char *argv[]
        = { "orch-agent", "--scheduler", sched, "--node-id", "test-node", "--labels",
            "zone=a,disk=ssd", "--state-dir", fx->state_dir, "--cgroup-parent", fx->cgroup_parent,
            "--join-token", "tok", "--heartbeat-interval", "100ms",
            /* No node bridge from a unit test. */
            "--bridge", "none" };
    assert_int_equal (
        agent_config_parse (ORCH_ARRAY_LEN (argv), (char *const *) argv, NULL, &fx->cfg, &err),
        AGENT_CONFIG_RUN);
  }
  *state = fx;
  return 0;
}

static void
remove_cgroup_parent (fx_t *fx)
{
  const char *roots[5];
  size_t i;

  if (fx->agent == NULL || fx->agent->cg == NULL)
    return;
  roots[0] = fx->agent->cg->layout.v1_cpu;
  roots[1] = fx->agent->cg->layout.v1_cpuacct;
  roots[2] = fx->agent->cg->layout.v1_memory;
  roots[3] = fx->agent->cg->layout.v1_pids;
  roots[4] = fx->agent->cg->layout.v2_root;
  for (i = 0; i < 5; i++)
    if (roots[i])
      {
        cleanup_free char *p = xasprintf ("%s/%s", roots[i], fx->cgroup_parent);
        rmdir (p);
      }
}

static int
teardown (void **state)
{
  fx_t *fx = *state;

  if (fx->agent)
    {
      agent_shutdown (fx->agent, "test over");
      if (fx->peer)
        wire_conn_close (fx->peer, "test over");
    }
  uv_close ((uv_handle_t *) &fx->server, NULL);
  uv_run (&fx->loop, UV_RUN_DEFAULT);
  remove_cgroup_parent (fx);
  agent_free (fx->agent);
  assert_int_equal (uv_loop_close (&fx->loop), 0);
  agent_config_clear (&fx->cfg);
  orch_rm_rf (fx->state_dir);
  free (fx);
  return 0;
}

/* Starts the agent, or skips the case where it cannot run here. */
static void
start_agent (fx_t *fx)
{
  orch_err_t err = { 0 };

  if (geteuid () != 0)
    orch_skip ("needs root (cgroups, namespaces)");
  fx->agent = agent_new (&fx->loop, &fx->cfg, &err);
  if (fx->agent == NULL)
    {
      orch_skip ("agent_new: %s", err.msg);
    }
}

static void
test_session_hello_register_heartbeat (void **state)
{
  fx_t *fx = *state;
  const msg_t *m;

  start_agent (fx);
  wait_count (fx, ORCH__ENVELOPE__MSG_NODE_REGISTER, 1, 3000);
  /* The Hello came first and said who the agent is. */
  assert_int_equal (fx->msgs[0].type, ORCH__ENVELOPE__MSG_HELLO);
  assert_int_equal (fx->msgs[0].u1, WIRE_PROTOCOL_VERSION);
  assert_string_equal (fx->msgs[0].s1, "test-node");
  assert_string_equal (fx->msgs[0].s2, "tok");
  assert_string_equal (fx->msgs[0].s3, "agent");

  m = last (fx, ORCH__ENVELOPE__MSG_NODE_REGISTER);
  assert_string_equal (m->s1, "test-node");
  /* No --advertise-address: the local address of the session. */
  assert_string_equal (m->s2, "127.0.0.1");
  assert_true (strncmp (m->s3, "v1|", 3) == 0 || strncmp (m->s3, "v2|", 3) == 0);
  assert_non_null (strstr (m->s3, ORCH_AGENT_VERSION));
  assert_string_equal (m->labels, "zone=a,disk=ssd");
  assert_true (m->n1 >= 1000);
  assert_true (m->n2 > 0);
  assert_int_equal (m->u1, 0);

  /* Heartbeats every 100 ms. */
  wait_count (fx, ORCH__ENVELOPE__MSG_HEARTBEAT, 3, 2000);
  assert_int_equal (last (fx, ORCH__ENVELOPE__MSG_HEARTBEAT)->u1, 0);
}

static void
test_session_logs_unknown_alloc (void **state)
{
  fx_t *fx = *state;
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  Orch__LogsRequest lr = ORCH__LOGS_REQUEST__INIT;
  const msg_t *m;

  start_agent (fx);
  wait_count (fx, ORCH__ENVELOPE__MSG_NODE_REGISTER, 1, 3000);
  lr.alloc_id = (char *) "nope-1";
  env.request_id = 42;
  env.msg_case = ORCH__ENVELOPE__MSG_LOGS_REQUEST;
  env.logs_request = &lr;
  srv_send (fx, &env);
  wait_count (fx, ORCH__ENVELOPE__MSG_ERROR, 1, 2000);
  m = last (fx, ORCH__ENVELOPE__MSG_ERROR);
  assert_int_equal (m->request_id, 42);
  assert_int_equal (m->n1, 3);
  assert_string_equal (m->s1, "allocation nope-1 is not on node test-node");
}

static void
test_session_alloc_lifecycle (void **state)
{
  fx_t *fx = *state;
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  Orch__StartAlloc sa = ORCH__START_ALLOC__INIT;
  Orch__StopAlloc st = ORCH__STOP_ALLOC__INIT;
  Orch__LogsRequest lr = ORCH__LOGS_REQUEST__INIT;
  Orch__Alloc al = ORCH__ALLOC__INIT;
  const msg_t *m;

  start_agent (fx);
  wait_count (fx, ORCH__ENVELOPE__MSG_NODE_REGISTER, 1, 3000);

  /* An image this node does not have: the allocation fails with why. */
  al.alloc_id = (char *) "web-00000001";
  al.service = (char *) "web";
  al.isolation = (char *) "container";
  al.spec_json
      = (char *) "{\"name\":\"web\",\"image\":\"no-such-image\",\"resources\":"
                 "{\"cpu\":\"100m\",\"memory\":\"16Mi\"},\"restart\":{\"policy\":\"never\"}}";
  al.spec_version = 1;
  sa.alloc = &al;
  env.msg_case = ORCH__ENVELOPE__MSG_START_ALLOC;
  env.start_alloc = &sa;
  srv_send (fx, &env);
  wait_event (fx, "web-00000001", "pending");
  m = wait_event (fx, "web-00000001", "failed");
  assert_true (strlen (m->s3) > 0);

  /* It is in the heartbeat. */
  {
    size_t before = count (fx, ORCH__ENVELOPE__MSG_HEARTBEAT);
    wait_count (fx, ORCH__ENVELOPE__MSG_HEARTBEAT, before + 1, 2000);
    assert_int_equal (last (fx, ORCH__ENVELOPE__MSG_HEARTBEAT)->u1, 1);
  }

  /* Its log does not exist: an empty reply, same request id. */
  lr.alloc_id = (char *) "web-00000001";
  env.request_id = 7;
  env.msg_case = ORCH__ENVELOPE__MSG_LOGS_REQUEST;
  env.logs_request = &lr;
  srv_send (fx, &env);
  wait_count (fx, ORCH__ENVELOPE__MSG_LOGS_REPLY, 1, 2000);
  m = last (fx, ORCH__ENVELOPE__MSG_LOGS_REPLY);
  assert_int_equal (m->request_id, 7);
  assert_int_equal (m->len, 0);
  assert_false (m->flag);

  /* Stop: "stopped", and gone from the heartbeat. */
  st.alloc_id = (char *) "web-00000001";
  env.request_id = 0;
  env.msg_case = ORCH__ENVELOPE__MSG_STOP_ALLOC;
  env.stop_alloc = &st;
  srv_send (fx, &env);
  m = wait_event (fx, "web-00000001", "stopped");
  assert_string_equal (m->s3, "stopped by the scheduler");
  {
    size_t before = count (fx, ORCH__ENVELOPE__MSG_HEARTBEAT);
    wait_count (fx, ORCH__ENVELOPE__MSG_HEARTBEAT, before + 1, 2000);
    assert_int_equal (last (fx, ORCH__ENVELOPE__MSG_HEARTBEAT)->u1, 0);
  }

  /* Stopping what the node does not have still answers "stopped". */
  st.alloc_id = (char *) "ghost-1";
  srv_send (fx, &env);
  m = wait_event (fx, "ghost-1", "stopped");
  assert_string_equal (m->s3, "not on this node");
}

static void
test_session_desired_allocs (void **state)
{
  fx_t *fx = *state;
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  Orch__DesiredAllocs d = ORCH__DESIRED_ALLOCS__INIT;
  Orch__Alloc a1 = ORCH__ALLOC__INIT;
  Orch__Alloc *list[] = { &a1 };

  start_agent (fx);
  wait_count (fx, ORCH__ENVELOPE__MSG_NODE_REGISTER, 1, 3000);
  a1.alloc_id = (char *) "db-00000001";
  a1.service = (char *) "db";
  a1.spec_json = (char *) "{\"name\":\"db\"}"; /* invalid: fails with the reason */
  d.n_allocs = 1;
  d.allocs = list;
  env.msg_case = ORCH__ENVELOPE__MSG_DESIRED_ALLOCS;
  env.desired_allocs = &d;
  srv_send (fx, &env);
  assert_non_null (strstr (wait_event (fx, "db-00000001", "failed")->s3, "invalid spec"));

  /* An empty list: it is stopped. */
  d.n_allocs = 0;
  d.allocs = NULL;
  srv_send (fx, &env);
  wait_event (fx, "db-00000001", "stopped");
}

static void
test_session_reconnects_after_drop (void **state)
{
  fx_t *fx = *state;

  start_agent (fx);
  wait_count (fx, ORCH__ENVELOPE__MSG_NODE_REGISTER, 1, 3000);
  wire_conn_close (fx->peer, "scheduler restarts");
  /* Back within the first backoff steps, with a new Hello and register. */
  wait_count (fx, ORCH__ENVELOPE__MSG_NODE_REGISTER, 2, 3000);
  assert_int_equal (count (fx, ORCH__ENVELOPE__MSG_HELLO), 2);
  assert_int_equal (fx->accepted, 2);
}

static void
test_session_refused_hello_retries (void **state)
{
  fx_t *fx = *state;

  fx->refuse_hello = true;
  start_agent (fx);
  /* Refused: no register, and it tries again with backoff (200, 400 ms...). */
  wait_count (fx, ORCH__ENVELOPE__MSG_HELLO, 3, 4000);
  assert_int_equal (count (fx, ORCH__ENVELOPE__MSG_NODE_REGISTER), 0);
  fx->refuse_hello = false;
  wait_count (fx, ORCH__ENVELOPE__MSG_NODE_REGISTER, 1, 8000);
}

static void
test_session_protocol_mismatch_not_registered (void **state)
{
  fx_t *fx = *state;

  fx->reply_version = WIRE_PROTOCOL_VERSION + 1;
  start_agent (fx);
  /* A scheduler speaking another protocol gets no register; the agent keeps
   * trying (it may be upgraded). */
  wait_count (fx, ORCH__ENVELOPE__MSG_HELLO, 2, 3000);
  assert_int_equal (count (fx, ORCH__ENVELOPE__MSG_NODE_REGISTER), 0);
  assert_true (fx->accepted >= 2);
}

static void
test_session_no_commands_before_hello_reply (void **state)
{
  fx_t *fx = *state;
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  Orch__StopAlloc st = ORCH__STOP_ALLOC__INIT;

  fx->refuse_hello = true; /* the Error is answered first; then junk */
  start_agent (fx);
  wait_count (fx, ORCH__ENVELOPE__MSG_HELLO, 1, 3000);
  /* Commands before a HelloReply are not obeyed. */
  st.alloc_id = (char *) "web-1";
  env.msg_case = ORCH__ENVELOPE__MSG_STOP_ALLOC;
  env.stop_alloc = &st;
  if (fx->peer)
    wire_conn_send (fx->peer, &env, NULL);
  uv_sleep (100);
  uv_run (&fx->loop, UV_RUN_NOWAIT);
  assert_int_equal (count (fx, ORCH__ENVELOPE__MSG_ALLOC_EVENT), 0);
  assert_int_equal (count (fx, ORCH__ENVELOPE__MSG_NODE_REGISTER), 0);
}

static bool
peer_gone (fx_t *fx, const void *arg)
{
  return fx->peer == NULL;
}

static void
test_session_shutdown_closes (void **state)
{
  fx_t *fx = *state;

  start_agent (fx);
  wait_count (fx, ORCH__ENVELOPE__MSG_NODE_REGISTER, 1, 3000);
  agent_shutdown (fx->agent, "test");
  assert_true (run_until (fx, peer_gone, NULL, 2000));
  /* No reconnect after a shutdown. */
  uv_sleep (300);
  uv_run (&fx->loop, UV_RUN_NOWAIT);
  assert_int_equal (fx->accepted, 1);
}

/* LogsRequest{follow}: the tail, then appended data as more LogsReply
 * frames with the same request id, until LogsCancel (answered with eof) or
 * the allocation is forgotten (eof too). */
static void
test_session_logs_follow (void **state)
{
  fx_t *fx = *state;
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  Orch__StartAlloc sa = ORCH__START_ALLOC__INIT;
  Orch__LogsRequest lr = ORCH__LOGS_REQUEST__INIT;
  Orch__LogsCancel lc = ORCH__LOGS_CANCEL__INIT;
  Orch__StopAlloc st = ORCH__STOP_ALLOC__INIT;
  Orch__Alloc al = ORCH__ALLOC__INIT;
  cleanup_free char *dir = xasprintf ("%s/allocs/web-00000009", fx->state_dir);
  cleanup_free char *log = xasprintf ("%s/log", dir);
  const msg_t *m;
  size_t n;
  FILE *f;

  start_agent (fx);
  wait_count (fx, ORCH__ENVELOPE__MSG_NODE_REGISTER, 1, 3000);
  al.alloc_id = (char *) "web-00000009";
  al.service = (char *) "web";
  al.isolation = (char *) "container";
  al.spec_json
      = (char *) "{\"name\":\"web\",\"image\":\"no-such-image\",\"resources\":"
                 "{\"cpu\":\"100m\",\"memory\":\"16Mi\"},\"restart\":{\"policy\":\"never\"}}";
  al.spec_version = 1;
  sa.alloc = &al;
  env.msg_case = ORCH__ENVELOPE__MSG_START_ALLOC;
  env.start_alloc = &sa;
  srv_send (fx, &env);
  wait_event (fx, "web-00000009", "failed");
  /* Stands in for what a workload wrote. */
  assert_int_equal (orch_mkdir_p (dir, 0700), 0);
  assert_int_equal (orch_write_file_atomic (log, "one\ntwo\n", 8, 0600), 0);

  lr.alloc_id = (char *) "web-00000009";
  lr.tail_bytes = 4;
  lr.follow = true;
  env.request_id = 11;
  env.msg_case = ORCH__ENVELOPE__MSG_LOGS_REQUEST;
  env.logs_request = &lr;
  srv_send (fx, &env);
  wait_count (fx, ORCH__ENVELOPE__MSG_LOGS_REPLY, 1, 2000);
  m = last (fx, ORCH__ENVELOPE__MSG_LOGS_REPLY);
  assert_int_equal (m->request_id, 11);
  assert_string_equal (m->data, "two\n");
  assert_true (m->flag);
  assert_false (m->eof);

  f = fopen (log, "a");
  fputs ("three\n", f);
  fclose (f);
  wait_count (fx, ORCH__ENVELOPE__MSG_LOGS_REPLY, 2, 2000);
  m = last (fx, ORCH__ENVELOPE__MSG_LOGS_REPLY);
  assert_int_equal (m->request_id, 11);
  assert_string_equal (m->data, "three\n");
  assert_false (m->eof);

  /* Cancel: one last reply with eof, then nothing more. */
  lc.request_id = 11;
  env.request_id = 0;
  env.msg_case = ORCH__ENVELOPE__MSG_LOGS_CANCEL;
  env.logs_cancel = &lc;
  srv_send (fx, &env);
  wait_count (fx, ORCH__ENVELOPE__MSG_LOGS_REPLY, 3, 2000);
  m = last (fx, ORCH__ENVELOPE__MSG_LOGS_REPLY);
  assert_int_equal (m->request_id, 11);
  assert_true (m->eof);
  assert_int_equal (m->len, 0);
  f = fopen (log, "a");
  fputs ("four\n", f);
  fclose (f);
  n = count (fx, ORCH__ENVELOPE__MSG_LOGS_REPLY);
  {
    size_t hb = count (fx, ORCH__ENVELOPE__MSG_HEARTBEAT);
    wait_count (fx, ORCH__ENVELOPE__MSG_HEARTBEAT, hb + 5, 3000); /* 500 ms */
  }
  assert_int_equal (count (fx, ORCH__ENVELOPE__MSG_LOGS_REPLY), n);

  /* A follow ends with eof when the allocation is forgotten. */
  lr.tail_bytes = 0;
  env.request_id = 12;
  env.msg_case = ORCH__ENVELOPE__MSG_LOGS_REQUEST;
  env.logs_request = &lr;
  srv_send (fx, &env);
  wait_count (fx, ORCH__ENVELOPE__MSG_LOGS_REPLY, n + 1, 2000);
  assert_string_equal (last (fx, ORCH__ENVELOPE__MSG_LOGS_REPLY)->data, "one\ntwo\nthree\nfour\n");
  st.alloc_id = (char *) "web-00000009";
  env.request_id = 0;
  env.msg_case = ORCH__ENVELOPE__MSG_STOP_ALLOC;
  env.stop_alloc = &st;
  srv_send (fx, &env);
  wait_count (fx, ORCH__ENVELOPE__MSG_LOGS_REPLY, n + 2, 2000);
  m = last (fx, ORCH__ENVELOPE__MSG_LOGS_REPLY);
  assert_int_equal (m->request_id, 12);
  assert_true (m->eof);
}

/* Allocation directories (and their cgroups) from a previous run without a
 * record to re-adopt them by are cleaned up at start; anything else in
 * allocs/ is left alone. */
static void
test_session_cleans_leftovers (void **state)
{
  fx_t *fx = *state;
  cleanup_free char *old = xasprintf ("%s/allocs/old-00000001", fx->state_dir);
  cleanup_free char *old_log = xasprintf ("%s/log", old);
  cleanup_free char *other = xasprintf ("%s/allocs/Not_An_Alloc", fx->state_dir);
  cg_limits_t lim = { 0 };
  orch_err_t err = { 0 };
  cg_manager_t *cg;
  struct stat st;

  if (geteuid () != 0)
    orch_skip ("needs root (cgroups, namespaces)");
  cg = cg_manager_new (fx->cgroup_parent, &err);
  if (cg == NULL)
    orch_skip ("no cgroup manager here: %s", err.msg);
  assert_int_equal (cg->ops->create (cg, "old-00000001", &lim, &err), 0);
  assert_true (cg->ops->exists (cg, "old-00000001"));
  assert_int_equal (orch_mkdir_p (old, 0700), 0);
  assert_int_equal (orch_write_file_atomic (old_log, "x\n", 2, 0600), 0);
  assert_int_equal (orch_mkdir_p (other, 0700), 0);

  start_agent (fx);
  assert_false (cg->ops->exists (cg, "old-00000001"));
  assert_true (stat (old, &st) < 0 && errno == ENOENT);
  assert_int_equal (stat (other, &st), 0);
  cg_manager_free (cg);
}

/* A busybox root filesystem imported as image "busybox" (by its directory
 * layout, <state>/images/NAME/rootfs), for the real container runtime. */
static bool
make_busybox_image (fx_t *fx)
{
  cleanup_free char *bin = xasprintf ("%s/images/busybox/rootfs/bin", fx->state_dir);
  cleanup_free char *bb = xasprintf ("%s/busybox", bin);
  cleanup_free char *cmd = NULL;
  static const char *const links[] = { "sh", "sleep", "echo" };
  size_t i;

  if (access ("/bin/busybox", X_OK) != 0)
    return false;
  assert_int_equal (orch_mkdir_p (bin, 0755), 0);
  cmd = xasprintf ("cp /bin/busybox '%s'", bb);
  assert_int_equal (system (cmd), 0);
  for (i = 0; i < ORCH_ARRAY_LEN (links); i++)
    {
      cleanup_free char *l = xasprintf ("%s/%s", bin, links[i]);
      assert_int_equal (symlink ("busybox", l), 0);
    }
  return true;
}

static void
send_start (fx_t *fx, const char *id, const char *command_json, const char *restart_json)
{
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  Orch__StartAlloc sa = ORCH__START_ALLOC__INIT;
  Orch__Alloc al = ORCH__ALLOC__INIT;
  cleanup_free char *spec
      = xasprintf ("{\"name\":\"web\",\"image\":\"busybox\",\"network\":\"host\","
                   "\"resources\":{\"cpu\":\"100m\",\"memory\":\"32Mi\"},\"command\":%s,"
                   "\"restart\":%s}",
                   command_json, restart_json);

  al.alloc_id = (char *) id;
  al.service = (char *) "web";
  al.isolation = (char *) "container";
  al.spec_json = spec;
  al.spec_version = 1;
  sa.alloc = &al;
  env.msg_case = ORCH__ENVELOPE__MSG_START_ALLOC;
  env.start_alloc = &sa;
  srv_send (fx, &env);
}

/* With the real container runtime (orch-init from the build tree): a
 * workload runs, its exit code and log come back, a stop ends it. */
static void
test_session_real_container (void **state)
{
  fx_t *fx = *state;
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  Orch__LogsRequest lr = ORCH__LOGS_REQUEST__INIT;
  Orch__StopAlloc st = ORCH__STOP_ALLOC__INIT;
  const msg_t *m;

#ifdef ORCH_INIT_BIN
  setenv ("ORCH_INIT_PATH", ORCH_INIT_BIN, 1);
#endif
  if (!make_busybox_image (fx))
    orch_skip ("cannot make the busybox image (deploy/make-busybox-image.sh)");
  start_agent (fx);
  if (fx->agent->n_runtimes == 0)
    {
      orch_skip ("no container runtime here");
    }
  wait_count (fx, ORCH__ENVELOPE__MSG_NODE_REGISTER, 1, 3000);
  assert_string_equal (last (fx, ORCH__ENVELOPE__MSG_NODE_REGISTER)->runtimes, "container");

  send_start (fx, "once-00000001", "[\"/bin/sh\",\"-c\",\"echo hello from orch; exit 3\"]",
              "{\"policy\":\"never\"}");
  wait_event (fx, "once-00000001", "running");
  m = wait_event (fx, "once-00000001", "exited");
  assert_int_equal (m->n1, 3);

  lr.alloc_id = (char *) "once-00000001";
  env.request_id = 9;
  env.msg_case = ORCH__ENVELOPE__MSG_LOGS_REQUEST;
  env.logs_request = &lr;
  srv_send (fx, &env);
  wait_count (fx, ORCH__ENVELOPE__MSG_LOGS_REPLY, 1, 2000);
  m = last (fx, ORCH__ENVELOPE__MSG_LOGS_REPLY);
  assert_int_equal (m->request_id, 9);
  assert_int_equal (m->len, strlen ("hello from orch\n"));

  /* A command that does not exist: failed, saying so. */
  send_start (fx, "typo-00000001", "[\"/bin/no-such-command\"]", "{\"policy\":\"never\"}");
  m = wait_event (fx, "typo-00000001", "failed");
  assert_int_equal (m->n1, 127);
  assert_non_null (strstr (m->s3, "failed exec /bin/no-such-command"));

  send_start (fx, "long-00000001", "[\"/bin/sleep\",\"1000\"]", "{\"policy\":\"always\"}");
  wait_event (fx, "long-00000001", "running");
  st.alloc_id = (char *) "long-00000001";
  st.grace_ms = 3000;
  env.request_id = 0;
  env.msg_case = ORCH__ENVELOPE__MSG_STOP_ALLOC;
  env.stop_alloc = &st;
  srv_send (fx, &env);
  m = wait_event (fx, "long-00000001", "stopped");
  assert_string_equal (m->s3, "stopped by the scheduler");
}

static const struct CMUnitTest tests[] = {
  cmocka_unit_test_setup_teardown (test_session_hello_register_heartbeat, setup, teardown),
  cmocka_unit_test_setup_teardown (test_session_logs_unknown_alloc, setup, teardown),
  cmocka_unit_test_setup_teardown (test_session_logs_follow, setup, teardown),
  cmocka_unit_test_setup_teardown (test_session_alloc_lifecycle, setup, teardown),
  cmocka_unit_test_setup_teardown (test_session_desired_allocs, setup, teardown),
  cmocka_unit_test_setup_teardown (test_session_reconnects_after_drop, setup, teardown),
  cmocka_unit_test_setup_teardown (test_session_refused_hello_retries, setup, teardown),
  cmocka_unit_test_setup_teardown (test_session_shutdown_closes, setup, teardown),
  cmocka_unit_test_setup_teardown (test_session_protocol_mismatch_not_registered, setup, teardown),
  cmocka_unit_test_setup_teardown (test_session_no_commands_before_hello_reply, setup, teardown),
  cmocka_unit_test_setup_teardown (test_session_real_container, setup, teardown),
  cmocka_unit_test_setup_teardown (test_session_cleans_leftovers, setup, teardown),
};

ORCH_TEST_MAIN (tests)
