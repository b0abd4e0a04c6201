/* orchctl plan -f FILE [-o json] */
#define _GNU_SOURCE
#include "cli.h"

#include <getopt.h>
#include <string.h>

#include "orch_util.h"

static int cli__plan_run (cli_ctx_t *ctx, int argc, char **argv);

const cli_command_t cli_cmd_plan = {
  .name = "plan",
  .summary = "show where a spec's replicas would go, changing nothing",
  .usage = "plan -f FILE [-o json]",
  .help = "Validates FILE like `apply`, then asks the scheduler to run the placement\n"
          "engine on the current cluster state without committing anything. Prints what\n"
          "would change, one row per replica that would be placed (node, isolation and\n"
          "why), and the replicas that could not be placed with the reason aggregated\n"
          "over all nodes (\"0/3 nodes: 3 insufficient memory\").\n"
          "\n"
          "Options:\n"
          "  -f, --filename FILE  the spec (\"-\" reads standard input; required)\n"
          "  -o, --output json    print {\"changes\": [...], \"placements\": [...]}\n"
          "\n"
          "Examples:\n"
          "  orchctl plan -f web.json\n"
          "  orchctl plan -f web.json -o json | jq '.placements[].node'\n",
  .run = cli__plan_run,
};

static int
cli__plan_run (cli_ctx_t *ctx, int argc, char **argv)
{
  static const struct option opts[] = {
    { "filename", required_argument, NULL, 'f' },
    { "output", required_argument, NULL, 'o' },
    { NULL, 0, NULL, 0 },
  };
  const char *file = NULL;
  cli_output_t o = CLI_OUT_TABLE;
  cleanup_free char *text = NULL;
  orch_spec_t *specs = NULL;
  size_t len = 0, n_specs = 0;
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  Orch__ApplyRequest req = ORCH__APPLY_REQUEST__INIT;
  Orch__Envelope *reply = NULL;
  int c, rc;

  while ((c = getopt_long (argc, argv, ":f:o:", opts, NULL)) != -1)
    {
      switch (c)
        {
        case 'f':
          file = optarg;
          break;
        case 'o':
          if (cli_parse_output (optarg, false, &o) < 0)
            return cli_usage_error (ctx, &cli_cmd_plan, "-o wants json, not \"%s\"", optarg);
          break;
        default:
          return cli_getopt_error (ctx, &cli_cmd_plan, c, argv);
        }
    }
  if (file == NULL)
    return cli_usage_error (ctx, &cli_cmd_plan, "plan needs -f FILE");
  if (optind < argc)
    return cli_usage_error (ctx, &cli_cmd_plan, "unexpected argument '%s'", argv[optind]);

  rc = cli_load_spec (ctx, file, &text, &len, &specs, &n_specs);
  if (rc != CLI_EXIT_OK)
    return rc;
  orch_specs_free (specs, n_specs);

  req.spec_json = text;
  req.source = (char *) (strcmp (file, "-") == 0 ? "<stdin>" : file);
  req.dry_run = true;
  env.msg_case = ORCH__ENVELOPE__MSG_APPLY_REQUEST;
  env.apply_request = &req;
  rc = cli_request (ctx, &env, ORCH__ENVELOPE__MSG_APPLY_REPLY, &reply);
  if (rc != CLI_EXIT_OK)
    return rc;
  cli_print_plan (ctx->out, reply->apply_reply, o);
  orch__envelope__free_unpacked (reply, NULL);
  return CLI_EXIT_OK;
}
