/* cgroup v2 backend: one unified hierarchy; the parent enables cpu, memory
 * and pids for its children through cgroup.subtree_control. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cg_internal.h"
#include "orch_util.h"

static const char *const v2_wanted[] = { "cpu", "memory", "pids" };

static int
v2_check_name (const char *name, orch_err_t *err)
{
  if (!cg__valid_name (name))
    return orch_err_set (err, EINVAL, "invalid cgroup name \"%s\"", name != NULL ? name : "(null)");
  return 0;
}

/* True if a space-separated controller list holds word. */
static bool
v2_list_has (const char *list, const char *word)
{
  size_t wl = strlen (word);
  const char *p = list;

  while (*p != '\0')
    {
      const char *end;

      while (*p == ' ' || *p == '\n' || *p == '\t')
        p++;
      end = p;
      while (*end != '\0' && *end != ' ' && *end != '\n' && *end != '\t')
        end++;
      if ((size_t) (end - p) == wl && strncmp (p, word, wl) == 0)
        return true;
      p = end;
    }
  return false;
}

/* Enables, in dir's cgroup.subtree_control, each wanted controller that dir
 * has and has not enabled yet: all in one write, then one at a time if the
 * kernel refuses the lot (one busy controller must not cost the others).
 * Failures are left for create to report: only the limit a workload asks
 * for tells whether a missing controller matters. */
static void
v2_enable_controllers (const char *dir)
{
  cleanup_free char *avail = NULL;
  cleanup_free char *enabled = NULL;
  char buf[64] = "";
  size_t i;

  if (cg__read (dir, "cgroup.controllers", CG__SMALL_FILE_MAX, &avail) < 0)
    return;
  if (cg__read (dir, "cgroup.subtree_control", CG__SMALL_FILE_MAX, &enabled) < 0)
    return;
  for (i = 0; i < ORCH_ARRAY_LEN (v2_wanted); i++)
    if (v2_list_has (avail, v2_wanted[i]) && !v2_list_has (enabled, v2_wanted[i]))
      {
        size_t l = strlen (buf);
        snprintf (buf + l, sizeof (buf) - l, "%s+%s", l > 0 ? " " : "", v2_wanted[i]);
      }
  if (buf[0] == '\0' || cg__write (dir, "cgroup.subtree_control", buf) == 0)
    return;
  for (i = 0; i < ORCH_ARRAY_LEN (v2_wanted); i++)
    if (strstr (buf, v2_wanted[i]) != NULL)
      {
        char one[32];
        snprintf (one, sizeof (one), "+%s", v2_wanted[i]);
        (void) cg__write (dir, "cgroup.subtree_control", one);
      }
}

int
cg__v2_setup (cg_manager_t *m, orch_err_t *err)
{
  const char *root = m->layout.v2_root;
  cleanup_free char *dir = xstrdup (root);
  cleanup_free char *rest = xstrdup (m->parent);
  char *save = NULL, *tok;

  /* Each level from the root down to the parent passes the controllers on,
   * so that the parent's children get cpu.max, memory.max and pids.max. */
  v2_enable_controllers (dir);
  for (tok = strtok_r (rest, "/", &save); tok != NULL; tok = strtok_r (NULL, "/", &save))
    {
      char *next = xasprintf ("%s/%s", dir, tok);
      bool created;
      int r;

      free (dir);
      dir = next;
      r = cg__mkdir (dir, &created);
      if (r < 0)
        return cg__err_file (err, r, "create cgroup", dir, NULL);
      v2_enable_controllers (dir);
    }
  return 0;
}

/* Which controller owns an interface file ("memory.max" -> "memory"). */
static void
v2_controller_of (const char *file, char *out, size_t size)
{
  const char *dot = strchr (file, '.');
  size_t l = dot != NULL ? (size_t) (dot - file) : strlen (file);

  if (l >= size)
    l = size - 1;
  memcpy (out, file, l);
  out[l] = '\0';
}

static int
v2_write_limit (cg_manager_t *m, const char *dir, const char *file, const char *value,
                bool unlimited, orch_err_t *err)
{
  int r = cg__write (dir, file, value);
  char ctl[32];

  if (r == 0)
    return 0;
  /* A controller that is not enabled has no files; that only matters when
   * a limit was asked for. */
  if (r == -ENOENT && unlimited)
    return 0;
  if (r == -ENOENT)
    {
      v2_controller_of (file, ctl, sizeof (ctl));
      return orch_err_set (err, ENOENT,
                           "set %s/%s: the %s controller is not enabled in %s/%s/"
                           "cgroup.subtree_control",
                           dir, file, ctl, m->layout.v2_root, m->parent);
    }
  cg__err_file (err, r, "set", dir, file);
  return orch_err_wrap (err, "write \"%s\"", value);
}

static int
v2_apply (cg_manager_t *m, const char *dir, const cg_limits_t *lim, orch_err_t *err)
{
  char buf[64];
  int r;

  if (lim->cpu_milli > 0)
    {
      int64_t quota = lim->cpu_milli * (CG__CPU_PERIOD_US / 1000);

      /* The kernel refuses quotas under 1 ms per period. */
      if (quota < 1000)
        quota = 1000;
      snprintf (buf, sizeof (buf), "%" PRId64 " %d", quota, CG__CPU_PERIOD_US);
    }
  else
    snprintf (buf, sizeof (buf), "max %d", CG__CPU_PERIOD_US);
  r = v2_write_limit (m, dir, "cpu.max", buf, lim->cpu_milli == 0, err);
  if (r < 0)
    return r;

  if (lim->memory_bytes > 0)
    snprintf (buf, sizeof (buf), "%" PRId64, lim->memory_bytes);
  else
    snprintf (buf, sizeof (buf), "max");
  r = v2_write_limit (m, dir, "memory.max", buf, lim->memory_bytes == 0, err);
  if (r < 0)
    return r;

  if (lim->pids_max > 0)
    snprintf (buf, sizeof (buf), "%" PRId64, lim->pids_max);
  else
    snprintf (buf, sizeof (buf), "max");
  return v2_write_limit (m, dir, "pids.max", buf, lim->pids_max == 0, err);
}

static int
v2_create (cg_manager_t *m, const char *name, const cg_limits_t *lim, orch_err_t *err)
{
  cleanup_free char *dir = NULL;
  bool created;
  int r;

  if (v2_check_name (name, err) < 0 || cg__check_limits (lim, err) < 0)
    return -1;
  {
    cleanup_free char *pdir = cg__dir (m, m->layout.v2_root, NULL);
    struct stat st;

    /* A parent removed behind our back comes back with its controllers
     * enabled, not as a bare directory whose children have no limits. */
    if (stat (pdir, &st) < 0 && errno == ENOENT && cg__v2_setup (m, err) < 0)
      return orch_err_wrap (err, "cgroup %s", name);
  }
  dir = cg__dir (m, m->layout.v2_root, name);
  r = cg__mkdir (dir, &created);
  if (r < 0)
    return cg__err_file (err, r, "create cgroup", dir, NULL);
  if (v2_apply (m, dir, lim, err) < 0)
    {
      /* Leave nothing half made behind; a reused cgroup stays. */
      if (created)
        (void) rmdir (dir);
      return orch_err_wrap (err, "cgroup %s", name);
    }
  return 0;
}

static int
v2_attach (cg_manager_t *m, const char *name, pid_t pid, orch_err_t *err)
{
  cleanup_free char *dir = NULL;
  char buf[32];
  int r;

  if (v2_check_name (name, err) < 0)
    return -1;
  if (pid <= 0)
    return orch_err_set (err, EINVAL, "attach to cgroup %s: invalid pid %d", name, (int) pid);
  dir = cg__dir (m, m->layout.v2_root, name);
  snprintf (buf, sizeof (buf), "%d", (int) pid);
  r = cg__write (dir, "cgroup.procs", buf);
  if (r < 0)
    {
      cg__err_file (err, r, "attach", dir, "cgroup.procs");
      return orch_err_wrap (err, "pid %d", (int) pid);
    }
  return 0;
}

static int
v2_read_usage (const char *dir, cg_usage_t *out, orch_err_t *err)
{
  cg_usage_t u = { 0, 0, 0 };
  int r;

  r = cg__read_int (dir, "memory.current", &u.memory_bytes);
  if (r < 0)
    return cg__err_file (err, r, "read", dir, "memory.current");
  r = cg__read_keyed (dir, "cpu.stat", "usage_usec", false, &u.cpu_usec);
  if (r < 0)
    return cg__err_file (err, r, "read usage_usec from", dir, "cpu.stat");
  /* oom_kill arrived in memory.events with Linux 4.13. */
  r = cg__read_keyed (dir, "memory.events", "oom_kill", true, &u.oom_kills);
  if (r < 0)
    return cg__err_file (err, r, "read", dir, "memory.events");
  *out = u;
  return 0;
}

static int
v2_usage (cg_manager_t *m, const char *name, cg_usage_t *out, orch_err_t *err)
{
  cleanup_free char *dir = NULL;

  if (v2_check_name (name, err) < 0)
    return -1;
  dir = cg__dir (m, m->layout.v2_root, name);
  return v2_read_usage (dir, out, err);
}

static int
v2_parent_usage (cg_manager_t *m, cg_usage_t *out, orch_err_t *err)
{
  cleanup_free char *dir = cg__dir (m, m->layout.v2_root, NULL);

  return v2_read_usage (dir, out, err);
}

/* The effective limits on the parent: the tightest of the parent's own and
 * those of the cgroups above it (the root has none). A limit file that is
 * missing means its controller is not enabled there: no limit. */
static int
v2_parent_limits (cg_manager_t *m, cg_limits_t *out, orch_err_t *err)
{
  cg_limits_t l = { 0, 0, 0 };
  cleanup_free char *dir = cg__dir (m, m->layout.v2_root, NULL);
  struct stat st;

  if (stat (dir, &st) < 0)
    return orch_err_sys (err, "cgroup parent %s", dir);
  do
    {
      cleanup_free char *text = NULL;
      int64_t v, quota, period;
      int r;

      r = cg__read_int (dir, "memory.max", &v);
      if (r < 0 && r != -ENOENT)
        return cg__err_file (err, r, "read", dir, "memory.max");
      if (r == 0 && v > 0)
        l.memory_bytes = cg__min_limit (l.memory_bytes, v);

      r = cg__read (dir, "cpu.max", CG__SMALL_FILE_MAX, &text);
      if (r == 0)
        r = cg_parse_cpu_max (text, &quota, &period);
      if (r < 0 && r != -ENOENT)
        return cg__err_file (err, r, "read", dir, "cpu.max");
      if (r == 0 && quota > 0)
        l.cpu_milli = cg__min_limit (l.cpu_milli, quota * 1000 / period);

      r = cg__read_int (dir, "pids.max", &v);
      if (r < 0 && r != -ENOENT)
        return cg__err_file (err, r, "read", dir, "pids.max");
      if (r == 0 && v > 0)
        l.pids_max = cg__min_limit (l.pids_max, v);
    }
  while (cg__up (dir, m->layout.v2_root));
  *out = l;
  return 0;
}

static int
v2_pids (cg_manager_t *m, const char *name, pid_t **out, size_t *n, orch_err_t *err)
{
  cleanup_free char *dir = NULL;
  int r;

  if (v2_check_name (name, err) < 0)
    return -1;
  dir = cg__dir (m, m->layout.v2_root, name);
  r = cg__read_pids (dir, out, n);
  if (r < 0)
    return cg__err_file (err, r, "read", dir, "cgroup.procs");
  return 0;
}

static int
v2_destroy (cg_manager_t *m, const char *name, orch_err_t *err)
{
  cleanup_free char *dir = NULL;
  const char *dirs[1];
  int r;

  if (v2_check_name (name, err) < 0)
    return -1;
  dir = cg__dir (m, m->layout.v2_root, name);
  /* cgroup.kill (Linux 5.14) kills the whole subtree at once, forks in
   * flight included; the SIGKILL loop below then only waits, and remains
   * the way on older kernels. */
  (void) cg__write (dir, "cgroup.kill", "1");
  dirs[0] = dir;
  r = cg__destroy_dirs (dirs, 1);
  if (r < 0)
    return orch_err_set (err, -r, "destroy cgroup %s (%s): %s", name, dir,
                         r == -EBUSY ? "processes still running after SIGKILL" : strerror (-r));
  return 0;
}

static bool
v2_exists (cg_manager_t *m, const char *name)
{
  cleanup_free char *dir = NULL;
  struct stat st;

  if (!cg__valid_name (name))
    return false;
  dir = cg__dir (m, m->layout.v2_root, name);
  return stat (dir, &st) == 0 && S_ISDIR (st.st_mode);
}

static char *
v2_path (cg_manager_t *m, const char *name, const char *controller)
{
  if (!cg__valid_name (name))
    return NULL;
  return cg__dir (m, m->layout.v2_root, name);
}

const cg_ops_t cg_v2_ops = {
  .name = "v2",
  .create = v2_create,
  .attach = v2_attach,
  .usage = v2_usage,
  .parent_usage = v2_parent_usage,
  .parent_limits = v2_parent_limits,
  .pids = v2_pids,
  .destroy = v2_destroy,
  .exists = v2_exists,
  .path = v2_path,
};
