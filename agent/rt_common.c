/* What every runtime shares: the exit record orch-init leaves behind, the
 * per-allocation state file that lets a restarted agent re-adopt a
 * workload, and the small text formats a container's /etc gets. All of it
 * is plain parsing and file I/O, so that unit tests can drive it. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "orch_util.h"
#include "rt.h"
#include "rt_internal.h"

/* orch-init writes at most PATH_MAX + 128 bytes; anything bigger is not
 * one of its records. */
#define RT_EXIT_RECORD_MAX (PATH_MAX + 256)
#define RT_STATE_MAX 4096

/* Parses a decimal in [lo, hi] that fills all of s. */
static int
rt_parse_int (const char *s, long long lo, long long hi, long long *out)
{
  if (*s == '\0' || !(isdigit ((unsigned char) *s) || *s == '-'))
    return -EINVAL;
  char *end;
  errno = 0;
  long long v = strtoll (s, &end, 10);
  if (errno != 0 || *end != '\0' || v < lo || v > hi)
    return -EINVAL;
  *out = v;
  return 0;
}

static int
rt_exit_record_parse (const char *alloc_dir, int *exit_code, char **reason, orch_err_t *err)
{
  if (alloc_dir == NULL || exit_code == NULL || reason == NULL)
    return orch_err_set (err, EINVAL, "exit record: missing arguments");
  cleanup_free char *path = xasprintf ("%s/exit", alloc_dir);
  cleanup_free char *text = NULL;
  size_t len = 0;
  int r = orch_read_file (path, RT_EXIT_RECORD_MAX, &text, &len);
  if (r == -ENOENT)
    return 0;
  if (r < 0)
    return orch_err_set (err, -r, "exit record %s: %s", path, strerror (-r));
  /* The runtime creates the file empty at start; orch-init writes its one
   * line with a single write when the workload ends. */
  if (len == 0)
    return 0;
  if (memchr (text, '\0', len) != NULL)
    return orch_err_set (err, EINVAL, "exit record %s: binary data", path);
  while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
    text[--len] = '\0';
  if (strchr (text, '\n') != NULL)
    return orch_err_set (err, EINVAL, "exit record %s: more than one line", path);

  long long v;
  if (strncmp (text, "exited ", 7) == 0)
    {
      if (rt_parse_int (text + 7, 0, 255, &v) < 0)
        return orch_err_set (err, EINVAL, "exit record %s: bad exit code \"%s\"", path, text + 7);
      *exit_code = (int) v;
      *reason = xstrdup ("");
      return 1;
    }
  if (strncmp (text, "signaled ", 9) == 0)
    {
      if (rt_parse_int (text + 9, 1, 64, &v) < 0)
        return orch_err_set (err, EINVAL, "exit record %s: bad signal \"%s\"", path, text + 9);
      *exit_code = 128 + (int) v;
      const char *abbrev = sigabbrev_np ((int) v);
      *reason = abbrev != NULL ? xasprintf ("killed by SIG%s", abbrev)
                               : xasprintf ("killed by signal %lld", v);
      return 1;
    }
  if (strncmp (text, "failed exec ", 12) == 0 && text[12] != '\0')
    {
      /* orch-init exits 127 after a failed exec, as a shell does. */
      *exit_code = 127;
      *reason = xstrdup (text);
      return 1;
    }
  return orch_err_set (err, EINVAL, "exit record %s: unknown record \"%.64s\"", path, text);
}

int
rt_exit_record_read (const char *alloc_dir, int *exit_code, char **reason, orch_err_t *err)
{
  /* rt.h promises -1, not orch_err_set's -errno. */
  int r = rt_exit_record_parse (alloc_dir, exit_code, reason, err);
  return r < 0 ? -1 : r;
}

/* ---- the state file: <alloc_dir>/state ---- */

int
rt__state_write (const char *alloc_dir, const rt__state_t *st, orch_err_t *err)
{
  cleanup_free char *path = xasprintf ("%s/state", alloc_dir);
  cleanup_free char *text
      = xasprintf ("pid %d\nstarttime %" PRIu64 "\nstarted_ms %" PRId64 "\naddress %s\nuserns %d\n",
                   (int) st->pid, st->starttime, st->started_ms,
                   st->address[0] != '\0' ? st->address : "-", st->userns_slot);
  cleanup_free char *tmp = xasprintf ("%s/state.tmp", alloc_dir);
  /* No fsync: the file must outlive the agent's process, not the host
   * (the workloads do not survive a reboot either), and a sync would cost
   * milliseconds of every start. */
  cleanup_close int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644);
  if (fd < 0)
    return orch_err_sys (err, "write %s", tmp);
  size_t len = strlen (text);
  if (write (fd, text, len) != (ssize_t) len)
    {
      int e = errno != 0 ? errno : EIO;
      unlink (tmp);
      return orch_err_set (err, e, "write %s: %s", tmp, strerror (e));
    }
  if (rename (tmp, path) < 0)
    {
      int e = errno;
      unlink (tmp);
      return orch_err_set (err, e, "rename %s: %s", path, strerror (e));
    }
  return 0;
}

int
rt__state_parse (const char *text, rt__state_t *st)
{
  memset (st, 0, sizeof *st);
  st->userns_slot = -1;
  bool have_pid = false, have_start = false;
  cleanup_free char *copy = xstrdup (text);
  char *save = NULL;
  for (char *line = strtok_r (copy, "\n", &save); line != NULL; line = strtok_r (NULL, "\n", &save))
    {
      char *sp = strchr (line, ' ');
      if (sp == NULL)
        return -EINVAL;
      *sp = '\0';
      const char *key = line, *val = sp + 1;
      long long v;
      if (strcmp (key, "pid") == 0)
        {
          if (rt_parse_int (val, 1, INT_MAX, &v) < 0)
            return -EINVAL;
          st->pid = (pid_t) v;
          have_pid = true;
        }
      else if (strcmp (key, "starttime") == 0)
        {
          if (rt_parse_int (val, 0, LLONG_MAX, &v) < 0)
            return -EINVAL;
          st->starttime = (uint64_t) v;
          have_start = true;
        }
      else if (strcmp (key, "started_ms") == 0)
        {
          if (rt_parse_int (val, 0, LLONG_MAX, &v) < 0)
            return -EINVAL;
          st->started_ms = v;
        }
      else if (strcmp (key, "address") == 0)
        {
          if (strlen (val) >= sizeof st->address)
            return -EINVAL;
          if (strcmp (val, "-") != 0)
            strcpy (st->address, val);
        }
      else if (strcmp (key, "userns") == 0)
        {
          if (rt_parse_int (val, -1, RT_USERNS_SLOTS - 1, &v) < 0)
            return -EINVAL;
          st->userns_slot = (int) v;
        }
      /* Unknown keys are from a newer agent: ignore them. */
    }
  return have_pid && have_start ? 0 : -EINVAL;
}

int
rt__state_read (const char *alloc_dir, rt__state_t *st, orch_err_t *err)
{
  cleanup_free char *path = xasprintf ("%s/state", alloc_dir);
  cleanup_free char *text = NULL;
  size_t len;
  int r = orch_read_file (path, RT_STATE_MAX, &text, &len);
  if (r < 0)
    return orch_err_set (err, -r, "read %s: %s", path, strerror (-r));
  if (rt__state_parse (text, st) < 0)
    return orch_err_set (err, EINVAL, "%s: malformed state file", path);
  return 0;
}

int
rt__parse_stat_starttime (const char *stat, uint64_t *out)
{
  /* comm (field 2) may hold spaces and parentheses: fields start after the
   * last ')'. Then field 3 (state) ... field 22 (starttime). */
  const char *p = strrchr (stat, ')');
  if (p == NULL)
    return -EINVAL;
  p++;
  for (int field = 3; field <= 22; field++)
    {
      while (*p == ' ')
        p++;
      if (*p == '\0')
        return -EINVAL;
      if (field == 22)
        {
          char *end;
          errno = 0;
          unsigned long long v = strtoull (p, &end, 10);
          if (errno != 0 || end == p || (*end != ' ' && *end != '\n' && *end != '\0'))
            return -EINVAL;
          *out = v;
          return 0;
        }
      while (*p != ' ' && *p != '\0')
        p++;
    }
  return -EINVAL;
}

int
rt__proc_starttime (pid_t pid, uint64_t *out)
{
  char path[64];
  snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
  cleanup_free char *text = NULL;
  size_t len;
  int r = orch_read_file (path, 4096, &text, &len);
  if (r < 0)
    return r;
  return rt__parse_stat_starttime (text, out);
}

/* ---- /etc/resolv.conf and /etc/hosts ---- */

char *
rt__resolv_conf (const char *host, bool own_netns)
{
  size_t cap = strlen (host) + 64, used = 0;
  char *out = xmalloc (cap);
  out[0] = '\0';
  const char *line = host;
  while (*line != '\0')
    {
      const char *eol = strchrnul (line, '\n');
      size_t n = (size_t) (eol - line);
      const char *p = line;
      while (p < eol && (*p == ' ' || *p == '\t'))
        p++;
      bool skip = false;
      /* A nameserver on the host's loopback (systemd-resolved, dnsmasq)
       * cannot be reached from the container's own network namespace. */
      if (own_netns && (size_t) (eol - p) > 10 && strncmp (p, "nameserver", 10) == 0
          && (p[10] == ' ' || p[10] == '\t'))
        {
          const char *a = p + 10;
          while (a < eol && (*a == ' ' || *a == '\t'))
            a++;
          if ((eol - a >= 4 && strncmp (a, "127.", 4) == 0)
              || (eol - a >= 3 && strncmp (a, "::1", 3) == 0
                  && (eol - a == 3 || a[3] == ' ' || a[3] == '\t' || a[3] == '\r')))
            skip = true;
        }
      if (!skip)
        {
          memcpy (out + used, line, n);
          used += n;
          out[used++] = '\n';
          out[used] = '\0';
        }
      line = *eol == '\n' ? eol + 1 : eol;
    }
  return out;
}

char *
rt__hosts_file (const char *hostname, const char *address)
{
  /* Without an address of its own the name still resolves, to loopback, as
   * on a host without a network. */
  return xasprintf ("127.0.0.1\tlocalhost\n"
                    "::1\tlocalhost ip6-localhost ip6-loopback\n"
                    "%s\t%s\n",
                    address != NULL && address[0] != '\0' ? address : "127.0.1.1", hostname);
}

bool
rt__valid_id (const char *id)
{
  size_t len = id != NULL ? strlen (id) : 0;
  if (len == 0 || len > 253 || id[0] == '.' || id[0] == '-')
    return false;
  for (const char *p = id; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')
          || *p == '-' || *p == '.' || *p == '_'))
      return false;
  return true;
}

bool
rt__env_has (char *const *env, const char *key)
{
  size_t klen = strlen (key);
  for (size_t i = 0; env != NULL && env[i] != NULL; i++)
    if (strncmp (env[i], key, klen) == 0 && env[i][klen] == '=')
      return true;
  return false;
}
