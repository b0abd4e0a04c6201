/* The hidden helper mode of orch-agent that health probes run through:
 *
 *   orch-agent --exec-in PID [--cgroup DIR]... -- CMD ARGS...
 *                                             run CMD in PID's cgroups and
 *                                             namespaces
 *   orch-agent --exec-in PID --tcp PORT       connect to 127.0.0.1:PORT in
 *                                             PID's network namespace
 *   orch-agent --exec-in PID --http PORT PATH GET PATH there, want 2xx/3xx
 *
 * A separate process, so that the agent's loop never blocks and never
 * changes namespaces itself: the agent spawns it with uv_spawn and kills it
 * when the probe's timeout passes. For CMD it joins the namespaces, then
 * forks (a new pid namespace applies to children only); the child dies with
 * the helper (PR_SET_PDEATHSIG), so killing the helper ends the command.
 *
 * The command gets what a workload gets: Docker's default capabilities,
 * no_new_privs and the runtime's seccomp filter (rt_internal.h) — a health
 * command comes from the spec and must not be a way out of the container.
 *
 * The exit status is the result: CMD's own, 128+N for a signal, 0/1 for the
 * network probes, 125 when the helper itself could not do its part. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/capability.h>
#include <sys/syscall.h>

#include "agent_internal.h"
#include "rt_internal.h"

#define AGENT_EXEC_FAIL 125
#define AGENT_EXEC_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static int
agent__exec_usage (void)
{
  fputs ("orch-agent --exec-in PID (-- CMD ARGS... | --tcp PORT | --http PORT PATH)\n", stderr);
  return AGENT_EXEC_FAIL;
}

/* Joins the namespaces of pid named in kinds (in that order; mnt last:
 * after it, /proc is the container's). Returns 0 or -1 (message printed). */
static int
agent__join (long pid, const char *const *kinds, const int *flags, size_t n)
{
  int fds[8];
  size_t i;

  for (i = 0; i < n; i++)
    {
      char path[64];
      struct stat mine, theirs;

      snprintf (path, sizeof (path), "/proc/%ld/ns/%s", pid, kinds[i]);
      fds[i] = open (path, O_RDONLY | O_CLOEXEC);
      if (fds[i] < 0)
        {
          fprintf (stderr, "orch-agent --exec-in: open %s: %s\n", path, strerror (errno));
          return -1;
        }
      /* Already there (host networking): setns would be a no-op, but a
       * user namespace refuses to be re-entered. */
      snprintf (path, sizeof (path), "/proc/self/ns/%s", kinds[i]);
      if (stat (path, &mine) == 0 && fstat (fds[i], &theirs) == 0 && mine.st_ino == theirs.st_ino
          && mine.st_dev == theirs.st_dev)
        {
          close (fds[i]);
          fds[i] = -1;
        }
    }
  for (i = 0; i < n; i++)
    {
      if (fds[i] < 0)
        continue;
      if (setns (fds[i], flags[i]) < 0)
        {
          fprintf (stderr, "orch-agent --exec-in: setns %s: %s\n", kinds[i], strerror (errno));
          return -1;
        }
      close (fds[i]);
    }
  return 0;
}

static int
agent__probe_net (const char *port_s, const char *path)
{
  struct sockaddr_in sa;
  char buf[512];
  size_t len = 0;
  long port;
  char *end;
  int fd, status = 0, r;

  port = strtol (port_s, &end, 10);
  if (*end != '\0' || port < 1 || port > 65535)
    return agent__exec_usage ();
  memset (&sa, 0, sizeof (sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons ((uint16_t) port);
  sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return AGENT_EXEC_FAIL;
  /* Blocking is fine: the agent kills this process at the probe's timeout. */
  if (connect (fd, (struct sockaddr *) &sa, sizeof (sa)) < 0)
    {
      fprintf (stderr, "connect 127.0.0.1:%ld: %s\n", port, strerror (errno));
      return 1;
    }
  if (path == NULL)
    return 0;
  {
    char req[1200];
    int n = snprintf (req, sizeof (req),
                      "GET %s HTTP/1.0\r\nHost: 127.0.0.1:%ld\r\nConnection: close\r\n\r\n", path,
                      port);
    if (n < 0 || (size_t) n >= sizeof (req) || write (fd, req, (size_t) n) != n)
      return 1;
  }
  for (;;)
    {
      ssize_t k = read (fd, buf + len, sizeof (buf) - len);
      if (k < 0 && errno == EINTR)
        continue;
      if (k > 0)
        len += (size_t) k;
      r = agent_health_http_status_ok (buf, len, &status);
      if (r >= 0)
        return r == 1 ? 0 : 1;
      if (k <= 0 || len == sizeof (buf))
        return 1;
    }
}

/* In the command's process, before exec: the workload's privileges. Only
 * system calls (the helper is single-threaded, but keep it simple). */
static int
agent__drop_privileges (const struct sock_fprog *filter)
{
  struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
  struct __user_cap_data_struct data[2];
  unsigned long long keep = rt__default_caps;
  int cap;

  for (cap = 0; cap <= 63; cap++)
    if (!(keep & (1ULL << cap)) && prctl (PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
      return -1;
  memset (data, 0, sizeof (data));
  data[0].effective = data[0].permitted = data[0].inheritable = (uint32_t) keep;
  data[1].effective = data[1].permitted = data[1].inheritable = (uint32_t) (keep >> 32);
  if (syscall (SYS_capset, &hdr, data) < 0)
    return -1;
  if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    return -1;
  if (filter != NULL && prctl (PR_SET_SECCOMP, SECCOMP_MODE_FILTER, filter) < 0)
    return -1;
  return 0;
}

int
agent_exec_in_main (int argc, char **argv)
{
  static const char *const all[] = { "user", "cgroup", "ipc", "uts", "net", "pid", "mnt" };
  static const int all_flags[] = { CLONE_NEWUSER, CLONE_NEWCGROUP, CLONE_NEWIPC, CLONE_NEWUTS,
                                   CLONE_NEWNET,  CLONE_NEWPID,    CLONE_NEWNS };
  static const char *const net[] = { "net" };
  static const int net_flags[] = { CLONE_NEWNET };
  char *env[] = { (char *) "PATH=" AGENT_EXEC_PATH, (char *) "HOME=/", NULL };
  long pid;
  char *end;
  const struct sock_fprog *filter;
  char **cmd;
  pid_t child;
  int st, i;

  if (argc < 4)
    return agent__exec_usage ();
  pid = strtol (argv[2], &end, 10);
  if (*end != '\0' || pid <= 1)
    return agent__exec_usage ();

  if (strcmp (argv[3], "--tcp") == 0 || strcmp (argv[3], "--http") == 0)
    {
      bool http = argv[3][2] == 'h';
      if (argc != (http ? 6 : 5))
        return agent__exec_usage ();
      if (agent__join (pid, net, net_flags, 1) < 0)
        return AGENT_EXEC_FAIL;
      return agent__probe_net (argv[4], http ? argv[5] : NULL);
    }
  /* --cgroup DIR...: the allocation's cgroups, joined first (their paths
   * are the host's: before the mount namespace changes), so that the
   * command counts against the allocation's limits. */
  for (i = 3; i + 1 < argc && strcmp (argv[i], "--cgroup") == 0; i += 2)
    {
      char procs[4096];
      int fd, n = snprintf (procs, sizeof (procs), "%s/cgroup.procs", argv[i + 1]);
      if (n < 0 || (size_t) n >= sizeof (procs))
        return agent__exec_usage ();
      fd = open (procs, O_WRONLY | O_CLOEXEC);
      if (fd < 0 || write (fd, "0", 1) != 1)
        {
          fprintf (stderr, "orch-agent --exec-in: join %s: %s\n", procs, strerror (errno));
          if (fd >= 0)
            close (fd);
          return AGENT_EXEC_FAIL;
        }
      close (fd);
    }
  if (i >= argc || strcmp (argv[i], "--") != 0 || i + 1 >= argc)
    return agent__exec_usage ();
  cmd = &argv[i + 1];

  {
    orch_err_t err = { 0 };
    filter = rt__seccomp_default (&err);
    if (filter == NULL)
      {
        fprintf (stderr, "orch-agent --exec-in: seccomp: %s\n", err.msg);
        return AGENT_EXEC_FAIL;
      }
  }
  if (agent__join (pid, all, all_flags, sizeof (all_flags) / sizeof (all_flags[0])) < 0)
    return AGENT_EXEC_FAIL;
  child = fork ();
  if (child < 0)
    return AGENT_EXEC_FAIL;
  if (child == 0)
    {
      /* Dies with the helper, which the agent kills at the timeout. */
      prctl (PR_SET_PDEATHSIG, SIGKILL);
      if (chdir ("/") < 0 || agent__drop_privileges (filter) < 0)
        {
          fprintf (stderr, "orch-agent --exec-in: drop privileges: %s\n", strerror (errno));
          _exit (AGENT_EXEC_FAIL);
        }
      execvpe (cmd[0], cmd, env);
      fprintf (stderr, "orch-agent --exec-in: exec %s: %s\n", cmd[0], strerror (errno));
      _exit (127);
    }
  while (waitpid (child, &st, 0) < 0)
    if (errno != EINTR)
      return AGENT_EXEC_FAIL;
  if (WIFEXITED (st))
    return WEXITSTATUS (st);
  if (WIFSIGNALED (st))
    return 128 + WTERMSIG (st);
  return AGENT_EXEC_FAIL;
}
