/* Shared bits for cmocka unit tests. ORCH_TEST_MAIN runs the group; with an
 * argument it runs only the case of that name (ctest runs each case as its
 * own entry). */
#ifndef ORCH_TEST_H
#define ORCH_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

/* Set when the process runs one named case, as ctest does. */
static int orch_test_one_case __attribute__ ((unused));

/* Skips the current case, saying why. cmocka 1.1's skip() leaves the exit
 * status 0, which ctest counts as a pass; a process running one case exits
 * 77 instead, which ctest reports as skipped (SKIP_RETURN_CODE). */
#define orch_skip(...)                                                                             \
  do                                                                                               \
    {                                                                                              \
      fprintf (stderr, "SKIP: " __VA_ARGS__);                                                      \
      fputc ('\n', stderr);                                                                        \
      if (orch_test_one_case)                                                                      \
        exit (77);                                                                                 \
      skip ();                                                                                     \
    }                                                                                              \
  while (0)

#define ORCH_TEST_MAIN(tests)                                                                      \
  int main (int argc, char **argv)                                                                 \
  {                                                                                                \
    if (argc > 1)                                                                                  \
      {                                                                                            \
        cmocka_set_test_filter (argv[1]);                                                          \
        orch_test_one_case = 1;                                                                    \
      }                                                                                            \
    return cmocka_run_group_tests (tests, NULL, NULL);                                             \
  }

#endif
