/* orchctl image import NAME PATH | image pull REF  [--state-dir DIR] */
#define _GNU_SOURCE
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "orch_util.h"

static int cli__image_run (cli_ctx_t *ctx, int argc, char **argv);

const cli_command_t cli_cmd_image = {
  .name = "image",
  .summary = "manage the images of this node (image import, image pull)",
  .usage = "image import NAME PATH | image pull REF  [--state-dir DIR] [--insecure-registry HOST]",
  .help = "Works on this node's content-addressed image store, where the agent finds\n"
          "images by the `image` field of a spec. It does not talk to the scheduler:\n"
          "run it on the node, as the user the agent runs as. (The agent also pulls a\n"
          "registry image by itself when an allocation needs it.)\n"
          "\n"
          "  image import NAME PATH   PATH is a root filesystem (a directory or a tar,\n"
          "                           plain or compressed), a docker-archive (`docker\n"
          "                           save`) or an OCI image layout (directory or tar).\n"
          "                           Layers are applied in order with whiteouts. NAME\n"
          "                           (name or name:tag) then refers to it.\n"
          "  image pull REF           fetches REF (host:port/repo:tag or @sha256:...) from\n"
          "                           an OCI registry, verifying every blob's digest.\n"
          "\n"
          "Options:\n"
          "  --state-dir DIR          the agent's state directory (default:\n"
          "                           $ORCH_STATE_DIR, else " CLI_DEFAULT_STATE_DIR ")\n"
          "  --insecure-registry HOST allow plain http to HOST[:PORT] (loopback always may)\n"
          "\n"
          "Examples:\n"
          "  orchctl image import busybox /tmp/busybox-rootfs.tar\n"
          "  orchctl image import app:1.0 ./app-docker-save.tar --state-dir /tmp/orch\n"
          "  orchctl image pull localhost:5000/busybox:latest\n",
  .run = cli__image_run,
};

static int
cli__image_run (cli_ctx_t *ctx, int argc, char **argv)
{
  static const struct option opts[] = {
    { "state-dir", required_argument, NULL, 'd' },
    { "insecure-registry", required_argument, NULL, 'i' },
    { NULL, 0, NULL, 0 },
  };
  const char *insecure[2] = { NULL, NULL };
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
        case 'i':
          insecure[0] = optarg;
          break;
        default:
          return cli_getopt_error (ctx, &cli_cmd_image, c, argv);
        }
    }
  if (optind >= argc)
    return cli_usage_error (ctx, &cli_cmd_image, "image needs a subcommand: import or pull");
  if (strcmp (argv[optind], "pull") == 0)
    {
      if (optind + 1 >= argc)
        return cli_usage_error (ctx, &cli_cmd_image, "image pull needs a REF");
      if (optind + 2 < argc)
        return cli_usage_error (ctx, &cli_cmd_image, "unexpected argument '%s'", argv[optind + 2]);
      image_pull_opts_t popts = { .policy = IMAGE_PULL_ALWAYS, .insecure_registries = insecure };
      cleanup_free char *rootfs = NULL;
      fprintf (ctx->err, "pulling %s...\n", argv[optind + 1]);
      if (image_ensure (state_dir, argv[optind + 1], &popts, &rootfs, &err) < 0)
        {
          fprintf (ctx->err, "error: %s\n", err.msg);
          return CLI_EXIT_FAIL;
        }
      fprintf (ctx->out, "image/%s pulled (%s)\n", argv[optind + 1], rootfs);
      return CLI_EXIT_OK;
    }
  if (strcmp (argv[optind], "import") != 0)
    return cli_usage_error (ctx, &cli_cmd_image,
                            "unknown image subcommand '%s'; use import or pull", argv[optind]);
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
  cleanup_free char *rootfs = image_rootfs (state_dir, name, &err);
  fprintf (ctx->out, "image/%s imported (%s)\n", name, rootfs ? rootfs : state_dir);
  return CLI_EXIT_OK;
}
