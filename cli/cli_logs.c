/* orchctl logs ALLOC [--tail N] */
#define _GNU_SOURCE
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static int cli__logs_run (cli_ctx_t *ctx, int argc, char **argv);

const cli_command_t cli_cmd_logs = {
  .name = "logs",
  .summary = "print an allocation's output (stdout and stderr)",
  .usage = "logs ALLOC [--tail N] [--follow]",
  .help = "Fetches the allocation's log from the agent on its node, through the\n"
          "scheduler, and writes it to standard output as is. The log holds the\n"
          "workload's stdout and stderr, interleaved as written. Without --tail the\n"
          "whole log is fetched, up to the reply limit (the start is cut from longer\n"
          "logs, and a note says so on stderr).\n"
          "\n"
          "Options:\n"
          "  -n, --tail N   only the last N lines\n"
          "  -f, --follow   keep printing what the workload writes, until the\n"
          "                 allocation goes away or orchctl is interrupted\n"
          "\n"
          "Examples:\n"
          "  orchctl logs web-1a2b3c4d\n"
          "  orchctl logs web-1a2b3c4d --tail 20\n"
          "  orchctl logs web-1a2b3c4d --tail 0 --follow\n",
  .run = cli__logs_run,
};

static int
cli__logs_run (cli_ctx_t *ctx, int argc, char **argv)
{
  static const struct option opts[] = {
    { "tail", required_argument, NULL, 'n' },
    { "follow", no_argument, NULL, 'f' },
    { NULL, 0, NULL, 0 },
  };
  bool tail = false, follow = false;
  uint64_t lines = 0, bytes = 0;
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  Orch__LogsRequest req = ORCH__LOGS_REQUEST__INIT;
  Orch__Envelope *reply = NULL;
  const Orch__LogsReply *r;
  size_t off;
  int c, rc;

  while ((c = getopt_long (argc, argv, ":n:f", opts, NULL)) != -1)
    {
      switch (c)
        {
        case 'f':
          follow = true;
          break;
        case 'n':
          {
            char *end;
            errno = 0;
            lines = strtoull (optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0' || optarg[0] == '-')
              return cli_usage_error (ctx, &cli_cmd_logs,
                                      "--tail wants a number of lines, not \"%s\"", optarg);
            tail = true;
          }
          break;
        default:
          return cli_getopt_error (ctx, &cli_cmd_logs, c, argv);
        }
    }
  if (optind >= argc)
    return cli_usage_error (ctx, &cli_cmd_logs, "logs needs an ALLOC");
  if (optind + 1 < argc)
    return cli_usage_error (ctx, &cli_cmd_logs, "unexpected argument '%s'", argv[optind + 1]);

  if (tail)
    {
      /* The agent cuts by bytes; ask for a generous slice (lines are rarely
       * longer than 1 KiB on average) and cut lines here. */
      bytes = lines > CLI_LOGS_MAX_TAIL_BYTES / 1024 ? CLI_LOGS_MAX_TAIL_BYTES : lines * 1024;
      if (bytes < 64 * 1024)
        bytes = 64 * 1024;
    }
  req.alloc_id = argv[optind];
  req.tail_bytes = bytes;
  req.follow = follow;
  env.msg_case = ORCH__ENVELOPE__MSG_LOGS_REQUEST;
  env.logs_request = &req;
  rc = cli_request (ctx, &env, ORCH__ENVELOPE__MSG_LOGS_REPLY, &reply);
  if (rc != CLI_EXIT_OK)
    return rc;
  r = reply->logs_reply;
  off = tail ? cli_tail_lines ((const char *) r->data.data, r->data.len, lines) : 0;
  if (r->data.len > off)
    fwrite (r->data.data + off, 1, r->data.len - off, ctx->out);
  if (r->truncated && !tail)
    fprintf (ctx->err, "note: the log is longer; this is its last %zu bytes\n", r->data.len);
  bool eof = !follow || r->eof;
  orch__envelope__free_unpacked (reply, NULL);
  /* Following: every further reply carries what was appended. Interrupting
   * orchctl closes the connection, which ends the follow on the agent. */
  while (!eof)
    {
      if (fflush (ctx->out) != 0)
        break;
      rc = cli_request_next (ctx, ORCH__ENVELOPE__MSG_LOGS_REPLY, &reply);
      if (rc != CLI_EXIT_OK)
        return rc;
      r = reply->logs_reply;
      fwrite (r->data.data, 1, r->data.len, ctx->out);
      eof = r->eof;
      orch__envelope__free_unpacked (reply, NULL);
    }
  if (fflush (ctx->out) != 0)
    {
      fprintf (ctx->err, "error: cannot write the log: %s\n", strerror (errno));
      return CLI_EXIT_FAIL;
    }
  return CLI_EXIT_OK;
}
