/* agent_image.c: how the daemon drives its orch-image helper. A shell
 * script stands in for orch-image ($ORCH_IMAGE_HELPER) and records what it
 * was given; the real program's contract is tested in test_image_cli.c. */
#define _GNU_SOURCE
#include "orch_test.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent_internal.h"
#include "orch_util.h"

typedef struct
{
  char *dir;
  char *helper; /* <dir>/orch-image */
  char *args;   /* <dir>/args: one argument per line, as the helper got them */
  char *env;    /* <dir>/env */
} fx_t;

/* Writes the fake helper: records argv and env, then runs body. */
static void
fx_helper (fx_t *f, const char *body)
{
  cleanup_free char *script = xasprintf ("#!/bin/sh\n"
                                         "for a in \"$@\"; do echo \"$a\"; done > %s\n"
                                         "env > %s\n"
                                         "%s\n",
                                         f->args, f->env, body);
  assert_int_equal (orch_write_file_atomic (f->helper, script, strlen (script), 0755), 0);
}

static char *
fx_read (const char *path)
{
  char *data = NULL;
  size_t len;
  assert_int_equal (orch_read_file (path, 1 << 20, &data, &len), 0);
  return data;
}

static int
fx_setup (void **state)
{
  fx_t *f = xcalloc (1, sizeof *f);
  f->dir = xstrdup ("/tmp/orch-test-agent-image-XXXXXX");
  assert_non_null (mkdtemp (f->dir));
  f->helper = xasprintf ("%s/orch-image", f->dir);
  f->args = xasprintf ("%s/args", f->dir);
  f->env = xasprintf ("%s/env", f->dir);
  setenv ("ORCH_IMAGE_HELPER", f->helper, 1);
  *state = f;
  return 0;
}

static int
fx_teardown (void **state)
{
  fx_t *f = *state;
  unsetenv ("ORCH_IMAGE_HELPER");
  orch_rm_rf (f->dir);
  free (f->dir);
  free (f->helper);
  free (f->args);
  free (f->env);
  free (f);
  return 0;
}

static void
test_pull_returns_rootfs (void **state)
{
  fx_t *f = *state;
  fx_helper (f, "echo /state/images/rootfs/abc/rootfs");
  setenv ("ORCH_JOIN_TOKEN", "sekrit", 1);
  setenv ("https_proxy", "http://proxy.example:3128", 1);
  char *rootfs = NULL;
  orch_err_t err = { 0 };
  assert_int_equal (
      agent_image_pull ("/state", "reg.example:5000/app:1", "reg.example:5000", NULL, &rootfs, &err),
      0);
  assert_string_equal (rootfs, "/state/images/rootfs/abc/rootfs");
  free (rootfs);
  cleanup_free char *args = fx_read (f->args);
  assert_string_equal (args, "--state-dir\n/state\n--insecure-registry\nreg.example:5000\npull\n"
                             "reg.example:5000/app:1\n");
  /* The helper sees the proxy, never the agent's secrets. */
  cleanup_free char *env = fx_read (f->env);
  assert_non_null (strstr (env, "https_proxy=http://proxy.example:3128\n"));
  assert_null (strstr (env, "sekrit"));
  unsetenv ("ORCH_JOIN_TOKEN");
  unsetenv ("https_proxy");
}

/* The helper's own error line becomes the message; other stderr is noise. */
static void
test_pull_error_is_helpers_line (void **state)
{
  fx_t *f = *state;
  fx_helper (f, "echo 'some libcurl chatter' >&2\n"
                "echo 'orch-image: error: pull reg:5000/app:1: blob sha256:ab: digest mismatch' >&2\n"
                "exit 1");
  char *rootfs = NULL;
  orch_err_t err = { 0 };
  assert_true (agent_image_pull ("/state", "reg:5000/app:1", NULL, NULL, &rootfs, &err) < 0);
  assert_null (rootfs);
  assert_int_equal (err.code, EIO);
  assert_string_equal (err.msg, "pull reg:5000/app:1: blob sha256:ab: digest mismatch");
  cleanup_free char *args = fx_read (f->args);
  assert_string_equal (args, "--state-dir\n/state\npull\nreg:5000/app:1\n");
}

/* A helper that cannot run, or says nothing useful: the message still
 * names the image. */
static void
test_pull_helper_missing (void **state)
{
  fx_t *f = *state;
  char *rootfs = NULL;
  orch_err_t err = { 0 };
  assert_true (agent_image_pull ("/state", "reg:5000/app:1", NULL, NULL, &rootfs, &err) < 0);
  assert_true (strncmp (err.msg, "pull reg:5000/app:1: ", 21) == 0);
  assert_non_null (strstr (err.msg, f->helper));

  fx_helper (f, "exit 0"); /* success without a rootfs */
  assert_true (agent_image_pull ("/state", "reg:5000/app:1", NULL, NULL, &rootfs, &err) < 0);
  assert_int_equal (err.code, EPROTO);
  assert_non_null (strstr (err.msg, "printed no root filesystem"));
}

typedef struct
{
  volatile int *flag;
} setter_t;

static void *
set_later (void *arg)
{
  usleep (300 * 1000);
  *((setter_t *) arg)->flag = 1;
  return NULL;
}

static void
test_pull_cancel (void **state)
{
  fx_t *f = *state;
  cleanup_free char *mark = xasprintf ("%s/terminated", f->dir);
  cleanup_free char *body = xasprintf ("trap 'touch %s; exit 1' TERM\n"
                                       "while :; do sleep 0.05; done",
                                       mark);
  fx_helper (f, body);
  volatile int cancel = 0;
  setter_t s = { .flag = &cancel };
  pthread_t t;
  assert_int_equal (pthread_create (&t, NULL, set_later, &s), 0);
  char *rootfs = NULL;
  orch_err_t err = { 0 };
  assert_true (agent_image_pull ("/state", "reg:5000/app:1", NULL, &cancel, &rootfs, &err) < 0);
  pthread_join (t, NULL);
  assert_int_equal (err.code, ECANCELED);
  assert_int_equal (access (mark, F_OK), 0);
}

static void
test_gc_args_and_busy (void **state)
{
  fx_t *f = *state;
  fx_helper (f, "exit 0");
  const char *in_use[] = { "busybox", "reg:5000/app:1", "busybox", "busybox" };
  orch_err_t err = { 0 };
  assert_int_equal (agent_image_gc ("/state", 1024, in_use, 4, &err), 0);
  cleanup_free char *args = fx_read (f->args);
  assert_string_equal (args, "--state-dir\n/state\ngc\n--budget\n1024\n--in-use\nbusybox\n"
                             "--in-use\nreg:5000/app:1\n");

  fx_helper (f, "echo 'orch-image: error: a pull or import is in progress; try later' >&2; exit 75");
  assert_true (agent_image_gc ("/state", 1024, NULL, 0, &err) < 0);
  assert_int_equal (err.code, EAGAIN);
  assert_string_equal (err.msg, "a pull or import is in progress; try later");
}

static const struct CMUnitTest tests[] = {
  cmocka_unit_test_setup_teardown (test_pull_returns_rootfs, fx_setup, fx_teardown),
  cmocka_unit_test_setup_teardown (test_pull_error_is_helpers_line, fx_setup, fx_teardown),
  cmocka_unit_test_setup_teardown (test_pull_helper_missing, fx_setup, fx_teardown),
  cmocka_unit_test_setup_teardown (test_pull_cancel, fx_setup, fx_teardown),
  cmocka_unit_test_setup_teardown (test_gc_args_and_busy, fx_setup, fx_teardown),
};

ORCH_TEST_MAIN (tests)
