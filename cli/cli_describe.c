/* orchctl describe service NAME [-o json] */
#define _GNU_SOURCE
#include "cli.h"

#include <getopt.h>
#include <string.h>

static int cli__describe_run (cli_ctx_t *ctx, int argc, char **argv);

const cli_command_t cli_cmd_describe = {
  .name = "describe",
  .summary = "show a service in detail: spec, allocations, why replicas are pending",
  .usage = "describe service NAME [-o json]",
  .help = "Shows one service: its tenant, version, isolation, image and resources, the\n"
          "spec as stored, every allocation (node, isolation, state, exit code, restarts,\n"
          "and why it was placed there), the reason reported for each allocation that\n"
          "failed or stopped, and the aggregated reason why replicas are still pending.\n"
          "\n"
          "Options:\n"
          "  -o, --output json  print {\"service\": {...}, \"allocs\": [...]}\n"
          "\n"
          "Examples:\n"
          "  orchctl describe service web\n"
          "  orchctl describe service web -o json | jq .service.pending_reason\n",
  .run = cli__describe_run,
};

static int
cli__describe_run (cli_ctx_t *ctx, int argc, char **argv)
{
  static const struct option opts[] = {
    { "output", required_argument, NULL, 'o' },
    { NULL, 0, NULL, 0 },
  };
  cli_output_t o = CLI_OUT_TABLE;
  const char *name;
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  Orch__GetRequest req = ORCH__GET_REQUEST__INIT;
  Orch__Envelope *reply = NULL;
  const Orch__ServiceInfo *s = NULL;
  int c, rc;

  while ((c = getopt_long (argc, argv, ":o:", opts, NULL)) != -1)
    {
      switch (c)
        {
        case 'o':
          if (cli_parse_output (optarg, false, &o) < 0)
            return cli_usage_error (ctx, &cli_cmd_describe, "-o wants json, not \"%s\"", optarg);
          break;
        default:
          return cli_getopt_error (ctx, &cli_cmd_describe, c, argv);
        }
    }
  if (optind >= argc)
    return cli_usage_error (ctx, &cli_cmd_describe, "describe needs a kind and a name");
  if (strcmp (argv[optind], "service") != 0 && strcmp (argv[optind], "services") != 0
      && strcmp (argv[optind], "svc") != 0)
    return cli_usage_error (ctx, &cli_cmd_describe, "cannot describe '%s'; only 'service'",
                            argv[optind]);
  if (optind + 1 >= argc)
    return cli_usage_error (ctx, &cli_cmd_describe, "describe service needs a NAME");
  if (optind + 2 < argc)
    return cli_usage_error (ctx, &cli_cmd_describe, "unexpected argument '%s'", argv[optind + 2]);
  name = argv[optind + 1];

  req.kind = (char *) "service";
  req.name = (char *) name;
  env.msg_case = ORCH__ENVELOPE__MSG_GET_REQUEST;
  env.get_request = &req;
  rc = cli_request (ctx, &env, ORCH__ENVELOPE__MSG_GET_REPLY, &reply);
  if (rc != CLI_EXIT_OK)
    return rc;
  for (size_t i = 0; i < reply->get_reply->n_services; i++)
    if (strcmp (reply->get_reply->services[i]->name, name) == 0)
      s = reply->get_reply->services[i];
  if (s == NULL)
    {
      fprintf (ctx->err, "error: service \"%s\" not found\n", name);
      orch__envelope__free_unpacked (reply, NULL);
      return CLI_EXIT_FAIL;
    }
  cli_print_describe (ctx->out, s, reply->get_reply, o, cli_now_ms (ctx));
  orch__envelope__free_unpacked (reply, NULL);
  return CLI_EXIT_OK;
}
