/* orchctl apply -f FILE [--wait] [--wait-timeout DUR] */
#define _GNU_SOURCE
#include "cli.h"

#include <getopt.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "orch_util.h"

static const char cli__apply_help[]
    = "Validates FILE locally (every problem is reported with its JSON path and nothing\n"
      "is sent when there is one), then sends it to the scheduler, which stores the\n"
      "services and places their replicas. Applying a file is all-or-nothing. Prints\n"
      "what changed and where each replica went, or why it could not be placed.\n"
      "\n"
      "Options:\n"
      "  -f, --filename FILE    the spec: one service object or {\"services\": [...]};\n"
      "                         \"-\" reads standard input (required)\n"
      "  -w, --wait             wait until every replica of every applied service is\n"
      "                         running; fail as soon as one fails or exits non-zero\n"
      "      --wait-timeout DUR give up waiting after DUR (default: 60s)\n"
      "\n"
      "With --wait, orchctl prints a line each time a service's count of running\n"
      "replicas changes (\"web: 2/3 running\"). It exits 1 as soon as an allocation\n"
      "fails or exits non-zero, naming it and its reason, or at the timeout, naming\n"
      "what is still pending and why. A replica that exits 0 under restart policy\n"
      "\"never\" or \"on-failure\" has completed and counts as done.\n"
      "\n"
      "Examples:\n"
      "  orchctl apply -f deploy/examples/hello.json\n"
      "  orchctl apply -f web.json --wait --wait-timeout 2m\n";

static int cli__apply_run (cli_ctx_t *ctx, int argc, char **argv);

const cli_command_t cli_cmd_apply = {
  .name = "apply",
  .summary = "create or update services from a spec file",
  .usage = "apply -f FILE [--wait] [--wait-timeout DUR]",
  .help = cli__apply_help,
  .run = cli__apply_run,
};

/* ---- --wait ----------------------------------------------------------------- */

typedef struct cli_wait_svc_s
{
  const char *name;
  uint64_t version; /* 0 = any */
  uint32_t replicas;
  bool restart_always; /* an exit 0 will be restarted, so it is not "done" */
  uint32_t running;
  uint32_t completed;
  bool done;
  char last[128];    /* the last progress line printed */
  char pending[512]; /* what is still missing, for the timeout message */
} cli_wait_svc_t;

static bool
cli__is_current (const cli_wait_svc_t *w, const Orch__AllocInfo *a)
{
  if (a->desired != NULL && strcmp (a->desired, "stop") == 0)
    return false;
  /* Allocations of an older version are being replaced, not waited for. */
  return w->version == 0 || a->spec_version == 0 || a->spec_version == w->version;
}

/* Polls one service. Returns 0 to go on, CLI_EXIT_FAIL when an allocation
 * failed (reason printed) or the request failed. */
static int
cli__wait_poll (cli_ctx_t *ctx, cli_wait_svc_t *w)
{
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  Orch__GetRequest get = ORCH__GET_REQUEST__INIT;
  Orch__Envelope *reply = NULL;
  const Orch__GetReply *r;
  char line[sizeof (w->last)];
  size_t off = 0, counted = 0;
  int rc;

  get.kind = (char *) "allocs";
  get.name = (char *) w->name;
  env.msg_case = ORCH__ENVELOPE__MSG_GET_REQUEST;
  env.get_request = &get;
  rc = cli_request (ctx, &env, ORCH__ENVELOPE__MSG_GET_REPLY, &reply);
  if (rc != CLI_EXIT_OK)
    return rc;
  r = reply->get_reply;

  w->running = 0;
  w->completed = 0;
  w->pending[0] = '\0';
  for (size_t i = 0; i < r->n_allocs; i++)
    {
      const Orch__AllocInfo *a = r->allocs[i];
      const Orch__AllocStatus *st = a->status;
      const char *state = st != NULL && st->state != NULL && *st->state ? st->state : "pending";

      if (cli__is_current (w, a) == false)
        continue;
      counted++;
      if (strcmp (state, "failed") == 0
          || (strcmp (state, "exited") == 0 && st != NULL && st->exit_code != 0))
        {
          fprintf (ctx->err, "error: %s %s", a->alloc_id, state);
          if (strcmp (state, "exited") == 0)
            fprintf (ctx->err, " with code %d", st->exit_code);
          fprintf (ctx->err, " on %s: %s\n", a->node != NULL && *a->node ? a->node : "no node",
                   st != NULL && st->reason != NULL && *st->reason ? st->reason
                                                                   : "no reason given");
          fprintf (ctx->err, "Run 'orchctl logs %s' for its output.\n", a->alloc_id);
          orch__envelope__free_unpacked (reply, NULL);
          return CLI_EXIT_FAIL;
        }
      if (strcmp (state, "running") == 0)
        w->running++;
      else if (strcmp (state, "exited") == 0 && !w->restart_always)
        w->completed++;
      else if (off < sizeof (w->pending))
        off += (size_t) snprintf (w->pending + off, sizeof (w->pending) - off, "%s%s (%s)",
                                  off ? ", " : "", a->alloc_id, state);
    }
  if (counted < w->replicas && off < sizeof (w->pending))
    snprintf (w->pending + off, sizeof (w->pending) - off, "%s%zu %s not placed", off ? ", " : "",
              w->replicas - counted, w->replicas - counted == 1 ? "replica" : "replicas");
  orch__envelope__free_unpacked (reply, NULL);

  w->done = w->running + w->completed >= w->replicas;
  if (w->completed > 0)
    snprintf (line, sizeof (line), "%s: %u/%u running, %u completed", w->name, w->running,
              w->replicas, w->completed);
  else
    snprintf (line, sizeof (line), "%s: %u/%u running", w->name, w->running, w->replicas);
  if (strcmp (line, w->last) != 0)
    {
      fprintf (ctx->out, "%s\n", line);
      fflush (ctx->out);
      snprintf (w->last, sizeof (w->last), "%s", line);
    }
  return CLI_EXIT_OK;
}

/* The scheduler's aggregated reason for replicas it could not place. */
static void
cli__print_pending_reason (cli_ctx_t *ctx, const cli_wait_svc_t *w)
{
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  Orch__GetRequest get = ORCH__GET_REQUEST__INIT;
  Orch__Envelope *reply = NULL;

  get.kind = (char *) "services";
  get.name = (char *) w->name;
  env.msg_case = ORCH__ENVELOPE__MSG_GET_REQUEST;
  env.get_request = &get;
  if (cli_request (ctx, &env, ORCH__ENVELOPE__MSG_GET_REPLY, &reply) != CLI_EXIT_OK)
    return;
  for (size_t i = 0; i < reply->get_reply->n_services; i++)
    {
      const Orch__ServiceInfo *s = reply->get_reply->services[i];
      if (strcmp (s->name, w->name) == 0 && s->pending > 0 && s->pending_reason != NULL
          && *s->pending_reason)
        fprintf (ctx->err, "  %s: %u pending: %s\n", w->name, s->pending, s->pending_reason);
    }
  orch__envelope__free_unpacked (reply, NULL);
}

static void
cli__sleep_ms (int64_t ms)
{
  struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };

  while (nanosleep (&ts, &ts) < 0)
    ;
}

static int
cli__wait (cli_ctx_t *ctx, const Orch__ApplyReply *ar, const orch_spec_t *specs, size_t n_specs,
           int64_t wait_timeout_ms)
{
  cleanup_free cli_wait_svc_t *w = xcalloc (n_specs ? n_specs : 1, sizeof (*w));
  int64_t deadline = orch_now_mono_ms () + wait_timeout_ms;
  /* A container starts in tens of milliseconds: poll quickly at first, then
   * back off to the steady interval, so --wait neither adds a fixed 200 ms
   * nor keeps the scheduler busy for long waits. */
  int64_t delay = ctx->poll_ms < 10 ? ctx->poll_ms : 10;
  char dur[32];

  for (size_t i = 0; i < n_specs; i++)
    {
      w[i].name = specs[i].name;
      w[i].replicas = specs[i].replicas;
      w[i].restart_always = specs[i].restart_policy == ORCH_RESTART_ALWAYS;
      for (size_t j = 0; j < ar->n_changes; j++)
        if (strcmp (ar->changes[j]->name, specs[i].name) == 0)
          w[i].version = ar->changes[j]->version;
    }

  for (;;)
    {
      bool all = true;

      for (size_t i = 0; i < n_specs; i++)
        {
          int rc;
          if (w[i].done)
            continue;
          rc = cli__wait_poll (ctx, &w[i]);
          if (rc != CLI_EXIT_OK)
            return rc;
          all = all && w[i].done;
        }
      if (all)
        return CLI_EXIT_OK;
      if (orch_now_mono_ms () >= deadline)
        break;
      cli__sleep_ms (delay);
      delay = delay * 2 < ctx->poll_ms ? delay * 2 : ctx->poll_ms;
    }

  fprintf (ctx->err, "error: not all replicas running after %s:\n",
           cli_fmt_duration (wait_timeout_ms, dur, sizeof (dur)));
  for (size_t i = 0; i < n_specs; i++)
    {
      if (w[i].done)
        continue;
      fprintf (ctx->err, "  %s: %u/%u running; waiting for %s\n", w[i].name, w[i].running,
               w[i].replicas, w[i].pending[0] ? w[i].pending : "replicas");
      cli__print_pending_reason (ctx, &w[i]);
    }
  return CLI_EXIT_FAIL;
}

/* ---- The command ------------------------------------------------------------ */

static int
cli__apply_run (cli_ctx_t *ctx, int argc, char **argv)
{
  static const struct option opts[] = {
    { "filename", required_argument, NULL, 'f' },
    { "wait", no_argument, NULL, 'w' },
    { "wait-timeout", required_argument, NULL, 'T' },
    { NULL, 0, NULL, 0 },
  };
  const char *file = NULL;
  bool wait = false;
  int64_t wait_timeout_ms = CLI_DEFAULT_WAIT_TIMEOUT_MS;
  cleanup_free char *text = NULL;
  orch_spec_t *specs = NULL;
  size_t len = 0, n_specs = 0;
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  Orch__ApplyRequest req = ORCH__APPLY_REQUEST__INIT;
  Orch__Envelope *reply = NULL;
  int c, rc;

  while ((c = getopt_long (argc, argv, ":f:w", opts, NULL)) != -1)
    {
      switch (c)
        {
        case 'f':
          file = optarg;
          break;
        case 'w':
          wait = true;
          break;
        case 'T':
          if (cli_parse_duration (optarg, &wait_timeout_ms) < 0)
            return cli_usage_error (ctx, &cli_cmd_apply,
                                    "--wait-timeout wants a duration such as 60s, not \"%s\"",
                                    optarg);
          break;
        default:
          return cli_getopt_error (ctx, &cli_cmd_apply, c, argv);
        }
    }
  if (file == NULL)
    return cli_usage_error (ctx, &cli_cmd_apply, "apply needs -f FILE");
  if (optind < argc)
    return cli_usage_error (ctx, &cli_cmd_apply, "unexpected argument '%s'", argv[optind]);

  rc = cli_load_spec (ctx, file, &text, &len, &specs, &n_specs);
  if (rc != CLI_EXIT_OK)
    return rc;

  req.spec_json = text;
  req.source = (char *) (strcmp (file, "-") == 0 ? "<stdin>" : file);
  req.dry_run = false;
  env.msg_case = ORCH__ENVELOPE__MSG_APPLY_REQUEST;
  env.apply_request = &req;
  rc = cli_request (ctx, &env, ORCH__ENVELOPE__MSG_APPLY_REPLY, &reply);
  if (rc == CLI_EXIT_OK)
    {
      cli_print_apply (ctx->out, reply->apply_reply);
      fflush (ctx->out);
      if (wait)
        rc = cli__wait (ctx, reply->apply_reply, specs, n_specs, wait_timeout_ms);
      orch__envelope__free_unpacked (reply, NULL);
    }
  orch_specs_free (specs, n_specs);
  return rc;
}
