/* orch_run.h: posix_spawn with two O_CLOEXEC pipes, poll() on both, a
 * cancel flag checked between polls. */
#define _GNU_SOURCE
#include "orch_run.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "orch_util.h"

#define ORCH_RUN_POLL_MS 100
#define ORCH_RUN_KILL_GRACE_MS 5000

static const char *
orch__basename (const char *p)
{
  const char *s = strrchr (p, '/');
  return s != NULL ? s + 1 : p;
}

/* Appends to the ring of stderr's tail: keeps the newest bytes. */
static void
orch__tail_add (char *tail, size_t *len, const char *buf, size_t n)
{
  const size_t cap = ORCH_RUN_ERR_TAIL - 1;
  if (n >= cap)
    {
      memcpy (tail, buf + n - cap, cap);
      *len = cap;
      return;
    }
  if (*len + n > cap)
    {
      size_t drop = *len + n - cap;
      memmove (tail, tail + drop, *len - drop);
      *len -= drop;
    }
  memcpy (tail + *len, buf, n);
  *len += n;
}

/* Once r->cancel is set: SIGTERM, then SIGKILL when the grace is over. */
static void
orch__run_cancel_tick (const orch_run_t *r, pid_t pid, bool *cancelled, int64_t *kill_at)
{
  if (!*cancelled && r->cancel != NULL && *r->cancel)
    {
      *cancelled = true;
      kill (pid, SIGTERM);
      *kill_at = orch_now_mono_ms () + ORCH_RUN_KILL_GRACE_MS;
    }
  if (*kill_at >= 0 && orch_now_mono_ms () >= *kill_at)
    {
      kill (pid, SIGKILL);
      *kill_at = -1;
    }
}

int
orch_run (orch_run_t *r, orch_err_t *err)
{
  static char *const default_env[]
      = { (char *) "PATH=/usr/sbin:/usr/bin:/sbin:/bin", (char *) "LC_ALL=C", NULL };
  const char *prog = orch__basename (r->argv[0]);
  int opipe[2] = { -1, -1 }, epipe[2] = { -1, -1 };
  size_t out_len = 0, tail_len = 0;
  bool cancelled = false, too_big = false;
  int64_t kill_at = -1;
  posix_spawn_file_actions_t fa;
  pid_t pid;
  int status = 0;

  r->out = NULL;
  r->err_tail[0] = '\0';
  r->exit_code = -1;
  if (pipe2 (epipe, O_CLOEXEC) < 0
      || (r->out_max > 0 && pipe2 (opipe, O_CLOEXEC) < 0))
    {
      int ret = orch_err_sys (err, "%s: pipe", prog);
      orch_closep (&epipe[0]);
      orch_closep (&epipe[1]);
      return ret;
    }
  posix_spawn_file_actions_init (&fa);
  posix_spawn_file_actions_addopen (&fa, 0, "/dev/null", O_RDONLY, 0);
  if (r->out_max > 0)
    posix_spawn_file_actions_adddup2 (&fa, opipe[1], 1);
  else
    posix_spawn_file_actions_addopen (&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2 (&fa, epipe[1], 2);
  int sr = posix_spawn (&pid, r->argv[0], &fa, NULL, r->argv,
                        r->envp != NULL ? r->envp : default_env);
  posix_spawn_file_actions_destroy (&fa);
  orch_closep (&epipe[1]);
  orch_closep (&opipe[1]);
  if (sr != 0)
    {
      orch_closep (&epipe[0]);
      orch_closep (&opipe[0]);
      return orch_err_set (err, sr, "%s: %s", r->argv[0], strerror (sr));
    }

  if (r->out_max > 0)
    r->out = xmalloc (r->out_max + 1);
  while (epipe[0] >= 0 || opipe[0] >= 0)
    {
      struct pollfd pf[2];
      int nf = 0;
      if (epipe[0] >= 0)
        pf[nf++] = (struct pollfd){ .fd = epipe[0], .events = POLLIN };
      if (opipe[0] >= 0)
        pf[nf++] = (struct pollfd){ .fd = opipe[0], .events = POLLIN };
      int pr = poll (pf, (nfds_t) nf, ORCH_RUN_POLL_MS);
      if (pr < 0 && errno != EINTR)
        break;
      for (int i = 0; pr > 0 && i < nf; i++)
        {
          if (pf[i].revents == 0)
            continue;
          char buf[4096];
          ssize_t n = read (pf[i].fd, buf, sizeof buf);
          if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
          if (n <= 0)
            {
              if (pf[i].fd == epipe[0])
                orch_closep (&epipe[0]);
              else
                orch_closep (&opipe[0]);
              continue;
            }
          if (pf[i].fd == epipe[0])
            orch__tail_add (r->err_tail, &tail_len, buf, (size_t) n);
          else if (out_len + (size_t) n <= r->out_max)
            {
              memcpy (r->out + out_len, buf, (size_t) n);
              out_len += (size_t) n;
            }
          else if (!too_big)
            {
              too_big = true;
              kill (pid, SIGKILL);
            }
        }
      orch__run_cancel_tick (r, pid, &cancelled, &kill_at);
    }
  orch_closep (&epipe[0]);
  orch_closep (&opipe[0]);
  /* Both pipes are at end of file: the child has exited or closed them
   * (a child that closes them and lives on is waited for, with the
   * cancel flag still honoured). */
  for (;;)
    {
      bool block = kill_at < 0 && (cancelled || r->cancel == NULL);
      pid_t w = waitpid (pid, &status, block ? 0 : WNOHANG);
      if (w == pid)
        break;
      if (w < 0 && errno != EINTR)
        {
          status = -1;
          break;
        }
      if (w == 0)
        {
          orch__run_cancel_tick (r, pid, &cancelled, &kill_at);
          poll (NULL, 0, ORCH_RUN_POLL_MS / 10);
        }
    }

  while (tail_len > 0 && (r->err_tail[tail_len - 1] == '\n' || r->err_tail[tail_len - 1] == '\r'))
    tail_len--;
  r->err_tail[tail_len] = '\0';
  if (r->out != NULL)
    r->out[out_len] = '\0';
  if (status != -1 && WIFEXITED (status))
    r->exit_code = WEXITSTATUS (status);

  if (cancelled)
    return orch_err_set (err, ECANCELED, "%s: cancelled", prog);
  if (too_big)
    return orch_err_set (err, E2BIG, "%s: more than %zu bytes of output", prog, r->out_max);
  if (status == -1)
    return orch_err_set (err, ECHILD, "%s: lost track of the process", prog);
  if (WIFSIGNALED (status))
    return orch_err_set (err, EIO, "%s killed by signal %d%s%s", prog, WTERMSIG (status),
                         tail_len ? ": " : "", r->err_tail);
  if (r->exit_code != 0)
    return orch_err_set (err, EIO, "%s exited with status %d%s%s", prog, r->exit_code,
                         tail_len ? ": " : "", r->err_tail);
  return 0;
}

void
orch_run_clear (orch_run_t *r)
{
  free (r->out);
  r->out = NULL;
}

char *
orch_program_path (const char *env_var, const char *name)
{
  const char *env = env_var != NULL ? getenv (env_var) : NULL;
  if (env != NULL && *env != '\0')
    return xstrdup (env);
  char exe[PATH_MAX];
  ssize_t n = readlink ("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0)
    return xasprintf ("/usr/libexec/orch/%s", name);
  exe[n] = '\0';
  char *slash = strrchr (exe, '/');
  if (slash != NULL)
    *slash = '\0';
  return xasprintf ("%s/%s", exe, name);
}
