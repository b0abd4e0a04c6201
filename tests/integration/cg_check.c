/* Host check of the cgroup manager on this machine's real cgroups (run as
 * root by test_cgroup_host.sh): limits land in the kernel's files and are
 * enforced, attached processes show the cgroup in /proc/<pid>/cgroup, usage
 * and OOM kills are reported, and destroy kills everything and removes the
 * cgroups. Works on whichever of v1 and v2 the host has.
 *
 * Exits 0 when every check passed, 1 otherwise, 77 when it cannot run here
 * (not root, no usable cgroups). Removes what it made whatever happens. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cg.h"
#include "orch_util.h"

static int failures;
static int checks;
static cg_manager_t *m;
static char parent[64];

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
slurp (const char *dir, const char *file)
{
  cleanup_free char *path = file != NULL ? xasprintf ("%s/%s", dir, file) : xstrdup (dir);
  char *data = NULL;
  size_t len;

  if (orch_read_file (path, 1 << 20, &data, &len) < 0)
    return xstrdup ("<unreadable>");
  while (len > 0 && data[len - 1] == '\n')
    data[--len] = '\0';
  return data;
}

static void
check_file (const char *dir, const char *file, const char *want)
{
  cleanup_free char *got = slurp (dir, file);

  check (strcmp (got, want) == 0, "%s/%s is \"%s\" (want \"%s\")", dir, file, got, want);
}

static bool
is_dir (const char *path)
{
  struct stat st;

  return stat (path, &st) == 0 && S_ISDIR (st.st_mode);
}

static int64_t
keyed (const char *dir, const char *file, const char *key)
{
  cleanup_free char *text = slurp (dir, file);
  int64_t v = -1;

  if (cg_parse_keyed (text, key, &v) < 0)
    return -1;
  return v;
}

/* The hierarchies the manager uses, each once (one on v2). */
static size_t
mounts (const char *out[4])
{
  const char *all[4]
      = { m->layout.v1_memory, m->layout.v1_cpu, m->layout.v1_cpuacct, m->layout.v1_pids };
  size_t n = 0, i, j;

  if (m->layout.version == 2)
    {
      out[0] = m->layout.v2_root;
      return 1;
    }
  for (i = 0; i < 4; i++)
    {
      bool dup = false;
      if (all[i] == NULL)
        continue;
      for (j = 0; j < n; j++)
        dup = dup || strcmp (out[j], all[i]) == 0;
      if (!dup)
        out[n++] = all[i];
    }
  return n;
}

static void
cleanup (void)
{
  static const char *const names[] = { "c1", "hog", "bomb", "nested" };
  const char *mnt[4];
  size_t n, i;

  if (m == NULL)
    return;
  for (i = 0; i < ORCH_ARRAY_LEN (names); i++)
    {
      orch_err_t err = { 0 };
      if (m->ops->destroy (m, names[i], &err) < 0)
        fprintf (stderr, "cleanup: %s\n", err.msg);
    }
  n = mounts (mnt);
  for (i = 0; i < n; i++)
    {
      cleanup_free char *dir = xasprintf ("%s/%s", mnt[i], parent);
      if (rmdir (dir) < 0 && errno != ENOENT)
        fprintf (stderr, "cleanup: rmdir %s: %s\n", dir, strerror (errno));
    }
  cg_manager_free (m);
  m = NULL;
}

/* Not async-signal-safe, knowingly: an interrupted or hung run must not
 * leave cgroups and processes behind, and this process does nothing else. */
static void
on_signal (int sig)
{
  cleanup ();
  _exit (128 + sig);
}

static void
burn_cpu_ms (long ms)
{
  struct timespec ts;
  volatile uint64_t x = 0;

  for (;;)
    {
      int i;
      for (i = 0; i < 100000; i++)
        x += (uint64_t) i;
      clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &ts);
      if (ts.tv_sec * 1000 + ts.tv_nsec / 1000000 >= ms)
        break;
    }
}

/* A child that waits for a byte on go, runs body, writes a byte to done and
 * then sleeps until killed. */
typedef struct kid_s
{
  pid_t pid;
  int go;   /* write end */
  int done; /* read end */
} kid_t;

static kid_t
spawn (void (*body) (void))
{
  int go[2], done[2];
  kid_t k = { -1, -1, -1 };
  char c;

  if (pipe2 (go, O_CLOEXEC) < 0 || pipe2 (done, O_CLOEXEC) < 0)
    return k;
  k.pid = fork ();
  if (k.pid == 0)
    {
      prctl (PR_SET_PDEATHSIG, SIGKILL);
      if (read (go[0], &c, 1) != 1)
        _exit (2);
      body ();
      if (write (done[1], "x", 1) != 1)
        _exit (3);
      for (;;)
        pause ();
    }
  close (go[0]);
  close (done[1]);
  k.go = go[1];
  k.done = done[0];
  return k;
}

/* Lets the child run its body; true once it reported back. */
static bool
release (kid_t *k)
{
  char c;

  if (write (k->go, "x", 1) != 1)
    return false;
  return read (k->done, &c, 1) == 1;
}

static void
kid_close (kid_t *k)
{
  close (k->go);
  close (k->done);
}

/* Where the children keep what they allocate, so that the compiler cannot
 * drop the allocation as unused. */
static char *volatile sink;

static void
touch (size_t sz)
{
  size_t i;
  char *p = malloc (sz);

  for (i = 0; i < sz; i += 4096)
    ((volatile char *) p)[i] = 0x5a;
  sink = p;
}

static void
body_work (void)
{
  touch (8 << 20);
  burn_cpu_ms (100);
}

static void
body_hog (void)
{
  size_t i;

  /* 64 MiB, touched a page at a time, in a cgroup limited to 16 MiB. */
  for (i = 0; i < 64; i++)
    touch (1 << 20);
}

static int bomb_forked;

static void
body_bomb (void)
{
  int i;

  for (i = 0; i < 20; i++)
    {
      pid_t p = fork ();
      if (p == 0)
        {
          for (;;)
            pause ();
        }
      if (p > 0)
        bomb_forked++;
    }
  /* Report how many forks the pids limit let through. */
  _exit (bomb_forked);
}

static bool
in_cgroup (pid_t pid, const char *name)
{
  cleanup_free char *path = xasprintf ("/proc/%d/cgroup", (int) pid);
  cleanup_free char *text = slurp (path, NULL);
  cleanup_free char *want = xasprintf ("/%s/%s", parent, name);
  char *save = NULL, *line;
  bool found = false;

  /* v1: "4:memory:/orch-cgtest-1/c1"; v2: "0::/orch-cgtest-1/c1". The
   * mount may start below the hierarchy's root, so only the end counts. */
  for (line = strtok_r (text, "\n", &save); line != NULL; line = strtok_r (NULL, "\n", &save))
    {
      bool mem_line = m->layout.version == 2 ? strncmp (line, "0::", 3) == 0
                                             : strstr (line, ":memory:") != NULL;
      size_t ll = strlen (line), wl = strlen (want);

      if (mem_line && ll >= wl && strcmp (line + ll - wl, want) == 0)
        found = true;
    }
  return found;
}

static void
check_gone (const char *name)
{
  const char *mnt[4];
  size_t n = mounts (mnt), i;

  check (!m->ops->exists (m, name), "%s no longer exists", name);
  for (i = 0; i < n; i++)
    {
      cleanup_free char *dir = xasprintf ("%s/%s/%s", mnt[i], parent, name);
      check (!is_dir (dir), "%s is removed", dir);
    }
}

static void
check_limits_and_usage (void)
{
  cg_limits_t lim = { .cpu_milli = 250, .memory_bytes = 64 << 20, .pids_max = 64 };
  orch_err_t err = { 0 };
  cleanup_free char *mem = NULL, *cpu = NULL, *pids = NULL;
  pid_t *list = NULL;
  size_t n = 0;
  cg_usage_t u = { 0 }, pu = { 0 };
  kid_t k;
  int status;
  bool ok;

  check (m->ops->create (m, "c1", &lim, &err) == 0, "create c1 %s", err.msg);
  mem = m->ops->path (m, "c1", "memory");
  cpu = m->ops->path (m, "c1", "cpu");
  pids = m->ops->path (m, "c1", "pids");
  check (mem != NULL && is_dir (mem), "c1 exists at %s", mem);
  if (m->layout.version == 1)
    {
      check_file (mem, "memory.limit_in_bytes", "67108864");
      check_file (cpu, "cpu.cfs_quota_us", "25000");
      check_file (cpu, "cpu.cfs_period_us", "100000");
      if (m->layout.v1_pids != NULL)
        check_file (pids, "pids.max", "64");
    }
  else
    {
      check_file (mem, "memory.max", "67108864");
      check_file (mem, "cpu.max", "25000 100000");
      check_file (mem, "pids.max", "64");
    }

  k = spawn (body_work);
  check (k.pid > 0, "fork worker");
  if (k.pid <= 0)
    return;
  check (m->ops->attach (m, "c1", k.pid, &err) == 0, "attach %d to c1 %s", (int) k.pid, err.msg);
  check (in_cgroup (k.pid, "c1"), "/proc/%d/cgroup shows /%s/c1", (int) k.pid, parent);
  ok = m->ops->pids (m, "c1", &list, &n, &err) == 0;
  check (ok && n == 1 && list[0] == k.pid, "pids of c1 is just the worker (%zu pids)", n);
  free (list);

  check (release (&k), "worker touched 8 MiB and burned 100 ms of CPU");
  check (m->ops->usage (m, "c1", &u, &err) == 0, "usage of c1 %s", err.msg);
  check (u.memory_bytes >= (8 << 20) && u.memory_bytes <= (64 << 20),
         "c1 memory %lld bytes is between 8 MiB and its 64 MiB limit", (long long) u.memory_bytes);
  check (u.cpu_usec >= 90000, "c1 used %lld us of CPU (>= 90000)", (long long) u.cpu_usec);
  check (u.oom_kills == 0, "c1 had no OOM kill");
  /* The 250m quota held the 100 ms burn back for several periods. */
  check (keyed (cpu, "cpu.stat", "nr_throttled") > 0, "c1 was throttled (nr_throttled %lld)",
         (long long) keyed (cpu, "cpu.stat", "nr_throttled"));
  ok = m->ops->parent_usage (m, &pu, &err) == 0;
  check (ok && pu.memory_bytes >= u.memory_bytes && pu.cpu_usec >= u.cpu_usec,
         "parent usage (%lld bytes, %lld us) covers c1", (long long) pu.memory_bytes,
         (long long) pu.cpu_usec);

  /* Destroy while the worker still runs. */
  check (m->ops->destroy (m, "c1", &err) == 0, "destroy c1 with a live process %s", err.msg);
  check (waitpid (k.pid, &status, 0) == k.pid && WIFSIGNALED (status)
             && WTERMSIG (status) == SIGKILL,
         "the worker was SIGKILLed");
  check (kill (k.pid, 0) < 0 && errno == ESRCH, "the worker is gone");
  check_gone ("c1");
  check (m->ops->destroy (m, "c1", &err) == 0, "destroying c1 again succeeds");
  kid_close (&k);
}

static void
check_oom (void)
{
  cg_limits_t lim = { .memory_bytes = 16 << 20 };
  orch_err_t err = { 0 };
  cg_usage_t u = { 0 }, pu = { 0 };
  kid_t k;
  int status;
  char c;
  bool ok;

  check (m->ops->create (m, "hog", &lim, &err) == 0, "create hog (16 MiB) %s", err.msg);
  k = spawn (body_hog);
  if (k.pid <= 0)
    return;
  check (m->ops->attach (m, "hog", k.pid, &err) == 0, "attach hog %s", err.msg);
  if (write (k.go, "x", 1) != 1)
    check (0, "start hog");
  check (read (k.done, &c, 1) == 0, "the hog never got through 64 MiB");
  check (waitpid (k.pid, &status, 0) == k.pid && WIFSIGNALED (status)
             && WTERMSIG (status) == SIGKILL,
         "the hog was SIGKILLed by the OOM killer");
  check (m->ops->usage (m, "hog", &u, &err) == 0, "usage of hog %s", err.msg);
  check (u.oom_kills >= 1, "hog reports %lld OOM kill(s)", (long long) u.oom_kills);
  ok = m->ops->parent_usage (m, &pu, &err) == 0;
  check (ok && pu.oom_kills >= u.oom_kills, "the parent reports %lld OOM kill(s)",
         (long long) pu.oom_kills);
  check (m->ops->destroy (m, "hog", &err) == 0, "destroy hog %s", err.msg);
  check_gone ("hog");
  kid_close (&k);
}

/* Reaps every child (we are their subreaper); counts the SIGKILLed ones. */
static int
reap_all (void)
{
  int status, killed = 0;
  pid_t p;

  while ((p = waitpid (-1, &status, 0)) > 0)
    if (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL)
      killed++;
  return killed;
}

static void
check_pids_limit_and_tree_kill (void)
{
  cg_limits_t lim = { .pids_max = 8 };
  orch_err_t err = { 0 };
  kid_t k;
  int status, forked;
  bool ok;
  pid_t *list = NULL;
  size_t n = 0;

  if (m->layout.version == 1 && m->layout.v1_pids == NULL)
    {
      printf ("# no pids controller: pids limit not checked\n");
      return;
    }
  check (m->ops->create (m, "bomb", &lim, &err) == 0, "create bomb (8 pids) %s", err.msg);
  k = spawn (body_bomb);
  if (k.pid <= 0)
    return;
  check (m->ops->attach (m, "bomb", k.pid, &err) == 0, "attach bomb %s", err.msg);
  if (write (k.go, "x", 1) != 1)
    check (0, "start bomb");
  check (waitpid (k.pid, &status, 0) == k.pid && WIFEXITED (status), "bomb exited");
  forked = WEXITSTATUS (status);
  check (forked == 7, "the pids limit let 7 of 20 forks through (got %d)", forked);
  ok = m->ops->pids (m, "bomb", &list, &n, &err) == 0;
  check (ok && (int) n == forked, "bomb holds the %zu orphaned sleepers", n);
  free (list);
  check (m->ops->destroy (m, "bomb", &err) == 0, "destroy bomb %s", err.msg);
  check (reap_all () == forked, "every sleeper was SIGKILLed");
  check_gone ("bomb");
  kid_close (&k);
}

/* A workload that made cgroups of its own (as a nested container does). */
static void
check_nested_destroy (void)
{
  cg_limits_t lim = { 0 };
  orch_err_t err = { 0 };
  const char *mnt[4];
  size_t nm = mounts (mnt), i;
  kid_t k;
  char buf[32];

  check (m->ops->create (m, "nested", &lim, &err) == 0, "create nested %s", err.msg);
  for (i = 0; i < nm; i++)
    {
      cleanup_free char *sub = xasprintf ("%s/%s/nested/inner/deeper", mnt[i], parent);
      check (orch_mkdir_p (sub, 0755) == 0, "mkdir %s", sub);
    }
  k = spawn (body_work);
  if (k.pid <= 0)
    return;
  snprintf (buf, sizeof (buf), "%d", (int) k.pid);
  for (i = 0; i < nm; i++)
    {
      cleanup_free char *sub = xasprintf ("%s/%s/nested/inner/deeper/cgroup.procs", mnt[i], parent);
      FILE *f = fopen (sub, "w");
      check (f != NULL && fputs (buf, f) >= 0 && fclose (f) == 0, "move worker into %s", sub);
    }
  check (m->ops->destroy (m, "nested", &err) == 0, "destroy nested %s", err.msg);
  check (reap_all () == 1, "the worker in the nested cgroup was SIGKILLed");
  check_gone ("nested");
  kid_close (&k);
}

static void
check_parent_limits (void)
{
  cg_limits_t l = { 7, 7, 7 };
  orch_err_t err = { 0 };
  const char *memroot = m->layout.version == 2 ? m->layout.v2_root : m->layout.v1_memory;
  const char *cpuroot = m->layout.version == 2 ? m->layout.v2_root : m->layout.v1_cpu;
  bool ok;
  cleanup_free char *memdir = xasprintf ("%s/%s", memroot, parent);
  cleanup_free char *cpudir = xasprintf ("%s/%s", cpuroot, parent);
  FILE *f;

  check (m->ops->parent_limits (m, &l, &err) == 0, "parent limits %s", err.msg);
  printf ("# parent limits before: memory %lld cpu %lldm pids %lld\n", (long long) l.memory_bytes,
          (long long) l.cpu_milli, (long long) l.pids_max);
  {
    cleanup_free char *path = xasprintf (
        "%s/%s", memdir, m->layout.version == 2 ? "memory.max" : "memory.limit_in_bytes");
    f = fopen (path, "w");
    check (f != NULL && fputs ("536870912", f) >= 0 && fclose (f) == 0, "limit %s", path);
  }
  {
    cleanup_free char *path
        = xasprintf ("%s/%s", cpudir, m->layout.version == 2 ? "cpu.max" : "cpu.cfs_quota_us");
    f = fopen (path, "w");
    check (f != NULL && fputs (m->layout.version == 2 ? "150000 100000" : "150000", f) >= 0
               && fclose (f) == 0,
           "limit %s", path);
  }
  ok = m->ops->parent_limits (m, &l, &err) == 0;
  check (ok && l.memory_bytes == 536870912 && l.cpu_milli == 1500,
         "parent limits read back 512 MiB and 1500m (got %lld, %lldm)", (long long) l.memory_bytes,
         (long long) l.cpu_milli);
}

int
main (void)
{
  orch_err_t err = { 0 };

  if (geteuid () != 0)
    {
      printf ("# skip: needs root\n");
      return 77;
    }
  snprintf (parent, sizeof (parent), "orch-cgtest-%d", (int) getpid ());
  m = cg_manager_new (parent, &err);
  if (m == NULL)
    {
      printf ("# skip: no usable cgroups: %s\n", err.msg);
      return 77;
    }
  atexit (cleanup);
  signal (SIGINT, on_signal);
  signal (SIGTERM, on_signal);
  /* Nothing here should take long; a hang must still clean up. */
  signal (SIGALRM, on_signal);
  alarm (60);
  /* Orphans of the workloads come back to us, so that we can reap them. */
  prctl (PR_SET_CHILD_SUBREAPER, 1);
  printf ("# cgroup %s, parent %s\n", m->ops->name, parent);

  {
    const char *mnt[4];
    size_t n = mounts (mnt), i;
    for (i = 0; i < n; i++)
      {
        cleanup_free char *dir = xasprintf ("%s/%s", mnt[i], parent);
        check (is_dir (dir), "parent %s created", dir);
      }
  }
  check_limits_and_usage ();
  check_oom ();
  check_pids_limit_and_tree_kill ();
  check_nested_destroy ();
  check_parent_limits ();
  cleanup ();

  printf ("# %d checks, %d failed\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
