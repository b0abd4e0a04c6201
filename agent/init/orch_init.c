/* orch-init: the pid 1 of every container (and later of every microVM guest).
 *
 *   orch-init [--] CMD ARGS...
 *
 * A process that is pid 1 of a pid namespace gets no default signal actions:
 * a bare /bin/sh there ignores SIGTERM, and nobody reaps orphans. orch-init
 * runs CMD as its child, forwards the stop signals to it, reaps every zombie
 * and, when CMD exits, records how on fd 3 (when the runtime opened it: the
 * record outlives the agent) and exits the same way (128+sig for a signal).
 *
 * It is linked statically and exec'd from outside the image, so it must not
 * touch glibc's NSS or anything else that loads files at run time. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define INIT_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define INIT_RECORD_FD 3

static const int init_forwarded[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };

static void
init_write_all (int fd, const char *buf, size_t len)
{
  while (len > 0)
    {
      ssize_t n = write (fd, buf, len);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return;
      buf += n;
      len -= (size_t) n;
    }
}

static void
init_record (const char *text)
{
  if (fcntl (INIT_RECORD_FD, F_GETFD) < 0)
    return;
  init_write_all (INIT_RECORD_FD, text, strlen (text));
}

/* execvp without touching the environment: a command without a slash is
 * searched on the container's PATH (INIT_DEFAULT_PATH when unset). Returns
 * the most telling errno (EACCES wins over ENOENT, as in execvp). */
static int
init_exec (char **argv)
{
  const char *cmd = argv[0];
  if (strchr (cmd, '/') != NULL)
    {
      execv (cmd, argv);
      return errno;
    }
  const char *path = getenv ("PATH");
  if (path == NULL || *path == '\0')
    path = INIT_DEFAULT_PATH;
  int best = ENOENT;
  size_t clen = strlen (cmd);
  for (const char *p = path;;)
    {
      const char *end = strchrnul (p, ':');
      size_t dlen = (size_t) (end - p);
      char full[PATH_MAX];
      if (dlen + 1 + clen < sizeof full)
        {
          if (dlen == 0)
            memcpy (full, ".", (dlen = 1));
          else
            memcpy (full, p, dlen);
          full[dlen] = '/';
          memcpy (full + dlen + 1, cmd, clen + 1);
          execv (full, argv);
          if (errno == EACCES || errno == EPERM || errno == ENOEXEC || errno == ETXTBSY)
            best = errno;
        }
      if (*end == '\0')
        break;
      p = end + 1;
    }
  return best;
}

int
main (int argc, char **argv)
{
  int first = 1;
  if (first < argc && strcmp (argv[first], "--") == 0)
    first++;
  if (first >= argc)
    {
      static const char usage[] = "usage: orch-init [--] CMD ARGS...\n";
      init_write_all (2, usage, sizeof usage - 1);
      return 2;
    }

  /* The workload must not inherit the record fd. */
  if (fcntl (INIT_RECORD_FD, F_GETFD) >= 0)
    fcntl (INIT_RECORD_FD, F_SETFD, FD_CLOEXEC);

  /* Every signal we care about is taken with sigwaitinfo: a blocked signal
   * is queued for a namespace's pid 1 even without a handler. */
  sigset_t waitset;
  sigemptyset (&waitset);
  for (size_t i = 0; i < sizeof init_forwarded / sizeof init_forwarded[0]; i++)
    sigaddset (&waitset, init_forwarded[i]);
  sigaddset (&waitset, SIGCHLD);
  signal (SIGCHLD, SIG_DFL);
  sigprocmask (SIG_BLOCK, &waitset, NULL);

  /* Reports an exec failure of the child (its errno) to us. */
  int errpipe[2];
  if (pipe2 (errpipe, O_CLOEXEC) < 0)
    {
      perror ("orch-init: pipe");
      return 127;
    }

  pid_t child = fork ();
  if (child < 0)
    {
      perror ("orch-init: fork");
      return 127;
    }
  if (child == 0)
    {
      close (errpipe[0]);
      /* Its own process group, so a terminal's or a shell's group signals
       * aimed at the workload do not hit pid 1 as well. */
      setpgid (0, 0);
      /* The workload starts with nothing blocked, whatever we inherited
       * (the runtime holds the forwarded signals blocked across its exec
       * of us so that none is lost before we wait for them). */
      sigset_t none;
      sigemptyset (&none);
      sigprocmask (SIG_SETMASK, &none, NULL);
      int e = init_exec (argv + first);
      init_write_all (errpipe[1], (const char *) &e, sizeof e);
      _exit (127);
    }
  close (errpipe[1]);

  int exec_errno = 0;
  ssize_t n;
  do
    n = read (errpipe[0], &exec_errno, sizeof exec_errno);
  while (n < 0 && errno == EINTR);
  close (errpipe[0]);
  if (n != (ssize_t) sizeof exec_errno)
    exec_errno = 0;

  int code = 0;
  for (;;)
    {
      siginfo_t si;
      int sig = sigwaitinfo (&waitset, &si);
      if (sig < 0)
        continue;
      if (sig != SIGCHLD)
        {
          kill (child, sig);
          continue;
        }
      /* Reap everything: orphans re-parented to us as well as the child. */
      int status;
      pid_t p;
      int done = 0;
      while ((p = waitpid (-1, &status, WNOHANG)) > 0)
        {
          if (p != child)
            continue;
          char text[PATH_MAX + 128];
          if (exec_errno != 0)
            {
              snprintf (text, sizeof text, "failed exec %s: %s\n", argv[first],
                        strerror (exec_errno));
              code = 127;
            }
          else if (WIFEXITED (status))
            {
              code = WEXITSTATUS (status);
              snprintf (text, sizeof text, "exited %d\n", code);
            }
          else
            {
              code = 128 + WTERMSIG (status);
              snprintf (text, sizeof text, "signaled %d\n", WTERMSIG (status));
            }
          init_record (text);
          if (exec_errno != 0)
            {
              /* The log gets it too: that is where users look first. */
              init_write_all (2, "orch-init: ", 11);
              init_write_all (2, text, strlen (text));
            }
          done = 1;
        }
      if (done)
        break;
    }
  return code;
}
