/* orchctl delete service NAME */
#define _GNU_SOURCE
#include "cli.h"

#include <getopt.h>
#include <string.h>

static int cli__delete_run (cli_ctx_t *ctx, int argc, char **argv);

const cli_command_t cli_cmd_delete = {
  .name = "delete",
  .summary = "delete a service and stop its allocations",
  .usage = "delete service NAME",
  .help = "Removes the service from the cluster's desired state. Its allocations are\n"
          "stopped (SIGTERM, then SIGKILL after the service's stop grace period) and\n"
          "their cgroups removed by the agents. Prints how many allocations are stopping;\n"
          "`orchctl get allocs NAME` shows when they are gone.\n"
          "\n"
          "Examples:\n"
          "  orchctl delete service web\n",
  .run = cli__delete_run,
};

static int
cli__delete_run (cli_ctx_t *ctx, int argc, char **argv)
{
  static const struct option opts[] = { { NULL, 0, NULL, 0 } };
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  Orch__DeleteRequest req = ORCH__DELETE_REQUEST__INIT;
  Orch__Envelope *reply = NULL;
  const char *name;
  uint32_t n;
  int c, rc;

  while ((c = getopt_long (argc, argv, ":", opts, NULL)) != -1)
    return cli_getopt_error (ctx, &cli_cmd_delete, c, argv);
  if (optind >= argc)
    return cli_usage_error (ctx, &cli_cmd_delete, "delete needs a kind and a name");
  if (strcmp (argv[optind], "service") != 0 && strcmp (argv[optind], "services") != 0
      && strcmp (argv[optind], "svc") != 0)
    return cli_usage_error (ctx, &cli_cmd_delete, "cannot delete '%s'; only 'service'",
                            argv[optind]);
  if (optind + 1 >= argc)
    return cli_usage_error (ctx, &cli_cmd_delete, "delete service needs a NAME");
  if (optind + 2 < argc)
    return cli_usage_error (ctx, &cli_cmd_delete, "unexpected argument '%s'", argv[optind + 2]);
  name = argv[optind + 1];

  req.kind = (char *) "service";
  req.name = (char *) name;
  env.msg_case = ORCH__ENVELOPE__MSG_DELETE_REQUEST;
  env.delete_request = &req;
  rc = cli_request (ctx, &env, ORCH__ENVELOPE__MSG_DELETE_REPLY, &reply);
  if (rc != CLI_EXIT_OK)
    return rc;
  n = reply->delete_reply->stopped;
  fprintf (ctx->out, "service/%s deleted (%u %s stopping)\n", name, n,
           n == 1 ? "allocation" : "allocations");
  orch__envelope__free_unpacked (reply, NULL);
  return CLI_EXIT_OK;
}
