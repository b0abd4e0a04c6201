/* orchctl get services|allocs|nodes [NAME] [-o json|wide] */
#define _GNU_SOURCE
#include "cli.h"

#include <getopt.h>
#include <string.h>

static int cli__get_run (cli_ctx_t *ctx, int argc, char **argv);

const cli_command_t cli_cmd_get = {
  .name = "get",
  .summary = "list services, allocations or nodes",
  .usage = "get services|allocs|nodes [NAME] [-o json|wide]",
  .help
  = "Lists one kind of object as a table (rows sorted by name), or as one JSON\n"
    "document. NAME narrows the list: a service name for `services` and for\n"
    "`allocs` (the allocations of that service), a node name for `nodes`.\n"
    "\n"
    "Columns:\n"
    "  services  NAME TENANT ISOLATION REPLICAS RUNNING IMAGE VERSION\n"
    "            (wide adds CPU MEMORY PENDING REASON)\n"
    "  allocs    ID SERVICE NODE ISOLATION STATE EXIT CPU MEM AGE\n"
    "            CPU is CPU time used, MEM the memory in use (wide adds PID REASON)\n"
    "  nodes     NAME STATE ADDRESS CPU(used/alloc/cap) MEMORY(used/alloc/cap) ALLOCS\n"
    "            RUNTIMES: used = measured, alloc = requested by placed replicas,\n"
    "            cap = allocatable (wide adds CGROUP HEARTBEAT LABELS)\n"
    "\n"
    "Options:\n"
    "  -o, --output json|wide  json: {\"services\": [...]}, {\"allocs\": [...]} or\n"
    "                          {\"nodes\": [...]}, keys as in orch.proto, sorted;\n"
    "                          wide: the table with more columns\n"
    "\n"
    "Examples:\n"
    "  orchctl get services\n"
    "  orchctl get allocs web -o wide\n"
    "  orchctl get nodes -o json | jq -r '.nodes[] | select(.state == \"ready\") | .node_id'\n",
  .run = cli__get_run,
};

/* The kind the scheduler knows, from what the user typed ("svc", "alloc"...). */
static const char *
cli__get_kind (const char *s)
{
  static const char *const map[][2] = {
    { "services", "services" }, { "service", "services" }, { "svc", "services" },
    { "allocs", "allocs" },     { "alloc", "allocs" },     { "allocations", "allocs" },
    { "nodes", "nodes" },       { "node", "nodes" },
  };

  for (size_t i = 0; i < sizeof (map) / sizeof (map[0]); i++)
    if (strcmp (s, map[i][0]) == 0)
      return map[i][1];
  return NULL;
}

static int
cli__get_run (cli_ctx_t *ctx, int argc, char **argv)
{
  static const struct option opts[] = {
    { "output", required_argument, NULL, 'o' },
    { NULL, 0, NULL, 0 },
  };
  cli_output_t o = CLI_OUT_TABLE;
  const char *kind, *name = NULL;
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  Orch__GetRequest req = ORCH__GET_REQUEST__INIT;
  Orch__Envelope *reply = NULL;
  const Orch__GetReply *r;
  size_t rows;
  int c, rc;

  while ((c = getopt_long (argc, argv, ":o:", opts, NULL)) != -1)
    {
      switch (c)
        {
        case 'o':
          if (cli_parse_output (optarg, true, &o) < 0)
            return cli_usage_error (ctx, &cli_cmd_get, "-o wants json or wide, not \"%s\"", optarg);
          break;
        default:
          return cli_getopt_error (ctx, &cli_cmd_get, c, argv);
        }
    }
  if (optind >= argc)
    return cli_usage_error (ctx, &cli_cmd_get, "get needs a kind: services, allocs or nodes");
  kind = cli__get_kind (argv[optind]);
  if (kind == NULL)
    return cli_usage_error (ctx, &cli_cmd_get, "unknown kind '%s'; use services, allocs or nodes",
                            argv[optind]);
  if (optind + 1 < argc)
    name = argv[optind + 1];
  if (optind + 2 < argc)
    return cli_usage_error (ctx, &cli_cmd_get, "unexpected argument '%s'", argv[optind + 2]);

  req.kind = (char *) kind;
  req.name = (char *) (name != NULL ? name : "");
  env.msg_case = ORCH__ENVELOPE__MSG_GET_REQUEST;
  env.get_request = &req;
  rc = cli_request (ctx, &env, ORCH__ENVELOPE__MSG_GET_REPLY, &reply);
  if (rc != CLI_EXIT_OK)
    return rc;
  r = reply->get_reply;

  if (strcmp (kind, "services") == 0)
    rows = r->n_services;
  else if (strcmp (kind, "allocs") == 0)
    rows = r->n_allocs;
  else
    rows = r->n_nodes;
  /* A named object that does not exist is an error, as in kubectl; an empty
   * list is not, but a table with only its header helps nobody. */
  if (rows == 0 && name != NULL && strcmp (kind, "allocs") != 0)
    {
      fprintf (ctx->err, "error: %s \"%s\" not found\n",
               strcmp (kind, "services") == 0 ? "service" : "node", name);
      orch__envelope__free_unpacked (reply, NULL);
      return CLI_EXIT_FAIL;
    }
  if (rows == 0 && o != CLI_OUT_JSON)
    fprintf (ctx->err, "no %s found\n", kind);
  else if (strcmp (kind, "services") == 0)
    cli_print_services (ctx->out, r, o);
  else if (strcmp (kind, "allocs") == 0)
    cli_print_allocs (ctx->out, r, o, cli_now_ms (ctx));
  else
    cli_print_nodes (ctx->out, r, o, cli_now_ms (ctx));
  orch__envelope__free_unpacked (reply, NULL);
  return CLI_EXIT_OK;
}
