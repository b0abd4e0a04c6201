/* libFuzzer target for the service spec parser: any bytes in, no crash, no
 * leak, and the documented contract holds on every input.
 *
 * Not wired into CMake. Build with clang from the repository root:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Icommon \
 *     tests/fuzz/fuzz_spec.c common/orch_spec.c common/orch_quantity.c \
 *     common/orch_err.c common/orch_util.c -ljansson -o fuzz_spec
 *   mkdir -p /tmp/spec-corpus && cp tests/fixtures/spec/[a-z]*.json /tmp/spec-corpus
 *   ./fuzz_spec -max_len=4096 /tmp/spec-corpus */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "orch_spec.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  orch_errlist_t errs = { 0 };
  orch_spec_t *specs = NULL;
  size_t n = 0, i;
  int r;

  r = orch_spec_parse_text ((const char *) data, size, &specs, &n, &errs);
  if (r == 0)
    {
      /* Success: no errors, and every service's canonical JSON parses back to
       * the same canonical JSON. */
      if (errs.len != 0 || n == 0)
        abort ();
      for (i = 0; i < n; i++)
        {
          orch_spec_t back;
          if (orch_spec_parse_one (specs[i].json, &back, &errs) != 0)
            abort ();
          if (strcmp (back.json, specs[i].json) != 0)
            abort ();
          orch_spec_clear (&back);
        }
      orch_specs_free (specs, n);
    }
  else
    {
      /* Failure: nothing returned, at least one message, each one line. */
      if (specs != NULL || errs.len == 0)
        abort ();
      for (i = 0; i < errs.len; i++)
        if (strchr (errs.items[i], '\n') != NULL)
          abort ();
    }
  orch_errlist_free (&errs);
  return 0;
}
