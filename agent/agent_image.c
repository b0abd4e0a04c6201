/* Pulls and image GC for the daemon, each in an orch-image process
 * (image_main.c has the contract): the daemon's own memory holds no
 * libcurl, libarchive or OpenSSL, and a pull that crashes or leaks takes
 * only its helper with it. Called from the thread pool. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_internal.h"
#include "orch_run.h"
#include "orch_util.h"

#define AGENT_IMAGE_HELPER "orch-image"
#define AGENT_IMAGE_HELPER_ENV "ORCH_IMAGE_HELPER"
/* A rootfs path (pull) or a line of counts (gc). */
#define AGENT_IMAGE_OUT_MAX 8192

static const char agent_image_err_prefix[] = "orch-image: error: ";

/* Runs the helper with args; on failure err carries the helper's own error
 * line when it printed one (its exit status otherwise). */
static int
agent__image_run (char **argv, const volatile int *cancel, char **out, orch_err_t *err)
{
  /* A minimal environment (the agent's holds its join token), plus what
   * libcurl reads to reach a registry through a proxy or with other CAs. */
  static const char *const pass[]
      = { "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
          "ALL_PROXY", "all_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR" };
  char *envp[ORCH_ARRAY_LEN (pass) + 3];
  size_t ne = 0;
  envp[ne++] = xstrdup ("PATH=/usr/sbin:/usr/bin:/sbin:/bin");
  envp[ne++] = xstrdup ("LC_ALL=C");
  for (size_t i = 0; i < ORCH_ARRAY_LEN (pass); i++)
    {
      const char *v = getenv (pass[i]);
      if (v != NULL)
        envp[ne++] = xasprintf ("%s=%s", pass[i], v);
    }
  envp[ne] = NULL;
  orch_run_t run = {
    .argv = argv,
    .envp = envp,
    .out_max = AGENT_IMAGE_OUT_MAX,
    .cancel = cancel,
  };
  int r = orch_run (&run, err);
  for (size_t i = 0; i < ne; i++)
    free (envp[i]);
  if (r < 0)
    {
      /* The last line that is the helper's error, if any. */
      const char *line = NULL;
      for (const char *p = run.err_tail; (p = strstr (p, agent_image_err_prefix)) != NULL;
           p += sizeof agent_image_err_prefix - 1)
        if (p == run.err_tail || p[-1] == '\n')
          line = p + sizeof agent_image_err_prefix - 1;
      if (line != NULL && err->code != ECANCELED)
        orch_err_set (err, run.exit_code == 75 ? EAGAIN : EIO, "%.*s",
                      (int) strcspn (line, "\n"), line);
      orch_run_clear (&run);
      return -1;
    }
  if (out != NULL)
    *out = TAKE_PTR (run.out);
  orch_run_clear (&run);
  return 0;
}

int
agent_image_pull (const char *state_dir, const char *ref, const char *insecure_registry,
                  const volatile int *cancel, char **rootfs, orch_err_t *err)
{
  cleanup_free char *helper = orch_program_path (AGENT_IMAGE_HELPER_ENV, AGENT_IMAGE_HELPER);
  cleanup_free char *out = NULL;
  char *argv[8];
  size_t n = 0;
  argv[n++] = helper;
  argv[n++] = (char *) "--state-dir";
  argv[n++] = (char *) state_dir;
  if (insecure_registry != NULL)
    {
      argv[n++] = (char *) "--insecure-registry";
      argv[n++] = (char *) insecure_registry;
    }
  argv[n++] = (char *) "pull";
  argv[n++] = (char *) ref;
  argv[n] = NULL;
  if (agent__image_run (argv, cancel, &out, err) < 0)
    {
      /* orch-image's messages name the image; a failure to run it does not. */
      if (strstr (err->msg, ref) == NULL)
        orch_err_wrap (err, "pull %s", ref);
      return -1;
    }
  out[strcspn (out, "\n")] = '\0';
  if (out[0] != '/')
    return orch_err_set (err, EPROTO, "pull %s: %s printed no root filesystem", ref, helper);
  *rootfs = TAKE_PTR (out);
  return 0;
}

int
agent_image_gc (const char *state_dir, int64_t budget_bytes, const char *const *in_use,
                size_t n_in_use, orch_err_t *err)
{
  cleanup_free char *helper = orch_program_path (AGENT_IMAGE_HELPER_ENV, AGENT_IMAGE_HELPER);
  char budget[32];
  snprintf (budget, sizeof budget, "%" PRId64, budget_bytes);
  /* Distinct entries only: many allocations share an image. */
  size_t n = 0;
  cleanup_free char **argv = xcalloc (7 + 2 * n_in_use, sizeof (char *));
  argv[n++] = helper;
  argv[n++] = (char *) "--state-dir";
  argv[n++] = (char *) state_dir;
  argv[n++] = (char *) "gc";
  argv[n++] = (char *) "--budget";
  argv[n++] = budget;
  for (size_t i = 0; i < n_in_use; i++)
    {
      bool seen = false;
      for (size_t j = 7; j < n && !seen; j += 2)
        seen = strcmp (argv[j], in_use[i]) == 0;
      if (seen)
        continue;
      argv[n++] = (char *) "--in-use";
      argv[n++] = (char *) in_use[i];
    }
  argv[n] = NULL;
  return agent__image_run (argv, NULL, NULL, err);
}
