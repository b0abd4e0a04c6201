/* Tests for the wire library: framing edge cases on the reader, and real
 * connections on a libuv loop over loopback. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orch_test.h"
#include "wire.h"

/* ---- helpers ---------------------------------------------------------------- */

typedef struct msg_s
{
  Orch__Envelope env;
  Orch__GetRequest get;
  char name[32];
} msg_t;

static void
msg_init (msg_t *m, uint64_t id)
{
  orch__envelope__init (&m->env);
  orch__get_request__init (&m->get);
  snprintf (m->name, sizeof (m->name), "svc-%llu", (unsigned long long) id);
  m->get.kind = (char *) "services";
  m->get.name = m->name;
  m->env.request_id = id;
  m->env.msg_case = ORCH__ENVELOPE__MSG_GET_REQUEST;
  m->env.get_request = &m->get;
}

/* Appends the frame of message id to buf at *len. */
static void
append_frame (uint8_t *buf, size_t cap, size_t *len, uint64_t id)
{
  orch_err_t err = { 0 };
  msg_t m;
  uint8_t *f;
  size_t flen;

  msg_init (&m, id);
  assert_int_equal (wire_frame_encode (&m.env, WIRE_MAX_FRAME, &f, &flen, &err), 0);
  assert_true (*len + flen <= cap);
  memcpy (buf + *len, f, flen);
  *len += flen;
  free (f);
}

typedef struct collect_s
{
  int n;
  uint64_t ids[64];
  int stop_after; /* 0 = never stop */
} collect_t;

static int
collect_cb (void *ctx, Orch__Envelope *env)
{
  collect_t *c = ctx;
  char want[32];

  assert_int_equal (env->msg_case, ORCH__ENVELOPE__MSG_GET_REQUEST);
  snprintf (want, sizeof (want), "svc-%llu", (unsigned long long) env->request_id);
  assert_string_equal (env->get_request->name, want);
  assert_string_equal (env->get_request->kind, "services");
  assert_true (c->n < 64);
  c->ids[c->n++] = env->request_id;
  return c->stop_after && c->n >= c->stop_after;
}

/* ---- framing ---------------------------------------------------------------- */

static void
test_roundtrip (void **state)
{
  orch_err_t err = { 0 };
  wire_reader_t r;
  collect_t col = { 0 };
  uint8_t *f;
  size_t flen;
  msg_t m;

  msg_init (&m, 42);
  assert_int_equal (wire_frame_encode (&m.env, WIRE_MAX_FRAME, &f, &flen, &err), 0);
  /* The prefix is the big-endian length of the rest. */
  assert_int_equal (flen, 4 + orch__envelope__get_packed_size (&m.env));
  assert_int_equal (((size_t) f[0] << 24) | ((size_t) f[1] << 16) | ((size_t) f[2] << 8) | f[3],
                    flen - 4);

  wire_reader_init (&r, WIRE_MAX_FRAME);
  assert_int_equal (wire_reader_feed (&r, f, flen, collect_cb, &col, &err), 0);
  assert_int_equal (col.n, 1);
  assert_int_equal (col.ids[0], 42);
  assert_int_equal (r.len, 0);
  wire_reader_free (&r);
  free (f);
}

static void
test_split_every_boundary (void **state)
{
  orch_err_t err = { 0 };
  uint8_t buf[256];
  size_t len = 0;

  append_frame (buf, sizeof (buf), &len, 1);
  append_frame (buf, sizeof (buf), &len, 2);

  for (size_t i = 0; i <= len; i++)
    {
      wire_reader_t r;
      collect_t col = { 0 };

      wire_reader_init (&r, WIRE_MAX_FRAME);
      assert_int_equal (wire_reader_feed (&r, buf, i, collect_cb, &col, &err), 0);
      assert_int_equal (wire_reader_feed (&r, buf + i, len - i, collect_cb, &col, &err), 0);
      assert_int_equal (col.n, 2);
      assert_int_equal (col.ids[0], 1);
      assert_int_equal (col.ids[1], 2);
      assert_int_equal (r.len, 0);
      wire_reader_free (&r);
    }

  /* And one byte at a time. */
  {
    wire_reader_t r;
    collect_t col = { 0 };

    wire_reader_init (&r, WIRE_MAX_FRAME);
    for (size_t i = 0; i < len; i++)
      assert_int_equal (wire_reader_feed (&r, buf + i, 1, collect_cb, &col, &err), 0);
    assert_int_equal (col.n, 2);
    assert_int_equal (col.ids[1], 2);
    wire_reader_free (&r);
  }
}

static void
test_three_coalesced (void **state)
{
  orch_err_t err = { 0 };
  wire_reader_t r;
  collect_t col = { 0 };
  uint8_t buf[256];
  size_t len = 0;

  append_frame (buf, sizeof (buf), &len, 7);
  append_frame (buf, sizeof (buf), &len, 8);
  append_frame (buf, sizeof (buf), &len, 9);
  wire_reader_init (&r, WIRE_MAX_FRAME);
  assert_int_equal (wire_reader_feed (&r, buf, len, collect_cb, &col, &err), 0);
  assert_int_equal (col.n, 3);
  assert_int_equal (col.ids[0], 7);
  assert_int_equal (col.ids[1], 8);
  assert_int_equal (col.ids[2], 9);
  /* Complete frames are decoded in place: nothing was buffered. */
  assert_int_equal (r.cap, 0);
  assert_int_equal (r.len, 0);
  wire_reader_free (&r);
}

static void
test_split_with_next_start (void **state)
{
  orch_err_t err = { 0 };
  wire_reader_t r;
  collect_t col = { 0 };
  uint8_t buf[256];
  size_t len = 0, first;

  append_frame (buf, sizeof (buf), &len, 1);
  first = len;
  append_frame (buf, sizeof (buf), &len, 2);
  append_frame (buf, sizeof (buf), &len, 3);

  wire_reader_init (&r, WIRE_MAX_FRAME);
  /* Half of frame 1. */
  assert_int_equal (wire_reader_feed (&r, buf, first / 2, collect_cb, &col, &err), 0);
  assert_int_equal (col.n, 0);
  /* The rest of frame 1, all of frame 2 and 3 bytes of frame 3's header. */
  size_t cut = first + (len - first) / 2 + 3; /* frames 2 and 3 are the same size */
  assert_int_equal (wire_reader_feed (&r, buf + first / 2, cut - first / 2, collect_cb, &col, &err),
                    0);
  assert_int_equal (col.n, 2);
  assert_int_equal (r.len, 3);
  assert_int_equal (wire_reader_feed (&r, buf + cut, len - cut, collect_cb, &col, &err), 0);
  assert_int_equal (col.n, 3);
  assert_int_equal (col.ids[2], 3);
  assert_int_equal (r.len, 0);
  wire_reader_free (&r);
}

typedef struct big_s
{
  const uint8_t *want;
  size_t want_len;
  int n;
  int same;
} big_t;

static int
big_cb (void *ctx, Orch__Envelope *e)
{
  big_t *b = ctx;

  b->n++;
  assert_int_equal (e->msg_case, ORCH__ENVELOPE__MSG_LOGS_REPLY);
  b->same = e->logs_reply->data.len == b->want_len
            && memcmp (e->logs_reply->data.data, b->want, b->want_len) == 0;
  return 0;
}

static void
test_large_frame_in_chunks (void **state)
{
  orch_err_t err = { 0 };
  wire_reader_t r;
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  Orch__LogsReply logs = ORCH__LOGS_REPLY__INIT;
  size_t data_len = 3u * 1024 * 1024;
  uint8_t *data = malloc (data_len);
  big_t got = { .want = data, .want_len = data_len };
  uint8_t *f;
  size_t flen;

  for (size_t i = 0; i < data_len; i++)
    data[i] = (uint8_t) (i * 7);
  logs.data.data = data;
  logs.data.len = data_len;
  env.msg_case = ORCH__ENVELOPE__MSG_LOGS_REPLY;
  env.logs_reply = &logs;
  assert_int_equal (wire_frame_encode (&env, WIRE_MAX_FRAME, &f, &flen, &err), 0);

  wire_reader_init (&r, WIRE_MAX_FRAME);
  for (size_t off = 0; off < flen; off += 65536)
    {
      size_t n = flen - off < 65536 ? flen - off : 65536;

      assert_int_equal (wire_reader_feed (&r, f + off, n, big_cb, &got, &err), 0);
      /* Grown to exactly the announced frame, never beyond. */
      if (off + n < flen)
        assert_int_equal (r.cap, flen);
    }
  assert_int_equal (got.n, 1);
  assert_true (got.same);
  /* The big buffer is released once the reader is idle again. */
  assert_int_equal (r.cap, 0);
  wire_reader_free (&r);
  free (f);
  free (data);
}

static void
test_oversize_rejected (void **state)
{
  static const uint8_t hdr[4] = { 0x7f, 0xff, 0xff, 0xff };
  static const uint8_t hdr100m[4] = { 0x06, 0x40, 0x00, 0x00 }; /* 104857600 */
  orch_err_t err = { 0 };
  wire_reader_t r;
  collect_t col = { 0 };

  wire_reader_init (&r, WIRE_MAX_FRAME);
  assert_int_equal (wire_reader_feed (&r, hdr, 4, collect_cb, &col, &err), -1);
  assert_string_equal (err.msg, "frame of 2147483647 bytes exceeds limit 8388608");
  assert_true (r.cap <= 256);
  wire_reader_free (&r);

  /* The same when the header trickles in byte by byte. */
  orch_err_clear (&err);
  wire_reader_init (&r, WIRE_MAX_FRAME);
  for (int i = 0; i < 3; i++)
    assert_int_equal (wire_reader_feed (&r, hdr100m + i, 1, collect_cb, &col, &err), 0);
  assert_int_equal (wire_reader_feed (&r, hdr100m + 3, 1, collect_cb, &col, &err), -1);
  assert_string_equal (err.msg, "frame of 104857600 bytes exceeds limit 8388608");
  assert_true (r.cap <= 256);
  assert_int_equal (col.n, 0);
  wire_reader_free (&r);

  /* A frame exactly at the limit passes, one byte over does not. */
  {
    uint8_t buf[256];
    size_t len = 0;
    append_frame (buf, sizeof (buf), &len, 5);
    wire_reader_init (&r, len - 4);
    assert_int_equal (wire_reader_feed (&r, buf, len, collect_cb, &col, &err), 0);
    assert_int_equal (col.n, 1);
    wire_reader_free (&r);
    wire_reader_init (&r, len - 5);
    assert_int_equal (wire_reader_feed (&r, buf, len, collect_cb, &col, &err), -1);
    assert_int_equal (col.n, 1);
    wire_reader_free (&r);
  }
}

static void
test_encode_oversize (void **state)
{
  orch_err_t err = { 0 };
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  Orch__LogsReply logs = ORCH__LOGS_REPLY__INIT;
  static uint8_t data[2000];
  uint8_t *f = NULL;
  size_t flen = 0;

  logs.data.data = data;
  logs.data.len = sizeof (data);
  env.msg_case = ORCH__ENVELOPE__MSG_LOGS_REPLY;
  env.logs_reply = &logs;
  assert_int_equal (wire_frame_encode (&env, 1000, &f, &flen, &err), -1);
  assert_non_null (strstr (err.msg, "exceeds limit 1000"));
  assert_null (f);

  /* An envelope without a message would be refused by the peer. */
  Orch__Envelope empty = ORCH__ENVELOPE__INIT;
  empty.request_id = 3;
  assert_int_equal (wire_frame_encode (&empty, WIRE_MAX_FRAME, &f, &flen, &err), -1);
  assert_string_equal (err.msg, "envelope carries no message");
}

static void
test_garbage_rejected (void **state)
{
  /* A length of 37, then bytes that are a truncated varint field. */
  uint8_t buf[41];
  orch_err_t err = { 0 };
  wire_reader_t r;
  collect_t col = { 0 };

  memset (buf, 0xff, sizeof (buf));
  buf[0] = 0;
  buf[1] = 0;
  buf[2] = 0;
  buf[3] = 37;
  wire_reader_init (&r, WIRE_MAX_FRAME);
  assert_int_equal (wire_reader_feed (&r, buf, sizeof (buf), collect_cb, &col, &err), -1);
  assert_string_equal (err.msg, "undecodable envelope (37 bytes)");
  assert_int_equal (col.n, 0);
  wire_reader_free (&r);
}

static void
test_no_message_rejected (void **state)
{
  /* request_id = 7 and nothing else; then an unknown field 99 only. */
  static const uint8_t only_id[] = { 0, 0, 0, 2, 0x08, 0x07 };
  static const uint8_t unknown[] = { 0, 0, 0, 3, 0x98, 0x06, 0x01 };
  orch_err_t err = { 0 };
  wire_reader_t r;
  collect_t col = { 0 };

  wire_reader_init (&r, WIRE_MAX_FRAME);
  assert_int_equal (wire_reader_feed (&r, only_id, sizeof (only_id), collect_cb, &col, &err), -1);
  assert_string_equal (err.msg, "envelope carries no message");
  wire_reader_free (&r);

  orch_err_clear (&err);
  wire_reader_init (&r, WIRE_MAX_FRAME);
  assert_int_equal (wire_reader_feed (&r, unknown, sizeof (unknown), collect_cb, &col, &err), -1);
  assert_string_equal (err.msg, "envelope carries no message");
  assert_int_equal (col.n, 0);
  wire_reader_free (&r);
}

static void
test_zero_length_rejected (void **state)
{
  uint8_t buf[256];
  size_t len = 0;
  orch_err_t err = { 0 };
  wire_reader_t r;
  collect_t col = { 0 };

  /* A good frame, then a zero-length one: the first is still delivered. */
  append_frame (buf, sizeof (buf), &len, 1);
  memset (buf + len, 0, 4);
  len += 4;
  wire_reader_init (&r, WIRE_MAX_FRAME);
  assert_int_equal (wire_reader_feed (&r, buf, len, collect_cb, &col, &err), -1);
  assert_string_equal (err.msg, "zero-length frame");
  assert_int_equal (col.n, 1);
  wire_reader_free (&r);
}

static void
test_callback_stops (void **state)
{
  orch_err_t err = { 0 };
  wire_reader_t r;
  collect_t col = { .stop_after = 2 };
  uint8_t buf[512];
  size_t len = 0, first;

  append_frame (buf, sizeof (buf), &len, 1);
  first = len;
  append_frame (buf, sizeof (buf), &len, 2);
  append_frame (buf, sizeof (buf), &len, 3);
  append_frame (buf, sizeof (buf), &len, 4);

  /* Frame 1 arrives split, so the stop happens on the in-buffer path too. */
  wire_reader_init (&r, WIRE_MAX_FRAME);
  assert_int_equal (wire_reader_feed (&r, buf, first - 1, collect_cb, &col, &err), 0);
  assert_int_equal (wire_reader_feed (&r, buf + first - 1, len - first + 1, collect_cb, &col, &err),
                    0);
  assert_int_equal (col.n, 2);
  assert_int_equal (col.ids[1], 2);
  wire_reader_free (&r);

  col = (collect_t){ .stop_after = 1 };
  wire_reader_init (&r, WIRE_MAX_FRAME);
  assert_int_equal (wire_reader_feed (&r, buf, first + 1, collect_cb, &col, &err), 0);
  assert_int_equal (wire_reader_feed (&r, buf + first + 1, len - first - 1, collect_cb, &col, &err),
                    0);
  assert_int_equal (col.n, 1);
  wire_reader_free (&r);
}

/* ---- host:port -------------------------------------------------------------- */

static void
test_hostport (void **state)
{
  static const struct
  {
    const char *in;
    int family; /* 0 = error expected */
    const char *ip;
    int port;
    const char *err; /* substring of the error */
  } cases[] = {
    { "127.0.0.1:7700", AF_INET, "127.0.0.1", 7700, NULL },
    { "[::1]:7700", AF_INET6, "::1", 7700, NULL },
    { "localhost:7700", AF_INET, "127.0.0.1", 7700, NULL },
    { "0.0.0.0:7701", AF_INET, "0.0.0.0", 7701, NULL },
    { "10.1.2.3:65535", AF_INET, "10.1.2.3", 65535, NULL },
    { "[fe80::1:2]:1", AF_INET6, "fe80::1:2", 1, NULL },
    { "127.0.0.1", 0, NULL, 0, "missing port" },
    { "127.0.0.1:", 0, NULL, 0, "missing port" },
    { "[::1]", 0, NULL, 0, "missing port" },
    { "[::1]:", 0, NULL, 0, "missing port" },
    { "127.0.0.1:0", 0, NULL, 0, "port 0 out of range" },
    { "127.0.0.1:65536", 0, NULL, 0, "port 65536 out of range" },
    { "127.0.0.1:99999999999999999999", 0, NULL, 0, "out of range" },
    { "127.0.0.1:-1", 0, NULL, 0, "bad port" },
    { "127.0.0.1:77x", 0, NULL, 0, "bad port" },
    { "300.1.1.1:7700", 0, NULL, 0, "bad host" },
    { "example.org:7700", 0, NULL, 0, "bad host" },
    { ":7700", 0, NULL, 0, "missing host" },
    { "::1:7700", 0, NULL, 0, "brackets" },
    { "[nothost]:7700", 0, NULL, 0, "bad host" },
    { "[::1:7700", 0, NULL, 0, "missing ']'" },
    { "[]:7700", 0, NULL, 0, "bad host" },
    { "", 0, NULL, 0, "empty" },
  };

  for (size_t i = 0; i < sizeof (cases) / sizeof (cases[0]); i++)
    {
      struct sockaddr_storage ss;
      orch_err_t err = { 0 };
      char ip[INET6_ADDRSTRLEN];
      int rc = wire_parse_hostport (cases[i].in, &ss, &err);

      if (cases[i].family == 0)
        {
          if (rc != -1 || strstr (err.msg, cases[i].err) == NULL)
            fail_msg ("\"%s\": want error with \"%s\", got %d \"%s\"", cases[i].in, cases[i].err,
                      rc, err.msg);
          continue;
        }
      if (rc != 0)
        fail_msg ("\"%s\": %s", cases[i].in, err.msg);
      assert_int_equal (ss.ss_family, cases[i].family);
      if (cases[i].family == AF_INET)
        {
          struct sockaddr_in *in = (struct sockaddr_in *) &ss;
          inet_ntop (AF_INET, &in->sin_addr, ip, sizeof (ip));
          assert_int_equal (ntohs (in->sin_port), cases[i].port);
        }
      else
        {
          struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &ss;
          inet_ntop (AF_INET6, &in6->sin6_addr, ip, sizeof (ip));
          assert_int_equal (ntohs (in6->sin6_port), cases[i].port);
        }
      assert_string_equal (ip, cases[i].ip);
    }
}

/* ---- connections over loopback ---------------------------------------------- */

#define LB_MSGS 1000

typedef struct lb_s
{
  uv_loop_t loop;
  uv_tcp_t server;
  uv_timer_t watchdog;
  uv_timer_t ticker;
  struct sockaddr_in addr;
  int raw_server; /* accept into raw_peer and never read */
  uv_tcp_t raw_peer;
  int raw_accepted;
  int expect_closes; /* on_close calls before the loop is shut down */
  int closes;
  wire_conn_t *client;
  wire_conn_t *sconn;
  int server_msgs;
  int client_msgs;
  int connect_status;
  int connects;
  int sends_ok;
  size_t queued_at_close;
  char server_reason[256];
  char client_reason[256];
  char server_peer[64];
  char client_peer[64];
  const wire_conn_ops_t *server_ops;
} lb_t;

static void
lb_watchdog (uv_timer_t *t)
{
  fail_msg ("loopback test timed out");
}

static void
lb_shutdown (lb_t *lb)
{
  uv_close ((uv_handle_t *) &lb->server, NULL);
  uv_close ((uv_handle_t *) &lb->watchdog, NULL);
  uv_close ((uv_handle_t *) &lb->ticker, NULL);
  if (lb->raw_accepted)
    uv_close ((uv_handle_t *) &lb->raw_peer, NULL);
}

static void
lb_closed (lb_t *lb)
{
  if (++lb->closes == lb->expect_closes)
    lb_shutdown (lb);
}

static void
lb_on_connection (uv_stream_t *server, int status)
{
  lb_t *lb = server->data;

  assert_int_equal (status, 0);
  if (lb->raw_server)
    {
      assert_int_equal (uv_tcp_init (&lb->loop, &lb->raw_peer), 0);
      assert_int_equal (uv_accept (server, (uv_stream_t *) &lb->raw_peer), 0);
      lb->raw_accepted = 1;
      return;
    }
  lb->sconn = wire_conn_new (&lb->loop, lb->server_ops, lb, 0);
  assert_non_null (lb->sconn);
  assert_int_equal (wire_conn_accept (server, lb->sconn), 0);
  snprintf (lb->server_peer, sizeof (lb->server_peer), "%s", lb->sconn->peer);
}

static void
lb_start (lb_t *lb, const wire_conn_ops_t *server_ops)
{
  struct sockaddr_in any;
  int len = sizeof (lb->addr);

  assert_int_equal (uv_loop_init (&lb->loop), 0);
  lb->server_ops = server_ops;
  assert_int_equal (uv_tcp_init (&lb->loop, &lb->server), 0);
  lb->server.data = lb;
  assert_int_equal (uv_ip4_addr ("127.0.0.1", 0, &any), 0);
  assert_int_equal (uv_tcp_bind (&lb->server, (struct sockaddr *) &any, 0), 0);
  assert_int_equal (uv_listen ((uv_stream_t *) &lb->server, 16, lb_on_connection), 0);
  assert_int_equal (uv_tcp_getsockname (&lb->server, (struct sockaddr *) &lb->addr, &len), 0);
  assert_int_not_equal (ntohs (lb->addr.sin_port), 0);
  assert_int_equal (uv_timer_init (&lb->loop, &lb->watchdog), 0);
  assert_int_equal (uv_timer_start (&lb->watchdog, lb_watchdog, 20000, 0), 0);
  assert_int_equal (uv_timer_init (&lb->loop, &lb->ticker), 0);
  lb->ticker.data = lb;
}

static void
lb_run (lb_t *lb)
{
  assert_int_equal (uv_run (&lb->loop, UV_RUN_DEFAULT), 0);
  /* Every handle the library created was closed and freed. */
  assert_int_equal (uv_loop_close (&lb->loop), 0);
}

static void
lb_client (lb_t *lb, const wire_conn_ops_t *ops)
{
  lb->client = wire_conn_new (&lb->loop, ops, lb, 0);
  assert_non_null (lb->client);
  assert_int_equal (wire_conn_connect (lb->client, (struct sockaddr *) &lb->addr), 0);
}

static void
lb_server_on_close (wire_conn_t *c, const char *reason)
{
  lb_t *lb = c->data;

  snprintf (lb->server_reason, sizeof (lb->server_reason), "%s", reason);
  lb_closed (lb);
}

static void
lb_client_on_close (wire_conn_t *c, const char *reason)
{
  lb_t *lb = c->data;

  snprintf (lb->client_reason, sizeof (lb->client_reason), "%s", reason);
  lb->queued_at_close = c->queued_bytes;
  lb_closed (lb);
}

/* Server echoes every request as an Error reply carrying the request's name. */
static void
echo_on_message (wire_conn_t *c, Orch__Envelope *env)
{
  lb_t *lb = c->data;
  Orch__Envelope reply = ORCH__ENVELOPE__INIT;
  Orch__Error e = ORCH__ERROR__INIT;
  orch_err_t err = { 0 };
  char want[32];

  lb->server_msgs++;
  assert_int_equal (env->msg_case, ORCH__ENVELOPE__MSG_GET_REQUEST);
  assert_int_equal (env->request_id, (uint64_t) lb->server_msgs);
  snprintf (want, sizeof (want), "svc-%d", lb->server_msgs);
  assert_string_equal (env->get_request->name, want);

  e.code = 3;
  e.message = env->get_request->name;
  reply.request_id = env->request_id;
  reply.msg_case = ORCH__ENVELOPE__MSG_ERROR;
  reply.error = &e;
  assert_int_equal (wire_conn_send (c, &reply, &err), 0);
}

static void
send_requests_on_connect (wire_conn_t *c, int status)
{
  lb_t *lb = c->data;
  orch_err_t err = { 0 };

  assert_int_equal (status, 0);
  lb->connects++;
  snprintf (lb->client_peer, sizeof (lb->client_peer), "%s", c->peer);
  for (int i = 1; i <= LB_MSGS; i++)
    {
      msg_t m;
      msg_init (&m, (uint64_t) i);
      assert_int_equal (wire_conn_send (c, &m.env, &err), 0);
    }
}

static void
client_replies_then_garbage (wire_conn_t *c, Orch__Envelope *env)
{
  lb_t *lb = c->data;
  char want[32];

  lb->client_msgs++;
  assert_int_equal (env->msg_case, ORCH__ENVELOPE__MSG_ERROR);
  assert_int_equal (env->request_id, (uint64_t) lb->client_msgs);
  snprintf (want, sizeof (want), "svc-%d", lb->client_msgs);
  assert_string_equal (env->error->message, want);
  if (lb->client_msgs == LB_MSGS)
    {
      /* Well-formed length, undecodable body, bypassing the encoder. */
      static char garbage[]
          = { 0, 0, 0, 5, (char) 0xff, (char) 0xff, (char) 0xff, (char) 0xff, (char) 0xff };
      uv_buf_t b = uv_buf_init (garbage, sizeof (garbage));
      assert_int_equal (uv_try_write ((uv_stream_t *) &c->tcp, &b, 1), (int) sizeof (garbage));
    }
}

static void
test_loopback_exchange (void **state)
{
  static const wire_conn_ops_t server_ops = {
    .on_message = echo_on_message,
    .on_close = lb_server_on_close,
  };
  static const wire_conn_ops_t client_ops = {
    .on_message = client_replies_then_garbage,
    .on_connect = send_requests_on_connect,
    .on_close = lb_client_on_close,
  };
  lb_t *lb = calloc (1, sizeof (*lb));
  char want_peer[64];

  lb_start (lb, &server_ops);
  lb->expect_closes = 2;
  lb_client (lb, &client_ops);
  lb_run (lb);

  assert_int_equal (lb->connects, 1);
  assert_int_equal (lb->server_msgs, LB_MSGS);
  assert_int_equal (lb->client_msgs, LB_MSGS);
  assert_string_equal (lb->server_reason, "undecodable envelope (5 bytes)");
  assert_string_equal (lb->client_reason, "peer closed");
  snprintf (want_peer, sizeof (want_peer), "127.0.0.1:%u", (unsigned) ntohs (lb->addr.sin_port));
  assert_string_equal (lb->client_peer, want_peer);
  assert_memory_equal (lb->server_peer, "127.0.0.1:", 10);
  assert_int_equal (lb->queued_at_close, 0);
  free (lb);
}

/* The server says goodbye as soon as the client is connected. */
static void
server_closes_on_hello (wire_conn_t *c, Orch__Envelope *env)
{
  lb_t *lb = c->data;

  lb->server_msgs++;
  assert_int_equal (env->msg_case, ORCH__ENVELOPE__MSG_HELLO);
  wire_conn_close (c, "bye");
  /* Idempotent: the first reason stays. */
  wire_conn_close (c, "second reason");
}

static void
send_hello_on_connect (wire_conn_t *c, int status)
{
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  Orch__Hello hello = ORCH__HELLO__INIT;
  orch_err_t err = { 0 };

  assert_int_equal (status, 0);
  hello.protocol_version = WIRE_PROTOCOL_VERSION;
  hello.role = (char *) "cli";
  env.msg_case = ORCH__ENVELOPE__MSG_HELLO;
  env.hello = &hello;
  assert_int_equal (wire_conn_send (c, &env, &err), 0);
}

static void
client_ignores (wire_conn_t *c, Orch__Envelope *env)
{
  lb_t *lb = c->data;

  lb->client_msgs++;
}

static void
test_peer_closes (void **state)
{
  static const wire_conn_ops_t server_ops = {
    .on_message = server_closes_on_hello,
    .on_close = lb_server_on_close,
  };
  static const wire_conn_ops_t client_ops = {
    .on_message = client_ignores,
    .on_connect = send_hello_on_connect,
    .on_close = lb_client_on_close,
  };
  lb_t *lb = calloc (1, sizeof (*lb));

  lb_start (lb, &server_ops);
  lb->expect_closes = 2;
  lb_client (lb, &client_ops);
  lb_run (lb);
  assert_int_equal (lb->server_msgs, 1);
  assert_string_equal (lb->server_reason, "bye");
  assert_string_equal (lb->client_reason, "peer closed");
  free (lb);
}

static void record_connect (wire_conn_t *c, int status);

/* A message sent before the connect finished is queued, not lost. */
static void
test_send_before_connected (void **state)
{
  static const wire_conn_ops_t server_ops = {
    .on_message = server_closes_on_hello,
    .on_close = lb_server_on_close,
  };
  static const wire_conn_ops_t client_ops = {
    .on_message = client_ignores,
    .on_connect = record_connect,
    .on_close = lb_client_on_close,
  };
  lb_t *lb = calloc (1, sizeof (*lb));

  lb_start (lb, &server_ops);
  lb->expect_closes = 2;
  lb_client (lb, &client_ops);
  send_hello_on_connect (lb->client, 0);
  lb_run (lb);
  assert_int_equal (lb->connects, 1);
  assert_int_equal (lb->connect_status, 0);
  assert_int_equal (lb->server_msgs, 1);
  assert_string_equal (lb->client_reason, "peer closed");
  free (lb);
}

/* A conn closed before it was ever connected still reports on_close once. */
static void
test_close_unused (void **state)
{
  static const wire_conn_ops_t ops = {
    .on_message = client_ignores,
    .on_close = lb_client_on_close,
  };
  lb_t *lb = calloc (1, sizeof (*lb));

  lb_start (lb, NULL);
  lb->expect_closes = 1;
  lb->client = wire_conn_new (&lb->loop, &ops, lb, 0);
  wire_conn_close (lb->client, "never used");
  wire_conn_close (lb->client, "twice");
  lb_run (lb);
  assert_int_equal (lb->closes, 1);
  assert_string_equal (lb->client_reason, "never used");
  free (lb);
}

/* Three frames in one segment; the handler closes on the first. */
static void
server_counts_and_closes (wire_conn_t *c, Orch__Envelope *env)
{
  lb_t *lb = c->data;
  orch_err_t err = { 0 };
  msg_t m;

  lb->server_msgs++;
  wire_conn_close (c, "handler closed");
  /* Sending on a closing connection is refused, not queued. */
  msg_init (&m, 1);
  assert_int_equal (wire_conn_send (c, &m.env, &err), -1);
  assert_non_null (strstr (err.msg, "is closed"));
}

static void
send_three_raw_on_connect (wire_conn_t *c, int status)
{
  uint8_t buf[512];
  size_t len = 0;
  uv_buf_t b;

  assert_int_equal (status, 0);
  append_frame (buf, sizeof (buf), &len, 1);
  append_frame (buf, sizeof (buf), &len, 2);
  append_frame (buf, sizeof (buf), &len, 3);
  b = uv_buf_init ((char *) buf, (unsigned int) len);
  assert_int_equal (uv_try_write ((uv_stream_t *) &c->tcp, &b, 1), (int) len);
}

static void
test_close_inside_on_message (void **state)
{
  static const wire_conn_ops_t server_ops = {
    .on_message = server_counts_and_closes,
    .on_close = lb_server_on_close,
  };
  static const wire_conn_ops_t client_ops = {
    .on_message = client_ignores,
    .on_connect = send_three_raw_on_connect,
    .on_close = lb_client_on_close,
  };
  lb_t *lb = calloc (1, sizeof (*lb));

  lb_start (lb, &server_ops);
  lb->expect_closes = 2;
  lb_client (lb, &client_ops);
  lb_run (lb);
  assert_int_equal (lb->server_msgs, 1);
  assert_string_equal (lb->server_reason, "handler closed");
  free (lb);
}

/* Closing with writes still queued: their buffers are released (the write
 * callbacks run after close started) before on_close. */
static void
send_big_then_close (wire_conn_t *c, int status)
{
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  Orch__LogsReply logs = ORCH__LOGS_REPLY__INIT;
  orch_err_t err = { 0 };
  uint8_t *data = calloc (1, 1u << 20);

  assert_int_equal (status, 0);
  logs.data.data = data;
  logs.data.len = 1u << 20;
  env.msg_case = ORCH__ENVELOPE__MSG_LOGS_REPLY;
  env.logs_reply = &logs;
  for (int i = 0; i < 32; i++)
    assert_int_equal (wire_conn_send (c, &env, &err), 0);
  free (data);
  assert_true (c->queued_bytes > 0);
  wire_conn_close (c, "done");
}

static void
test_close_with_pending_writes (void **state)
{
  static const wire_conn_ops_t server_ops = {
    .on_message = client_ignores,
    .on_close = lb_server_on_close,
  };
  static const wire_conn_ops_t client_ops = {
    .on_message = client_ignores,
    .on_connect = send_big_then_close,
    .on_close = lb_client_on_close,
  };
  lb_t *lb = calloc (1, sizeof (*lb));

  lb_start (lb, &server_ops);
  lb->expect_closes = 2;
  lb_client (lb, &client_ops);
  lb_run (lb);
  assert_string_equal (lb->client_reason, "done");
  assert_int_equal (lb->queued_at_close, 0);
  /* The server saw a clean end of stream, possibly mid-frame. */
  assert_string_equal (lb->server_reason, "peer closed");
  free (lb);
}

static void
record_connect (wire_conn_t *c, int status)
{
  lb_t *lb = c->data;

  lb->connects++;
  lb->connect_status = status;
}

static void
test_connect_refused (void **state)
{
  static const wire_conn_ops_t client_ops = {
    .on_message = client_ignores,
    .on_connect = record_connect,
    .on_close = lb_client_on_close,
  };
  lb_t *lb = calloc (1, sizeof (*lb));
  char want[128];

  lb_start (lb, NULL);
  /* Nothing listens on the port once the listener is gone. */
  uv_close ((uv_handle_t *) &lb->server, NULL);
  uv_run (&lb->loop, UV_RUN_NOWAIT);
  assert_int_equal (uv_tcp_init (&lb->loop, &lb->server), 0);
  lb->expect_closes = 1;
  lb_client (lb, &client_ops);
  lb_run (lb);
  assert_int_equal (lb->connects, 1);
  assert_int_equal (lb->connect_status, UV_ECONNREFUSED);
  snprintf (want, sizeof (want), "connect to 127.0.0.1:%u: connection refused",
            (unsigned) ntohs (lb->addr.sin_port));
  assert_string_equal (lb->client_reason, want);
  free (lb);
}

/* A peer that never reads: the sender keeps queueing, one 4 MiB frame per
 * loop iteration, until the queue limit drops the connection. */
#define SLOW_FRAME (4u * 1024 * 1024)

static void
slow_tick (uv_timer_t *t)
{
  lb_t *lb = t->data;
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  Orch__LogsReply logs = ORCH__LOGS_REPLY__INIT;
  orch_err_t err = { 0 };
  static uint8_t data[SLOW_FRAME];

  if (!lb->connects)
    return;
  logs.data.data = data;
  logs.data.len = sizeof (data);
  env.msg_case = ORCH__ENVELOPE__MSG_LOGS_REPLY;
  env.logs_reply = &logs;
  if (wire_conn_send (lb->client, &env, &err) == 0)
    {
      lb->sends_ok++;
      assert_true (lb->sends_ok < 100);
      return;
    }
  assert_non_null (strstr (err.msg, "peer not reading ("));
  uv_timer_stop (t);
}

static void
record_connect_ok (wire_conn_t *c, int status)
{
  lb_t *lb = c->data;

  assert_int_equal (status, 0);
  lb->connects++;
}

static void
test_peer_not_reading (void **state)
{
  static const wire_conn_ops_t client_ops = {
    .on_message = client_ignores,
    .on_connect = record_connect_ok,
    .on_close = lb_client_on_close,
  };
  lb_t *lb = calloc (1, sizeof (*lb));

  lb_start (lb, NULL);
  lb->raw_server = 1;
  lb->expect_closes = 1;
  lb_client (lb, &client_ops);
  assert_int_equal (uv_timer_start (&lb->ticker, slow_tick, 1, 1), 0);
  lb_run (lb);
  assert_memory_equal (lb->client_reason, "peer not reading (", 18);
  /* The limit, not something earlier, dropped it. */
  assert_true (lb->sends_ok >= (int) (WIRE_MAX_QUEUED / SLOW_FRAME) - 1);
  assert_int_equal (lb->queued_at_close, 0);
  free (lb);
}

/* A peer that drops the connection with our data unread resets it. */
static void
reset_tick (uv_timer_t *t)
{
  lb_t *lb = t->data;

  if (!lb->raw_accepted || !lb->connects)
    return;
  /* The hello sits unread in raw_peer's receive buffer: close sends RST. */
  uv_close ((uv_handle_t *) &lb->raw_peer, NULL);
  lb->raw_accepted = 0;
  uv_timer_stop (t);
}

static void
hello_and_count_on_connect (wire_conn_t *c, int status)
{
  lb_t *lb = c->data;

  send_hello_on_connect (c, status);
  lb->connects++;
}

static void
test_read_error (void **state)
{
  static const wire_conn_ops_t client_ops = {
    .on_message = client_ignores,
    .on_connect = hello_and_count_on_connect,
    .on_close = lb_client_on_close,
  };
  lb_t *lb = calloc (1, sizeof (*lb));

  lb_start (lb, NULL);
  lb->raw_server = 1;
  lb->expect_closes = 1;
  lb_client (lb, &client_ops);
  assert_int_equal (uv_timer_start (&lb->ticker, reset_tick, 20, 20), 0);
  lb_run (lb);
  assert_string_equal (lb->client_reason, "read: connection reset by peer");
  free (lb);
}

static const struct CMUnitTest tests[] = {
  cmocka_unit_test (test_roundtrip),
  cmocka_unit_test (test_split_every_boundary),
  cmocka_unit_test (test_three_coalesced),
  cmocka_unit_test (test_split_with_next_start),
  cmocka_unit_test (test_large_frame_in_chunks),
  cmocka_unit_test (test_oversize_rejected),
  cmocka_unit_test (test_encode_oversize),
  cmocka_unit_test (test_garbage_rejected),
  cmocka_unit_test (test_no_message_rejected),
  cmocka_unit_test (test_zero_length_rejected),
  cmocka_unit_test (test_callback_stops),
  cmocka_unit_test (test_hostport),
  cmocka_unit_test (test_loopback_exchange),
  cmocka_unit_test (test_peer_closes),
  cmocka_unit_test (test_send_before_connected),
  cmocka_unit_test (test_close_unused),
  cmocka_unit_test (test_close_inside_on_message),
  cmocka_unit_test (test_close_with_pending_writes),
  cmocka_unit_test (test_connect_refused),
  cmocka_unit_test (test_peer_not_reading),
  cmocka_unit_test (test_read_error),
};

ORCH_TEST_MAIN (tests)
