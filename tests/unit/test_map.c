/* orch_map: the daemons' string-keyed tables. */
#include <stdio.h>
#include <string.h>

#include "orch_map.h"
#include "orch_test.h"

static void
test_map_put_get_del (void **state)
{
  (void) state;
  orch_map_t m = ORCH_MAP_INIT;
  int a = 1, b = 2;
  assert_null (orch_map_get (&m, "x"));
  assert_null (orch_map_put (&m, "x", &a));
  assert_ptr_equal (orch_map_get (&m, "x"), &a);
  /* Replacing returns the previous value and keeps one entry. */
  assert_ptr_equal (orch_map_put (&m, "x", &b), &a);
  assert_int_equal (m.len, 1);
  assert_ptr_equal (orch_map_del (&m, "x"), &b);
  assert_null (orch_map_get (&m, "x"));
  assert_null (orch_map_del (&m, "x"));
  assert_int_equal (m.len, 0);
  orch_map_free (&m);
}

static void
test_map_many_with_deletes (void **state)
{
  (void) state;
  orch_map_t m = ORCH_MAP_INIT;
  static int vals[20000];
  char key[32];
  for (int i = 0; i < 20000; i++)
    {
      vals[i] = i;
      snprintf (key, sizeof key, "alloc-%08x", i);
      orch_map_put (&m, key, &vals[i]);
    }
  /* Delete every other one, then re-insert a different set: tombstones must
   * not break lookups or grow the table without bound. */
  for (int i = 0; i < 20000; i += 2)
    {
      snprintf (key, sizeof key, "alloc-%08x", i);
      assert_ptr_equal (orch_map_del (&m, key), &vals[i]);
    }
  for (int round = 0; round < 5; round++)
    for (int i = 0; i < 10000; i++)
      {
        snprintf (key, sizeof key, "tmp-%d-%d", round, i);
        orch_map_put (&m, key, &vals[i]);
        orch_map_del (&m, key);
      }
  assert_int_equal (m.len, 10000);
  assert_true (m.cap <= 65536);
  for (int i = 0; i < 20000; i++)
    {
      snprintf (key, sizeof key, "alloc-%08x", i);
      if (i % 2)
        assert_ptr_equal (orch_map_get (&m, key), &vals[i]);
      else
        assert_null (orch_map_get (&m, key));
    }
  orch_map_free (&m);
}

static void
test_map_iterate_and_delete (void **state)
{
  (void) state;
  orch_map_t m = ORCH_MAP_INIT;
  static int vals[100];
  char key[16];
  for (int i = 0; i < 100; i++)
    {
      snprintf (key, sizeof key, "k%d", i);
      orch_map_put (&m, key, &vals[i]);
    }
  size_t seen = 0;
  const char *k;
  void *v;
  for (size_t it = 0; orch_map_next (&m, &it, &k, &v);)
    {
      seen++;
      /* Removing the entry just returned is allowed. */
      assert_ptr_equal (orch_map_del (&m, k), v);
    }
  assert_int_equal (seen, 100);
  assert_int_equal (m.len, 0);
  orch_map_free (&m);
}

static const struct CMUnitTest tests[] = {
  cmocka_unit_test (test_map_put_get_del),
  cmocka_unit_test (test_map_many_with_deletes),
  cmocka_unit_test (test_map_iterate_and_delete),
};

ORCH_TEST_MAIN (tests)
