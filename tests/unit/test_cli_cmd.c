/* orchctl's commands end to end, with a scripted scheduler in place of the
 * network: command lines -> exit status, messages, the requests sent and
 * the output printed. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "orch_test.h"

#include "cli.h"
#include "orch_util.h"

/* ---- The scripted scheduler ------------------------------------------------- */

#define FAKE_MAX 32

typedef struct fake_s
{
  Orch__Envelope *script[FAKE_MAX]; /* replies in order; the last one repeats */
  size_t n_script;
  size_t next;
  Orch__Envelope *reqs[256]; /* every request received, copied */
  size_t n_reqs;
  const char *fail; /* when set, every call fails with this message */
} fake_t;

static int
fake_call (void *data, const Orch__Envelope *req, Orch__Envelope **reply, orch_err_t *err)
{
  fake_t *f = data;
  Orch__Envelope *r;

  assert_true (f->n_reqs < ORCH_ARRAY_LEN (f->reqs));
  f->reqs[f->n_reqs++] = cli_envelope_dup (req);
  if (f->fail != NULL)
    return orch_err_set (err, 0, "%s", f->fail);
  assert_true (f->n_script > 0);
  r = cli_envelope_dup (f->script[f->next < f->n_script ? f->next : f->n_script - 1]);
  if (f->next < f->n_script)
    f->next++;
  r->request_id = req->request_id;
  *reply = r;
  return 0;
}

static void
fake_push (fake_t *f, const Orch__Envelope *env)
{
  assert_true (f->n_script < FAKE_MAX);
  f->script[f->n_script++] = cli_envelope_dup (env);
}

static void
fake_free (fake_t *f)
{
  for (size_t i = 0; i < f->n_script; i++)
    orch__envelope__free_unpacked (f->script[i], NULL);
  for (size_t i = 0; i < f->n_reqs; i++)
    orch__envelope__free_unpacked (f->reqs[i], NULL);
  memset (f, 0, sizeof (*f));
}

static const cli_command_t *const commands[] = {
  &cli_cmd_apply, &cli_cmd_plan,  &cli_cmd_get,   &cli_cmd_describe, &cli_cmd_delete,
  &cli_cmd_logs,  &cli_cmd_drain, &cli_cmd_image, &cli_cmd_version,
};

typedef struct run_s
{
  int rc;
  char *out;
  char *err;
} run_t;

/* Runs one command line (words split on spaces) against f, or against the
 * real client when f is NULL. */
static run_t
run (fake_t *f, const char *cmdline)
{
  cleanup_free char *copy = xstrdup (cmdline);
  char *argv[64];
  int argc = 0;
  size_t olen = 0, elen = 0;
  run_t r = { 0 };
  cli_transport_t t = { .call = fake_call, .next = NULL, .close = NULL, .data = f };
  cli_ctx_t ctx;
  FILE *out, *err;

  for (char *save = NULL, *w = strtok_r (copy, " ", &save); w != NULL;
       w = strtok_r (NULL, " ", &save))
    {
      assert_true (argc < 63);
      argv[argc++] = w;
    }
  argv[argc] = NULL;
  out = open_memstream (&r.out, &olen);
  err = open_memstream (&r.err, &elen);
  cli_ctx_init (&ctx, out, err);
  if (f != NULL)
    ctx.transport = &t;
  ctx.now_ms = 1700000000000LL;
  ctx.poll_ms = 1;
  r.rc = cli_dispatch (&ctx, commands, ORCH_ARRAY_LEN (commands), argc, argv);
  cli_ctx_release (&ctx);
  fclose (out);
  fclose (err);
  return r;
}

static void
run_free (run_t *r)
{
  free (r->out);
  free (r->err);
}

static int
setup_env (void **state)
{
  unsetenv ("ORCH_SERVER");
  unsetenv ("ORCH_JOIN_TOKEN");
  unsetenv ("ORCH_STATE_DIR");
  return 0;
}

/* A file in a fresh temporary directory; the caller frees the path. */
static char *
write_temp (const char *name, const char *text)
{
  char dir[] = "/tmp/orch-cli-test-XXXXXX";
  char *path;

  assert_non_null (mkdtemp (dir));
  path = xasprintf ("%s/%s", dir, name);
  assert_int_equal (orch_write_file_atomic (path, text, strlen (text), 0644), 0);
  return path;
}

static void
remove_temp (char *path)
{
  char *slash = strrchr (path, '/');

  unlink (path);
  *slash = '\0';
  rmdir (path);
  free (path);
}

/* ---- Replies ---------------------------------------------------------------- */

static void
push_empty_reply (fake_t *f, Orch__Envelope__MsgCase c)
{
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  Orch__ApplyReply ar = ORCH__APPLY_REPLY__INIT;
  Orch__GetReply gr = ORCH__GET_REPLY__INIT;
  Orch__DeleteReply dr = ORCH__DELETE_REPLY__INIT;
  Orch__DrainReply nr = ORCH__DRAIN_REPLY__INIT;

  env.msg_case = c;
  switch (c)
    {
    case ORCH__ENVELOPE__MSG_APPLY_REPLY:
      env.apply_reply = &ar;
      break;
    case ORCH__ENVELOPE__MSG_GET_REPLY:
      env.get_reply = &gr;
      break;
    case ORCH__ENVELOPE__MSG_DELETE_REPLY:
      dr.stopped = 2;
      env.delete_reply = &dr;
      break;
    case ORCH__ENVELOPE__MSG_DRAIN_REPLY:
      nr.moved = 1;
      env.drain_reply = &nr;
      break;
    default:
      fail ();
    }
  fake_push (f, &env);
}

/* A GetReply with one allocation per state in states ("" = none), of spec
 * version 1, plus the service's pending reason. */
static void
push_allocs (fake_t *f, const char *const *states, size_t n, const char *pending_reason)
{
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  Orch__GetReply gr = ORCH__GET_REPLY__INIT;
  Orch__AllocInfo ai[4];
  Orch__AllocStatus st[4];
  Orch__AllocInfo *list[4];
  Orch__ServiceInfo si = ORCH__SERVICE_INFO__INIT;
  Orch__ServiceInfo *slist[1] = { &si };
  static const char *const ids[]
      = { "web-aaaa0001", "web-aaaa0002", "web-aaaa0003", "web-aaaa0004" };

  assert_true (n <= 4);
  for (size_t i = 0; i < n; i++)
    {
      Orch__AllocInfo ainit = ORCH__ALLOC_INFO__INIT;
      Orch__AllocStatus sinit = ORCH__ALLOC_STATUS__INIT;
      ai[i] = ainit;
      st[i] = sinit;
      ai[i].alloc_id = (char *) ids[i];
      ai[i].service = "web";
      ai[i].node = "n1";
      ai[i].desired = "run";
      ai[i].spec_version = 1;
      ai[i].status = &st[i];
      st[i].state = (char *) states[i];
      if (strcmp (states[i], "failed") == 0)
        st[i].reason = "image \"nope\" not found on n1";
      list[i] = &ai[i];
    }
  gr.n_allocs = n;
  gr.allocs = list;
  si.name = "web";
  si.replicas = 2;
  si.pending = pending_reason != NULL ? 1 : 0;
  si.pending_reason = (char *) (pending_reason != NULL ? pending_reason : "");
  gr.n_services = 1;
  gr.services = slist;
  env.msg_case = ORCH__ENVELOPE__MSG_GET_REPLY;
  env.get_reply = &gr;
  fake_push (f, &env);
}

static void
push_apply_reply (fake_t *f)
{
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  Orch__ApplyReply ar = ORCH__APPLY_REPLY__INIT;
  Orch__ServiceChange ch = ORCH__SERVICE_CHANGE__INIT;
  Orch__ServiceChange *chl[1] = { &ch };
  Orch__Placement p1 = ORCH__PLACEMENT__INIT, p2 = ORCH__PLACEMENT__INIT;
  Orch__Placement *pl[2] = { &p1, &p2 };

  ch.name = "web";
  ch.action = "created";
  ch.version = 1;
  p1.service = "web";
  p1.alloc_id = "web-aaaa0001";
  p1.node = "n1";
  p1.isolation = "container";
  p1.reason = "best fit";
  p2.service = "web";
  p2.isolation = "container";
  p2.reason = "0/1 nodes: 1 insufficient memory";
  ar.n_changes = 1;
  ar.changes = chl;
  ar.n_placements = 2;
  ar.placements = pl;
  env.msg_case = ORCH__ENVELOPE__MSG_APPLY_REPLY;
  env.apply_reply = &ar;
  fake_push (f, &env);
}

static const char good_spec[] = "{\"name\": \"web\", \"replicas\": 2, \"image\": \"busybox\",\n"
                                " \"resources\": {\"cpu\": \"100m\", \"memory\": \"16Mi\"}}\n";

/* ---- Argument parsing ------------------------------------------------------- */

static void
test_usage_errors (void **state)
{
  /* Every bad command line exits 2 with a reason and a hint, and sends
   * nothing to the scheduler. */
  static const struct
  {
    const char *cmdline;
    const char *msg;
  } cases[] = {
    { "orchctl", "error: no command given\n" },
    { "orchctl frobnicate", "error: unknown command 'frobnicate'\n" },
    { "orchctl --bogus get nodes", "error: unknown option '--bogus'\n" },
    { "orchctl --server", "error: option '--server' needs a value\n" },
    { "orchctl --server nope get nodes",
      "error: --server wants HOST:PORT[,HOST:PORT...], not \"nope\"\n" },
    { "orchctl --server a:1,,b:2 get nodes", "error: --server wants HOST:PORT" },
    { "orchctl --server a:1,b get nodes", "error: --server wants HOST:PORT" },
    { "orchctl --server host:0 get nodes", "error: --server wants HOST:PORT" },
    { "orchctl --timeout 0 get nodes", "error: --timeout wants a duration" },
    { "orchctl --timeout soon get nodes", "error: --timeout wants a duration" },
    { "orchctl get", "error: get needs a kind: services, allocs or nodes\n" },
    { "orchctl get pods", "error: unknown kind 'pods'; use services, allocs or nodes\n" },
    { "orchctl get nodes -o yaml", "error: -o wants json or wide, not \"yaml\"\n" },
    { "orchctl get nodes -o", "error: option '-o' needs a value\n" },
    { "orchctl get nodes a b", "error: unexpected argument 'b'\n" },
    { "orchctl get nodes --wide", "error: unknown option '--wide'\n" },
    { "orchctl get nodes -x", "error: unknown option '-x'\n" },
    { "orchctl apply", "error: apply needs -f FILE\n" },
    { "orchctl apply -f", "error: option '-f' needs a value\n" },
    { "orchctl apply -f x.json extra", "error: unexpected argument 'extra'\n" },
    { "orchctl apply -f x.json --wait-timeout soon", "error: --wait-timeout wants a duration" },
    { "orchctl plan -f x.json -o wide", "error: -o wants json, not \"wide\"\n" },
    { "orchctl plan", "error: plan needs -f FILE\n" },
    { "orchctl describe", "error: describe needs a kind and a name\n" },
    { "orchctl describe node n1", "error: cannot describe 'node'; only 'service'\n" },
    { "orchctl describe service", "error: describe service needs a NAME\n" },
    { "orchctl delete service", "error: delete service needs a NAME\n" },
    { "orchctl delete node n1", "error: cannot delete 'node'; only 'service'\n" },
    { "orchctl delete service web --force", "error: unknown option '--force'\n" },
    { "orchctl logs", "error: logs needs an ALLOC\n" },
    { "orchctl logs a --tail x", "error: --tail wants a number of lines, not \"x\"\n" },
    { "orchctl logs a --tail -1", "error: --tail wants a number of lines, not \"-1\"\n" },
    { "orchctl logs a b", "error: unexpected argument 'b'\n" },
    { "orchctl drain", "error: drain needs a NODE\n" },
    { "orchctl image", "error: image needs a subcommand: import or pull\n" },
    { "orchctl image pull", "error: image pull needs a REF\n" },
    { "orchctl image export a b", "error: unknown image subcommand 'export'; use import or pull\n" },
    { "orchctl image import a", "error: image import needs NAME and PATH\n" },
    { "orchctl version extra", "error: unexpected argument 'extra'\n" },
    { "orchctl help nope", "error: unknown command 'nope'\n" },
    { "orchctl get nodes --server 1.2.3.4:5",
      "error: unknown option '--server' (global options go before the command)\n" },
  };

  for (size_t i = 0; i < ORCH_ARRAY_LEN (cases); i++)
    {
      fake_t f = { 0 };
      run_t r = run (&f, cases[i].cmdline);

      if (r.rc != CLI_EXIT_USAGE || strncmp (r.err, cases[i].msg, strlen (cases[i].msg)) != 0)
        fail_msg ("%s: exit %d, stderr:\n%s", cases[i].cmdline, r.rc, r.err);
      /* A short hint follows the reason. */
      assert_non_null (strstr (r.err, "--help"));
      assert_string_equal (r.out, "");
      assert_int_equal (f.n_reqs, 0);
      run_free (&r);
      fake_free (&f);
    }
}

static void
test_command_usage_hint_names_the_command (void **state)
{
  fake_t f = { 0 };
  run_t r = run (&f, "orchctl get");

  assert_int_equal (r.rc, CLI_EXIT_USAGE);
  assert_string_equal (r.err, "error: get needs a kind: services, allocs or nodes\n"
                              "usage: orchctl get services|allocs|nodes [NAME] [-o json|wide]\n"
                              "Run 'orchctl get --help' for more.\n");
  run_free (&r);
}

static void
test_help (void **state)
{
  static const struct
  {
    const char *cmdline;
    const char *want; /* somewhere in stdout */
  } cases[] = {
    { "orchctl --help", "orchctl [--server HOST:PORT] [--timeout DUR] COMMAND [ARGS...]" },
    { "orchctl -h", "Exit status:" },
    { "orchctl help", "ORCH_JOIN_TOKEN" },
    { "orchctl help get", "orchctl get - list services, allocations or nodes" },
    { "orchctl get --help", "  orchctl [GLOBAL OPTIONS] get services|allocs|nodes" },
    { "orchctl get nodes --help", "-o, --output json|wide" },
    { "orchctl apply --help", "--wait-timeout DUR give up waiting after DUR (default: 60s)" },
    { "orchctl logs -h", "-n, --tail N" },
    { "orchctl image --help", "$ORCH_STATE_DIR, else /var/lib/orch)" },
    { "orchctl --server 1.2.3.4:1 drain --help", "Examples:\n  orchctl drain n2" },
  };

  for (size_t i = 0; i < ORCH_ARRAY_LEN (cases); i++)
    {
      fake_t f = { 0 };
      run_t r = run (&f, cases[i].cmdline);

      if (r.rc != CLI_EXIT_OK || strstr (r.out, cases[i].want) == NULL)
        fail_msg ("%s: exit %d, stdout:\n%s", cases[i].cmdline, r.rc, r.out);
      assert_string_equal (r.err, "");
      assert_int_equal (f.n_reqs, 0);
      run_free (&r);
    }
}

static void
test_every_command_has_full_help (void **state)
{
  /* Man-page quality: each page has a synopsis, examples and the exit
   * status and environment (from the global part). */
  for (size_t i = 0; i < ORCH_ARRAY_LEN (commands); i++)
    {
      fake_t f = { 0 };
      cleanup_free char *line = xasprintf ("orchctl %s --help", commands[i]->name);
      run_t r = run (&f, line);

      assert_int_equal (r.rc, CLI_EXIT_OK);
      assert_non_null (strstr (r.out, "Synopsis:"));
      assert_non_null (strstr (r.out, "Examples:"));
      assert_non_null (strstr (r.out, "Exit status:"));
      assert_non_null (strstr (r.out, "Environment:"));
      run_free (&r);
    }
}

static void
test_version (void **state)
{
  fake_t f = { 0 };
  run_t r = run (&f, "orchctl version");

  assert_int_equal (r.rc, CLI_EXIT_OK);
  assert_string_equal (r.out, "orchctl " ORCH_VERSION_FOR_TEST " (protocol 1)\n");
  assert_int_equal (f.n_reqs, 0);
  run_free (&r);
}

static void
test_bad_orch_server_only_matters_when_used (void **state)
{
  run_t r;

  setenv ("ORCH_SERVER", "garbage", 1);
  r = run (NULL, "orchctl version");
  assert_int_equal (r.rc, CLI_EXIT_OK);
  run_free (&r);

  /* Refused before any connection is tried. */
  r = run (NULL, "orchctl get nodes");
  assert_int_equal (r.rc, CLI_EXIT_FAIL);
  assert_string_equal (r.err, "error: ORCH_SERVER wants HOST:PORT[,HOST:PORT...], not \"garbage\"\n");
  run_free (&r);
  unsetenv ("ORCH_SERVER");
}

/* ---- Requests and replies --------------------------------------------------- */

static void
test_get_sends_kind_and_name (void **state)
{
  static const struct
  {
    const char *cmdline;
    const char *kind, *name;
  } cases[] = {
    { "orchctl get services", "services", "" },
    { "orchctl get svc web", "services", "web" },
    { "orchctl get allocs web -o wide", "allocs", "web" },
    { "orchctl get -o json alloc", "allocs", "" },
    { "orchctl --server 10.1.2.3:7700 --timeout 3s get nodes", "nodes", "" },
    { "orchctl describe service web", "service", "web" },
  };

  for (size_t i = 0; i < ORCH_ARRAY_LEN (cases); i++)
    {
      fake_t f = { 0 };
      run_t r;

      push_empty_reply (&f, ORCH__ENVELOPE__MSG_GET_REPLY);
      r = run (&f, cases[i].cmdline);
      assert_int_equal (f.n_reqs, 1);
      assert_int_equal (f.reqs[0]->msg_case, ORCH__ENVELOPE__MSG_GET_REQUEST);
      assert_string_equal (f.reqs[0]->get_request->kind, cases[i].kind);
      assert_string_equal (f.reqs[0]->get_request->name, cases[i].name);
      assert_true (f.reqs[0]->request_id != 0);
      run_free (&r);
      fake_free (&f);
    }
}

static void
test_get_empty (void **state)
{
  fake_t f = { 0 };
  run_t r;

  push_empty_reply (&f, ORCH__ENVELOPE__MSG_GET_REPLY);
  r = run (&f, "orchctl get nodes");
  assert_int_equal (r.rc, CLI_EXIT_OK);
  assert_string_equal (r.out, "");
  assert_string_equal (r.err, "no nodes found\n");
  run_free (&r);

  /* JSON is always one document, empty or not. */
  r = run (&f, "orchctl get allocs -o json");
  assert_int_equal (r.rc, CLI_EXIT_OK);
  assert_string_equal (r.out, "{\n  \"allocs\": []\n}\n");
  run_free (&r);

  /* A named service that does not exist is an error. */
  r = run (&f, "orchctl get services nope");
  assert_int_equal (r.rc, CLI_EXIT_FAIL);
  assert_string_equal (r.err, "error: service \"nope\" not found\n");
  run_free (&r);

  r = run (&f, "orchctl describe service nope");
  assert_int_equal (r.rc, CLI_EXIT_FAIL);
  assert_string_equal (r.err, "error: service \"nope\" not found\n");
  run_free (&r);
  fake_free (&f);
}

static void
test_delete_and_drain (void **state)
{
  fake_t f = { 0 };
  run_t r;

  push_empty_reply (&f, ORCH__ENVELOPE__MSG_DELETE_REPLY);
  r = run (&f, "orchctl delete service web");
  assert_int_equal (r.rc, CLI_EXIT_OK);
  assert_string_equal (r.out, "service/web deleted (2 allocations stopping)\n");
  assert_string_equal (f.reqs[0]->delete_request->kind, "service");
  assert_string_equal (f.reqs[0]->delete_request->name, "web");
  run_free (&r);
  fake_free (&f);

  push_empty_reply (&f, ORCH__ENVELOPE__MSG_DRAIN_REPLY);
  r = run (&f, "orchctl drain n1");
  assert_int_equal (r.rc, CLI_EXIT_OK);
  assert_string_equal (r.out, "node/n1 draining (1 allocation moved)\n");
  assert_string_equal (f.reqs[0]->drain_request->node_id, "n1");
  run_free (&r);
  fake_free (&f);
}

static void
test_refused_request_prints_error_and_details (void **state)
{
  fake_t f = { 0 };
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  Orch__Error e = ORCH__ERROR__INIT;
  char *details[] = { "services[0].image: image \"nope\" is not on any node",
                      "services[0].replicas: more than 10 on one node" };
  run_t r;

  e.code = 1;
  e.message = "apply refused";
  e.n_details = 2;
  e.details = details;
  env.msg_case = ORCH__ENVELOPE__MSG_ERROR;
  env.error = &e;
  fake_push (&f, &env);
  r = run (&f, "orchctl delete service web");
  assert_int_equal (r.rc, CLI_EXIT_FAIL);
  assert_string_equal (r.out, "");
  assert_string_equal (r.err, "error: apply refused\n"
                              "  services[0].image: image \"nope\" is not on any node\n"
                              "  services[0].replicas: more than 10 on one node\n");
  run_free (&r);
  fake_free (&f);
}

static void
test_unreachable_scheduler (void **state)
{
  fake_t f = { 0 };
  run_t r;

  f.fail = "cannot reach the scheduler at 127.0.0.1:7700: connection refused (is "
           "orch-scheduler running? set --server or ORCH_SERVER)";
  r = run (&f, "orchctl get nodes");
  assert_int_equal (r.rc, CLI_EXIT_FAIL);
  assert_string_equal (r.err, "error: cannot reach the scheduler at 127.0.0.1:7700: connection "
                              "refused (is orch-scheduler running? set --server or ORCH_SERVER)\n");
  run_free (&r);
  fake_free (&f);
}

static void
test_unexpected_reply_kind (void **state)
{
  fake_t f = { 0 };
  run_t r;

  push_empty_reply (&f, ORCH__ENVELOPE__MSG_DRAIN_REPLY);
  r = run (&f, "orchctl get nodes");
  assert_int_equal (r.rc, CLI_EXIT_FAIL);
  assert_non_null (strstr (r.err, "error: unexpected reply from the scheduler"));
  run_free (&r);
  fake_free (&f);
}

/* ---- apply and plan --------------------------------------------------------- */

static void
test_apply_invalid_spec_sends_nothing (void **state)
{
  const char *spec = ORCH_FIXTURES "/spec/bad-many.json";
  cleanup_free char *errs = NULL;
  cleanup_free char *cmd = xasprintf ("orchctl apply -f %s", spec);
  cleanup_free char *want = NULL;
  fake_t f = { 0 };
  size_t len = 0;
  run_t r;

  /* stderr is a heading, then every error of the spec library (the same
   * lines as the spec tests expect), each indented. */
  assert_int_equal (orch_read_file (ORCH_FIXTURES "/spec/bad-many.err", 1 << 20, &errs, &len), 0);
  want = xasprintf ("error: %s is not valid:\n", spec);
  for (char *line = errs, *nl; line != NULL && *line; line = nl != NULL ? nl + 1 : NULL)
    {
      char *w;
      nl = strchr (line, '\n');
      w = xasprintf ("%s  %.*s\n", want, nl != NULL ? (int) (nl - line) : (int) strlen (line),
                     line);
      free (want);
      want = w;
    }
  r = run (&f, cmd);
  assert_int_equal (r.rc, CLI_EXIT_FAIL);
  assert_string_equal (r.err, want);
  assert_string_equal (r.out, "");
  assert_int_equal (f.n_reqs, 0);
  run_free (&r);

  /* plan validates the same way. */
  free (cmd);
  cmd = xasprintf ("orchctl plan -f %s", spec);
  r = run (&f, cmd);
  assert_int_equal (r.rc, CLI_EXIT_FAIL);
  assert_string_equal (r.err, want);
  assert_int_equal (f.n_reqs, 0);
  run_free (&r);
}

static void
test_apply_unreadable_file (void **state)
{
  fake_t f = { 0 };
  run_t r = run (&f, "orchctl apply -f /nonexistent/web.json");

  assert_int_equal (r.rc, CLI_EXIT_FAIL);
  assert_string_equal (r.err, "error: cannot read /nonexistent/web.json: No such file or "
                              "directory\n");
  assert_int_equal (f.n_reqs, 0);
  run_free (&r);
}

static void
test_apply_too_large (void **state)
{
  cleanup_free char *big = xmalloc (ORCH_SPEC_MAX_BYTES + 2);
  char *path;
  cleanup_free char *cmd = NULL;
  fake_t f = { 0 };
  run_t r;

  memset (big, ' ', ORCH_SPEC_MAX_BYTES + 1);
  big[ORCH_SPEC_MAX_BYTES + 1] = '\0';
  path = write_temp ("big.json", big);
  cmd = xasprintf ("orchctl apply -f %s", path);
  r = run (&f, cmd);
  assert_int_equal (r.rc, CLI_EXIT_FAIL);
  assert_non_null (strstr (r.err, "is larger than the 1024 KiB a spec may have"));
  assert_int_equal (f.n_reqs, 0);
  run_free (&r);
  remove_temp (path);
}

static void
test_apply_sends_file_and_prints_placements (void **state)
{
  char *path = write_temp ("web.json", good_spec);
  cleanup_free char *cmd = xasprintf ("orchctl apply -f %s", path);
  fake_t f = { 0 };
  run_t r;

  push_apply_reply (&f);
  r = run (&f, cmd);
  assert_int_equal (r.rc, CLI_EXIT_OK);
  assert_int_equal (f.n_reqs, 1);
  assert_int_equal (f.reqs[0]->msg_case, ORCH__ENVELOPE__MSG_APPLY_REQUEST);
  assert_string_equal (f.reqs[0]->apply_request->spec_json, good_spec);
  assert_string_equal (f.reqs[0]->apply_request->source, path);
  assert_false (f.reqs[0]->apply_request->dry_run);
  assert_string_equal (r.out, "service/web created (version 1)\n"
                              "  web-aaaa0001 -> n1 (container): best fit\n"
                              "  web: 1 replica pending: 0/1 nodes: 1 insufficient memory\n");
  assert_string_equal (r.err, "");
  run_free (&r);
  fake_free (&f);
  remove_temp (path);
}

static void
test_plan_is_a_dry_run (void **state)
{
  char *path = write_temp ("web.json", good_spec);
  cleanup_free char *cmd = xasprintf ("orchctl plan -f %s", path);
  fake_t f = { 0 };
  run_t r;

  push_apply_reply (&f);
  r = run (&f, cmd);
  assert_int_equal (r.rc, CLI_EXIT_OK);
  assert_true (f.reqs[0]->apply_request->dry_run);
  assert_string_equal (
      r.out, "service/web would be created (version 1)\n"
             "\n"
             "SERVICE   ALLOC          NODE   ISOLATION   REASON\n"
             "web       web-aaaa0001   n1     container   best fit\n"
             "web       (1 pending)    -      -           0/1 nodes: 1 insufficient memory\n");
  run_free (&r);
  fake_free (&f);
  remove_temp (path);
}

static void
test_apply_wait_until_running (void **state)
{
  static const char *const s0[] = { "pending" };
  static const char *const s1[] = { "running", "starting" };
  static const char *const s2[] = { "running", "starting" };
  static const char *const s3[] = { "running", "running" };
  char *path = write_temp ("web.json", good_spec);
  cleanup_free char *cmd = xasprintf ("orchctl apply -f %s --wait", path);
  fake_t f = { 0 };
  run_t r;

  push_apply_reply (&f);
  push_allocs (&f, s0, 1, NULL);
  push_allocs (&f, s1, 2, NULL);
  push_allocs (&f, s2, 2, NULL);
  push_allocs (&f, s3, 2, NULL);
  r = run (&f, cmd);
  assert_int_equal (r.rc, CLI_EXIT_OK);
  /* One progress line per change, not per poll. */
  assert_string_equal (r.out, "service/web created (version 1)\n"
                              "  web-aaaa0001 -> n1 (container): best fit\n"
                              "  web: 1 replica pending: 0/1 nodes: 1 insufficient memory\n"
                              "web: 0/2 running\n"
                              "web: 1/2 running\n"
                              "web: 2/2 running\n");
  assert_int_equal (f.n_reqs, 5);
  for (size_t i = 1; i < f.n_reqs; i++)
    {
      assert_string_equal (f.reqs[i]->get_request->kind, "allocs");
      assert_string_equal (f.reqs[i]->get_request->name, "web");
    }
  run_free (&r);
  fake_free (&f);
  remove_temp (path);
}

static void
test_apply_wait_fails_on_failed_alloc (void **state)
{
  static const char *const s0[] = { "running", "failed" };
  char *path = write_temp ("web.json", good_spec);
  cleanup_free char *cmd = xasprintf ("orchctl apply -f %s --wait", path);
  fake_t f = { 0 };
  run_t r;

  push_apply_reply (&f);
  push_allocs (&f, s0, 2, NULL);
  r = run (&f, cmd);
  assert_int_equal (r.rc, CLI_EXIT_FAIL);
  assert_string_equal (r.err, "error: web-aaaa0002 failed on n1: image \"nope\" not found on n1\n"
                              "Run 'orchctl logs web-aaaa0002' for its output.\n");
  run_free (&r);
  fake_free (&f);
  remove_temp (path);
}

static void
test_apply_wait_timeout_says_what_is_pending (void **state)
{
  static const char *const s0[] = { "starting" };
  char *path = write_temp ("web.json", good_spec);
  cleanup_free char *cmd = xasprintf ("orchctl apply -f %s --wait --wait-timeout 30ms", path);
  fake_t f = { 0 };
  run_t r;

  push_apply_reply (&f);
  push_allocs (&f, s0, 1, "0/1 nodes: 1 insufficient memory");
  r = run (&f, cmd);
  assert_int_equal (r.rc, CLI_EXIT_FAIL);
  assert_string_equal (r.err, "error: not all replicas running after 30ms:\n"
                              "  web: 0/2 running; waiting for web-aaaa0001 (starting), 1 "
                              "replica not placed\n"
                              "  web: 1 pending: 0/1 nodes: 1 insufficient memory\n");
  assert_true (f.n_reqs >= 3);
  run_free (&r);
  fake_free (&f);
  remove_temp (path);
}

/* ---- logs ------------------------------------------------------------------- */

static void
push_logs (fake_t *f, const char *data, bool truncated)
{
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  Orch__LogsReply lr = ORCH__LOGS_REPLY__INIT;

  lr.data.data = (uint8_t *) data;
  lr.data.len = strlen (data);
  lr.truncated = truncated;
  env.msg_case = ORCH__ENVELOPE__MSG_LOGS_REPLY;
  env.logs_reply = &lr;
  fake_push (f, &env);
}

static void
test_logs_tail (void **state)
{
  fake_t f = { 0 };
  run_t r;

  push_logs (&f, "one\ntwo\nthree\nfour\n", true);
  r = run (&f, "orchctl logs web-aaaa0001 --tail 2");
  assert_int_equal (r.rc, CLI_EXIT_OK);
  assert_string_equal (r.out, "three\nfour\n");
  assert_string_equal (r.err, "");
  assert_string_equal (f.reqs[0]->logs_request->alloc_id, "web-aaaa0001");
  /* A generous byte count, so that N lines arrive whole. */
  assert_int_equal (f.reqs[0]->logs_request->tail_bytes, 64 * 1024);
  run_free (&r);

  r = run (&f, "orchctl logs web-aaaa0001 -n 100000");
  assert_int_equal (f.reqs[1]->logs_request->tail_bytes, CLI_LOGS_MAX_TAIL_BYTES);
  assert_string_equal (r.out, "one\ntwo\nthree\nfour\n");
  run_free (&r);

  r = run (&f, "orchctl logs web-aaaa0001 --tail 0");
  assert_string_equal (r.out, "");
  run_free (&r);

  /* Without --tail: everything, and a note when the log was cut. */
  r = run (&f, "orchctl logs web-aaaa0001");
  assert_int_equal (r.rc, CLI_EXIT_OK);
  assert_int_equal (f.reqs[3]->logs_request->tail_bytes, 0);
  assert_string_equal (r.out, "one\ntwo\nthree\nfour\n");
  assert_string_equal (r.err, "note: the log is longer; this is its last 19 bytes\n");
  run_free (&r);
  fake_free (&f);
}

static const struct CMUnitTest tests[] = {
  cmocka_unit_test_setup (test_usage_errors, setup_env),
  cmocka_unit_test_setup (test_command_usage_hint_names_the_command, setup_env),
  cmocka_unit_test_setup (test_help, setup_env),
  cmocka_unit_test_setup (test_every_command_has_full_help, setup_env),
  cmocka_unit_test_setup (test_version, setup_env),
  cmocka_unit_test_setup (test_bad_orch_server_only_matters_when_used, setup_env),
  cmocka_unit_test_setup (test_get_sends_kind_and_name, setup_env),
  cmocka_unit_test_setup (test_get_empty, setup_env),
  cmocka_unit_test_setup (test_delete_and_drain, setup_env),
  cmocka_unit_test_setup (test_refused_request_prints_error_and_details, setup_env),
  cmocka_unit_test_setup (test_unreachable_scheduler, setup_env),
  cmocka_unit_test_setup (test_unexpected_reply_kind, setup_env),
  cmocka_unit_test_setup (test_apply_invalid_spec_sends_nothing, setup_env),
  cmocka_unit_test_setup (test_apply_unreadable_file, setup_env),
  cmocka_unit_test_setup (test_apply_too_large, setup_env),
  cmocka_unit_test_setup (test_apply_sends_file_and_prints_placements, setup_env),
  cmocka_unit_test_setup (test_plan_is_a_dry_run, setup_env),
  cmocka_unit_test_setup (test_apply_wait_until_running, setup_env),
  cmocka_unit_test_setup (test_apply_wait_fails_on_failed_alloc, setup_env),
  cmocka_unit_test_setup (test_apply_wait_timeout_says_what_is_pending, setup_env),
  cmocka_unit_test_setup (test_logs_tail, setup_env),
};

ORCH_TEST_MAIN (tests)
