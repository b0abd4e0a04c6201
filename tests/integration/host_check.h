/* Small helpers shared by the host checks (rt_check, vm_check, net_check)
 * and the start benchmark: programs that drive real runtimes as root. */
#ifndef ORCH_HOST_CHECK_H
#define ORCH_HOST_CHECK_H

#include <sys/types.h>

/* A file's contents (at most 4 MiB), or "" when it cannot be read; caller frees. */
char *hc_slurp (const char *path);
/* CLOCK_MONOTONIC in milliseconds. */
double hc_now_ms (void);
/* waitpid with a deadline: the status, or -1 on timeout or error. */
int hc_wait_exit (pid_t pid, int timeout_ms);

#endif
