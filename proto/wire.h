/* The wire library (DESIGN.md §6): length-prefixed protobuf frames over
 * libuv TCP streams, shared by the scheduler, the agent and orchctl.
 *
 * A frame is a 4-byte big-endian length followed by one Orch__Envelope. The
 * length is checked against the maximum before anything is allocated; an
 * oversize or undecodable frame is a protocol error that closes the
 * connection with a reason, never a crash. */
#ifndef ORCH_WIRE_H
#define ORCH_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "orch.pb-c.h"
#include "orch_err.h"

#define WIRE_PROTOCOL_VERSION 1
#define WIRE_MAX_FRAME (8u * 1024 * 1024)     /* default largest frame accepted */
#define WIRE_MAX_QUEUED (64u * 1024 * 1024)   /* unsent bytes before a slow peer is dropped */

/* ---- Framing (no I/O) ----------------------------------------------------- */

/* Encodes env as one frame into a newly allocated buffer the caller frees.
 * Returns 0, or -1 with err when the encoded size exceeds max_frame. */
int wire_frame_encode (const Orch__Envelope *env, size_t max_frame, uint8_t **out, size_t *out_len,
                       orch_err_t *err);

/* Called once per complete frame. env is owned by the reader and freed when
 * the callback returns (copy what you keep). Return 0 to go on, non-zero to
 * stop processing the rest of the buffer (e.g. the connection was closed). */
typedef int (*wire_msg_cb) (void *ctx, Orch__Envelope *env);

/* Reassembles frames from a byte stream: partial frames are kept until the
 * rest arrives, several frames in one read are all delivered in order. */
typedef struct wire_reader_s
{
  uint8_t *buf;
  size_t len;
  size_t cap;
  size_t max_frame;
} wire_reader_t;

void wire_reader_init (wire_reader_t *r, size_t max_frame);
void wire_reader_free (wire_reader_t *r);
/* Returns 0 when all complete frames were delivered (or a callback asked to
 * stop), -1 with err on a protocol error (oversize length, undecodable
 * envelope, envelope with no message); the caller must close the connection. */
int wire_reader_feed (wire_reader_t *r, const uint8_t *data, size_t n, wire_msg_cb cb, void *ctx,
                      orch_err_t *err);

/* ---- Connections over libuv ---------------------------------------------- */

typedef struct wire_conn_s wire_conn_t;

typedef struct wire_conn_ops_s
{
  /* A decoded message; env is freed when this returns. May call wire_conn_close. */
  void (*on_message) (wire_conn_t *c, Orch__Envelope *env);
  /* For outgoing connections: the connect finished; status is 0 or a uv error.
   * On failure on_close follows. May be NULL for accepted connections. */
  void (*on_connect) (wire_conn_t *c, int status);
  /* The connection is closed (reason says why: "peer closed", a protocol error,
   * ...). Called exactly once; the conn is freed right after it returns. */
  void (*on_close) (wire_conn_t *c, const char *reason);
} wire_conn_ops_t;

struct wire_conn_s
{
  uv_tcp_t tcp; /* must stay first: handles live inside their owner */
  uv_connect_t connect_req;
  wire_reader_t reader;
  const wire_conn_ops_t *ops;
  void *data; /* owner's pointer, untouched by the library */
  char peer[64]; /* "ip:port" of the other end */
  char close_reason[256];
  size_t queued_bytes;
  int closing;
};

/* Allocates a connection whose TCP handle is initialised on loop. The conn is
 * owned by the library from here on and freed after on_close. */
wire_conn_t *wire_conn_new (uv_loop_t *loop, const wire_conn_ops_t *ops, void *data,
                            size_t max_frame);

/* Accepts a pending connection from server into c and starts reading.
 * Returns 0 or a uv error (then c is closed). */
int wire_conn_accept (uv_stream_t *server, wire_conn_t *c);

/* Connects to addr; ops->on_connect reports the result, and reading starts on
 * success. Returns 0 or a uv error (then c is closed). */
int wire_conn_connect (wire_conn_t *c, const struct sockaddr *addr);

/* Queues env for sending. Returns 0, or -1 with err when encoding fails or the
 * peer has too much unsent data (then the connection is closed). */
int wire_conn_send (wire_conn_t *c, const Orch__Envelope *env, orch_err_t *err);

/* Closes c (idempotent); on_close(reason) follows from the loop. */
void wire_conn_close (wire_conn_t *c, const char *reason);

/* Parses "host:port" (IPv4, [IPv6] or "localhost") into addr. Returns 0 or -1
 * with err naming what was wrong. */
int wire_parse_hostport (const char *s, struct sockaddr_storage *addr, orch_err_t *err);

#endif
