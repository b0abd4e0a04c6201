/* orch-scheduler: parses flags, runs the scheduler's loop until SIGTERM. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "orch_log.h"
#include "orch_quantity.h"
#include "orch_util.h"
#include "scheduler.h"

static const char usage_text[] =
    "Usage: orch-scheduler [OPTIONS]\n"
    "\n"
    "The orch cluster scheduler. Keeps services, allocations and nodes in etcd,\n"
    "places workloads onto nodes as containers or microVMs, and drives the\n"
    "orch-agent on every node over protobuf/TCP.\n"
    "\n"
    "Options:\n"
    "  --etcd URLS               etcd endpoints, comma-separated\n"
    "                            (default http://127.0.0.1:2379)\n"
    "  --api-listen HOST:PORT    address for orchctl (default 127.0.0.1:7700)\n"
    "  --agent-listen HOST:PORT  address for agents (default 0.0.0.0:7701)\n"
    "  --metrics-listen HOST:PORT\n"
    "                            serve Prometheus metrics at http://HOST:PORT/metrics\n"
    "                            (leadership, services, allocations and nodes by\n"
    "                            state, capacity, sessions; default: off)\n"
    "  --join-token TOKEN        token agents and orchctl must present in their Hello\n"
    "                            (default: $ORCH_JOIN_TOKEN, or none)\n"
    "  --node-ttl DURATION       a node that sends no heartbeat for this long plus\n"
    "                            the grace period is down (default 10s)\n"
    "  --node-grace DURATION     grace period after the TTL (default 10s)\n"
    "  --leader-ttl DURATION     lease of the leader key /orch/leader (default 10s,\n"
    "                            at least 2s): several schedulers may run on one\n"
    "                            etcd; one leads, the others stand by and take over\n"
    "                            within this long after the leader is gone\n"
    "  --name NAME               this scheduler's name in logs and replies\n"
    "                            (default: the host name)\n"
    "  --log-level LEVEL         debug, info, warn or error (default info)\n"
    "  -h, --help                show this help and exit\n"
    "  --version                 print the version and exit\n"
    "\n"
    "Signals: SIGTERM and SIGINT stop the scheduler cleanly (a leader hands\n"
    "over at once). Workloads keep running; a restarted scheduler rebuilds its\n"
    "state from etcd.\n"
    "\n"
    "Exit status: 0 after a clean stop, 1 on a runtime failure (e.g. a port in\n"
    "use) or after losing the leadership (its lease expired while etcd was out\n"
    "of reach: run it again and it stands by), 2 on a usage error.\n";

enum
{
  OPT_ETCD = 256,
  OPT_API,
  OPT_AGENT,
  OPT_METRICS,
  OPT_TOKEN,
  OPT_TTL,
  OPT_GRACE,
  OPT_LEADER_TTL,
  OPT_NAME,
  OPT_LOG,
  OPT_VERSION,
};

static uv_signal_t sig_term, sig_int;

static void
on_signal (uv_signal_t *h, int signum)
{
  sched_t *s = h->data;
  orch_info ("received %s; shutting down", strsignal (signum));
  sched_stop (s);
  uv_close ((uv_handle_t *) &sig_term, NULL);
  uv_close ((uv_handle_t *) &sig_int, NULL);
}

static int __attribute__ ((format (printf, 1, 2)))
usage_error (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  fprintf (stderr, "orch-scheduler: ");
  vfprintf (stderr, fmt, ap);
  fprintf (stderr, "\nTry 'orch-scheduler --help' for more information.\n");
  va_end (ap);
  return 2;
}

int
main (int argc, char **argv)
{
  static const struct option opts[] = {
    { "etcd", required_argument, NULL, OPT_ETCD },
    { "api-listen", required_argument, NULL, OPT_API },
    { "agent-listen", required_argument, NULL, OPT_AGENT },
    { "metrics-listen", required_argument, NULL, OPT_METRICS },
    { "join-token", required_argument, NULL, OPT_TOKEN },
    { "node-ttl", required_argument, NULL, OPT_TTL },
    { "node-grace", required_argument, NULL, OPT_GRACE },
    { "leader-ttl", required_argument, NULL, OPT_LEADER_TTL },
    { "name", required_argument, NULL, OPT_NAME },
    { "log-level", required_argument, NULL, OPT_LOG },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, OPT_VERSION },
    { NULL, 0, NULL, 0 },
  };
  char host[256] = "orch-scheduler";
  gethostname (host, sizeof host - 1);
  sched_config_t cfg = {
    .etcd_endpoints = "http://127.0.0.1:2379",
    .api_listen = "127.0.0.1:7700",
    .agent_listen = "0.0.0.0:7701",
    .join_token = getenv ("ORCH_JOIN_TOKEN"),
    .node_ttl_ms = 10000,
    .node_grace_ms = 10000,
    .identity = host,
    .leader_ttl_ms = 10000,
  };
  orch_log_level_t level = ORCH_LOG_INFO;
  int c;
  while ((c = getopt_long (argc, argv, "h", opts, NULL)) != -1)
    {
      switch (c)
        {
        case OPT_ETCD:
          cfg.etcd_endpoints = optarg;
          break;
        case OPT_API:
          cfg.api_listen = optarg;
          break;
        case OPT_AGENT:
          cfg.agent_listen = optarg;
          break;
        case OPT_METRICS:
          cfg.metrics_listen = optarg;
          break;
        case OPT_TOKEN:
          cfg.join_token = optarg;
          break;
        case OPT_TTL:
          if (orch_parse_duration_ms (optarg, &cfg.node_ttl_ms) < 0 || cfg.node_ttl_ms <= 0)
            return usage_error ("--node-ttl: \"%s\" is not a positive duration (e.g. 10s)", optarg);
          break;
        case OPT_GRACE:
          if (orch_parse_duration_ms (optarg, &cfg.node_grace_ms) < 0 || cfg.node_grace_ms < 0)
            return usage_error ("--node-grace: \"%s\" is not a duration (e.g. 10s)", optarg);
          break;
        case OPT_LEADER_TTL:
          if (orch_parse_duration_ms (optarg, &cfg.leader_ttl_ms) < 0 || cfg.leader_ttl_ms < 2000
              || cfg.leader_ttl_ms > 300000)
            return usage_error ("--leader-ttl: \"%s\" is not a duration from 2s to 5m", optarg);
          break;
        case OPT_NAME:
          cfg.identity = optarg;
          break;
        case OPT_LOG:
          if (orch_log_level_parse (optarg, &level) < 0)
            return usage_error ("--log-level: \"%s\" is not debug, info, warn or error", optarg);
          break;
        case 'h':
          fputs (usage_text, stdout);
          return 0;
        case OPT_VERSION:
          puts ("orch-scheduler " ORCH_VERSION);
          return 0;
        default:
          fprintf (stderr, "Try 'orch-scheduler --help' for more information.\n");
          return 2;
        }
    }
  if (optind < argc)
    return usage_error ("unexpected argument \"%s\"", argv[optind]);

  orch_log_init ("scheduler", level);
  signal (SIGPIPE, SIG_IGN);
  uv_loop_t *loop = uv_default_loop ();
  orch_err_t err = {0};
  sched_t *s = sched_new (loop, &cfg, &err);
  if (s == NULL)
    {
      orch_error ("cannot start: %s", err.msg);
      return 1;
    }
  uv_signal_init (loop, &sig_term);
  uv_signal_init (loop, &sig_int);
  sig_term.data = sig_int.data = s;
  uv_signal_start (&sig_term, on_signal, SIGTERM);
  uv_signal_start (&sig_int, on_signal, SIGINT);
  uv_run (loop, UV_RUN_DEFAULT);
  int rc = sched_exit_code (s);
  sched_free (s);
  uv_loop_close (loop);
  orch_info ("stopped");
  return rc;
}
