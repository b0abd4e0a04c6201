/* Host check of the container runtime (run as root by test_runtime.sh):
 * real namespaces, cgroups, overlay, orch-init, on a busybox image.
 *
 * Environment: ORCH_TEST_BUSYBOX_TAR (made by deploy/make-busybox-image.sh),
 * ORCH_INIT_PATH (the built orch-init). Exits 0 when every check passed,
 * 1 otherwise, 77 when it cannot run here (not root). Prints the median
 * start latency, for people and as one JSON line. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cg.h"
#include "host_check.h"
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
  int status = hc_wait_exit (c.proc.pid, 10000);
  check (status >= 0 && WIFEXITED (status) && WEXITSTATUS (status) == 3,
         "waitpid gives exit code 3 (status %#x)", status);
  char *log = hc_slurp (c.log);
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
  char *rec = hc_slurp (exit_path);
  check (strcmp (rec, "exited 3\n") == 0, "exit record says \"exited 3\" (got %s)", rec);
  free (rec);
  free (exit_path);

  check (env.cg->ops->exists (env.cg, c.id), "the cgroup exists until cleanup");
  ret = rt->cleanup (&env, c.id, &err);
  check (ret == 0, "cleanup (%s)", ret == 0 ? "ok" : err.msg);
  check (!env.cg->ops->exists (env.cg, c.id), "cleanup removed the cgroup");
  char *upper = xasprintf ("%s/scratch/upper", c.alloc_dir);
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
  char *limit = hc_slurp (limit_file);
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

  double t0 = hc_now_ms ();
  ret = rt->kill (&env, c.id, &c.proc, SIGTERM, &err);
  int status = hc_wait_exit (c.proc.pid, 5000);
  double took = hc_now_ms () - t0;
  check (ret == 0 && status >= 0 && took < 1000,
         "SIGTERM stops `sleep 1000` through orch-init in %.1f ms", took);
  check (status >= 0 && WIFEXITED (status) && WEXITSTATUS (status) == 128 + SIGTERM,
         "orch-init exits 143 after SIGTERM (status %#x)", status);
  char *exit_path = xasprintf ("%s/exit", c.alloc_dir);
  char *rec = hc_slurp (exit_path);
  check (strcmp (rec, "signaled 15\n") == 0, "exit record says \"signaled 15\" (got \"%s\")", rec);
  free (rec);
  free (exit_path);
  if (status < 0)
    {
      kill (c.proc.pid, SIGKILL);
      hc_wait_exit (c.proc.pid, 5000);
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
      int status = hc_wait_exit (c.proc.pid, 2000);
      if (status < 0)
        {
          lost++;
          kill (c.proc.pid, SIGKILL);
          hc_wait_exit (c.proc.pid, 5000);
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
  hc_wait_exit (c.proc.pid, 5000);
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
  int status = hc_wait_exit (c.proc.pid, 10000);
  check (status >= 0 && WIFEXITED (status), "the writing container exits (status %#x)", status);
  char *log = hc_slurp (c.log);
  char *upper_x = xasprintf ("%s/scratch/upper/bin/x", c.alloc_dir);
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

/* A spec may adjust the default seccomp filter: deny more, or allow one of
 * the default-denied calls; it cannot turn the filter off. */
static void
check_seccomp_adjustments (void)
{
  char *cmd[] = { "/bin/sh", "-c",
                  "mkdir /tmp/d 2>/dev/null; echo mkdir-rc=$?; "
                  "unshare -U true 2>/dev/null; echo unshare-rc=$?; "
                  "umount /proc 2>/dev/null; echo umount-rc=$?",
                  NULL };
  char *deny[] = { "mkdir", "mkdirat", NULL };
  char *allow[] = { "unshare", NULL };
  ctr_t c;
  ctr_init (&c, "rtc-seccomp", cmd, 0);
  c.spec.seccomp_deny = deny;
  c.spec.seccomp_allow = allow;
  orch_err_t err = { 0 };
  int ret = ctr_start (&c, &err);
  check (ret == 0, "a container with seccomp allow/deny starts (%s)", ret == 0 ? "ok" : err.msg);
  if (ret == 0)
    {
      hc_wait_exit (c.proc.pid, 10000);
      char *log = hc_slurp (c.log);
      check (strstr (log, "mkdir-rc=1") != NULL, "seccomp.deny makes mkdir fail (%s)", log);
      check (strstr (log, "unshare-rc=0") != NULL, "seccomp.allow lets unshare through (%s)", log);
      check (strstr (log, "umount-rc=0") == NULL, "the rest of the default filter stays (%s)", log);
      free (log);
      rt->cleanup (&env, c.id, &err);
    }
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
      int status = hc_wait_exit (c.proc.pid, 10000);
      check (status >= 0 && WIFEXITED (status) && WEXITSTATUS (status) == 127,
             "a missing command exits 127 (status %#x)", status);
      char *exit_path = xasprintf ("%s/exit", c.alloc_dir);
      char *rec = hc_slurp (exit_path);
      check (strcmp (rec, "failed exec /bin/nonexistent: No such file or directory\n") == 0,
             "exit record names the failed exec (got \"%s\")", rec);
      free (rec);
      free (exit_path);
      char *log = hc_slurp (c.log);
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
  char *upper = xasprintf ("%s/scratch/upper", c.alloc_dir);
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

/* ---- isolation, seen from inside a running container ---- */

/* One shell script probing every isolation promise; its output is checked
 * line by line. Run as the host's root (capabilities dropped) and as the
 * root of a user namespace, where the mount and unshare denials can only
 * come from seccomp: that root holds CAP_SYS_ADMIN over its namespaces. */
static const char isolation_script[]
    = "{ umount /proc; } 2>&1 | sed 's/^/umount-err /'; "
      "{ mount -t tmpfs t /mnt; } 2>&1 | sed 's/^/mount-err /'; "
      "unshare -U true 2>&1 | sed 's/^/unshare-err /'; "
      "unshare -U true 2>/dev/null; echo unshare-rc=$?; "
      "echo kcore-bytes=$(head -c 16 /proc/kcore 2>/dev/null | wc -c); "
      "{ echo h > /proc/sysrq-trigger; } 2>&1 | sed 's/^/sysrq-err /'; "
      "{ echo 1 > /proc/sys/kernel/ns_last_pid; } 2>&1 | sed 's/^/procsys-err /'; "
      "{ touch /sys/orch-ro-test; } 2>&1 | sed 's/^/sys-err /'; "
      "echo firmware-entries=$(ls -A /sys/firmware 2>/dev/null | wc -l); "
      "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; "
      "sed 's/^/cgroup-line /' /proc/self/cgroup; "
      "grep -E '^Max (open files|core file size)' /proc/self/limits | tr -s ' '; "
      "sed 's/^/hosts-line /' /etc/hosts; sed 's/^/resolv-line /' /etc/resolv.conf; "
      "echo done";

static int
log_has_line_prefix (const char *log, const char *prefix, const char *needle)
{
  size_t plen = strlen (prefix);
  for (const char *l = log; l != NULL && *l != '\0';)
    {
      const char *eol = strchr (l, '\n');
      size_t n = eol != NULL ? (size_t) (eol - l) : strlen (l);
      if (n >= plen && strncmp (l, prefix, plen) == 0 && memmem (l, n, needle, strlen (needle)))
        return 1;
      l = eol != NULL ? eol + 1 : NULL;
    }
  return 0;
}

static void
check_isolation_log (const char *label, const char *log, const char *id)
{
  check (log_has_line_prefix (log, "umount-err ", "Operation not permitted"),
         "%s: umount is denied with EPERM", label);
  check (log_has_line_prefix (log, "mount-err ", "permission denied")
             || log_has_line_prefix (log, "mount-err ", "Operation not permitted"),
         "%s: mount is denied with EPERM", label);
  check (log_has_line_prefix (log, "unshare-err ", "Operation not permitted")
             && strstr (log, "unshare-rc=0\n") == NULL,
         "%s: unshare -U is denied with EPERM", label);
  check (strstr (log, "kcore-bytes=0\n") != NULL, "%s: /proc/kcore reads nothing", label);
  /* Read-only for the host's root; in a user namespace it is not even
   * visible as writable. Either way the write fails. */
  check (log_has_line_prefix (log, "sysrq-err ", "can't create"),
         "%s: /proc/sysrq-trigger is not writable", label);
  check (log_has_line_prefix (log, "procsys-err ", "Read-only file system"),
         "%s: /proc/sys is read-only", label);
  check (log_has_line_prefix (log, "sys-err ", "Read-only file system"), "%s: /sys is read-only",
         label);
  check (strstr (log, "firmware-entries=0\n") != NULL, "%s: /sys/firmware is masked (empty)",
         label);
  check (strstr (log, "CapEff:\t00000000a80425fb\n") != NULL
             && strstr (log, "CapBnd:\t00000000a80425fb\n") != NULL,
         "%s: effective and bounding capabilities are Docker's default set", label);
  check (strstr (log, "NoNewPrivs:\t1\n") != NULL && strstr (log, "Seccomp:\t2\n") != NULL,
         "%s: no_new_privs and a seccomp filter", label);
  int cg_lines = 0, cg_root = 0;
  for (const char *l = strstr (log, "cgroup-line "); l != NULL; l = strstr (l + 1, "cgroup-line "))
    {
      cg_lines++;
      const char *eol = strchr (l, '\n');
      if (eol != NULL && eol - l >= 2 && eol[-1] == '/' && eol[-2] == ':')
        cg_root++;
    }
  check (cg_lines > 0 && cg_lines == cg_root,
         "%s: cgroup namespace: every /proc/self/cgroup path is \"/\" (%d of %d)", label, cg_root,
         cg_lines);
  struct rlimit mine;
  getrlimit (RLIMIT_NOFILE, &mine);
  char *nofile_hi = xasprintf ("Max open files 1048576 1048576 files");
  char *nofile_host
      = xasprintf ("Max open files %llu %llu files", (unsigned long long) mine.rlim_max,
                   (unsigned long long) mine.rlim_max);
  check (strstr (log, nofile_hi) != NULL || strstr (log, nofile_host) != NULL,
         "%s: RLIMIT_NOFILE is 1048576 (or the host's maximum) soft and hard", label);
  check (strstr (log, "Max core file size 0 0 bytes") != NULL, "%s: RLIMIT_CORE is 0", label);
  free (nofile_hi);
  free (nofile_host);
  char *hosts_line = xasprintf ("\t%s", id);
  check (log_has_line_prefix (log, "hosts-line ", "localhost")
             && log_has_line_prefix (log, "hosts-line ", hosts_line),
         "%s: /etc/hosts names localhost and the container", label);
  free (hosts_line);
  /* The host's resolvers, less those on its loopback (unreachable here). */
  char *host_resolv = hc_slurp ("/etc/resolv.conf");
  int resolv_ok = 1;
  for (char *l = strtok (host_resolv, "\n"); l != NULL; l = strtok (NULL, "\n"))
    {
      int loop = strncmp (l, "nameserver 127.", 15) == 0;
      int seen = log_has_line_prefix (log, "resolv-line ", l);
      if (loop == seen)
        resolv_ok = 0;
    }
  free (host_resolv);
  check (resolv_ok, "%s: /etc/resolv.conf is the host's without loopback nameservers", label);
  check (strstr (log, "\ndone\n") != NULL, "%s: the probe script ran to its end", label);
}

static void
check_isolation (void)
{
  char *cmd[] = { "/bin/sh", "-c", (char *) isolation_script, NULL };
  ctr_t c;
  ctr_init (&c, "rtc-iso", cmd, 64 << 20);
  orch_err_t err = { 0 };
  int ret = ctr_start (&c, &err);
  check (ret == 0, "start the isolation probe (%s)", ret == 0 ? "ok" : err.msg);
  if (ret == 0)
    {
      int status = hc_wait_exit (c.proc.pid, 10000);
      check (status >= 0 && WIFEXITED (status), "the isolation probe exits (status %#x)", status);
      char *log = hc_slurp (c.log);
      int before = failures;
      check_isolation_log ("host root", log, c.id);
      if (failures > before)
        printf ("# log:\n%s\n", log);
      free (log);
      rt->cleanup (&env, c.id, &err);
    }
  ctr_free (&c);
}

/* ---- user namespaces ---- */

static long long
status_field (pid_t pid, const char *key)
{
  char *path = xasprintf ("/proc/%d/status", (int) pid);
  char *st = hc_slurp (path);
  free (path);
  long long v = -1;
  char *k = xasprintf ("\n%s:\t", key);
  char *p = strstr (st, k);
  if (p != NULL)
    v = atoll (p + strlen (k));
  free (k);
  free (st);
  return v;
}

static void
check_user_namespace (void)
{
  char *cmd[]
      = { "/bin/sh", "-c",
          "echo uid=$(id -u) gid=$(id -g); echo busybox-owner=$(stat -c %u:%g /bin/busybox); "
          "echo hi > /etc/newfile && echo write-ok; "
          "echo newfile-owner=$(stat -c %u /etc/newfile); "
          "echo ready; exec sleep 1000",
          NULL };
  ctr_t c;
  ctr_init (&c, "rtc-userns", cmd, 64 << 20);
  c.spec.user_namespace = true;
  orch_err_t err = { 0 };
  int ret = ctr_start (&c, &err);
  check (ret == 0, "start a user-namespace container (%s)", ret == 0 ? "ok" : err.msg);
  if (ret < 0)
    {
      ctr_free (&c);
      return;
    }
  char *log = NULL;
  for (int i = 0; i < 500; i++)
    {
      free (log);
      log = hc_slurp (c.log);
      if (strstr (log, "ready\n") != NULL)
        break;
      usleep (10000);
    }
  char *map_path = xasprintf ("/proc/%d/uid_map", (int) c.proc.pid);
  char *map = hc_slurp (map_path);
  unsigned inside = 1, host = 0, count = 0;
  sscanf (map, "%u %u %u", &inside, &host, &count);
  check (inside == 0 && host >= 100000 && count == 65536,
         "container root maps to an unprivileged host range (uid_map: %u %u %u)", inside, host,
         count);
  check (strstr (log, "uid=0 gid=0\n") != NULL, "inside, id -u and id -g are 0");
  long long host_uid = status_field (c.proc.pid, "Uid");
  long long host_gid = status_field (c.proc.pid, "Gid");
  check (host_uid == (long long) host && host_gid == (long long) host && host_uid >= 100000,
         "on the host the workload's init runs as uid %lld gid %lld (mapped %u)", host_uid,
         host_gid, host);
  check (strstr (log, "busybox-owner=0:0\n") != NULL,
         "the image's root-owned files appear owned by root inside (idmapped lower layer)");
  check (strstr (log, "write-ok\nnewfile-owner=0\n") != NULL,
         "root inside can write the scratch layer");
  char *upper_file = xasprintf ("%s/scratch/upper/etc/newfile", c.alloc_dir);
  struct stat st;
  check (stat (upper_file, &st) == 0 && st.st_uid == host,
         "its files land in the scratch layer owned by the mapped uid %u", host);
  free (upper_file);
  char *img_bb = xasprintf ("%s/bin/busybox", rootfs);
  check (stat (img_bb, &st) == 0 && st.st_uid == 0, "the image itself still belongs to root");
  free (img_bb);
  if (failures > 0)
    printf ("# log:\n%s\n", log);
  free (log);
  free (map);
  free (map_path);

  /* A second one at the same time gets a range of its own. */
  ctr_t c2;
  char *cmd2[] = { "sleep", "1000", NULL };
  ctr_init (&c2, "rtc-userns2", cmd2, 0);
  c2.spec.user_namespace = true;
  ret = ctr_start (&c2, &err);
  check (ret == 0, "start a second user-namespace container (%s)", ret == 0 ? "ok" : err.msg);
  if (ret == 0)
    {
      long long uid2 = status_field (c2.proc.pid, "Uid");
      check (uid2 >= 100000 && uid2 != host_uid
                 && (uid2 - host_uid >= 65536 || host_uid - uid2 >= 65536),
             "two user-namespace containers get disjoint ranges (%lld, %lld)", host_uid, uid2);
      rt->kill (&env, c2.id, &c2.proc, SIGKILL, &err);
      hc_wait_exit (c2.proc.pid, 5000);
      rt->cleanup (&env, c2.id, &err);
    }
  ctr_free (&c2);

  rt->kill (&env, c.id, &c.proc, SIGKILL, &err);
  hc_wait_exit (c.proc.pid, 5000);
  ret = rt->cleanup (&env, c.id, &err);
  check (ret == 0, "cleanup of the user-namespace container (%s)", ret == 0 ? "ok" : err.msg);
  char *slot = xasprintf ("%s/userns/%u", state_dir, (host - 100000) / 65536);
  check (access (slot, F_OK) < 0, "cleanup released its id range");
  free (slot);
  ctr_free (&c);

  /* The same probes as for the host's root: here only seccomp can deny. */
  char *icmd[] = { "/bin/sh", "-c", (char *) isolation_script, NULL };
  ctr_t ci;
  ctr_init (&ci, "rtc-userns-iso", icmd, 64 << 20);
  ci.spec.user_namespace = true;
  ret = ctr_start (&ci, &err);
  check (ret == 0, "start the isolation probe in a user namespace (%s)", ret == 0 ? "ok" : err.msg);
  if (ret == 0)
    {
      int status = hc_wait_exit (ci.proc.pid, 10000);
      check (status >= 0 && WIFEXITED (status), "the probe exits (status %#x)", status);
      char *ilog = hc_slurp (ci.log);
      int before = failures;
      check_isolation_log ("userns root", ilog, ci.id);
      if (failures > before)
        printf ("# log:\n%s\n", ilog);
      free (ilog);
      rt->cleanup (&env, ci.id, &err);
    }
  ctr_free (&ci);
}

/* ---- re-adoption after an agent restart ---- */

static void
check_adopt (void)
{
  char *cmd[] = { "sleep", "1000", NULL };
  ctr_t c;
  ctr_init (&c, "rtc-adopt", cmd, 0);
  /* The "agent" that starts the workload is a process that then dies
   * without stopping it, as a SIGKILLed agent would. */
  int pfd[2];
  if (pipe (pfd) < 0)
    {
      check (0, "pipe");
      ctr_free (&c);
      return;
    }
  pid_t agent = fork ();
  if (agent == 0)
    {
      close (pfd[0]);
      orch_err_t e = { 0 };
      int r = ctr_start (&c, &e);
      pid_t p = r == 0 ? c.proc.pid : -1;
      (void) !write (pfd[1], &p, sizeof p);
      _exit (r == 0 ? 0 : 1);
    }
  close (pfd[1]);
  pid_t first = -1;
  (void) !read (pfd[0], &first, sizeof first);
  close (pfd[0]);
  int st;
  waitpid (agent, &st, 0);
  check (first > 0, "the first agent started the workload (pid %d) and died", (int) first);
  if (first <= 0)
    {
      ctr_free (&c);
      return;
    }
  rt_proc_t p;
  memset (&p, 0, sizeof p);
  orch_err_t err = { 0 };
  int ret = rt->adopt (&env, c.id, c.alloc_dir, &p, &err);
  check (ret == 1 && p.pid == first && p.started_ms > 0,
         "adopt finds the workload still running (ret %d, pid %d)", ret, (int) p.pid);
  check (kill (first, 0) == 0 && status_field (first, "PPid") != (long long) getpid (),
         "it was not restarted: same pid, no longer anyone's child here");

  /* A pid that is reused by another process is not adopted. */
  char *state_path = xasprintf ("%s/state", c.alloc_dir);
  char *saved = hc_slurp (state_path);
  char *forged = xasprintf ("pid %d\nstarttime 1\n", (int) first);
  orch_write_file_atomic (state_path, forged, strlen (forged), 0644);
  ret = rt->adopt (&env, c.id, c.alloc_dir, &p, &err);
  check (ret == 0, "a pid whose start time differs is not adopted (ret %d)", ret);
  orch_write_file_atomic (state_path, "garbage", 7, 0644);
  orch_err_clear (&err);
  ret = rt->adopt (&env, c.id, c.alloc_dir, &p, &err);
  check (ret == -1 && err.msg[0] != '\0', "a malformed state file is an error (%s)", err.msg);
  orch_write_file_atomic (state_path, saved, strlen (saved), 0644);
  free (forged);
  free (saved);

  /* Supervised again: stopped through the adopted handle, its exit read
   * from the record (the exit status went to whoever reaped it). */
  ret = rt->adopt (&env, c.id, c.alloc_dir, &p, &err);
  rt->kill (&env, c.id, &p, SIGTERM, &err);
  int gone = 0;
  for (int i = 0; i < 500 && !gone; i++)
    {
      rt_proc_t q;
      if (rt->adopt (&env, c.id, c.alloc_dir, &q, &err) == 0)
        gone = 1;
      else
        usleep (10000);
    }
  check (gone, "after SIGTERM adopt reports the workload gone");
  int code = -1;
  char *reason = NULL;
  ret = rt_exit_record_read (c.alloc_dir, &code, &reason, &err);
  check (ret == 1 && code == 143, "the exit record of the adopted workload says 143 (%s)",
         reason != NULL ? reason : err.msg);
  free (reason);
  rt->cleanup (&env, c.id, &err);
  check (access (state_path, F_OK) < 0, "cleanup removes the state file");
  ret = rt->adopt (&env, c.id, c.alloc_dir, &p, &err);
  check (ret == -1, "nothing to adopt after cleanup");
  free (state_path);
  ctr_free (&c);
}

/* ---- OOM ---- */

static void
check_oom (void)
{
  /* tail buffers a line that never ends. */
  char *cmd[] = { "tail", "/dev/zero", NULL };
  ctr_t c;
  ctr_init (&c, "rtc-oom", cmd, 32 << 20);
  orch_err_t err = { 0 };
  int ret = ctr_start (&c, &err);
  check (ret == 0, "start a container that runs out of memory (%s)", ret == 0 ? "ok" : err.msg);
  if (ret < 0)
    {
      ctr_free (&c);
      return;
    }
  int status = hc_wait_exit (c.proc.pid, 30000);
  check (status >= 0 && WIFEXITED (status) && WEXITSTATUS (status) == 137,
         "orch-init exits 137 when the workload is OOM-killed (status %#x)", status);
  int code = -1;
  char *reason = NULL;
  ret = rt_exit_record_read (c.alloc_dir, &code, &reason, &err);
  check (ret == 1 && code == 137 && strcmp (reason, "killed by SIGKILL") == 0,
         "the exit record says signaled 9 (%s)", reason != NULL ? reason : err.msg);
  free (reason);
  cg_usage_t u = { 0 };
  ret = rt->usage (&env, c.id, &u, &err);
  check (ret == 0 && u.oom_kills > 0, "the cgroup counts the OOM kill (oom_kills %lld)",
         (long long) u.oom_kills);
  if (status < 0)
    {
      kill (c.proc.pid, SIGKILL);
      hc_wait_exit (c.proc.pid, 5000);
    }
  rt->cleanup (&env, c.id, &err);
  ctr_free (&c);
}

/* ---- bridge networking with a published port ----
 *
 * Runs in a forked process with a network namespace of its own, acting as
 * the node: the bridge, its nftables table and the client's link vanish
 * with it and the host's network is never touched. A "client host" is
 * another namespace (a sleeping child) joined to the node by a veth, with
 * no route to the workload subnet: only the published port on the node's
 * address can get it to the container. */
#define BR_NODE_ADDR "10.231.9.1"
#define BR_CLIENT_ADDR "10.231.9.2"
#define BR_SUBNET "10.231.8.0/24"
#define BR_HOST_PORT 18080

static void
bridge_node (void)
{
  if (unshare (CLONE_NEWNET) < 0)
    {
      check (0, "bridge: unshare a node network namespace: %s", strerror (errno));
      return;
    }
  hc_sh ("ip link set lo up");
  bool linked;
  pid_t client = hc_client_host ("rtc-cl0", BR_NODE_ADDR, BR_CLIENT_ADDR, &linked);
  check (linked, "bridge: a client host joined to the node by a veth");

  char *net_state = xasprintf ("%s/net-state", state_dir);
  orch_mkdir_p (net_state, 0755);
  net_config_t cfg = { .state_dir = net_state, .bridge = "rtcbr0", .subnet = BR_SUBNET };
  orch_err_t err = { 0 };
  net_t *n = net_new (&cfg, &err);
  check (n != NULL, "bridge: net_new (%s)", n != NULL ? "ok" : err.msg);
  if (n == NULL)
    goto out;
  env.net = n;

  char *cmd[] = { "/bin/sh", "-c",
                  "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && "
                  "exec httpd -f -p 8080 -h /www",
                  NULL };
  ctr_t c;
  ctr_init (&c, "rtc-bridge", cmd, 64 << 20);
  net_port_t ports[] = { { .port = 8080, .host_port = BR_HOST_PORT } };
  c.a.ports = ports;
  c.a.n_ports = 1;
  int ret = ctr_start (&c, &err);
  check (ret == 0, "bridge: start a container with a published port (%s)",
         ret == 0 ? "ok" : err.msg);
  if (ret == 0)
    {
      check (strncmp (c.proc.address, "10.231.8.", 9) == 0,
             "bridge: the workload's address is on the node subnet (%s)", c.proc.address);
      char *hosts_path = xasprintf ("%s/scratch/upper/etc/hosts", c.alloc_dir);
      char *hosts = hc_slurp (hosts_path);
      char *want = xasprintf ("%s\trtc-bridge\n", c.proc.address);
      check (c.proc.address[0] != '\0' && strstr (hosts, want) != NULL,
             "bridge: /etc/hosts maps the hostname to that address");
      free (want);
      free (hosts);
      free (hosts_path);
      char *out = xasprintf ("%s/client-out", state_dir);
      int got = 0;
      for (int i = 0; i < 50 && !got; i++)
        {
          hc_sh ("nsenter -t %d -n curl -s -m 2 -o %s http://" BR_NODE_ADDR ":%d/ "
              "2>/dev/null",
              (int) client, out, BR_HOST_PORT);
          char *body = hc_slurp (out);
          got = strcmp (body, "hello-from-rtc-bridge\n") == 0;
          free (body);
          if (!got)
            usleep (100000);
        }
      check (got,
             "bridge: from another network namespace, the published port " BR_NODE_ADDR
             ":%d answers",
             BR_HOST_PORT);
      if (!got)
        {
          char *log = hc_slurp (c.log);
          printf ("# container log:\n%s\n", log);
          free (log);
          hc_sh ("nsenter -t %d -n curl -sS -m 2 http://" BR_NODE_ADDR ":%d/ 2>&1 | "
              "sed 's/^/# client: /'; nft list ruleset | sed 's/^/# /'; ip -br addr | sed 's/^/# "
              "/'",
              (int) client, BR_HOST_PORT);
        }
      free (out);
      char addr[64];
      check (net_lookup (n, c.id, addr, sizeof addr) >= 0 && strcmp (addr, c.proc.address) == 0,
             "bridge: the address is leased to the allocation");
      rt_proc_t adopted;
      check (rt->adopt (&env, c.id, c.alloc_dir, &adopted, &err) == 1
                 && strcmp (adopted.address, c.proc.address) == 0,
             "bridge: adopt gives the address back");
      rt->kill (&env, c.id, &c.proc, SIGKILL, &err);
      hc_wait_exit (c.proc.pid, 5000);
      ret = rt->cleanup (&env, c.id, &err);
      check (ret == 0 && net_lookup (n, c.id, addr, sizeof addr) < 0,
             "bridge: cleanup releases the address (%s)", ret == 0 ? "ok" : err.msg);
    }
  ctr_free (&c);
  env.net = NULL;
  net_free (n);
out:
  kill (client, SIGKILL);
  waitpid (client, NULL, 0);
  free (net_state);
}

static void
check_bridge (void)
{
  if (system (
          "command -v ip >/dev/null && command -v nsenter >/dev/null && command -v curl >/dev/null")
      != 0)
    {
      printf ("# skip: the bridge check needs ip, nsenter and curl\n");
      return;
    }
  fflush (stdout);
  pid_t node = fork ();
  if (node == 0)
    {
      int before = failures;
      bridge_node ();
      fflush (stdout);
      _exit (failures - before > 100 ? 100 : failures - before);
    }
  int st = 0;
  waitpid (node, &st, 0);
  if (!WIFEXITED (st))
    check (0, "bridge: the node process died (status %#x)", st);
  else
    failures += WEXITSTATUS (st);
}

/* The scratch sets made ahead: probe leaves some ready, a start takes one
 * (the same directory, renamed) instead of making its own. */
static void
check_scratch_pool (void)
{
  char *pool = xasprintf ("%s/rt-scratch", state_dir);
  ino_t inos[16];
  int n = 0;
  DIR *d = opendir (pool);
  struct dirent *e;
  while (d != NULL && (e = readdir (d)) != NULL && n < 16)
    {
      if (e->d_name[0] == '.' || strncmp (e->d_name, "tmp-", 4) == 0)
        continue;
      char *p = xasprintf ("%s/%s", pool, e->d_name);
      struct stat st;
      char *etc_hosts = xasprintf ("%s/upper/etc/hosts", p);
      if (stat (p, &st) == 0 && access (etc_hosts, F_OK) == 0)
        inos[n++] = st.st_ino;
      free (etc_hosts);
      free (p);
    }
  if (d != NULL)
    closedir (d);
  check (n >= 1, "ready scratch sets wait in <state>/rt-scratch (%d)", n);
  char *cmd[] = { "true", NULL };
  ctr_t c;
  ctr_init (&c, "rtc-pool", cmd, 0);
  orch_err_t err = { 0 };
  int ret = ctr_start (&c, &err);
  if (ret == 0)
    {
      char *scratch = xasprintf ("%s/scratch", c.alloc_dir);
      struct stat st;
      int taken = 0;
      if (stat (scratch, &st) == 0)
        for (int i = 0; i < n; i++)
          taken |= inos[i] == st.st_ino;
      check (taken, "a start takes a ready set instead of making one");
      free (scratch);
      hc_wait_exit (c.proc.pid, 10000);
      rt->cleanup (&env, c.id, &err);
    }
  else
    check (0, "start for the pool check: %s", err.msg);
  ctr_free (&c);
  free (pool);
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
  char *mi = hc_slurp ("/proc/self/mountinfo");
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
      char *cg = hc_slurp (path);
      check (v2_attach_calls == 0 && strstr (cg, "0::/orch-rtcheck-v2/rtc-v2\n") != NULL,
             "born in its v2 cgroup by clone3, never migrated (%d attach calls)", v2_attach_calls);
      free (cg);
      free (path);
      rt->kill (&env2, c.id, &c.proc, SIGKILL, &err);
      hc_wait_exit (c.proc.pid, 5000);
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

/* memory.oom.group on v2, where this host has no memory controller: a
 * stand-in "v2" manager whose cgroup is a plain directory with the file.
 * clone3 refuses a directory that is no cgroup, so the start falls back to
 * clone and the (no-op) attach. */
static char *fake_oom_dir;

static int
oomfake_create (cg_manager_t *m, const char *name, const cg_limits_t *lim, orch_err_t *err)
{
  orch_mkdir_p (fake_oom_dir, 0755);
  char *f = xasprintf ("%s/memory.oom.group", fake_oom_dir);
  int r = orch_write_file_atomic (f, "0\n", 2, 0644);
  free (f);
  return r < 0 ? orch_err_set (err, -r, "fake memory.oom.group") : 0;
}

static int
oomfake_attach (cg_manager_t *m, const char *name, pid_t pid, orch_err_t *err)
{
  return 0;
}

static int
oomfake_destroy (cg_manager_t *m, const char *name, orch_err_t *err)
{
  return 0;
}

static char *
oomfake_path (cg_manager_t *m, const char *name, const char *controller)
{
  return xstrdup (fake_oom_dir);
}

static const cg_ops_t oomfake_ops = {
  .name = "v2-oom-stand-in",
  .create = oomfake_create,
  .attach = oomfake_attach,
  .destroy = oomfake_destroy,
  .path = oomfake_path,
};

static void
check_v2_oom_group (void)
{
  fake_oom_dir = xasprintf ("%s/fake-v2-cgroup", state_dir);
  cg_manager_t fake = { .ops = &oomfake_ops, .layout = { .version = 2 } };
  rt_env_t env2 = { .state_dir = state_dir, .cg = &fake };
  char *cmd[] = { "true", NULL };
  ctr_t c;
  ctr_init (&c, "rtc-oomgroup", cmd, 32 << 20);
  orch_err_t err = { 0 };
  int ret = rt->start (&env2, &c.a, &c.proc, &err);
  check (ret == 0, "start with a stand-in v2 manager (%s)", ret == 0 ? "ok" : err.msg);
  if (ret == 0)
    {
      char *f = xasprintf ("%s/memory.oom.group", fake_oom_dir);
      char *v = hc_slurp (f);
      check (strcmp (v, "1") == 0 || strcmp (v, "1\n") == 0,
             "on cgroup v2 memory.oom.group is set to 1 (got \"%s\")", v);
      free (v);
      free (f);
      hc_wait_exit (c.proc.pid, 10000);
      rt->cleanup (&env2, c.id, &err);
    }
  ctr_free (&c);
  orch_rm_rf (fake_oom_dir);
  free (fake_oom_dir);
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
      double t0 = hc_now_ms ();
      int ret = rt->start (e, &c.a, &c.proc, &err);
      double took = hc_now_ms () - t0;
      if (ret < 0)
        {
          check (0, "latency run %d: %s", i, err.msg);
          ctr_free (&c);
          return;
        }
      t[n++] = took;
      hc_wait_exit (c.proc.pid, 10000);
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
  /* The image store has its own tests: a plain unpacked tree is all a
   * runtime is given. */
  rootfs = xasprintf ("%s/images/busybox/rootfs", state_dir);
  orch_mkdir_p (rootfs, 0755);
  char *untar = xasprintf ("tar -xpf '%s' -C '%s' --numeric-owner", tar, rootfs);
  int tar_rc = system (untar);
  free (untar);
  check (tar_rc == 0, "busybox image unpacked");
  if (tar_rc != 0)
    return 1;

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
      check_scratch_pool ();
      check_first_container ();
      check_isolation ();
      check_user_namespace ();
      check_adopt ();
      check_oom ();
      check_seccomp_adjustments ();
      check_bridge ();
      check_running_container ();
      check_early_sigterm ();
      check_host_network ();
      check_image_stays_readonly ();
      check_missing_command ();
      check_bad_rootfs ();
      check_v2_clone_into_cgroup ();
      check_v2_oom_group ();
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
