/* Private to the runtimes (agent/rt_*.c). */
#ifndef ORCH_RT_INTERNAL_H
#define ORCH_RT_INTERNAL_H

#include <linux/filter.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "orch_err.h"

/* The default seccomp deny-list (mount, kexec, module loading, keyctl,
 * ptrace, bpf, perf_event_open, unshare/setns, open_by_handle_at, clock
 * setting, swap, reboot -> EPERM), compiled to BPF once per process with
 * libseccomp and kept for the process's lifetime; the program is owned by
 * the library and may be installed in a child with no allocation. Returns
 * NULL with err when libseccomp fails. Thread-safe. */
const struct sock_fprog *rt__seccomp_default (orch_err_t *err);

/* Capabilities a workload keeps: Docker's default set, as a bit mask. */
extern const unsigned long long rt__default_caps;

/* Path of the orch-init binary: $ORCH_INIT_PATH, else orch-init next to
 * /proc/self/exe. Caller frees. */
char *rt__init_path (void);

/* User namespaces: allocation k (a slot, 0 <= k < RT_USERNS_SLOTS) maps
 * container ids 0..RT_USERNS_SIZE-1 to host ids RT_USERNS_BASE + k *
 * RT_USERNS_SIZE onwards. Slots are reserved as <state>/userns/<k>. */
#define RT_USERNS_BASE 100000u
#define RT_USERNS_SIZE 65536u
#define RT_USERNS_SLOTS 4096

/* What start() leaves in <alloc_dir>/state for adopt(). */
typedef struct rt__state_s
{
  pid_t pid;          /* host pid of the workload's init */
  uint64_t starttime; /* /proc/PID/stat field 22: tells a reused pid apart */
  int64_t started_ms;
  char address[64]; /* "" without a bridge address */
  int userns_slot;  /* -1 without a user namespace */
} rt__state_t;

/* Writes the state file atomically. Returns 0 or -1 with err. */
int rt__state_write (const char *alloc_dir, const rt__state_t *st, orch_err_t *err);
/* Reads it back. Returns 0 or -1 with err (missing or malformed). */
int rt__state_read (const char *alloc_dir, rt__state_t *st, orch_err_t *err);
/* Parses the state file's text. Returns 0 or -EINVAL. */
int rt__state_parse (const char *text, rt__state_t *st);

/* Field 22 (start time in clock ticks since boot) of a /proc/PID/stat
 * line, which may have spaces and parentheses in its comm. 0 or -EINVAL. */
int rt__parse_stat_starttime (const char *stat, uint64_t *out);
/* The same read from /proc/PID/stat. 0 or -errno. */
int rt__proc_starttime (pid_t pid, uint64_t *out);

/* The container's /etc/resolv.conf from the host's text: nameservers on the
 * host's loopback are dropped when the container has its own network
 * namespace (they are unreachable from there). Caller frees. */
char *rt__resolv_conf (const char *host, bool own_netns);
/* The container's /etc/hosts: localhost, and hostname at address (127.0.1.1
 * when address is NULL or ""). Caller frees. */
char *rt__hosts_file (const char *hostname, const char *address);

/* An allocation id usable as a directory, cgroup and host name:
 * [A-Za-z0-9._-], not starting with '.' or '-', at most 253 bytes. */
bool rt__valid_id (const char *id);
/* True if the NULL-terminated "KEY=VALUE" list env sets key. */
bool rt__env_has (char *const *env, const char *key);

#endif
