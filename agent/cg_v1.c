/* cgroup v1 backend: the workload's cgroup is made in each hierarchy the
 * agent uses (cpu, cpuacct, memory, pids), once per mount when controllers
 * are co-mounted. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cg_internal.h"
#include "orch_util.h"

#define CG__V1_NCTL 4

/* The mount points of the controllers in use, each listed once. */
static size_t
v1_mounts (const cg_manager_t *m, const char *out[CG__V1_NCTL])
{
  const char *all[CG__V1_NCTL]
      = { m->layout.v1_memory, m->layout.v1_cpu, m->layout.v1_cpuacct, m->layout.v1_pids };
  size_t n = 0, i, j;

  for (i = 0; i < CG__V1_NCTL; i++)
    {
      bool dup = false;

      if (all[i] == NULL)
        continue;
      for (j = 0; j < n; j++)
        if (strcmp (out[j], all[i]) == 0)
          dup = true;
      if (!dup)
        out[n++] = all[i];
    }
  return n;
}

static const char *
v1_mount_of (const cg_manager_t *m, const char *controller)
{
  if (controller == NULL)
    return NULL;
  if (strcmp (controller, "cpu") == 0)
    return m->layout.v1_cpu;
  if (strcmp (controller, "cpuacct") == 0)
    return m->layout.v1_cpuacct;
  if (strcmp (controller, "memory") == 0)
    return m->layout.v1_memory;
  if (strcmp (controller, "pids") == 0)
    return m->layout.v1_pids;
  return NULL;
}

static int
v1_check_name (const char *name, orch_err_t *err)
{
  if (!cg__valid_name (name))
    return orch_err_set (err, EINVAL, "invalid cgroup name \"%s\"", name != NULL ? name : "(null)");
  return 0;
}

int
cg__v1_setup (cg_manager_t *m, orch_err_t *err)
{
  const char *mounts[CG__V1_NCTL];
  size_t n = v1_mounts (m, mounts), i;

  for (i = 0; i < n; i++)
    {
      cleanup_free char *dir = cg__dir (m, mounts[i], NULL);
      int r = orch_mkdir_p (dir, 0755);

      if (r < 0)
        return cg__err_file (err, r, "create cgroup", dir, NULL);
    }
  return 0;
}

/* Writes one limit. A missing file (a kernel without CFS bandwidth control
 * has no cpu.cfs_quota_us) is fine when no limit is asked for: "none" is
 * what the kernel would enforce anyway. */
static int
v1_write_limit (const char *dir, const char *file, const char *value, bool unlimited,
                orch_err_t *err)
{
  int r = cg__write (dir, file, value);

  if (r == -ENOENT && unlimited)
    return 0;
  if (r < 0)
    {
      cg__err_file (err, r, "set", dir, file);
      return orch_err_wrap (err, "write \"%s\"", value);
    }
  return 0;
}

static int
v1_apply (cg_manager_t *m, const char *name, const cg_limits_t *lim, orch_err_t *err)
{
  char buf[32];
  int r;

  {
    cleanup_free char *dir = cg__dir (m, m->layout.v1_cpu, name);
    int64_t quota = lim->cpu_milli * (CG__CPU_PERIOD_US / 1000);

    /* The kernel refuses quotas under 1 ms per period. */
    if (lim->cpu_milli > 0 && quota < 1000)
      quota = 1000;
    snprintf (buf, sizeof (buf), "%d", CG__CPU_PERIOD_US);
    r = v1_write_limit (dir, "cpu.cfs_period_us", buf, lim->cpu_milli == 0, err);
    if (r < 0)
      return r;
    snprintf (buf, sizeof (buf), "%" PRId64, lim->cpu_milli > 0 ? quota : INT64_C (-1));
    r = v1_write_limit (dir, "cpu.cfs_quota_us", buf, lim->cpu_milli == 0, err);
    if (r < 0)
      return r;
  }
  {
    cleanup_free char *dir = cg__dir (m, m->layout.v1_memory, name);

    snprintf (buf, sizeof (buf), "%" PRId64, lim->memory_bytes > 0 ? lim->memory_bytes : -1);
    r = v1_write_limit (dir, "memory.limit_in_bytes", buf, lim->memory_bytes == 0, err);
    if (r < 0)
      return r;
  }
  if (m->layout.v1_pids != NULL)
    {
      cleanup_free char *dir = cg__dir (m, m->layout.v1_pids, name);

      if (lim->pids_max > 0)
        snprintf (buf, sizeof (buf), "%" PRId64, lim->pids_max);
      else
        snprintf (buf, sizeof (buf), "max");
      r = v1_write_limit (dir, "pids.max", buf, lim->pids_max == 0, err);
      if (r < 0)
        return r;
    }
  return 0;
}

static int
v1_create (cg_manager_t *m, const char *name, const cg_limits_t *lim, orch_err_t *err)
{
  const char *mounts[CG__V1_NCTL];
  bool created[CG__V1_NCTL] = { false };
  size_t n, i;
  int r;

  if (v1_check_name (name, err) < 0 || cg__check_limits (lim, err) < 0)
    return -1;
  if (lim->pids_max > 0 && m->layout.v1_pids == NULL)
    return orch_err_set (err, ENOENT, "pids limit for %s: the v1 pids controller is not mounted",
                         name);
  n = v1_mounts (m, mounts);
  for (i = 0; i < n; i++)
    {
      cleanup_free char *dir = cg__dir (m, mounts[i], name);

      r = cg__mkdir (dir, &created[i]);
      if (r < 0)
        {
          cg__err_file (err, r, "create cgroup", dir, NULL);
          goto fail;
        }
    }
  r = v1_apply (m, name, lim, err);
  if (r < 0)
    {
      orch_err_wrap (err, "cgroup %s", name);
      goto fail;
    }
  return 0;

fail:
  /* Leave nothing half made behind; a reused cgroup stays. */
  for (i = 0; i < n; i++)
    if (created[i])
      {
        cleanup_free char *dir = cg__dir (m, mounts[i], name);
        (void) rmdir (dir);
      }
  return -1;
}

static int
v1_attach (cg_manager_t *m, const char *name, pid_t pid, orch_err_t *err)
{
  const char *mounts[CG__V1_NCTL];
  size_t n, i;
  char buf[32];

  if (v1_check_name (name, err) < 0)
    return -1;
  if (pid <= 0)
    return orch_err_set (err, EINVAL, "attach to cgroup %s: invalid pid %d", name, (int) pid);
  snprintf (buf, sizeof (buf), "%d", (int) pid);
  n = v1_mounts (m, mounts);
  for (i = 0; i < n; i++)
    {
      cleanup_free char *dir = cg__dir (m, mounts[i], name);
      int r = cg__write (dir, "cgroup.procs", buf);

      if (r < 0)
        {
          cg__err_file (err, r, "attach", dir, "cgroup.procs");
          return orch_err_wrap (err, "pid %d", (int) pid);
        }
    }
  return 0;
}

/* name NULL reads the parent. */
static int
v1_read_usage (cg_manager_t *m, const char *name, cg_usage_t *out, orch_err_t *err)
{
  cg_usage_t u = { 0, 0, 0 };
  int r;

  {
    cleanup_free char *dir = cg__dir (m, m->layout.v1_memory, name);

    r = cg__read_int (dir, "memory.usage_in_bytes", &u.memory_bytes);
    if (r < 0)
      return cg__err_file (err, r, "read", dir, "memory.usage_in_bytes");
    /* Kernels before 4.13 have no oom_kill line. */
    r = cg__read_keyed (dir, "memory.oom_control", "oom_kill", true, &u.oom_kills);
    if (r < 0)
      return cg__err_file (err, r, "read", dir, "memory.oom_control");
  }
  if (m->layout.v1_cpuacct != NULL)
    {
      cleanup_free char *dir = cg__dir (m, m->layout.v1_cpuacct, name);
      int64_t ns;

      r = cg__read_int (dir, "cpuacct.usage", &ns);
      if (r < 0)
        return cg__err_file (err, r, "read", dir, "cpuacct.usage");
      u.cpu_usec = ns / 1000;
    }
  *out = u;
  return 0;
}

static int
v1_usage (cg_manager_t *m, const char *name, cg_usage_t *out, orch_err_t *err)
{
  if (v1_check_name (name, err) < 0)
    return -1;
  return v1_read_usage (m, name, out, err);
}

/* Adds the oom_kill counts of every cgroup below dir. v1 counts an OOM
 * kill only in the cgroup whose limit was hit (v2 also in its ancestors),
 * so the parent's figure is summed from its workloads. */
static void
v1_sum_oom_below (const char *dir, int depth, int64_t *sum)
{
  DIR *d;
  struct dirent *de;

  if (depth >= CG__MAX_DEPTH || (d = opendir (dir)) == NULL)
    return;
  while ((de = readdir (d)) != NULL)
    {
      cleanup_free char *sub = NULL;
      int64_t v;

      if (de->d_type != DT_DIR || strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      sub = xasprintf ("%s/%s", dir, de->d_name);
      if (cg__read_keyed (sub, "memory.oom_control", "oom_kill", true, &v) == 0)
        *sum += v;
      v1_sum_oom_below (sub, depth + 1, sum);
    }
  closedir (d);
}

static int
v1_parent_usage (cg_manager_t *m, cg_usage_t *out, orch_err_t *err)
{
  cleanup_free char *mem = cg__dir (m, m->layout.v1_memory, NULL);
  int r = v1_read_usage (m, NULL, out, err);

  if (r < 0)
    return r;
  v1_sum_oom_below (mem, 0, &out->oom_kills);
  return 0;
}

/* The effective limits on the parent: the tightest of the parent's own and
 * those of the cgroups above it (the hierarchy root has none). */
static int
v1_parent_limits (cg_manager_t *m, cg_limits_t *out, orch_err_t *err)
{
  cg_limits_t l = { 0, 0, 0 };
  cleanup_free char *mem = cg__dir (m, m->layout.v1_memory, NULL);
  cleanup_free char *cpu = cg__dir (m, m->layout.v1_cpu, NULL);
  cleanup_free char *pids = m->layout.v1_pids ? cg__dir (m, m->layout.v1_pids, NULL) : NULL;
  bool first;
  int r;

  for (first = true;; first = false)
    {
      int64_t v;

      r = cg__read_int (mem, "memory.limit_in_bytes", &v);
      if (r < 0 && (first || r != -ENOENT))
        return cg__err_file (err, r, "read", mem, "memory.limit_in_bytes");
      if (r == 0 && v > 0 && v < CG__V1_UNLIMITED_FROM)
        l.memory_bytes = cg__min_limit (l.memory_bytes, v);
      if (!cg__up (mem, m->layout.v1_memory))
        break;
    }
  for (first = true;; first = false)
    {
      int64_t quota, period;

      r = cg__read_int (cpu, "cpu.cfs_quota_us", &quota);
      if (r == 0)
        r = cg__read_int (cpu, "cpu.cfs_period_us", &period);
      if (r < 0 && (first || r != -ENOENT))
        return cg__err_file (err, r, "read", cpu, "cpu.cfs_quota_us");
      if (r == 0 && quota > 0 && period > 0)
        l.cpu_milli = cg__min_limit (l.cpu_milli, quota * 1000 / period);
      if (!cg__up (cpu, m->layout.v1_cpu))
        break;
    }
  for (first = true; pids != NULL; first = false)
    {
      int64_t v;

      r = cg__read_int (pids, "pids.max", &v);
      if (r < 0 && (first || r != -ENOENT))
        return cg__err_file (err, r, "read", pids, "pids.max");
      if (r == 0 && v > 0)
        l.pids_max = cg__min_limit (l.pids_max, v);
      if (!cg__up (pids, m->layout.v1_pids))
        break;
    }
  *out = l;
  return 0;
}

static int
v1_pids (cg_manager_t *m, const char *name, pid_t **out, size_t *n, orch_err_t *err)
{
  cleanup_free char *dir = NULL;
  int r;

  if (v1_check_name (name, err) < 0)
    return -1;
  dir = cg__dir (m, m->layout.v1_memory, name);
  r = cg__read_pids (dir, out, n);
  if (r < 0)
    return cg__err_file (err, r, "read", dir, "cgroup.procs");
  return 0;
}

static int
v1_destroy (cg_manager_t *m, const char *name, orch_err_t *err)
{
  const char *mounts[CG__V1_NCTL];
  char *dirs[CG__V1_NCTL];
  size_t n, i;
  int r;

  if (v1_check_name (name, err) < 0)
    return -1;
  n = v1_mounts (m, mounts);
  for (i = 0; i < n; i++)
    dirs[i] = cg__dir (m, mounts[i], name);
  r = cg__destroy_dirs ((const char *const *) dirs, n);
  if (r < 0)
    orch_err_set (err, -r, "destroy cgroup %s (%s): %s", name, dirs[0],
                  r == -EBUSY ? "processes still running after SIGKILL" : strerror (-r));
  for (i = 0; i < n; i++)
    free (dirs[i]);
  return r < 0 ? -1 : 0;
}

static bool
v1_exists (cg_manager_t *m, const char *name)
{
  cleanup_free char *dir = NULL;
  struct stat st;

  if (!cg__valid_name (name))
    return false;
  dir = cg__dir (m, m->layout.v1_memory, name);
  return stat (dir, &st) == 0 && S_ISDIR (st.st_mode);
}

static char *
v1_path (cg_manager_t *m, const char *name, const char *controller)
{
  const char *mount = v1_mount_of (m, controller);

  if (mount == NULL || !cg__valid_name (name))
    return NULL;
  return cg__dir (m, mount, name);
}

const cg_ops_t cg_v1_ops = {
  .name = "v1",
  .create = v1_create,
  .attach = v1_attach,
  .usage = v1_usage,
  .parent_usage = v1_parent_usage,
  .parent_limits = v1_parent_limits,
  .pids = v1_pids,
  .destroy = v1_destroy,
  .exists = v1_exists,
  .path = v1_path,
};
