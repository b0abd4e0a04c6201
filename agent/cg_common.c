/* cgroup layout detection, the manager, file parsers and the helpers both
 * backends share (reading and writing interface files, killing and removing
 * cgroups). */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cg_internal.h"
#include "orch_util.h"

/* mountinfo of hosts with thousands of mounts (Kubernetes nodes) runs to a
 * few MiB; anything beyond this is not a mount table we want to hold. */
#define CG__MOUNTINFO_MAX ((size_t) 16 * 1024 * 1024)

/* ---- Parsers ---------------------------------------------------------- */

/* Parses the decimal int64 at the start of s; *endp gets the first byte
 * after it. Leading blanks and '+' are refused: kernel files carry neither,
 * and strtoll alone would take them. */
static int
cg__parse_i64 (const char *s, const char **endp, int64_t *out)
{
  char *end;
  long long v;

  if (!(isdigit ((unsigned char) s[0]) || (s[0] == '-' && isdigit ((unsigned char) s[1]))))
    return -EINVAL;
  errno = 0;
  v = strtoll (s, &end, 10);
  if (errno != 0)
    return -EINVAL;
  *out = (int64_t) v;
  *endp = end;
  return 0;
}

static const char *
cg__skip_blank (const char *s)
{
  while (*s == ' ' || *s == '\t')
    s++;
  return s;
}

static bool
cg__only_space_left (const char *s)
{
  while (*s != '\0')
    {
      if (!isspace ((unsigned char) *s))
        return false;
      s++;
    }
  return true;
}

int
cg_parse_int_or_max (const char *text, int64_t *out)
{
  const char *p, *end;
  int64_t v;

  if (text == NULL)
    return -EINVAL;
  p = cg__skip_blank (text);
  if (strncmp (p, "max", 3) == 0 && cg__only_space_left (p + 3))
    {
      *out = -1;
      return 0;
    }
  if (cg__parse_i64 (p, &end, &v) < 0 || !cg__only_space_left (end))
    return -EINVAL;
  *out = v;
  return 0;
}

int
cg_parse_cpu_max (const char *text, int64_t *quota_us, int64_t *period_us)
{
  const char *p, *end;
  int64_t quota, period;

  if (text == NULL)
    return -EINVAL;
  p = cg__skip_blank (text);
  if (strncmp (p, "max", 3) == 0 && (p[3] == ' ' || p[3] == '\t'))
    {
      quota = -1;
      end = p + 3;
    }
  else if (cg__parse_i64 (p, &end, &quota) < 0 || quota <= 0 || (*end != ' ' && *end != '\t'))
    return -EINVAL;
  p = cg__skip_blank (end);
  if (cg__parse_i64 (p, &end, &period) < 0 || period <= 0 || !cg__only_space_left (end))
    return -EINVAL;
  *quota_us = quota;
  *period_us = period;
  return 0;
}

int
cg_parse_keyed (const char *text, const char *key, int64_t *out)
{
  size_t klen;
  const char *line;

  if (text == NULL || key == NULL || key[0] == '\0')
    return -EINVAL;
  klen = strlen (key);
  for (line = text; *line != '\0';)
    {
      const char *nl = strchr (line, '\n');
      const char *eol = nl != NULL ? nl : line + strlen (line);

      if ((size_t) (eol - line) > klen && strncmp (line, key, klen) == 0
          && (line[klen] == ' ' || line[klen] == '\t'))
        {
          const char *p = cg__skip_blank (line + klen), *end;
          int64_t v;

          if (cg__parse_i64 (p, &end, &v) < 0)
            return -EINVAL;
          end = cg__skip_blank (end);
          if (end != eol && !(*end == '\r' && end + 1 == eol))
            return -EINVAL;
          *out = v;
          return 0;
        }
      if (nl == NULL)
        break;
      line = nl + 1;
    }
  return -ENOENT;
}

int
cg__parse_pids (const char *text, pid_t **out, size_t *n)
{
  cleanup_free pid_t *pids = NULL;
  size_t len = 0, cap = 0;
  const char *p = text;

  while (*p != '\0')
    {
      const char *end;
      int64_t v;

      while (*p == '\n' || *p == ' ')
        p++;
      if (*p == '\0')
        break;
      if (cg__parse_i64 (p, &end, &v) < 0 || v <= 0 || v > INT_MAX
          || (*end != '\n' && *end != '\0'))
        return -EINVAL;
      orch_grow ((void **) &pids, &cap, len + 1, sizeof (*pids));
      pids[len++] = (pid_t) v;
      p = end;
    }
  *out = TAKE_PTR (pids);
  *n = len;
  return 0;
}

/* ---- Names and paths -------------------------------------------------- */

bool
cg__valid_name (const char *name)
{
  size_t i, n;

  if (name == NULL)
    return false;
  n = strlen (name);
  if (n == 0 || n > NAME_MAX || strcmp (name, ".") == 0 || strcmp (name, "..") == 0)
    return false;
  for (i = 0; i < n; i++)
    if (name[i] == '/' || name[i] == '\n' || (unsigned char) name[i] < 0x20)
      return false;
  return true;
}

bool
cg__valid_parent (const char *parent)
{
  cleanup_free char *copy = NULL;
  char *save = NULL, *tok;

  if (parent == NULL || parent[0] == '\0' || parent[0] == '/' || strlen (parent) > PATH_MAX / 2)
    return false;
  copy = xstrdup (parent);
  /* Empty components ("a//b", "a/") would make paths that do not name the
   * cgroup the caller thinks. */
  if (strstr (copy, "//") != NULL || copy[strlen (copy) - 1] == '/')
    return false;
  for (tok = strtok_r (copy, "/", &save); tok != NULL; tok = strtok_r (NULL, "/", &save))
    if (!cg__valid_name (tok))
      return false;
  return true;
}

char *
cg__dir (const cg_manager_t *m, const char *base, const char *name)
{
  if (name == NULL)
    return xasprintf ("%s/%s", base, m->parent);
  return xasprintf ("%s/%s/%s", base, m->parent, name);
}

int
cg__check_limits (const cg_limits_t *lim, orch_err_t *err)
{
  if (lim == NULL)
    return orch_err_set (err, EINVAL, "no limits given");
  if (lim->cpu_milli < 0 || lim->memory_bytes < 0 || lim->pids_max < 0)
    return orch_err_set (err, EINVAL,
                         "negative cgroup limit (cpu %" PRId64 "m, memory %" PRId64
                         ", pids %" PRId64 ")",
                         lim->cpu_milli, lim->memory_bytes, lim->pids_max);
  /* The quota is cpu_milli * 100 us per 100 ms period. */
  if (lim->cpu_milli > INT64_MAX / 1000)
    return orch_err_set (err, EINVAL, "cpu limit %" PRId64 "m is too large", lim->cpu_milli);
  return 0;
}

int64_t
cg__min_limit (int64_t a, int64_t b)
{
  if (a <= 0)
    return b > 0 ? b : 0;
  if (b <= 0)
    return a;
  return a < b ? a : b;
}

bool
cg__up (char *dir, const char *mount)
{
  char *slash = strrchr (dir, '/');
  size_t ml = strlen (mount);

  if (slash == NULL || (size_t) (slash - dir) <= ml)
    return false;
  *slash = '\0';
  return strlen (dir) > ml;
}

/* ---- Interface files -------------------------------------------------- */

int
cg__read (const char *dir, const char *file, size_t max, char **out)
{
  cleanup_free char *path = xasprintf ("%s/%s", dir, file);

  return orch_read_file (path, max, out, NULL);
}

int
cg__write (const char *dir, const char *file, const char *text)
{
  cleanup_free char *path = xasprintf ("%s/%s", dir, file);
  cleanup_close int fd = -1;
  size_t len = strlen (text);
  ssize_t w;

  /* No O_CREAT: on cgroupfs a missing file means a controller that is not
   * there, which must show as ENOENT rather than be papered over. */
  fd = open (path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return -errno;
  do
    w = write (fd, text, len);
  while (w < 0 && errno == EINTR);
  if (w < 0)
    return -errno;
  /* cgroupfs takes each write(2) as one command; a partial one would have
   * been a different command. */
  if ((size_t) w != len)
    return -EIO;
  return 0;
}

int
cg__read_int (const char *dir, const char *file, int64_t *out)
{
  cleanup_free char *text = NULL;
  int r;

  r = cg__read (dir, file, CG__SMALL_FILE_MAX, &text);
  if (r < 0)
    return r;
  return cg_parse_int_or_max (text, out);
}

int
cg__read_keyed (const char *dir, const char *file, const char *key, bool missing_ok, int64_t *out)
{
  cleanup_free char *text = NULL;
  int r;

  r = cg__read (dir, file, CG__SMALL_FILE_MAX, &text);
  if (r < 0)
    return r;
  r = cg_parse_keyed (text, key, out);
  if (r == -ENOENT && missing_ok)
    {
      *out = 0;
      return 0;
    }
  return r;
}

int
cg__read_pids (const char *dir, pid_t **out, size_t *n)
{
  cleanup_free char *text = NULL;
  int r;

  r = cg__read (dir, "cgroup.procs", CG__PROCS_FILE_MAX, &text);
  if (r < 0)
    return r;
  return cg__parse_pids (text, out, n);
}

int
cg__mkdir (const char *dir, bool *created)
{
  struct stat st;
  int r;

  *created = false;
  if (mkdir (dir, 0755) == 0)
    {
      *created = true;
      return 0;
    }
  if (errno == EEXIST)
    {
      if (stat (dir, &st) < 0)
        return -errno;
      return S_ISDIR (st.st_mode) ? 0 : -ENOTDIR;
    }
  if (errno != ENOENT)
    return -errno;
  /* The parent went missing (someone removed it while we ran): make it. */
  r = orch_mkdir_p (dir, 0755);
  if (r < 0)
    return r;
  *created = true;
  return 0;
}

int
cg__err_file (orch_err_t *err, int negerrno, const char *what, const char *dir, const char *file)
{
  if (file == NULL)
    return orch_err_set (err, -negerrno, "%s %s: %s", what, dir, strerror (-negerrno));
  return orch_err_set (err, -negerrno, "%s %s/%s: %s", what, dir, file, strerror (-negerrno));
}

/* ---- Killing and removing --------------------------------------------- */

static void
cg__sleep_ms (long ms)
{
  struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

  while (nanosleep (&ts, &ts) < 0 && errno == EINTR)
    ;
}

/* Kills the processes of dir and of every cgroup below it; counts what it
 * found in *found. Returns 0, or -ENOENT if dir itself does not exist. */
static int
cg__kill_tree (const char *dir, int depth, size_t *found)
{
  cleanup_free pid_t *pids = NULL;
  size_t n = 0, i;
  pid_t self = getpid ();
  DIR *d;
  struct dirent *de;
  int r;

  r = cg__read_pids (dir, &pids, &n);
  if (r == -ENOENT)
    {
      struct stat st;
      if (stat (dir, &st) < 0)
        return -ENOENT;
    }
  for (i = 0; i < n; i++)
    {
      /* Never take the caller down with the workload. */
      if (pids[i] == self)
        continue;
      if (kill (pids[i], SIGKILL) == 0 || errno != ESRCH)
        (*found)++;
    }
  if (depth >= CG__MAX_DEPTH)
    return 0;
  d = opendir (dir);
  if (d == NULL)
    return errno == ENOENT ? -ENOENT : 0;
  while ((de = readdir (d)) != NULL)
    {
      cleanup_free char *sub = NULL;

      if (de->d_type != DT_DIR || strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      sub = xasprintf ("%s/%s", dir, de->d_name);
      (void) cg__kill_tree (sub, depth + 1, found);
    }
  closedir (d);
  return 0;
}

int
cg__kill_all (const char *const *dirs, size_t n, int64_t deadline_ms)
{
  for (;;)
    {
      size_t found = 0, present = 0, i;

      for (i = 0; i < n; i++)
        if (cg__kill_tree (dirs[i], 0, &found) == 0)
          present++;
      if (present == 0)
        return -ENOENT;
      if (found == 0)
        return 0;
      if (orch_now_mono_ms () >= deadline_ms)
        return -EBUSY;
      /* SIGKILLed tasks leave cgroup.procs only once they have exited. */
      cg__sleep_ms (5);
    }
}

static int
cg__rmdir_tree_depth (const char *dir, int depth)
{
  DIR *d;
  struct dirent *de;

  if (depth < CG__MAX_DEPTH && (d = opendir (dir)) != NULL)
    {
      while ((de = readdir (d)) != NULL)
        {
          cleanup_free char *sub = NULL;
          int r;

          if (de->d_type != DT_DIR || strcmp (de->d_name, ".") == 0
              || strcmp (de->d_name, "..") == 0)
            continue;
          sub = xasprintf ("%s/%s", dir, de->d_name);
          r = cg__rmdir_tree_depth (sub, depth + 1);
          if (r < 0)
            {
              closedir (d);
              return r;
            }
        }
      closedir (d);
    }
  if (rmdir (dir) < 0 && errno != ENOENT)
    return -errno;
  return 0;
}

int
cg__rmdir_tree (const char *dir)
{
  return cg__rmdir_tree_depth (dir, 0);
}

int
cg__destroy_dirs (const char *const *dirs, size_t n)
{
  int64_t deadline = orch_now_mono_ms () + CG__KILL_TIMEOUT_MS;

  for (;;)
    {
      int r = cg__kill_all (dirs, n, deadline);
      size_t i;

      if (r == -ENOENT)
        return 0;
      for (i = 0; i < n; i++)
        {
          int rr = cg__rmdir_tree (dirs[i]);
          if (rr < 0 && r == 0)
            r = rr;
        }
      /* An exiting task can keep a cgroup busy for a moment after it left
       * cgroup.procs. */
      if (r != -EBUSY || orch_now_mono_ms () >= deadline)
        return r;
      cg__sleep_ms (5);
    }
}

/* ---- Mountinfo -------------------------------------------------------- */

typedef struct cg__mount_s
{
  char *point; /* unescaped */
  char *fstype;
  char *opts; /* super options */
} cg__mount_t;

/* Undoes the octal escapes (\040 space, \011 tab, \012 newline, \134
 * backslash) the kernel puts in mountinfo paths. */
static char *
cg__unescape (const char *s, size_t len)
{
  char *out = xmalloc (len + 1);
  size_t i, o = 0;

  for (i = 0; i < len; i++)
    {
      if (s[i] == '\\' && i + 3 < len && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0'
          && s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7')
        {
          out[o++] = (char) (((s[i + 1] - '0') << 6) | ((s[i + 2] - '0') << 3) | (s[i + 3] - '0'));
          i += 3;
        }
      else
        out[o++] = s[i];
    }
  out[o] = '\0';
  return out;
}

/* Splits one mountinfo line ("36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3
 * /dev/root rw,errors=continue") into its mount point, fstype and super
 * options. Returns false for a line that does not have that shape. */
static bool
cg__mount_parse_line (const char *line, size_t len, cg__mount_t *out)
{
  const char *f[64];
  size_t flen[64];
  size_t nf = 0, i = 0, sep;

  while (i < len && nf < ORCH_ARRAY_LEN (f))
    {
      size_t start;

      while (i < len && line[i] == ' ')
        i++;
      if (i >= len)
        break;
      start = i;
      while (i < len && line[i] != ' ')
        i++;
      f[nf] = line + start;
      flen[nf] = i - start;
      nf++;
    }
  /* Six fixed fields, then optional fields ended by "-", then three more. */
  for (sep = 6; sep < nf; sep++)
    if (flen[sep] == 1 && f[sep][0] == '-')
      break;
  if (nf < 10 || sep + 3 >= nf)
    return false;
  out->point = cg__unescape (f[4], flen[4]);
  out->fstype = xstrndup (f[sep + 1], flen[sep + 1]);
  out->opts = xstrndup (f[sep + 3], flen[sep + 3]);
  return true;
}

static void
cg__mounts_free (cg__mount_t *mounts, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++)
    {
      free (mounts[i].point);
      free (mounts[i].fstype);
      free (mounts[i].opts);
    }
  free (mounts);
}

/* True if the comma-separated list holds word as a whole item. */
static bool
cg__has_item (const char *list, const char *word, char sep)
{
  size_t wl = strlen (word);
  const char *p = list;

  while (p != NULL && *p != '\0')
    {
      const char *end = strchr (p, sep);
      size_t l = end != NULL ? (size_t) (end - p) : strlen (p);

      if (l == wl && strncmp (p, word, wl) == 0)
        return true;
      p = end != NULL ? end + 1 : NULL;
    }
  return false;
}

/* True if a cgroup.controllers text ("cpuset cpu io memory pids") lists word. */
static bool
cg__controllers_have (const char *text, const char *word)
{
  cleanup_free char *copy = xstrdup (text);
  char *save = NULL, *tok;

  for (tok = strtok_r (copy, " \t\n", &save); tok != NULL; tok = strtok_r (NULL, " \t\n", &save))
    if (strcmp (tok, word) == 0)
      return true;
  return false;
}

static int
cg__default_controllers_reader (const char *mountpoint, char **text)
{
  return cg__read (mountpoint, "cgroup.controllers", CG__SMALL_FILE_MAX, text);
}

/* A later mount on the same mount point hides the earlier one. */
static bool
cg__mount_hidden (const cg__mount_t *mounts, size_t n, size_t i)
{
  size_t j;

  for (j = i + 1; j < n; j++)
    if (strcmp (mounts[j].point, mounts[i].point) == 0)
      return true;
  return false;
}

void
cg_layout_clear (cg_layout_t *l)
{
  if (l == NULL)
    return;
  free (l->v2_root);
  free (l->v1_cpu);
  free (l->v1_cpuacct);
  free (l->v1_memory);
  free (l->v1_pids);
  memset (l, 0, sizeof (*l));
}

int
cg_layout_parse (const char *mountinfo, cg_layout_t *out,
                 int (*controllers_reader) (const char *mountpoint, char **text), orch_err_t *err)
{
  static const char *const v1_names[] = { "cpu", "cpuacct", "memory", "pids" };
  cg__mount_t *mounts = NULL;
  size_t n = 0, cap = 0, i, k;
  const char *line;
  char *v1[4] = { NULL, NULL, NULL, NULL };
  cleanup_free char *v2_seen = NULL;
  cleanup_free char *missing = NULL;
  int ret = -1;

  memset (out, 0, sizeof (*out));
  if (mountinfo == NULL)
    return orch_err_set (err, EINVAL, "no mountinfo text");
  if (controllers_reader == NULL)
    controllers_reader = cg__default_controllers_reader;

  for (line = mountinfo; *line != '\0';)
    {
      const char *nl = strchr (line, '\n');
      size_t len = nl != NULL ? (size_t) (nl - line) : strlen (line);
      cg__mount_t mnt;

      if (cg__mount_parse_line (line, len, &mnt))
        {
          orch_grow ((void **) &mounts, &cap, n + 1, sizeof (*mounts));
          mounts[n++] = mnt;
        }
      if (nl == NULL)
        break;
      line = nl + 1;
    }

  /* A pure v2 host: the unified hierarchy carries the memory controller. */
  for (i = 0; i < n; i++)
    {
      cleanup_free char *text = NULL;
      int r;

      if (strcmp (mounts[i].fstype, "cgroup2") != 0 || cg__mount_hidden (mounts, n, i))
        continue;
      r = controllers_reader (mounts[i].point, &text);
      if (r == 0 && text == NULL)
        text = xstrdup ("");
      if (r == 0 && cg__controllers_have (text, "memory"))
        {
          out->version = 2;
          out->v2_root = xstrdup (mounts[i].point);
          ret = 0;
          goto done;
        }
      free (v2_seen);
      if (r < 0)
        v2_seen = xasprintf ("cgroup2 at %s: cannot read cgroup.controllers: %s", mounts[i].point,
                             strerror (-r));
      else
        {
          size_t tl = strlen (text);
          while (tl > 0 && isspace ((unsigned char) text[tl - 1]))
            text[--tl] = '\0';
          v2_seen = xasprintf ("cgroup2 at %s has no memory controller (controllers: \"%s\")",
                               mounts[i].point, text);
        }
    }

  /* v1 (also the hybrid layout): each controller on a cgroup mount whose
   * super options name it, alone or co-mounted ("rw,cpu,cpuacct"). */
  for (i = 0; i < n; i++)
    {
      if (strcmp (mounts[i].fstype, "cgroup") != 0 || cg__mount_hidden (mounts, n, i))
        continue;
      for (k = 0; k < ORCH_ARRAY_LEN (v1_names); k++)
        if (v1[k] == NULL && cg__has_item (mounts[i].opts, v1_names[k], ','))
          v1[k] = xstrdup (mounts[i].point);
    }
  if (v1[0] != NULL && v1[2] != NULL)
    {
      out->version = 1;
      out->v1_cpu = TAKE_PTR (v1[0]);
      out->v1_cpuacct = TAKE_PTR (v1[1]);
      out->v1_memory = TAKE_PTR (v1[2]);
      out->v1_pids = TAKE_PTR (v1[3]);
      ret = 0;
      goto done;
    }

  if (v1[2] == NULL && v1[0] == NULL)
    missing = xstrdup ("memory, cpu");
  else
    missing = xstrdup (v1[2] == NULL ? "memory" : "cpu");
  orch_err_set (err, ENOENT,
                "no usable cgroup hierarchy in mountinfo: %s, and no cgroup v1 mount for %s",
                v2_seen != NULL ? v2_seen : "no cgroup2 mount", missing);

done:
  for (k = 0; k < ORCH_ARRAY_LEN (v1); k++)
    free (v1[k]);
  cg__mounts_free (mounts, n);
  return ret;
}

/* ---- Manager ---------------------------------------------------------- */

static char *
cg__strdup_or_null (const char *s)
{
  return s != NULL ? xstrdup (s) : NULL;
}

void
cg_manager_free (cg_manager_t *m)
{
  if (m == NULL)
    return;
  cg_layout_clear (&m->layout);
  free (m->parent);
  free (m);
}

cg_manager_t *
cg_manager_new_with_layout (const cg_layout_t *layout, const char *parent, orch_err_t *err)
{
  cg_manager_t *m;
  int r;

  if (!cg__valid_parent (parent))
    {
      orch_err_set (err, EINVAL,
                    "invalid cgroup parent \"%s\": want a relative path such as \"orch\"",
                    parent != NULL ? parent : "(null)");
      return NULL;
    }
  if (layout == NULL || (layout->version == 2 && layout->v2_root == NULL)
      || (layout->version == 1 && (layout->v1_cpu == NULL || layout->v1_memory == NULL))
      || (layout->version != 1 && layout->version != 2))
    {
      orch_err_set (err, EINVAL,
                    "incomplete cgroup layout: v2 needs its root, v1 needs cpu and memory");
      return NULL;
    }

  m = xcalloc (1, sizeof (*m));
  m->ops = layout->version == 2 ? &cg_v2_ops : &cg_v1_ops;
  m->layout.version = layout->version;
  m->layout.v2_root = cg__strdup_or_null (layout->v2_root);
  m->layout.v1_cpu = cg__strdup_or_null (layout->v1_cpu);
  m->layout.v1_cpuacct = cg__strdup_or_null (layout->v1_cpuacct);
  m->layout.v1_memory = cg__strdup_or_null (layout->v1_memory);
  m->layout.v1_pids = cg__strdup_or_null (layout->v1_pids);
  m->parent = xstrdup (parent);

  r = layout->version == 2 ? cg__v2_setup (m, err) : cg__v1_setup (m, err);
  if (r < 0)
    {
      cg_manager_free (m);
      return NULL;
    }
  return m;
}

cg_manager_t *
cg_manager_new (const char *parent, orch_err_t *err)
{
  cleanup_free char *text = NULL;
  cg_layout_t layout;
  cg_manager_t *m;
  int r;

  r = orch_read_file ("/proc/self/mountinfo", CG__MOUNTINFO_MAX, &text, NULL);
  if (r < 0)
    {
      orch_err_set (err, -r, "read /proc/self/mountinfo: %s", strerror (-r));
      return NULL;
    }
  if (cg_layout_parse (text, &layout, NULL, err) < 0)
    return NULL;
  m = cg_manager_new_with_layout (&layout, parent, err);
  cg_layout_clear (&layout);
  return m;
}
