/* Helpers shared by the cgroup manager (cg_common.c) and its v1 and v2
 * backends (cg_v1.c, cg_v2.c). Not part of the agent's interface. */
#ifndef ORCH_CG_INTERNAL_H
#define ORCH_CG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cg.h"

/* Largest interface file read whole (cpu.stat, memory.events, limits). */
#define CG__SMALL_FILE_MAX ((size_t) 64 * 1024)
/* cgroup.procs: at most PID_MAX_LIMIT (2^22) pids of at most 7 digits. */
#define CG__PROCS_FILE_MAX ((size_t) 32 * 1024 * 1024)
/* How long destroy keeps killing before it gives up on a cgroup. */
#define CG__KILL_TIMEOUT_MS 1000
/* Deepest nesting destroy walks below a workload cgroup. */
#define CG__MAX_DEPTH 32
/* v1 reports "no limit" as the largest page-aligned 63-bit byte count
 * (9223372036854771712 with 4 KiB pages); any figure from 2^62 up is taken as
 * unlimited so that other page sizes are covered too. */
#define CG__V1_UNLIMITED_FROM (INT64_C (1) << 62)
#define CG__CPU_PERIOD_US 100000

/* True if name is one path component usable as a cgroup name. */
bool cg__valid_name (const char *name);
/* True if parent is a relative path of valid components ("orch", "a/b"). */
bool cg__valid_parent (const char *parent);

/* "<base>/<parent>" or "<base>/<parent>/<name>" when name is non-NULL.
 * Caller frees. */
char *cg__dir (const cg_manager_t *m, const char *base, const char *name);

/* Reads <dir>/<file> (at most max bytes) into *out (caller frees).
 * Returns 0 or -errno. */
int cg__read (const char *dir, const char *file, size_t max, char **out);
/* Writes text to the existing file <dir>/<file> in one write(2), as cgroupfs
 * wants. Returns 0 or -errno. */
int cg__write (const char *dir, const char *file, const char *text);
/* Reads <dir>/<file> with cg_parse_int_or_max ("max" -> -1). 0 or -errno. */
int cg__read_int (const char *dir, const char *file, int64_t *out);
/* Reads key from the keyed file <dir>/<file>. A missing key yields 0 when
 * missing_ok (counters older kernels lack), else -ENOENT. */
int cg__read_keyed (const char *dir, const char *file, const char *key, bool missing_ok,
                    int64_t *out);
/* Parses cgroup.procs text into a malloc'd array. 0 or -EINVAL. */
int cg__parse_pids (const char *text, pid_t **out, size_t *n);
/* Reads <dir>/cgroup.procs. 0 or -errno. */
int cg__read_pids (const char *dir, pid_t **out, size_t *n);

/* SIGKILLs every process in each of the dirs (and cgroups below them) until
 * none is left or deadline_ms (CLOCK_MONOTONIC) passed. Returns 0, -ENOENT
 * when none of the dirs exists, or -EBUSY when processes remain. */
int cg__kill_all (const char *const *dirs, size_t n, int64_t deadline_ms);
/* Kills what is in dirs, then removes them (and cgroups below them); retries
 * while the kernel still reports them busy, for at most CG__KILL_TIMEOUT_MS.
 * Returns 0 (also when none existed) or -errno. */
int cg__destroy_dirs (const char *const *dirs, size_t n);
/* Removes dir and every cgroup below it, deepest first. ENOENT is success.
 * Returns 0 or -errno. */
int cg__rmdir_tree (const char *dir);

/* mkdir -p that reports whether the last component was made here. */
int cg__mkdir (const char *dir, bool *created);

/* Backend set-up run by cg_manager_new_with_layout: creates the parent
 * cgroup(s) and, on v2, enables controllers for them. */
int cg__v1_setup (cg_manager_t *m, orch_err_t *err);
int cg__v2_setup (cg_manager_t *m, orch_err_t *err);

/* Rejects negative limits and CPU figures whose quota would overflow. */
int cg__check_limits (const cg_limits_t *lim, orch_err_t *err);
/* The smaller of two limits where 0 means none. */
int64_t cg__min_limit (int64_t a, int64_t b);
/* Strips the last component of dir in place; false once dir has reached
 * mount (which is never read: hierarchy roots carry no limits). */
bool cg__up (char *dir, const char *mount);

/* Fills err for a failed operation on <dir>/<file>. */
int cg__err_file (orch_err_t *err, int negerrno, const char *what, const char *dir,
                  const char *file);

#endif
