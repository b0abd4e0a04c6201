/* Quantities: the strings users write in specs and flags. */
#include "orch_test.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "orch_quantity.h"
#include "orch_util.h"

typedef struct
{
  const char *in;
  int ret;
  int64_t want;
} qcase_t;

static void
run_table (int (*parse) (const char *, int64_t *), const qcase_t *cases, size_t n,
           const char *what)
{
  size_t i;

  for (i = 0; i < n; i++)
    {
      int64_t got = -12345;
      int r = parse (cases[i].in, &got);
      if (r != cases[i].ret || (r == 0 && got != cases[i].want))
        fail_msg ("%s(\"%s\"): got ret %d value %lld, want ret %d value %lld", what, cases[i].in,
                  r, (long long) got, cases[i].ret, (long long) cases[i].want);
    }
}

static void
cpu_good (void **state)
{
  static const qcase_t cases[] = {
    { "0.5", 0, 500 },       { "2", 0, 2000 },         { "250m", 0, 250 },
    { "1.25", 0, 1250 },     { "0.001", 0, 1 },        { ".5", 0, 500 },
    { "1.2340", 0, 1234 },   { "1000m", 0, 1000 },     { "0", 0, 0 },
    { "-1", 0, -1000 },      { "64", 0, 64000 },       { "0.100", 0, 100 },
    { "9223372036854775m", 0, 9223372036854775LL },
  };
  (void) state;
  run_table (orch_parse_cpu_milli, cases, ORCH_ARRAY_LEN (cases), "cpu");
}

static void
cpu_bad (void **state)
{
  static const qcase_t cases[] = {
    { "abc", -EINVAL, 0 },    { "1.2345", -EINVAL, 0 }, { "5x", -EINVAL, 0 },
    { "", -EINVAL, 0 },       { "0.0001", -EINVAL, 0 }, { "1.5m", -EINVAL, 0 },
    { "1.", -EINVAL, 0 },     { ".", -EINVAL, 0 },      { "m", -EINVAL, 0 },
    { " 1", -EINVAL, 0 },     { "1 ", -EINVAL, 0 },     { "1mm", -EINVAL, 0 },
    { "1e3", -EINVAL, 0 },    { "0x10", -EINVAL, 0 },   { "+1", -EINVAL, 0 },
    { "1..2", -EINVAL, 0 },   { "--1", -EINVAL, 0 },    { "1Mi", -EINVAL, 0 },
    { "9223372036854776", -ERANGE, 0 },
    { "99999999999999999999999999999999999999999999999999", -ERANGE, 0 },
  };
  (void) state;
  run_table (orch_parse_cpu_milli, cases, ORCH_ARRAY_LEN (cases), "cpu");
}

static void
memory_good (void **state)
{
  static const qcase_t cases[] = {
    { "64Mi", 0, 64LL << 20 },
    { "1Gi", 0, 1LL << 30 },
    { "512Ki", 0, 512LL << 10 },
    { "1Ti", 0, 1LL << 40 },
    { "1Pi", 0, 1LL << 50 },
    { "1Ei", 0, 1LL << 60 },
    { "1048576", 0, 1048576 },
    { "64M", 0, 64000000 },
    { "1G", 0, 1000000000 },
    { "1k", 0, 1000 },
    { "2T", 0, 2000000000000LL },
    { "1.5Gi", 0, 3LL << 29 },
    { "0.5Ki", 0, 512 },
    { "0", 0, 0 },
    { "-1Mi", 0, -(1LL << 20) },
    { "7Ei", 0, 7LL << 60 },
    { "9223372036854775807", 0, INT64_MAX },
  };
  (void) state;
  run_table (orch_parse_memory_bytes, cases, ORCH_ARRAY_LEN (cases), "memory");
}

static void
memory_bad (void **state)
{
  static const qcase_t cases[] = {
    { "64MB", -EINVAL, 0 },
    { "64 Mi", -EINVAL, 0 },
    { "", -EINVAL, 0 },
    { "Mi", -EINVAL, 0 },
    { "64mi", -EINVAL, 0 },
    { "64K", -EINVAL, 0 },
    { "64Mib", -EINVAL, 0 },
    { "0.3", -EINVAL, 0 },
    { "1.0000001Ki", -EINVAL, 0 },
    { "64m", -EINVAL, 0 },
    { "abc", -EINVAL, 0 },
    { "8Ei", -ERANGE, 0 },
    { "9223372036854775808", -ERANGE, 0 },
    { "10E", -ERANGE, 0 },
    { "99999999999999999999999999999999999999999999999999Gi", -ERANGE, 0 },
  };
  (void) state;
  run_table (orch_parse_memory_bytes, cases, ORCH_ARRAY_LEN (cases), "memory");
}

static void
duration_good (void **state)
{
  static const qcase_t cases[] = {
    { "1s", 0, 1000 },        { "500ms", 0, 500 },      { "2m", 0, 120000 },
    { "1h", 0, 3600000 },     { "1m30s", 0, 90000 },    { "1h2m3s4ms", 0, 3723004 },
    { "0", 0, 0 },            { "0s", 0, 0 },           { "1.5s", 0, 1500 },
    { "-1s", 0, -1000 },      { "0.5m", 0, 30000 },     { "10s", 0, 10000 },
  };
  (void) state;
  run_table (orch_parse_duration_ms, cases, ORCH_ARRAY_LEN (cases), "duration");
}

static void
duration_bad (void **state)
{
  static const qcase_t cases[] = {
    { "", -EINVAL, 0 },      { "1", -EINVAL, 0 },     { "s", -EINVAL, 0 },
    { "1x", -EINVAL, 0 },    { "1 s", -EINVAL, 0 },   { "1.0001s", -EINVAL, 0 },
    { "1d", -EINVAL, 0 },    { "1sec", -EINVAL, 0 },  { "1m30", -EINVAL, 0 },
    { "-", -EINVAL, 0 },     { "1us", -EINVAL, 0 },
    { "9999999999999999h", -ERANGE, 0 },
  };
  (void) state;
  run_table (orch_parse_duration_ms, cases, ORCH_ARRAY_LEN (cases), "duration");
}

static void
format_cpu (void **state)
{
  static const struct
  {
    int64_t in;
    const char *want;
  } cases[] = {
    { 250, "250m" }, { 1000, "1" }, { 1500, "1.5" }, { 1250, "1.25" },
    { 2001, "2.001" }, { 0, "0" }, { 64000, "64" }, { -500, "-500m" },
  };
  char buf[32];
  size_t i;

  (void) state;
  for (i = 0; i < ORCH_ARRAY_LEN (cases); i++)
    assert_string_equal (orch_fmt_cpu (cases[i].in, buf, sizeof (buf)), cases[i].want);
}

static void
format_memory (void **state)
{
  static const struct
  {
    int64_t in;
    const char *want;
  } cases[] = {
    { 64LL << 20, "64Mi" },  { 1LL << 30, "1Gi" },  { 1288490189, "1.2Gi" },
    { 512, "512" },          { 1024, "1Ki" },       { 1536, "1.5Ki" },
    { 0, "0" },              { 3LL << 40, "3Ti" },  { INT64_MAX, "8.0Ei" },
  };
  char buf[32];
  size_t i;

  (void) state;
  for (i = 0; i < ORCH_ARRAY_LEN (cases); i++)
    assert_string_equal (orch_fmt_memory (cases[i].in, buf, sizeof (buf)), cases[i].want);
}

/* What is formatted for people parses back to the same value when exact. */
static void
format_round_trip (void **state)
{
  static const int64_t cpus[] = { 1, 250, 999, 1000, 1001, 1500, 123456 };
  static const int64_t mems[] = { 1, 1023, 1024, 64LL << 20, 5LL << 30, 7LL << 60 };
  char buf[32];
  int64_t back;
  size_t i;

  (void) state;
  for (i = 0; i < ORCH_ARRAY_LEN (cpus); i++)
    {
      assert_int_equal (orch_parse_cpu_milli (orch_fmt_cpu (cpus[i], buf, sizeof (buf)), &back),
                        0);
      assert_int_equal (back, cpus[i]);
    }
  for (i = 0; i < ORCH_ARRAY_LEN (mems); i++)
    {
      assert_int_equal (
          orch_parse_memory_bytes (orch_fmt_memory (mems[i], buf, sizeof (buf)), &back), 0);
      assert_int_equal (back, mems[i]);
    }
}

static void
null_input (void **state)
{
  int64_t v;
  (void) state;
  assert_int_equal (orch_parse_cpu_milli (NULL, &v), -EINVAL);
  assert_int_equal (orch_parse_memory_bytes (NULL, &v), -EINVAL);
  assert_int_equal (orch_parse_duration_ms (NULL, &v), -EINVAL);
}

static const struct CMUnitTest tests[] = {
  cmocka_unit_test (cpu_good),
  cmocka_unit_test (cpu_bad),
  cmocka_unit_test (memory_good),
  cmocka_unit_test (memory_bad),
  cmocka_unit_test (duration_good),
  cmocka_unit_test (duration_bad),
  cmocka_unit_test (format_cpu),
  cmocka_unit_test (format_memory),
  cmocka_unit_test (format_round_trip),
  cmocka_unit_test (null_input),
};

ORCH_TEST_MAIN (tests)
