/* Small helpers shared by the subcommands: flag values and spec loading. */
#define _GNU_SOURCE
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "orch_quantity.h"
#include "orch_util.h"

int
cli_parse_output (const char *s, bool allow_wide, cli_output_t *out)
{
  if (strcmp (s, "json") == 0)
    *out = CLI_OUT_JSON;
  else if (allow_wide && strcmp (s, "wide") == 0)
    *out = CLI_OUT_WIDE;
  else
    return -1;
  return 0;
}

int
cli_parse_duration (const char *s, int64_t *ms)
{
  int64_t v;

  if (orch_parse_duration_ms (s, &v) < 0 || v <= 0)
    return -1;
  *ms = v;
  return 0;
}

static bool
cli__hostport_valid (const char *s, size_t len)
{
  const char *colon = memrchr (s, ':', len);
  char *end;
  long port;

  if (colon == NULL || colon == s || colon == s + len - 1)
    return false;
  errno = 0;
  port = strtol (colon + 1, &end, 10);
  return errno == 0 && end == s + len && port >= 1 && port <= 65535;
}

/* HOST:PORT, or several separated by commas. */
bool
cli_server_valid (const char *s)
{
  for (;;)
    {
      const char *comma = strchr (s, ',');
      size_t len = comma != NULL ? (size_t) (comma - s) : strlen (s);
      if (!cli__hostport_valid (s, len))
        return false;
      if (comma == NULL)
        return true;
      s = comma + 1;
    }
}

int64_t
cli_now_ms (const cli_ctx_t *ctx)
{
  return ctx->now_ms != 0 ? ctx->now_ms : orch_now_wall_ms ();
}

int
cli_load_spec (cli_ctx_t *ctx, const char *path, char **text, size_t *len, orch_spec_t **specs,
               size_t *n_specs)
{
  const char *shown = strcmp (path, "-") == 0 ? "<stdin>" : path;
  cleanup_free char *buf = NULL;
  orch_errlist_t errs = { 0 };
  size_t n = 0;
  int r;

  r = orch_read_file (strcmp (path, "-") == 0 ? "/dev/stdin" : path, ORCH_SPEC_MAX_BYTES, &buf, &n);
  if (r == -EFBIG)
    {
      fprintf (ctx->err, "error: %s is larger than the %d KiB a spec may have\n", shown,
               ORCH_SPEC_MAX_BYTES / 1024);
      return CLI_EXIT_FAIL;
    }
  if (r < 0)
    {
      fprintf (ctx->err, "error: cannot read %s: %s\n", shown, strerror (-r));
      return CLI_EXIT_FAIL;
    }
  /* The scheduler validates too; checking here first means a bad file never
   * leaves this machine and every problem is shown at once. */
  if (orch_spec_parse_text (buf, n, specs, n_specs, &errs) < 0)
    {
      fprintf (ctx->err, "error: %s is not valid:\n", shown);
      for (size_t i = 0; i < errs.len; i++)
        fprintf (ctx->err, "  %s\n", errs.items[i]);
      if (errs.len == 0)
        fputs ("  (no reason given)\n", ctx->err);
      orch_errlist_free (&errs);
      return CLI_EXIT_FAIL;
    }
  orch_errlist_free (&errs);
  *text = TAKE_PTR (buf);
  *len = n;
  return CLI_EXIT_OK;
}
