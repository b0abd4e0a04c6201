/* One request to the scheduler on behalf of a subcommand: connect on first
 * use, match the reply, turn a refusal into "error: ..." on stderr. */
#define _GNU_SOURCE
#include "cli.h"

#include <string.h>

void
cli_print_error_reply (FILE *f, const Orch__Error *e)
{
  fprintf (f, "error: %s\n", e->message != NULL && *e->message ? e->message : "request refused");
  for (size_t i = 0; i < e->n_details; i++)
    fprintf (f, "  %s\n", e->details[i]);
}

static int
cli__connect (cli_ctx_t *ctx)
{
  orch_err_t err = { 0 };
  cli_client_t *c = NULL;

  /* --server is checked when parsed; ORCH_SERVER only when it is used, so
   * that a stale variable does not break `version` or `image import`. */
  if (!cli_server_valid (ctx->server))
    {
      fprintf (ctx->err, "error: ORCH_SERVER wants HOST:PORT[,HOST:PORT...], not \"%s\"\n", ctx->server);
      return CLI_EXIT_FAIL;
    }
  if (cli_client_open (ctx->server, ctx->timeout_ms, ctx->identity, ctx->join_token, &c, &err) < 0)
    {
      fprintf (ctx->err, "error: %s\n", err.msg);
      return CLI_EXIT_FAIL;
    }
  cli_client_transport (c, &ctx->own);
  ctx->transport = &ctx->own;
  return CLI_EXIT_OK;
}

/* Turns a reply into the caller's result: an Error is printed and fails. */
static int
cli__check_reply (cli_ctx_t *ctx, Orch__Envelope *r, Orch__Envelope__MsgCase want,
                  Orch__Envelope **reply)
{
  if (r->msg_case == ORCH__ENVELOPE__MSG_ERROR)
    {
      cli_print_error_reply (ctx->err, r->error);
      orch__envelope__free_unpacked (r, NULL);
      return CLI_EXIT_FAIL;
    }
  if (r->msg_case != want)
    {
      fprintf (ctx->err, "error: unexpected reply from the scheduler (message %d, wanted %d)\n",
               (int) r->msg_case, (int) want);
      orch__envelope__free_unpacked (r, NULL);
      return CLI_EXIT_FAIL;
    }
  *reply = r;
  return CLI_EXIT_OK;
}

int
cli_request (cli_ctx_t *ctx, Orch__Envelope *req, Orch__Envelope__MsgCase want,
             Orch__Envelope **reply)
{
  orch_err_t err = { 0 };
  Orch__Envelope *r = NULL;

  if (ctx->transport == NULL && cli__connect (ctx) != CLI_EXIT_OK)
    return CLI_EXIT_FAIL;
  req->request_id = ++ctx->next_request_id;
  if (ctx->transport->call (ctx->transport->data, req, &r, &err) < 0)
    {
      fprintf (ctx->err, "error: %s\n", err.msg);
      return CLI_EXIT_FAIL;
    }
  return cli__check_reply (ctx, r, want, reply);
}

int
cli_request_next (cli_ctx_t *ctx, Orch__Envelope__MsgCase want, Orch__Envelope **reply)
{
  orch_err_t err = { 0 };
  Orch__Envelope *r = NULL;

  if (ctx->transport == NULL || ctx->transport->next == NULL)
    {
      fprintf (ctx->err, "error: this connection cannot follow a stream of replies\n");
      return CLI_EXIT_FAIL;
    }
  if (ctx->transport->next (ctx->transport->data, &r, &err) < 0)
    {
      fprintf (ctx->err, "error: %s\n", err.msg);
      return CLI_EXIT_FAIL;
    }
  return cli__check_reply (ctx, r, want, reply);
}
