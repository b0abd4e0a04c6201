/* Global options, the command lookup and the usage/help texts shared by all
 * subcommands. */
#define _GNU_SOURCE
#include "cli.h"

#include <getopt.h>
#include <pwd.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "orch_util.h"
#include "wire.h"

#ifndef ORCH_VERSION
#define ORCH_VERSION "0.0.0"
#endif

static const char cli__global_help[]
    = "Global options (before COMMAND):\n"
      "  --server HOST:PORT   the scheduler's API address (default: $ORCH_SERVER, else\n"
      "                       " CLI_DEFAULT_SERVER "); with several schedulers, a\n"
      "                       comma-separated list: the leader answers, standbys\n"
      "                       refuse\n"
      "  --timeout DUR        how long to wait for each reply from the scheduler\n"
      "                       (default: 10s; units ms, s, m, h)\n"
      "  -h, --help           show this help; `orchctl COMMAND --help` for a command\n"
      "  --version            print the version\n"
      "\n"
      "Environment:\n"
      "  ORCH_SERVER          default for --server\n"
      "  ORCH_JOIN_TOKEN      the cluster's join token, sent when connecting\n"
      "  ORCH_STATE_DIR       default state directory for `image import`\n"
      "\n"
      "Exit status:\n"
      "  0  success\n"
      "  1  the scheduler refused the request, or anything else failed (reason on stderr)\n"
      "  2  usage error: unknown command or option, missing argument\n";

void
cli_ctx_init (cli_ctx_t *ctx, FILE *out, FILE *err)
{
  const char *server = getenv ("ORCH_SERVER");
  const char *token = getenv ("ORCH_JOIN_TOKEN");
  const char *user = getenv ("USER");
  char host[256] = "localhost";

  memset (ctx, 0, sizeof (*ctx));
  ctx->out = out;
  ctx->err = err;
  ctx->server = server != NULL && *server ? server : CLI_DEFAULT_SERVER;
  ctx->timeout_ms = CLI_DEFAULT_TIMEOUT_MS;
  ctx->join_token = token != NULL ? token : "";
  ctx->poll_ms = CLI_WAIT_POLL_MS;
  if (user == NULL || *user == '\0')
    {
      struct passwd *pw = getpwuid (getuid ());
      user = pw != NULL ? pw->pw_name : "unknown";
    }
  if (gethostname (host, sizeof (host)) < 0)
    snprintf (host, sizeof (host), "localhost");
  host[sizeof (host) - 1] = '\0';
  snprintf (ctx->identity, sizeof (ctx->identity), "%s@%s", user, host);
}

void
cli_ctx_release (cli_ctx_t *ctx)
{
  if (ctx->transport != NULL && ctx->transport->close != NULL)
    ctx->transport->close (ctx->transport->data);
  ctx->transport = NULL;
}

int
cli_usage_error (cli_ctx_t *ctx, const cli_command_t *cmd, const char *fmt, ...)
{
  va_list ap;

  fputs ("error: ", ctx->err);
  va_start (ap, fmt);
  vfprintf (ctx->err, fmt, ap);
  va_end (ap);
  fputc ('\n', ctx->err);
  if (cmd != NULL)
    fprintf (ctx->err, "usage: orchctl %s\nRun 'orchctl %s --help' for more.\n", cmd->usage,
             cmd->name);
  else
    fputs ("usage: orchctl [--server HOST:PORT] [--timeout DUR] COMMAND ...\n"
           "Run 'orchctl --help' for the list of commands.\n",
           ctx->err);
  return CLI_EXIT_USAGE;
}

int
cli_getopt_error (cli_ctx_t *ctx, const cli_command_t *cmd, int c, char **argv)
{
  /* getopt leaves the offending word at argv[optind - 1], except for an
   * unknown letter inside a cluster ("-xq"), which only optopt names. */
  const char *word = optind > 0 ? argv[optind - 1] : "?";

  if (c == ':')
    return cli_usage_error (ctx, cmd, "option '%s' needs a value", word);
  /* A common slip: a global option after the command. */
  if (cmd != NULL && (strncmp (word, "--server", 8) == 0 || strncmp (word, "--timeout", 9) == 0))
    return cli_usage_error (ctx, cmd, "unknown option '%s' (global options go before the command)",
                            word);
  if (optopt != 0 && optopt < 128 && !(word[0] == '-' && word[1] == optopt))
    return cli_usage_error (ctx, cmd, "unknown option '-%c'", optopt);
  return cli_usage_error (ctx, cmd, "unknown option '%s'", word);
}

static void
cli__print_main_help (FILE *f, const cli_command_t *const *cmds, size_t n)
{
  fputs ("orchctl - control an orch cluster\n"
         "\n"
         "Synopsis:\n"
         "  orchctl [--server HOST:PORT] [--timeout DUR] COMMAND [ARGS...]\n"
         "\n"
         "orchctl talks to orch-scheduler's API port: it applies service specs, shows\n"
         "services, allocations and nodes, fetches logs and drains nodes. `image import`\n"
         "works on the local node's image store and needs no scheduler.\n"
         "\n"
         "Commands:\n",
         f);
  for (size_t i = 0; i < n; i++)
    fprintf (f, "  %-10s %s\n", cmds[i]->name, cmds[i]->summary);
  fputc ('\n', f);
  fputs (cli__global_help, f);
  fputs ("\n"
         "Examples:\n"
         "  orchctl apply -f web.json --wait\n"
         "  orchctl get allocs -o wide\n"
         "  orchctl --server 10.0.0.5:7700 get nodes -o json\n"
         "  orchctl logs web-1a2b3c4d --tail 20\n",
         f);
}

static void
cli__print_command_help (FILE *f, const cli_command_t *cmd)
{
  fprintf (f, "orchctl %s - %s\n\nSynopsis:\n  orchctl [GLOBAL OPTIONS] %s\n\n%s", cmd->name,
           cmd->summary, cmd->usage, cmd->help);
  fputs ("\n", f);
  fputs (cli__global_help, f);
}

static const cli_command_t *
cli__find (const cli_command_t *const *cmds, size_t n, const char *name)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp (cmds[i]->name, name) == 0)
      return cmds[i];
  return NULL;
}

static bool
cli__wants_help (int argc, char **argv)
{
  for (int i = 1; i < argc; i++)
    {
      if (strcmp (argv[i], "--") == 0)
        return false;
      if (strcmp (argv[i], "--help") == 0 || strcmp (argv[i], "-h") == 0)
        return true;
    }
  return false;
}

int
cli_dispatch (cli_ctx_t *ctx, const cli_command_t *const *cmds, size_t n_cmds, int argc,
              char **argv)
{
  static const struct option opts[] = {
    { "server", required_argument, NULL, 's' },
    { "timeout", required_argument, NULL, 't' },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
  };
  const cli_command_t *cmd;
  int c;

  /* '+': stop at the command, whose own options are parsed by the command;
   * ':': report a missing value apart from an unknown option. */
  optind = 0;
  opterr = 0;
  while ((c = getopt_long (argc, argv, "+:h", opts, NULL)) != -1)
    {
      switch (c)
        {
        case 's':
          if (!cli_server_valid (optarg))
            return cli_usage_error (ctx, NULL, "--server wants HOST:PORT[,HOST:PORT...], not \"%s\"",
                                    optarg);
          ctx->server = optarg;
          break;
        case 't':
          if (cli_parse_duration (optarg, &ctx->timeout_ms) < 0)
            return cli_usage_error (ctx, NULL,
                                    "--timeout wants a duration such as 10s or 500ms, not "
                                    "\"%s\"",
                                    optarg);
          break;
        case 'h':
          cli__print_main_help (ctx->out, cmds, n_cmds);
          return CLI_EXIT_OK;
        case 'V':
          fprintf (ctx->out, "orchctl %s (protocol %u)\n", ORCH_VERSION, WIRE_PROTOCOL_VERSION);
          return CLI_EXIT_OK;
        default:
          return cli_getopt_error (ctx, NULL, c, argv);
        }
    }
  if (optind >= argc)
    return cli_usage_error (ctx, NULL, "no command given");

  argc -= optind;
  argv += optind;
  if (strcmp (argv[0], "help") == 0)
    {
      if (argc < 2)
        {
          cli__print_main_help (ctx->out, cmds, n_cmds);
          return CLI_EXIT_OK;
        }
      cmd = cli__find (cmds, n_cmds, argv[1]);
      if (cmd == NULL)
        return cli_usage_error (ctx, NULL, "unknown command '%s'", argv[1]);
      cli__print_command_help (ctx->out, cmd);
      return CLI_EXIT_OK;
    }
  cmd = cli__find (cmds, n_cmds, argv[0]);
  if (cmd == NULL)
    return cli_usage_error (ctx, NULL, "unknown command '%s'", argv[0]);
  if (cli__wants_help (argc, argv))
    {
      cli__print_command_help (ctx->out, cmd);
      return CLI_EXIT_OK;
    }
  /* Each command parses its own options from a fresh getopt state. */
  optind = 0;
  return cmd->run (ctx, argc, argv);
}
