/* Connections: a uv_tcp_t that reads frames into a wire_reader_t and writes
 * encoded envelopes, closing itself with a reason on any protocol error.
 *
 * Lifetime: the conn is freed only in the close callback of its TCP handle.
 * libuv runs the callbacks of pending connect and write requests (with
 * UV_ECANCELED) before that close callback, so they may still touch the conn;
 * they do nothing but release their own memory once closing is set. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orch_err.h"
#include "orch_util.h"
#include "wire.h"

/* One read buffer per connection, reused for every read: the reader copies
 * out whatever partial frame is left, so the buffer is free again when the
 * read callback returns. */
#define WIRE__READ_BUF (64u * 1024)

typedef struct wire__conn_s
{
  wire_conn_t pub; /* first: a wire_conn_t * is a wire__conn_t * */
  char rbuf[WIRE__READ_BUF];
} wire__conn_t;

typedef struct wire__write_s
{
  uv_write_t req; /* first: the callback gets this pointer back */
  wire_conn_t *conn;
  uint8_t *buf;
  size_t len;
} wire__write_t;

static void
wire__format_addr (const struct sockaddr *sa, char *out, size_t size)
{
  char ip[INET6_ADDRSTRLEN] = "";

  if (sa->sa_family == AF_INET)
    {
      const struct sockaddr_in *in = (const struct sockaddr_in *) sa;
      uv_ip4_name (in, ip, sizeof (ip));
      snprintf (out, size, "%s:%u", ip, (unsigned) ntohs (in->sin_port));
    }
  else if (sa->sa_family == AF_INET6)
    {
      const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) sa;
      uv_ip6_name (in6, ip, sizeof (ip));
      snprintf (out, size, "[%s]:%u", ip, (unsigned) ntohs (in6->sin6_port));
    }
  else
    snprintf (out, size, "?");
}

static void
wire__on_closed (uv_handle_t *h)
{
  wire_conn_t *c = (wire_conn_t *) h;

  if (c->ops->on_close)
    c->ops->on_close (c, c->close_reason);
  wire_reader_free (&c->reader);
  free ((wire__conn_t *) c);
}

/* Reasons longer than the field (an error message can be) are cut. */
static void
wire__copy_reason (wire_conn_t *c, const char *reason)
{
  size_t n = strnlen (reason, sizeof (c->close_reason) - 1);

  memcpy (c->close_reason, reason, n);
  c->close_reason[n] = '\0';
}

void
wire_conn_close (wire_conn_t *c, const char *reason)
{
  if (c->closing)
    return;
  c->closing = 1;
  wire__copy_reason (c, reason ? reason : "closed");
  uv_read_stop ((uv_stream_t *) &c->tcp);
  uv_close ((uv_handle_t *) &c->tcp, wire__on_closed);
}

wire_conn_t *
wire_conn_new (uv_loop_t *loop, const wire_conn_ops_t *ops, void *data, size_t max_frame)
{
  wire__conn_t *impl = xcalloc (1, sizeof (*impl));
  wire_conn_t *c = &impl->pub;

  /* uv_tcp_init cannot fail on Linux without address-family flags. */
  if (uv_tcp_init (loop, &c->tcp) < 0)
    {
      free (impl);
      return NULL;
    }
  c->tcp.data = c;
  c->ops = ops;
  c->data = data;
  wire_reader_init (&c->reader, max_frame);
  snprintf (c->peer, sizeof (c->peer), "?");
  return c;
}

static void
wire__alloc_cb (uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
  wire__conn_t *impl = (wire__conn_t *) h;

  *buf = uv_buf_init (impl->rbuf, sizeof (impl->rbuf));
}

static int
wire__on_frame (void *ctx, Orch__Envelope *env)
{
  wire_conn_t *c = ctx;

  if (c->ops->on_message)
    c->ops->on_message (c, env);
  /* A handler that closed the connection gets no further frames. */
  return c->closing;
}

static void
wire__read_cb (uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
  wire_conn_t *c = (wire_conn_t *) s;
  orch_err_t err = { 0 };
  char reason[sizeof (c->close_reason)];

  if (c->closing || nread == 0)
    return;
  if (nread == UV_EOF)
    {
      wire_conn_close (c, "peer closed");
      return;
    }
  if (nread < 0)
    {
      snprintf (reason, sizeof (reason), "read: %s", uv_strerror ((int) nread));
      wire_conn_close (c, reason);
      return;
    }
  if (wire_reader_feed (&c->reader, (const uint8_t *) buf->base, (size_t) nread, wire__on_frame, c,
                        &err)
      < 0)
    wire_conn_close (c, err.msg);
}

static int
wire__start (wire_conn_t *c)
{
  struct sockaddr_storage ss;
  int len = sizeof (ss);

  /* Frames are small and latency matters more than packet count. */
  uv_tcp_nodelay (&c->tcp, 1);
  if (uv_tcp_getpeername (&c->tcp, (struct sockaddr *) &ss, &len) == 0)
    wire__format_addr ((struct sockaddr *) &ss, c->peer, sizeof (c->peer));
  return uv_read_start ((uv_stream_t *) &c->tcp, wire__alloc_cb, wire__read_cb);
}

int
wire_conn_accept (uv_stream_t *server, wire_conn_t *c)
{
  char reason[sizeof (c->close_reason)];
  int rc;

  rc = uv_accept (server, (uv_stream_t *) &c->tcp);
  if (rc < 0)
    {
      snprintf (reason, sizeof (reason), "accept: %s", uv_strerror (rc));
      wire_conn_close (c, reason);
      return rc;
    }
  rc = wire__start (c);
  if (rc < 0)
    {
      snprintf (reason, sizeof (reason), "read from %s: %s", c->peer, uv_strerror (rc));
      wire_conn_close (c, reason);
      return rc;
    }
  return 0;
}

static void
wire__connect_cb (uv_connect_t *req, int status)
{
  wire_conn_t *c = (wire_conn_t *) req->handle;
  char reason[sizeof (c->close_reason)];

  /* Closed while connecting (status is UV_ECANCELED): on_close says it all. */
  if (c->closing)
    return;
  if (status == 0)
    status = wire__start (c);
  if (c->ops->on_connect)
    c->ops->on_connect (c, status);
  if (status < 0)
    {
      snprintf (reason, sizeof (reason), "connect to %s: %s", c->peer, uv_strerror (status));
      wire_conn_close (c, reason);
    }
}

int
wire_conn_connect (wire_conn_t *c, const struct sockaddr *addr)
{
  char reason[sizeof (c->close_reason)];
  int rc;

  wire__format_addr (addr, c->peer, sizeof (c->peer));
  rc = uv_tcp_connect (&c->connect_req, &c->tcp, addr, wire__connect_cb);
  if (rc < 0)
    {
      snprintf (reason, sizeof (reason), "connect to %s: %s", c->peer, uv_strerror (rc));
      wire_conn_close (c, reason);
    }
  return rc;
}

static void
wire__write_cb (uv_write_t *req, int status)
{
  wire__write_t *w = (wire__write_t *) req;
  wire_conn_t *c = w->conn;
  char reason[sizeof (c->close_reason)];

  c->queued_bytes -= w->len;
  free (w->buf);
  free (w);
  if (status < 0 && !c->closing)
    {
      snprintf (reason, sizeof (reason), "write: %s", uv_strerror (status));
      wire_conn_close (c, reason);
    }
}

int
wire_conn_send (wire_conn_t *c, const Orch__Envelope *env, orch_err_t *err)
{
  char reason[sizeof (c->close_reason)];
  wire__write_t *w;
  uv_buf_t b;
  uint8_t *buf;
  size_t len;
  int rc;

  if (c->closing)
    return orch_err_set (err, 0, "connection to %s is closed", c->peer);
  if (wire_frame_encode (env, c->reader.max_frame, &buf, &len, err) < 0)
    return -1;

  /* Every queued byte is memory held for a peer that may never read it. */
  if (len > WIRE_MAX_QUEUED - c->queued_bytes)
    {
      free (buf);
      snprintf (reason, sizeof (reason), "peer not reading (%zu bytes queued)",
                c->queued_bytes + len);
      wire_conn_close (c, reason);
      return orch_err_set (err, 0, "%s", reason);
    }

  w = xmalloc (sizeof (*w));
  w->conn = c;
  w->buf = buf;
  w->len = len;
  b = uv_buf_init ((char *) buf, (unsigned int) len);
  rc = uv_write (&w->req, (uv_stream_t *) &c->tcp, &b, 1, wire__write_cb);
  if (rc < 0)
    {
      free (buf);
      free (w);
      snprintf (reason, sizeof (reason), "write: %s", uv_strerror (rc));
      wire_conn_close (c, reason);
      return orch_err_set (err, 0, "%s", reason);
    }
  c->queued_bytes += len;
  return 0;
}

/* Parses a decimal port 1-65535 that makes up all of s. */
static int
wire__parse_port (const char *s, const char *whole, uint16_t *port, orch_err_t *err)
{
  unsigned long v = 0;
  const char *p;

  if (*s == '\0')
    return orch_err_set (err, 0, "missing port in \"%s\"", whole);
  for (p = s; *p; p++)
    {
      if (*p < '0' || *p > '9')
        return orch_err_set (err, 0, "bad port \"%s\" in \"%s\"", s, whole);
      v = v * 10 + (unsigned long) (*p - '0');
      if (v > 65535)
        return orch_err_set (err, 0, "port %s out of range 1-65535 in \"%s\"", s, whole);
    }
  if (v == 0)
    return orch_err_set (err, 0, "port 0 out of range 1-65535 in \"%s\"", whole);
  *port = (uint16_t) v;
  return 0;
}

int
wire_parse_hostport (const char *s, struct sockaddr_storage *addr, orch_err_t *err)
{
  char host[INET6_ADDRSTRLEN + 1];
  const char *port_s;
  const char *end;
  size_t hlen;
  uint16_t port = 0;

  if (s == NULL || *s == '\0')
    return orch_err_set (err, 0, "empty address (want host:port)");

  if (s[0] == '[')
    {
      end = strchr (s, ']');
      if (end == NULL)
        return orch_err_set (err, 0, "missing ']' in \"%s\"", s);
      if (end[1] != ':')
        return orch_err_set (err, 0, "missing port in \"%s\"", s);
      hlen = (size_t) (end - (s + 1));
      if (hlen == 0 || hlen >= sizeof (host))
        return orch_err_set (err, 0, "bad host in \"%s\"", s);
      memcpy (host, s + 1, hlen);
      host[hlen] = '\0';
      port_s = end + 2;
    }
  else
    {
      end = strrchr (s, ':');
      if (end == NULL)
        return orch_err_set (err, 0, "missing port in \"%s\"", s);
      hlen = (size_t) (end - s);
      if (memchr (s, ':', hlen) != NULL)
        return orch_err_set (err, 0, "IPv6 address must be in brackets in \"%s\"", s);
      if (hlen == 0)
        return orch_err_set (err, 0, "missing host in \"%s\"", s);
      if (hlen >= sizeof (host))
        return orch_err_set (err, 0, "bad host in \"%s\"", s);
      memcpy (host, s, hlen);
      host[hlen] = '\0';
      port_s = end + 1;
    }

  if (wire__parse_port (port_s, s, &port, err) < 0)
    return -1;

  memset (addr, 0, sizeof (*addr));
  if (s[0] == '[')
    {
      struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) addr;
      if (inet_pton (AF_INET6, host, &in6->sin6_addr) != 1)
        return orch_err_set (err, 0, "bad host \"%s\" (want an IPv6 address) in \"%s\"", host, s);
      in6->sin6_family = AF_INET6;
      in6->sin6_port = htons (port);
      return 0;
    }

  struct sockaddr_in *in = (struct sockaddr_in *) addr;
  /* Names are not resolved here (that would block the loop); localhost is
   * the one name every deployment and test uses. */
  if (strcmp (host, "localhost") == 0)
    in->sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  else if (inet_pton (AF_INET, host, &in->sin_addr) != 1)
    return orch_err_set (
        err, 0, "bad host \"%s\" (want an IPv4 address, [IPv6] or localhost) in \"%s\"", host, s);
  in->sin_family = AF_INET;
  in->sin_port = htons (port);
  return 0;
}
