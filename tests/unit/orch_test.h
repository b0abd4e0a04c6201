/* Shared bits for cmocka unit tests. ORCH_TEST_MAIN runs the group; with an
 * argument it runs only the case of that name (ctest runs each case as its
 * own entry). */
#ifndef ORCH_TEST_H
#define ORCH_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#define ORCH_TEST_MAIN(tests)                                                                      \
  int main (int argc, char **argv)                                                                 \
  {                                                                                                \
    if (argc > 1)                                                                                  \
      cmocka_set_test_filter (argv[1]);                                                            \
    return cmocka_run_group_tests (tests, NULL, NULL);                                             \
  }

#endif
