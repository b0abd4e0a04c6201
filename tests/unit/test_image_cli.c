/* orch-image, the program the agent runs for pulls and GC: its contract
 * with the agent (result on stdout, "orch-image: error: ..." and exit 1 on
 * stderr, 2 for usage) and what an operator sees. Runs the built binary
 * (ORCH_IMAGE_BIN) on a temporary state directory; no registry, no root. */
#define _GNU_SOURCE
#include "orch_test.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "orch_run.h"
#include "orch_util.h"

typedef struct
{
  char *dir;   /* temporary root */
  char *state; /* <dir>/state */
  char *src;   /* <dir>/rootfs: a tiny root filesystem to import */
} fx_t;

static int
fx_setup (void **state)
{
  fx_t *f = xcalloc (1, sizeof *f);
  f->dir = xstrdup ("/tmp/orch-test-image-cli-XXXXXX");
  assert_non_null (mkdtemp (f->dir));
  f->state = xasprintf ("%s/state", f->dir);
  f->src = xasprintf ("%s/rootfs", f->dir);
  cleanup_free char *bin = xasprintf ("%s/bin", f->src);
  assert_int_equal (orch_mkdir_p (bin, 0755), 0);
  cleanup_free char *file = xasprintf ("%s/hello", bin);
  assert_int_equal (orch_write_file_atomic (file, "#!/bin/sh\necho hi\n", 18, 0755), 0);
  *state = f;
  return 0;
}

static int
fx_teardown (void **state)
{
  fx_t *f = *state;
  orch_rm_rf (f->dir);
  free (f->dir);
  free (f->state);
  free (f->src);
  free (f);
  return 0;
}

/* Runs orch-image with the given arguments (NULL-terminated). */
static int
image_cli (orch_run_t *r, orch_err_t *err, ...)
{
  char *argv[32];
  size_t n = 0;
  va_list ap;
  argv[n++] = (char *) ORCH_IMAGE_BIN;
  va_start (ap, err);
  for (char *a; (a = va_arg (ap, char *)) != NULL && n < 31;)
    argv[n++] = a;
  va_end (ap);
  argv[n] = NULL;
  memset (r, 0, sizeof *r);
  r->argv = argv;
  r->out_max = 1 << 16;
  return orch_run (r, err);
}

static void
test_import_inspect_untag (void **state)
{
  fx_t *f = *state;
  orch_run_t r;
  orch_err_t err = { 0 };

  assert_int_equal (image_cli (&r, &err, "--state-dir", f->state, "import", "app:1", f->src, NULL),
                    0);
  /* The agent's contract: one line, the image's root filesystem. */
  char *nl = strchr (r.out, '\n');
  assert_non_null (nl);
  assert_string_equal (nl + 1, "");
  *nl = '\0';
  cleanup_free char *rootfs = xstrdup (r.out);
  orch_run_clear (&r);
  assert_true (strncmp (rootfs, f->state, strlen (f->state)) == 0);
  cleanup_free char *hello = xasprintf ("%s/bin/hello", rootfs);
  struct stat st;
  assert_int_equal (stat (hello, &st), 0);
  assert_true (st.st_mode & S_IXUSR);

  /* -o json says which image the ref now names. */
  assert_int_equal (
      image_cli (&r, &err, "-o", "json", "--state-dir", f->state, "pull", "app:1", NULL), 0);
  {
    json_error_t je;
    json_t *o = json_loads (r.out, 0, &je);
    assert_non_null (o);
    assert_string_equal (json_string_value (json_object_get (o, "rootfs")), rootfs);
    assert_int_equal (strncmp (json_string_value (json_object_get (o, "id")), "sha256:", 7), 0);
    assert_int_equal (strlen (json_string_value (json_object_get (o, "manifest"))), 71);
    json_decref (o);
  }
  orch_run_clear (&r);

  /* A pull of what is in the store needs no registry. */
  assert_int_equal (image_cli (&r, &err, "--state-dir", f->state, "pull", "app:1", NULL), 0);
  r.out[strcspn (r.out, "\n")] = '\0';
  assert_string_equal (r.out, rootfs);
  orch_run_clear (&r);

  assert_int_equal (
      image_cli (&r, &err, "-o", "json", "--state-dir", f->state, "inspect", "app:1", NULL), 0);
  json_error_t je;
  json_t *o = json_loads (r.out, 0, &je);
  assert_non_null (o);
  assert_string_equal (json_string_value (json_object_get (o, "rootfs")), rootfs);
  assert_int_equal (strncmp (json_string_value (json_object_get (o, "id")), "sha256:", 7), 0);
  assert_true (json_integer_value (json_object_get (o, "size_bytes")) > 0);
  json_decref (o);
  orch_run_clear (&r);

  assert_int_equal (image_cli (&r, &err, "--state-dir", f->state, "untag", "app:1", NULL), 0);
  assert_string_equal (r.out, "untagged app:1\n");
  orch_run_clear (&r);
  assert_true (image_cli (&r, &err, "--state-dir", f->state, "inspect", "app:1", NULL) < 0);
  assert_int_equal (r.exit_code, 1);
  orch_run_clear (&r);

  /* Untagged and over budget, the image goes. */
  assert_int_equal (
      image_cli (&r, &err, "-o", "json", "--state-dir", f->state, "gc", "--budget", "0", NULL), 0);
  o = json_loads (r.out, 0, &je);
  assert_non_null (o);
  assert_int_equal (json_integer_value (json_object_get (o, "images_removed")), 1);
  json_decref (o);
  orch_run_clear (&r);
  assert_int_equal (stat (rootfs, &st), -1);
}

/* gc keeps what --in-use names, and removes the rest when over budget. */
static void
test_gc_in_use (void **state)
{
  fx_t *f = *state;
  orch_run_t r;
  orch_err_t err = { 0 };
  assert_int_equal (image_cli (&r, &err, "--state-dir", f->state, "import", "a", f->src, NULL), 0);
  orch_run_clear (&r);
  cleanup_free char *other = xasprintf ("%s/other", f->dir);
  assert_int_equal (orch_mkdir_p (other, 0755), 0);
  cleanup_free char *file = xasprintf ("%s/data", other);
  assert_int_equal (orch_write_file_atomic (file, "b\n", 2, 0644), 0);
  assert_int_equal (image_cli (&r, &err, "--state-dir", f->state, "import", "b", other, NULL), 0);
  orch_run_clear (&r);

  assert_int_equal (image_cli (&r, &err, "--state-dir", f->state, "gc", "--budget", "0",
                               "--in-use", "a", NULL),
                    0);
  assert_non_null (strstr (r.out, "removed 1 image(s)"));
  orch_run_clear (&r);
  assert_int_equal (image_cli (&r, &err, "--state-dir", f->state, "inspect", "a", NULL), 0);
  orch_run_clear (&r);
  assert_true (image_cli (&r, &err, "--state-dir", f->state, "inspect", "b", NULL) < 0);
  orch_run_clear (&r);
}

/* Failures: one error line naming the ref, exit 1; nothing published. */
static void
test_errors_name_what (void **state)
{
  fx_t *f = *state;
  orch_run_t r;
  orch_err_t err = { 0 };

  assert_true (image_cli (&r, &err, "--state-dir", f->state, "pull", "nothere:2", NULL) < 0);
  assert_int_equal (r.exit_code, 1);
  assert_string_equal (r.err_tail, "orch-image: error: image nothere:2 is not in this node's store "
                                   "and names no registry (import it with orchctl image import, "
                                   "or use host[:port]/repo:tag)");
  orch_run_clear (&r);

  assert_true (image_cli (&r, &err, "--state-dir", f->state, "--policy", "never", "pull",
                          "localhost:5000/app:1", NULL)
               < 0);
  assert_int_equal (r.exit_code, 1);
  assert_non_null (strstr (r.err_tail, "localhost:5000/app:1 is not in this node's store (pull "
                                       "policy never)"));
  orch_run_clear (&r);

  assert_true (image_cli (&r, &err, "--state-dir", f->state, "pull", "Bad/Name", NULL) < 0);
  assert_int_equal (r.exit_code, 1);
  assert_non_null (strstr (r.err_tail, "\"Bad/Name\": repository must be lowercase"));
  orch_run_clear (&r);

  cleanup_free char *missing = xasprintf ("%s/missing.tar", f->dir);
  assert_true (image_cli (&r, &err, "--state-dir", f->state, "import", "x", missing, NULL) < 0);
  assert_int_equal (r.exit_code, 1);
  assert_non_null (strstr (r.err_tail, "orch-image: error: import x from "));
  assert_non_null (strstr (r.err_tail, "missing.tar"));
  orch_run_clear (&r);
  cleanup_free char *refs = xasprintf ("%s/images/refs/x", f->state);
  assert_int_equal (access (refs, F_OK), -1);
}

static void
test_usage_errors (void **state)
{
  fx_t *f = *state;
  static const char *const cases[][4] = {
    { "pull", NULL, NULL, NULL },               /* missing REF */
    { "import", "x", NULL, NULL },              /* missing SOURCE */
    { "gc", NULL, NULL, NULL },                 /* missing --budget */
    { "gc", "--budget", "lots", NULL },         /* not a size */
    { "--policy", "sometimes", "pull", "x" },   /* bad policy */
    { "-o", "yaml", "inspect", "x" },           /* bad format */
    { "frobnicate", NULL, NULL, NULL },         /* unknown command */
    { "--bogus", "pull", "x", NULL },           /* unknown option */
    { "pull", "a", "b", NULL },                 /* extra operand */
  };
  static const char *const want[] = {
    "pull needs a REF",
    "import needs REF and SOURCE",
    "gc needs --budget SIZE",
    "--budget: 'lots' is not a size",
    "--policy: 'sometimes' is not if-missing, always or never",
    "-o: unknown format 'yaml'",
    "unknown command 'frobnicate'",
    "unknown option '--bogus'",
    "pull: unexpected argument",
  };
  for (size_t i = 0; i < ORCH_ARRAY_LEN (cases); i++)
    {
      orch_run_t r;
      orch_err_t err = { 0 };
      assert_true (image_cli (&r, &err, "--state-dir", f->state, cases[i][0], cases[i][1],
                              cases[i][2], cases[i][3], NULL)
                   < 0);
      if (r.exit_code != 2 || strstr (r.err_tail, want[i]) == NULL)
        fail_msg ("case %zu: exit %d, stderr: %s", i, r.exit_code, r.err_tail);
      assert_non_null (strstr (r.err_tail, "Try 'orch-image --help'"));
      orch_run_clear (&r);
    }
  orch_run_t r;
  orch_err_t err = { 0 };
  assert_int_equal (image_cli (&r, &err, "--help", NULL), 0);
  assert_non_null (strstr (r.out, "Usage: orch-image"));
  assert_non_null (strstr (r.out, "Exit status:"));
  orch_run_clear (&r);
}

static const struct CMUnitTest tests[] = {
  cmocka_unit_test_setup_teardown (test_import_inspect_untag, fx_setup, fx_teardown),
  cmocka_unit_test_setup_teardown (test_gc_in_use, fx_setup, fx_teardown),
  cmocka_unit_test_setup_teardown (test_errors_name_what, fx_setup, fx_teardown),
  cmocka_unit_test_setup_teardown (test_usage_errors, fx_setup, fx_teardown),
};

ORCH_TEST_MAIN (tests)
