/* orchctl image import NAME PATH [--state-dir DIR] */
#define _GNU_SOURCE
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "rt.h"

static int cli__image_run (cli_ctx_t *ctx, int argc, char **argv);

const cli_command_t cli_cmd_image = {
  .name = "image",
  .summary = "manage the images of this node (image import)",
  .usage = "image import NAME PATH [--state-dir DIR]",
  .help = "Imports a root filesystem into this node's image store, where the agent\n"
          "finds it by NAME (the `image` field of a spec). PATH is a directory or a tar\n"
          "archive (plain, gzip, xz, zstd...). The image is unpacked into\n"
          "DIR/images/NAME and replaces an image of that name atomically. This works on\n"
          "the local node only and does not talk to the scheduler: run it on every node\n"
          "that should run the image, as the user the agent runs as.\n"
          "\n"
          "Options:\n"
          "  --state-dir DIR  the agent's state directory (default: $ORCH_STATE_DIR, else\n"
          "                   " CLI_DEFAULT_STATE_DIR ")\n"
          "\n"
          "Examples:\n"
          "  orchctl image import busybox /tmp/busybox-rootfs.tar\n"
          "  orchctl image import busybox ./rootfs --state-dir /tmp/orch\n",
  .run = cli__image_run,
};

static int
cli__image_run (cli_ctx_t *ctx, int argc, char **argv)
{
  static const struct option opts[] = {
    { "state-dir", required_argument, NULL, 'd' },
    { NULL, 0, NULL, 0 },
  };
  const char *env_dir = getenv ("ORCH_STATE_DIR");
  const char *state_dir = env_dir != NULL && *env_dir ? env_dir : CLI_DEFAULT_STATE_DIR;
  orch_err_t err = { 0 };
  const char *name, *path;
  int c;

  while ((c = getopt_long (argc, argv, ":", opts, NULL)) != -1)
    {
      switch (c)
        {
        case 'd':
          state_dir = optarg;
          break;
        default:
          return cli_getopt_error (ctx, &cli_cmd_image, c, argv);
        }
    }
  if (optind >= argc)
    return cli_usage_error (ctx, &cli_cmd_image, "image needs a subcommand: import");
  if (strcmp (argv[optind], "import") != 0)
    return cli_usage_error (ctx, &cli_cmd_image, "unknown image subcommand '%s'; use import",
                            argv[optind]);
  if (optind + 2 >= argc)
    return cli_usage_error (ctx, &cli_cmd_image, "image import needs NAME and PATH");
  if (optind + 3 < argc)
    return cli_usage_error (ctx, &cli_cmd_image, "unexpected argument '%s'", argv[optind + 3]);
  name = argv[optind + 1];
  path = argv[optind + 2];

  if (image_import (state_dir, name, path, &err) < 0)
    {
      fprintf (ctx->err, "error: cannot import image %s from %s: %s\n", name, path, err.msg);
      return CLI_EXIT_FAIL;
    }
  fprintf (ctx->out, "image/%s imported into %s/images/%s\n", name, state_dir, name);
  return CLI_EXIT_OK;
}
