/* The allocation supervisor against a fake runtime whose "workloads" are
 * real child processes (fork), so that exits, signals, SIGCHLD reaping,
 * restart backoff timers and stop grace periods all happen for real on a
 * libuv loop. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
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
  int starts, kills, cleanups, adopts;
  int sigs[32];
  bool oom;
  bool fail_start;
  bool adopt_gone;      /* adopt() finds the workload gone */
  int cleanup_delay_ms; /* cleanup() takes this long (it runs in the thread pool) */
  int cleanups_at_start[8]; /* cleanups finished when start n began */
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

  if (fake.starts < 8)
    fake.cleanups_at_start[fake.starts] = __atomic_load_n (&fake.cleanups, __ATOMIC_SEQ_CST);
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
  /* A bridge address, as a runtime with a network gives; none for host
   * networking. */
  if (a->spec->network != ORCH_NET_HOST)
    snprintf (out->address, sizeof (out->address), "10.88.0.%d", 2 + fake.starts);
  {
    /* What a runtime keeps for adopt(). */
    char path[512];
    FILE *f;
    snprintf (path, sizeof (path), "%s/fakepid", a->alloc_dir);
    f = fopen (path, "w");
    fprintf (f, "%ld %s\n", (long) pid, out->address[0] ? out->address : "-");
    fclose (f);
  }
  return 0;
}

static int
fake_adopt (rt_env_t *env, const char *id, const char *alloc_dir, rt_proc_t *out, orch_err_t *err)
{
  char path[512];
  long pid;
  FILE *f;

  fake.adopts++;
  snprintf (path, sizeof (path), "%s/fakepid", alloc_dir);
  f = fopen (path, "r");
  if (f == NULL)
    return orch_err_sys (err, "open %s", path);
  if (fscanf (f, "%ld %63s", &pid, out->address) != 2)
    {
      fclose (f);
      return orch_err_set (err, EINVAL, "bad %s", path);
    }
  fclose (f);
  if (fake.adopt_gone)
    return 0;
  out->pid = (pid_t) pid;
  out->started_ms = 1; /* the supervisor keeps its own started_at */
  return 1;
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
  if (fake.cleanup_delay_ms > 0)
    uv_sleep ((unsigned) fake.cleanup_delay_ms);
  __atomic_add_fetch (&fake.cleanups, 1, __ATOMIC_SEQ_CST);
  return 0;
}

static const rt_ops_t fake_ops = {
  .name = "container",
  .probe = fake_probe,
  .start = fake_start,
  .kill = fake_kill,
  .usage = fake_usage,
  .cleanup = fake_cleanup,
  .adopt = fake_adopt,
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

/* Images named "remote/..." are not in the store: they are pulled, and
 * "remote/broken" fails to pull. */
static bool
fake_image_present (const char *state_dir, const char *ref)
{
  return strncmp (ref, "remote/", 7) != 0;
}

static int
fake_image_ensure (void *ctx, const char *state_dir, const char *ref, const volatile int *cancel,
                   char **rootfs, orch_err_t *err)
{
  usleep (20 * 1000); /* in the thread pool: the loop goes on meanwhile */
  if (strcmp (ref, "remote/broken") == 0)
    return orch_err_set (err, EIO, "pull %s: blob sha256:ab: digest mismatch", ref);
  *rootfs = xstrdup ("/fake/images/rootfs"); /* what fake_start expects */
  return 0;
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
  char health[16];
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

/* Forked test servers, killed by teardown whatever happened. */
static pid_t servers[8];
static size_t n_servers;

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
  snprintf (e->health, sizeof (e->health), "%s", a->health_status);
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
  static const agent_sup_deps_t deps
      = { .lookup = fake_lookup, .image_rootfs = fake_image_rootfs, .ctx = NULL };
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
  for (i = 0; i < n_servers; i++)
    {
      kill (servers[i], SIGKILL);
      waitpid (servers[i], NULL, 0);
    }
  n_servers = 0;
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
  agent_alloc_req_t r = { id, "web", "container", json, 3, NULL, 0 };
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

/* The cleanup after an exit runs in the thread pool; the allocation stays
 * as it was until it is done, and a restart (which reuses the cgroup's
 * name) waits for it. */
static void
test_sup_restart_waits_for_cleanup (void **state)
{
  fx_t *fx = *state;
  cleanup_free char *j
      = spec_json ("busybox", "[\"exit\",\"1\"]",
                   "{\"policy\":\"on-failure\",\"max_restarts\":1,\"backoff\":\"10ms\"}", NULL);

  fake.cleanup_delay_ms = 150;
  assert_int_equal (start (fx, "web-slowclean", j), 0);
  expect_history (fx, "web-slowclean", "pending starting running", 3000);
  /* The workload exits at once; its end is reported only after cleanup. */
  uv_sleep (50);
  uv_run (&fx->loop, UV_RUN_NOWAIT);
  agent_sup_reap (&fx->sup);
  assert_string_equal (history (fx, "web-slowclean"), "pending starting running");
  expect_history (fx, "web-slowclean", "pending starting running exited starting running exited",
                  3000);
  assert_int_equal (fake.starts, 2);
  assert_int_equal (fake.cleanups_at_start[1], 1);
}

/* A stop that arrives while an ended allocation is being cleaned up is
 * finished by the cleanup's end: stopped, never restarted, forgotten. */
static void
test_sup_stop_during_cleanup (void **state)
{
  fx_t *fx = *state;
  cleanup_free char *j = spec_json ("busybox", "[\"exit\",\"1\"]",
                                    "{\"policy\":\"always\",\"backoff\":\"10ms\"}", NULL);

  fake.cleanup_delay_ms = 200;
  assert_int_equal (start (fx, "web-stopclean", j), 0);
  expect_history (fx, "web-stopclean", "pending starting running", 3000);
  uv_sleep (50);
  agent_sup_reap (&fx->sup);
  assert_string_equal (history (fx, "web-stopclean"), "pending starting running");
  assert_int_equal (agent_sup_stop (&fx->sup, "web-stopclean", 0), 0);
  assert_non_null (agent_sup_find (&fx->sup, "web-stopclean"));
  expect_history (fx, "web-stopclean", "pending starting running stopped", 3000);
  assert_string_equal (last_event (fx, "web-stopclean")->reason, "stopped by the scheduler");
  assert_int_equal (fake.cleanups, 1);
  assert_null (agent_sup_find (&fx->sup, "web-stopclean"));
  uv_sleep (50);
  uv_run (&fx->loop, UV_RUN_NOWAIT);
  assert_int_equal (fake.starts, 1);
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
  assert_string_equal (e->reason, "killed by SIGKILL");
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
  expect_history (fx, "web-00000012", "pending starting running exited", 3000);
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
  assert_string_equal (e->reason, "killed by SIGTERM");

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

/* An image not in the store is pulled off the loop, shown as "pulling". */
static void
test_sup_pulls_missing_image (void **state)
{
  fx_t *fx = *state;
  static const agent_sup_deps_t deps = { .lookup = fake_lookup,
                                         .image_rootfs = fake_image_rootfs,
                                         .image_present = fake_image_present,
                                         .image_ensure = fake_image_ensure };
  fx->sup.deps = deps;
  cleanup_free char *ok = spec_json ("remote/app", NULL, "{\"policy\":\"never\"}", NULL);
  cleanup_free char *bad = spec_json ("remote/broken", NULL, "{\"policy\":\"never\"}", NULL);

  assert_int_equal (start (fx, "web-00000020", ok), 0);
  assert_int_equal (start (fx, "web-00000021", bad), 0);
  expect_history (fx, "web-00000020", "pending pulling starting running", 3000);
  expect_history (fx, "web-00000021", "pending pulling failed", 3000);
  assert_string_equal (last_event (fx, "web-00000021")->reason,
                       "pull remote/broken: blob sha256:ab: digest mismatch");
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
  agent_alloc_req_t r = { "web-0000000e", "web", "microvm", j, 1, NULL, 0 };
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

static bool
starts_reach (fx_t *fx, const void *arg)
{
  return fake.starts >= *(const int *) arg;
}

/* DesiredAllocs starts in chunks from the loop: run it until n starts. */
static void
expect_starts (fx_t *fx, int n)
{
  if (!run_until (fx, starts_reach, &n, 3000))
    fail_msg ("%d starts, want %d", fake.starts, n);
  assert_int_equal (fake.starts, n);
}

static agent_alloc_req_t
req (const char *id, const char *json)
{
  agent_alloc_req_t r = { id, "web", "container", json, 1, NULL, 0 };
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
  /* Not from inside the call: queued for the loop. */
  assert_int_equal (fake.starts, 0);
  assert_string_equal (history (fx, "web-a"), "pending");
  expect_starts (fx, 3);
  expect_history (fx, "web-c", "pending starting running exited", 3000);

  agent_sup_apply_desired (&fx->sup, second, 4);
  /* web-a is not listed: stopped. web-d is new: started once. web-b runs
   * on untouched. web-c exited and is listed: not restarted by the list. */
  expect_starts (fx, 4);
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

/* ---- Re-adoption ----------------------------------------------------------- */

/* The supervisor goes away (agent killed) and a new one starts on the same
 * state directory. */
static void
restart_supervisor (fx_t *fx)
{
  static const agent_sup_deps_t deps
      = { .lookup = fake_lookup, .image_rootfs = fake_image_rootfs, .ctx = NULL };

  agent_sup_close (&fx->sup);
  uv_run (&fx->loop, UV_RUN_DEFAULT);
  fx->n_ev = 0;
  assert_int_equal (agent_sup_init (&fx->sup, &fx->loop, fx->state_dir, NULL, &deps, on_event, fx),
                    0);
  agent_sup_adopt_all (&fx->sup);
}

static void
write_exit_record (fx_t *fx, const char *id, const char *text)
{
  cleanup_free char *path = xasprintf ("%s/allocs/%s/exit", fx->state_dir, id);
  FILE *f = fopen (path, "w");
  assert_non_null (f);
  fprintf (f, "%s\n", text);
  fclose (f);
}

/* As if the previous agent had restarted it twice, started at a known time. */
static void
rewrite_record (fx_t *fx, const char *id, const char *json, uint32_t restarts, int64_t started)
{
  cleanup_free char *dir = xasprintf ("%s/allocs/%s", fx->state_dir, id);
  net_port_t ports[] = { { 80, 30080, 0 }, { 53, 30053, 1 } };
  agent_record_t r
      = { (char *) id, (char *) "web", (char *) "container", (char *) json, 3, ports, 2,
          restarts,    started };
  orch_err_t err = { 0 };

  assert_int_equal (agent_record_write (dir, &r, &err), 0);
}

static bool
has_event (fx_t *fx, const void *arg)
{
  const char *const *want = arg; /* id, state */
  size_t i;

  for (i = 0; i < fx->n_ev; i++)
    if (strcmp (fx->ev[i].id, want[0]) == 0 && strcmp (fx->ev[i].state, want[1]) == 0)
      return true;
  return false;
}

static void
test_sup_record_written_and_read (void **state)
{
  fx_t *fx = *state;
  cleanup_free char *j = spec_json ("busybox", "[\"sleep\"]", NULL, NULL);
  cleanup_free char *dir = xasprintf ("%s/allocs/web-rec", fx->state_dir);
  cleanup_free char *bad = xasprintf ("%s/allocs/web-rec/alloc.json", fx->state_dir);
  net_port_t ports[] = { { 8080, 31000, 0 } };
  agent_alloc_req_t r = { "web-rec", "web", "container", j, 7, ports, 1 };
  agent_record_t rec;
  orch_err_t err = { 0 };
  FILE *f;

  assert_int_equal (agent_sup_start (&fx->sup, &r, &err), 0);
  /* Written at start with everything the request said. */
  assert_int_equal (agent_record_read (dir, &rec, &err), 1);
  assert_string_equal (rec.alloc_id, "web-rec");
  assert_string_equal (rec.service, "web");
  assert_string_equal (rec.isolation, "container");
  assert_string_equal (rec.spec_json, j);
  assert_int_equal (rec.spec_version, 7);
  assert_int_equal (rec.n_ports, 1);
  assert_int_equal (rec.ports[0].port, 8080);
  assert_int_equal (rec.ports[0].host_port, 31000);
  assert_int_equal (rec.restarts, 0);
  assert_int_equal (rec.started_at_ms, agent_sup_find (&fx->sup, "web-rec")->started_at_ms);
  agent_record_clear (&rec);

  /* Garbage is an error, not a crash; no record is 0. */
  f = fopen (bad, "w");
  fputs ("{\"alloc_id\": 3}", f);
  fclose (f);
  assert_int_equal (agent_record_read (dir, &rec, &err), -1);
  assert_non_null (strstr (err.msg, "alloc_id"));
  unlink (bad);
  assert_int_equal (agent_record_read (dir, &rec, &err), 0);
}

static void
test_sup_adopt_running_then_supervised (void **state)
{
  fx_t *fx = *state;
  cleanup_free char *j
      = spec_json ("busybox", "[\"sleep\"]",
                   "{\"policy\":\"on-failure\",\"max_restarts\":5,\"backoff\":\"10ms\"}", NULL);
  const char *want_exit[] = { "web-ad1", "exited" };
  agent_alloc_t *a;
  const event_t *e;
  pid_t pid;
  size_t i;

  assert_int_equal (start (fx, "web-ad1", j), 0);
  a = agent_sup_find (&fx->sup, "web-ad1");
  pid = a->proc.pid;
  rewrite_record (fx, "web-ad1", j, 2, 1700000000000);

  restart_supervisor (fx);
  /* Running, the same process, not restarted, same counters. */
  a = agent_sup_find (&fx->sup, "web-ad1");
  assert_non_null (a);
  assert_int_equal (fake.starts, 1);
  assert_int_equal (fake.adopts, 1);
  assert_int_equal (a->state, AGENT_ALLOC_RUNNING);
  assert_true (a->adopted);
  assert_int_equal (a->proc.pid, pid);
  assert_int_equal (a->restarts, 2);
  assert_int_equal (a->started_at_ms, 1700000000000);
  assert_string_equal (a->proc.address, "10.88.0.3");
  assert_int_equal (a->n_ports, 2);
  assert_int_equal (a->ports[1].udp, 1);
  assert_string_equal (history (fx, "web-ad1"), "running");
  assert_int_equal (kill (pid, 0), 0);

  /* It ends: seen through the pidfd, exit code from its record, and the
   * restart policy applies as to any other. */
  write_exit_record (fx, "web-ad1", "exited 42");
  kill (pid, SIGKILL);
  if (!run_until (fx, has_event, want_exit, 3000))
    fail_msg ("no exit seen: %s", history (fx, "web-ad1"));
  for (i = 0; i < fx->n_ev; i++)
    if (strcmp (fx->ev[i].state, "exited") == 0)
      break;
  assert_int_equal (fx->ev[i].exit_code, 42);
  assert_string_equal (fx->ev[i].reason, "");
  expect_history (fx, "web-ad1", "running exited starting running", 3000);
  e = last_event (fx, "web-ad1");
  assert_int_equal (e->restarts, 3);
  assert_int_equal (fake.starts, 2);
  assert_true (e->pid != pid);
  assert_false (agent_sup_find (&fx->sup, "web-ad1")->adopted);
  waitpid (pid, NULL, 0); /* the test process is its real parent */
}

static void
test_sup_adopt_ended_reported (void **state)
{
  fx_t *fx = *state;
  cleanup_free char *j
      = spec_json ("busybox", "[\"sleep\"]", "{\"policy\":\"always\",\"backoff\":\"10ms\"}", NULL);
  cleanup_free char *k = spec_json ("busybox", "[\"sleep\"]", NULL, NULL);
  const event_t *e;
  pid_t pid, pid2;

  assert_int_equal (start (fx, "web-gone", j), 0);
  assert_int_equal (start (fx, "web-norec", k), 0);
  pid = agent_sup_find (&fx->sup, "web-gone")->proc.pid;
  pid2 = agent_sup_find (&fx->sup, "web-norec")->proc.pid;
  /* Both ended while no agent was there. */
  kill (pid, SIGKILL);
  waitpid (pid, NULL, 0);
  kill (pid2, SIGKILL);
  waitpid (pid2, NULL, 0);
  write_exit_record (fx, "web-gone", "signaled 15");
  fake.adopt_gone = true;
  restart_supervisor (fx);

  /* Reported as it ended, cleaned up, and not restarted here: the scheduler
   * decides. */
  e = last_event (fx, "web-gone");
  assert_non_null (e);
  assert_string_equal (e->state, "exited");
  assert_int_equal (e->exit_code, 143);
  assert_string_equal (e->reason, "killed by SIGTERM");
  assert_int_equal (fake.cleanups, 2); /* web-gone and web-norec */
  /* A workload whose exit record is missing is failed: nothing says it
   * succeeded. */
  e = last_event (fx, "web-norec");
  assert_string_equal (e->state, "failed");
  assert_int_equal (e->exit_code, 255);
  run_until (fx, dir_gone, "/nonexistent-never", 100);
  assert_int_equal (fake.starts, 2);
  assert_int_equal (fx->sup.n_allocs, 2);
}

static void
test_sup_adopt_clears_unusable_dirs (void **state)
{
  fx_t *fx = *state;
  cleanup_free char *old = xasprintf ("%s/allocs/web-old", fx->state_dir);
  cleanup_free char *junk = xasprintf ("%s/allocs/web-old/log", fx->state_dir);
  cleanup_free char *odd = xasprintf ("%s/allocs/Not_A_Label", fx->state_dir);
  struct stat st;
  FILE *f;

  /* From an agent before re-adoption existed: no record. */
  assert_int_equal (orch_mkdir_p (old, 0700), 0);
  f = fopen (junk, "w");
  fputs ("old output\n", f);
  fclose (f);
  assert_int_equal (orch_mkdir_p (odd, 0700), 0);
  agent_sup_adopt_all (&fx->sup);
  assert_int_equal (fx->sup.n_allocs, 0);
  assert_int_equal (fx->n_ev, 0);
  assert_int_equal (stat (old, &st), -1);
  /* Not an allocation's name: left alone. */
  assert_int_equal (stat (odd, &st), 0);
}

/* ---- Chunked starts ---------------------------------------------------------- */

static void
test_sup_desired_starts_in_chunks (void **state)
{
  fx_t *fx = *state;
  cleanup_free char *run = spec_json ("busybox", "[\"sleep\"]", NULL, NULL);
  agent_alloc_req_t reqs[40];
  char ids[40][16];
  int i;

  for (i = 0; i < 40; i++)
    {
      snprintf (ids[i], sizeof (ids[i]), "web-%02d", i);
      reqs[i] = req (ids[i], run);
    }
  agent_sup_apply_desired (&fx->sup, reqs, 40);
  assert_int_equal (fake.starts, 0);
  assert_int_equal (fx->sup.n_allocs, 40); /* known (pending) at once */
  uv_run (&fx->loop, UV_RUN_NOWAIT);
  /* One loop iteration starts one chunk, then lets I/O through. */
  assert_int_equal (fake.starts, AGENT_START_CHUNK);
  expect_starts (fx, 40);
  /* A queued one stopped before its turn is never started. */
  agent_sup_apply_desired (&fx->sup, reqs, 40);
  assert_int_equal (fake.starts, 40);
}

static void
test_sup_stop_while_queued (void **state)
{
  fx_t *fx = *state;
  cleanup_free char *run = spec_json ("busybox", "[\"sleep\"]", NULL, NULL);
  agent_alloc_req_t r = req ("web-q", run);

  agent_sup_apply_desired (&fx->sup, &r, 1);
  assert_int_equal (agent_sup_stop (&fx->sup, "web-q", 0), 0);
  run_until (fx, dir_gone, "/nonexistent-never", 100);
  assert_int_equal (fake.starts, 0);
  assert_string_equal (history (fx, "web-q"), "pending stopped");
}

/* ---- Health ----------------------------------------------------------------- */

/* A forked TCP server on 127.0.0.1: each connection gets reply (NULL:
 * closed at once). Returns its pid; *port is where it listens. */
static pid_t
serve (const char *reply, uint16_t *port)
{
  struct sockaddr_in sa = { .sin_family = AF_INET };
  socklen_t len = sizeof (sa);
  int fd = socket (AF_INET, SOCK_STREAM, 0);
  pid_t pid;

  sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  assert_int_equal (bind (fd, (struct sockaddr *) &sa, sizeof (sa)), 0);
  assert_int_equal (listen (fd, 16), 0);
  assert_int_equal (getsockname (fd, (struct sockaddr *) &sa, &len), 0);
  *port = ntohs (sa.sin_port);
  pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    prctl (PR_SET_PDEATHSIG, SIGKILL);
  if (pid == 0)
    for (;;)
      {
        char buf[512];
        int c = accept (fd, NULL, NULL);
        if (c < 0)
          continue;
        if (reply != NULL)
          {
            if (read (c, buf, sizeof (buf)) > 0 && write (c, reply, strlen (reply)) < 0)
              _exit (1);
          }
        close (c);
      }
  close (fd);
  assert_true (n_servers < 8);
  servers[n_servers++] = pid;
  return pid;
}

/* A port nothing listens on (bound, then closed). */
static uint16_t
closed_port (void)
{
  struct sockaddr_in sa = { .sin_family = AF_INET };
  socklen_t len = sizeof (sa);
  int fd = socket (AF_INET, SOCK_STREAM, 0);

  sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  assert_int_equal (bind (fd, (struct sockaddr *) &sa, sizeof (sa)), 0);
  assert_int_equal (getsockname (fd, (struct sockaddr *) &sa, &len), 0);
  close (fd);
  return ntohs (sa.sin_port);
}

static char *
health_spec (const char *probe, int threshold, const char *restart)
{
  return xasprintf ("{\"name\":\"web\",\"image\":\"busybox\",\"resources\":{\"cpu\":\"100m\","
                    "\"memory\":\"16Mi\"},\"command\":[\"sleep\"],\"network\":\"host\","
                    "\"health\":{%s,\"interval\":\"50ms\",\"timeout\":\"500ms\","
                    "\"failure_threshold\":%d},\"restart\":%s,\"stop_grace\":\"200ms\"}",
                    probe, threshold, restart);
}

static bool
health_is (fx_t *fx, const void *arg)
{
  const char *const *want = arg; /* id, health */
  size_t i;

  for (i = 0; i < fx->n_ev; i++)
    if (strcmp (fx->ev[i].id, want[0]) == 0 && strcmp (fx->ev[i].health, want[1]) == 0)
      return true;
  return false;
}

static void
test_sup_health_tcp_healthy (void **state)
{
  fx_t *fx = *state;
  uint16_t port;
  pid_t srv = serve (NULL, &port);
  cleanup_free char *probe = xasprintf ("\"tcp\":%u", port);
  cleanup_free char *j = health_spec (probe, 2, "{\"policy\":\"never\"}");
  const char *want[] = { "web-h1", "healthy" };

  assert_int_equal (start (fx, "web-h1", j), 0);
  if (!run_until (fx, health_is, want, 3000))
    fail_msg ("never healthy: %s: %s", history (fx, "web-h1"), last_event (fx, "web-h1")->reason);
  assert_string_equal (agent_sup_find (&fx->sup, "web-h1")->health_status, "healthy");
  assert_int_equal (agent_sup_find (&fx->sup, "web-h1")->state, AGENT_ALLOC_RUNNING);
  assert_int_equal (fake.kills, 0);
  kill (srv, SIGKILL);
  waitpid (srv, NULL, 0);
}

static void
test_sup_health_tcp_unhealthy_restarts (void **state)
{
  fx_t *fx = *state;
  cleanup_free char *probe = xasprintf ("\"tcp\":%u", closed_port ());
  cleanup_free char *j = health_spec (
      probe, 2, "{\"policy\":\"on-failure\",\"max_restarts\":1,\"backoff\":\"10ms\"}");
  const char *want[] = { "web-h2", "unhealthy" };
  const event_t *e;

  assert_int_equal (start (fx, "web-h2", j), 0);
  if (!run_until (fx, health_is, want, 3000))
    fail_msg ("never unhealthy: %s", history (fx, "web-h2"));
  /* Restarted through the policy (counted), then failed again: the limit. */
  expect_history (fx, "web-h2",
                  "pending starting running running failed starting running running failed", 5000);
  e = last_event (fx, "web-h2");
  assert_int_equal (e->restarts, 1);
  assert_string_equal (e->health, "unhealthy");
  assert_non_null (strstr (e->reason, "unhealthy: failed 2 health checks in a row"));
  assert_int_equal (fake.starts, 2);
  /* Stopped as a stop is: SIGTERM first. */
  assert_int_equal (fake.sigs[0], SIGTERM);
}

static void
test_sup_health_http (void **state)
{
  fx_t *fx = *state;
  uint16_t ok_port, bad_port;
  pid_t ok = serve ("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", &ok_port);
  pid_t bad = serve ("HTTP/1.0 503 Service Unavailable\r\n\r\n", &bad_port);
  cleanup_free char *p1 = xasprintf ("\"http\":{\"port\":%u,\"path\":\"/healthz\"}", ok_port);
  cleanup_free char *p2 = xasprintf ("\"http\":{\"port\":%u}", bad_port);
  cleanup_free char *j1 = health_spec (p1, 1, "{\"policy\":\"never\"}");
  cleanup_free char *j2 = health_spec (p2, 1, "{\"policy\":\"never\"}");
  const char *want1[] = { "web-http1", "healthy" };
  const char *want2[] = { "web-http2", "failed" };
  const event_t *e;

  assert_int_equal (start (fx, "web-http1", j1), 0);
  assert_int_equal (start (fx, "web-http2", j2), 0);
  if (!run_until (fx, health_is, want1, 3000))
    fail_msg ("2xx not healthy: %s", history (fx, "web-http1"));
  if (!run_until (fx, has_event, want2, 3000))
    fail_msg ("5xx not failed: %s", history (fx, "web-http2"));
  e = last_event (fx, "web-http2");
  assert_string_equal (e->health, "unhealthy");
  assert_non_null (strstr (e->reason, "unhealthy"));
  kill (ok, SIGKILL);
  kill (bad, SIGKILL);
  waitpid (ok, NULL, 0);
  waitpid (bad, NULL, 0);
}

static void
test_sup_http_status_parse (void **state)
{
  int code = 0;

  assert_int_equal (agent_health_http_status_ok ("HTTP/1.1 200 OK\r\n", 17, &code), 1);
  assert_int_equal (code, 200);
  assert_int_equal (agent_health_http_status_ok ("HTTP/1.0 302 Found\r\n", 20, &code), 1);
  assert_int_equal (agent_health_http_status_ok ("HTTP/1.1 404 Not Found", 22, &code), 0);
  assert_int_equal (code, 404);
  assert_int_equal (agent_health_http_status_ok ("HTTP/1.1 199 x", 14, &code), 0);
  assert_int_equal (agent_health_http_status_ok ("HTTP/1.1 2", 10, &code), -1);
  assert_int_equal (agent_health_http_status_ok ("HTT", 3, &code), -1);
  assert_int_equal (agent_health_http_status_ok ("SSH-2.0-OpenSSH\r\n", 17, &code), 0);
  assert_int_equal (agent_health_http_status_ok ("HTTP/1.1 abc\r\n", 14, &code), 0);
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
  cmocka_unit_test_setup_teardown (test_sup_restart_waits_for_cleanup, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_stop_during_cleanup, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_exit_record_refines_reason, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_stop_escalates_to_sigkill, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_stop_uses_spec_grace, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_bad_spec_fails, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_missing_image_fails, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_pulls_missing_image, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_start_failure_follows_restart_policy, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_unknown_runtime_fails, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_refuses_unsafe_ids, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_stop_during_backoff, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_usage_sampled, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_desired_list, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_close_leaves_workloads_running, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_record_written_and_read, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_adopt_running_then_supervised, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_adopt_ended_reported, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_adopt_clears_unusable_dirs, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_desired_starts_in_chunks, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_stop_while_queued, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_health_tcp_healthy, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_health_tcp_unhealthy_restarts, setup, teardown),
  cmocka_unit_test_setup_teardown (test_sup_health_http, setup, teardown),
  cmocka_unit_test (test_sup_http_status_parse),
};

ORCH_TEST_MAIN (tests)
