/* The scheduler's loop plumbing: listeners on the API and agent ports,
 * connections and their Hello handshake, the periodic tick, and shutdown. */
#include <errno.h>
#include <string.h>

#include "orch_log.h"
#include "orch_util.h"
#include "sched_internal.h"

#define SCHED_TICK_MS 500

static void conn_on_message (wire_conn_t *wc, Orch__Envelope *env);
static void conn_on_close (wire_conn_t *wc, const char *reason);

static const wire_conn_ops_t conn_ops = {
  .on_message = conn_on_message,
  .on_connect = NULL,
  .on_close = conn_on_close,
};

sched_conn_t *
sched_conn_ref (sched_conn_t *c)
{
  c->refs++;
  return c;
}

void
sched_conn_unref (sched_conn_t *c)
{
  if (c == NULL || --c->refs > 0)
    return;
  free (c->identity);
  free (c);
}

void
sched_conn_send (sched_conn_t *c, Orch__Envelope *env)
{
  orch_err_t err = {0};
  if (c == NULL || c->wc == NULL)
    return;
  if (wire_conn_send (c->wc, env, &err) < 0)
    orch_warn ("send to %s failed: %s", c->wc->peer, err.msg);
}

static void
send_hello_reply (sched_conn_t *c, uint64_t request_id)
{
  Orch__HelloReply reply = ORCH__HELLO_REPLY__INIT;
  reply.protocol_version = WIRE_PROTOCOL_VERSION;
  reply.identity = (char *) c->s->cfg.identity;
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  env.request_id = request_id;
  env.msg_case = ORCH__ENVELOPE__MSG_HELLO_REPLY;
  env.hello_reply = &reply;
  sched_conn_send (c, &env);
}

static void
refuse (sched_conn_t *c, uint64_t request_id, const char *why)
{
  orch_warn ("refusing %s: %s", c->wc->peer, why);
  sched_api_reply_error (c, request_id, 1, why, NULL, 0);
  wire_conn_close (c->wc, why);
}

/* The first frame must be a Hello with our protocol version, the right role
 * for the port and, when the cluster has one, the join token. */
static void
handle_hello (sched_conn_t *c, Orch__Envelope *env)
{
  if (env->msg_case != ORCH__ENVELOPE__MSG_HELLO)
    {
      refuse (c, env->request_id, "protocol error: the first message must be Hello");
      return;
    }
  Orch__Hello *h = env->hello;
  const char *want_role = c->kind == SCHED_CONN_AGENT ? "agent" : "cli";
  char why[256];
  if (h->protocol_version != WIRE_PROTOCOL_VERSION)
    {
      snprintf (why, sizeof why, "protocol version %u is not supported (scheduler speaks %u)",
                h->protocol_version, WIRE_PROTOCOL_VERSION);
      refuse (c, env->request_id, why);
      return;
    }
  if (strcmp (h->role, want_role) != 0)
    {
      snprintf (why, sizeof why, "role \"%s\" is not accepted on the %s port", h->role,
                c->kind == SCHED_CONN_AGENT ? "agent" : "API");
      refuse (c, env->request_id, why);
      return;
    }
  const char *token = c->s->cfg.join_token;
  if (token && *token && strcmp (h->join_token, token) != 0)
    {
      refuse (c, env->request_id, "join token rejected");
      return;
    }
  if (!c->s->leading)
    {
      /* Unavailable (4): clients with several addresses try the next. */
      if (sched_leader_seen (c->s) != NULL)
        snprintf (why, sizeof why, "scheduler %s is standing by: %s leads", c->s->cfg.identity,
                  sched_leader_seen (c->s));
      else
        snprintf (why, sizeof why,
                  "scheduler %s is not leading yet (leader election in progress); try again "
                  "shortly",
                  c->s->cfg.identity);
      orch_debug ("refusing %s: %s", c->wc->peer, why);
      sched_api_reply_error (c, env->request_id, 4, why, NULL, 0);
      wire_conn_close (c->wc, why);
      return;
    }
  if (c->kind == SCHED_CONN_AGENT && !orch_is_dns_label (h->identity))
    {
      snprintf (why, sizeof why, "node id \"%.64s\" is not a DNS label", h->identity);
      refuse (c, env->request_id, why);
      return;
    }
  c->identity = xstrdup (h->identity);
  c->hello_done = true;
  send_hello_reply (c, env->request_id);
}

static void
conn_on_message (wire_conn_t *wc, Orch__Envelope *env)
{
  sched_conn_t *c = wc->data;
  if (!c->hello_done)
    {
      handle_hello (c, env);
      return;
    }
  if (c->kind == SCHED_CONN_AGENT)
    sched_agent_message (c, env);
  else
    sched_api_message (c, env);
}

static void
conn_on_close (wire_conn_t *wc, const char *reason)
{
  sched_conn_t *c = wc->data;
  sched_t *s = c->s;
  if (c->kind == SCHED_CONN_AGENT)
    {
      if (c->node)
        orch_warn ("agent %s (%s) disconnected: %s", c->node->id, wc->peer, reason);
      sched_agent_closed (c);
    }
  else
    sched_api_closed (c);
  for (sched_conn_t **p = &s->conns; *p; p = &(*p)->next)
    if (*p == c)
      {
        *p = c->next;
        break;
      }
  c->wc = NULL;
  sched_conn_unref (c);
}

static void
on_connection (uv_stream_t *server, int status, sched_conn_kind_t kind)
{
  sched_t *s = server->data;
  if (status < 0)
    {
      orch_warn ("accept failed: %s", uv_strerror (status));
      return;
    }
  sched_conn_t *c = xcalloc (1, sizeof *c);
  c->s = s;
  c->kind = kind;
  c->refs = 1;
  c->wc = wire_conn_new (s->loop, &conn_ops, c, WIRE_MAX_FRAME);
  c->next = s->conns;
  s->conns = c;
  /* On failure the conn is closed and conn_on_close frees c. */
  wire_conn_accept (server, c->wc);
}

static void
on_api_connection (uv_stream_t *server, int status)
{
  on_connection (server, status, SCHED_CONN_API);
}

static void
on_agent_connection (uv_stream_t *server, int status)
{
  on_connection (server, status, SCHED_CONN_AGENT);
}

static int
listen_on (sched_t *s, uv_tcp_t *tcp, const char *addr_text, uv_connection_cb cb, orch_err_t *err)
{
  struct sockaddr_storage addr;
  if (wire_parse_hostport (addr_text, &addr, err) < 0)
    return orch_err_wrap (err, "listen address %s", addr_text);
  uv_tcp_init (s->loop, tcp);
  tcp->data = s;
  s->handles_open++;
  int r = uv_tcp_bind (tcp, (const struct sockaddr *) &addr, 0);
  if (r == 0)
    r = uv_listen ((uv_stream_t *) tcp, 128, cb);
  if (r < 0)
    return orch_err_set (err, -r, "listen on %s: %s", addr_text, uv_strerror (r));
  return 0;
}

static void
on_tick (uv_timer_t *t)
{
  sched_t *s = t->data;
  sched_agents_tick (s);
  sched_api_tick (s);
  if (s->leading && !s->loaded && s->load_pending == 0 && orch_now_mono_ms () >= s->retry_at_ms)
    sched_persist_load (s);
  else if (s->loaded && s->retry_at_ms && orch_now_mono_ms () >= s->retry_at_ms)
    {
      s->retry_at_ms = 0;
      sched_reconcile_schedule (s);
    }
}

void
sched_on_handle_closed (uv_handle_t *h)
{
  sched_t *s = h->data;
  s->handles_open--;
}

sched_t *
sched_new (uv_loop_t *loop, const sched_config_t *cfg, orch_err_t *err)
{
  store_t *store = store_etcd_new (loop, cfg->etcd_endpoints, err);
  if (store == NULL)
    {
      orch_err_wrap (err, "etcd at %s", cfg->etcd_endpoints);
      return NULL;
    }
  sched_t *s = sched_new_with_store (loop, cfg, store, err);
  if (s == NULL)
    {
      store->ops->destroy (store);
      uv_run (loop, UV_RUN_DEFAULT);
      return NULL;
    }
  s->owns_store = true;
  return s;
}

sched_t *
sched_new_with_store (uv_loop_t *loop, const sched_config_t *cfg, store_t *store, orch_err_t *err)
{
  sched_t *s = xcalloc (1, sizeof *s);
  s->loop = loop;
  s->cfg = *cfg;
  s->cluster = place_cluster_new (NULL);
  s->next_agent_request_id = 1;
  s->store = store;
  if (s->cfg.leader_ttl_ms <= 0)
    s->cfg.leader_ttl_ms = SCHED_DEFAULT_LEADER_TTL_MS;
  if (listen_on (s, &s->api_listener, cfg->api_listen, on_api_connection, err) < 0
      || listen_on (s, &s->agent_listener, cfg->agent_listen, on_agent_connection, err) < 0
      || sched_metrics_listen (s, err) < 0)
    {
      sched_stop (s);
      uv_run (loop, UV_RUN_DEFAULT);
      sched_free (s);
      return NULL;
    }
  uv_timer_init (loop, &s->tick);
  s->tick.data = s;
  s->handles_open++;
  uv_timer_start (&s->tick, on_tick, SCHED_TICK_MS, SCHED_TICK_MS);
  uv_timer_init (loop, &s->flush_timer);
  s->flush_timer.data = s;
  s->handles_open++;
  uv_idle_init (loop, &s->reconcile_idle);
  s->reconcile_idle.data = s;
  s->handles_open++;
  orch_info ("listening for orchctl on %s and for agents on %s; store: %s %s; campaigning "
             "for %s",
             cfg->api_listen, cfg->agent_listen, store->ops->name,
             cfg->etcd_endpoints ? cfg->etcd_endpoints : "", SCHED_LEADER_KEY);
  sched_leader_start (s);
  return s;
}

static void
release_store (sched_t *s)
{
  if (s->store == NULL)
    return;
  /* destroy() runs outstanding callbacks synchronously with "store
   * closed"; they must find no store to send more requests to. */
  store_t *store = TAKE_PTR (s->store);
  if (s->owns_store)
    store->ops->destroy (store);
  else if (s->watching)
    store->ops->watch_cancel (store);
}

void
sched_stop (sched_t *s)
{
  if (s->stopping)
    return;
  s->stopping = true;
  uv_handle_t *handles[] = {
    (uv_handle_t *) &s->api_listener, (uv_handle_t *) &s->agent_listener,
    (uv_handle_t *) &s->tick,         (uv_handle_t *) &s->flush_timer,
    (uv_handle_t *) &s->reconcile_idle,
  };
  for (size_t i = 0; i < ORCH_ARRAY_LEN (handles); i++)
    if (handles[i]->loop == s->loop && !uv_is_closing (handles[i]))
      uv_close (handles[i], sched_on_handle_closed);
  for (sched_conn_t *c = s->conns; c; c = c->next)
    if (c->wc)
      wire_conn_close (c->wc, "scheduler shutting down");
  sched_metrics_close (s);
  /* A leader gives its lease back first, so that a standby need not wait
   * for it to expire; the store goes once etcd has answered. */
  if (!sched_leader_release (s, release_store))
    release_store (s);
}

int
sched_exit_code (const sched_t *s)
{
  return s->exit_code;
}

void
sched_free (sched_t *s)
{
  if (s == NULL)
    return;
  free (s->leader_seen);
  const char *k;
  void *v;
  for (size_t i = 0; orch_map_next (&s->services, &i, &k, &v);)
    sched_service_free (v);
  for (size_t i = 0; orch_map_next (&s->allocs, &i, &k, &v);)
    sched_alloc_free (v);
  for (size_t i = 0; orch_map_next (&s->nodes, &i, &k, &v);)
    sched_node_free (v);
  orch_map_free (&s->services);
  orch_map_free (&s->allocs);
  orch_map_free (&s->nodes);
  orch_map_free (&s->dirty_services);
  for (size_t i = 0; i < s->watch_backlog_len; i++)
    {
      free (s->watch_backlog[i].kv.key);
      free (s->watch_backlog[i].kv.value);
    }
  free (s->watch_backlog);
  place_cluster_free (s->cluster);
  free (s);
}
