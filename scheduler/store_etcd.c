/* etcd v3 store over the JSON gateway, with libcurl's multi interface driven
 * by the libuv loop: curl tells us which sockets to watch
 * (CURLMOPT_SOCKETFUNCTION -> one uv_poll_t per socket) and when to wake it
 * (CURLMOPT_TIMERFUNCTION -> one uv_timer_t); the loop tells curl what
 * happened (curl_multi_socket_action). Connections are kept alive in the
 * multi handle's cache and reused.
 *
 * User callbacks never run inside a curl callback: completions are handled
 * after curl_multi_socket_action returns (curl forbids removing handles from
 * inside its callbacks), and watch lines are only buffered by the write
 * callback and dispatched afterwards. Any callback may call back into the
 * store, destroy() included: the store's memory lives until the last uv
 * handle is closed, and every dispatch loop re-checks `closing`. */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orch_util.h"
#include "store.h"
#include "store_etcd_internal.h"

#define ETCD_CONNECT_TIMEOUT_MS 2000L
#define ETCD_REQUEST_TIMEOUT_MS 10000L
/* A watch is idle for as long as nothing changes: TCP keep-alive finds a
 * dead peer instead of a total timeout. */
#define ETCD_KEEPALIVE_IDLE_S 10L
#define ETCD_KEEPALIVE_INTVL_S 5L
#define ETCD_MAX_ENDPOINTS 64
/* Concurrent connections per etcd member: more requests wait in curl's queue
 * for a free connection instead of opening sockets without bound. */
#define ETCD_MAX_HOST_CONNECTIONS 32L

typedef enum
{
  REQ_RANGE,
  REQ_TXN,
  REQ_LEASE_GRANT,
  REQ_LEASE_KEEPALIVE,
  REQ_LEASE_REVOKE,
  REQ_WATCH,
} etcd_req_kind_t;

typedef struct store_etcd_s store_etcd_t;

typedef struct etcd_req_s
{
  store_etcd_t *s;
  struct etcd_req_s *prev, *next;
  etcd_req_kind_t kind;
  const char *path; /* "/v3/kv/range", ... */
  char *what;       /* for messages: "range /orch/nodes/" */
  CURL *easy;
  char *url;
  char *body;
  size_t body_len;

  char *resp;
  size_t resp_len, resp_cap;
  bool too_large;
  char errbuf[CURL_ERROR_SIZE];

  size_t endpoint; /* index into s->endpoints in use */
  size_t tried;    /* endpoints tried so far */

  union
  {
    store_range_cb range;
    store_txn_cb txn;
    store_lease_cb lease;
    store_watch_cb watch;
  } cb;
  void *ctx;
  int64_t lease_id;

  /* Watch only. */
  int watch_id;
  size_t resp_off; /* start of the first undispatched line */
} etcd_req_t;

typedef struct etcd_sock_s
{
  uv_poll_t poll;
  curl_socket_t fd;
  store_etcd_t *s;
  struct etcd_sock_s *prev, *next;
} etcd_sock_t;

struct store_etcd_s
{
  store_t base;
  CURLM *multi;
  uv_timer_t timer;
  struct curl_slist *headers;
  char **endpoints;
  size_t nendpoints;
  size_t current; /* endpoint that answered last; new requests start there */
  etcd_req_t *reqs;
  etcd_req_t *watch;
  int next_watch_id;
  etcd_sock_t *socks;
  bool closing;
  int open_handles; /* uv handles not yet closed; free s at 0 */
};

static void etcd_check_multi (store_etcd_t *s);
static void etcd_watch_dispatch (store_etcd_t *s);
static void endpoint_demote (store_etcd_t *s, size_t endpoint);

/* ------------------------------------------------------------ memory/close */

static void
etcd_free (store_etcd_t *s)
{
  size_t i;

  for (i = 0; i < s->nendpoints; i++)
    free (s->endpoints[i]);
  free (s->endpoints);
  curl_slist_free_all (s->headers);
  free (s);
}

static void
etcd_handle_closed (store_etcd_t *s)
{
  if (--s->open_handles == 0 && s->closing)
    etcd_free (s);
}

static void
etcd_timer_close_cb (uv_handle_t *h)
{
  etcd_handle_closed (h->data);
}

static void
etcd_sock_close_cb (uv_handle_t *h)
{
  etcd_sock_t *k = h->data;
  store_etcd_t *s = k->s;

  free (k);
  etcd_handle_closed (s);
}

static void
etcd_sock_close (etcd_sock_t *k)
{
  store_etcd_t *s = k->s;

  if (k->prev)
    k->prev->next = k->next;
  else
    s->socks = k->next;
  if (k->next)
    k->next->prev = k->prev;
  k->prev = k->next = NULL;
  uv_poll_stop (&k->poll);
  uv_close ((uv_handle_t *) &k->poll, etcd_sock_close_cb);
}

/* ------------------------------------------------------------ curl <-> uv */

static void
etcd_poll_cb (uv_poll_t *p, int status, int events)
{
  etcd_sock_t *k = p->data;
  store_etcd_t *s = k->s;
  int flags = 0, running;

  if (s->closing || s->multi == NULL)
    return;
  if (status < 0)
    flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE)
    flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE)
    flags |= CURL_CSELECT_OUT;
  curl_multi_socket_action (s->multi, k->fd, flags, &running);
  etcd_watch_dispatch (s);
  etcd_check_multi (s);
}

static void
etcd_timer_cb (uv_timer_t *t)
{
  store_etcd_t *s = t->data;
  int running;

  if (s->closing || s->multi == NULL)
    return;
  curl_multi_socket_action (s->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  etcd_watch_dispatch (s);
  etcd_check_multi (s);
}

static int
etcd_curl_socket_cb (CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
  store_etcd_t *s = userp;
  etcd_sock_t *k = socketp;
  int events = 0;

  if (what == CURL_POLL_REMOVE)
    {
      /* curl forgets the socket's pointer itself; this may run inside
       * curl_multi_cleanup, so do not call back into the multi handle. */
      if (k != NULL)
        etcd_sock_close (k);
      return 0;
    }
  if (s->closing)
    return 0;
  if (k == NULL)
    {
      k = xcalloc (1, sizeof (*k));
      k->fd = fd;
      k->s = s;
      if (uv_poll_init_socket (s->base.loop, &k->poll, fd) < 0)
        {
          free (k);
          return -1;
        }
      k->poll.data = k;
      s->open_handles++;
      k->next = s->socks;
      if (s->socks)
        s->socks->prev = k;
      s->socks = k;
      curl_multi_assign (s->multi, fd, k);
    }
  if (what & CURL_POLL_IN)
    events |= UV_READABLE;
  if (what & CURL_POLL_OUT)
    events |= UV_WRITABLE;
  uv_poll_start (&k->poll, events, etcd_poll_cb);
  return 0;
}

static int
etcd_curl_timer_cb (CURLM *multi, long timeout_ms, void *userp)
{
  store_etcd_t *s = userp;

  if (s->closing)
    return 0;
  if (timeout_ms < 0)
    uv_timer_stop (&s->timer);
  else
    /* A 0 ms timeout still waits for the loop's next turn: curl is never
     * re-entered from inside its own call. */
    uv_timer_start (&s->timer, etcd_timer_cb, (uint64_t) timeout_ms, 0);
  return 0;
}

static size_t
etcd_write_cb (char *data, size_t size, size_t nmemb, void *userp)
{
  etcd_req_t *r = userp;
  size_t n = size * nmemb;

  if (n > STORE_ETCD_MAX_RESPONSE - r->resp_len)
    {
      r->too_large = true;
      return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
    }
  if (r->resp_len + n + 1 > r->resp_cap)
    {
      size_t cap = r->resp_cap ? r->resp_cap : 4096;
      while (cap < r->resp_len + n + 1)
        cap *= 2;
      r->resp = xrealloc (r->resp, cap);
      r->resp_cap = cap;
    }
  memcpy (r->resp + r->resp_len, data, n);
  r->resp_len += n;
  r->resp[r->resp_len] = '\0';
  return n;
}

/* ------------------------------------------------------------- requests */

static void
req_unlink (etcd_req_t *r)
{
  store_etcd_t *s = r->s;

  if (r->prev)
    r->prev->next = r->next;
  else if (s->reqs == r)
    s->reqs = r->next;
  if (r->next)
    r->next->prev = r->prev;
  r->prev = r->next = NULL;
  if (s->watch == r)
    s->watch = NULL;
}

static void
req_free (etcd_req_t *r)
{
  if (r->easy)
    {
      if (r->s->multi)
        curl_multi_remove_handle (r->s->multi, r->easy);
      curl_easy_cleanup (r->easy);
    }
  free (r->what);
  free (r->url);
  free (r->body);
  free (r->resp);
  free (r);
}

/* Points the request at endpoint i and (re)adds it to the multi handle. */
static int
req_start (etcd_req_t *r, size_t i, orch_err_t *err)
{
  store_etcd_t *s = r->s;
  CURLMcode mc;

  r->endpoint = i;
  r->tried++;
  r->resp_len = 0;
  r->resp_off = 0;
  r->too_large = false;
  r->errbuf[0] = '\0';
  free (r->url);
  r->url = xasprintf ("%s%s", s->endpoints[i], r->path);
  curl_easy_setopt (r->easy, CURLOPT_URL, r->url);
  mc = curl_multi_add_handle (s->multi, r->easy);
  if (mc != CURLM_OK)
    return STORE__FAIL (err, EIO, "etcd %s: %s", r->what, curl_multi_strerror (mc));
  return 0;
}

static etcd_req_t *
req_new (store_etcd_t *s, etcd_req_kind_t kind, const char *path, char *body, size_t body_len,
         char *what, void *ctx, orch_err_t *err)
{
  etcd_req_t *r = xcalloc (1, sizeof (*r));
  CURL *e;

  r->s = s;
  r->kind = kind;
  r->path = path;
  r->body = body;
  r->body_len = body_len;
  r->what = what;
  r->ctx = ctx;

  e = curl_easy_init ();
  if (e == NULL)
    {
      orch_err_set (err, ENOMEM, "etcd %s: curl_easy_init failed", what);
      req_free (r);
      return NULL;
    }
  r->easy = e;
  curl_easy_setopt (e, CURLOPT_PRIVATE, r);
  curl_easy_setopt (e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt (e, CURLOPT_POST, 1L);
  curl_easy_setopt (e, CURLOPT_POSTFIELDS, r->body);
  curl_easy_setopt (e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) r->body_len);
  curl_easy_setopt (e, CURLOPT_HTTPHEADER, s->headers);
  curl_easy_setopt (e, CURLOPT_WRITEFUNCTION, etcd_write_cb);
  curl_easy_setopt (e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt (e, CURLOPT_ERRORBUFFER, r->errbuf);
  curl_easy_setopt (e, CURLOPT_CONNECTTIMEOUT_MS, ETCD_CONNECT_TIMEOUT_MS);
  curl_easy_setopt (e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt (e, CURLOPT_TCP_KEEPIDLE, ETCD_KEEPALIVE_IDLE_S);
  curl_easy_setopt (e, CURLOPT_TCP_KEEPINTVL, ETCD_KEEPALIVE_INTVL_S);
  curl_easy_setopt (e, CURLOPT_TCP_NODELAY, 1L);
  if (kind != REQ_WATCH)
    curl_easy_setopt (e, CURLOPT_TIMEOUT_MS, ETCD_REQUEST_TIMEOUT_MS);

  if (req_start (r, s->current, err) < 0)
    {
      req_free (r);
      return NULL;
    }
  r->next = s->reqs;
  if (s->reqs)
    s->reqs->prev = r;
  s->reqs = r;
  return r;
}

/* Calls r's callback with a failure. */
static void
req_fail_cb (etcd_req_t *r, const orch_err_t *e)
{
  switch (r->kind)
    {
    case REQ_RANGE:
      r->cb.range (r->ctx, -1, e, NULL, 0, 0);
      break;
    case REQ_TXN:
      r->cb.txn (r->ctx, -1, e, false, 0);
      break;
    case REQ_LEASE_GRANT:
    case REQ_LEASE_KEEPALIVE:
    case REQ_LEASE_REVOKE:
      r->cb.lease (r->ctx, -1, e, r->lease_id, 0);
      break;
    case REQ_WATCH:
      r->cb.watch (r->ctx, -1, e, NULL, 0, 0);
      break;
    }
}

/* Parses a finished unary request's body and calls its callback. */
static void
req_complete_ok (etcd_req_t *r)
{
  orch_err_t e = { 0 };
  const char *body = r->resp ? r->resp : "";

  switch (r->kind)
    {
    case REQ_RANGE:
      {
        store_kv_t *kvs = NULL;
        size_t n = 0;
        int64_t rev = 0;
        if (store_etcd__parse_range (body, r->resp_len, &kvs, &n, &rev, &e) < 0)
          break;
        r->cb.range (r->ctx, 0, NULL, kvs, n, rev);
        store_etcd__kvs_free (kvs, n);
        return;
      }
    case REQ_TXN:
      {
        bool ok = false;
        int64_t rev = 0;
        if (store_etcd__parse_txn (body, r->resp_len, &ok, &rev, &e) < 0)
          break;
        r->cb.txn (r->ctx, 0, NULL, ok, rev);
        return;
      }
    case REQ_LEASE_GRANT:
    case REQ_LEASE_KEEPALIVE:
    case REQ_LEASE_REVOKE:
      {
        int64_t id = r->lease_id, ttl = 0;
        size_t len = r->resp_len;
        /* Keepalive is a stream: keep only the first line. */
        const char *nl = memchr (body, '\n', len);
        if (nl != NULL && r->kind == REQ_LEASE_KEEPALIVE)
          len = (size_t) (nl - body);
        if (store_etcd__parse_lease (body, len, &id, &ttl, &e) < 0)
          break;
        if (r->kind == REQ_LEASE_REVOKE)
          ttl = 0;
        r->cb.lease (r->ctx, 0, NULL, id, ttl);
        return;
      }
    case REQ_WATCH:
      break;
    }
  /* etcd's UNAVAILABLE ("no leader", "too many requests"): another member
   * may do better next time. */
  if (e.code == EAGAIN)
    endpoint_demote (r->s, r->endpoint);
  orch_err_wrap (&e, "etcd %s", r->what);
  req_fail_cb (r, &e);
}

/* True when curl gave up before any byte of the request was sent, so that it
 * can go to another endpoint without the risk of being applied twice. A
 * timeout counts only then: a request that timed out after being sent may
 * have been applied. */
static bool
req_never_sent (etcd_req_t *r, CURLcode rc)
{
  long sent = 0;

  switch (rc)
    {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return true;
    case CURLE_OPERATION_TIMEDOUT:
      curl_easy_getinfo (r->easy, CURLINFO_REQUEST_SIZE, &sent);
      return sent == 0;
    default:
      return false;
    }
}

/* Moves new requests off an endpoint that failed them (hung, partitioned,
 * without a leader), so that the next request tries another member. */
static void
endpoint_demote (store_etcd_t *s, size_t endpoint)
{
  if (s->current == endpoint)
    s->current = (endpoint + 1) % s->nendpoints;
}

static void
req_transport_error (etcd_req_t *r, CURLcode rc, orch_err_t *e)
{
  const char *detail = r->errbuf[0] ? r->errbuf : curl_easy_strerror (rc);
  int code = EIO;

  if (r->too_large)
    {
      orch_err_set (e, EMSGSIZE, "etcd %s: response larger than %u bytes", r->what,
                    STORE_ETCD_MAX_RESPONSE);
      return;
    }
  if (rc == CURLE_OPERATION_TIMEDOUT)
    code = ETIMEDOUT;
  else if (rc == CURLE_COULDNT_CONNECT)
    code = ECONNREFUSED;
  orch_err_set (e, code, "etcd %s at %s: %s", r->what, r->s->endpoints[r->endpoint], detail);
}

/* Ends the watch r: the callback gets status -1 with e, and r is freed. */
static void
watch_end (etcd_req_t *r, const orch_err_t *e)
{
  store_watch_cb cb = r->cb.watch;
  void *ctx = r->ctx;

  req_unlink (r);
  req_free (r);
  cb (ctx, -1, e, NULL, 0, 0);
}

/* Delivers each complete line the watch has received. Stops when the watch
 * ends, is cancelled or the store closes from inside a callback. */
static void
etcd_watch_dispatch (store_etcd_t *s)
{
  etcd_req_t *w;

  while ((w = s->watch) != NULL && !s->closing)
    {
      store_etcd_watch_msg_t msg;
      orch_err_t e = { 0 };
      int id = w->watch_id;
      char *line = w->resp + w->resp_off;
      char *nl;
      size_t len;

      if (w->resp == NULL || w->resp_off >= w->resp_len)
        break;
      nl = memchr (line, '\n', w->resp_len - w->resp_off);
      if (nl == NULL)
        break;
      len = (size_t) (nl - line);
      w->resp_off += len + 1;
      while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' '))
        len--;
      if (len == 0)
        continue;
      if (store_etcd__parse_watch_line (line, len, &msg, &e) < 0)
        {
          orch_err_wrap (&e, "etcd watch");
          watch_end (w, &e);
          return;
        }
      if (msg.n_events > 0)
        {
          w->cb.watch (w->ctx, 0, NULL, msg.events, msg.n_events, msg.revision);
          if (s->closing || s->watch == NULL || s->watch->watch_id != id)
            {
              store_etcd__watch_msg_free (&msg);
              return;
            }
        }
      if (msg.canceled)
        {
          if (msg.compact_revision > 0)
            orch_err_set (&e, ERANGE, "watch compacted at revision %" PRId64, msg.compact_revision);
          else
            orch_err_set (&e, ECANCELED, "watch canceled by etcd: %s",
                          msg.cancel_reason ? msg.cancel_reason : "no reason given");
          store_etcd__watch_msg_free (&msg);
          watch_end (w, &e);
          return;
        }
      store_etcd__watch_msg_free (&msg);
    }

  /* Drop what was dispatched so that the buffer holds one line at most. */
  if (w != NULL && w->resp_off > 0)
    {
      memmove (w->resp, w->resp + w->resp_off, w->resp_len - w->resp_off);
      w->resp_len -= w->resp_off;
      w->resp_off = 0;
      if (w->resp)
        w->resp[w->resp_len] = '\0';
    }
}

static void
req_done (etcd_req_t *r, CURLcode rc)
{
  store_etcd_t *s = r->s;
  orch_err_t e = { 0 };
  long http = 0;

  curl_multi_remove_handle (s->multi, r->easy);

  if (rc != CURLE_OK && req_never_sent (r, rc) && r->tried < s->nendpoints
      && !(r->kind == REQ_WATCH && r->resp_len > 0))
    {
      size_t next = (r->endpoint + 1) % s->nendpoints;
      if (req_start (r, next, &e) == 0)
        return;
      req_unlink (r);
      req_fail_cb (r, &e);
      req_free (r);
      return;
    }
  if (rc == CURLE_OK || r->resp_len > 0)
    s->current = r->endpoint;

  if (r->kind == REQ_WATCH)
    {
      int id = r->watch_id;

      /* Deliver what came before the end, then report the end. The id, not
       * the pointer: a callback may cancel r and start a new watch. */
      etcd_watch_dispatch (s);
      if (s->closing || s->watch == NULL || s->watch->watch_id != id)
        return;
      if (r->resp_len > 0)
        {
          /* Something after the last newline: a complete message (an error
           * answer, or a last line that lost its newline), or a line cut by
           * the end of the connection. */
          store_etcd_watch_msg_t msg;
          orch_err_t pe = { 0 };

          if (store_etcd__parse_watch_line (r->resp, r->resp_len, &msg, &pe) == 0)
            {
              store_etcd__watch_msg_free (&msg);
              etcd_write_cb ((char *) "\n", 1, 1, r);
              etcd_watch_dispatch (s);
              if (s->closing || s->watch == NULL || s->watch->watch_id != id)
                return;
            }
          else if (pe.code != EPROTO)
            {
              /* etcd refused the watch. */
              e = pe;
              orch_err_wrap (&e, "etcd %s", r->what);
              watch_end (r, &e);
              return;
            }
        }
      if (rc != CURLE_OK)
        {
          endpoint_demote (s, r->endpoint);
          req_transport_error (r, rc, &e);
          orch_err_wrap (&e, "watch connection lost");
        }
      else
        orch_err_set (&e, EPIPE, "watch connection lost: etcd at %s closed the stream%s",
                      s->endpoints[r->endpoint], r->resp_len > 0 ? " inside a line" : "");
      watch_end (r, &e);
      return;
    }

  req_unlink (r);
  if (rc != CURLE_OK)
    {
      endpoint_demote (s, r->endpoint);
      req_transport_error (r, rc, &e);
      req_fail_cb (r, &e);
    }
  else
    {
      curl_easy_getinfo (r->easy, CURLINFO_RESPONSE_CODE, &http);
      if (http != 200 && r->resp_len == 0)
        {
          orch_err_set (&e, EIO, "etcd %s: HTTP %ld", r->what, http);
          req_fail_cb (r, &e);
        }
      else
        /* Error bodies (HTTP 4xx/5xx) are parsed for etcd's message. */
        req_complete_ok (r);
    }
  req_free (r);
}

static void
etcd_check_multi (store_etcd_t *s)
{
  CURLMsg *m;
  int left;

  while (!s->closing && s->multi != NULL && (m = curl_multi_info_read (s->multi, &left)) != NULL)
    {
      etcd_req_t *r = NULL;

      if (m->msg != CURLMSG_DONE)
        continue;
      curl_easy_getinfo (m->easy_handle, CURLINFO_PRIVATE, (char **) &r);
      if (r != NULL)
        req_done (r, m->data.result);
    }
}

/* -------------------------------------------------------------------- ops */

static int
etcd_closed (store_etcd_t *s, orch_err_t *err)
{
  if (s->closing)
    return STORE__FAIL (err, ECANCELED, "store closed");
  return 0;
}

static int
etcd_range_prefix (store_t *base, const char *prefix, store_range_cb cb, void *ctx, orch_err_t *err)
{
  store_etcd_t *s = (store_etcd_t *) base;
  etcd_req_t *r;
  char *body;
  size_t len;

  if (etcd_closed (s, err) < 0)
    return -1;
  if (prefix == NULL || cb == NULL)
    return STORE__FAIL (err, EINVAL, "range: prefix and callback are required");
  body = store_etcd__range_body (prefix, &len, err);
  if (body == NULL)
    return -1;
  r = req_new (s, REQ_RANGE, "/v3/kv/range", body, len, xasprintf ("range %s", prefix), ctx, err);
  if (r == NULL)
    return -1;
  r->cb.range = cb;
  return 0;
}

static int
etcd_txn (store_t *base, const store_cmp_t *cmps, size_t ncmp, const store_op_t *ops, size_t nops,
          store_txn_cb cb, void *ctx, orch_err_t *err)
{
  store_etcd_t *s = (store_etcd_t *) base;
  etcd_req_t *r;
  char *body;
  size_t len;

  if (etcd_closed (s, err) < 0)
    return -1;
  if (cb == NULL || (ncmp > 0 && cmps == NULL) || (nops > 0 && ops == NULL))
    return STORE__FAIL (err, EINVAL, "txn: bad arguments");
  body = store_etcd__txn_body (cmps, ncmp, ops, nops, &len, err);
  if (body == NULL)
    return -1;
  r = req_new (s, REQ_TXN, "/v3/kv/txn", body, len,
               xasprintf ("txn (%zu compares, %zu ops)", ncmp, nops), ctx, err);
  if (r == NULL)
    return -1;
  r->cb.txn = cb;
  return 0;
}

static int
etcd_lease_req (store_etcd_t *s, etcd_req_kind_t kind, int64_t arg, store_lease_cb cb, void *ctx,
                orch_err_t *err)
{
  etcd_req_t *r;
  const char *path;
  char *body, *what;
  size_t len;

  if (etcd_closed (s, err) < 0)
    return -1;
  if (cb == NULL)
    return STORE__FAIL (err, EINVAL, "lease: callback is required");
  switch (kind)
    {
    case REQ_LEASE_GRANT:
      body = store_etcd__lease_grant_body (arg, &len, err);
      path = "/v3/lease/grant";
      what = xasprintf ("lease grant (TTL %" PRId64 " s)", arg);
      break;
    case REQ_LEASE_KEEPALIVE:
      body = store_etcd__lease_id_body (arg, &len, err);
      path = "/v3/lease/keepalive";
      what = xasprintf ("lease keepalive %" PRId64, arg);
      break;
    default:
      body = store_etcd__lease_id_body (arg, &len, err);
      path = "/v3/lease/revoke";
      what = xasprintf ("lease revoke %" PRId64, arg);
      break;
    }
  if (body == NULL)
    {
      free (what);
      return -1;
    }
  r = req_new (s, kind, path, body, len, what, ctx, err);
  if (r == NULL)
    return -1;
  r->cb.lease = cb;
  r->lease_id = kind == REQ_LEASE_GRANT ? 0 : arg;
  return 0;
}

static int
etcd_lease_grant (store_t *base, int64_t ttl_s, store_lease_cb cb, void *ctx, orch_err_t *err)
{
  return etcd_lease_req ((store_etcd_t *) base, REQ_LEASE_GRANT, ttl_s, cb, ctx, err);
}

static int
etcd_lease_keepalive (store_t *base, int64_t lease_id, store_lease_cb cb, void *ctx,
                      orch_err_t *err)
{
  return etcd_lease_req ((store_etcd_t *) base, REQ_LEASE_KEEPALIVE, lease_id, cb, ctx, err);
}

static int
etcd_lease_revoke (store_t *base, int64_t lease_id, store_lease_cb cb, void *ctx, orch_err_t *err)
{
  return etcd_lease_req ((store_etcd_t *) base, REQ_LEASE_REVOKE, lease_id, cb, ctx, err);
}

static int
etcd_watch_prefix (store_t *base, const char *prefix, int64_t start_revision, store_watch_cb cb,
                   void *ctx, orch_err_t *err)
{
  store_etcd_t *s = (store_etcd_t *) base;
  etcd_req_t *r;
  char *body;
  size_t len;

  if (etcd_closed (s, err) < 0)
    return -1;
  if (prefix == NULL || cb == NULL)
    return STORE__FAIL (err, EINVAL, "watch: prefix and callback are required");
  if (s->watch != NULL)
    return STORE__FAIL (err, EBUSY, "a watch is already running on this store");
  body = store_etcd__watch_body (prefix, start_revision, &len, err);
  if (body == NULL)
    return -1;
  r = req_new (s, REQ_WATCH, "/v3/watch", body, len, xasprintf ("watch %s", prefix), ctx, err);
  if (r == NULL)
    return -1;
  r->cb.watch = cb;
  if (++s->next_watch_id <= 0)
    s->next_watch_id = 1;
  r->watch_id = s->next_watch_id;
  s->watch = r;
  return r->watch_id;
}

/* Stops the watch without calling its callback: the caller asked. */
static void
etcd_watch_cancel (store_t *base)
{
  store_etcd_t *s = (store_etcd_t *) base;
  etcd_req_t *w = s->watch;

  if (w == NULL)
    return;
  req_unlink (w);
  req_free (w);
}

static void
etcd_destroy (store_t *base)
{
  store_etcd_t *s = (store_etcd_t *) base;
  orch_err_t e;
  etcd_req_t *r;

  if (s == NULL || s->closing)
    return;
  s->closing = true;
  orch_err_set (&e, ECANCELED, "store closed");
  /* Callbacks run here, so that none comes after destroy returns. */
  while ((r = s->reqs) != NULL)
    {
      req_unlink (r);
      curl_multi_remove_handle (s->multi, r->easy);
      req_fail_cb (r, &e);
      req_free (r);
    }
  /* Closing cached connections makes curl call the socket callback with
   * CURL_POLL_REMOVE, which closes their poll handles. */
  curl_multi_cleanup (s->multi);
  s->multi = NULL;
  while (s->socks != NULL)
    etcd_sock_close (s->socks);
  uv_timer_stop (&s->timer);
  uv_close ((uv_handle_t *) &s->timer, etcd_timer_close_cb);
}

static const store_ops_t store_etcd_ops = {
  .name = "etcd",
  .range_prefix = etcd_range_prefix,
  .txn = etcd_txn,
  .lease_grant = etcd_lease_grant,
  .lease_keepalive = etcd_lease_keepalive,
  .lease_revoke = etcd_lease_revoke,
  .watch_prefix = etcd_watch_prefix,
  .watch_cancel = etcd_watch_cancel,
  .destroy = etcd_destroy,
};

/* Splits "http://a:2379, http://b:2379/" into base URLs without a trailing
 * slash. */
static int
parse_endpoints (store_etcd_t *s, const char *list, orch_err_t *err)
{
  const char *p = list;

  while (*p != '\0')
    {
      const char *start, *end;
      size_t n;

      while (*p == ' ' || *p == ',')
        p++;
      if (*p == '\0')
        break;
      start = p;
      while (*p != '\0' && *p != ',')
        p++;
      end = p;
      while (end > start && (end[-1] == ' ' || end[-1] == '/'))
        end--;
      n = (size_t) (end - start);
      if (!((n > 7 && strncmp (start, "http://", 7) == 0)
            || (n > 8 && strncmp (start, "https://", 8) == 0)))
        return STORE__FAIL (err, EINVAL, "etcd endpoint \"%.*s\" is not an http(s) URL",
                            (int) (n > 200 ? 200 : n), start);
      if (s->nendpoints >= ETCD_MAX_ENDPOINTS)
        return STORE__FAIL (err, EINVAL, "more than %d etcd endpoints", ETCD_MAX_ENDPOINTS);
      s->endpoints = xrealloc (s->endpoints, (s->nendpoints + 1) * sizeof (char *));
      s->endpoints[s->nendpoints++] = xstrndup (start, n);
    }
  if (s->nendpoints == 0)
    return STORE__FAIL (err, EINVAL, "no etcd endpoint given");
  return 0;
}

store_t *
store_etcd_new (uv_loop_t *loop, const char *endpoints, orch_err_t *err)
{
  static bool curl_ready;
  store_etcd_t *s;
  CURLcode rc;

  if (endpoints == NULL)
    {
      orch_err_set (err, EINVAL, "no etcd endpoint given");
      return NULL;
    }
  /* Not thread-safe, like curl_global_init itself; the daemons create their
   * stores from the main thread. */
  if (!curl_ready)
    {
      rc = curl_global_init (CURL_GLOBAL_DEFAULT);
      if (rc != CURLE_OK)
        {
          orch_err_set (err, EIO, "curl_global_init: %s", curl_easy_strerror (rc));
          return NULL;
        }
      curl_ready = true;
    }

  s = xcalloc (1, sizeof (*s));
  s->base.ops = &store_etcd_ops;
  s->base.loop = loop;
  if (parse_endpoints (s, endpoints, err) < 0)
    {
      etcd_free (s);
      return NULL;
    }
  s->headers = curl_slist_append (NULL, "Content-Type: application/json");
  /* curl would wait for "100 Continue" before sending bodies over 1 MiB. */
  s->headers = curl_slist_append (s->headers, "Expect:");
  if (s->headers == NULL)
    abort ();
  s->multi = curl_multi_init ();
  if (s->multi == NULL)
    {
      orch_err_set (err, ENOMEM, "curl_multi_init failed");
      etcd_free (s);
      return NULL;
    }
  curl_multi_setopt (s->multi, CURLMOPT_SOCKETFUNCTION, etcd_curl_socket_cb);
  curl_multi_setopt (s->multi, CURLMOPT_SOCKETDATA, s);
  curl_multi_setopt (s->multi, CURLMOPT_TIMERFUNCTION, etcd_curl_timer_cb);
  curl_multi_setopt (s->multi, CURLMOPT_TIMERDATA, s);
  curl_multi_setopt (s->multi, CURLMOPT_MAX_HOST_CONNECTIONS, ETCD_MAX_HOST_CONNECTIONS);
  curl_multi_setopt (s->multi, CURLMOPT_MAXCONNECTS, ETCD_MAX_HOST_CONNECTIONS);
  uv_timer_init (loop, &s->timer);
  s->timer.data = s;
  s->open_handles = 1;
  return &s->base;
}
