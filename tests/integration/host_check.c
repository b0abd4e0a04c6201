#include "host_check.h"

#include <errno.h>
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
