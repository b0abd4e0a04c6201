/* The protocol client: one connection to the scheduler's API port, a Hello,
 * then request/reply pairs matched by request id, each bounded by a timeout.
 *
 * orchctl is a short-lived program that does one thing at a time, so the
 * client owns a private libuv loop and runs it only while it waits for
 * something; callbacks record the outcome and stop the loop. */
#define _GNU_SOURCE
#include "cli.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <string.h>
#include <uv.h>

#include "orch_util.h"
#include "wire.h"

struct cli_client_s
{
  uv_loop_t loop;
  uv_timer_t timer;
  wire_conn_t *conn; /* NULL once closed */
  char server[256];
  int64_t timeout_ms;
  char *identity;
  char *join_token;

  /* The wait in progress. */
  bool want_hello;
  uint64_t want_id;
  bool done;
  int status; /* 0 = got *reply, -1 = failed with err */
  Orch__Envelope *reply;
  orch_err_t err;
  bool no_timeout;          /* a follow waits as long as it takes */
  Orch__Envelope **queued;  /* replies to want_id that came while no wait ran */
  size_t n_queued, cap_queued;
};

Orch__Envelope *
cli_envelope_dup (const Orch__Envelope *env)
{
  size_t n = orch__envelope__get_packed_size (env);
  cleanup_free uint8_t *buf = xmalloc (n);
  Orch__Envelope *copy;

  orch__envelope__pack (env, buf);
  copy = orch__envelope__unpack (NULL, n, buf);
  /* A message protobuf-c just packed always unpacks; NULL means no memory. */
  if (copy == NULL)
    abort ();
  return copy;
}

static void
cli__finish (cli_client_t *c, int status)
{
  if (c->done)
    return;
  c->done = true;
  c->status = status;
  uv_timer_stop (&c->timer);
  uv_stop (&c->loop);
}

static void
cli__on_message (wire_conn_t *conn, Orch__Envelope *env)
{
  cli_client_t *c = conn->data;

  if (c->done)
    {
      /* Several frames can arrive in one read: keep further replies to the
       * request being followed for the next wait. */
      if (!c->want_hello && c->want_id != 0 && env->request_id == c->want_id)
        {
          orch_grow ((void **) &c->queued, &c->cap_queued, c->n_queued + 1, sizeof *c->queued);
          c->queued[c->n_queued++] = cli_envelope_dup (env);
        }
      return;
    }
  if (c->want_hello)
    {
      if (env->msg_case == ORCH__ENVELOPE__MSG_HELLO_REPLY
          || env->msg_case == ORCH__ENVELOPE__MSG_ERROR)
        {
          c->reply = cli_envelope_dup (env);
          cli__finish (c, 0);
        }
      return;
    }
  /* An Error with request id 0 is about the connection, not one request
   * (the scheduler closes after it): it answers whatever we wait for. */
  if (env->request_id == c->want_id
      || (env->request_id == 0 && env->msg_case == ORCH__ENVELOPE__MSG_ERROR))
    {
      c->reply = cli_envelope_dup (env);
      cli__finish (c, 0);
    }
}

static void
cli__on_connect (wire_conn_t *conn, int status)
{
  cli_client_t *c = conn->data;
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  Orch__Hello hello = ORCH__HELLO__INIT;

  if (c->done)
    return;
  if (status < 0)
    {
      orch_err_set (&c->err, -status,
                    "cannot reach the scheduler at %s: %s (is orch-scheduler running? set "
                    "--server or ORCH_SERVER)",
                    c->server, uv_strerror (status));
      cli__finish (c, -1);
      return;
    }
  /* The first frame on every connection is the Hello. */
  hello.protocol_version = WIRE_PROTOCOL_VERSION;
  hello.role = (char *) "cli";
  hello.identity = c->identity;
  hello.join_token = c->join_token;
  env.msg_case = ORCH__ENVELOPE__MSG_HELLO;
  env.hello = &hello;
  if (wire_conn_send (conn, &env, &c->err) < 0)
    {
      orch_err_wrap (&c->err, "send Hello to %s", c->server);
      cli__finish (c, -1);
    }
}

static void
cli__on_close (wire_conn_t *conn, const char *reason)
{
  cli_client_t *c = conn->data;

  c->conn = NULL;
  if (!c->done)
    {
      /* Closed before any HelloReply: most likely not an orch API port. */
      orch_err_set (&c->err, ECONNRESET, "the scheduler at %s closed the connection: %s%s",
                    c->server, reason != NULL && *reason ? reason : "no reason given",
                    c->want_hello ? " (is this orch-scheduler's API port?)" : "");
      cli__finish (c, -1);
    }
}

static const wire_conn_ops_t cli__conn_ops = {
  .on_message = cli__on_message,
  .on_connect = cli__on_connect,
  .on_close = cli__on_close,
};

static void
cli__on_timeout (uv_timer_t *t)
{
  cli_client_t *c = t->data;
  char dur[32];

  orch_err_set (&c->err, ETIMEDOUT, "no reply from scheduler at %s within %s", c->server,
                cli_fmt_duration (c->timeout_ms, dur, sizeof (dur)));
  cli__finish (c, -1);
}

/* A scheduler that goes away while we write must give an error message,
 * not kill orchctl with SIGPIPE; the handler is restored afterwards so that
 * `orchctl logs X | head` still ends quietly. */
static void
cli__sigpipe_ignore (struct sigaction *saved)
{
  struct sigaction ign = { .sa_handler = SIG_IGN };

  sigemptyset (&ign.sa_mask);
  sigaction (SIGPIPE, &ign, saved);
}

static void
cli__sigpipe_restore (const struct sigaction *saved)
{
  sigaction (SIGPIPE, saved, NULL);
}

/* Runs the loop until a callback finishes the wait or the timeout fires. */
static int
cli__wait (cli_client_t *c, Orch__Envelope **reply, orch_err_t *err)
{
  if (c->n_queued > 0)
    {
      *reply = c->queued[0];
      memmove (c->queued, c->queued + 1, (c->n_queued - 1) * sizeof *c->queued);
      c->n_queued--;
      return 0;
    }
  if (c->conn == NULL)
    {
      orch_err_set (err, EPIPE, "the connection to the scheduler at %s is closed", c->server);
      return -1;
    }
  if (!c->no_timeout)
    uv_timer_start (&c->timer, cli__on_timeout, (uint64_t) c->timeout_ms, 0);
  while (!c->done)
    {
      /* uv_run returns 0 when nothing is left to wait for, which cannot
       * happen while the timer runs; guard anyway against a silent hang. */
      if (uv_run (&c->loop, UV_RUN_DEFAULT) == 0 && !c->done)
        {
          orch_err_set (&c->err, EPIPE, "the connection to the scheduler at %s is gone", c->server);
          cli__finish (c, -1);
        }
    }
  c->done = false;
  c->want_hello = false;
  if (c->status < 0)
    {
      *err = c->err;
      return -1;
    }
  *reply = TAKE_PTR (c->reply);
  return 0;
}

/* wire_parse_hostport takes addresses; a host name is resolved here, before
 * any loop runs (a CLI may block on DNS). */
static int
cli__resolve (const char *server, struct sockaddr_storage *addr, orch_err_t *err)
{
  orch_err_t werr = { 0 };
  struct addrinfo hints = { 0 }, *res = NULL;
  cleanup_free char *host = NULL;
  const char *colon;
  int r;

  if (wire_parse_hostport (server, addr, &werr) == 0)
    return 0;
  colon = strrchr (server, ':');
  if (colon == NULL || colon == server)
    return orch_err_set (err, EINVAL, "bad server address \"%s\": %s", server, werr.msg);
  host = xstrndup (server, (size_t) (colon - server));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  r = getaddrinfo (host, colon + 1, &hints, &res);
  if (r != 0)
    return orch_err_set (err, EINVAL, "cannot resolve the scheduler address %s: %s", server,
                         gai_strerror (r));
  memcpy (addr, res->ai_addr, res->ai_addrlen);
  freeaddrinfo (res);
  return 0;
}

static void
cli__close_handles (cli_client_t *c)
{
  /* From here on callbacks only let go; nothing is awaited. */
  c->done = true;
  if (c->conn != NULL)
    wire_conn_close (c->conn, "orchctl done");
  if (!uv_is_closing ((uv_handle_t *) &c->timer))
    uv_close ((uv_handle_t *) &c->timer, NULL);
  /* Let the close callbacks run: the conn is freed in its on_close. */
  while (uv_run (&c->loop, UV_RUN_DEFAULT) != 0)
    ;
  uv_loop_close (&c->loop);
}

void
cli_client_close (cli_client_t *c)
{
  struct sigaction saved;

  if (c == NULL)
    return;
  cli__sigpipe_ignore (&saved);
  cli__close_handles (c);
  cli__sigpipe_restore (&saved);
  if (c->reply != NULL)
    orch__envelope__free_unpacked (c->reply, NULL);
  for (size_t i = 0; i < c->n_queued; i++)
    orch__envelope__free_unpacked (c->queued[i], NULL);
  free (c->queued);
  free (c->identity);
  free (c->join_token);
  free (c);
}

static int cli__open (const char *server, int64_t timeout_ms, const char *identity,
                      const char *join_token, cli_client_t **out, orch_err_t *err);

int
cli_client_open (const char *server, int64_t timeout_ms, const char *identity,
                 const char *join_token, cli_client_t **out, orch_err_t *err)
{
  struct sigaction saved;
  int r;

  cli__sigpipe_ignore (&saved);
  if (strchr (server, ',') == NULL)
    r = cli__open (server, timeout_ms, identity, join_token, out, err);
  else
    {
      /* Several schedulers: the first that accepts (the leader; standbys
       * refuse), else every address's reason. */
      cleanup_free char *list = xstrdup (server);
      cleanup_free char *why = NULL;
      char *save = NULL;
      r = -1;
      for (char *one = strtok_r (list, ",", &save); one != NULL && r < 0;
           one = strtok_r (NULL, ",", &save))
        {
          orch_err_t e = { 0 };
          r = cli__open (one, timeout_ms, identity, join_token, out, &e);
          if (r < 0)
            {
              char *w = xasprintf ("%s%s- %s", why != NULL ? why : "", why != NULL ? "\n  " : "",
                                   e.msg);
              free (why);
              why = w;
            }
        }
      if (r < 0)
        orch_err_set (err, ECONNREFUSED, "no scheduler of %s accepted the connection:\n  %s",
                      server, why);
    }
  cli__sigpipe_restore (&saved);
  return r;
}

static int
cli__open (const char *server, int64_t timeout_ms, const char *identity, const char *join_token,
           cli_client_t **out, orch_err_t *err)
{
  struct sockaddr_storage addr;
  Orch__Envelope *reply = NULL;
  cli_client_t *c;
  int r;

  if (cli__resolve (server, &addr, err) < 0)
    return -1;

  c = xcalloc (1, sizeof (*c));
  snprintf (c->server, sizeof (c->server), "%s", server);
  c->timeout_ms = timeout_ms;
  c->identity = xstrdup (identity);
  c->join_token = xstrdup (join_token != NULL ? join_token : "");
  r = uv_loop_init (&c->loop);
  if (r < 0)
    {
      free (c->identity);
      free (c->join_token);
      free (c);
      orch_err_set (err, -r, "cannot create an event loop: %s", uv_strerror (r));
      return -1;
    }
  uv_timer_init (&c->loop, &c->timer);
  c->timer.data = c;

  c->conn = wire_conn_new (&c->loop, &cli__conn_ops, c, WIRE_MAX_FRAME);
  c->want_hello = true;
  r = wire_conn_connect (c->conn, (struct sockaddr *) &addr);
  if (r < 0)
    {
      orch_err_set (err, -r,
                    "cannot reach the scheduler at %s: %s (is orch-scheduler running? set "
                    "--server or ORCH_SERVER)",
                    server, uv_strerror (r));
      cli_client_close (c);
      return -1;
    }

  /* on_connect sends the Hello; wait for its answer. */
  if (cli__wait (c, &reply, err) < 0)
    {
      cli_client_close (c);
      return -1;
    }
  if (reply->msg_case == ORCH__ENVELOPE__MSG_ERROR)
    {
      const Orch__Error *e = reply->error;
      cleanup_free char *details = NULL;

      for (size_t i = 0; i < e->n_details; i++)
        {
          char *d = xasprintf ("%s\n  %s", details != NULL ? details : "", e->details[i]);
          free (details);
          details = d;
        }
      orch_err_set (err, EPERM, "the scheduler at %s refused the connection: %s%s", server,
                    e->message, details != NULL ? details : "");
      orch__envelope__free_unpacked (reply, NULL);
      cli_client_close (c);
      return -1;
    }
  if (reply->hello_reply->protocol_version != WIRE_PROTOCOL_VERSION)
    {
      orch_err_set (err, EPROTO,
                    "the scheduler at %s speaks protocol version %u, orchctl speaks %u", server,
                    reply->hello_reply->protocol_version, WIRE_PROTOCOL_VERSION);
      orch__envelope__free_unpacked (reply, NULL);
      cli_client_close (c);
      return -1;
    }
  orch__envelope__free_unpacked (reply, NULL);
  *out = c;
  return 0;
}

static int
cli__call (cli_client_t *c, const Orch__Envelope *req, Orch__Envelope **reply, orch_err_t *err)
{
  if (c->conn == NULL)
    {
      orch_err_set (err, EPIPE, "the connection to the scheduler at %s is closed", c->server);
      return -1;
    }
  for (size_t i = 0; i < c->n_queued; i++)
    orch__envelope__free_unpacked (c->queued[i], NULL);
  c->n_queued = 0;
  c->want_id = req->request_id;
  if (wire_conn_send (c->conn, req, err) < 0)
    {
      orch_err_wrap (err, "send request to %s", c->server);
      return -1;
    }
  return cli__wait (c, reply, err);
}

int
cli_client_call (cli_client_t *c, const Orch__Envelope *req, Orch__Envelope **reply,
                 orch_err_t *err)
{
  struct sigaction saved;
  int r;

  cli__sigpipe_ignore (&saved);
  r = cli__call (c, req, reply, err);
  cli__sigpipe_restore (&saved);
  return r;
}

int
cli_client_next (cli_client_t *c, Orch__Envelope **reply, orch_err_t *err)
{
  struct sigaction saved;
  int r;

  cli__sigpipe_ignore (&saved);
  c->no_timeout = true;
  r = cli__wait (c, reply, err);
  c->no_timeout = false;
  cli__sigpipe_restore (&saved);
  return r;
}

static int
cli__transport_next (void *data, Orch__Envelope **reply, orch_err_t *err)
{
  return cli_client_next (data, reply, err);
}

static int
cli__transport_call (void *data, const Orch__Envelope *req, Orch__Envelope **reply, orch_err_t *err)
{
  return cli_client_call (data, req, reply, err);
}

static void
cli__transport_close (void *data)
{
  cli_client_close (data);
}

void
cli_client_transport (cli_client_t *c, cli_transport_t *out)
{
  out->call = cli__transport_call;
  out->next = cli__transport_next;
  out->close = cli__transport_close;
  out->data = c;
}
