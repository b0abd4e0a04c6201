/* The protocol client against a real loopback socket: a small scripted
 * server thread speaks raw frames, so the client's Hello, request-id
 * matching, timeout and error messages are checked as users see them. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "orch_test.h"

#include "cli.h"
#include "orch_util.h"
#include "wire.h"

typedef enum
{
  SERVER_NORMAL,           /* HelloReply, then a wrong-id reply, then the right one */
  SERVER_SILENT,           /* reads the Hello and never answers */
  SERVER_REFUSE,           /* answers the Hello with an Error */
  SERVER_CLOSE_ON_REQUEST, /* HelloReply, then closes when the request comes */
  SERVER_OLD_PROTOCOL,     /* HelloReply with another protocol version */
} server_mode_t;

typedef struct server_s
{
  int lfd;
  int port;
  server_mode_t mode;
  pthread_t thread;
  /* What the client sent. */
  unsigned hello_version;
  char role[32];
  char identity[320];
  char token[64];
  char get_kind[32];
} server_t;

static int
read_full (int fd, void *buf, size_t n)
{
  size_t got = 0;

  while (got < n)
    {
      ssize_t r = read (fd, (char *) buf + got, n - got);
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        return -1;
      got += (size_t) r;
    }
  return 0;
}

static Orch__Envelope *
read_env (int fd)
{
  uint8_t hdr[4];
  uint32_t len;
  cleanup_free uint8_t *body = NULL;

  if (read_full (fd, hdr, 4) < 0)
    return NULL;
  len = (uint32_t) hdr[0] << 24 | (uint32_t) hdr[1] << 16 | (uint32_t) hdr[2] << 8 | hdr[3];
  if (len > WIRE_MAX_FRAME)
    return NULL;
  body = xmalloc (len ? len : 1);
  if (read_full (fd, body, len) < 0)
    return NULL;
  return orch__envelope__unpack (NULL, len, body);
}

static void
send_env (int fd, const Orch__Envelope *env)
{
  orch_err_t err = { 0 };
  cleanup_free uint8_t *buf = NULL;
  size_t len = 0;

  if (wire_frame_encode (env, WIRE_MAX_FRAME, &buf, &len, &err) < 0)
    abort ();
  if (write (fd, buf, len) != (ssize_t) len)
    abort ();
}

static void
send_get_reply (int fd, uint64_t id, const char *node)
{
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  Orch__GetReply gr = ORCH__GET_REPLY__INIT;
  Orch__NodeInfo n = ORCH__NODE_INFO__INIT;
  Orch__NodeInfo *nodes[1] = { &n };

  n.node_id = (char *) node;
  gr.n_nodes = 1;
  gr.nodes = nodes;
  env.request_id = id;
  env.msg_case = ORCH__ENVELOPE__MSG_GET_REPLY;
  env.get_reply = &gr;
  send_env (fd, &env);
}

static void *
server_main (void *arg)
{
  server_t *s = arg;
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  Orch__HelloReply hr = ORCH__HELLO_REPLY__INIT;
  Orch__Error e = ORCH__ERROR__INIT;
  Orch__Envelope *in, *req;
  char *details[] = { "expected the cluster's join token" };
  int fd = accept (s->lfd, NULL, NULL);

  if (fd < 0)
    return NULL;
  in = read_env (fd);
  if (in == NULL || in->msg_case != ORCH__ENVELOPE__MSG_HELLO)
    goto out;
  s->hello_version = in->hello->protocol_version;
  snprintf (s->role, sizeof (s->role), "%s", in->hello->role);
  snprintf (s->identity, sizeof (s->identity), "%s", in->hello->identity);
  snprintf (s->token, sizeof (s->token), "%s", in->hello->join_token);
  orch__envelope__free_unpacked (in, NULL);

  hr.protocol_version = s->mode == SERVER_OLD_PROTOCOL ? 99 : WIRE_PROTOCOL_VERSION;
  hr.identity = "test-scheduler";
  env.msg_case = ORCH__ENVELOPE__MSG_HELLO_REPLY;
  env.hello_reply = &hr;
  switch (s->mode)
    {
    case SERVER_SILENT:
      break;
    case SERVER_REFUSE:
      e.code = 1;
      e.message = "bad join token";
      e.n_details = 1;
      e.details = details;
      env.msg_case = ORCH__ENVELOPE__MSG_ERROR;
      env.error = &e;
      send_env (fd, &env);
      break;
    case SERVER_OLD_PROTOCOL:
      send_env (fd, &env);
      break;
    case SERVER_CLOSE_ON_REQUEST:
      send_env (fd, &env);
      req = read_env (fd);
      if (req != NULL)
        orch__envelope__free_unpacked (req, NULL);
      goto out;
    case SERVER_NORMAL:
      send_env (fd, &env);
      req = read_env (fd);
      if (req == NULL || req->msg_case != ORCH__ENVELOPE__MSG_GET_REQUEST)
        goto out;
      snprintf (s->get_kind, sizeof (s->get_kind), "%s", req->get_request->kind);
      /* A reply to some other request first: the client must skip it. */
      send_get_reply (fd, req->request_id + 1000, "wrong");
      send_get_reply (fd, req->request_id, "right");
      orch__envelope__free_unpacked (req, NULL);
      break;
    }
  /* Wait for the client to hang up. */
  while ((in = read_env (fd)) != NULL)
    orch__envelope__free_unpacked (in, NULL);
out:
  close (fd);
  return NULL;
}

static void
server_start (server_t *s, server_mode_t mode)
{
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  socklen_t alen = sizeof (a);

  memset (s, 0, sizeof (*s));
  s->mode = mode;
  s->lfd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true (s->lfd >= 0);
  assert_int_equal (bind (s->lfd, (struct sockaddr *) &a, sizeof (a)), 0);
  assert_int_equal (listen (s->lfd, 4), 0);
  assert_int_equal (getsockname (s->lfd, (struct sockaddr *) &a, &alen), 0);
  s->port = ntohs (a.sin_port);
  assert_int_equal (pthread_create (&s->thread, NULL, server_main, s), 0);
}

static void
server_stop (server_t *s)
{
  pthread_join (s->thread, NULL);
  close (s->lfd);
}

/* ---- Tests ------------------------------------------------------------------ */

static void
test_hello_then_matching_reply (void **state)
{
  server_t s;
  char addr[64];
  orch_err_t err = { 0 };
  cli_client_t *c = NULL;
  Orch__Envelope req = ORCH__ENVELOPE__INIT;
  Orch__GetRequest get = ORCH__GET_REQUEST__INIT;
  Orch__Envelope *reply = NULL;

  server_start (&s, SERVER_NORMAL);
  snprintf (addr, sizeof (addr), "127.0.0.1:%d", s.port);
  assert_int_equal (cli_client_open (addr, 5000, "alice@box", "s3cret", &c, &err), 0);

  get.kind = "nodes";
  get.name = "";
  req.request_id = 7;
  req.msg_case = ORCH__ENVELOPE__MSG_GET_REQUEST;
  req.get_request = &get;
  assert_int_equal (cli_client_call (c, &req, &reply, &err), 0);
  assert_int_equal (reply->request_id, 7);
  assert_int_equal (reply->msg_case, ORCH__ENVELOPE__MSG_GET_REPLY);
  assert_string_equal (reply->get_reply->nodes[0]->node_id, "right");
  orch__envelope__free_unpacked (reply, NULL);
  cli_client_close (c);
  server_stop (&s);

  /* The Hello says who we are and carries the join token. */
  assert_int_equal (s.hello_version, WIRE_PROTOCOL_VERSION);
  assert_string_equal (s.role, "cli");
  assert_string_equal (s.identity, "alice@box");
  assert_string_equal (s.token, "s3cret");
  assert_string_equal (s.get_kind, "nodes");
}

static void
test_connection_refused (void **state)
{
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  socklen_t alen = sizeof (a);
  int fd = socket (AF_INET, SOCK_STREAM, 0);
  char addr[64], want[256];
  orch_err_t err = { 0 };
  cli_client_t *c = NULL;

  /* A port that was just free and has no listener. */
  assert_int_equal (bind (fd, (struct sockaddr *) &a, sizeof (a)), 0);
  assert_int_equal (getsockname (fd, (struct sockaddr *) &a, &alen), 0);
  close (fd);
  snprintf (addr, sizeof (addr), "127.0.0.1:%d", ntohs (a.sin_port));
  assert_int_equal (cli_client_open (addr, 5000, "alice@box", "", &c, &err), -1);
  assert_null (c);
  snprintf (want, sizeof (want),
            "cannot reach the scheduler at %s: connection refused (is orch-scheduler running? "
            "set --server or ORCH_SERVER)",
            addr);
  assert_string_equal (err.msg, want);
}

static void
test_silent_scheduler_times_out (void **state)
{
  server_t s;
  char addr[64], want[128];
  orch_err_t err = { 0 };
  cli_client_t *c = NULL;
  int64_t t0 = orch_now_mono_ms ();

  server_start (&s, SERVER_SILENT);
  snprintf (addr, sizeof (addr), "127.0.0.1:%d", s.port);
  assert_int_equal (cli_client_open (addr, 200, "alice@box", "", &c, &err), -1);
  snprintf (want, sizeof (want), "no reply from scheduler at %s within 200ms", addr);
  assert_string_equal (err.msg, want);
  /* Bounded by the timeout, not by the server. */
  assert_true (orch_now_mono_ms () - t0 < 3000);
  server_stop (&s);
}

static void
test_refused_hello (void **state)
{
  server_t s;
  char addr[64], want[256];
  orch_err_t err = { 0 };
  cli_client_t *c = NULL;

  server_start (&s, SERVER_REFUSE);
  snprintf (addr, sizeof (addr), "127.0.0.1:%d", s.port);
  assert_int_equal (cli_client_open (addr, 5000, "alice@box", "wrong", &c, &err), -1);
  snprintf (want, sizeof (want),
            "the scheduler at %s refused the connection: bad join token\n"
            "  expected the cluster's join token",
            addr);
  assert_string_equal (err.msg, want);
  server_stop (&s);
}

static void
test_protocol_mismatch (void **state)
{
  server_t s;
  char addr[64];
  orch_err_t err = { 0 };
  cli_client_t *c = NULL;

  server_start (&s, SERVER_OLD_PROTOCOL);
  snprintf (addr, sizeof (addr), "127.0.0.1:%d", s.port);
  assert_int_equal (cli_client_open (addr, 5000, "alice@box", "", &c, &err), -1);
  assert_non_null (strstr (err.msg, "speaks protocol version 99, orchctl speaks 1"));
  server_stop (&s);
}

static void
test_scheduler_closes_mid_request (void **state)
{
  server_t s;
  char addr[64], want[128];
  orch_err_t err = { 0 };
  cli_client_t *c = NULL;
  Orch__Envelope req = ORCH__ENVELOPE__INIT;
  Orch__DrainRequest d = ORCH__DRAIN_REQUEST__INIT;
  Orch__Envelope *reply = NULL;

  server_start (&s, SERVER_CLOSE_ON_REQUEST);
  snprintf (addr, sizeof (addr), "127.0.0.1:%d", s.port);
  assert_int_equal (cli_client_open (addr, 5000, "alice@box", "", &c, &err), 0);
  d.node_id = "n1";
  req.request_id = 1;
  req.msg_case = ORCH__ENVELOPE__MSG_DRAIN_REQUEST;
  req.drain_request = &d;
  assert_int_equal (cli_client_call (c, &req, &reply, &err), -1);
  snprintf (want, sizeof (want), "the scheduler at %s closed the connection: ", addr);
  assert_int_equal (strncmp (err.msg, want, strlen (want)), 0);
  assert_null (reply);
  /* The connection is gone; a second call says so instead of hanging. */
  assert_int_equal (cli_client_call (c, &req, &reply, &err), -1);
  cli_client_close (c);
  server_stop (&s);
}

static void
test_unresolvable_host (void **state)
{
  orch_err_t err = { 0 };
  cli_client_t *c = NULL;

  assert_int_equal (cli_client_open ("no-such-host.invalid:7700", 1000, "a@b", "", &c, &err), -1);
  assert_non_null (strstr (err.msg, "no-such-host.invalid:7700"));
}

static const struct CMUnitTest tests[] = {
  cmocka_unit_test (test_hello_then_matching_reply),
  cmocka_unit_test (test_connection_refused),
  cmocka_unit_test (test_silent_scheduler_times_out),
  cmocka_unit_test (test_refused_hello),
  cmocka_unit_test (test_protocol_mismatch),
  cmocka_unit_test (test_scheduler_closes_mid_request),
  cmocka_unit_test (test_unresolvable_host),
};

ORCH_TEST_MAIN (tests)
