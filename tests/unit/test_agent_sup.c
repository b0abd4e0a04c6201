/* The allocation supervisor against a fake runtime whose "workloads" are
 * real child processes (fork), so that exits, signals, SIGCHLD reaping,
 * restart backoff timers and stop grace periods all happen for real on a
 * libuv loop. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "orch_test.h"

#include "agent_internal.h"
#include "orch_log.h"
#include "orch_util.h"

/* ---- The fake runtime ----------------------------------------------------- */

typedef struct
{
  int starts, kills, cleanups;
  int sigs[32];
  bool oom;
  bool fail_start;
} fake_t;

static fake_t fake;

static int
fake_probe (rt_env_t *env, orch_err_t *err)
{
  return 0;
}

/* The spec's command says what the child does: ["exit", N], ["kill-self",
 * SIG], ["ignore-term"], or anything else: wait for a signal. */
static int
fake_start (rt_env_t *env, const rt_alloc_t *a, rt_proc_t *out, orch_err_t *err)
{
  char *const *cmd = a->spec->command;
  const char *what = cmd && cmd[0] ? cmd[0] : "sleep";
  struct stat st;
  pid_t pid;

  fake.starts++;
  /* The supervisor made the allocation's directory before starting. */
  assert_int_equal (stat (a->alloc_dir, &st), 0);
  assert_true (S_ISDIR (st.st_mode));
  assert_non_null (strstr (a->log_path, a->alloc_id));
  assert_string_equal (a->rootfs, "/fake/images/rootfs");
  if (fake.fail_start)
    return orch_err_set (err, EPERM, "fake runtime refuses");
  pid = fork ();
  if (pid < 0)
    return orch_err_sys (err, "fork");
  if (pid == 0 && strcmp (what, "reaped-elsewhere") == 0)
    _exit (0);
  if (pid == 0 && strcmp (what, "record") == 0)
    {
      /* Like orch-init: leave how the workload ended in <alloc>/exit. */
      char path[512];
      FILE *f;
      snprintf (path, sizeof (path), "%s/exit", a->alloc_dir);
      f = fopen (path, "w");
      fprintf (f, "%s\n", cmd[1]);
      fclose (f);
      _exit (atoi (cmd[2]));
    }
  if (pid == 0)
    {
      if (strcmp (what, "exit") == 0)
        _exit (atoi (cmd[1]));
      if (strcmp (what, "kill-self") == 0)
        {
          signal (atoi (cmd[1]), SIG_DFL);
          raise (atoi (cmd[1]));
          _exit (99);
        }
      if (strcmp (what, "ignore-term") == 0)
        signal (SIGTERM, SIG_IGN);
      else
        signal (SIGTERM, SIG_DFL);
      for (;;)
        pause ();
    }
  if (strcmp (what, "reaped-elsewhere") == 0)
    waitpid (pid, NULL, 0); /* as if another part of the process took it */
  out->pid = pid;
  out->started_ms = orch_now_wall_ms ();
  return 0;
}

static int
fake_kill (rt_env_t *env, const char *id, const rt_proc_t *p, int sig, orch_err_t *err)
{
  if (fake.kills < 32)
    fake.sigs[fake.kills] = sig;
  fake.kills++;
  if (kill (p->pid, sig) < 0)
    return orch_err_sys (err, "kill");
  return 0;
}

static int
fake_usage (rt_env_t *env, const char *id, cg_usage_t *out, orch_err_t *err)
{
  out->memory_bytes = 4096;
  out->cpu_usec = 77;
  out->oom_kills = fake.oom ? 1 : 0;
  return 0;
}

static int
fake_cleanup (rt_env_t *env, const char *id, orch_err_t *err)
{
  fake.cleanups++;
  return 0;
}

static const rt_ops_t fake_ops = {
  .name = "container",
  .probe = fake_probe,
  .start = fake_start,
  .kill = fake_kill,
  .usage = fake_usage,
  .cleanup = fake_cleanup,
};

static const rt_ops_t *
fake_lookup (void *ctx, const char *iso)
{
  return strcmp (iso, "container") == 0 ? &fake_ops : NULL;
}

static char *
fake_image_rootfs (const char *state_dir, const char *image, orch_err_t *err)
{
  if (strcmp (image, "missing") == 0)
    {
      orch_err_set (err, ENOENT, "image missing is not imported on this node");
      return NULL;
    }
  return xstrdup ("/fake/images/rootfs");
}

/* ---- Recorded events -------------------------------------------------------- */

typedef struct
{
  char id[64];
  char state[16];
  int exit_code;
  char reason[256];
  uint32_t restarts;
  int64_t pid;
} event_t;

#define MAX_EVENTS 256

typedef struct
{
  uv_loop_t loop;
  agent_sup_t sup;
  char state_dir[64];
  event_t ev[MAX_EVENTS];
  size_t n_ev;
} fx_t;

static void
on_event (void *ctx, const agent_alloc_t *a)
{
  fx_t *fx = ctx;
  event_t *e;

  assert_true (fx->n_ev < MAX_EVENTS);
  e = &fx->ev[fx->n_ev++];
  snprintf (e->id, sizeof (e->id), "%s", a->id);
  snprintf (e->state, sizeof (e->state), "%s", agent_alloc_state_name (a->state));
  snprintf (e->reason, sizeof (e->reason), "%s", a->reason);
  e->exit_code = a->exit_code;
  e->restarts = a->restarts;
  e->pid = a->proc.pid;
}

/* The states id went through, joined with ' '. */
static const char *
history (fx_t *fx, const char *id)
{
  static char buf[2048];
  size_t i;

  buf[0] = '\0';
  for (i = 0; i < fx->n_ev; i++)
    if (strcmp (fx->ev[i].id, id) == 0)
      snprintf (buf + strlen (buf), sizeof (buf) - strlen (buf), "%s%s", buf[0] ? " " : "",
                fx->ev[i].state);
  return buf;
}

static const event_t *
last_event (fx_t *fx, const char *id)
{
  size_t i;

  for (i = fx->n_ev; i > 0; i--)
    if (strcmp (fx->ev[i - 1].id, id) == 0)
      return &fx->ev[i - 1];
  return NULL;
}

static int
setup (void **state)
{
  static const agent_sup_deps_t deps = { fake_lookup, fake_image_rootfs, NULL };
  fx_t *fx = calloc (1, sizeof (*fx));

  orch_log_init ("test", ORCH_LOG_ERROR);
  memset (&fake, 0, sizeof (fake));
  snprintf (fx->state_dir, sizeof (fx->state_dir), "/tmp/test_agent_sup.XXXXXX");
  assert_non_null (mkdtemp (fx->state_dir));
  assert_int_equal (uv_loop_init (&fx->loop), 0);
  assert_int_equal (agent_sup_init (&fx->sup, &fx->loop, fx->state_dir, NULL, &deps, on_event, fx),
                    0);
  *state = fx;
  return 0;
}

static int
teardown (void **state)
{
  fx_t *fx = *state;
  size_t i;

  /* Kill whatever the test left running: the supervisor itself never does
   * on close (workloads outlive the agent). */
  for (i = 0; i < fx->sup.n_allocs; i++)
    if (fx->sup.allocs[i]->proc.pid > 0)
      {
        kill (fx->sup.allocs[i]->proc.pid, SIGKILL);
        waitpid (fx->sup.allocs[i]->proc.pid, NULL, 0);
      }
  agent_sup_close (&fx->sup);
  uv_run (&fx->loop, UV_RUN_DEFAULT);
  assert_int_equal (uv_loop_close (&fx->loop), 0);
  orch_rm_rf (fx->state_dir);
  free (fx);
  return 0;
}

static void
on_tick (uv_timer_t *t)
{
}

typedef bool (*pred_fn) (fx_t *fx, const void *arg);

/* Runs the loop until pred holds or timeout_ms pass; returns pred. */
static bool
run_until (fx_t *fx, pred_fn pred, const void *arg, int timeout_ms)
{
  int64_t deadline = orch_now_mono_ms () + timeout_ms;
  uv_timer_t tick;
  bool ok;

  uv_timer_init (&fx->loop, &tick);
  uv_timer_start (&tick, on_tick, 5, 5);
  while (!(ok = pred (fx, arg)) && orch_now_mono_ms () < deadline)
    uv_run (&fx->loop, UV_RUN_ONCE);
  uv_close ((uv_handle_t *) &tick, NULL);
  uv_run (&fx->loop, UV_RUN_NOWAIT);
  return ok;
}

typedef struct
{
  const char *id;
  const char *history;
} hist_arg_t;

static bool
history_is (fx_t *fx, const void *arg)
{
  const hist_arg_t *h = arg;
  return strcmp (history (fx, h->id), h->history) == 0;
}

static void
expect_history (fx_t *fx, const char *id, const char *want, int timeout_ms)
{
  hist_arg_t h = { id, want };

  if (!run_until (fx, history_is, &h, timeout_ms))
    fail_msg ("alloc %s: history \"%s\", want \"%s\"", id, history (fx, id), want);
}

static bool
dir_gone (fx_t *fx, const void *path)
{
  struct stat st;
  return stat (path, &st) < 0 && errno == ENOENT;
}

static char *
spec_json (const char *image, const char *command, const char *restart, const char *grace)
{
  return xasprintf ("{\"name\":\"web\",\"image\":\"%s\",\"resources\":{\"cpu\":\"100m\","
                    "\"memory\":\"16Mi\"}%s%s%s%s%s%s%s}",
                    image, command ? ",\"command\":" : "", command ? command : "",
                    restart ? ",\"restart\":" : "", restart ? restart : "",
                    grace ? ",\"stop_grace\":\"" : "", grace ? grace : "", grace ? "\"" : "");
}

static int
start (fx_t *fx, const char *id, const char *json)
{
  agent_alloc_req_t r = { id, "web", "container", json, 3 };
  orch_err_t err = { 0 };
  return agent_sup_start (&fx->sup, &r, &err);
}

/* ---- Tests ---------------------------------------------------------------- */

static void
test_sup_start_then_stop (void **state)
{
  fx_t *fx = *state;
  cleanup_free char *j = spec_json ("busybox", "[\"sleep\"]", NULL, NULL);
  cleanup_free char *dir = NULL;
  agent_alloc_t *a;
  struct stat st;

  assert_int_equal (start (fx, "web-00000001", j), 0);
  /* Started synchronously: every step is an event, in order. */
  assert_string_equal (history (fx, "web-00000001"), "pending starting running");
  a = agent_sup_find (&fx->sup, "web-00000001");
  assert_non_null (a);
  assert_true (a->proc.pid > 0);
  assert_true (a->started_at_ms > 0);
  assert_int_equal (a->spec_version, 3);
  dir = xasprintf ("%s/allocs/web-00000001", fx->state_dir);
  assert_int_equal (stat (dir, &st), 0);

  /* Starting a known id again changes nothing. */
  assert_int_equal (start (fx, "web-00000001", j), 0);
  assert_int_equal (fake.starts, 1);

  assert_int_equal (agent_sup_stop (&fx->sup, "web-00000001", 5000), 0);
  assert_int_equal (fake.kills, 1);
  assert_int_equal (fake.sigs[0], SIGTERM);
  expect_history (fx, "web-00000001", "pending starting running stopped", 3000);
  assert_string_equal (last_event (fx, "web-00000001")->reason, "stopped by the scheduler");
  assert_int_equal (last_event (fx, "web-00000001")->exit_code, 128 + SIGTERM);
  assert_int_equal (fake.cleanups, 1);
  /* Forgotten once stopped, with its directory, and never restarted. */
  assert_null (agent_sup_find (&fx->sup, "web-00000001"));
  assert_true (run_until (fx, dir_gone, dir, 3000));
  assert_int_equal (agent_sup_stop (&fx->sup, "web-00000001", 0), -1);
  assert_int_equal (fake.starts, 1);
}

static void
test_sup_exit_code_and_on_failure_restarts (void **state)
{
  fx_t *fx = *state;
  cleanup_free char *j
      = spec_json ("busybox", "[\"exit\",\"3\"]",
                   "{\"policy\":\"on-failure\",\"max_restarts\":2,\"backoff\":\"10ms\"}", NULL);
  const event_t *e;

  assert_int_equal (start (fx, "web-00000002", j), 0);
  expect_history (fx, "web-00000002",
                  "pending starting running exited starting running exited starting running exited",
                  5000);
  e = last_event (fx, "web-00000002");
  assert_int_equal (e->exit_code, 3);
  assert_int_equal (e->restarts, 2);
  assert_int_equal (fake.starts, 3);
  assert_int_equal (fake.cleanups, 3); /* after every exit */
  /* Limit reached: it stays exited. */
  uv_sleep (50);
  uv_run (&fx->loop, UV_RUN_NOWAIT);
  assert_int_equal (fake.starts, 3);
  assert_int_equal (agent_sup_find (&fx->sup, "web-00000002")->state, AGENT_ALLOC_EXITED);
}

static void
test_sup_clean_exit_not_restarted_on_failure (void **state)
{
  fx_t *fx = *state;
  cleanup_free char *j = spec_json ("busybox", "[\"exit\",\"0\"]",
                                    "{\"policy\":\"on-failure\",\"backoff\":\"10ms\"}", NULL);

  assert_int_equal (start (fx, "web-00000003", j), 0);
  expect_history (fx, "web-00000003", "pending starting running exited", 3000);
  uv_sleep (50);
  uv_run (&fx->loop, UV_RUN_NOWAIT);
  assert_int_equal (fake.starts, 1);
  assert_int_equal (last_event (fx, "web-00000003")->exit_code, 0);
  assert_string_equal (last_event (fx, "web-00000003")->reason, "");
}

static void
test_sup_always_restarts_clean_exit (void **state)
{
  fx_t *fx = *state;
  cleanup_free char *j
      = spec_json ("busybox", "[\"exit\",\"0\"]",
                   "{\"policy\":\"always\",\"max_restarts\":1,\"backoff\":\"10ms\"}", NULL);

  assert_int_equal (start (fx, "web-00000004", j), 0);
  expect_history (fx, "web-00000004", "pending starting running exited starting running exited",
                  3000);
  assert_int_equal (last_event (fx, "web-00000004")->restarts, 1);
}

static void
test_sup_never_policy (void **state)
{
  fx_t *fx = *state;
  cleanup_free char *j = spec_json ("busybox", "[\"exit\",\"1\"]", "{\"policy\":\"never\"}", NULL);

  assert_int_equal (start (fx, "web-00000005", j), 0);
  expect_history (fx, "web-00000005", "pending starting running exited", 3000);
  uv_sleep (30);
  uv_run (&fx->loop, UV_RUN_NOWAIT);
  assert_int_equal (fake.starts, 1);
  assert_int_equal (last_event (fx, "web-00000005")->exit_code, 1);
}

static void
test_sup_killed_by_signal (void **state)
{
  fx_t *fx = *state;
  cleanup_free char *j
      = spec_json ("busybox", "[\"kill-self\",\"9\"]", "{\"policy\":\"never\"}", NULL);
  const event_t *e;

  assert_int_equal (start (fx, "web-00000006", j), 0);
  expect_history (fx, "web-00000006", "pending starting running exited", 3000);
  e = last_event (fx, "web-00000006");
  assert_int_equal (e->exit_code, 137);
  assert_string_equal (e->reason, "killed by signal 9");
}

static void
test_sup_lost_process (void **state)
{
  fx_t *fx = *state;
  cleanup_free char *j
      = spec_json ("busybox", "[\"reaped-elsewhere\"]", "{\"policy\":\"never\"}", NULL);
  const event_t *e;

  assert_int_equal (start (fx, "web-00000012", j), 0);
  /* No SIGCHLD will come for it: the periodic sweep finds it. */
  agent_sup_reap (&fx->sup);
  assert_string_equal (history (fx, "web-00000012"), "pending starting running exited");
  e = last_event (fx, "web-00000012");
  assert_int_equal (e->exit_code, 255);
  assert_string_equal (e->reason, "lost track of the workload's process");
  assert_int_equal (fake.cleanups, 1);
}

static void
test_sup_exit_record_refines_reason (void **state)
{
  fx_t *fx = *state;
  cleanup_free char *sig = spec_json ("busybox", "[\"record\",\"signaled 15\",\"143\"]",
                                      "{\"policy\":\"never\"}", NULL);
  cleanup_free char *exec = spec_json (
      "busybox", "[\"record\",\"failed exec /bin/nope: No such file or directory\",\"127\"]",
      "{\"policy\":\"never\"}", NULL);
  cleanup_free char *plain = spec_json ("busybox", "[\"record\",\"exited 143\",\"143\"]",
                                        "{\"policy\":\"never\"}", NULL);
  const event_t *e;

  /* The init exited 143 because its workload was killed by SIGTERM. */
  assert_int_equal (start (fx, "sig-1", sig), 0);
  expect_history (fx, "sig-1", "pending starting running exited", 3000);
  e = last_event (fx, "sig-1");
  assert_int_equal (e->exit_code, 143);
  assert_string_equal (e->reason, "killed by signal 15");

  /* The command could not be run: failed, with why. */
  assert_int_equal (start (fx, "exec-1", exec), 0);
  expect_history (fx, "exec-1", "pending starting running failed", 3000);
  e = last_event (fx, "exec-1");
  assert_int_equal (e->exit_code, 127);
  assert_string_equal (e->reason, "failed exec /bin/nope: No such file or directory");

  /* A workload that exited 143 by itself is just that. */
  assert_int_equal (start (fx, "plain-1", plain), 0);
  expect_history (fx, "plain-1", "pending starting running exited", 3000);
  assert_string_equal (last_event (fx, "plain-1")->reason, "");
}

static void
test_sup_oom_is_failed (void **state)
{
  fx_t *fx = *state;
  cleanup_free char *j
      = spec_json ("busybox", "[\"kill-self\",\"9\"]",
                   "{\"policy\":\"on-failure\",\"max_restarts\":1,\"backoff\":\"10ms\"}", NULL);
  const event_t *e;

  fake.oom = true;
  assert_int_equal (start (fx, "web-00000007", j), 0);
  /* An OOM kill is a failure: on-failure restarts it. */
  expect_history (fx, "web-00000007", "pending starting running failed starting running failed",
                  3000);
  e = last_event (fx, "web-00000007");
  assert_string_equal (e->state, "failed");
  assert_string_equal (e->reason, "oom-killed");
  assert_int_equal (e->exit_code, 137);
}

static void
test_sup_stop_escalates_to_sigkill (void **state)
{
  fx_t *fx = *state;
  cleanup_free char *j = spec_json ("busybox", "[\"ignore-term\"]", NULL, "10s");
  int64_t t0;

  assert_int_equal (start (fx, "web-00000008", j), 0);
  /* Let the child install its SIG_IGN before the SIGTERM. */
  uv_sleep (50);
  uv_update_time (&fx->loop); /* timers count from the loop's cached time */
  t0 = orch_now_mono_ms ();
  assert_int_equal (agent_sup_stop (&fx->sup, "web-00000008", 100), 0);
  expect_history (fx, "web-00000008", "pending starting running stopped", 3000);
  /* The grace given with the stop wins over the spec's 10 s. */
  assert_true (orch_now_mono_ms () - t0 >= 100);
  assert_true (orch_now_mono_ms () - t0 < 3000);
  assert_int_equal (fake.kills, 2);
  assert_int_equal (fake.sigs[0], SIGTERM);
  assert_int_equal (fake.sigs[1], SIGKILL);
  assert_string_equal (last_event (fx, "web-00000008")->reason,
                       "stopped by the scheduler (SIGKILL after 100 ms)");
  assert_null (agent_sup_find (&fx->sup, "web-00000008"));
}

static void
test_sup_stop_uses_spec_grace (void **state)
{
  fx_t *fx = *state;
  cleanup_free char *j = spec_json ("busybox", "[\"ignore-term\"]", NULL, "50ms");

  assert_int_equal (start (fx, "web-00000009", j), 0);
  uv_sleep (50);
  assert_int_equal (agent_sup_stop (&fx->sup, "web-00000009", 0), 0);
  assert_int_equal (agent_sup_find (&fx->sup, "web-00000009")->grace_ms, 50);
  expect_history (fx, "web-00000009", "pending starting running stopped", 3000);
  assert_int_equal (fake.sigs[1], SIGKILL);
}

static void
test_sup_bad_spec_fails (void **state)
{
  fx_t *fx = *state;
  const event_t *e;

  assert_int_equal (start (fx, "web-0000000a", "{\"name\":\"web\"}"), 0);
  assert_string_equal (history (fx, "web-0000000a"), "pending failed");
  e = last_event (fx, "web-0000000a");
  assert_non_null (strstr (e->reason, "invalid spec: "));
  /* Every problem is named, not only the first. */
  assert_non_null (strstr (e->reason, "image"));
  assert_non_null (strstr (e->reason, "resources"));
  assert_int_equal (fake.starts, 0);

  assert_int_equal (start (fx, "web-0000000b", "{not json"), 0);
  assert_string_equal (history (fx, "web-0000000b"), "pending failed");
}

static void
test_sup_missing_image_fails (void **state)
{
  fx_t *fx = *state;
  cleanup_free char *j = spec_json ("missing", NULL, "{\"policy\":\"never\"}", NULL);
  const event_t *e;

  assert_int_equal (start (fx, "web-0000000c", j), 0);
  assert_string_equal (history (fx, "web-0000000c"), "pending starting failed");
  e = last_event (fx, "web-0000000c");
  assert_string_equal (e->reason, "image missing: image missing is not imported on this node");
  assert_int_equal (fake.starts, 0);
}

static void
test_sup_start_failure_follows_restart_policy (void **state)
{
  fx_t *fx = *state;
  cleanup_free char *j = spec_json (
      "busybox", NULL, "{\"policy\":\"on-failure\",\"max_restarts\":1,\"backoff\":\"10ms\"}", NULL);

  fake.fail_start = true;
  assert_int_equal (start (fx, "web-0000000d", j), 0);
  expect_history (fx, "web-0000000d", "pending starting failed starting failed", 3000);
  assert_string_equal (last_event (fx, "web-0000000d")->reason, "start: fake runtime refuses");
  assert_int_equal (fake.starts, 2);
}

static void
test_sup_unknown_runtime_fails (void **state)
{
  fx_t *fx = *state;
  cleanup_free char *j = spec_json ("busybox", NULL, NULL, NULL);
  agent_alloc_req_t r = { "web-0000000e", "web", "microvm", j, 1 };
  orch_err_t err = { 0 };

  assert_int_equal (agent_sup_start (&fx->sup, &r, &err), 0);
  assert_string_equal (history (fx, "web-0000000e"), "pending failed");
  assert_string_equal (last_event (fx, "web-0000000e")->reason, "no microvm runtime on this node");
}

static void
test_sup_refuses_unsafe_ids (void **state)
{
  fx_t *fx = *state;
  cleanup_free char *j = spec_json ("busybox", NULL, NULL, NULL);

  /* The id names a directory and a cgroup. */
  assert_true (start (fx, "../../etc", j) < 0);
  assert_true (start (fx, "", j) < 0);
  assert_true (start (fx, "Web_1", j) < 0);
  assert_int_equal (fx->n_ev, 0);
  assert_int_equal (fake.starts, 0);
}

static void
test_sup_stop_during_backoff (void **state)
{
  fx_t *fx = *state;
  cleanup_free char *j = spec_json ("busybox", "[\"exit\",\"2\"]",
                                    "{\"policy\":\"on-failure\",\"backoff\":\"5s\"}", NULL);

  assert_int_equal (start (fx, "web-0000000f", j), 0);
  expect_history (fx, "web-0000000f", "pending starting running exited", 3000);
  /* Waiting 5 s for its restart: a stop ends it at once, no restart follows. */
  assert_int_equal (agent_sup_stop (&fx->sup, "web-0000000f", 0), 0);
  assert_string_equal (history (fx, "web-0000000f"), "pending starting running exited stopped");
  assert_null (agent_sup_find (&fx->sup, "web-0000000f"));
  assert_int_equal (fake.starts, 1);
  assert_int_equal (fake.kills, 0);
}

static void
test_sup_usage_sampled (void **state)
{
  fx_t *fx = *state;
  cleanup_free char *j = spec_json ("busybox", "[\"sleep\"]", NULL, NULL);
  agent_alloc_t *a;

  assert_int_equal (start (fx, "web-00000010", j), 0);
  a = agent_sup_find (&fx->sup, "web-00000010");
  assert_int_equal (a->usage.memory_bytes, 0);
  agent_sup_sample_usage (&fx->sup);
  assert_int_equal (a->usage.memory_bytes, 4096);
  assert_int_equal (a->usage.cpu_usec, 77);
}

static agent_alloc_req_t
req (const char *id, const char *json)
{
  agent_alloc_req_t r = { id, "web", "container", json, 1 };
  return r;
}

static void
test_sup_desired_list (void **state)
{
  fx_t *fx = *state;
  cleanup_free char *run = spec_json ("busybox", "[\"sleep\"]", NULL, NULL);
  cleanup_free char *done
      = spec_json ("busybox", "[\"exit\",\"0\"]", "{\"policy\":\"never\"}", NULL);
  agent_alloc_req_t first[] = { req ("web-a", run), req ("web-b", run), req ("web-c", done) };
  agent_alloc_req_t second[]
      = { req ("web-b", run), req ("web-c", done), req ("web-d", run), req ("web-d", run) };

  agent_sup_apply_desired (&fx->sup, first, 3);
  assert_int_equal (fake.starts, 3);
  expect_history (fx, "web-c", "pending starting running exited", 3000);

  agent_sup_apply_desired (&fx->sup, second, 4);
  /* web-a is not listed: stopped. web-d is new: started once. web-b runs
   * on untouched. web-c exited and is listed: not restarted by the list. */
  assert_int_equal (fake.starts, 4);
  assert_int_equal (fake.kills, 1);
  expect_history (fx, "web-a", "pending starting running stopped", 3000);
  assert_string_equal (history (fx, "web-b"), "pending starting running");
  assert_string_equal (history (fx, "web-c"), "pending starting running exited");
  assert_string_equal (history (fx, "web-d"), "pending starting running");
  assert_int_equal (fx->sup.n_allocs, 3);

  /* The same list again is a no-op. */
  agent_sup_apply_desired (&fx->sup, second, 4);
  assert_int_equal (fake.starts, 4);
  assert_int_equal (fake.kills, 1);

  /* An empty list stops everything, running or not. */
  agent_sup_apply_desired (&fx->sup, NULL, 0);
  expect_history (fx, "web-b", "pending starting running stopped", 3000);
  expect_history (fx, "web-d", "pending starting running stopped", 3000);
  assert_string_equal (history (fx, "web-c"), "pending starting running exited stopped");
  assert_int_equal (fx->sup.n_allocs, 0);
}

static void
test_sup_close_leaves_workloads_running (void **state)
{
  fx_t *fx = *state;
  cleanup_free char *j = spec_json ("busybox", "[\"sleep\"]", NULL, NULL);
  pid_t pid;

  assert_int_equal (start (fx, "web-00000011", j), 0);
  pid = agent_sup_find (&fx->sup, "web-00000011")->proc.pid;
  agent_sup_close (&fx->sup);
  uv_run (&fx->loop, UV_RUN_NOWAIT);
  /* Still alive after the supervisor is gone. */
  assert_int_equal (kill (pid, 0), 0);
  assert_int_equal (fake.kills, 0);
  assert_int_equal (fake.cleanups, 0);
  kill (pid, SIGKILL);
  waitpid (pid, NULL, 0);
}

static const struct CMUnitTest tests[] = {
  cmocka_unit_test_setup_teardown (test_sup_start_then_stop, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_exit_code_and_on_failure_restarts, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_clean_exit_not_restarted_on_failure, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_always_restarts_clean_exit, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_never_policy, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_killed_by_signal, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_oom_is_failed, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_lost_process, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_exit_record_refines_reason, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_stop_escalates_to_sigkill, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_stop_uses_spec_grace, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_bad_spec_fails, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_missing_image_fails, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_start_failure_follows_restart_policy, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_unknown_runtime_fails, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_refuses_unsafe_ids, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_stop_during_backoff, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_usage_sampled, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_desired_list, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_close_leaves_workloads_running, setup, teardown),
};

ORCH_TEST_MAIN (tests)
