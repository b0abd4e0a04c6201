/* orchctl: a thin main over the cli library. The table below is the list of
 * subcommands; each lives in its own cli_<name>.c. */
#include "cli.h"

static const cli_command_t *const commands[] = {
  &cli_cmd_apply, &cli_cmd_plan,  &cli_cmd_get,   &cli_cmd_describe, &cli_cmd_delete,
  &cli_cmd_logs,  &cli_cmd_drain, &cli_cmd_image, &cli_cmd_version,
};

int
main (int argc, char **argv)
{
  cli_ctx_t ctx;
  int rc;

  cli_ctx_init (&ctx, stdout, stderr);
  rc = cli_dispatch (&ctx, commands, sizeof (commands) / sizeof (commands[0]), argc, argv);
  cli_ctx_release (&ctx);
  if (fflush (stdout) != 0 && rc == CLI_EXIT_OK)
    rc = CLI_EXIT_FAIL;
  return rc;
}
