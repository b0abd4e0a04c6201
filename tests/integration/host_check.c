#define _GNU_SOURCE
#include "host_check.h"

#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "orch_util.h"

char *
hc_slurp (const char *path)
{
  char *data = NULL;
  size_t len;
  if (orch_read_file (path, 4 << 20, &data, &len) < 0)
    return xstrdup ("");
  return data;
}

double
hc_now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

int
hc_wait_exit (pid_t pid, int timeout_ms)
{
  double end = hc_now_ms () + timeout_ms;
  for (;;)
    {
      int status;
      pid_t r = waitpid (pid, &status, WNOHANG);
      if (r == pid)
        return status;
      if (r < 0 && errno != EINTR)
        return -1;
      if (hc_now_ms () > end)
        return -1;
      usleep (2000);
    }
}

int
hc_sh (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  char *cmd = NULL;
  if (vasprintf (&cmd, fmt, ap) < 0)
    abort ();
  va_end (ap);
  int r = system (cmd);
  free (cmd);
  return r;
}

pid_t
hc_client_host (const char *link, const char *node_addr, const char *client_addr, bool *linked)
{
  pid_t client = fork ();
  if (client == 0)
    {
      if (unshare (CLONE_NEWNET) < 0)
        _exit (1);
      pause ();
      _exit (0);
    }
  usleep (50000); /* its unshare */
  *linked = client > 0
            && hc_sh ("ip link add %s type veth peer name eth0 netns %d && "
                      "ip addr add %s/24 dev %s && ip link set %s up && "
                      "nsenter -t %d -n sh -c 'ip link set lo up && ip addr add %s/24 dev eth0 "
                      "&& ip link set eth0 up'",
                      link, (int) client, node_addr, link, link, (int) client, client_addr)
                   == 0;
  return client;
}
