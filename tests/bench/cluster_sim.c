/* cluster_sim: a LOAD GENERATOR for the real orch-scheduler (issue 3's second
 * benchmark). It starts a real etcd (unless given one) and the real scheduler
 * binary, then opens N simulated agents over real TCP on one libuv loop. The
 * agents speak the real protocol (proto/wire.h) but run nothing: every
 * StartAlloc is acknowledged at once as running, every StopAlloc as stopped.
 * A client then applies one service of R replicas and the bench measures,
 * from the moment the ApplyRequest is sent:
 *
 *   - the ApplyReply,
 *   - all R allocations received by the simulated agents (StartAlloc, or a
 *     DesiredAllocs list that names them),
 *   - all R shown running by the scheduler (GetRequest {kind allocs}, polled),
 *   - all R allocation records created under /orch/allocs/ in etcd, and then
 *     all R records saying "running": by default checked once the stages
 *     above are done (an upper bound that adds no load while the scheduler
 *     works), or with --watch timed exactly through an etcd watch opened
 *     from a second thread before the apply (the loop is never blocked),
 *
 * and the etcd requests made in that window, from etcd's Prometheus /metrics
 * (grpc_server_started_total by method: the JSON gateway turns every HTTP
 * request into one gRPC call). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <uv.h>

#include "orch_map.h"
#include "orch_quantity.h"
#include "orch_util.h"
#include "wire.h"

#define SIM_SERVICE "sim-bench"
#define SIM_ALLOCS_PREFIX "/orch/allocs/"
#define SIM_NODES_PREFIX "/orch/nodes/"
#define SIM_MAX_CONNECTING 64            /* in-flight TCP connects (listen backlog is 128) */
#define SIM_MAX_HTTP_BODY (256u << 20)   /* largest etcd reply the bench reads */
#define SIM_MAX_NODES 100000
#define SIM_MAX_REPLICAS 1000000

static const char usage_text[]
    = "Usage: cluster_sim --scheduler PATH [OPTIONS]\n"
      "\n"
      "LOAD GENERATOR for orch-scheduler (not an orch component): starts etcd (unless\n"
      "--etcd is given) and the real scheduler, connects N simulated agents over TCP\n"
      "that acknowledge every start at once without running anything, applies one\n"
      "service of R replicas and measures apply -> acknowledged running -> persisted\n"
      "in etcd, with the number of etcd requests the scheduler made.\n"
      "\n"
      "Options:\n"
      "  --scheduler PATH       the orch-scheduler binary to run (required)\n"
      "  --etcd URL             use this etcd (its /orch/ keys must be empty); default:\n"
      "                         start a throw-away etcd on free loopback ports\n"
      "  --etcd-bin PATH        etcd binary to start (default /usr/bin/etcd)\n"
      "  -n, --nodes N          simulated agents (default 1000)\n"
      "  -r, --replicas R       replicas of the applied service (default 10000)\n"
      "  --cpu Q                CPU request per replica (default 100m)\n"
      "  --memory Q             memory request per replica (default 64Mi)\n"
      "  --node-cpu Q           capacity of each simulated node (default 16)\n"
      "  --node-memory Q        capacity of each simulated node (default 64Gi)\n"
      "  --heartbeat DURATION   agent heartbeat interval (default 2s)\n"
      "  --timeout DURATION     give up after this long from the apply (default 60s)\n"
      "  --scheduler-arg ARG    extra argument for the scheduler (repeatable)\n"
      "  --etcd-arg ARG         extra argument for the etcd it starts (repeatable), e.g.\n"
      "                         --etcd-arg=--max-txn-ops=1024\n"
      "  --keep                 keep the work directory (logs, etcd data)\n"
      "  --watch                time persistence exactly with an etcd watch opened before\n"
      "                         the apply. It costs etcd CPU (a JSON-gateway watch of R\n"
      "                         records, as a standby scheduler would add: about a third\n"
      "                         more etcd CPU here), so by default persistence is checked\n"
      "                         once the other stages are done (count_only range, then\n"
      "                         every record read), which gives an upper bound\n"
      "  --json                 print one JSON object instead of text\n"
      "  -h, --help             show this help\n"
      "\n"
      "Exit status: 0 when every stage completed, 1 on failure or timeout, 2 on a\n"
      "usage error.\n";

/* ---- Configuration and state ------------------------------------------------ */

typedef struct sim_cfg_s
{
  const char *sched_bin;
  const char *etcd;
  const char *etcd_bin;
  long nodes;
  long replicas;
  int64_t cpu_milli;
  int64_t memory_bytes;
  int64_t node_cpu_milli;
  int64_t node_memory_bytes;
  int64_t heartbeat_ms;
  int64_t timeout_ms;
  char **sched_args;
  size_t n_sched_args;
  char **etcd_args;
  size_t n_etcd_args;
  bool keep;
  bool json;
  bool no_watch;
} sim_cfg_t;

typedef struct sim_s sim_t;

/* etcd's counters that matter here, read from /metrics. */
typedef struct sim_metrics_s
{
  double range, txn, put, delete_range, lease_grant, lease_keepalive, lease_revoke, watch, other;
  double mvcc_put, mvcc_txn, mvcc_range, proposals;
  /* CPU time (user + system, ms) so far of the scheduler, etcd (when this
   * bench started it) and this load generator: figures that contention from
   * other processes on the machine does not inflate the way it does wall
   * time. -1 when unknown. */
  double sched_cpu_ms, etcd_cpu_ms, self_cpu_ms;
} sim_metrics_t;

typedef struct sim_agent_s
{
  sim_t *sim;
  wire_conn_t *wc;
  uv_timer_t hb;
  char id[32];
  char **allocs; /* ids this agent "runs" */
  int64_t *started_ms; /* when each was acknowledged, repeated in heartbeats */
  size_t n_allocs;
  size_t cap_allocs;
  bool connecting; /* counted in sim->connecting */
  bool hello_ok;
  bool closed;
} sim_agent_t;

/* Times in ns since the apply was sent; 0 = not reached. */
typedef struct sim_marks_s
{
  uint64_t reply;
  uint64_t all_started;
  uint64_t all_running;
  _Atomic uint64_t persisted;
  _Atomic uint64_t persisted_running;
  uint64_t first_start;
} sim_marks_t;

struct sim_s
{
  sim_cfg_t cfg;
  uv_loop_t *loop;
  char workdir[64];
  char etcd_url[128];
  pid_t etcd_pid;
  pid_t sched_pid;
  struct sockaddr_storage api_addr;
  struct sockaddr_storage agent_addr;

  sim_agent_t *agents;
  long next_connect;
  long connecting;
  long hello_ok;
  long closed_agents;

  wire_conn_t *cli;
  bool cli_ready;
  uint64_t next_req;
  uint64_t nodes_req; /* outstanding GetRequest nodes */
  uint64_t allocs_req;
  uint64_t apply_req;
  long nodes_ready;
  uv_timer_t poll_timer;
  uv_timer_t deadline;
  int phase; /* 1 = cluster coming up, 2 = measured apply, 3 = finished */

  _Atomic uint64_t t0; /* read by the watcher thread too */
  sim_marks_t marks;
  orch_map_t started; /* alloc id -> agent, every allocation received */
  long starts_msg;    /* StartAlloc messages */
  long starts_desired; /* allocations first seen in a DesiredAllocs */
  long dup_starts;
  long stops;
  long events_sent;
  long placed;
  long unplaced;
  char unplaced_reason[256];
  long running_seen;
  long alloc_polls;
  char failure[512];
  bool timed_out;

  /* etcd watcher thread */
  pthread_t watcher;
  bool watcher_started;
  _Atomic bool watcher_stop;
  _Atomic int watcher_state; /* 0 starting, 1 watching, -1 failed */
  int64_t watch_from;        /* etcd revision after which to watch */
  CURL *curl;                /* main thread's handle */
  sim_metrics_t m_e2e;       /* etcd's counters when the end-to-end stages were reached */
  bool have_m_e2e;
  long own_ranges; /* without --watch: the bench's own checks after the run */
  uv_async_t watcher_async;
};

static void
sim_fail (sim_t *s, const char *fmt, ...)
{
  if (s->failure[0])
    return;
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (s->failure, sizeof s->failure, fmt, ap);
  va_end (ap);
  uv_stop (s->loop);
}

static uint64_t
sim_since_t0 (const sim_t *s)
{
  uint64_t now = uv_hrtime (), t0 = atomic_load (&s->t0);
  return now > t0 ? now - t0 : 1;
}

/* ---- Small helpers ---------------------------------------------------------- */

static char *
sim_b64 (const char *in, size_t len)
{
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char *out = xmalloc (4 * ((len + 2) / 3) + 1);
  size_t o = 0;
  for (size_t i = 0; i < len; i += 3)
    {
      uint32_t v = (uint32_t) (unsigned char) in[i] << 16;
      if (i + 1 < len)
        v |= (uint32_t) (unsigned char) in[i + 1] << 8;
      if (i + 2 < len)
        v |= (unsigned char) in[i + 2];
      out[o++] = tab[(v >> 18) & 63];
      out[o++] = tab[(v >> 12) & 63];
      out[o++] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
      out[o++] = i + 2 < len ? tab[v & 63] : '=';
    }
  out[o] = '\0';
  return out;
}

/* Decodes base64 into a new NUL-terminated buffer; NULL on bad input. */
static char *
sim_unb64 (const char *in, size_t *out_len)
{
  size_t len = strlen (in);
  char *out = xmalloc (len / 4 * 3 + 1);
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < len && in[i] != '='; i++)
    {
      int c = (unsigned char) in[i], v;
      if (c >= 'A' && c <= 'Z')
        v = c - 'A';
      else if (c >= 'a' && c <= 'z')
        v = c - 'a' + 26;
      else if (c >= '0' && c <= '9')
        v = c - '0' + 52;
      else if (c == '+')
        v = 62;
      else if (c == '/')
        v = 63;
      else
        {
          free (out);
          return NULL;
        }
      acc = (acc << 6) | (uint32_t) v;
      bits += 6;
      if (bits >= 8)
        {
          bits -= 8;
          out[o++] = (char) ((acc >> bits) & 0xff);
        }
    }
  out[o] = '\0';
  *out_len = o;
  return out;
}

/* A loopback TCP port nothing listens on now (the kernel picks it). */
static int
sim_free_port (void)
{
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  socklen_t l = sizeof a;
  int port = -1;
  if (bind (fd, (struct sockaddr *) &a, sizeof a) == 0
      && getsockname (fd, (struct sockaddr *) &a, &l) == 0)
    port = ntohs (a.sin_port);
  close (fd);
  return port;
}

static bool
sim_port_open (int port)
{
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return false;
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK),
                           .sin_port = htons ((uint16_t) port) };
  bool ok = connect (fd, (struct sockaddr *) &a, sizeof a) == 0;
  close (fd);
  return ok;
}

static void
sim_sleep_ms (long ms)
{
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
  while (nanosleep (&ts, &ts) < 0 && errno == EINTR)
    ;
}

/* fork + exec with stdout and stderr to log; returns the pid or -1. */
static pid_t
sim_spawn (char *const argv[], const char *log)
{
  int fd = open (log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0)
    return -1;
  pid_t pid = fork ();
  if (pid == 0)
    {
      dup2 (fd, STDOUT_FILENO);
      dup2 (fd, STDERR_FILENO);
      int devnull = open ("/dev/null", O_RDONLY);
      if (devnull >= 0)
        dup2 (devnull, STDIN_FILENO);
      execv (argv[0], argv);
      dprintf (STDERR_FILENO, "exec %s: %s\n", argv[0], strerror (errno));
      _exit (127);
    }
  close (fd);
  return pid;
}

static bool
sim_alive (pid_t pid)
{
  int st;
  return pid > 0 && waitpid (pid, &st, WNOHANG) == 0;
}

static void
sim_stop_child (pid_t pid, int wait_ms)
{
  if (pid <= 0)
    return;
  kill (pid, SIGTERM);
  for (int i = 0; i < wait_ms / 20; i++)
    {
      int st;
      if (waitpid (pid, &st, WNOHANG) != 0)
        return;
      sim_sleep_ms (20);
    }
  kill (pid, SIGKILL);
  waitpid (pid, NULL, 0);
}

/* ---- etcd over HTTP (blocking; used before/after the loop and in the watcher
 * thread, never on the loop) ----------------------------------------------- */

typedef struct sim_buf_s
{
  char *data;
  size_t len;
  size_t cap;
} sim_buf_t;

static size_t
sim_curl_write (char *p, size_t size, size_t nmemb, void *ud)
{
  sim_buf_t *b = ud;
  size_t n = size * nmemb;
  if (b->len + n + 1 > SIM_MAX_HTTP_BODY)
    return 0; /* aborts the transfer */
  orch_grow ((void **) &b->data, &b->cap, b->len + n + 1, 1);
  memcpy (b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return n;
}

/* GET (body NULL) or POST url; returns the body (caller frees) or NULL. */
static char *
sim_http (CURL *h, const char *url, const char *body)
{
  sim_buf_t b = { NULL, 0, 0 };
  curl_easy_reset (h);
  curl_easy_setopt (h, CURLOPT_URL, url);
  curl_easy_setopt (h, CURLOPT_WRITEFUNCTION, sim_curl_write);
  curl_easy_setopt (h, CURLOPT_WRITEDATA, &b);
  curl_easy_setopt (h, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt (h, CURLOPT_NOSIGNAL, 1L);
  if (body)
    curl_easy_setopt (h, CURLOPT_POSTFIELDS, body);
  long code = 0;
  if (curl_easy_perform (h) != CURLE_OK
      || curl_easy_getinfo (h, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK || code != 200)
    {
      free (b.data);
      return NULL;
    }
  if (b.data == NULL)
    b.data = xstrdup ("");
  return b.data;
}

typedef enum
{
  SIM_BODY_COUNT, /* range, count only */
  SIM_BODY_ALL,   /* range, keys and values */
  SIM_BODY_WATCH, /* watch create request from a revision */
} sim_body_t;

/* The JSON body of a request on every key under prefix. */
static char *
sim_prefix_body (const char *prefix, sim_body_t what, int64_t watch_from)
{
  size_t n = strlen (prefix);
  cleanup_free char *end = xstrdup (prefix);
  end[n - 1]++;
  cleanup_free char *k = sim_b64 (prefix, n);
  cleanup_free char *e = sim_b64 (end, n);
  if (what == SIM_BODY_WATCH)
    return xasprintf ("{\"create_request\":{\"key\":\"%s\",\"range_end\":\"%s\","
                      "\"start_revision\":\"%" PRId64 "\"}}",
                      k, e, watch_from);
  return xasprintf ("{\"key\":\"%s\",\"range_end\":\"%s\"%s}", k, e,
                    what == SIM_BODY_COUNT ? ",\"count_only\":true" : "");
}

/* Number of keys under prefix, or -1; *revision (when not NULL) gets etcd's
 * revision at the time of the read. */
static long
sim_etcd_count (CURL *h, const char *endpoint, const char *prefix, int64_t *revision)
{
  cleanup_free char *url = xasprintf ("%s/v3/kv/range", endpoint);
  cleanup_free char *body = sim_prefix_body (prefix, SIM_BODY_COUNT, 0);
  cleanup_free char *resp = sim_http (h, url, body);
  if (resp == NULL)
    return -1;
  json_t *j = json_loads (resp, 0, NULL);
  if (j == NULL)
    return -1;
  json_t *c = json_object_get (j, "count");
  long n = c && json_is_string (c) ? strtol (json_string_value (c), NULL, 10) : 0;
  const char *rev = json_string_value (json_object_get (json_object_get (j, "header"), "revision"));
  if (revision)
    *revision = rev ? strtoll (rev, NULL, 10) : 0;
  json_decref (j);
  return n;
}



/* Number of allocation records under prefix whose status says running
 * (reads every value: megabytes), or -1. */
static long
sim_etcd_count_running (CURL *h, const char *endpoint, const char *prefix)
{
  cleanup_free char *url = xasprintf ("%s/v3/kv/range", endpoint);
  cleanup_free char *body = sim_prefix_body (prefix, SIM_BODY_ALL, 0);
  cleanup_free char *resp = sim_http (h, url, body);
  json_t *j = resp ? json_loads (resp, 0, NULL) : NULL;
  if (j == NULL)
    return -1;
  long running = 0;
  json_t *kv;
  size_t i;
  json_array_foreach (json_object_get (j, "kvs"), i, kv)
  {
    const char *v = json_string_value (json_object_get (kv, "value"));
    size_t len = 0;
    cleanup_free char *raw = v ? sim_unb64 (v, &len) : NULL;
    json_t *rec = raw ? json_loadb (raw, len, 0, NULL) : NULL;
    const char *st
        = json_string_value (json_object_get (json_object_get (rec, "status"), "state"));
    if (st && strcmp (st, "running") == 0)
      running++;
    json_decref (rec);
  }
  json_decref (j);
  return running;
}

/* utime + stime of pid in ms, from /proc/PID/stat; -1 when unknown. */
static double
sim_proc_cpu_ms (pid_t pid)
{
  if (pid <= 0)
    return -1;
  char path[64];
  snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
  cleanup_free char *buf = NULL;
  size_t len;
  if (orch_read_file (path, 4096, &buf, &len) < 0)
    return -1;
  /* The command name may hold spaces: fields count from after its ')'. */
  char *p = strrchr (buf, ')');
  unsigned long long ut = 0, st = 0;
  if (p == NULL
      || sscanf (p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
    return -1;
  return (double) (ut + st) * 1000.0 / (double) sysconf (_SC_CLK_TCK);
}

/* Reads etcd's counters and the CPU times; h is the calling thread's handle. */
static int
sim_metrics_read (sim_t *s, CURL *h, sim_metrics_t *m)
{
  const char *endpoint = s->etcd_url;
  memset (m, 0, sizeof *m);
  struct rusage ru;
  m->sched_cpu_ms = sim_proc_cpu_ms (s->sched_pid);
  m->etcd_cpu_ms = sim_proc_cpu_ms (s->etcd_pid);
  m->self_cpu_ms = getrusage (RUSAGE_SELF, &ru) == 0
                       ? (double) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3
                             + (double) (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3
                       : -1;
  cleanup_free char *url = xasprintf ("%s/metrics", endpoint);
  cleanup_free char *resp = sim_http (h, url, NULL);
  if (resp == NULL)
    return -1;
  for (char *line = strtok (resp, "\n"); line; line = strtok (NULL, "\n"))
    {
      char *sp = strrchr (line, ' ');
      if (line[0] == '#' || sp == NULL)
        continue;
      double v = strtod (sp + 1, NULL);
      if (strncmp (line, "grpc_server_started_total{", 26) == 0)
        {
          char *meth = strstr (line, "grpc_method=\"");
          if (meth == NULL)
            continue;
          meth += 13;
          if (strncmp (meth, "Range\"", 6) == 0)
            m->range += v;
          else if (strncmp (meth, "Txn\"", 4) == 0)
            m->txn += v;
          else if (strncmp (meth, "Put\"", 4) == 0)
            m->put += v;
          else if (strncmp (meth, "DeleteRange\"", 12) == 0)
            m->delete_range += v;
          else if (strncmp (meth, "LeaseGrant\"", 11) == 0)
            m->lease_grant += v;
          else if (strncmp (meth, "LeaseKeepAlive\"", 15) == 0)
            m->lease_keepalive += v;
          else if (strncmp (meth, "LeaseRevoke\"", 12) == 0)
            m->lease_revoke += v;
          else if (strncmp (meth, "Watch\"", 6) == 0)
            m->watch += v;
          else
            m->other += v;
        }
      else if (strncmp (line, "etcd_debugging_mvcc_put_total ", 30) == 0)
        m->mvcc_put = v;
      else if (strncmp (line, "etcd_debugging_mvcc_txn_total ", 30) == 0)
        m->mvcc_txn = v;
      else if (strncmp (line, "etcd_debugging_mvcc_range_total ", 32) == 0)
        m->mvcc_range = v;
      else if (strncmp (line, "etcd_server_proposals_committed_total ", 38) == 0)
        m->proposals = v;
    }
  return 0;
}

/* ---- Watcher thread: persisted in etcd ------------------------------------- */

typedef struct sim_watch_s
{
  sim_t *s;
  sim_buf_t line;      /* a partial line of the stream */
  orch_map_t running;  /* keys (base64) whose record says running */
  long created;
  bool failed;
} sim_watch_t;

/* One event of the watch stream: counts records created and records that
 * say running. Returns true once every record says running. */
static bool
sim_watch_event (sim_watch_t *w, json_t *ev)
{
  sim_t *s = w->s;
  json_t *kv = json_object_get (ev, "kv");
  const char *key = json_string_value (json_object_get (kv, "key"));
  const char *type = json_string_value (json_object_get (ev, "type"));
  if (key == NULL || (type && strcmp (type, "DELETE") == 0))
    return false;
  const char *version = json_string_value (json_object_get (kv, "version"));
  if (version && strcmp (version, "1") == 0 && ++w->created == s->cfg.replicas)
    {
      atomic_store (&s->marks.persisted, sim_since_t0 (s));
      uv_async_send (&s->watcher_async);
    }
  const char *v = json_string_value (json_object_get (kv, "value"));
  size_t len = 0;
  cleanup_free char *raw = v ? sim_unb64 (v, &len) : NULL;
  json_t *rec = raw ? json_loadb (raw, len, 0, NULL) : NULL;
  const char *st = json_string_value (json_object_get (json_object_get (rec, "status"), "state"));
  bool running = st && strcmp (st, "running") == 0;
  json_decref (rec);
  if (running && orch_map_get (&w->running, key) == NULL)
    orch_map_put (&w->running, key, (void *) 1);
  else if (!running)
    orch_map_del (&w->running, key);
  if ((long) w->running.len >= s->cfg.replicas && atomic_load (&s->marks.persisted))
    {
      atomic_store (&s->marks.persisted_running, sim_since_t0 (s));
      uv_async_send (&s->watcher_async);
      return true;
    }
  return false;
}

/* The watch stream: one JSON object per line. Returning short of n ends the
 * transfer, which is how the watcher stops. */
static size_t
sim_watch_write (char *p, size_t size, size_t nmemb, void *ud)
{
  sim_watch_t *w = ud;
  size_t n = size * nmemb;
  if (sim_curl_write (p, size, nmemb, &w->line) != n)
    return 0;
  char *start = w->line.data, *nl;
  while ((nl = memchr (start, '\n', w->line.len - (size_t) (start - w->line.data))) != NULL)
    {
      json_t *j = json_loadb (start, (size_t) (nl - start), 0, NULL);
      start = nl + 1;
      if (j == NULL)
        continue;
      json_t *res = json_object_get (j, "result"), *ev;
      if (res == NULL)
        {
          w->failed = true; /* {"error": ...} */
          json_decref (j);
          return 0;
        }
      if (json_is_true (json_object_get (res, "created")))
        atomic_store (&w->s->watcher_state, 1);
      size_t i;
      bool done = false;
      json_array_foreach (json_object_get (res, "events"), i, ev)
      done = done || sim_watch_event (w, ev);
      json_decref (j);
      if (done)
        return 0;
    }
  size_t rest = w->line.len - (size_t) (start - w->line.data);
  memmove (w->line.data, start, rest);
  w->line.len = rest;
  return n;
}

static int
sim_watch_progress (void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
  sim_watch_t *w = ud;
  (void) dt, (void) dn, (void) ut, (void) un;
  return atomic_load (&w->s->watcher_stop) ? 1 : 0;
}

static void *
sim_watcher_main (void *arg)
{
  sim_t *s = arg;
  sim_watch_t w = { .s = s, .running = ORCH_MAP_INIT };
  CURL *h = curl_easy_init ();
  if (h == NULL)
    {
      atomic_store (&s->watcher_state, -1);
      return NULL;
    }
  cleanup_free char *url = xasprintf ("%s/v3/watch", s->etcd_url);
  cleanup_free char *body = sim_prefix_body (SIM_ALLOCS_PREFIX, SIM_BODY_WATCH, s->watch_from);
  curl_easy_setopt (h, CURLOPT_URL, url);
  curl_easy_setopt (h, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt (h, CURLOPT_WRITEFUNCTION, sim_watch_write);
  curl_easy_setopt (h, CURLOPT_WRITEDATA, &w);
  curl_easy_setopt (h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt (h, CURLOPT_XFERINFOFUNCTION, sim_watch_progress);
  curl_easy_setopt (h, CURLOPT_XFERINFODATA, &w);
  curl_easy_setopt (h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_perform (h); /* ends when done, stopped or failed */
  if (atomic_load (&s->watcher_state) == 0)
    atomic_store (&s->watcher_state, -1);
  uv_async_send (&s->watcher_async);
  curl_easy_cleanup (h);
  free (w.line.data);
  orch_map_free (&w.running);
  return NULL;
}

/* ---- Measured completion ---------------------------------------------------- */

static void
sim_check_done (sim_t *s)
{
  if (s->phase != 2)
    return;
  /* Without the watch, persistence is checked after the loop stops. */
  bool e2e = s->marks.reply && s->marks.all_started && s->marks.all_running
             && (s->cfg.no_watch || atomic_load (&s->marks.persisted));
  if (e2e && !s->have_m_e2e)
    {
      /* The end-to-end figure is taken: reading etcd's counters now (a few
       * ms, blocking) delays only the agents, which have nothing left to do
       * but heartbeat. */
      s->have_m_e2e = sim_metrics_read (s, s->curl, &s->m_e2e) == 0;
    }
  if (e2e && (s->cfg.no_watch || atomic_load (&s->marks.persisted_running)))
    uv_stop (s->loop);
}

static void
sim_on_watcher_async (uv_async_t *a)
{
  sim_t *s = a->data;
  if (atomic_load (&s->watcher_state) < 0 && s->phase == 2)
    sim_fail (s, "the etcd watch on %s ended", SIM_ALLOCS_PREFIX);
  sim_check_done (s);
}

/* ---- Simulated agents ------------------------------------------------------- */

static void
sim_send (sim_t *s, wire_conn_t *wc, Orch__Envelope *env)
{
  orch_err_t err = { 0 };
  if (wc && wire_conn_send (wc, env, &err) < 0)
    sim_fail (s, "send to the scheduler failed: %s", err.msg);
}

static void
sim_send_event (sim_agent_t *a, const char *alloc_id, const char *state, int64_t started_ms)
{
  Orch__AllocStatus st = ORCH__ALLOC_STATUS__INIT;
  st.alloc_id = (char *) alloc_id;
  st.state = (char *) state;
  st.started_at_ms = started_ms;
  if (strcmp (state, "running") != 0)
    st.finished_at_ms = orch_now_wall_ms ();
  Orch__AllocEvent ev = ORCH__ALLOC_EVENT__INIT;
  ev.status = &st;
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  env.msg_case = ORCH__ENVELOPE__MSG_ALLOC_EVENT;
  env.alloc_event = &ev;
  sim_send (a->sim, a->wc, &env);
  a->sim->events_sent++;
}

static ssize_t
sim_agent_find (sim_agent_t *a, const char *id)
{
  for (size_t i = 0; i < a->n_allocs; i++)
    if (strcmp (a->allocs[i], id) == 0)
      return (ssize_t) i;
  return -1;
}

/* The agent "starts" id: remembers it and acknowledges it as running. */
static void
sim_agent_start (sim_agent_t *a, const char *id, bool via_desired)
{
  sim_t *s = a->sim;
  if (sim_agent_find (a, id) >= 0)
    {
      if (!via_desired)
        s->dup_starts++;
      return;
    }
  size_t cap = a->cap_allocs;
  orch_grow ((void **) &a->allocs, &a->cap_allocs, a->n_allocs + 1, sizeof (char *));
  orch_grow ((void **) &a->started_ms, &cap, a->n_allocs + 1, sizeof (int64_t));
  a->allocs[a->n_allocs] = xstrdup (id);
  a->started_ms[a->n_allocs] = orch_now_wall_ms ();
  sim_send_event (a, id, "running", a->started_ms[a->n_allocs]);
  a->n_allocs++;
  if (orch_map_get (&s->started, id) == NULL)
    {
      orch_map_put (&s->started, id, a);
      if (via_desired)
        s->starts_desired++;
      if (s->phase == 2)
        {
          if (s->marks.first_start == 0)
            s->marks.first_start = sim_since_t0 (s);
          if ((long) s->started.len >= s->cfg.replicas && s->marks.all_started == 0)
            {
              s->marks.all_started = sim_since_t0 (s);
              sim_check_done (s);
            }
        }
    }
}

static void
sim_agent_stop (sim_agent_t *a, const char *id)
{
  ssize_t i = sim_agent_find (a, id);
  if (i < 0)
    return;
  sim_send_event (a, id, "stopped", a->started_ms[i]);
  free (a->allocs[i]);
  a->n_allocs--;
  a->allocs[i] = a->allocs[a->n_allocs];
  a->started_ms[i] = a->started_ms[a->n_allocs];
  a->sim->stops++;
}

static void
sim_agent_desired (sim_agent_t *a, const Orch__DesiredAllocs *d)
{
  for (size_t i = 0; i < d->n_allocs; i++)
    if (d->allocs[i] && d->allocs[i]->alloc_id)
      sim_agent_start (a, d->allocs[i]->alloc_id, true);
  /* Anything not listed is stopped, as a real agent converges. */
  for (size_t i = 0; i < a->n_allocs;)
    {
      bool listed = false;
      for (size_t j = 0; j < d->n_allocs && !listed; j++)
        listed = d->allocs[j] && d->allocs[j]->alloc_id
                 && strcmp (d->allocs[j]->alloc_id, a->allocs[i]) == 0;
      if (listed)
        i++;
      else
        sim_agent_stop (a, a->allocs[i]);
    }
}

static void
sim_agent_heartbeat (uv_timer_t *t)
{
  sim_agent_t *a = t->data;
  if (a->wc == NULL || !a->hello_ok)
    return;
  Orch__Resources usage = ORCH__RESOURCES__INIT;
  Orch__AllocStatus *sts = xcalloc (a->n_allocs + 1, sizeof *sts);
  Orch__AllocStatus **ptrs = xcalloc (a->n_allocs + 1, sizeof *ptrs);
  for (size_t i = 0; i < a->n_allocs; i++)
    {
      orch__alloc_status__init (&sts[i]);
      sts[i].alloc_id = a->allocs[i];
      sts[i].state = (char *) "running";
      sts[i].started_at_ms = a->started_ms[i];
      ptrs[i] = &sts[i];
    }
  Orch__Heartbeat hb = ORCH__HEARTBEAT__INIT;
  hb.usage = &usage;
  hb.n_allocs = a->n_allocs;
  hb.allocs = ptrs;
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  env.msg_case = ORCH__ENVELOPE__MSG_HEARTBEAT;
  env.heartbeat = &hb;
  sim_send (a->sim, a->wc, &env);
  free (ptrs);
  free (sts);
}

static void sim_connect_more (sim_t *s);

static void
sim_agent_on_message (wire_conn_t *wc, Orch__Envelope *env)
{
  sim_agent_t *a = wc->data;
  sim_t *s = a->sim;
  switch (env->msg_case)
    {
    case ORCH__ENVELOPE__MSG_HELLO_REPLY:
      if (!a->hello_ok)
        {
          a->hello_ok = true;
          s->hello_ok++;
          if (s->phase == 1 && s->hello_ok == s->cfg.nodes)
            uv_stop (s->loop);
        }
      break;
    case ORCH__ENVELOPE__MSG_START_ALLOC:
      s->starts_msg++;
      if (env->start_alloc->alloc && env->start_alloc->alloc->alloc_id)
        sim_agent_start (a, env->start_alloc->alloc->alloc_id, false);
      break;
    case ORCH__ENVELOPE__MSG_STOP_ALLOC:
      sim_agent_stop (a, env->stop_alloc->alloc_id);
      break;
    case ORCH__ENVELOPE__MSG_DESIRED_ALLOCS:
      sim_agent_desired (a, env->desired_allocs);
      break;
    case ORCH__ENVELOPE__MSG_ERROR:
      sim_fail (s, "scheduler refused agent %s: %s", a->id, env->error->message);
      break;
    default:
      break; /* logs requests and the like: a load generator has none to give */
    }
}

static void
sim_agent_on_connect (wire_conn_t *wc, int status)
{
  sim_agent_t *a = wc->data;
  sim_t *s = a->sim;
  a->connecting = false;
  s->connecting--;
  sim_connect_more (s);
  if (status < 0)
    return; /* on_close follows and reports */
  Orch__Hello hello = ORCH__HELLO__INIT;
  hello.protocol_version = WIRE_PROTOCOL_VERSION;
  hello.role = (char *) "agent";
  hello.identity = a->id;
  hello.join_token = (char *) "";
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  env.request_id = 1;
  env.msg_case = ORCH__ENVELOPE__MSG_HELLO;
  env.hello = &hello;
  sim_send (s, wc, &env);

  Orch__Resources cap = ORCH__RESOURCES__INIT;
  cap.cpu_milli = s->cfg.node_cpu_milli;
  cap.memory_bytes = s->cfg.node_memory_bytes;
  char *runtimes[] = { (char *) "container" };
  Orch__NodeRegister reg = ORCH__NODE_REGISTER__INIT;
  reg.node_id = a->id;
  reg.capacity = &cap;
  reg.n_runtimes = 1;
  reg.runtimes = runtimes;
  reg.address = (char *) "127.0.0.1";
  reg.cgroup_version = (char *) "v1";
  reg.agent_version = (char *) "cluster-sim";
  Orch__Envelope renv = ORCH__ENVELOPE__INIT;
  renv.request_id = 2;
  renv.msg_case = ORCH__ENVELOPE__MSG_NODE_REGISTER;
  renv.node_register = &reg;
  sim_send (s, wc, &renv);
  /* Spread the heartbeats over the interval, as independent agents would. */
  uint64_t first = (uint64_t) (a - s->agents) * (uint64_t) s->cfg.heartbeat_ms
                   / (uint64_t) s->cfg.nodes;
  uv_timer_start (&a->hb, sim_agent_heartbeat, first + 1, (uint64_t) s->cfg.heartbeat_ms);
}

static void
sim_agent_on_close (wire_conn_t *wc, const char *reason)
{
  sim_agent_t *a = wc->data;
  sim_t *s = a->sim;
  a->wc = NULL;
  a->closed = true;
  s->closed_agents++;
  if (a->connecting)
    {
      a->connecting = false;
      s->connecting--;
      sim_connect_more (s);
    }
  if (s->phase <= 2)
    sim_fail (s, "agent %s disconnected: %s", a->id, reason);
}

static const wire_conn_ops_t sim_agent_ops = {
  .on_message = sim_agent_on_message,
  .on_connect = sim_agent_on_connect,
  .on_close = sim_agent_on_close,
};

static void
sim_connect_more (sim_t *s)
{
  while (s->connecting < SIM_MAX_CONNECTING && s->next_connect < s->cfg.nodes)
    {
      sim_agent_t *a = &s->agents[s->next_connect++];
      a->wc = wire_conn_new (s->loop, &sim_agent_ops, a, WIRE_MAX_FRAME);
      a->connecting = true;
      s->connecting++;
      int r = wire_conn_connect (a->wc, (struct sockaddr *) &s->agent_addr);
      if (r < 0)
        {
          sim_fail (s, "connect for %s: %s", a->id, uv_strerror (r));
          return;
        }
    }
}

/* ---- The client (role cli) -------------------------------------------------- */

static void
sim_cli_get (sim_t *s, const char *kind, const char *name, uint64_t *req)
{
  Orch__GetRequest g = ORCH__GET_REQUEST__INIT;
  g.kind = (char *) kind;
  g.name = (char *) (name ? name : "");
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  env.request_id = *req = ++s->next_req;
  env.msg_case = ORCH__ENVELOPE__MSG_GET_REQUEST;
  env.get_request = &g;
  sim_send (s, s->cli, &env);
}

static void
sim_poll_tick (uv_timer_t *t)
{
  sim_t *s = t->data;
  if (s->phase == 1 && s->nodes_req == 0)
    sim_cli_get (s, "nodes", NULL, &s->nodes_req);
  /* Nothing can be running before every start reached an agent; polling
   * earlier would only add work to the scheduler being measured. */
  else if (s->phase == 2 && s->marks.all_started && s->allocs_req == 0
           && s->marks.all_running == 0)
    {
      s->alloc_polls++;
      sim_cli_get (s, "allocs", SIM_SERVICE, &s->allocs_req);
    }
}

static void
sim_apply (sim_t *s)
{
  cleanup_free char *spec = xasprintf (
      "{\"name\": \"" SIM_SERVICE "\", \"image\": \"busybox\", \"command\": [\"/bin/true\"],"
      " \"replicas\": %ld, \"resources\": {\"cpu\": \"%" PRId64 "m\", \"memory\": \"%" PRId64
      "Ki\"}}",
      s->cfg.replicas, s->cfg.cpu_milli, (s->cfg.memory_bytes + 1023) / 1024);
  Orch__ApplyRequest ar = ORCH__APPLY_REQUEST__INIT;
  ar.spec_json = spec;
  ar.source = (char *) "cluster_sim";
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  env.request_id = s->apply_req = ++s->next_req;
  env.msg_case = ORCH__ENVELOPE__MSG_APPLY_REQUEST;
  env.apply_request = &ar;
  s->t0 = uv_hrtime ();
  sim_send (s, s->cli, &env);
}

static void
sim_cli_on_message (wire_conn_t *wc, Orch__Envelope *env)
{
  sim_t *s = wc->data;
  switch (env->msg_case)
    {
    case ORCH__ENVELOPE__MSG_HELLO_REPLY:
      s->cli_ready = true;
      break;
    case ORCH__ENVELOPE__MSG_ERROR:
      if (env->request_id == s->nodes_req)
        s->nodes_req = 0; /* not loaded yet: ask again */
      else
        sim_fail (s, "scheduler error for request %" PRIu64 ": %s%s%s", env->request_id,
                  env->error->message, env->error->n_details ? ": " : "",
                  env->error->n_details ? env->error->details[0] : "");
      break;
    case ORCH__ENVELOPE__MSG_APPLY_REPLY:
      {
        s->marks.reply = sim_since_t0 (s);
        Orch__ApplyReply *r = env->apply_reply;
        orch_map_t ids = ORCH_MAP_INIT;
        long dups = 0;
        char dup_id[128] = "";
        for (size_t i = 0; i < r->n_placements; i++)
          {
            const char *id = r->placements[i]->alloc_id;
            if (id && *id && orch_map_put (&ids, id, (void *) 1) != NULL && dups++ == 0)
              snprintf (dup_id, sizeof dup_id, "%s", id);
            if (r->placements[i]->node && *r->placements[i]->node)
              s->placed++;
            else
              {
                s->unplaced++;
                snprintf (s->unplaced_reason, sizeof s->unplaced_reason, "%s",
                          r->placements[i]->reason ? r->placements[i]->reason : "");
              }
          }
        orch_map_free (&ids);
        /* Two replicas under one id are one allocation to everyone keyed by
         * id (etcd, the agents): a replica lost without a word. */
        if (dups > 0)
          sim_fail (s, "the ApplyReply gives %ld allocation id(s) twice (e.g. %s)", dups, dup_id);
        if (s->unplaced > 0)
          sim_fail (s, "%ld replicas were not placed: %s", s->unplaced, s->unplaced_reason);
        if (s->placed + s->unplaced != s->cfg.replicas)
          sim_fail (s,
                    "the ApplyReply accounts for %ld of %ld replicas (%ld placed, %ld unplaced): "
                    "some replicas were lost",
                    s->placed + s->unplaced, s->cfg.replicas, s->placed, s->unplaced);
        sim_check_done (s);
        break;
      }
    case ORCH__ENVELOPE__MSG_GET_REPLY:
      {
        Orch__GetReply *r = env->get_reply;
        if (env->request_id == s->nodes_req)
          {
            s->nodes_req = 0;
            long ready = 0;
            for (size_t i = 0; i < r->n_nodes; i++)
              if (r->nodes[i]->state && strcmp (r->nodes[i]->state, "ready") == 0
                  && strncmp (r->nodes[i]->node_id, "sim-", 4) == 0)
                ready++;
            s->nodes_ready = ready;
            if (ready >= s->cfg.nodes)
              uv_stop (s->loop);
          }
        else if (env->request_id == s->allocs_req)
          {
            s->allocs_req = 0;
            long running = 0;
            for (size_t i = 0; i < r->n_allocs; i++)
              if (r->allocs[i]->status && r->allocs[i]->status->state
                  && strcmp (r->allocs[i]->status->state, "running") == 0)
                running++;
            s->running_seen = running;
            if (running >= s->cfg.replicas && s->marks.all_running == 0)
              {
                s->marks.all_running = sim_since_t0 (s);
                sim_check_done (s);
              }
          }
        break;
      }
    default:
      break;
    }
}

static void
sim_cli_on_connect (wire_conn_t *wc, int status)
{
  sim_t *s = wc->data;
  if (status < 0)
    return;
  Orch__Hello hello = ORCH__HELLO__INIT;
  hello.protocol_version = WIRE_PROTOCOL_VERSION;
  hello.role = (char *) "cli";
  hello.identity = (char *) "cluster-sim@localhost";
  hello.join_token = (char *) "";
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  env.request_id = ++s->next_req;
  env.msg_case = ORCH__ENVELOPE__MSG_HELLO;
  env.hello = &hello;
  sim_send (s, wc, &env);
}

static void
sim_cli_on_close (wire_conn_t *wc, const char *reason)
{
  sim_t *s = wc->data;
  s->cli = NULL;
  if (s->phase <= 2)
    sim_fail (s, "client connection closed: %s", reason);
}

static const wire_conn_ops_t sim_cli_ops = {
  .on_message = sim_cli_on_message,
  .on_connect = sim_cli_on_connect,
  .on_close = sim_cli_on_close,
};

static void
sim_on_deadline (uv_timer_t *t)
{
  sim_t *s = t->data;
  s->timed_out = true;
  uv_stop (s->loop);
}

/* ---- Setup ------------------------------------------------------------------ */

static int
sim_start_etcd (sim_t *s, CURL *h)
{
  for (int attempt = 0; attempt < 3; attempt++)
    {
      int port = sim_free_port (), pport = sim_free_port ();
      if (port < 0 || pport < 0 || port == pport)
        continue;
      cleanup_free char *data = xasprintf ("%s/etcd", s->workdir);
      cleanup_free char *log = xasprintf ("%s/etcd.log", s->workdir);
      cleanup_free char *client = xasprintf ("http://127.0.0.1:%d", port);
      cleanup_free char *peer = xasprintf ("http://127.0.0.1:%d", pport);
      cleanup_free char *cluster = xasprintf ("default=%s", peer);
      orch_rm_rf (data);
      char *fixed[] = { (char *) s->cfg.etcd_bin, (char *) "--name", (char *) "default",
                        (char *) "--data-dir", data, (char *) "--listen-client-urls", client,
                        (char *) "--advertise-client-urls", client,
                        (char *) "--listen-peer-urls", peer,
                        (char *) "--initial-advertise-peer-urls", peer,
                        (char *) "--initial-cluster", cluster };
      size_t n = 0;
      char **argv = xcalloc (ORCH_ARRAY_LEN (fixed) + s->cfg.n_etcd_args + 1, sizeof *argv);
      for (size_t i = 0; i < ORCH_ARRAY_LEN (fixed); i++)
        argv[n++] = fixed[i];
      for (size_t i = 0; i < s->cfg.n_etcd_args; i++)
        argv[n++] = s->cfg.etcd_args[i];
      s->etcd_pid = sim_spawn (argv, log);
      free (argv);
      if (s->etcd_pid < 0)
        return -1;
      snprintf (s->etcd_url, sizeof s->etcd_url, "%s", client);
      cleanup_free char *health = xasprintf ("%s/health", client);
      for (int i = 0; i < 400 && sim_alive (s->etcd_pid); i++)
        {
          cleanup_free char *r = sim_http (h, health, NULL);
          if (r && strstr (r, "\"health\":\"true\""))
            return 0;
          sim_sleep_ms (50);
        }
      sim_stop_child (s->etcd_pid, 2000);
      s->etcd_pid = 0;
    }
  return -1;
}

static int
sim_start_scheduler (sim_t *s)
{
  int api = sim_free_port (), agent = sim_free_port ();
  if (api < 0 || agent < 0 || api == agent)
    return -1;
  char api_s[64], agent_s[64];
  snprintf (api_s, sizeof api_s, "127.0.0.1:%d", api);
  snprintf (agent_s, sizeof agent_s, "127.0.0.1:%d", agent);
  orch_err_t err = { 0 };
  if (wire_parse_hostport (api_s, &s->api_addr, &err) < 0
      || wire_parse_hostport (agent_s, &s->agent_addr, &err) < 0)
    return -1;
  size_t n = 0;
  char **argv = xcalloc (8 + s->cfg.n_sched_args + 1, sizeof *argv);
  argv[n++] = (char *) s->cfg.sched_bin;
  argv[n++] = (char *) "--etcd";
  argv[n++] = s->etcd_url;
  argv[n++] = (char *) "--api-listen";
  argv[n++] = api_s;
  argv[n++] = (char *) "--agent-listen";
  argv[n++] = agent_s;
  for (size_t i = 0; i < s->cfg.n_sched_args; i++)
    argv[n++] = s->cfg.sched_args[i];
  cleanup_free char *log = xasprintf ("%s/scheduler.log", s->workdir);
  s->sched_pid = sim_spawn (argv, log);
  free (argv);
  if (s->sched_pid < 0)
    return -1;
  for (int i = 0; i < 1000; i++)
    {
      if (!sim_alive (s->sched_pid))
        {
          s->sched_pid = 0;
          return -1;
        }
      if (sim_port_open (api) && sim_port_open (agent))
        return 0;
      sim_sleep_ms (20);
    }
  return -1;
}

/* ---- Report ----------------------------------------------------------------- */

static double
sim_ms (uint64_t ns)
{
  return ns ? (double) ns / 1e6 : -1;
}

/* The etcd requests between two readings of /metrics, less the bench's own
 * ranges (own). */
static json_t *
sim_etcd_delta (const sim_metrics_t *a, const sim_metrics_t *b, long own)
{
  json_int_t range = (json_int_t) (b->range - a->range) - own;
  json_int_t txn = (json_int_t) (b->txn - a->txn), put = (json_int_t) (b->put - a->put);
  json_int_t del = (json_int_t) (b->delete_range - a->delete_range);
  json_int_t lg = (json_int_t) (b->lease_grant - a->lease_grant);
  json_int_t lk = (json_int_t) (b->lease_keepalive - a->lease_keepalive);
  json_int_t lr = (json_int_t) (b->lease_revoke - a->lease_revoke);
  json_int_t watch = (json_int_t) (b->watch - a->watch);
  json_int_t other = (json_int_t) (b->other - a->other);
  json_t *d = json_pack ("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                    "total", range + txn + put + del + lg + lk + lr + watch + other, "range",
                    range, "txn", txn, "put", put, "delete_range", del, "lease_grant", lg,
                    "lease_keepalive", lk, "lease_revoke", lr, "watch", watch, "other", other,
                    "mvcc_put", (json_int_t) (b->mvcc_put - a->mvcc_put), "mvcc_txn",
                    (json_int_t) (b->mvcc_txn - a->mvcc_txn), "raft_proposals",
                    (json_int_t) (b->proposals - a->proposals));
  json_object_set_new (d, "cpu_ms",
                       json_pack ("{s:f, s:f, s:f}", "scheduler",
                                  a->sched_cpu_ms < 0 ? -1 : b->sched_cpu_ms - a->sched_cpu_ms,
                                  "etcd", a->etcd_cpu_ms < 0 ? -1 : b->etcd_cpu_ms - a->etcd_cpu_ms,
                                  "load_generator", b->self_cpu_ms - a->self_cpu_ms));
  return d;
}

static void
sim_print_delta (const char *title, json_t *d)
{
#define SIM_D(k) ((long long) json_integer_value (json_object_get (d, k)))
  printf ("  etcd requests %s: %lld\n", title, SIM_D ("total"));
  printf ("    txn %lld, put %lld, range %lld, delete %lld, lease grant %lld, keepalive %lld, "
          "revoke %lld, watch %lld, other %lld\n",
          SIM_D ("txn"), SIM_D ("put"), SIM_D ("range"), SIM_D ("delete_range"),
          SIM_D ("lease_grant"), SIM_D ("lease_keepalive"), SIM_D ("lease_revoke"),
          SIM_D ("watch"), SIM_D ("other"));
  printf ("    (etcd side: %lld keys put, %lld write txns, %lld raft proposals)\n",
          SIM_D ("mvcc_put"), SIM_D ("mvcc_txn"), SIM_D ("raft_proposals"));
  json_t *cpu = json_object_get (d, "cpu_ms");
  double etcd_ms = json_real_value (json_object_get (cpu, "etcd"));
  char etcd_s[32];
  if (etcd_ms < 0)
    snprintf (etcd_s, sizeof etcd_s, "n/a (not started by the bench)");
  else
    snprintf (etcd_s, sizeof etcd_s, "%.0f ms", etcd_ms);
  printf ("    CPU time in that window: scheduler %.0f ms, etcd %s, load generator %.0f ms\n",
          json_real_value (json_object_get (cpu, "scheduler")), etcd_s,
          json_real_value (json_object_get (cpu, "load_generator")));
#undef SIM_D
}

static void
sim_report (sim_t *s, const sim_metrics_t *m0, const sim_metrics_t *m1, uint64_t setup_ns)
{
  uint64_t persisted = atomic_load (&s->marks.persisted);
  uint64_t persisted_running = atomic_load (&s->marks.persisted_running);
  uint64_t end = s->marks.reply;
  uint64_t stages[] = { s->marks.all_started, s->marks.all_running, persisted };
  bool complete = s->marks.reply != 0;
  for (size_t i = 0; i < ORCH_ARRAY_LEN (stages); i++)
    {
      complete = complete && stages[i] != 0;
      if (stages[i] > end)
        end = stages[i];
    }
  if (!complete)
    end = 0;
  json_t *d_e2e = s->have_m_e2e ? sim_etcd_delta (m0, &s->m_e2e, 0) : NULL;
  json_t *d_all = sim_etcd_delta (m0, m1, s->own_ranges);

  /* Placement spread over the simulated nodes. */
  long used = 0, min_per = -1, max_per = 0;
  for (long i = 0; i < s->cfg.nodes; i++)
    {
      long c = (long) s->agents[i].n_allocs;
      if (c > 0)
        used++;
      if (min_per < 0 || c < min_per)
        min_per = c;
      if (c > max_per)
        max_per = c;
    }
  if (s->cfg.json)
    {
      json_t *j = json_pack (
          "{s:s, s:b, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:I, s:I, "
          "s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
          "bench", "cluster_sim", "complete", complete, "nodes", (json_int_t) s->cfg.nodes,
          "replicas", (json_int_t) s->cfg.replicas, "cpu_milli", (json_int_t) s->cfg.cpu_milli,
          "memory_bytes", (json_int_t) s->cfg.memory_bytes, "setup_ms", sim_ms (setup_ns),
          "apply_reply_ms", sim_ms (s->marks.reply), "first_start_ms",
          sim_ms (s->marks.first_start), "all_started_ms", sim_ms (s->marks.all_started),
          "all_running_ms", sim_ms (s->marks.all_running), "persisted_ms", sim_ms (persisted),
          "persisted_running_ms", sim_ms (persisted_running), "end_to_end_ms", sim_ms (end),
          "placed", (json_int_t) s->placed, "unplaced", (json_int_t) s->unplaced,
          "start_alloc_msgs", (json_int_t) s->starts_msg, "started_via_desired",
          (json_int_t) s->starts_desired, "duplicate_starts", (json_int_t) s->dup_starts,
          "nodes_used", (json_int_t) used, "min_per_node", (json_int_t) min_per,
          "max_per_node", (json_int_t) max_per, "running_polls", (json_int_t) s->alloc_polls,
          "alloc_events_sent", (json_int_t) s->events_sent);
      json_object_set_new (j, "etcd_requests_to_end_to_end", d_e2e ? d_e2e : json_null ());
      json_object_set_new (j, "etcd_requests_to_persisted_running", d_all);
      json_object_set_new (j, "persist_check", json_string (s->cfg.no_watch ? "after" : "watch"));
      if (s->failure[0])
        json_object_set_new (j, "failure", json_string (s->failure));
      if (s->timed_out)
        json_object_set_new (j, "timed_out", json_true ());
      char *out = json_dumps (j, JSON_COMPACT);
      printf ("%s\n", out);
      free (out);
      json_decref (j);
      return;
    }
  char cpu[32], mem[32], ncpu[32], nmem[32];
  printf ("cluster_sim (load generator): %ld simulated agents (%s cpu, %s memory each), "
          "apply of %ld replicas (%s cpu, %s memory)\n",
          s->cfg.nodes, orch_fmt_cpu (s->cfg.node_cpu_milli, ncpu, sizeof ncpu),
          orch_fmt_memory (s->cfg.node_memory_bytes, nmem, sizeof nmem), s->cfg.replicas,
          orch_fmt_cpu (s->cfg.cpu_milli, cpu, sizeof cpu),
          orch_fmt_memory (s->cfg.memory_bytes, mem, sizeof mem));
  printf ("  cluster up (%ld agents registered and ready): %.1f ms\n", s->cfg.nodes,
          sim_ms (setup_ns));
  printf ("  from sending the apply:\n");
  printf ("    ApplyReply received            %9.1f ms  (%ld placed, %ld unplaced)\n",
          sim_ms (s->marks.reply), s->placed, s->unplaced);
  printf ("    first allocation at an agent   %9.1f ms\n", sim_ms (s->marks.first_start));
  printf ("    all %ld at the agents       %9.1f ms  (%ld StartAlloc, %ld via DesiredAllocs, "
          "%ld duplicates)\n",
          s->cfg.replicas, sim_ms (s->marks.all_started), s->starts_msg, s->starts_desired,
          s->dup_starts);
  printf ("    all shown running (get allocs) %9.1f ms  (%ld polls)\n",
          sim_ms (s->marks.all_running), s->alloc_polls);
  const char *how = s->cfg.no_watch ? "checked after, upper bound" : "watch";
  printf ("    all created in etcd            %9.1f ms  (%s)\n", sim_ms (persisted), how);
  printf ("    all running in etcd            %9.1f ms  (%s)\n", sim_ms (persisted_running), how);
  printf ("  end to end (reply, at agents, running, persisted): %.1f ms%s\n", sim_ms (end),
          complete ? "" : "  INCOMPLETE");
  printf ("  spread: %ld nodes used, %ld..%ld allocations per node\n", used, min_per, max_per);
  if (d_e2e)
    sim_print_delta ("from the apply to end to end", d_e2e);
  sim_print_delta ("from the apply to all running in etcd", d_all);
  json_decref (d_e2e);
  json_decref (d_all);
  if (s->timed_out)
    printf ("  TIMED OUT after %" PRId64 " ms\n", s->cfg.timeout_ms);
  if (s->failure[0])
    printf ("  FAILED: %s\n", s->failure);
}

/* ---- Main ------------------------------------------------------------------- */

static int sim_usage_error (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

static int
sim_usage_error (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  fprintf (stderr, "cluster_sim: ");
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fprintf (stderr, "\nTry 'cluster_sim --help' for more information.\n");
  return 2;
}

enum
{
  OPT_SCHED = 256,
  OPT_ETCD,
  OPT_ETCD_BIN,
  OPT_CPU,
  OPT_MEM,
  OPT_NCPU,
  OPT_NMEM,
  OPT_HB,
  OPT_TIMEOUT,
  OPT_SARG,
  OPT_EARG,
  OPT_KEEP,
  OPT_JSON,
  OPT_WATCH,
};

static int
sim_parse_args (int argc, char **argv, sim_cfg_t *cfg)
{
  static const struct option opts[] = {
    { "scheduler", required_argument, NULL, OPT_SCHED },
    { "etcd", required_argument, NULL, OPT_ETCD },
    { "etcd-bin", required_argument, NULL, OPT_ETCD_BIN },
    { "nodes", required_argument, NULL, 'n' },
    { "replicas", required_argument, NULL, 'r' },
    { "cpu", required_argument, NULL, OPT_CPU },
    { "memory", required_argument, NULL, OPT_MEM },
    { "node-cpu", required_argument, NULL, OPT_NCPU },
    { "node-memory", required_argument, NULL, OPT_NMEM },
    { "heartbeat", required_argument, NULL, OPT_HB },
    { "timeout", required_argument, NULL, OPT_TIMEOUT },
    { "scheduler-arg", required_argument, NULL, OPT_SARG },
    { "etcd-arg", required_argument, NULL, OPT_EARG },
    { "keep", no_argument, NULL, OPT_KEEP },
    { "json", no_argument, NULL, OPT_JSON },
    { "watch", no_argument, NULL, OPT_WATCH },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  int c;
  char *end;
  while ((c = getopt_long (argc, argv, "n:r:h", opts, NULL)) != -1)
    {
      switch (c)
        {
        case OPT_SCHED:
          cfg->sched_bin = optarg;
          break;
        case OPT_ETCD:
          cfg->etcd = optarg;
          break;
        case OPT_ETCD_BIN:
          cfg->etcd_bin = optarg;
          break;
        case 'n':
          errno = 0;
          cfg->nodes = strtol (optarg, &end, 10);
          if (errno || *end || cfg->nodes < 1 || cfg->nodes > SIM_MAX_NODES)
            return sim_usage_error ("--nodes: \"%s\" is not a count from 1 to 100000", optarg);
          break;
        case 'r':
          errno = 0;
          cfg->replicas = strtol (optarg, &end, 10);
          if (errno || *end || cfg->replicas < 1 || cfg->replicas > SIM_MAX_REPLICAS)
            return sim_usage_error ("--replicas: \"%s\" is not a count from 1 to 1000000",
                                    optarg);
          break;
        case OPT_CPU:
        case OPT_NCPU:
          {
            int64_t *dst = c == OPT_CPU ? &cfg->cpu_milli : &cfg->node_cpu_milli;
            if (orch_parse_cpu_milli (optarg, dst) < 0 || *dst <= 0)
              return sim_usage_error ("\"%s\" is not a CPU quantity (e.g. 100m, 2)", optarg);
            break;
          }
        case OPT_MEM:
        case OPT_NMEM:
          {
            int64_t *dst = c == OPT_MEM ? &cfg->memory_bytes : &cfg->node_memory_bytes;
            if (orch_parse_memory_bytes (optarg, dst) < 0 || *dst <= 0)
              return sim_usage_error ("\"%s\" is not a memory quantity (e.g. 64Mi)", optarg);
            break;
          }
        case OPT_HB:
        case OPT_TIMEOUT:
          {
            int64_t *dst = c == OPT_HB ? &cfg->heartbeat_ms : &cfg->timeout_ms;
            if (orch_parse_duration_ms (optarg, dst) < 0 || *dst <= 0)
              return sim_usage_error ("\"%s\" is not a positive duration (e.g. 2s)", optarg);
            break;
          }
        case OPT_SARG:
          cfg->sched_args = xrealloc (cfg->sched_args, (cfg->n_sched_args + 1) * sizeof (char *));
          cfg->sched_args[cfg->n_sched_args++] = optarg;
          break;
        case OPT_EARG:
          cfg->etcd_args = xrealloc (cfg->etcd_args, (cfg->n_etcd_args + 1) * sizeof (char *));
          cfg->etcd_args[cfg->n_etcd_args++] = optarg;
          break;
        case OPT_KEEP:
          cfg->keep = true;
          break;
        case OPT_WATCH:
          cfg->no_watch = false;
          break;
        case OPT_JSON:
          cfg->json = true;
          break;
        case 'h':
          fputs (usage_text, stdout);
          exit (0);
        default:
          fprintf (stderr, "Try 'cluster_sim --help' for more information.\n");
          return 2;
        }
    }
  if (optind < argc)
    return sim_usage_error ("unexpected argument \"%s\"", argv[optind]);
  if (cfg->sched_bin == NULL)
    return sim_usage_error ("%s", "--scheduler PATH is required");
  if (access (cfg->sched_bin, X_OK) < 0)
    return sim_usage_error ("--scheduler: \"%s\" is not an executable", cfg->sched_bin);
  return 0;
}

/* Runs the loop until something calls uv_stop (a stage is done, a failure)
 * or the deadline fires. */
static void
sim_run_until (sim_t *s, int64_t ms)
{
  s->timed_out = false;
  uv_timer_start (&s->deadline, sim_on_deadline, (uint64_t) ms, 0);
  uv_run (s->loop, UV_RUN_DEFAULT);
  uv_timer_stop (&s->deadline);
}

static void
sim_close_walk (uv_handle_t *h, void *arg)
{
  (void) arg;
  if (!uv_is_closing (h))
    uv_close (h, NULL);
}

int
main (int argc, char **argv)
{
  static sim_t sim; /* large, and its address is shared with the watcher thread */
  sim_t *s = &sim;
  s->cfg = (sim_cfg_t){ .etcd_bin = "/usr/bin/etcd", .nodes = 1000, .replicas = 10000,
                        .cpu_milli = 100, .memory_bytes = 64ll << 20,
                        .node_cpu_milli = 16000, .node_memory_bytes = 64ll << 30,
                        .heartbeat_ms = 2000, .timeout_ms = 60000, .no_watch = true };
  int r = sim_parse_args (argc, argv, &s->cfg);
  if (r)
    return r;
  signal (SIGPIPE, SIG_IGN);

  /* Two sockets per simulated node (ours and the scheduler's end) plus etcd's:
   * lift the soft limit to the hard one for us and the children. */
  struct rlimit rl;
  if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max)
    {
      rl.rlim_cur = rl.rlim_max;
      setrlimit (RLIMIT_NOFILE, &rl);
    }
  if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t) s->cfg.nodes + 256)
    {
      fprintf (stderr, "cluster_sim: the open-file limit (%lu) is too low for %ld nodes\n",
               (unsigned long) rl.rlim_cur, s->cfg.nodes);
      return 1;
    }

  curl_global_init (CURL_GLOBAL_DEFAULT);
  CURL *h = curl_easy_init ();
  s->curl = h;
  snprintf (s->workdir, sizeof s->workdir, "/tmp/cluster-sim.XXXXXX");
  if (mkdtemp (s->workdir) == NULL)
    {
      perror ("cluster_sim: mkdtemp");
      return 1;
    }
  int rc = 1;
  sim_metrics_t m0, m1;
  memset (&m0, 0, sizeof m0);
  memset (&m1, 0, sizeof m1);
  uint64_t setup_ns = 0, setup_t = uv_hrtime ();

  if (s->cfg.etcd)
    snprintf (s->etcd_url, sizeof s->etcd_url, "%s", s->cfg.etcd);
  else if (sim_start_etcd (s, h) < 0)
    {
      fprintf (stderr, "cluster_sim: etcd did not start (log in %s/etcd.log)\n", s->workdir);
      s->cfg.keep = true;
      goto out;
    }
  long existing = sim_etcd_count (h, s->etcd_url, "/orch/", NULL);
  if (existing != 0)
    {
      fprintf (stderr, "cluster_sim: etcd at %s %s\n", s->etcd_url,
               existing < 0 ? "does not answer" : "already holds /orch/ keys; give an empty one");
      goto out;
    }
  if (sim_start_scheduler (s) < 0)
    {
      fprintf (stderr, "cluster_sim: the scheduler did not start (log in %s/scheduler.log)\n",
               s->workdir);
      s->cfg.keep = true;
      goto out;
    }

  s->loop = uv_default_loop ();
  uv_timer_init (s->loop, &s->deadline);
  s->deadline.data = s;
  uv_timer_init (s->loop, &s->poll_timer);
  s->poll_timer.data = s;
  uv_async_init (s->loop, &s->watcher_async, sim_on_watcher_async);
  s->watcher_async.data = s;
  s->agents = xcalloc ((size_t) s->cfg.nodes, sizeof *s->agents);
  for (long i = 0; i < s->cfg.nodes; i++)
    {
      sim_agent_t *a = &s->agents[i];
      a->sim = s;
      snprintf (a->id, sizeof a->id, "sim-%04ld", i);
      uv_timer_init (s->loop, &a->hb);
      a->hb.data = a;
    }

  /* Phase 1: the client and every agent connect and register; wait until the
   * scheduler lists them all ready and etcd holds every node record. */
  s->phase = 1;
  s->cli = wire_conn_new (s->loop, &sim_cli_ops, s, WIRE_MAX_FRAME);
  if ((r = wire_conn_connect (s->cli, (struct sockaddr *) &s->api_addr)) < 0)
    {
      fprintf (stderr, "cluster_sim: connect to the API: %s\n", uv_strerror (r));
      goto out_loop;
    }
  sim_connect_more (s);
  sim_run_until (s, 60000);
  if (s->failure[0] || s->timed_out)
    {
      fprintf (stderr, "cluster_sim: %ld/%ld agents connected: %s\n", s->hello_ok, s->cfg.nodes,
               s->failure[0] ? s->failure : "timed out");
      goto out_loop;
    }
  uv_timer_start (&s->poll_timer, sim_poll_tick, 0, 20);
  sim_run_until (s, 60000);
  uv_timer_stop (&s->poll_timer);
  if (s->failure[0] || s->timed_out)
    {
      fprintf (stderr, "cluster_sim: %ld/%ld nodes ready: %s\n", s->nodes_ready, s->cfg.nodes,
               s->failure[0] ? s->failure : "timed out");
      goto out_loop;
    }
  for (int i = 0; i < 600 && sim_etcd_count (h, s->etcd_url, SIM_NODES_PREFIX, NULL) < s->cfg.nodes;
       i++)
    {
      /* Let the loop answer the scheduler while its node writes finish. */
      uv_run (s->loop, UV_RUN_NOWAIT);
      sim_sleep_ms (50);
    }
  /* A quiet moment, so that the window below holds the apply's requests and
   * not the tail of the registrations. */
  for (int i = 0; i < 10; i++)
    {
      uv_run (s->loop, UV_RUN_NOWAIT);
      sim_sleep_ms (20);
    }
  /* The watch opens before the apply, from the revision read now: it misses
   * nothing and adds no request to the measured window. */
  if (sim_etcd_count (h, s->etcd_url, SIM_ALLOCS_PREFIX, &s->watch_from) != 0
      || s->watch_from <= 0)
    {
      fprintf (stderr, "cluster_sim: cannot read the etcd revision\n");
      goto out_loop;
    }
  s->watch_from++;
  if (!s->cfg.no_watch)
    {
      if (pthread_create (&s->watcher, NULL, sim_watcher_main, s) != 0)
        {
          fprintf (stderr, "cluster_sim: cannot start the etcd watcher thread\n");
          goto out_loop;
        }
      s->watcher_started = true;
      for (int i = 0; i < 1000 && atomic_load (&s->watcher_state) == 0; i++)
        sim_sleep_ms (5);
      if (atomic_load (&s->watcher_state) != 1)
        {
          fprintf (stderr, "cluster_sim: cannot watch %s in etcd\n", SIM_ALLOCS_PREFIX);
          goto out_loop;
        }
    }
  setup_ns = uv_hrtime () - setup_t;
  if (sim_metrics_read (s, h, &m0) < 0)
    fprintf (stderr, "cluster_sim: cannot read %s/metrics; etcd counts will be wrong\n",
             s->etcd_url);

  /* Phase 2: the measured apply. */
  s->phase = 2;
  sim_apply (s);
  uv_timer_start (&s->poll_timer, sim_poll_tick, 2, 2);
  sim_run_until (s, s->cfg.timeout_ms);
  uv_timer_stop (&s->poll_timer);
  if (s->watcher_started)
    {
      atomic_store (&s->watcher_stop, true);
      pthread_join (s->watcher, NULL);
      s->watcher_started = false;
    }
  else if (!s->failure[0] && !s->timed_out)
    {
      /* Without --watch: everything else is done; now check etcd, with times that
       * are upper bounds. The loop keeps turning between checks so that the
       * agents' heartbeats go on. */
      int64_t deadline = orch_now_mono_ms () + s->cfg.timeout_ms;
      while (orch_now_mono_ms () < deadline)
        {
          uint64_t t = sim_since_t0 (s);
          if (!atomic_load (&s->marks.persisted)
              && (s->own_ranges++,
                  sim_etcd_count (h, s->etcd_url, SIM_ALLOCS_PREFIX, NULL) >= s->cfg.replicas))
            atomic_store (&s->marks.persisted, t);
          if (atomic_load (&s->marks.persisted)
              && (s->own_ranges++, sim_etcd_count_running (h, s->etcd_url, SIM_ALLOCS_PREFIX)
                                       >= s->cfg.replicas))
            {
              atomic_store (&s->marks.persisted_running, t);
              break;
            }
          uv_run (s->loop, UV_RUN_NOWAIT);
          sim_sleep_ms (20);
        }
    }
  if (sim_metrics_read (s, h, &m1) < 0)
    fprintf (stderr, "cluster_sim: cannot read %s/metrics after the run\n", s->etcd_url);
  s->phase = 3;
  sim_report (s, &m0, &m1, setup_ns);
  rc = s->marks.all_running && atomic_load (&s->marks.persisted)
               && atomic_load (&s->marks.persisted_running) && s->marks.all_started
               && s->marks.reply && !s->failure[0]
           ? 0
           : 1;

out_loop:
  s->phase = 3;
  if (s->watcher_started)
    {
      atomic_store (&s->watcher_stop, true);
      pthread_join (s->watcher, NULL);
    }
  /* Stop the scheduler first, so that our agents closing is not a storm of
   * "node down" work for it. */
  sim_stop_child (s->sched_pid, 5000);
  s->sched_pid = 0;
  /* Connections close through the wire library (it frees them in on_close);
   * then every remaining handle (timers, the async). */
  for (long i = 0; s->agents && i < s->cfg.nodes; i++)
    if (s->agents[i].wc)
      wire_conn_close (s->agents[i].wc, "bench finished");
  if (s->cli)
    wire_conn_close (s->cli, "bench finished");
  uv_run (s->loop, UV_RUN_NOWAIT);
  uv_walk (s->loop, sim_close_walk, NULL);
  uv_run (s->loop, UV_RUN_DEFAULT);
  for (long i = 0; s->agents && i < s->cfg.nodes; i++)
    {
      for (size_t j = 0; j < s->agents[i].n_allocs; j++)
        free (s->agents[i].allocs[j]);
      free (s->agents[i].allocs);
      free (s->agents[i].started_ms);
    }
  free (s->agents);
  orch_map_free (&s->started);
  uv_loop_close (s->loop);
out:
  sim_stop_child (s->sched_pid, 5000);
  sim_stop_child (s->etcd_pid, 5000);
  curl_easy_cleanup (h);
  curl_global_cleanup ();
  free (s->cfg.sched_args);
  free (s->cfg.etcd_args);
  if (s->cfg.keep || (rc != 0 && s->loop != NULL)) /* logs of a run that went wrong */
    fprintf (stderr, "cluster_sim: logs kept in %s\n", s->workdir);
  else
    orch_rm_rf (s->workdir);
  return rc;
}
