/* Host check of the container runtime (run as root by test_runtime.sh):
 * real namespaces, cgroups, overlay, orch-init, on a busybox image.
 *
 * Environment: ORCH_TEST_BUSYBOX_TAR (made by deploy/make-busybox-image.sh),
 * ORCH_INIT_PATH (the built orch-init). Exits 0 when every check passed,
 * 1 otherwise, 77 when it cannot run here (not root). Prints the median
 * start latency, for people and as one JSON line. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cg.h"
#include "orch_util.h"
#include "rt.h"

static int failures;
static int checks;
static char *state_dir;
static char *rootfs;
static rt_env_t env;
static const rt_ops_t *rt;

static void
check (int ok, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  checks++;
  printf ("%s - ", ok ? "ok" : "not ok");
  vprintf (fmt, ap);
  printf ("\n");
  fflush (stdout);
  va_end (ap);
  if (!ok)
    failures++;
}

static char *
slurp (const char *path)
{
  char *data = NULL;
  size_t len;
  if (orch_read_file (path, 1 << 20, &data, &len) < 0)
    return xstrdup ("");
  return data;
}

static double
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

/* waitpid with a deadline; returns the status or -1 on timeout. */
static int
wait_exit (pid_t pid, int timeout_ms)
{
  double end = now_ms () + timeout_ms;
  for (;;)
    {
      int status;
      pid_t r = waitpid (pid, &status, WNOHANG);
      if (r == pid)
        return status;
      if (r < 0 && errno != EINTR)
        return -1;
      if (now_ms () > end)
        return -1;
      usleep (2000);
    }
}

typedef struct
{
  char *id;
  char *alloc_dir;
  char *log;
  rt_alloc_t a;
  orch_spec_t spec;
  rt_proc_t proc;
} ctr_t;

static void
ctr_init (ctr_t *c, const char *id, char **command, int64_t memory)
{
  memset (c, 0, sizeof *c);
  c->id = xstrdup (id);
  c->alloc_dir = xasprintf ("%s/allocs/%s", state_dir, id);
  c->log = xasprintf ("%s/log", c->alloc_dir);
  if (orch_mkdir_p (c->alloc_dir, 0755) < 0)
    {
      perror (c->alloc_dir);
      exit (1);
    }
  c->spec.name = (char *) "rtcheck";
  c->spec.image = (char *) "busybox";
  c->spec.command = command;
  c->spec.cpu_milli = 500;
  c->spec.memory_bytes = memory;
  c->spec.network = ORCH_NET_BRIDGE;
  c->a.alloc_id = c->id;
  c->a.spec = &c->spec;
  c->a.rootfs = rootfs;
  c->a.alloc_dir = c->alloc_dir;
  c->a.log_path = c->log;
}

static void
ctr_free (ctr_t *c)
{
  orch_rm_rf (c->alloc_dir);
  free (c->log);
  free (c->alloc_dir);
  free (c->id);
}

static int
ctr_start (ctr_t *c, orch_err_t *err)
{
  return rt->start (&env, &c->a, &c->proc, err);
}

static char *
ns_link (pid_t pid, const char *ns)
{
  char p[64], buf[128];
  if (pid > 0)
    snprintf (p, sizeof p, "/proc/%d/ns/%s", (int) pid, ns);
  else
    snprintf (p, sizeof p, "/proc/self/ns/%s", ns);
  ssize_t n = readlink (p, buf, sizeof buf - 1);
  if (n < 0)
    return xstrdup ("?");
  buf[n] = '\0';
  return xstrdup (buf);
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static void
check_first_container (void)
{
  char *cmd[] = { "/bin/sh", "-c",
                  "echo pid=$$ ppid=$PPID host=$(hostname); cat /proc/self/cgroup; ls /dev; "
                  "echo init=$(cat /proc/1/comm); echo path=$PATH; grep -E "
                  "'^(CapBnd|CapEff|NoNewPrivs|Seccomp):' /proc/self/status; "
                  "read x; echo stdin-rc=$?; "
                  "grep -E ' /proc/(sys|sysrq-trigger|irq|bus) ' /proc/self/mountinfo | "
                  "sed 's/^/ro-check /'; "
                  "test -c /proc/keys && echo keys-masked; "
                  "test -c /proc/kcore && echo kcore-masked; "
                  "unshare -U true 2>/dev/null; echo unshare-rc=$?; "
                  "echo foo=$FOO home=$HOME hostname=$HOSTNAME; "
                  "exit 3",
                  NULL };
  char *envv[] = { "FOO=bar baz", NULL };
  ctr_t c;
  ctr_init (&c, "rtc-first", cmd, 64 << 20);
  c.spec.env = envv;
  orch_err_t err = { 0 };
  int ret = ctr_start (&c, &err);
  check (ret == 0, "start the first container (%s)", ret == 0 ? "ok" : err.msg);
  if (ret < 0)
    {
      ctr_free (&c);
      return;
    }
  int status = wait_exit (c.proc.pid, 10000);
  check (status >= 0 && WIFEXITED (status) && WEXITSTATUS (status) == 3,
         "waitpid gives exit code 3 (status %#x)", status);
  char *log = slurp (c.log);
  check (strstr (log, "pid=2 ppid=1 host=rtc-first\n") != NULL,
         "the workload runs under pid 1 (orch-init) of its own pid namespace, hostname = alloc "
         "id");
  check (strstr (log, "init=orch-init\n") != NULL, "pid 1 is orch-init");
  check (strstr (log, ":memory:/\n") != NULL || strstr (log, "0::/\n") != NULL,
         "own cgroup namespace rooted at the workload's cgroup");
  static const char *const devs[]
      = { "null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx", "fd" };
  int devs_ok = 1;
  for (size_t i = 0; i < ORCH_ARRAY_LEN (devs); i++)
    {
      char *want = xasprintf ("\n%s\n", devs[i]);
      if (strstr (log, want) == NULL)
        devs_ok = 0;
      free (want);
    }
  check (devs_ok, "minimal /dev has null zero full random urandom tty pts shm ptmx fd");
  check (strstr (log, "path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n")
             != NULL,
         "default PATH");
  check (strstr (log, "CapBnd:\t00000000a80425fb\n") != NULL
             && strstr (log, "CapEff:\t00000000a80425fb\n") != NULL,
         "capabilities are Docker's default set");
  check (strstr (log, "NoNewPrivs:\t1\n") != NULL && strstr (log, "Seccomp:\t2\n") != NULL,
         "no_new_privs and a seccomp filter");
  check (strstr (log, "stdin-rc=1\n") != NULL, "stdin is /dev/null");
  check (strstr (log, "foo=bar baz home=/root hostname=rtc-first\n") != NULL,
         "the spec's environment plus HOME and HOSTNAME");
  {
    /* Every /proc path that reaches the host kernel is a read-only mount. */
    int n_ro = 0, n_rw = 0;
    for (const char *l = strstr (log, "ro-check "); l != NULL; l = strstr (l + 1, "ro-check "))
      {
        const char *eol = strchr (l, '\n');
        char *line = xstrndup (l, eol != NULL ? (size_t) (eol - l) : strlen (l));
        if (strstr (line, " ro,") != NULL)
          n_ro++;
        else
          n_rw++;
        free (line);
      }
    int has_sys = strstr (log, " /proc/sys ") != NULL;
    check (has_sys && n_ro >= 1 && n_rw == 0, "/proc/sys and friends are read-only (%d ro, %d rw)",
           n_ro, n_rw);
  }
  if (access ("/proc/keys", F_OK) == 0)
    check (strstr (log, "keys-masked\n") != NULL, "/proc/keys is masked");
  if (access ("/proc/kcore", F_OK) == 0)
    check (strstr (log, "kcore-masked\n") != NULL, "/proc/kcore is masked");
  check (strstr (log, "unshare-rc=0") == NULL && strstr (log, "unshare-rc=") != NULL,
         "unshare is denied");
  if (failures > 0)
    printf ("# log:\n%s\n", log);
  free (log);
  char *exit_path = xasprintf ("%s/exit", c.alloc_dir);
  char *rec = slurp (exit_path);
  check (strcmp (rec, "exited 3\n") == 0, "exit record says \"exited 3\" (got %s)", rec);
  free (rec);
  free (exit_path);

  check (env.cg->ops->exists (env.cg, c.id), "the cgroup exists until cleanup");
  ret = rt->cleanup (&env, c.id, &err);
  check (ret == 0, "cleanup (%s)", ret == 0 ? "ok" : err.msg);
  check (!env.cg->ops->exists (env.cg, c.id), "cleanup removed the cgroup");
  char *upper = xasprintf ("%s/upper", c.alloc_dir);
  check (access (upper, F_OK) < 0, "cleanup removed the scratch layer");
  free (upper);
  ret = rt->cleanup (&env, c.id, &err);
  check (ret == 0, "cleanup is idempotent");
  ctr_free (&c);
}

static void
check_running_container (void)
{
  char *cmd[] = { "sleep", "1000", NULL };
  ctr_t c;
  ctr_init (&c, "rtc-sleep", cmd, 32 << 20);
  orch_err_t err = { 0 };
  int ret = ctr_start (&c, &err);
  check (ret == 0, "start a sleeping container (%s)", ret == 0 ? "ok" : err.msg);
  if (ret < 0)
    {
      ctr_free (&c);
      return;
    }
  static const char *const nss[] = { "pid", "mnt", "uts", "ipc", "net" };
  for (size_t i = 0; i < ORCH_ARRAY_LEN (nss); i++)
    {
      char *mine = ns_link (0, nss[i]);
      char *its = ns_link (c.proc.pid, nss[i]);
      check (strcmp (mine, its) != 0 && strcmp (its, "?") != 0, "own %s namespace (%s vs %s)",
             nss[i], its, mine);
      free (mine);
      free (its);
    }
  char *mem_dir = env.cg->ops->path (env.cg, c.id, "memory");
  char *limit_file = xasprintf (
      "%s/%s", mem_dir, env.cg->layout.version == 2 ? "memory.max" : "memory.limit_in_bytes");
  char *limit = slurp (limit_file);
  check (atoll (limit) == 32 << 20, "memory limit %s = %d (got %s)", limit_file, 32 << 20, limit);
  free (limit);
  free (limit_file);
  free (mem_dir);
  /* orch-init forks the workload right after start returns. */
  pid_t *pids = NULL;
  size_t n = 0;
  int in_cg = 0;
  for (int tries = 0; tries < 200 && n < 2; tries++)
    {
      free (pids);
      pids = NULL;
      n = 0;
      in_cg = 0;
      if (env.cg->ops->pids (env.cg, c.id, &pids, &n, &err) == 0)
        for (size_t i = 0; i < n; i++)
          if (pids[i] == c.proc.pid)
            in_cg = 1;
      if (n < 2)
        usleep (5000);
    }
  check (in_cg && n == 2, "orch-init and sleep are in the cgroup (%zu pids)", n);
  free (pids);

  cg_usage_t u = { 0 };
  ret = rt->usage (&env, c.id, &u, &err);
  check (ret == 0 && u.memory_bytes > 0, "usage reports memory (%lld bytes)",
         (long long) u.memory_bytes);

  double t0 = now_ms ();
  ret = rt->kill (&env, c.id, &c.proc, SIGTERM, &err);
  int status = wait_exit (c.proc.pid, 5000);
  double took = now_ms () - t0;
  check (ret == 0 && status >= 0 && took < 1000,
         "SIGTERM stops `sleep 1000` through orch-init in %.1f ms", took);
  check (status >= 0 && WIFEXITED (status) && WEXITSTATUS (status) == 128 + SIGTERM,
         "orch-init exits 143 after SIGTERM (status %#x)", status);
  char *exit_path = xasprintf ("%s/exit", c.alloc_dir);
  char *rec = slurp (exit_path);
  check (strcmp (rec, "signaled 15\n") == 0, "exit record says \"signaled 15\" (got \"%s\")", rec);
  free (rec);
  free (exit_path);
  if (status < 0)
    {
      kill (c.proc.pid, SIGKILL);
      wait_exit (c.proc.pid, 5000);
    }
  rt->cleanup (&env, c.id, &err);
  ctr_free (&c);
}

/* A stop request right after start must not be lost while orch-init is
 * still starting (a namespace's pid 1 drops signals it has no handler for). */
static void
check_early_sigterm (void)
{
  char *cmd[] = { "sleep", "1000", NULL };
  int lost = 0;
  for (int i = 0; i < 5; i++)
    {
      ctr_t c;
      char id[32];
      snprintf (id, sizeof id, "rtc-early-%d", i);
      ctr_init (&c, id, cmd, 0);
      orch_err_t err = { 0 };
      if (ctr_start (&c, &err) < 0)
        {
          check (0, "start %s: %s", id, err.msg);
          ctr_free (&c);
          return;
        }
      rt->kill (&env, c.id, &c.proc, SIGTERM, &err);
      int status = wait_exit (c.proc.pid, 2000);
      if (status < 0)
        {
          lost++;
          kill (c.proc.pid, SIGKILL);
          wait_exit (c.proc.pid, 5000);
        }
      rt->cleanup (&env, c.id, &err);
      ctr_free (&c);
    }
  check (lost == 0, "SIGTERM right after start is not lost (%d of 5 lost)", lost);
}

static void
check_host_network (void)
{
  char *cmd[] = { "sleep", "1000", NULL };
  ctr_t c;
  ctr_init (&c, "rtc-hostnet", cmd, 0);
  c.spec.network = ORCH_NET_HOST;
  orch_err_t err = { 0 };
  int ret = ctr_start (&c, &err);
  check (ret == 0, "start a host-network container (%s)", ret == 0 ? "ok" : err.msg);
  if (ret < 0)
    {
      ctr_free (&c);
      return;
    }
  char *mine = ns_link (0, "net");
  char *its = ns_link (c.proc.pid, "net");
  char *mine_pid = ns_link (0, "pid");
  char *its_pid = ns_link (c.proc.pid, "pid");
  check (strcmp (mine, its) == 0 && strcmp (mine_pid, its_pid) != 0,
         "network \"host\" shares the host's network namespace only");
  free (its_pid);
  free (mine_pid);
  free (its);
  free (mine);
  rt->kill (&env, c.id, &c.proc, SIGKILL, &err);
  wait_exit (c.proc.pid, 5000);
  rt->cleanup (&env, c.id, &err);
  ctr_free (&c);
}

static void
check_image_stays_readonly (void)
{
  char *cmd[] = { "/bin/sh", "-c",
                  "echo data > /tmp/x && echo data > /bin/x && rm /bin/cat && cat /bin/x", NULL };
  ctr_t c;
  ctr_init (&c, "rtc-write", cmd, 0);
  orch_err_t err = { 0 };
  int ret = ctr_start (&c, &err);
  check (ret == 0, "start a writing container (%s)", ret == 0 ? "ok" : err.msg);
  if (ret < 0)
    {
      ctr_free (&c);
      return;
    }
  int status = wait_exit (c.proc.pid, 10000);
  check (status >= 0 && WIFEXITED (status), "the writing container exits (status %#x)", status);
  char *log = slurp (c.log);
  char *upper_x = xasprintf ("%s/upper/bin/x", c.alloc_dir);
  check (access (upper_x, F_OK) == 0, "writes land in the scratch layer");
  free (upper_x);
  free (log);
  char *img_tmp = xasprintf ("%s/tmp/x", rootfs);
  char *img_bin = xasprintf ("%s/bin/x", rootfs);
  char *img_cat = xasprintf ("%s/bin/cat", rootfs);
  struct stat st;
  check (access (img_tmp, F_OK) < 0 && access (img_bin, F_OK) < 0 && lstat (img_cat, &st) == 0,
         "the image's root filesystem is unchanged");
  free (img_cat);
  free (img_bin);
  free (img_tmp);
  rt->cleanup (&env, c.id, &err);
  ctr_free (&c);
}

static void
check_missing_command (void)
{
  char *cmd[] = { "/bin/nonexistent", "arg", NULL };
  ctr_t c;
  ctr_init (&c, "rtc-missing", cmd, 0);
  orch_err_t err = { 0 };
  int ret = ctr_start (&c, &err);
  check (ret == 0, "a missing command still starts orch-init (%s)", ret == 0 ? "ok" : err.msg);
  if (ret == 0)
    {
      int status = wait_exit (c.proc.pid, 10000);
      check (status >= 0 && WIFEXITED (status) && WEXITSTATUS (status) == 127,
             "a missing command exits 127 (status %#x)", status);
      char *exit_path = xasprintf ("%s/exit", c.alloc_dir);
      char *rec = slurp (exit_path);
      check (strcmp (rec, "failed exec /bin/nonexistent: No such file or directory\n") == 0,
             "exit record names the failed exec (got \"%s\")", rec);
      free (rec);
      free (exit_path);
      char *log = slurp (c.log);
      check (strstr (log, "failed exec /bin/nonexistent") != NULL, "the log says so too");
      free (log);
      rt->cleanup (&env, c.id, &err);
    }
  ctr_free (&c);
}

static void
check_bad_rootfs (void)
{
  /* An image whose /proc is a file: mounting proc there fails in the child. */
  char *bad = xasprintf ("%s/bad-rootfs", state_dir);
  orch_mkdir_p (bad, 0755);
  char *proc = xasprintf ("%s/proc", bad);
  orch_write_file_atomic (proc, "x", 1, 0644);
  char *cmd[] = { "/bin/true", NULL };
  ctr_t c;
  ctr_init (&c, "rtc-bad", cmd, 0);
  c.a.rootfs = bad;
  orch_err_t err = { 0 };
  int ret = ctr_start (&c, &err);
  check (ret < 0 && strstr (err.msg, "mount") != NULL
             && strstr (err.msg, "/proc: Not a directory") != NULL,
         "a bad root filesystem fails start naming the step (%s)", err.msg);
  check (!env.cg->ops->exists (env.cg, c.id), "a failed start leaves no cgroup");
  char *upper = xasprintf ("%s/upper", c.alloc_dir);
  check (access (upper, F_OK) < 0, "a failed start leaves no scratch layer");
  free (upper);
  check (waitpid (-1, NULL, WNOHANG) < 0 && errno == ECHILD, "a failed start leaves no child");

  orch_err_clear (&err);
  c.a.rootfs = "/nonexistent/rootfs";
  ret = ctr_start (&c, &err);
  check (ret < 0 && strstr (err.msg, "/nonexistent/rootfs") != NULL,
         "a missing root filesystem fails start (%s)", err.msg);
  ctr_free (&c);
  free (proc);
  free (bad);
}

/* Median start() latency over n starts, gap_us apart. Back to back, the
 * kernel's per-attach RCU grace period (cgroup v1 migration) is often still
 * warm from the last start; spaced out, every start pays it. */
static void measure_latency (rt_env_t *e, int n_starts, int gap_us, const char *label);

/* ---- the cgroup v2 path (clone3 CLONE_INTO_CGROUP) ----
 *
 * This host's controllers are on v1, but its cgroup2 hierarchy (without
 * controllers) still takes processes: a stand-in v2 manager on it checks
 * that the child is born in its cgroup and never migrated. */
static char *v2_root;
static int v2_attach_calls;

static char *
v2_dir (const char *name)
{
  return name != NULL ? xasprintf ("%s/orch-rtcheck-v2/%s", v2_root, name)
                      : xasprintf ("%s/orch-rtcheck-v2", v2_root);
}

static int
v2_create (cg_manager_t *m, const char *name, const cg_limits_t *lim, orch_err_t *err)
{
  char *parent = v2_dir (NULL), *dir = v2_dir (name);
  mkdir (parent, 0755);
  int ret = mkdir (dir, 0755) < 0 && errno != EEXIST ? orch_err_sys (err, "mkdir %s", dir) : 0;
  free (dir);
  free (parent);
  return ret;
}

static int
v2_attach (cg_manager_t *m, const char *name, pid_t pid, orch_err_t *err)
{
  v2_attach_calls++;
  char *dir = v2_dir (name);
  char *procs = xasprintf ("%s/cgroup.procs", dir);
  char buf[32];
  int fd = open (procs, O_WRONLY | O_CLOEXEC);
  int len = snprintf (buf, sizeof buf, "%d", (int) pid);
  int ret = fd >= 0 && write (fd, buf, (size_t) len) == len ? 0 : orch_err_sys (err, "%s", procs);
  if (fd >= 0)
    close (fd);
  free (procs);
  free (dir);
  return ret;
}

static int
v2_destroy (cg_manager_t *m, const char *name, orch_err_t *err)
{
  char *dir = v2_dir (name);
  for (int i = 0; i < 100 && rmdir (dir) < 0 && errno == EBUSY; i++)
    usleep (10000);
  free (dir);
  return 0;
}

static bool
v2_exists (cg_manager_t *m, const char *name)
{
  char *dir = v2_dir (name);
  bool ok = access (dir, F_OK) == 0;
  free (dir);
  return ok;
}

static char *
v2_path (cg_manager_t *m, const char *name, const char *controller)
{
  return v2_dir (name);
}

static const cg_ops_t v2_fake_ops = {
  .name = "v2-stand-in",
  .create = v2_create,
  .attach = v2_attach,
  .destroy = v2_destroy,
  .exists = v2_exists,
  .path = v2_path,
};

static void
check_v2_clone_into_cgroup (void)
{
  /* Any cgroup2 mount will do. */
  char *mi = slurp ("/proc/self/mountinfo");
  for (char *line = strtok (mi, "\n"); line != NULL; line = strtok (NULL, "\n"))
    {
      char mnt[512];
      if (strstr (line, " - cgroup2 ") != NULL && sscanf (line, "%*s %*s %*s %*s %511s", mnt) == 1)
        {
          v2_root = xstrdup (mnt);
          break;
        }
    }
  free (mi);
  if (v2_root == NULL)
    {
      printf ("# skip: no cgroup2 mount for the clone3 check\n");
      return;
    }
  cg_manager_t fake = { .ops = &v2_fake_ops, .layout = { .version = 2, .v2_root = v2_root } };
  rt_env_t env2 = { .state_dir = state_dir, .cg = &fake };
  char *cmd[] = { "sleep", "1000", NULL };
  ctr_t c;
  ctr_init (&c, "rtc-v2", cmd, 0);
  orch_err_t err = { 0 };
  int ret = rt->start (&env2, &c.a, &c.proc, &err);
  check (ret == 0, "start with a v2 manager (%s)", ret == 0 ? "ok" : err.msg);
  if (ret == 0)
    {
      /* Seen from the host, with no migration asked for. */
      char *path = xasprintf ("/proc/%d/cgroup", (int) c.proc.pid);
      char *cg = slurp (path);
      check (v2_attach_calls == 0 && strstr (cg, "0::/orch-rtcheck-v2/rtc-v2\n") != NULL,
             "born in its v2 cgroup by clone3, never migrated (%d attach calls)", v2_attach_calls);
      free (cg);
      free (path);
      rt->kill (&env2, c.id, &c.proc, SIGKILL, &err);
      wait_exit (c.proc.pid, 5000);
      rt->cleanup (&env2, c.id, &err);
      check (!v2_exists (&fake, c.id), "cleanup removes the v2 cgroup");
    }
  ctr_free (&c);
  /* What a start costs without the migration (hosts on cgroup v2). */
  measure_latency (&env2, 20, 100 * 1000, "v2-clone3-100ms-apart");
  char *parent = v2_dir (NULL);
  rmdir (parent);
  free (parent);
  free (v2_root);
  v2_root = NULL;
}

static void
measure_latency (rt_env_t *e, int n_starts, int gap_us, const char *label)
{
  enum
  {
    N = 50
  };
  double t[N];
  if (n_starts > N)
    n_starts = N;
  int n = 0;
  char *cmd[] = { "/bin/true", NULL };
  for (int i = 0; i < n_starts; i++)
    {
      char id[32];
      snprintf (id, sizeof id, "rtc-lat-%d", i);
      if (gap_us > 0)
        usleep ((useconds_t) gap_us);
      ctr_t c;
      ctr_init (&c, id, cmd, 64 << 20);
      orch_err_t err = { 0 };
      double t0 = now_ms ();
      int ret = rt->start (e, &c.a, &c.proc, &err);
      double took = now_ms () - t0;
      if (ret < 0)
        {
          check (0, "latency run %d: %s", i, err.msg);
          ctr_free (&c);
          return;
        }
      t[n++] = took;
      wait_exit (c.proc.pid, 10000);
      rt->cleanup (e, c.id, &err);
      ctr_free (&c);
    }
  qsort (t, (size_t) n, sizeof t[0], cmp_double);
  double median = n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
  printf ("# container start latency, %s, over %d starts: median %.2f ms, min %.2f ms, "
          "p90 %.2f ms, max %.2f ms\n",
          label, n, median, t[0], t[n * 9 / 10], t[n - 1]);
  printf ("{\"bench\":\"container_start\",\"mode\":\"%s\",\"n\":%d,\"median_ms\":%.3f,"
          "\"min_ms\":%.3f,\"p90_ms\":%.3f,\"max_ms\":%.3f}\n",
          label, n, median, t[0], t[n * 9 / 10], t[n - 1]);
  check (1, "measured start latency");
}

int
main (void)
{
  if (geteuid () != 0)
    {
      printf ("# skip: rt_check needs root\n");
      return 77;
    }
  const char *tar = getenv ("ORCH_TEST_BUSYBOX_TAR");
  if (tar == NULL || *tar == '\0')
    {
      fprintf (stderr, "rt_check: set ORCH_TEST_BUSYBOX_TAR (deploy/make-busybox-image.sh)\n");
      return 1;
    }
  if (getenv ("ORCH_INIT_PATH") == NULL)
    {
      /* build/tests/unit/rt_check -> build/bin/orch-init */
      char exe[PATH_MAX];
      ssize_t n = readlink ("/proc/self/exe", exe, sizeof exe - 1);
      if (n > 0)
        {
          exe[n] = '\0';
          *strrchr (exe, '/') = '\0';
          char *p = xasprintf ("%s/../../bin/orch-init", exe);
          setenv ("ORCH_INIT_PATH", p, 1);
          free (p);
        }
    }
  signal (SIGPIPE, SIG_IGN);

  state_dir = xstrdup ("/tmp/orch-rtcheck-XXXXXX");
  if (mkdtemp (state_dir) == NULL)
    {
      perror ("mkdtemp");
      return 1;
    }
  orch_err_t err = { 0 };
  if (image_import (state_dir, "busybox", tar, &err) < 0)
    {
      fprintf (stderr, "rt_check: %s\n", err.msg);
      return 1;
    }
  rootfs = image_rootfs (state_dir, "busybox", &err);
  check (rootfs != NULL, "busybox image imported");

  char parent[64];
  snprintf (parent, sizeof parent, "orch-rtcheck-%d", (int) getpid ());
  env.state_dir = state_dir;
  env.cg = cg_manager_new (parent, &err);
  if (env.cg == NULL)
    {
      fprintf (stderr, "rt_check: cgroups: %s\n", err.msg);
      return 1;
    }
  rt = rt_lookup ("container");
  check (rt != NULL && rt_lookup ("nope") == NULL, "rt_lookup finds \"container\" only");
  int ret = rt->probe (&env, &err);
  check (ret == 0, "probe (%s)", ret == 0 ? "ok" : err.msg);
  if (ret == 0)
    {
      check_first_container ();
      check_running_container ();
      check_early_sigterm ();
      check_host_network ();
      check_image_stays_readonly ();
      check_missing_command ();
      check_bad_rootfs ();
      check_v2_clone_into_cgroup ();
      measure_latency (&env, 50, 0, "back-to-back");
      measure_latency (&env, 20, 100 * 1000, "100ms-apart");
    }

  /* The parent cgroup made for this run goes too. */
  const char *mounts[] = { env.cg->layout.v2_root, env.cg->layout.v1_cpu, env.cg->layout.v1_cpuacct,
                           env.cg->layout.v1_memory, env.cg->layout.v1_pids };
  for (size_t i = 0; i < ORCH_ARRAY_LEN (mounts); i++)
    if (mounts[i] != NULL)
      {
        char *dir = xasprintf ("%s/%s", mounts[i], parent);
        rmdir (dir);
        free (dir);
      }
  cg_manager_free (env.cg);
  orch_rm_rf (state_dir);
  free (rootfs);
  free (state_dir);
  printf ("# %d checks, %d failed\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
