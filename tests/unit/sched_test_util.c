/* Fixture, fake peers and store helpers for test_sched.c (see sched_test_util.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "orch_test.h"

#include "orch_log.h"
#include "sched_internal.h"
#include "sched_test_util.h"

#define STU_TICK_MS 5

/* ---- Loop ------------------------------------------------------------------- */

static void
on_ticker (uv_timer_t *t)
{
  (void) t; /* only wakes uv_run */
}

void
stu_run_once (stu_fx_t *fx)
{
  uv_run (&fx->loop, UV_RUN_ONCE);
}

void
stu_run_for (stu_fx_t *fx, int64_t ms)
{
  int64_t deadline = orch_now_mono_ms () + ms;
  while (orch_now_mono_ms () < deadline)
    stu_run_once (fx);
}

/* A port that was free a moment ago: bind to port 0, read it, close. */
int
stu_free_port (void)
{
  int fd = socket (AF_INET, SOCK_STREAM, 0);
  assert_true (fd >= 0);
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0 };
  sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  assert_int_equal (bind (fd, (struct sockaddr *) &sa, sizeof sa), 0);
  socklen_t len = sizeof sa;
  assert_int_equal (getsockname (fd, (struct sockaddr *) &sa, &len), 0);
  close (fd);
  return ntohs (sa.sin_port);
}

void
stu_fx_init (stu_fx_t *fx)
{
  memset (fx, 0, sizeof *fx);
  orch_log_init ("sched-test", getenv ("ORCH_TEST_VERBOSE") ? ORCH_LOG_DEBUG : ORCH_LOG_ERROR);
  assert_int_equal (uv_loop_init (&fx->loop), 0);
  uv_timer_init (&fx->loop, &fx->ticker);
  uv_timer_start (&fx->ticker, on_ticker, STU_TICK_MS, STU_TICK_MS);
  fx->api_port = stu_free_port ();
  do
    fx->agent_port = stu_free_port ();
  while (fx->agent_port == fx->api_port);
  snprintf (fx->api_addr, sizeof fx->api_addr, "127.0.0.1:%d", fx->api_port);
  snprintf (fx->agent_addr, sizeof fx->agent_addr, "127.0.0.1:%d", fx->agent_port);
  fx->cfg.api_listen = fx->api_addr;
  fx->cfg.agent_listen = fx->agent_addr;
  fx->cfg.node_ttl_ms = 10000;
  fx->cfg.node_grace_ms = 10000;
  fx->cfg.identity = "sched-test";
}

static void
peer_close_handles (stu_peer_t *p)
{
  if (p->wc)
    wire_conn_close (p->wc, "test over");
  if (p->hb_running)
    {
      uv_timer_stop (&p->hb_timer);
      uv_close ((uv_handle_t *) &p->hb_timer, NULL);
      p->hb_running = false;
    }
}

static void
on_walk_report (uv_handle_t *h, void *arg)
{
  (void) arg;
  fprintf (stderr, "handle left open: %s %p data %p (closing: %d, active: %d)\n",
           uv_handle_type_name (h->type), (void *) h, h->data, uv_is_closing (h),
           uv_is_active (h));
}

void
stu_fx_teardown (stu_fx_t *fx)
{
  for (size_t i = 0; i < fx->n_peers; i++)
    peer_close_handles (fx->peers[i]);
  if (fx->s)
    sched_stop (fx->s);
  uv_close ((uv_handle_t *) &fx->ticker, NULL);
  int64_t deadline = orch_now_mono_ms () + 5000;
  while (uv_run (&fx->loop, UV_RUN_NOWAIT) != 0 && orch_now_mono_ms () < deadline)
    ;
  if (fx->s)
    {
      sched_free (fx->s);
      fx->s = NULL;
    }
  /* The store goes after the scheduler that used it. */
  if (fx->store)
    {
      fx->store->ops->destroy (fx->store);
      fx->store = NULL;
      deadline = orch_now_mono_ms () + 5000;
      while (uv_run (&fx->loop, UV_RUN_NOWAIT) != 0 && orch_now_mono_ms () < deadline)
        ;
    }
  for (size_t i = 0; i < fx->n_peers; i++)
    {
      stu_clear (fx->peers[i]);
      free (fx->peers[i]->msgs);
      free (fx->peers[i]);
    }
  fx->n_peers = 0;
  for (size_t i = 0; i < fx->n_garbage; i++)
    free (fx->garbage[i]);
  free (fx->garbage);
  fx->garbage = NULL;
  fx->n_garbage = 0;
  int r = uv_loop_close (&fx->loop);
  if (r != 0)
    uv_walk (&fx->loop, on_walk_report, NULL);
  assert_int_equal (r, 0);
}

void *
stu_keep (stu_fx_t *fx, void *p)
{
  orch_grow ((void **) &fx->garbage, &fx->cap_garbage, fx->n_garbage + 1, sizeof *fx->garbage);
  fx->garbage[fx->n_garbage++] = p;
  return p;
}

char *
stu_strdup (stu_fx_t *fx, const char *s)
{
  return stu_keep (fx, xstrdup (s));
}

/* ---- Scheduler ---------------------------------------------------------------- */

void
stu_sched_start (stu_fx_t *fx)
{
  orch_err_t err = { 0 };
  assert_null (fx->s);
  if (fx->store == NULL)
    fx->store = store_mem_new (&fx->loop);
  fx->s = sched_new_with_store (&fx->loop, &fx->cfg, fx->store, &err);
  if (fx->s == NULL)
    fail_msg ("sched_new_with_store: %s", err.msg);
  /* Loaded once a get is answered with a reply rather than "unavailable". */
  stu_peer_t *cli = stu_cli (fx);
  int64_t deadline = orch_now_mono_ms () + STU_WAIT_MS;
  for (;;)
    {
      Orch__Envelope *r = stu_get (cli, "services", NULL);
      if (r->msg_case == ORCH__ENVELOPE__MSG_GET_REPLY)
        break;
      assert_int_equal (r->msg_case, ORCH__ENVELOPE__MSG_ERROR);
      assert_int_equal (r->error->code, 4);
      if (orch_now_mono_ms () > deadline)
        fail_msg ("the scheduler did not load its state");
      stu_run_for (fx, 20);
    }
  stu_close (cli);
}

void
stu_sched_halt (stu_fx_t *fx, sched_t *s)
{
  sched_stop (s);
  /* The scheduler's own handles and its connections are closed when its
   * counter and its list of connections are empty. */
  int64_t deadline = orch_now_mono_ms () + STU_WAIT_MS;
  while ((s->handles_open > 0 || s->conns != NULL) && orch_now_mono_ms () < deadline)
    uv_run (&fx->loop, UV_RUN_NOWAIT);
  assert_int_equal (s->handles_open, 0);
  assert_null (s->conns);
  /* A few more rounds for close callbacks queued by the last ones. */
  for (int i = 0; i < 10; i++)
    uv_run (&fx->loop, UV_RUN_NOWAIT);
  sched_free (s);
}

void
stu_sched_stop (stu_fx_t *fx)
{
  assert_non_null (fx->s);
  stu_sched_halt (fx, fx->s);
  fx->s = NULL;
}

/* ---- Peers ------------------------------------------------------------------ */

static void
peer_on_message (wire_conn_t *wc, Orch__Envelope *env)
{
  stu_peer_t *p = wc->data;
  size_t len = orch__envelope__get_packed_size (env);
  uint8_t *buf = xmalloc (len ? len : 1);
  orch__envelope__pack (env, buf);
  Orch__Envelope *copy = orch__envelope__unpack (NULL, len, buf);
  free (buf);
  assert_non_null (copy);
  orch_grow ((void **) &p->msgs, &p->cap_msgs, p->n_msgs + 1, sizeof *p->msgs);
  p->msgs[p->n_msgs++] = copy;
}

static void
peer_on_connect (wire_conn_t *wc, int status)
{
  stu_peer_t *p = wc->data;
  if (status == 0)
    p->connected = true;
}

static void
peer_on_close (wire_conn_t *wc, const char *reason)
{
  stu_peer_t *p = wc->data;
  p->closed = true;
  p->wc = NULL;
  snprintf (p->close_reason, sizeof p->close_reason, "%s", reason ? reason : "");
}

static const wire_conn_ops_t peer_ops = {
  .on_message = peer_on_message,
  .on_connect = peer_on_connect,
  .on_close = peer_on_close,
};

stu_peer_t *
stu_connect (stu_fx_t *fx, int port)
{
  assert_true (fx->n_peers < STU_MAX_PEERS);
  stu_peer_t *p = xcalloc (1, sizeof *p);
  p->fx = fx;
  p->next_request_id = 1;
  fx->peers[fx->n_peers++] = p;
  p->wc = wire_conn_new (&fx->loop, &peer_ops, p, WIRE_MAX_FRAME);
  assert_non_null (p->wc);
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) port) };
  sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  wire_conn_connect (p->wc, (const struct sockaddr *) &sa);
  if (!STU_RUN_UNTIL (fx, p->connected || p->closed, STU_WAIT_MS) || !p->connected)
    fail_msg ("connect to port %d: %s", port, p->close_reason);
  return p;
}

void
stu_send_raw (stu_peer_t *p, Orch__Envelope *env)
{
  orch_err_t err = { 0 };
  assert_non_null (p->wc);
  if (wire_conn_send (p->wc, env, &err) < 0)
    fail_msg ("send: %s", err.msg);
}

uint64_t
stu_request (stu_peer_t *p, Orch__Envelope *env)
{
  env->request_id = p->next_request_id++;
  stu_send_raw (p, env);
  return env->request_id;
}

static Orch__Envelope *
find_reply (const stu_peer_t *p, uint64_t request_id)
{
  for (size_t i = 0; i < p->n_msgs; i++)
    if (p->msgs[i]->request_id == request_id)
      return p->msgs[i];
  return NULL;
}

Orch__Envelope *
stu_wait_reply (stu_peer_t *p, uint64_t request_id, int64_t ms)
{
  STU_RUN_UNTIL (p->fx, find_reply (p, request_id) || p->closed, ms);
  return find_reply (p, request_id);
}

size_t
stu_count (const stu_peer_t *p, Orch__Envelope__MsgCase kind)
{
  size_t n = 0;
  for (size_t i = 0; i < p->n_msgs; i++)
    if (p->msgs[i]->msg_case == kind)
      n++;
  return n;
}

Orch__Envelope *
stu_nth (const stu_peer_t *p, Orch__Envelope__MsgCase kind, size_t i)
{
  for (size_t j = 0; j < p->n_msgs; j++)
    if (p->msgs[j]->msg_case == kind && i-- == 0)
      return p->msgs[j];
  return NULL;
}

bool
stu_wait_count (stu_peer_t *p, Orch__Envelope__MsgCase kind, size_t n, int64_t ms)
{
  return STU_RUN_UNTIL (p->fx, stu_count (p, kind) >= n, ms);
}

void
stu_clear (stu_peer_t *p)
{
  for (size_t i = 0; i < p->n_msgs; i++)
    orch__envelope__free_unpacked (p->msgs[i], NULL);
  p->n_msgs = 0;
}

bool
stu_wait_closed (stu_peer_t *p, int64_t ms)
{
  return STU_RUN_UNTIL (p->fx, p->closed, ms);
}

void
stu_close (stu_peer_t *p)
{
  if (p->hb_running)
    {
      uv_timer_stop (&p->hb_timer);
      uv_close ((uv_handle_t *) &p->hb_timer, NULL);
      p->hb_running = false;
    }
  if (p->wc)
    wire_conn_close (p->wc, "closed by the test");
  assert_true (stu_wait_closed (p, STU_WAIT_MS));
}

uint64_t
stu_hello (stu_peer_t *p, uint32_t version, const char *role, const char *identity,
           const char *token)
{
  Orch__Hello h = ORCH__HELLO__INIT;
  h.protocol_version = version;
  h.role = (char *) role;
  h.identity = (char *) identity;
  h.join_token = (char *) (token ? token : "");
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  env.msg_case = ORCH__ENVELOPE__MSG_HELLO;
  env.hello = &h;
  return stu_request (p, &env);
}

/* ---- orchctl ---------------------------------------------------------------- */

static Orch__Envelope *
expect_reply (stu_peer_t *p, uint64_t id)
{
  Orch__Envelope *r = stu_wait_reply (p, id, STU_WAIT_MS);
  if (r == NULL)
    fail_msg ("no reply to request %llu (connection %s%s)", (unsigned long long) id,
              p->closed ? "closed: " : "open", p->close_reason);
  return r;
}

stu_peer_t *
stu_cli (stu_fx_t *fx)
{
  stu_peer_t *p = stu_connect (fx, fx->api_port);
  uint64_t id = stu_hello (p, WIRE_PROTOCOL_VERSION, "cli", "tester@localhost",
                           fx->cfg.join_token);
  Orch__Envelope *r = expect_reply (p, id);
  assert_int_equal (r->msg_case, ORCH__ENVELOPE__MSG_HELLO_REPLY);
  assert_int_equal (r->hello_reply->protocol_version, WIRE_PROTOCOL_VERSION);
  return p;
}

Orch__Envelope *
stu_apply (stu_peer_t *cli, const char *spec_json)
{
  Orch__ApplyRequest req = ORCH__APPLY_REQUEST__INIT;
  req.spec_json = (char *) spec_json;
  req.source = "service.json";
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  env.msg_case = ORCH__ENVELOPE__MSG_APPLY_REQUEST;
  env.apply_request = &req;
  return expect_reply (cli, stu_request (cli, &env));
}

Orch__Envelope *
stu_get (stu_peer_t *cli, const char *kind, const char *name)
{
  Orch__GetRequest req = ORCH__GET_REQUEST__INIT;
  req.kind = (char *) kind;
  req.name = (char *) (name ? name : "");
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  env.msg_case = ORCH__ENVELOPE__MSG_GET_REQUEST;
  env.get_request = &req;
  return expect_reply (cli, stu_request (cli, &env));
}

Orch__Envelope *
stu_delete (stu_peer_t *cli, const char *name)
{
  Orch__DeleteRequest req = ORCH__DELETE_REQUEST__INIT;
  req.kind = "service";
  req.name = (char *) name;
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  env.msg_case = ORCH__ENVELOPE__MSG_DELETE_REQUEST;
  env.delete_request = &req;
  return expect_reply (cli, stu_request (cli, &env));
}

Orch__Envelope *
stu_drain (stu_peer_t *cli, const char *node_id)
{
  Orch__DrainRequest req = ORCH__DRAIN_REQUEST__INIT;
  req.node_id = (char *) node_id;
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  env.msg_case = ORCH__ENVELOPE__MSG_DRAIN_REQUEST;
  env.drain_request = &req;
  return expect_reply (cli, stu_request (cli, &env));
}

Orch__Envelope *
stu_logs (stu_peer_t *cli, const char *alloc_id, uint64_t tail_bytes)
{
  Orch__LogsRequest req = ORCH__LOGS_REQUEST__INIT;
  req.alloc_id = (char *) alloc_id;
  req.tail_bytes = tail_bytes;
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  env.msg_case = ORCH__ENVELOPE__MSG_LOGS_REQUEST;
  env.logs_request = &req;
  return expect_reply (cli, stu_request (cli, &env));
}

static void
fail_unexpected (Orch__Envelope *env, const char *wanted)
{
  if (env->msg_case == ORCH__ENVELOPE__MSG_ERROR)
    fail_msg ("wanted %s, got Error %d: %s%s%s", wanted, env->error->code, env->error->message,
              env->error->n_details ? " / " : "",
              env->error->n_details ? env->error->details[0] : "");
  fail_msg ("wanted %s, got message %d", wanted, (int) env->msg_case);
}

Orch__ApplyReply *
stu_expect_apply (Orch__Envelope *env)
{
  if (env->msg_case != ORCH__ENVELOPE__MSG_APPLY_REPLY)
    fail_unexpected (env, "ApplyReply");
  return env->apply_reply;
}

Orch__GetReply *
stu_expect_get (Orch__Envelope *env)
{
  if (env->msg_case != ORCH__ENVELOPE__MSG_GET_REPLY)
    fail_unexpected (env, "GetReply");
  return env->get_reply;
}

Orch__Error *
stu_expect_error (Orch__Envelope *env, int code)
{
  if (env->msg_case != ORCH__ENVELOPE__MSG_ERROR)
    fail_msg ("wanted Error %d, got message %d", code, (int) env->msg_case);
  if (env->error->code != code)
    fail_msg ("wanted Error %d, got Error %d: %s", code, env->error->code, env->error->message);
  return env->error;
}

Orch__AllocInfo *
stu_find_alloc (Orch__GetReply *r, const char *alloc_id)
{
  for (size_t i = 0; i < r->n_allocs; i++)
    if (strcmp (r->allocs[i]->alloc_id, alloc_id) == 0)
      return r->allocs[i];
  return NULL;
}

Orch__NodeInfo *
stu_find_node (Orch__GetReply *r, const char *node_id)
{
  for (size_t i = 0; i < r->n_nodes; i++)
    if (strcmp (r->nodes[i]->node_id, node_id) == 0)
      return r->nodes[i];
  return NULL;
}

/* ---- Agents ----------------------------------------------------------------- */

stu_peer_t *
stu_agent (stu_fx_t *fx, const char *node_id, int64_t cpu_milli, int64_t memory_bytes,
           const char *const *running_ids, size_t n_running)
{
  stu_peer_t *p = stu_connect (fx, fx->agent_port);
  snprintf (p->node_id, sizeof p->node_id, "%s", node_id);
  uint64_t id = stu_hello (p, WIRE_PROTOCOL_VERSION, "agent", node_id, fx->cfg.join_token);
  Orch__Envelope *r = expect_reply (p, id);
  assert_int_equal (r->msg_case, ORCH__ENVELOPE__MSG_HELLO_REPLY);

  Orch__Resources cap = ORCH__RESOURCES__INIT;
  cap.cpu_milli = cpu_milli;
  cap.memory_bytes = memory_bytes;
  char *runtimes[] = { "container" };
  Orch__NodeRegister__LabelsEntry label = ORCH__NODE_REGISTER__LABELS_ENTRY__INIT;
  label.key = "zone";
  label.value = "a";
  Orch__NodeRegister__LabelsEntry *labels[] = { &label };
  Orch__AllocStatus *st = xcalloc (n_running + 1, sizeof *st);
  Orch__AllocStatus **stp = xcalloc (n_running + 1, sizeof *stp);
  for (size_t i = 0; i < n_running; i++)
    {
      orch__alloc_status__init (&st[i]);
      st[i].alloc_id = (char *) running_ids[i];
      st[i].state = "running";
      st[i].pid = 1000 + (int64_t) i;
      st[i].started_at_ms = orch_now_wall_ms () - 60000;
      stp[i] = &st[i];
    }
  Orch__NodeRegister reg = ORCH__NODE_REGISTER__INIT;
  reg.node_id = (char *) node_id;
  reg.capacity = &cap;
  reg.runtimes = runtimes;
  reg.n_runtimes = 1;
  reg.labels = labels;
  reg.n_labels = 1;
  reg.address = "127.0.0.1";
  reg.cgroup_version = "v1";
  reg.allocs = stp;
  reg.n_allocs = n_running;
  reg.agent_version = "test";
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  env.msg_case = ORCH__ENVELOPE__MSG_NODE_REGISTER;
  env.node_register = &reg;
  stu_send_raw (p, &env);
  free (st);
  free (stp);
  if (!stu_wait_count (p, ORCH__ENVELOPE__MSG_DESIRED_ALLOCS, 1, STU_WAIT_MS))
    fail_msg ("agent %s got no DesiredAllocs after registering%s%s", node_id,
              p->closed ? "; closed: " : "", p->close_reason);
  return p;
}

void
stu_agent_event (stu_peer_t *agent, const char *alloc_id, const char *state)
{
  Orch__AllocStatus st = ORCH__ALLOC_STATUS__INIT;
  st.alloc_id = (char *) alloc_id;
  st.state = (char *) state;
  if (strcmp (state, "running") == 0)
    {
      st.pid = 4242;
      st.started_at_ms = orch_now_wall_ms ();
    }
  Orch__AllocEvent ev = ORCH__ALLOC_EVENT__INIT;
  ev.status = &st;
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  env.msg_case = ORCH__ENVELOPE__MSG_ALLOC_EVENT;
  env.alloc_event = &ev;
  stu_send_raw (agent, &env);
}

void
stu_agent_heartbeat (stu_peer_t *agent)
{
  if (agent->wc == NULL)
    return;
  Orch__Resources usage = ORCH__RESOURCES__INIT;
  usage.cpu_milli = 10;
  usage.memory_bytes = 1 << 20;
  Orch__Heartbeat hb = ORCH__HEARTBEAT__INIT;
  hb.usage = &usage;
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  env.msg_case = ORCH__ENVELOPE__MSG_HEARTBEAT;
  env.heartbeat = &hb;
  orch_err_t err = { 0 };
  wire_conn_send (agent->wc, &env, &err);
}

static void
on_hb_timer (uv_timer_t *t)
{
  stu_agent_heartbeat (t->data);
}

void
stu_agent_heartbeats (stu_peer_t *agent, uint64_t interval_ms)
{
  stu_agent_heartbeat (agent);
  if (agent->hb_running)
    return;
  uv_timer_init (&agent->fx->loop, &agent->hb_timer);
  agent->hb_timer.data = agent;
  uv_timer_start (&agent->hb_timer, on_hb_timer, interval_ms, interval_ms);
  agent->hb_running = true;
}

static size_t
collect_ids (stu_peer_t *agent, bool start, char ***ids)
{
  Orch__Envelope__MsgCase kind
      = start ? ORCH__ENVELOPE__MSG_START_ALLOC : ORCH__ENVELOPE__MSG_STOP_ALLOC;
  size_t n = stu_count (agent, kind);
  char **v = stu_keep (agent->fx, xcalloc (n + 1, sizeof *v));
  for (size_t i = 0; i < n; i++)
    {
      Orch__Envelope *e = stu_nth (agent, kind, i);
      v[i] = stu_strdup (agent->fx,
                         start ? e->start_alloc->alloc->alloc_id : e->stop_alloc->alloc_id);
    }
  *ids = v;
  return n;
}

size_t
stu_started (stu_peer_t *agent, char ***ids)
{
  return collect_ids (agent, true, ids);
}

size_t
stu_stopped (stu_peer_t *agent, char ***ids)
{
  return collect_ids (agent, false, ids);
}

bool
stu_has (char **ids, size_t n, const char *id)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp (ids[i], id) == 0)
      return true;
  return false;
}

/* ---- Store ------------------------------------------------------------------ */

typedef struct
{
  bool done;
  int status;
  char msg[256];
  stu_kv_t *kvs;
  size_t n;
} range_ctx_t;

static void
on_range (void *ctx, int status, const orch_err_t *err, const store_kv_t *kvs, size_t n,
          int64_t revision)
{
  range_ctx_t *rc = ctx;
  (void) revision;
  rc->done = true;
  rc->status = status;
  if (status < 0)
    {
      snprintf (rc->msg, sizeof rc->msg, "%.200s", err ? err->msg : "?");
      return;
    }
  rc->kvs = xcalloc (n + 1, sizeof *rc->kvs);
  for (size_t i = 0; i < n; i++)
    {
      rc->kvs[i].key = xstrdup (kvs[i].key);
      rc->kvs[i].value = xstrndup (kvs[i].value, kvs[i].value_len);
      rc->kvs[i].value_len = kvs[i].value_len;
    }
  rc->n = n;
}

size_t
stu_store_range (stu_fx_t *fx, store_t *store, const char *prefix, stu_kv_t **out)
{
  range_ctx_t rc = { 0 };
  orch_err_t err = { 0 };
  if (store->ops->range_prefix (store, prefix, on_range, &rc, &err) < 0)
    fail_msg ("range %s: %s", prefix, err.msg);
  if (!STU_RUN_UNTIL (fx, rc.done, STU_WAIT_MS))
    fail_msg ("range %s did not finish", prefix);
  if (rc.status < 0)
    fail_msg ("range %s: %s", prefix, rc.msg);
  if (out)
    *out = rc.kvs;
  else
    stu_kvs_free (rc.kvs, rc.n);
  return rc.n;
}

void
stu_kvs_free (stu_kv_t *kvs, size_t n)
{
  for (size_t i = 0; kvs && i < n; i++)
    {
      free (kvs[i].key);
      free (kvs[i].value);
    }
  free (kvs);
}

typedef struct
{
  bool done;
  int status;
  bool succeeded;
} txn_ctx_t;

static void
on_txn (void *ctx, int status, const orch_err_t *err, bool succeeded, int64_t revision)
{
  txn_ctx_t *tc = ctx;
  (void) err;
  (void) revision;
  tc->done = true;
  tc->status = status;
  tc->succeeded = succeeded;
}

void
stu_store_put (stu_fx_t *fx, store_t *store, const stu_kv_t *kvs, size_t n)
{
  assert_true (n <= STORE_MAX_TXN_OPS);
  store_op_t *ops = xcalloc (n + 1, sizeof *ops);
  for (size_t i = 0; i < n; i++)
    ops[i] = (store_op_t){ .type = STORE_OP_PUT, .key = kvs[i].key, .value = kvs[i].value,
                           .value_len = kvs[i].value_len };
  txn_ctx_t tc = { 0 };
  orch_err_t err = { 0 };
  int r = store->ops->txn (store, NULL, 0, ops, n, on_txn, &tc, &err);
  free (ops);
  if (r < 0)
    fail_msg ("txn: %s", err.msg);
  assert_true (STU_RUN_UNTIL (fx, tc.done, STU_WAIT_MS));
  assert_int_equal (tc.status, 0);
  assert_true (tc.succeeded);
}

void
stu_store_delete (stu_fx_t *fx, store_t *store, const char *key)
{
  store_op_t op = { .type = STORE_OP_DELETE, .key = key };
  txn_ctx_t tc = { 0 };
  orch_err_t err = { 0 };
  if (store->ops->txn (store, NULL, 0, &op, 1, on_txn, &tc, &err) < 0)
    fail_msg ("txn: %s", err.msg);
  assert_true (STU_RUN_UNTIL (fx, tc.done, STU_WAIT_MS));
  assert_int_equal (tc.status, 0);
  assert_true (tc.succeeded);
}
