/* orchctl version */
#define _GNU_SOURCE
#include "cli.h"

#include <getopt.h>

#include "wire.h"

#ifndef ORCH_VERSION
#define ORCH_VERSION "0.0.0"
#endif

static int cli__version_run (cli_ctx_t *ctx, int argc, char **argv);

const cli_command_t cli_cmd_version = {
  .name = "version",
  .summary = "print orchctl's version and wire protocol version",
  .usage = "version",
  .help = "Prints orchctl's version and the wire protocol version it speaks; the\n"
          "scheduler refuses a client whose protocol version differs from its own.\n"
          "\n"
          "Examples:\n"
          "  orchctl version\n",
  .run = cli__version_run,
};

static int
cli__version_run (cli_ctx_t *ctx, int argc, char **argv)
{
  static const struct option opts[] = { { NULL, 0, NULL, 0 } };
  int c;

  while ((c = getopt_long (argc, argv, ":", opts, NULL)) != -1)
    return cli_getopt_error (ctx, &cli_cmd_version, c, argv);
  if (optind < argc)
    return cli_usage_error (ctx, &cli_cmd_version, "unexpected argument '%s'", argv[optind]);
  fprintf (ctx->out, "orchctl %s (protocol %u)\n", ORCH_VERSION, WIRE_PROTOCOL_VERSION);
  return CLI_EXIT_OK;
}
