/* Private to the runtimes (agent/rt_*.c). */
#ifndef ORCH_RT_INTERNAL_H
#define ORCH_RT_INTERNAL_H

#include <linux/filter.h>

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

#endif
