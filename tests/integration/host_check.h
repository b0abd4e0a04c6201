/* Small helpers shared by the host checks (rt_check, vm_check, net_check)
 * and the start and microVM boot benchmarks: programs that drive real runtimes as root. */
#ifndef ORCH_HOST_CHECK_H
#define ORCH_HOST_CHECK_H

#include <stdbool.h>
#include <sys/types.h>

/* A file's contents (at most 4 MiB), or "" when it cannot be read; caller frees. */
char *hc_slurp (const char *path);
/* CLOCK_MONOTONIC in milliseconds. */
double hc_now_ms (void);
/* waitpid with a deadline: the status, or -1 on timeout or error. */
int hc_wait_exit (pid_t pid, int timeout_ms);
/* system() of a formatted command line; its wait status. */
int hc_sh (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
/* Called in the network namespace that plays a node: a "client host", a
 * child in a network namespace of its own joined to this one by a veth
 * (link here with node_addr/24, eth0 there with client_addr/24), and no
 * route anywhere else. Returns the child's pid (SIGKILL it when done);
 * *linked tells whether the veth and addresses were set up. */
pid_t hc_client_host (const char *link, const char *node_addr, const char *client_addr,
                      bool *linked);

#endif
