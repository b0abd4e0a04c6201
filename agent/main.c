/* orch-agent: parse the flags, build the agent, run the loop (agent.h). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "agent.h"
#include "agent_internal.h"
#include "orch_err.h"
#include "orch_log.h"

static void
agent_main_ignore (int sig)
{
  (void) sig;
}

int
main (int argc, char **argv)
{
  agent_config_t cfg;
  orch_err_t err = { 0 };
  struct sigaction sa;
  uv_loop_t loop;
  agent_t *agent;
  int r;

  /* The hidden helper health probes run through (agent_exec.c). _exit: it
   * has nothing to clean up, and exit handlers (a leak checker's, in
   * sanitizer builds) would run in the container's pid namespace, where
   * they cannot see their own process. */
  if (argc >= 2 && strcmp (argv[1], "--exec-in") == 0)
    _exit (agent_exec_in_main (argc, argv));

  r = agent_config_parse (argc, argv, getenv ("ORCH_JOIN_TOKEN"), &cfg, &err);
  if (r < 0)
    {
      fprintf (stderr, "orch-agent: %s\nTry 'orch-agent --help' for more information.\n", err.msg);
      agent_config_clear (&cfg);
      return 2;
    }
  if (r == AGENT_CONFIG_HELP)
    {
      fputs (agent_usage_text (), stdout);
      agent_config_clear (&cfg);
      return 0;
    }
  if (r == AGENT_CONFIG_VERSION)
    {
      printf ("orch-agent %s\n", ORCH_AGENT_VERSION);
      agent_config_clear (&cfg);
      return 0;
    }

  orch_log_init ("agent", cfg.log_level);

  /* A write to a closed socket must fail with EPIPE, not kill the agent. A
   * no-op handler rather than SIG_IGN: an ignored signal stays ignored across
   * exec, and the workloads the agent starts must get the default. */
  memset (&sa, 0, sizeof (sa));
  sa.sa_handler = agent_main_ignore;
  sa.sa_flags = SA_RESTART;
  sigemptyset (&sa.sa_mask);
  sigaction (SIGPIPE, &sa, NULL);

  r = uv_loop_init (&loop);
  if (r < 0)
    {
      orch_error ("cannot create the event loop: %s", uv_strerror (r));
      agent_config_clear (&cfg);
      return 1;
    }
  agent = agent_new (&loop, &cfg, &err);
  if (agent == NULL)
    {
      orch_error ("cannot start: %s", err.msg);
      uv_loop_close (&loop);
      agent_config_clear (&cfg);
      return 1;
    }
  r = agent_run (agent);
  agent_free (agent);
  uv_loop_close (&loop);
  agent_config_clear (&cfg);
  orch_info ("stopped");
  return r;
}
