/* Framing: a 4-byte big-endian length, then one packed Orch__Envelope.
 *
 * The reader delivers complete frames straight out of the caller's data when
 * it can and copies only a trailing partial frame into its own buffer, so a
 * read carrying many frames costs no copies and no memmove per frame. The
 * buffer is grown only to the size a frame header announced, and only after
 * that size was checked against the limit. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "orch_err.h"
#include "orch_util.h"
#include "wire.h"

#define WIRE__HDR 4
/* Smallest buffer the reader allocates, so that header bytes arriving one by
 * one do not realloc on every byte. */
#define WIRE__READER_MIN 256
/* A buffer grown for a large frame is released once the reader is idle, so
 * that one big reply does not pin megabytes on every connection forever. */
#define WIRE__READER_KEEP (64u * 1024)

static uint32_t
wire__get_be32 (const uint8_t *p)
{
  return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) | ((uint32_t) p[2] << 8)
         | (uint32_t) p[3];
}

static void
wire__put_be32 (uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t) (v >> 24);
  p[1] = (uint8_t) (v >> 16);
  p[2] = (uint8_t) (v >> 8);
  p[3] = (uint8_t) v;
}

int
wire_frame_encode (const Orch__Envelope *env, size_t max_frame, uint8_t **out, size_t *out_len,
                   orch_err_t *err)
{
  size_t size;
  uint8_t *buf;

  /* The receiving reader refuses such an envelope and drops the connection;
   * saying so here points at the sender's bug instead. */
  if (env->msg_case == ORCH__ENVELOPE__MSG__NOT_SET)
    return orch_err_set (err, 0, "envelope carries no message");

  size = orch__envelope__get_packed_size (env);
  /* The second bound keeps header + body within a uv_buf_t's length. */
  if (size > max_frame || size > UINT32_MAX - WIRE__HDR)
    return orch_err_set (err, 0, "frame of %zu bytes exceeds limit %zu", size, max_frame);

  buf = xmalloc (WIRE__HDR + size);
  wire__put_be32 (buf, (uint32_t) size);
  orch__envelope__pack (env, buf + WIRE__HDR);
  *out = buf;
  *out_len = WIRE__HDR + size;
  return 0;
}

void
wire_reader_init (wire_reader_t *r, size_t max_frame)
{
  memset (r, 0, sizeof (*r));
  r->max_frame = max_frame ? max_frame : WIRE_MAX_FRAME;
}

void
wire_reader_free (wire_reader_t *r)
{
  free (r->buf);
  r->buf = NULL;
  r->len = 0;
  r->cap = 0;
}

/* Checks a frame length read from the wire; nothing may be allocated for a
 * frame before this passed. */
static int
wire__check_len (const wire_reader_t *r, uint32_t len, orch_err_t *err)
{
  if (len == 0)
    return orch_err_set (err, 0, "zero-length frame");
  if (len > r->max_frame)
    return orch_err_set (err, 0, "frame of %" PRIu32 " bytes exceeds limit %zu", len, r->max_frame);
  return 0;
}

static void
wire__reserve (wire_reader_t *r, size_t need)
{
  size_t cap;

  if (r->cap >= need)
    return;
  cap = need < WIRE__READER_MIN ? WIRE__READER_MIN : need;
  r->buf = xrealloc (r->buf, cap);
  r->cap = cap;
}

/* Decodes one frame body and hands it to cb. Returns 0 to go on, 1 when cb
 * asked to stop, -1 with err on a protocol error. */
static int
wire__deliver (const uint8_t *body, uint32_t len, wire_msg_cb cb, void *ctx, orch_err_t *err)
{
  Orch__Envelope *env;
  int stop;

  env = orch__envelope__unpack (NULL, len, body);
  if (env == NULL)
    return orch_err_set (err, 0, "undecodable envelope (%" PRIu32 " bytes)", len);
  /* Also what a message type added by a newer peer looks like to us. */
  if (env->msg_case == ORCH__ENVELOPE__MSG__NOT_SET)
    {
      orch__envelope__free_unpacked (env, NULL);
      return orch_err_set (err, 0, "envelope carries no message");
    }
  stop = cb (ctx, env);
  orch__envelope__free_unpacked (env, NULL);
  return stop ? 1 : 0;
}

static int
wire__feed (wire_reader_t *r, const uint8_t *data, size_t n, wire_msg_cb cb, void *ctx,
            orch_err_t *err)
{
  size_t pos = 0;
  size_t take;
  uint32_t len;
  int ret;

  if (n == 0)
    return 0;

  /* First finish the frame a previous feed left incomplete. */
  if (r->len > 0)
    {
      if (r->len < WIRE__HDR)
        {
          take = WIRE__HDR - r->len;
          if (take > n)
            take = n;
          memcpy (r->buf + r->len, data, take);
          r->len += take;
          pos += take;
          if (r->len < WIRE__HDR)
            return 0;
          len = wire__get_be32 (r->buf);
          if (wire__check_len (r, len, err) < 0)
            return -1;
          wire__reserve (r, WIRE__HDR + (size_t) len);
        }
      len = wire__get_be32 (r->buf);
      take = WIRE__HDR + (size_t) len - r->len;
      if (take > n - pos)
        take = n - pos;
      memcpy (r->buf + r->len, data + pos, take);
      r->len += take;
      pos += take;
      if (r->len < WIRE__HDR + (size_t) len)
        return 0;
      r->len = 0;
      ret = wire__deliver (r->buf + WIRE__HDR, len, cb, ctx, err);
      if (ret != 0)
        return ret < 0 ? -1 : 0;
    }

  /* Then every complete frame straight from data, without copying. */
  while (n - pos >= WIRE__HDR)
    {
      len = wire__get_be32 (data + pos);
      if (wire__check_len (r, len, err) < 0)
        return -1;
      if (n - pos - WIRE__HDR < len)
        break;
      ret = wire__deliver (data + pos + WIRE__HDR, len, cb, ctx, err);
      if (ret != 0)
        return ret < 0 ? -1 : 0;
      pos += WIRE__HDR + (size_t) len;
    }

  /* Keep the partial frame at the end; its length (when known) was checked. */
  if (pos < n)
    {
      take = n - pos;
      wire__reserve (r, take >= WIRE__HDR ? WIRE__HDR + (size_t) wire__get_be32 (data + pos)
                                          : WIRE__HDR);
      memcpy (r->buf, data + pos, take);
      r->len = take;
    }
  return 0;
}

int
wire_reader_feed (wire_reader_t *r, const uint8_t *data, size_t n, wire_msg_cb cb, void *ctx,
                  orch_err_t *err)
{
  int ret;

  ret = wire__feed (r, data, n, cb, ctx, err);
  if (ret < 0)
    r->len = 0; /* the stream is unusable; the caller closes the connection */
  if (r->len == 0 && r->cap > WIRE__READER_KEEP)
    wire_reader_free (r);
  return ret < 0 ? -1 : 0;
}
