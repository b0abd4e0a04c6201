/* Workload runtimes on the agent, behind one ops table (DESIGN.md §7):
 * "container" now, "microvm" as its sibling later.
 *
 * The agent supervises each allocation's host pid: it gets the exit status
 * with waitpid (the workload's init is the agent's child) and asks the
 * runtime to clean up after it. stdout and stderr go straight to the
 * allocation's log file (no pipe through the agent). */
#ifndef ORCH_RT_H
#define ORCH_RT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cg.h"
#include "net.h"
#include "orch_err.h"
#include "orch_spec.h"

typedef struct rt_env_s
{
  const char *state_dir; /* --state-dir, e.g. /var/lib/orch */
  cg_manager_t *cg;
  net_t *net; /* the node's bridge network; NULL where it could not be set up */
} rt_env_t;

/* What the agent asks a runtime to start. Everything is borrowed. */
typedef struct rt_alloc_s
{
  const char *alloc_id;   /* also the hostname and the cgroup's name */
  const orch_spec_t *spec;
  const char *rootfs;     /* the image's root filesystem directory */
  const char *alloc_dir;  /* <state>/allocs/<alloc-id>, exists, owned by the agent */
  const char *log_path;   /* file for stdout+stderr, opened O_APPEND by the runtime */
  const net_port_t *ports; /* published ports with the host ports the scheduler assigned */
  size_t n_ports;
} rt_alloc_t;

typedef struct rt_proc_s
{
  pid_t pid;          /* host pid of the workload's init (the agent's child, or adopted) */
  int64_t started_ms; /* wall clock */
  char address[64];   /* the workload's IP on the node bridge, "" for host networking */
  char vmm[64];       /* microVMs: "qemu-microvm (kvm)" / "qemu-microvm (tcg)" */
  char guest_kernel[64]; /* microVMs: guest kernel version */
} rt_proc_t;

typedef struct rt_ops_s
{
  const char *name;
  /* 0 when the runtime can run workloads on this host, else -1 with why. */
  int (*probe) (rt_env_t *env, orch_err_t *err);
  /* Starts the workload; on success it has exec'd or is about to, and *out
   * has its pid. On failure nothing is left behind (no cgroup, no process). */
  int (*start) (rt_env_t *env, const rt_alloc_t *a, rt_proc_t *out, orch_err_t *err);
  /* Sends sig to the workload (its init). */
  int (*kill) (rt_env_t *env, const char *alloc_id, const rt_proc_t *p, int sig, orch_err_t *err);
  int (*usage) (rt_env_t *env, const char *alloc_id, cg_usage_t *out, orch_err_t *err);
  /* After the workload's init has exited (and been reaped): kills anything
   * left and removes the cgroup and any per-allocation mounts. Idempotent. */
  int (*cleanup) (rt_env_t *env, const char *alloc_id, orch_err_t *err);
  /* Re-adoption after an agent restart, from what start() left in alloc_dir:
   * returns 1 and fills *out when the workload still runs (the caller then
   * watches its pid, which is no longer its child), 0 when it is gone, -1
   * with err when alloc_dir says nothing usable. */
  int (*adopt) (rt_env_t *env, const char *alloc_id, const char *alloc_dir, rt_proc_t *out,
                orch_err_t *err);
  /* Optional (NULL when a runtime has nothing to prepare): slow, blocking
   * work for a root filesystem that start() would otherwise do on the
   * agent's loop (the microVM runtime builds the image's disk once). The
   * agent runs it in its thread pool before start(); thread-safe. */
  int (*prepare) (rt_env_t *env, const char *rootfs, orch_err_t *err);
} rt_ops_t;

/* The exit record the workload's init leaves in <alloc_dir>/exit when the
 * workload ends: "exited N", "signaled N" or "failed exec CMD: why". Parses
 * it into *exit_code (128+N for a signal) and a newly allocated *reason
 * ("" for a plain exit). Returns 1 when a record was read, 0 when there is
 * none (yet), -1 with err when it is malformed. */
int rt_exit_record_read (const char *alloc_dir, int *exit_code, char **reason, orch_err_t *err);

extern const rt_ops_t rt_container_ops;
extern const rt_ops_t rt_microvm_ops;

/* The runtime named name ("container", "microvm"), or NULL. */
const rt_ops_t *rt_lookup (const char *name);

/* The node-local image store; see image.h for the whole API (content-
 * addressed layout, docker-archive and OCI import, registry pull, GC). */
int image_import (const char *state_dir, const char *name, const char *source, orch_err_t *err);
/* Root filesystem path of an imported image, or NULL with err. Caller frees. */
char *image_rootfs (const char *state_dir, const char *name, orch_err_t *err);

#endif
