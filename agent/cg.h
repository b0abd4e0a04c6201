/* cgroups for the agent: one interface, a v1 and a v2 backend (an ops table,
 * as crun's libcrun_cgroup_manager), chosen by probing /proc/self/mountinfo.
 *
 * The agent runs every workload in <parent>/<alloc-id>, where <parent> is the
 * --cgroup-parent (default "orch") under each hierarchy's root. On v1 every
 * controller the agent uses (cpu, cpuacct, memory, pids) is found on its own
 * mount point; co-mounted controllers ("cpu,cpuacct") are handled too. */
#ifndef ORCH_CG_H
#define ORCH_CG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "orch_err.h"

typedef struct cg_limits_s
{
  int64_t cpu_milli;    /* 0 = unlimited */
  int64_t memory_bytes; /* 0 = unlimited */
  int64_t pids_max;     /* 0 = unlimited */
} cg_limits_t;

typedef struct cg_usage_s
{
  int64_t memory_bytes; /* memory.current / memory.usage_in_bytes */
  int64_t cpu_usec;     /* cpu.stat usage_usec / cpuacct.usage / 1000 */
  int64_t oom_kills;    /* memory.events oom_kill / memory.oom_control oom_kill */
} cg_usage_t;

typedef struct cg_manager_s cg_manager_t;

typedef struct cg_ops_s
{
  const char *name; /* "v1" or "v2" */
  /* Creates (or reuses) the cgroup <parent>/<name> and applies limits. */
  int (*create) (cg_manager_t *m, const char *name, const cg_limits_t *lim, orch_err_t *err);
  /* Moves pid into <parent>/<name>. */
  int (*attach) (cg_manager_t *m, const char *name, pid_t pid, orch_err_t *err);
  int (*usage) (cg_manager_t *m, const char *name, cg_usage_t *out, orch_err_t *err);
  /* Usage of the whole parent (all workloads). */
  int (*parent_usage) (cg_manager_t *m, cg_usage_t *out, orch_err_t *err);
  /* Limits set on the parent (0 where unlimited). */
  int (*parent_limits) (cg_manager_t *m, cg_limits_t *out, orch_err_t *err);
  /* Pids in <parent>/<name>; *out malloc'd, caller frees. */
  int (*pids) (cg_manager_t *m, const char *name, pid_t **out, size_t *n, orch_err_t *err);
  /* SIGKILLs every process left in the cgroup, then removes it. Returns 0 when
   * the cgroup is gone (or never existed). */
  int (*destroy) (cg_manager_t *m, const char *name, orch_err_t *err);
  /* True if the cgroup exists. */
  bool (*exists) (cg_manager_t *m, const char *name);
  /* Absolute path of <parent>/<name> in the hierarchy that holds controller
   * ("memory", "cpu", "pids"; on v2 all share one). Caller frees. */
  char *(*path) (cg_manager_t *m, const char *name, const char *controller);
} cg_ops_t;

/* The layout found in mountinfo. */
typedef struct cg_layout_s
{
  int version; /* 1 or 2 */
  char *v2_root;     /* mount point of the unified hierarchy with controllers (v2) */
  char *v1_cpu;      /* v1 mount points; NULL when the controller is absent */
  char *v1_cpuacct;
  char *v1_memory;
  char *v1_pids;
} cg_layout_t;

struct cg_manager_s
{
  const cg_ops_t *ops;
  cg_layout_t layout;
  char *parent; /* relative parent, e.g. "orch" */
};

/* Parses mountinfo text into a layout. A hybrid host (v1 controllers plus an
 * empty cgroup2 at /sys/fs/cgroup/unified) is v1; a cgroup2 mount whose
 * cgroup.controllers lists memory is v2 (controllers_reader reads that file;
 * tests pass a fake). Returns 0 or -1 with err. */
int cg_layout_parse (const char *mountinfo, cg_layout_t *out,
                     int (*controllers_reader) (const char *mountpoint, char **text),
                     orch_err_t *err);
void cg_layout_clear (cg_layout_t *l);

/* Probes the host and creates the parent cgroup. Returns NULL with err. */
cg_manager_t *cg_manager_new (const char *parent, orch_err_t *err);
/* Same on a given layout (tests, fixtures). */
cg_manager_t *cg_manager_new_with_layout (const cg_layout_t *layout, const char *parent,
                                          orch_err_t *err);
void cg_manager_free (cg_manager_t *m);

extern const cg_ops_t cg_v1_ops;
extern const cg_ops_t cg_v2_ops;

/* File-format parsers, exposed for unit tests with fixture files. Each returns
 * 0 or -EINVAL. */
int cg_parse_cpu_max (const char *text, int64_t *quota_us, int64_t *period_us); /* "max 100000" */
int cg_parse_keyed (const char *text, const char *key, int64_t *out); /* "usage_usec 123\n..." */
int cg_parse_int_or_max (const char *text, int64_t *out); /* "max" -> -1 */

#endif
