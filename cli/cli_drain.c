/* orchctl drain NODE */
#define _GNU_SOURCE
#include "cli.h"

#include <getopt.h>

static int cli__drain_run (cli_ctx_t *ctx, int argc, char **argv);

const cli_command_t cli_cmd_drain = {
  .name = "drain",
  .summary = "stop placing on a node and move its allocations elsewhere",
  .usage = "drain NODE",
  .help = "Marks NODE as draining: nothing new is placed on it, and the scheduler\n"
          "replaces its allocations on other nodes (each replacement is placed before\n"
          "the old allocation is stopped). Prints how many allocations were moved.\n"
          "\n"
          "Examples:\n"
          "  orchctl drain n2\n"
          "  orchctl get nodes n2\n",
  .run = cli__drain_run,
};

static int
cli__drain_run (cli_ctx_t *ctx, int argc, char **argv)
{
  static const struct option opts[] = { { NULL, 0, NULL, 0 } };
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  Orch__DrainRequest req = ORCH__DRAIN_REQUEST__INIT;
  Orch__Envelope *reply = NULL;
  uint32_t n;
  int c, rc;

  while ((c = getopt_long (argc, argv, ":", opts, NULL)) != -1)
    return cli_getopt_error (ctx, &cli_cmd_drain, c, argv);
  if (optind >= argc)
    return cli_usage_error (ctx, &cli_cmd_drain, "drain needs a NODE");
  if (optind + 1 < argc)
    return cli_usage_error (ctx, &cli_cmd_drain, "unexpected argument '%s'", argv[optind + 1]);

  req.node_id = argv[optind];
  env.msg_case = ORCH__ENVELOPE__MSG_DRAIN_REQUEST;
  env.drain_request = &req;
  rc = cli_request (ctx, &env, ORCH__ENVELOPE__MSG_DRAIN_REPLY, &reply);
  if (rc != CLI_EXIT_OK)
    return rc;
  n = reply->drain_reply->moved;
  fprintf (ctx->out, "node/%s draining (%u %s moved)\n", argv[optind], n,
           n == 1 ? "allocation" : "allocations");
  orch__envelope__free_unpacked (reply, NULL);
  return CLI_EXIT_OK;
}
