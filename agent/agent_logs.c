/* The tail of an allocation's log, read with uv_fs_* so that a slow disk
 * never stalls the session (LogsRequest). */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "agent_internal.h"
#include "orch_util.h"

void
agent_logs_window (uint64_t file_size, uint64_t tail_bytes, uint64_t *offset, size_t *len,
                   bool *truncated)
{
  uint64_t want = tail_bytes == 0 ? AGENT_LOGS_DEFAULT_TAIL : tail_bytes;

  if (want > AGENT_LOGS_MAX_TAIL)
    want = AGENT_LOGS_MAX_TAIL;
  if (want > file_size)
    want = file_size;
  *len = (size_t) want;
  *offset = file_size - want;
  *truncated = *offset > 0;
}

typedef struct agent__logs_req_s
{
  uv_fs_t req;
  uv_loop_t *loop;
  uv_file fd;
  uint64_t tail;
  uint64_t offset;
  uint8_t *buf;
  size_t len; /* bytes wanted */
  size_t got;
  bool truncated;
  int status;
  agent_logs_cb cb;
  void *ctx;
} agent__logs_req_t;

static void agent__logs_read_more (agent__logs_req_t *r);

static void
agent__logs_finish (agent__logs_req_t *r)
{
  r->cb (r->ctx, r->status, r->status == 0 ? r->buf : NULL, r->status == 0 ? r->got : 0,
         r->truncated);
  free (r->buf);
  free (r);
}

static void
agent__logs_on_close (uv_fs_t *req)
{
  agent__logs_req_t *r = req->data;

  uv_fs_req_cleanup (req);
  agent__logs_finish (r);
}

static void
agent__logs_close (agent__logs_req_t *r)
{
  r->req.data = r;
  if (uv_fs_close (r->loop, &r->req, r->fd, agent__logs_on_close) < 0)
    agent__logs_finish (r);
}

static void
agent__logs_on_read (uv_fs_t *req)
{
  agent__logs_req_t *r = req->data;
  ssize_t n = req->result;

  uv_fs_req_cleanup (req);
  if (n < 0)
    {
      r->status = (int) n;
      agent__logs_close (r);
      return;
    }
  /* n == 0: the file shrank since fstat (truncated by someone); send what
   * there is. */
  r->got += (size_t) n;
  if (n == 0 || r->got >= r->len)
    {
      agent__logs_close (r);
      return;
    }
  agent__logs_read_more (r);
}

static void
agent__logs_read_more (agent__logs_req_t *r)
{
  uv_buf_t b = uv_buf_init ((char *) r->buf + r->got, (unsigned int) (r->len - r->got));
  int rc;

  r->req.data = r;
  rc = uv_fs_read (r->loop, &r->req, r->fd, &b, 1, (int64_t) (r->offset + r->got),
                   agent__logs_on_read);
  if (rc < 0)
    {
      r->status = rc;
      agent__logs_close (r);
    }
}

static void
agent__logs_on_stat (uv_fs_t *req)
{
  agent__logs_req_t *r = req->data;
  uint64_t size = req->statbuf.st_size;

  if (req->result < 0)
    {
      r->status = (int) req->result;
      uv_fs_req_cleanup (req);
      agent__logs_close (r);
      return;
    }
  uv_fs_req_cleanup (req);
  agent_logs_window (size, r->tail, &r->offset, &r->len, &r->truncated);
  if (r->len == 0)
    {
      agent__logs_close (r);
      return;
    }
  r->buf = xmalloc (r->len);
  agent__logs_read_more (r);
}

static void
agent__logs_on_open (uv_fs_t *req)
{
  agent__logs_req_t *r = req->data;
  ssize_t fd = req->result;
  int rc;

  uv_fs_req_cleanup (req);
  if (fd < 0)
    {
      /* The workload has not written anything yet: an empty log. */
      r->status = fd == UV_ENOENT ? 0 : (int) fd;
      agent__logs_finish (r);
      return;
    }
  r->fd = (uv_file) fd;
  r->req.data = r;
  rc = uv_fs_fstat (r->loop, &r->req, r->fd, agent__logs_on_stat);
  if (rc < 0)
    {
      r->status = rc;
      agent__logs_close (r);
    }
}

int
agent_logs_read (uv_loop_t *loop, const char *path, uint64_t tail_bytes, agent_logs_cb cb,
                 void *ctx)
{
  agent__logs_req_t *r = xcalloc (1, sizeof (*r));
  int rc;

  r->loop = loop;
  r->fd = -1;
  r->tail = tail_bytes;
  r->cb = cb;
  r->ctx = ctx;
  r->req.data = r;
  rc = uv_fs_open (loop, &r->req, path, O_RDONLY | O_CLOEXEC | O_NOCTTY, 0, agent__logs_on_open);
  if (rc < 0)
    {
      free (r);
      return rc;
    }
  return 0;
}
