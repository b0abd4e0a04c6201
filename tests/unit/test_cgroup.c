/* cgroup layout detection, file parsers, and both backends driven against
 * copies of fake cgroup trees (tests/fixtures/cgroup/tree), so that v2 is
 * covered on hosts that cannot mount it. Real cgroups: tests/integration/
 * cg_check.c. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "orch_test.h"

#include "cg.h"
#include "orch_util.h"

#define FIX ORCH_FIXTURES "/cgroup"

/* ---- Helpers ---------------------------------------------------------- */

static char *
read_fixture (const char *rel)
{
  cleanup_free char *path = xasprintf ("%s/%s", FIX, rel);
  char *text = NULL;

  assert_int_equal (orch_read_file (path, 1 << 20, &text, NULL), 0);
  return text;
}

/* Reads a file and drops trailing newlines, as a person reading it would. */
static char *
slurp (const char *path)
{
  char *text = NULL;
  size_t len;
  int r = orch_read_file (path, 1 << 20, &text, &len);

  if (r < 0)
    fail_msg ("read %s: %s", path, strerror (-r));
  while (len > 0 && text[len - 1] == '\n')
    text[--len] = '\0';
  return text;
}

static void
assert_file (const char *dir, const char *file, const char *want)
{
  cleanup_free char *path = xasprintf ("%s/%s", dir, file);
  cleanup_free char *got = slurp (path);

  if (strcmp (got, want) != 0)
    fail_msg ("%s: got \"%s\", want \"%s\"", path, got, want);
}

static bool
is_dir (const char *path)
{
  struct stat st;

  return stat (path, &st) == 0 && S_ISDIR (st.st_mode);
}

/* ---- Layout from mountinfo -------------------------------------------- */

/* What each fake cgroup2 mount lists in cgroup.controllers. */
static const char *fake_controllers;
static int fake_reader_error;
static char fake_reader_last[256];
static int fake_reader_calls;

static int
fake_reader (const char *mountpoint, char **text)
{
  fake_reader_calls++;
  snprintf (fake_reader_last, sizeof (fake_reader_last), "%s", mountpoint);
  if (fake_reader_error != 0)
    return -fake_reader_error;
  *text = xstrdup (fake_controllers);
  return 0;
}

static void
fake_reset (const char *controllers)
{
  fake_controllers = controllers;
  fake_reader_error = 0;
  fake_reader_last[0] = '\0';
  fake_reader_calls = 0;
}

static void
test_layout_hybrid_host (void **state)
{
  cleanup_free char *mi = read_fixture ("mountinfo/hybrid_v1.txt");
  cg_layout_t l;
  orch_err_t err = { 0 };

  /* This machine: v1 controllers on their own mounts, an empty cgroup2. */
  fake_reset ("hugetlb\n");
  assert_int_equal (cg_layout_parse (mi, &l, fake_reader, &err), 0);
  assert_int_equal (l.version, 1);
  assert_null (l.v2_root);
  assert_string_equal (l.v1_cpu, "/sys/fs/cgroup/cpu");
  assert_string_equal (l.v1_cpuacct, "/sys/fs/cgroup/cpuacct");
  assert_string_equal (l.v1_memory, "/sys/fs/cgroup/memory");
  assert_string_equal (l.v1_pids, "/sys/fs/cgroup/pids");
  assert_string_equal (fake_reader_last, "/sys/fs/cgroup/unified");
  cg_layout_clear (&l);
  assert_null (l.v1_cpu);
}

static void
test_layout_pure_v2 (void **state)
{
  cleanup_free char *mi = read_fixture ("mountinfo/pure_v2.txt");
  cg_layout_t l;
  orch_err_t err = { 0 };

  fake_reset ("cpuset cpu io memory hugetlb pids rdma misc\n");
  assert_int_equal (cg_layout_parse (mi, &l, fake_reader, &err), 0);
  assert_int_equal (l.version, 2);
  assert_string_equal (l.v2_root, "/sys/fs/cgroup");
  assert_null (l.v1_cpu);
  assert_null (l.v1_memory);
  cg_layout_clear (&l);
}

static void
test_layout_v2_without_memory_is_an_error (void **state)
{
  cleanup_free char *mi = read_fixture ("mountinfo/pure_v2.txt");
  cg_layout_t l;
  orch_err_t err = { 0 };

  /* "memory" must be a whole word: "memory_recursiveprot" is a mount option,
   * not a controller. */
  fake_reset ("cpuset cpu io memory_x pids\n");
  assert_true (cg_layout_parse (mi, &l, fake_reader, &err) < 0);
  assert_non_null (strstr (err.msg, "cgroup2 at /sys/fs/cgroup has no memory controller"));
  assert_non_null (strstr (err.msg, "no cgroup v1 mount for memory, cpu"));
  assert_int_equal (l.version, 0);
}

static void
test_layout_comounted_cpu_cpuacct (void **state)
{
  cleanup_free char *mi = read_fixture ("mountinfo/comounted_v1.txt");
  cg_layout_t l;
  orch_err_t err = { 0 };

  fake_reset ("");
  assert_int_equal (cg_layout_parse (mi, &l, fake_reader, &err), 0);
  assert_int_equal (l.version, 1);
  assert_string_equal (l.v1_cpu, "/sys/fs/cgroup/cpu,cpuacct");
  assert_string_equal (l.v1_cpuacct, "/sys/fs/cgroup/cpu,cpuacct");
  assert_string_equal (l.v1_memory, "/sys/fs/cgroup/memory");
  assert_string_equal (l.v1_pids, "/sys/fs/cgroup/pids");
  cg_layout_clear (&l);
}

static void
test_layout_escaped_mount_points (void **state)
{
  cleanup_free char *mi = read_fixture ("mountinfo/escaped_v1.txt");
  cg_layout_t l;
  orch_err_t err = { 0 };

  fake_reset ("");
  assert_int_equal (cg_layout_parse (mi, &l, fake_reader, &err), 0);
  assert_int_equal (l.version, 1);
  assert_string_equal (l.v1_cpu, "/mnt/my cgroups/cpu");
  assert_string_equal (l.v1_cpuacct, "/mnt/my cgroups/cpu\\acct");
  /* This line also carries optional fields before the separator. */
  assert_string_equal (l.v1_memory, "/mnt/my cgroups/mem\tory");
  assert_string_equal (l.v1_pids, "/mnt/my cgroups/pids");
  assert_int_equal (fake_reader_calls, 0);
  cg_layout_clear (&l);
}

static void
test_layout_no_cgroups (void **state)
{
  cleanup_free char *mi = read_fixture ("mountinfo/no_cgroups.txt");
  cg_layout_t l;
  orch_err_t err = { 0 };

  fake_reset ("");
  assert_true (cg_layout_parse (mi, &l, fake_reader, &err) < 0);
  assert_int_equal (err.code, ENOENT);
  assert_non_null (strstr (err.msg, "no cgroup2 mount"));
  assert_non_null (strstr (err.msg, "no cgroup v1 mount for memory, cpu"));
}

static void
test_layout_v1_missing_cpu_names_it (void **state)
{
  cleanup_free char *mi = read_fixture ("mountinfo/v1_no_cpu.txt");
  cg_layout_t l;
  orch_err_t err = { 0 };

  fake_reset ("hugetlb\n");
  assert_true (cg_layout_parse (mi, &l, fake_reader, &err) < 0);
  assert_non_null (strstr (err.msg, "no cgroup v1 mount for cpu"));
  assert_null (strstr (err.msg, "memory, cpu"));
  assert_non_null (strstr (err.msg, "cgroup2 at /sys/fs/cgroup/unified has no memory controller"));
  assert_non_null (strstr (err.msg, "\"hugetlb\""));
}

static void
test_layout_unreadable_controllers (void **state)
{
  cleanup_free char *mi = read_fixture ("mountinfo/pure_v2.txt");
  cg_layout_t l;
  orch_err_t err = { 0 };

  fake_reset ("");
  fake_reader_error = EACCES;
  assert_true (cg_layout_parse (mi, &l, fake_reader, &err) < 0);
  assert_non_null (strstr (err.msg, "cannot read cgroup.controllers"));
  assert_non_null (strstr (err.msg, strerror (EACCES)));
}

static void
test_layout_shadowed_mount_is_ignored (void **state)
{
  cleanup_free char *mi = read_fixture ("mountinfo/v2_shadowed.txt");
  cg_layout_t l;
  orch_err_t err = { 0 };

  /* A tmpfs mounted over the cgroup2 at /sys/fs/cgroup hides it: what is
   * reachable there now is the v1 layout. */
  fake_reset ("cpu memory pids\n");
  assert_int_equal (cg_layout_parse (mi, &l, fake_reader, &err), 0);
  assert_int_equal (l.version, 1);
  assert_int_equal (fake_reader_calls, 0);
  assert_string_equal (l.v1_memory, "/sys/fs/cgroup/memory");
  assert_null (l.v1_pids);
  cg_layout_clear (&l);
}

static void
test_layout_malformed_lines (void **state)
{
  static const char *const bad[] = {
    "",
    "\n\n",
    "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime cgroup cgroup rw,cpu\n",
    "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime -\n",
    "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup\n",
    "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n32 31 0:29 /",
    "35 31 0:32 / /x\\06\\ rw - cgroup cgroup rw,cpu,memory",
  };
  size_t i;

  fake_reset ("");
  for (i = 0; i < ORCH_ARRAY_LEN (bad); i++)
    {
      cg_layout_t l;
      orch_err_t err = { 0 };
      int r = cg_layout_parse (bad[i], &l, fake_reader, &err);

      /* The last one is well formed; its backslashes start no escape. */
      if (i == ORCH_ARRAY_LEN (bad) - 1)
        {
          assert_int_equal (r, 0);
          assert_string_equal (l.v1_memory, "/x\\06\\");
          cg_layout_clear (&l);
          continue;
        }
      if (r == 0)
        fail_msg ("case %zu parsed", i);
      assert_true (err.msg[0] != '\0');
    }
}

/* Mangled mount tables (bytes flipped, lines cut) must parse or fail
 * cleanly; run under ASan this finds overreads. */
static void
test_layout_mangled_input (void **state)
{
  static const char *const files[] = { "mountinfo/hybrid_v1.txt", "mountinfo/escaped_v1.txt",
                                        "mountinfo/pure_v2.txt" };
  static const char noise[] = " -\\0137\n,";
  unsigned seed = 12345;
  size_t f, iter;

  fake_reset ("cpu memory\n");
  for (f = 0; f < ORCH_ARRAY_LEN (files); f++)
    {
      cleanup_free char *orig = read_fixture (files[f]);
      size_t len = strlen (orig);

      for (iter = 0; iter < 500; iter++)
        {
          cleanup_free char *mi = xstrdup (orig);
          cg_layout_t l;
          orch_err_t err = { 0 };
          int k;

          for (k = 0; k < 8; k++)
            {
              seed = seed * 1103515245u + 12345u;
              mi[(seed >> 8) % len] = noise[(seed >> 20) % (sizeof (noise) - 1)];
            }
          seed = seed * 1103515245u + 12345u;
          mi[(seed >> 8) % len] = '\0';
          if (cg_layout_parse (mi, &l, fake_reader, &err) == 0)
            {
              assert_true (l.version == 1 || l.version == 2);
              assert_true (l.version == 2 ? l.v2_root != NULL : l.v1_memory != NULL);
              cg_layout_clear (&l);
            }
          else
            assert_true (err.msg[0] != '\0');
        }
    }
}

static void
test_layout_real_host (void **state)
{
  cleanup_free char *mi = NULL;
  cg_layout_t l;
  orch_err_t err = { 0 };
  struct stat st;

  assert_int_equal (orch_read_file ("/proc/self/mountinfo", 16 << 20, &mi, NULL), 0);
  if (strstr (mi, " - cgroup") == NULL)
    orch_skip ("no cgroup filesystem mounted");
  /* Through the real cgroup.controllers reader. */
  assert_int_equal (cg_layout_parse (mi, &l, NULL, &err), 0);
  if (stat ("/sys/fs/cgroup/cgroup.controllers", &st) == 0)
    assert_int_equal (l.version, 2);
  else
    {
      assert_int_equal (l.version, 1);
      assert_non_null (l.v1_memory);
      assert_non_null (l.v1_cpu);
    }
  cg_layout_clear (&l);
}

/* ---- Parsers ---------------------------------------------------------- */

static void
test_parse_cpu_max (void **state)
{
  static const struct
  {
    const char *text;
    int ret;
    int64_t quota, period;
  } cases[] = {
    { "max 100000\n", 0, -1, 100000 },
    { "25000 100000\n", 0, 25000, 100000 },
    { "  150000\t50000", 0, 150000, 50000 },
    { "max 100000 \n", 0, -1, 100000 },
    { "", -EINVAL, 0, 0 },
    { "max\n", -EINVAL, 0, 0 },
    { "100000\n", -EINVAL, 0, 0 },
    { "maxi 100000", -EINVAL, 0, 0 },
    { "abc 100000", -EINVAL, 0, 0 },
    { "100 0", -EINVAL, 0, 0 },
    { "0 100000", -EINVAL, 0, 0 },
    { "-5 100000", -EINVAL, 0, 0 },
    { "100 100000 7", -EINVAL, 0, 0 },
    { "max max", -EINVAL, 0, 0 },
    { "99999999999999999999 100000", -EINVAL, 0, 0 },
    { "100x 100000", -EINVAL, 0, 0 },
  };
  size_t i;

  for (i = 0; i < ORCH_ARRAY_LEN (cases); i++)
    {
      int64_t q = 7, p = 7;
      int r = cg_parse_cpu_max (cases[i].text, &q, &p);

      if (r != cases[i].ret)
        fail_msg ("\"%s\": got %d, want %d", cases[i].text, r, cases[i].ret);
      if (r == 0 && (q != cases[i].quota || p != cases[i].period))
        fail_msg ("\"%s\": got %lld %lld", cases[i].text, (long long) q, (long long) p);
    }
  assert_int_equal (cg_parse_cpu_max (NULL, NULL, NULL), -EINVAL);
}

static void
test_parse_int_or_max (void **state)
{
  static const struct
  {
    const char *text;
    int ret;
    int64_t value;
  } cases[] = {
    { "max\n", 0, -1 },
    { "9223372036854771712\n", 0, INT64_C (9223372036854771712) },
    { "-1\n", 0, -1 },
    { "0\n", 0, 0 },
    { "67108864", 0, 67108864 },
    { "", -EINVAL, 0 },
    { "\n", -EINVAL, 0 },
    { "maxi", -EINVAL, 0 },
    { "12a", -EINVAL, 0 },
    { "1 2", -EINVAL, 0 },
    { "99999999999999999999", -EINVAL, 0 },
    { "-", -EINVAL, 0 },
    { "+5", -EINVAL, 0 },
  };
  size_t i;

  for (i = 0; i < ORCH_ARRAY_LEN (cases); i++)
    {
      int64_t v = 7;
      int r = cg_parse_int_or_max (cases[i].text, &v);

      if (r != cases[i].ret)
        fail_msg ("\"%s\": got %d, want %d", cases[i].text, r, cases[i].ret);
      if (r == 0 && v != cases[i].value)
        fail_msg ("\"%s\": got %lld", cases[i].text, (long long) v);
    }
}

static void
test_parse_keyed (void **state)
{
  cleanup_free char *cpu_stat = read_fixture ("tree/v2/orch/web/cpu.stat");
  cleanup_free char *events = read_fixture ("tree/v2/orch/web/memory.events");
  cleanup_free char *oom = read_fixture ("tree/v1/memory/orch/web/memory.oom_control");
  int64_t v = 0;

  assert_int_equal (cg_parse_keyed (cpu_stat, "usage_usec", &v), 0);
  assert_int_equal (v, 1234567);
  assert_int_equal (cg_parse_keyed (cpu_stat, "system_usec", &v), 0);
  assert_int_equal (v, 411522);
  /* "oom" must not match "oom_kill" or "oom_group_kill", nor the reverse. */
  assert_int_equal (cg_parse_keyed (events, "oom", &v), 0);
  assert_int_equal (v, 2);
  assert_int_equal (cg_parse_keyed (events, "oom_kill", &v), 0);
  assert_int_equal (v, 2);
  assert_int_equal (cg_parse_keyed (events, "oom_group_kill", &v), 0);
  assert_int_equal (v, 0);
  assert_int_equal (cg_parse_keyed (oom, "oom_kill", &v), 0);
  assert_int_equal (v, 3);
  assert_int_equal (cg_parse_keyed (oom, "under_oom", &v), 0);
  assert_int_equal (v, 0);

  assert_int_equal (cg_parse_keyed (events, "usage_usec", &v), -ENOENT);
  assert_int_equal (cg_parse_keyed (events, "oom_", &v), -ENOENT);
  assert_int_equal (cg_parse_keyed ("a 1\nb 2", "b", &v), 0);
  assert_int_equal (v, 2);
  assert_int_equal (cg_parse_keyed ("a 1\r\n", "a", &v), 0);
  assert_int_equal (cg_parse_keyed ("a x\n", "a", &v), -EINVAL);
  assert_int_equal (cg_parse_keyed ("a 1 2\n", "a", &v), -EINVAL);
  assert_int_equal (cg_parse_keyed ("a\n", "a", &v), -ENOENT);
  assert_int_equal (cg_parse_keyed ("", "a", &v), -ENOENT);
  assert_int_equal (cg_parse_keyed ("a 1", "", &v), -EINVAL);
  assert_int_equal (cg_parse_keyed (NULL, "a", &v), -EINVAL);
}

/* ---- Backends on fixture trees ---------------------------------------- */

typedef struct fx_s
{
  char *tmp; /* private copy of tests/fixtures/cgroup/tree */
  cg_layout_t l1, l1co, l2;
} fx_t;

static int
fx_setup (void **state)
{
  fx_t *fx = xcalloc (1, sizeof (*fx));
  char tmpl[] = "/tmp/orch-cgtest-XXXXXX";
  cleanup_free char *cmd = NULL;

  if (mkdtemp (tmpl) == NULL)
    return -1;
  fx->tmp = xstrdup (tmpl);
  cmd = xasprintf ("cp -a '%s/tree/.' '%s/'", FIX, fx->tmp);
  if (system (cmd) != 0)
    return -1;
  fx->l1.version = 1;
  fx->l1.v1_cpu = xasprintf ("%s/v1/cpu", fx->tmp);
  fx->l1.v1_cpuacct = xasprintf ("%s/v1/cpuacct", fx->tmp);
  fx->l1.v1_memory = xasprintf ("%s/v1/memory", fx->tmp);
  fx->l1.v1_pids = xasprintf ("%s/v1/pids", fx->tmp);
  fx->l1co.version = 1;
  fx->l1co.v1_cpu = xasprintf ("%s/v1co/cpu,cpuacct", fx->tmp);
  fx->l1co.v1_cpuacct = xasprintf ("%s/v1co/cpu,cpuacct", fx->tmp);
  fx->l1co.v1_memory = xasprintf ("%s/v1co/memory", fx->tmp);
  fx->l1co.v1_pids = xasprintf ("%s/v1co/pids", fx->tmp);
  fx->l2.version = 2;
  fx->l2.v2_root = xasprintf ("%s/v2", fx->tmp);
  *state = fx;
  return 0;
}

static int
fx_teardown (void **state)
{
  fx_t *fx = *state;
  cleanup_free char *cmd = xasprintf ("rm -rf '%s'", fx->tmp);

  (void) system (cmd);
  cg_layout_clear (&fx->l1);
  cg_layout_clear (&fx->l1co);
  cg_layout_clear (&fx->l2);
  free (fx->tmp);
  free (fx);
  return 0;
}

static cg_manager_t *
fx_manager (const cg_layout_t *l, const char *parent)
{
  orch_err_t err = { 0 };
  cg_manager_t *m = cg_manager_new_with_layout (l, parent, &err);

  if (m == NULL)
    fail_msg ("manager on %s: %s", parent, err.msg);
  return m;
}

static void
test_v1_new_creates_parent_everywhere (void **state)
{
  fx_t *fx = *state;
  cg_manager_t *m = fx_manager (&fx->l1, "agent/pool");
  const char *mounts[] = { fx->l1.v1_cpu, fx->l1.v1_cpuacct, fx->l1.v1_memory, fx->l1.v1_pids };
  size_t i;

  assert_ptr_equal (m->ops, &cg_v1_ops);
  assert_string_equal (m->ops->name, "v1");
  assert_string_equal (m->parent, "agent/pool");
  for (i = 0; i < ORCH_ARRAY_LEN (mounts); i++)
    {
      cleanup_free char *dir = xasprintf ("%s/agent/pool", mounts[i]);
      assert_true (is_dir (dir));
    }
  cg_manager_free (m);
}

static void
test_v1_create_writes_limits (void **state)
{
  fx_t *fx = *state;
  cg_manager_t *m = fx_manager (&fx->l1, "orch");
  cg_limits_t lim = { .cpu_milli = 250, .memory_bytes = 64 << 20, .pids_max = 64 };
  cg_limits_t none = { 0, 0, 0 };
  cg_limits_t tiny = { .cpu_milli = 5 };
  orch_err_t err = { 0 };
  cleanup_free char *cpu = m->ops->path (m, "web", "cpu");
  cleanup_free char *mem = m->ops->path (m, "web", "memory");
  cleanup_free char *pids = m->ops->path (m, "web", "pids");

  assert_int_equal (m->ops->create (m, "web", &lim, &err), 0);
  assert_file (cpu, "cpu.cfs_period_us", "100000");
  assert_file (cpu, "cpu.cfs_quota_us", "25000");
  assert_file (mem, "memory.limit_in_bytes", "67108864");
  assert_file (pids, "pids.max", "64");
  /* Swap is left alone. */
  assert_file (mem, "memory.memsw.limit_in_bytes", "9223372036854771712");

  /* Re-creating with no limits lifts them. */
  assert_int_equal (m->ops->create (m, "web", &none, &err), 0);
  assert_file (cpu, "cpu.cfs_quota_us", "-1");
  assert_file (mem, "memory.limit_in_bytes", "-1");
  assert_file (pids, "pids.max", "max");

  /* The kernel refuses quotas under 1 ms. */
  assert_int_equal (m->ops->create (m, "web", &tiny, &err), 0);
  assert_file (cpu, "cpu.cfs_quota_us", "1000");
  cg_manager_free (m);
}

static void
test_v1_create_failure_leaves_nothing (void **state)
{
  fx_t *fx = *state;
  cg_manager_t *m = fx_manager (&fx->l1, "orch");
  cg_limits_t lim = { .cpu_milli = 500, .memory_bytes = 1 << 20 };
  orch_err_t err = { 0 };
  cleanup_free char *cpu = m->ops->path (m, "fresh", "cpu");
  cleanup_free char *mem = m->ops->path (m, "fresh", "memory");

  /* A fresh directory in a fake tree has no interface files, as a cgroup
   * whose controller is missing: the write fails with ENOENT, is reported
   * with the file, and the half-made cgroup is removed. */
  assert_true (m->ops->create (m, "fresh", &lim, &err) < 0);
  assert_non_null (strstr (err.msg, "cgroup fresh"));
  assert_non_null (strstr (err.msg, "cpu.cfs_period_us"));
  assert_int_equal (err.code, ENOENT);
  assert_false (is_dir (cpu));
  assert_false (is_dir (mem));
  assert_false (m->ops->exists (m, "fresh"));
  cg_manager_free (m);
}

static void
test_v1_rejects_bad_names_and_limits (void **state)
{
  fx_t *fx = *state;
  cg_manager_t *m = fx_manager (&fx->l1, "orch");
  static const char *const names[] = { "", ".", "..", "../web", "a/b", "x\ny" };
  cg_limits_t ok = { 0, 0, 0 };
  cg_limits_t neg = { .memory_bytes = -1 };
  cg_limits_t huge = { .cpu_milli = INT64_MAX / 10 };
  size_t i;

  for (i = 0; i < ORCH_ARRAY_LEN (names); i++)
    {
      orch_err_t err = { 0 };
      pid_t *p = NULL;
      size_t n;

      assert_true (m->ops->create (m, names[i], &ok, &err) < 0);
      assert_int_equal (err.code, EINVAL);
      assert_true (m->ops->attach (m, names[i], 1, &err) < 0);
      assert_true (m->ops->pids (m, names[i], &p, &n, &err) < 0);
      assert_true (m->ops->destroy (m, names[i], &err) < 0);
      assert_null (m->ops->path (m, names[i], "memory"));
      assert_false (m->ops->exists (m, names[i]));
    }
  {
    orch_err_t err = { 0 };
    assert_true (m->ops->create (m, "web", &neg, &err) < 0);
    assert_non_null (strstr (err.msg, "negative"));
    assert_true (m->ops->create (m, "web", &huge, &err) < 0);
    assert_true (m->ops->create (m, "web", NULL, &err) < 0);
    assert_true (m->ops->attach (m, "web", 0, &err) < 0);
  }
  cg_manager_free (m);
}

static void
test_v1_attach_and_pids (void **state)
{
  fx_t *fx = *state;
  cg_manager_t *m = fx_manager (&fx->l1, "orch");
  orch_err_t err = { 0 };
  pid_t *p = NULL;
  size_t n = 0;
  const char *ctl[] = { "cpu", "cpuacct", "memory", "pids" };
  size_t i;

  assert_int_equal (m->ops->pids (m, "web", &p, &n, &err), 0);
  assert_int_equal (n, 2);
  assert_int_equal (p[0], 4242);
  assert_int_equal (p[1], 4243);
  free (p);

  assert_int_equal (m->ops->attach (m, "web", 4321, &err), 0);
  for (i = 0; i < ORCH_ARRAY_LEN (ctl); i++)
    {
      cleanup_free char *dir = m->ops->path (m, "web", ctl[i]);
      assert_file (dir, "cgroup.procs", "4321");
    }
  assert_int_equal (m->ops->pids (m, "web", &p, &n, &err), 0);
  assert_int_equal (n, 1);
  assert_int_equal (p[0], 4321);
  free (p);

  /* A cgroup that was never made. */
  assert_true (m->ops->attach (m, "nope", 4321, &err) < 0);
  assert_int_equal (err.code, ENOENT);
  assert_non_null (strstr (err.msg, "nope/cgroup.procs"));
  cg_manager_free (m);
}

static void
test_v1_usage (void **state)
{
  fx_t *fx = *state;
  cg_manager_t *m = fx_manager (&fx->l1, "orch");
  orch_err_t err = { 0 };
  cg_usage_t u;

  assert_int_equal (m->ops->usage (m, "web", &u, &err), 0);
  assert_int_equal (u.memory_bytes, 52428800);
  assert_int_equal (u.cpu_usec, 1234567); /* cpuacct.usage is in ns */
  /* From memory.oom_control, not memory.failcnt (17 here). */
  assert_int_equal (u.oom_kills, 3);

  /* v1 counts an OOM kill only where the limit was hit: the parent's own 5
   * plus web's 3. */
  assert_int_equal (m->ops->parent_usage (m, &u, &err), 0);
  assert_int_equal (u.memory_bytes, 104857600);
  assert_int_equal (u.cpu_usec, 987654321);
  assert_int_equal (u.oom_kills, 8);

  assert_true (m->ops->usage (m, "nope", &u, &err) < 0);
  assert_non_null (strstr (err.msg, "memory.usage_in_bytes"));
  cg_manager_free (m);
}

static void
test_v1_parent_limits (void **state)
{
  fx_t *fx = *state;
  cg_manager_t *m = fx_manager (&fx->l1, "orch");
  cg_manager_t *nested = fx_manager (&fx->l1, "capped/orch");
  orch_err_t err = { 0 };
  cg_limits_t l = { 7, 7, 7 };

  /* 9223372036854771712 and a quota of -1 mean no limit. */
  assert_int_equal (m->ops->parent_limits (m, &l, &err), 0);
  assert_int_equal (l.memory_bytes, 0);
  assert_int_equal (l.cpu_milli, 0);
  assert_int_equal (l.pids_max, 0);

  /* The tightest limit of the parent and the cgroups above it. */
  assert_int_equal (nested->ops->parent_limits (nested, &l, &err), 0);
  assert_int_equal (l.memory_bytes, INT64_C (8589934592));
  assert_int_equal (l.cpu_milli, 1500);
  assert_int_equal (l.pids_max, 100);
  cg_manager_free (m);
  cg_manager_free (nested);
}

static void
test_v1_comounted_cpu_cpuacct (void **state)
{
  fx_t *fx = *state;
  cg_manager_t *m = fx_manager (&fx->l1co, "orch");
  cg_limits_t lim = { .cpu_milli = 1500, .memory_bytes = 256 << 20 };
  orch_err_t err = { 0 };
  cg_usage_t u;
  cleanup_free char *cpu = m->ops->path (m, "web", "cpu");
  cleanup_free char *acct = m->ops->path (m, "web", "cpuacct");

  assert_string_equal (cpu, acct);
  assert_int_equal (m->ops->create (m, "web", &lim, &err), 0);
  assert_file (cpu, "cpu.cfs_quota_us", "150000");
  assert_int_equal (m->ops->attach (m, "web", 999, &err), 0);
  assert_file (cpu, "cgroup.procs", "999");
  assert_int_equal (m->ops->usage (m, "web", &u, &err), 0);
  assert_int_equal (u.cpu_usec, 1234567);
  cg_manager_free (m);
}

static void
test_v1_without_optional_controllers (void **state)
{
  fx_t *fx = *state;
  cg_layout_t l = { .version = 1, .v1_cpu = fx->l1.v1_cpu, .v1_memory = fx->l1.v1_memory };
  cg_manager_t *m = fx_manager (&l, "orch");
  cg_limits_t pids = { .pids_max = 64 };
  cg_limits_t mem = { .memory_bytes = 32 << 20 };
  orch_err_t err = { 0 };
  cg_usage_t u;

  /* No pids hierarchy: a pids limit cannot be kept, so it is refused. */
  assert_true (m->ops->create (m, "web", &pids, &err) < 0);
  assert_non_null (strstr (err.msg, "pids controller is not mounted"));
  assert_int_equal (m->ops->create (m, "web", &mem, &err), 0);
  assert_null (m->ops->path (m, "web", "pids"));
  assert_null (m->ops->path (m, "web", "cpuacct"));
  /* No cpuacct: CPU time is unknown (0), the rest is still read. */
  assert_int_equal (m->ops->usage (m, "web", &u, &err), 0);
  assert_int_equal (u.cpu_usec, 0);
  assert_int_equal (u.memory_bytes, 52428800);
  cg_manager_free (m);
}

static void
test_v1_exists_and_destroy (void **state)
{
  fx_t *fx = *state;
  cg_manager_t *m = fx_manager (&fx->l1, "orch");
  const char *mounts[] = { fx->l1.v1_cpu, fx->l1.v1_cpuacct, fx->l1.v1_memory, fx->l1.v1_pids };
  orch_err_t err = { 0 };
  size_t i;

  assert_true (m->ops->exists (m, "web"));
  assert_false (m->ops->exists (m, "gone"));
  /* Destroying what is not there succeeds. */
  assert_int_equal (m->ops->destroy (m, "gone", &err), 0);

  /* An empty cgroup with an empty cgroup below it, in every hierarchy.
   * (Fixture cgroups that list pids are never destroyed here: those pids
   * could be real processes on the test host.) */
  for (i = 0; i < ORCH_ARRAY_LEN (mounts); i++)
    {
      cleanup_free char *dir = xasprintf ("%s/orch/empty/inner", mounts[i]);
      assert_int_equal (orch_mkdir_p (dir, 0755), 0);
    }
  assert_true (m->ops->exists (m, "empty"));
  assert_int_equal (m->ops->destroy (m, "empty", &err), 0);
  assert_false (m->ops->exists (m, "empty"));
  for (i = 0; i < ORCH_ARRAY_LEN (mounts); i++)
    {
      cleanup_free char *dir = xasprintf ("%s/orch/empty", mounts[i]);
      assert_false (is_dir (dir));
    }
  cg_manager_free (m);
}

static void
test_v2_new_enables_controllers (void **state)
{
  fx_t *fx = *state;
  cg_manager_t *m = fx_manager (&fx->l2, "orch");
  cg_manager_t *nested = fx_manager (&fx->l2, "slice/orch");
  cleanup_free char *orch = xasprintf ("%s/v2/orch", fx->tmp);
  cleanup_free char *slice = xasprintf ("%s/v2/slice", fx->tmp);
  cleanup_free char *slice_orch = xasprintf ("%s/v2/slice/orch", fx->tmp);

  assert_ptr_equal (m->ops, &cg_v2_ops);
  assert_string_equal (m->ops->name, "v2");
  /* The root and the parent pass cpu, memory and pids down, in one write. */
  assert_file (fx->l2.v2_root, "cgroup.subtree_control", "+cpu +memory +pids");
  assert_file (orch, "cgroup.subtree_control", "+cpu +memory +pids");
  /* Nothing is written where they are already enabled. */
  assert_file (slice, "cgroup.subtree_control", "cpu memory pids");
  assert_file (slice_orch, "cgroup.subtree_control", "+cpu +memory +pids");
  cg_manager_free (m);
  cg_manager_free (nested);

  /* A controller the level does not have is not asked for. */
  {
    cleanup_free char *nocpu = xasprintf ("%s/v2/orch/nocpu", fx->tmp);
    cg_manager_t *m2 = fx_manager (&fx->l2, "orch/nocpu");
    assert_file (nocpu, "cgroup.subtree_control", "+memory +pids");
    cg_manager_free (m2);
  }
}

static void
test_v2_new_parent_created (void **state)
{
  fx_t *fx = *state;
  cg_manager_t *m = fx_manager (&fx->l2, "fresh/pool");
  cleanup_free char *dir = xasprintf ("%s/v2/fresh/pool", fx->tmp);

  assert_true (is_dir (dir));
  cg_manager_free (m);
}

static void
test_v2_parent_comes_back (void **state)
{
  fx_t *fx = *state;
  cg_manager_t *m = fx_manager (&fx->l2, "fresh");
  cleanup_free char *dir = xasprintf ("%s/v2/fresh", fx->tmp);
  cleanup_free char *child = xasprintf ("%s/v2/fresh/job", fx->tmp);
  cg_limits_t none = { 0, 0, 0 };
  orch_err_t err = { 0 };

  /* Someone removed the parent while the agent ran. */
  assert_int_equal (rmdir (dir), 0);
  assert_int_equal (m->ops->create (m, "job", &none, &err), 0);
  assert_true (is_dir (child));
  /* The root still passes the controllers down. */
  assert_file (fx->l2.v2_root, "cgroup.subtree_control", "+cpu +memory +pids");
  cg_manager_free (m);
}

static void
test_v2_create_writes_limits (void **state)
{
  fx_t *fx = *state;
  cg_manager_t *m = fx_manager (&fx->l2, "orch");
  cg_limits_t lim = { .cpu_milli = 250, .memory_bytes = 64 << 20, .pids_max = 64 };
  cg_limits_t none = { 0, 0, 0 };
  orch_err_t err = { 0 };
  cleanup_free char *dir = m->ops->path (m, "web", "memory");
  cleanup_free char *cpu = m->ops->path (m, "web", "cpu");
  cleanup_free char *want = xasprintf ("%s/v2/orch/web", fx->tmp);

  /* One hierarchy: every controller's path is the same. */
  assert_string_equal (dir, want);
  assert_string_equal (cpu, want);

  assert_int_equal (m->ops->create (m, "web", &lim, &err), 0);
  assert_file (dir, "cpu.max", "25000 100000");
  assert_file (dir, "memory.max", "67108864");
  assert_file (dir, "pids.max", "64");

  assert_int_equal (m->ops->create (m, "web", &none, &err), 0);
  assert_file (dir, "cpu.max", "max 100000");
  assert_file (dir, "memory.max", "max");
  assert_file (dir, "pids.max", "max");
  cg_manager_free (m);
}

static void
test_v2_missing_controller (void **state)
{
  fx_t *fx = *state;
  cg_manager_t *m = fx_manager (&fx->l2, "orch");
  cg_limits_t cpu = { .cpu_milli = 500, .memory_bytes = 1 << 20 };
  cg_limits_t mem_only = { .memory_bytes = 1 << 20 };
  orch_err_t err = { 0 };
  cleanup_free char *dir = m->ops->path (m, "nocpu", "memory");

  /* "nocpu" has no cpu.max: asking for a CPU limit names the controller and
   * where to enable it; the existing cgroup is kept. */
  assert_true (m->ops->create (m, "nocpu", &cpu, &err) < 0);
  assert_non_null (strstr (err.msg, "the cpu controller is not enabled in"));
  assert_non_null (strstr (err.msg, "/v2/orch/cgroup.subtree_control"));
  assert_true (m->ops->exists (m, "nocpu"));

  /* Without a CPU limit there is nothing to miss. */
  assert_int_equal (m->ops->create (m, "nocpu", &mem_only, &err), 0);
  assert_file (dir, "memory.max", "1048576");
  cg_manager_free (m);
}

static void
test_v2_attach_and_pids (void **state)
{
  fx_t *fx = *state;
  cg_manager_t *m = fx_manager (&fx->l2, "orch");
  orch_err_t err = { 0 };
  cleanup_free char *dir = m->ops->path (m, "web", "pids");
  pid_t *p = NULL;
  size_t n = 0;

  assert_int_equal (m->ops->pids (m, "web", &p, &n, &err), 0);
  assert_int_equal (n, 1);
  assert_int_equal (p[0], 4242);
  free (p);
  assert_int_equal (m->ops->attach (m, "web", 4321, &err), 0);
  assert_file (dir, "cgroup.procs", "4321");
  assert_true (m->ops->attach (m, "nope", 4321, &err) < 0);
  assert_int_equal (err.code, ENOENT);

  /* An empty cgroup has no pids. */
  assert_int_equal (m->ops->pids (m, "nocpu", &p, &n, &err), 0);
  assert_int_equal (n, 0);
  free (p);
  cg_manager_free (m);
}

static void
test_v2_usage (void **state)
{
  fx_t *fx = *state;
  cg_manager_t *m = fx_manager (&fx->l2, "orch");
  orch_err_t err = { 0 };
  cg_usage_t u;

  assert_int_equal (m->ops->usage (m, "web", &u, &err), 0);
  assert_int_equal (u.memory_bytes, 52428800);
  assert_int_equal (u.cpu_usec, 1234567);
  assert_int_equal (u.oom_kills, 2);

  assert_int_equal (m->ops->parent_usage (m, &u, &err), 0);
  assert_int_equal (u.memory_bytes, 104857600);
  assert_int_equal (u.cpu_usec, 987654321);
  assert_int_equal (u.oom_kills, 4);

  assert_true (m->ops->usage (m, "nope", &u, &err) < 0);
  assert_non_null (strstr (err.msg, "memory.current"));
  cg_manager_free (m);
}

static void
test_v2_parent_limits (void **state)
{
  fx_t *fx = *state;
  cg_manager_t *m = fx_manager (&fx->l2, "orch");
  cg_manager_t *nested = fx_manager (&fx->l2, "slice/orch");
  orch_err_t err = { 0 };
  cg_limits_t l = { 7, 7, 7 };

  assert_int_equal (m->ops->parent_limits (m, &l, &err), 0);
  assert_int_equal (l.memory_bytes, 0);
  assert_int_equal (l.cpu_milli, 0);
  assert_int_equal (l.pids_max, 0);

  /* slice: 4 GiB, "200000 100000" (2 CPUs), 512 pids; slice/orch: 100 pids. */
  assert_int_equal (nested->ops->parent_limits (nested, &l, &err), 0);
  assert_int_equal (l.memory_bytes, INT64_C (4294967296));
  assert_int_equal (l.cpu_milli, 2000);
  assert_int_equal (l.pids_max, 100);
  cg_manager_free (m);
  cg_manager_free (nested);
}

static void
test_v2_exists_and_destroy (void **state)
{
  fx_t *fx = *state;
  cg_manager_t *m = fx_manager (&fx->l2, "orch");
  cleanup_free char *inner = xasprintf ("%s/v2/orch/empty/inner", fx->tmp);
  orch_err_t err = { 0 };

  assert_int_equal (m->ops->destroy (m, "gone", &err), 0);
  assert_int_equal (orch_mkdir_p (inner, 0755), 0);
  assert_true (m->ops->exists (m, "empty"));
  assert_int_equal (m->ops->destroy (m, "empty", &err), 0);
  assert_false (m->ops->exists (m, "empty"));
  assert_false (is_dir (inner));
  cg_manager_free (m);
}

static void
test_manager_rejects_bad_input (void **state)
{
  fx_t *fx = *state;
  static const char *const parents[] = { "", "/orch", "a/../b", "a//b", "orch/", "..", "." };
  cg_layout_t incomplete = { .version = 1, .v1_cpu = fx->l1.v1_cpu };
  cg_layout_t v3 = { .version = 3, .v2_root = fx->l2.v2_root };
  size_t i;

  for (i = 0; i < ORCH_ARRAY_LEN (parents); i++)
    {
      orch_err_t err = { 0 };
      assert_null (cg_manager_new_with_layout (&fx->l1, parents[i], &err));
      assert_int_equal (err.code, EINVAL);
      assert_non_null (strstr (err.msg, "invalid cgroup parent"));
    }
  {
    orch_err_t err = { 0 };
    assert_null (cg_manager_new_with_layout (&fx->l1, NULL, &err));
    assert_null (cg_manager_new_with_layout (&incomplete, "orch", &err));
    assert_non_null (strstr (err.msg, "incomplete cgroup layout"));
    assert_null (cg_manager_new_with_layout (&v3, "orch", &err));
    assert_null (cg_manager_new_with_layout (NULL, "orch", &err));
  }
  /* A parent that cannot be made (a file is in the way). */
  {
    orch_err_t err = { 0 };
    assert_null (cg_manager_new_with_layout (&fx->l1, "orch/web/cgroup.procs", &err));
    assert_non_null (strstr (err.msg, "create cgroup"));
  }
  cg_manager_free (NULL);
}

static const struct CMUnitTest tests[] = {
  cmocka_unit_test (test_layout_hybrid_host),
  cmocka_unit_test (test_layout_pure_v2),
  cmocka_unit_test (test_layout_v2_without_memory_is_an_error),
  cmocka_unit_test (test_layout_comounted_cpu_cpuacct),
  cmocka_unit_test (test_layout_escaped_mount_points),
  cmocka_unit_test (test_layout_no_cgroups),
  cmocka_unit_test (test_layout_v1_missing_cpu_names_it),
  cmocka_unit_test (test_layout_unreadable_controllers),
  cmocka_unit_test (test_layout_shadowed_mount_is_ignored),
  cmocka_unit_test (test_layout_malformed_lines),
  cmocka_unit_test (test_layout_mangled_input),
  cmocka_unit_test (test_layout_real_host),
  cmocka_unit_test (test_parse_cpu_max),
  cmocka_unit_test (test_parse_int_or_max),
  cmocka_unit_test (test_parse_keyed),
  cmocka_unit_test_setup_teardown (test_v1_new_creates_parent_everywhere, fx_setup, fx_teardown),
  cmocka_unit_test_setup_teardown (test_v1_create_writes_limits, fx_setup, fx_teardown),
  cmocka_unit_test_setup_teardown (test_v1_create_failure_leaves_nothing, fx_setup, fx_teardown),
  cmocka_unit_test_setup_teardown (test_v1_rejects_bad_names_and_limits, fx_setup, fx_teardown),
  cmocka_unit_test_setup_teardown (test_v1_attach_and_pids, fx_setup, fx_teardown),
  cmocka_unit_test_setup_teardown (test_v1_usage, fx_setup, fx_teardown),
  cmocka_unit_test_setup_teardown (test_v1_parent_limits, fx_setup, fx_teardown),
  cmocka_unit_test_setup_teardown (test_v1_comounted_cpu_cpuacct, fx_setup, fx_teardown),
  cmocka_unit_test_setup_teardown (test_v1_without_optional_controllers, fx_setup, fx_teardown),
  cmocka_unit_test_setup_teardown (test_v1_exists_and_destroy, fx_setup, fx_teardown),
  cmocka_unit_test_setup_teardown (test_v2_new_enables_controllers, fx_setup, fx_teardown),
  cmocka_unit_test_setup_teardown (test_v2_new_parent_created, fx_setup, fx_teardown),
  cmocka_unit_test_setup_teardown (test_v2_parent_comes_back, fx_setup, fx_teardown),
  cmocka_unit_test_setup_teardown (test_v2_create_writes_limits, fx_setup, fx_teardown),
  cmocka_unit_test_setup_teardown (test_v2_missing_controller, fx_setup, fx_teardown),
  cmocka_unit_test_setup_teardown (test_v2_attach_and_pids, fx_setup, fx_teardown),
  cmocka_unit_test_setup_teardown (test_v2_usage, fx_setup, fx_teardown),
  cmocka_unit_test_setup_teardown (test_v2_parent_limits, fx_setup, fx_teardown),
  cmocka_unit_test_setup_teardown (test_v2_exists_and_destroy, fx_setup, fx_teardown),
  cmocka_unit_test_setup_teardown (test_manager_rejects_bad_input, fx_setup, fx_teardown),
};

ORCH_TEST_MAIN (tests)
