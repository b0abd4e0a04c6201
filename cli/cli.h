/* orchctl: the command table, the protocol client and the output formatting
 * shared by the subcommands (one file per subcommand, crun-style).
 *
 * Every subcommand returns an exit status (DESIGN.md §10): CLI_EXIT_OK,
 * CLI_EXIT_FAIL when the scheduler refused the request or anything failed at
 * run time (the reason is on stderr), CLI_EXIT_USAGE for a bad command line.
 * Output goes to ctx->out and ctx->err so that tests can capture it. */
#ifndef ORCH_CLI_H
#define ORCH_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <jansson.h>

#include "orch.pb-c.h"
#include "orch_err.h"
#include "orch_spec.h"

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

#define CLI_DEFAULT_SERVER "127.0.0.1:7700"
#define CLI_DEFAULT_TIMEOUT_MS 10000
#define CLI_DEFAULT_WAIT_TIMEOUT_MS 60000
#define CLI_WAIT_POLL_MS 200
#define CLI_DEFAULT_STATE_DIR "/var/lib/orch"

/* Largest log slice asked of the agent for `logs --tail N`; well under the
 * wire library's frame limit. */
#define CLI_LOGS_MAX_TAIL_BYTES (4u * 1024 * 1024)

/* How a request reaches the scheduler. The real one (cli_client.c) speaks
 * the wire protocol; tests install a fake that answers from a script. */
typedef struct cli_transport_s
{
  /* Sends req (whose request_id is set) and waits for the reply carrying the
   * same id. On success stores a newly unpacked envelope the caller frees
   * with orch__envelope__free_unpacked (an Error reply is a success here).
   * On failure returns -1 with a complete, user-facing message in err. */
  int (*call) (void *data, const Orch__Envelope *req, Orch__Envelope **reply, orch_err_t *err);
  /* For requests answered by a stream (logs --follow): waits, without a
   * timeout, for the next reply to the last request; may be NULL. */
  int (*next) (void *data, Orch__Envelope **reply, orch_err_t *err);
  /* Releases data; may be NULL. */
  void (*close) (void *data);
  void *data;
} cli_transport_t;

typedef enum
{
  CLI_OUT_TABLE = 0,
  CLI_OUT_WIDE,
  CLI_OUT_JSON,
} cli_output_t;

typedef struct cli_ctx_s
{
  FILE *out;
  FILE *err;
  const char *server;         /* "HOST:PORT" */
  int64_t timeout_ms;         /* per request */
  const char *join_token;     /* "" when none */
  char identity[320];         /* "user@host", sent in Hello */
  int64_t now_ms;             /* wall clock for AGE columns; 0 = read the clock */
  int64_t poll_ms;            /* apply --wait polling interval */
  cli_transport_t *transport; /* NULL until the first request connects */
  cli_transport_t own;        /* the real client, once connected */
  uint64_t next_request_id;
} cli_ctx_t;

typedef struct cli_command_s
{
  const char *name;
  const char *summary; /* one line, for `orchctl --help` */
  const char *usage;   /* synopsis after "orchctl " */
  const char *help;    /* the rest of `orchctl NAME --help` */
  /* argv[0] is the command's name; returns an exit status. */
  int (*run) (cli_ctx_t *ctx, int argc, char **argv);
} cli_command_t;

extern const cli_command_t cli_cmd_apply;
extern const cli_command_t cli_cmd_plan;
extern const cli_command_t cli_cmd_get;
extern const cli_command_t cli_cmd_describe;
extern const cli_command_t cli_cmd_delete;
extern const cli_command_t cli_cmd_logs;
extern const cli_command_t cli_cmd_drain;
extern const cli_command_t cli_cmd_image;
extern const cli_command_t cli_cmd_version;

/* ---- Dispatch (cli_dispatch.c) -------------------------------------------- */

/* Fills ctx with defaults: stdout/stderr, $ORCH_SERVER or the default
 * server, $ORCH_JOIN_TOKEN, the user@host identity. */
void cli_ctx_init (cli_ctx_t *ctx, FILE *out, FILE *err);
/* Closes the connection, if any. */
void cli_ctx_release (cli_ctx_t *ctx);

/* Parses the global options, then runs the command of that name from cmds.
 * Handles `--help` (global and per command) and `help [COMMAND]`. */
int cli_dispatch (cli_ctx_t *ctx, const cli_command_t *const *cmds, size_t n_cmds, int argc,
                  char **argv);

/* Prints "error: <message>", the command's synopsis and where to find more to
 * ctx->err; returns CLI_EXIT_USAGE. */
int cli_usage_error (cli_ctx_t *ctx, const cli_command_t *cmd, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));
/* The usage error for getopt_long's '?' or ':' result c. */
int cli_getopt_error (cli_ctx_t *ctx, const cli_command_t *cmd, int c, char **argv);

/* ---- Requests (cli_request.c) --------------------------------------------- */

/* Sends req (setting its request id), connecting first if needed. Returns 0
 * with *reply (free with orch__envelope__free_unpacked) when the reply is of
 * case want; otherwise prints the reason to ctx->err — the scheduler's Error
 * with each detail on its own line, or the connection problem — and returns
 * CLI_EXIT_FAIL. */
int cli_request (cli_ctx_t *ctx, Orch__Envelope *req, Orch__Envelope__MsgCase want,
                 Orch__Envelope **reply);
/* The next reply in a stream answering the last request (logs --follow). */
int cli_request_next (cli_ctx_t *ctx, Orch__Envelope__MsgCase want, Orch__Envelope **reply);

/* Prints "error: <message>" and each detail, indented, to f. */
void cli_print_error_reply (FILE *f, const Orch__Error *e);

/* ---- Protocol client (cli_client.c) --------------------------------------- */

typedef struct cli_client_s cli_client_t;

/* Connects to server ("HOST:PORT"), sends Hello (role "cli") and waits for
 * the HelloReply, each step bounded by timeout_ms. Returns 0 with a client
 * the caller closes, or -1 with a user-facing message in err ("cannot reach
 * the scheduler at ...", "no reply from scheduler at ... within 10s", the
 * scheduler's refusal). */
int cli_client_open (const char *server, int64_t timeout_ms, const char *identity,
                     const char *join_token, cli_client_t **out, orch_err_t *err);
/* One request, one reply (see cli_transport_t.call). */
int cli_client_call (cli_client_t *c, const Orch__Envelope *req, Orch__Envelope **reply,
                     orch_err_t *err);
void cli_client_close (cli_client_t *c);
/* The next reply to the last request, waiting as long as it takes. */
int cli_client_next (cli_client_t *c, Orch__Envelope **reply, orch_err_t *err);

/* A transport backed by an open client; takes ownership of c. */
void cli_client_transport (cli_client_t *c, cli_transport_t *out);

/* Deep copy of an envelope (pack + unpack), for replies that must outlive the
 * wire library's callback. Free with orch__envelope__free_unpacked. */
Orch__Envelope *cli_envelope_dup (const Orch__Envelope *env);

/* ---- Shared helpers (cli_util.c) ------------------------------------------ */

/* Parses "-o" values: "json" always, "wide" only when allow_wide. */
int cli_parse_output (const char *s, bool allow_wide, cli_output_t *out);
/* Parses a duration flag ("10s", "500ms", "2m"); must be > 0. */
int cli_parse_duration (const char *s, int64_t *ms);
/* True if s is "HOST:PORT" with a port in 1..65535. */
bool cli_server_valid (const char *s);

/* Reads and validates a spec file (path "-" is stdin) with the same parser
 * the scheduler uses. On success returns 0 with the text and the parsed
 * specs (free both). Otherwise prints every problem to ctx->err — "error:
 * FILE is not valid:" then one indented line per error — and returns
 * CLI_EXIT_FAIL. */
int cli_load_spec (cli_ctx_t *ctx, const char *path, char **text, size_t *len, orch_spec_t **specs,
                   size_t *n_specs);

/* The wall clock for AGE columns (ctx->now_ms when a test set it). */
int64_t cli_now_ms (const cli_ctx_t *ctx);

/* ---- Output (cli_format.c) ------------------------------------------------ */

/* A table with aligned columns: widths are computed from the cells, columns
 * are separated by three spaces, the last column is not padded. */
typedef struct cli_table_s
{
  size_t ncols;
  size_t nrows; /* including the header */
  size_t cap;
  char **cells; /* nrows * ncols, owned */
} cli_table_t;

void cli_table_init (cli_table_t *t, size_t ncols, const char *const *headers);
/* Adds a row of exactly t->ncols cells (copied; NULL prints as "-"). */
void cli_table_add (cli_table_t *t, const char *const *cells);
void cli_table_print (const cli_table_t *t, FILE *out, const char *indent);
void cli_table_free (cli_table_t *t);

/* "45s", "5m", "3h", "2d"; "-" for a zero timestamp. */
const char *cli_fmt_age (int64_t now_ms, int64_t then_ms, char *buf, size_t len);
/* CPU time: "0.25s", "1m05s", "2h03m". */
const char *cli_fmt_cpu_time (int64_t usec, char *buf, size_t len);
/* "10s" for whole seconds, else "1500ms". */
const char *cli_fmt_duration (int64_t ms, char *buf, size_t len);

/* JSON documents mirror the proto fields with snake_case keys. Each returns
 * a new reference. */
json_t *cli_json_service (const Orch__ServiceInfo *s);
json_t *cli_json_alloc (const Orch__AllocInfo *a);
json_t *cli_json_node (const Orch__NodeInfo *n);
json_t *cli_json_apply_reply (const Orch__ApplyReply *r);
/* Prints doc with two-space indentation and sorted keys, then "\n"; steals
 * the reference. Returns 0 or -1. */
int cli_json_print (FILE *out, json_t *doc);

/* `get` output for one kind; rows are sorted (services by name, allocs by
 * service then id, nodes by id) so the output is stable. */
void cli_print_services (FILE *out, const Orch__GetReply *r, cli_output_t o);
void cli_print_allocs (FILE *out, const Orch__GetReply *r, cli_output_t o, int64_t now_ms);
void cli_print_nodes (FILE *out, const Orch__GetReply *r, cli_output_t o, int64_t now_ms);

/* `describe service`: the service, its spec, its allocations, what is pending. */
void cli_print_describe (FILE *out, const Orch__ServiceInfo *s, const Orch__GetReply *r,
                         cli_output_t o, int64_t now_ms);

/* `apply`: each service change, then its placements and its pending replicas
 * grouped by reason. */
void cli_print_apply (FILE *out, const Orch__ApplyReply *r);
/* `plan`: the changes that would be made and the placements as a table. */
void cli_print_plan (FILE *out, const Orch__ApplyReply *r, cli_output_t o);

/* Offset in data of the start of its last n lines (a trailing newline does
 * not start an empty line). */
size_t cli_tail_lines (const char *data, size_t len, uint64_t n);

#endif
