/* The agent's pure decisions: restart policy and backoff, reconnect backoff,
 * what a DesiredAllocs list means, and the node's capacity. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orch_test.h"

#include "agent_internal.h"

#define MIN_MS (60 * 1000)

static void
test_restart_policy_table (void **state)
{
  static const struct
  {
    orch_restart_policy_t policy;
    uint32_t max;
    uint32_t done;
    bool failed;
    bool restart;
  } cases[] = {
    { ORCH_RESTART_NEVER, 5, 0, true, false },
    { ORCH_RESTART_NEVER, 5, 0, false, false },
    { ORCH_RESTART_ON_FAILURE, 5, 0, true, true },
    { ORCH_RESTART_ON_FAILURE, 5, 0, false, false }, /* exit 0 is not a failure */
    { ORCH_RESTART_ON_FAILURE, 5, 4, true, true },
    { ORCH_RESTART_ON_FAILURE, 5, 5, true, false }, /* limit reached */
    { ORCH_RESTART_ALWAYS, 5, 0, false, true },
    { ORCH_RESTART_ALWAYS, 5, 0, true, true },
    { ORCH_RESTART_ALWAYS, 2, 2, false, false },
    { ORCH_RESTART_ALWAYS, 0, 0, true, false }, /* max_restarts 0: never restarted */
  };
  size_t i;

  for (i = 0; i < sizeof (cases) / sizeof (cases[0]); i++)
    {
      int64_t delay = -1;
      bool r = agent_restart_decide (cases[i].policy, cases[i].max, cases[i].done, cases[i].failed,
                                     1000, &delay);
      if (r != cases[i].restart)
        fail_msg ("case %zu: restart %d, want %d", i, r, cases[i].restart);
      if (r && delay != agent_restart_backoff_ms (1000, cases[i].done))
        fail_msg ("case %zu: delay %lld", i, (long long) delay);
    }
}

static void
test_restart_backoff_doubles_and_caps (void **state)
{
  assert_int_equal (agent_restart_backoff_ms (1000, 0), 1000);
  assert_int_equal (agent_restart_backoff_ms (1000, 1), 2000);
  assert_int_equal (agent_restart_backoff_ms (1000, 2), 4000);
  assert_int_equal (agent_restart_backoff_ms (1000, 8), 256000);
  assert_int_equal (agent_restart_backoff_ms (1000, 9), 5 * MIN_MS); /* 512 s > 5 min */
  assert_int_equal (agent_restart_backoff_ms (1000, 1000000), 5 * MIN_MS);
  assert_int_equal (agent_restart_backoff_ms (250, 3), 2000);
  /* A base above the cap is the cap; a tiny or zero base is floored. */
  assert_int_equal (agent_restart_backoff_ms (10 * MIN_MS, 0), 5 * MIN_MS);
  assert_int_equal (agent_restart_backoff_ms (0, 0), AGENT_RESTART_MIN_BACKOFF_MS);
  assert_int_equal (agent_restart_backoff_ms (-5, 1), 2 * AGENT_RESTART_MIN_BACKOFF_MS);
  assert_int_equal (agent_restart_backoff_ms (INT64_MAX, 3), 5 * MIN_MS);
}

static void
test_reconnect_delay (void **state)
{
  /* jitter 0.5 is the middle of the +-20% band: the plain schedule. */
  assert_int_equal (agent_reconnect_delay_ms (1, 0.5), 200);
  assert_int_equal (agent_reconnect_delay_ms (2, 0.5), 400);
  assert_int_equal (agent_reconnect_delay_ms (3, 0.5), 800);
  assert_int_equal (agent_reconnect_delay_ms (6, 0.5), 6400);
  assert_int_equal (agent_reconnect_delay_ms (7, 0.5), 10000);
  assert_int_equal (agent_reconnect_delay_ms (100000, 0.5), 10000);
  /* Jitter stays within 80%..120%. */
  assert_int_equal (agent_reconnect_delay_ms (1, 0.0), 160);
  assert_true (agent_reconnect_delay_ms (1, 0.9999) < 240);
  assert_true (agent_reconnect_delay_ms (1, 0.9999) > 230);
  assert_true (agent_reconnect_delay_ms (50, 1.0) <= 12000);
  assert_int_equal (agent_reconnect_delay_ms (50, -3), 8000);
}

static void
check_plan (const char *const *known, size_t nk, const char *const *desired, size_t nd,
            const char *want_stop, const char *want_start)
{
  size_t *stop, *start, ns, nst, i;
  char got_stop[256] = "", got_start[256] = "";

  agent_reconcile_plan (known, nk, desired, nd, &stop, &ns, &start, &nst);
  for (i = 0; i < ns; i++)
    {
      strcat (got_stop, i ? "," : "");
      strcat (got_stop, known[stop[i]]);
    }
  for (i = 0; i < nst; i++)
    {
      strcat (got_start, i ? "," : "");
      strcat (got_start, desired[start[i]]);
    }
  assert_string_equal (got_stop, want_stop);
  assert_string_equal (got_start, want_start);
  if (ns == 0)
    assert_null (stop);
  if (nst == 0)
    assert_null (start);
  free (stop);
  free (start);
}

static void
test_reconcile_plan (void **state)
{
  const char *known[] = { "web-1", "web-2", "db-1" };
  const char *d1[] = { "web-2", "web-3", "db-1" };
  const char *d2[] = { "x-1", "x-2", "x-1", "web-1", "x-2" };
  const char *d3[] = { "web-1", "web-2", "db-1" };

  /* Stop what is not listed, start what is listed and unknown. */
  check_plan (known, 3, d1, 3, "web-1", "web-3");
  /* An empty list stops everything. */
  check_plan (known, 3, NULL, 0, "web-1,web-2,db-1", "");
  /* On an empty node everything listed starts, duplicates once, in order. */
  check_plan (NULL, 0, d2, 5, "", "x-1,x-2,web-1");
  check_plan (known, 3, d2, 5, "web-2,db-1", "x-1,x-2");
  /* Nothing to do when the lists agree. */
  check_plan (known, 3, d3, 3, "", "");
  check_plan (NULL, 0, NULL, 0, "", "");
}

static void
test_reconcile_plan_large (void **state)
{
  enum
  {
    N = 5000
  };
  char **known = malloc (N * sizeof (char *)), **desired = malloc (N * sizeof (char *));
  size_t *stop, *start, ns, nst, i;

  /* known: a-0..a-4999; desired: the odd ones and b-0..b-2499. */
  for (i = 0; i < N; i++)
    {
      known[i] = malloc (16);
      desired[i] = malloc (16);
      snprintf (known[i], 16, "a-%zu", i);
      if (i < N / 2)
        snprintf (desired[i], 16, "a-%zu", 2 * i + 1);
      else
        snprintf (desired[i], 16, "b-%zu", i - N / 2);
    }
  agent_reconcile_plan ((const char *const *) known, N, (const char *const *) desired, N, &stop,
                        &ns, &start, &nst);
  assert_int_equal (ns, N / 2);
  assert_int_equal (nst, N / 2);
  for (i = 0; i < ns; i++)
    assert_int_equal (stop[i] % 2, 0);
  for (i = 0; i < nst; i++)
    assert_true (desired[start[i]][0] == 'b');
  for (i = 0; i < N; i++)
    {
      free (known[i]);
      free (desired[i]);
    }
  free (known);
  free (desired);
  free (stop);
  free (start);
}

static void
test_meminfo_parse (void **state)
{
  int64_t b = 0;

  assert_int_equal (agent_node_parse_meminfo ("MemTotal:       24575968 kB\nMemFree: 1 kB\n", &b),
                    0);
  assert_int_equal (b, (int64_t) 24575968 * 1024);
  assert_int_equal (agent_node_parse_meminfo ("MemFree: 1 kB\nMemTotal: 2048 kB\n", &b), 0);
  assert_int_equal (b, 2048 * 1024);
  assert_int_equal (agent_node_parse_meminfo ("MemFree: 1 kB\n", &b), -EINVAL);
  assert_int_equal (agent_node_parse_meminfo ("MemTotal: lots kB\n", &b), -EINVAL);
  assert_int_equal (agent_node_parse_meminfo ("MemTotal: 12 MB\n", &b), -EINVAL);
  assert_int_equal (agent_node_parse_meminfo ("MemTotal: 99999999999999999999 kB\n", &b), -EINVAL);
  assert_int_equal (agent_node_parse_meminfo ("", &b), -EINVAL);
}

static void
test_host_totals_are_sane (void **state)
{
  int64_t mem = 0;

  assert_true (agent_node_host_cpus () >= 1);
  assert_int_equal (agent_node_host_memory (&mem), 0);
  assert_true (mem > 16 * 1024 * 1024);
}

#define GI (1024LL * 1024 * 1024)

static void
test_capacity (void **state)
{
  cg_limits_t none = { 0 };
  cg_limits_t both = { .cpu_milli = 1500, .memory_bytes = 2 * GI };
  cg_limits_t mem_only = { .memory_bytes = 3 * GI };
  cg_limits_t huge = { .cpu_milli = 64000, .memory_bytes = 0x7FFFFFFFFFFFF000LL };
  int64_t cpu, mem;

  /* No parent limits: host totals minus the reserve. */
  agent_node_capacity (&none, 4, 16 * GI, 100, GI / 4, &cpu, &mem);
  assert_int_equal (cpu, 3900);
  assert_int_equal (mem, 16 * GI - GI / 4);
  agent_node_capacity (NULL, 2, 8 * GI, 0, 0, &cpu, &mem);
  assert_int_equal (cpu, 2000);
  assert_int_equal (mem, 8 * GI);
  /* Parent limits win, per dimension, and are not reduced by the reserve. */
  agent_node_capacity (&both, 4, 16 * GI, 100, GI, &cpu, &mem);
  assert_int_equal (cpu, 1500);
  assert_int_equal (mem, 2 * GI);
  agent_node_capacity (&mem_only, 4, 16 * GI, 500, GI, &cpu, &mem);
  assert_int_equal (cpu, 3500);
  assert_int_equal (mem, 3 * GI);
  /* A "limit" above the host (v1's unlimited) is no limit. */
  agent_node_capacity (&huge, 4, 16 * GI, 0, GI, &cpu, &mem);
  assert_int_equal (cpu, 4000);
  assert_int_equal (mem, 15 * GI);
  /* A reserve larger than the host leaves 0, never a negative capacity. */
  agent_node_capacity (&none, 1, GI, 5000, 2 * GI, &cpu, &mem);
  assert_int_equal (cpu, 0);
  assert_int_equal (mem, 0);
}

static const struct CMUnitTest tests[] = {
  cmocka_unit_test (test_restart_policy_table),
  cmocka_unit_test (test_restart_backoff_doubles_and_caps),
  cmocka_unit_test (test_reconnect_delay),
  cmocka_unit_test (test_reconcile_plan),
  cmocka_unit_test (test_reconcile_plan_large),
  cmocka_unit_test (test_meminfo_parse),
  cmocka_unit_test (test_host_totals_are_sane),
  cmocka_unit_test (test_capacity),
};

ORCH_TEST_MAIN (tests)
