/* orch-agent's command line: what it accepts, what it refuses and what it
 * says when it refuses (users read these messages). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orch_test.h"

#include "agent.h"

#define MAX_ARGS 32

/* Parses a NULL-terminated list of arguments after "orch-agent". */
static int
parse (agent_config_t *cfg, orch_err_t *err, const char *env_token, const char *const *args)
{
  char *argv[MAX_ARGS + 1];
  int argc = 0;

  argv[argc++] = (char *) "orch-agent";
  while (*args && argc < MAX_ARGS)
    argv[argc++] = (char *) *args++;
  argv[argc] = NULL;
  memset (err, 0, sizeof (*err));
  return agent_config_parse (argc, argv, env_token, cfg, err);
}

#define REQ "--scheduler", "10.0.0.1:7701", "--node-id", "node-1"

static void
test_flags_defaults (void **state)
{
  const char *args[] = { REQ, NULL };
  agent_config_t cfg;
  orch_err_t err;

  assert_int_equal (parse (&cfg, &err, NULL, args), AGENT_CONFIG_RUN);
  assert_string_equal (cfg.scheduler, "10.0.0.1:7701");
  assert_string_equal (cfg.scheduler_hosts[0], "10.0.0.1");
  assert_string_equal (cfg.scheduler_ports[0], "7701");
  assert_string_equal (cfg.node_id, "node-1");
  assert_string_equal (cfg.state_dir, "/var/lib/orch");
  assert_string_equal (cfg.cgroup_parent, "orch");
  assert_string_equal (cfg.join_token, "");
  assert_null (cfg.advertise_address);
  assert_int_equal (cfg.n_labels, 0);
  assert_int_equal (cfg.reserve_cpu_milli, 0);
  assert_int_equal (cfg.reserve_memory_bytes, 0);
  assert_int_equal (cfg.heartbeat_ms, 2000);
  assert_int_equal (cfg.log_level, ORCH_LOG_INFO);
  assert_string_equal (cfg.bridge, "orch0");
  assert_string_equal (cfg.bridge_subnet, "10.88.0.0/24");
  assert_int_equal (cfg.log_max_size, 10 * 1024 * 1024);
  assert_int_equal (cfg.log_max_files, 3);
  assert_int_equal (cfg.image_gc_interval_ms, 10 * 60 * 1000);
  agent_config_clear (&cfg);
}

static void
test_flags_network_and_logs (void **state)
{
  const char *args[] = { REQ,
                         "--bridge",
                         "br-orch",
                         "--bridge-subnet",
                         "10.99.8.0/22",
                         "--log-max-size",
                         "64Ki",
                         "--log-max-files",
                         "5",
                         NULL };
  const char *none[] = { REQ, "--bridge", "none", "--log-max-size", "0", NULL };
  agent_config_t cfg;
  orch_err_t err;

  assert_int_equal (parse (&cfg, &err, NULL, args), AGENT_CONFIG_RUN);
  assert_string_equal (cfg.bridge, "br-orch");
  assert_string_equal (cfg.bridge_subnet, "10.99.8.0/22");
  assert_int_equal (cfg.log_max_size, 64 * 1024);
  assert_int_equal (cfg.log_max_files, 5);
  agent_config_clear (&cfg);
  /* No bridge network; logs never rotated. */
  assert_int_equal (parse (&cfg, &err, NULL, none), AGENT_CONFIG_RUN);
  assert_null (cfg.bridge);
  assert_int_equal (cfg.log_max_size, 0);
  agent_config_clear (&cfg);
}

static void
test_flags_all_options (void **state)
{
  const char *args[] = { "--scheduler=[fd00::1]:7701",
                         "--node-id",
                         "edge-7",
                         "--labels",
                         "zone=a,disk=ssd,topology.orch/rack=r1,empty=",
                         "--state-dir=/srv/orch/",
                         "--cgroup-parent",
                         "orch/agents",
                         "--join-token",
                         "s3cret",
                         "--advertise-address",
                         "192.168.1.5",
                         "--reserve-cpu",
                         "0.5",
                         "--reserve-memory=256Mi",
                         "--heartbeat-interval",
                         "500ms",
                         "--log-level",
                         "debug",
                         "--image-gc-interval=90s",
                         NULL };
  agent_config_t cfg;
  orch_err_t err;

  assert_int_equal (parse (&cfg, &err, "from-env", args), AGENT_CONFIG_RUN);
  assert_int_equal (cfg.image_gc_interval_ms, 90 * 1000);
  assert_string_equal (cfg.scheduler_hosts[0], "fd00::1");
  assert_string_equal (cfg.scheduler_ports[0], "7701");
  assert_string_equal (cfg.node_id, "edge-7");
  assert_int_equal (cfg.n_labels, 4);
  assert_string_equal (cfg.labels[0].key, "zone");
  assert_string_equal (cfg.labels[0].value, "a");
  assert_string_equal (cfg.labels[2].key, "topology.orch/rack");
  assert_string_equal (cfg.labels[2].value, "r1");
  assert_string_equal (cfg.labels[3].key, "empty");
  assert_string_equal (cfg.labels[3].value, "");
  assert_string_equal (cfg.state_dir, "/srv/orch"); /* trailing slash dropped */
  assert_string_equal (cfg.cgroup_parent, "orch/agents");
  assert_string_equal (cfg.join_token, "s3cret"); /* the flag wins over the environment */
  assert_string_equal (cfg.advertise_address, "192.168.1.5");
  assert_int_equal (cfg.reserve_cpu_milli, 500);
  assert_int_equal (cfg.reserve_memory_bytes, 256 * 1024 * 1024);
  assert_int_equal (cfg.heartbeat_ms, 500);
  assert_int_equal (cfg.log_level, ORCH_LOG_DEBUG);
  agent_config_clear (&cfg);
}

static void
test_flags_join_token_from_env (void **state)
{
  const char *args[] = { REQ, NULL };
  agent_config_t cfg;
  orch_err_t err;

  assert_int_equal (parse (&cfg, &err, "tok-123", args), AGENT_CONFIG_RUN);
  assert_string_equal (cfg.join_token, "tok-123");
  agent_config_clear (&cfg);
}

static void
test_flags_hostname_scheduler (void **state)
{
  const char *args[] = { "--scheduler", "scheduler.cluster.local:7701", "--node-id", "n", NULL };
  agent_config_t cfg;
  orch_err_t err;

  assert_int_equal (parse (&cfg, &err, NULL, args), AGENT_CONFIG_RUN);
  assert_string_equal (cfg.scheduler_hosts[0], "scheduler.cluster.local");
  agent_config_clear (&cfg);
}

/* Several schedulers (one leads): every address kept, in order. */
static void
test_flags_scheduler_list (void **state)
{
  const char *args[]
      = { "--scheduler", "10.0.0.1:7701,[fd00::2]:7702,sched-c:7703", "--node-id", "n", NULL };
  agent_config_t cfg;
  orch_err_t err;

  assert_int_equal (parse (&cfg, &err, NULL, args), AGENT_CONFIG_RUN);
  assert_int_equal (cfg.n_schedulers, 3);
  assert_string_equal (cfg.scheduler_hosts[0], "10.0.0.1");
  assert_string_equal (cfg.scheduler_hosts[1], "fd00::2");
  assert_string_equal (cfg.scheduler_ports[1], "7702");
  assert_string_equal (cfg.scheduler_addrs[2], "sched-c:7703");
  agent_config_clear (&cfg);
}

static void
test_flags_help_and_version (void **state)
{
  const char *help[] = { "--bogus-after-is-fine-because-help-comes-first", NULL };
  const char *h1[] = { "--help", "--bogus", NULL };
  const char *h2[] = { "-h", NULL };
  const char *v[] = { "--version", NULL };
  agent_config_t cfg;
  orch_err_t err;

  assert_int_equal (parse (&cfg, &err, NULL, h1), AGENT_CONFIG_HELP);
  agent_config_clear (&cfg);
  assert_int_equal (parse (&cfg, &err, NULL, h2), AGENT_CONFIG_HELP);
  agent_config_clear (&cfg);
  /* --version needs none of the required flags. */
  assert_int_equal (parse (&cfg, &err, NULL, v), AGENT_CONFIG_VERSION);
  agent_config_clear (&cfg);
  assert_int_equal (parse (&cfg, &err, NULL, help), -1);
  agent_config_clear (&cfg);
}

static void
test_flags_help_text_documents_every_option (void **state)
{
  static const char *const must[] = { "SYNOPSIS",
                                      "--scheduler HOST:PORT",
                                      "--node-id NAME",
                                      "--labels",
                                      "--state-dir",
                                      "/var/lib/orch",
                                      "--cgroup-parent",
                                      "--join-token",
                                      "ORCH_JOIN_TOKEN",
                                      "--advertise-address",
                                      "--reserve-cpu",
                                      "--reserve-memory",
                                      "--heartbeat-interval",
                                      "Default: 2s",
                                      "--log-level",
                                      "Default: info",
                                      "--help",
                                      "--version",
                                      "SIGTERM",
                                      "KillMode=process",
                                      "re-adopts",
                                      "--bridge NAME",
                                      "--bridge-subnet CIDR",
                                      "Default: 10.88.0.0/24",
                                      "--log-max-size SIZE",
                                      "Default: 10Mi",
                                      "--log-max-files N",
                                      "--image-gc-interval DURATION",
                                      "ORCH_IMAGE_HELPER",
                                      "EXIT STATUS" };
  const char *text = agent_usage_text ();
  size_t i;

  for (i = 0; i < sizeof (must) / sizeof (must[0]); i++)
    if (strstr (text, must[i]) == NULL)
      fail_msg ("--help does not mention \"%s\"", must[i]);
}

/* Each bad command line, with a piece of the message the user must see. */
static const struct
{
  const char *args[8];
  const char *msg;
} bad_cases[] = {
  { { "--node-id", "n1", NULL }, "--scheduler HOST:PORT is required" },
  { { "--scheduler", "h:1", NULL }, "--node-id NAME is required" },
  { { REQ, "extra", NULL }, "unexpected argument \"extra\"" },
  { { REQ, "--frobnicate", NULL }, "unknown option \"--frobnicate\"" },
  { { REQ, "--labels", NULL }, "--labels needs a value" },
  { { REQ, "--help=yes", NULL }, "--help takes no value" },
  { { "--scheduler", "10.0.0.1", "--node-id", "n", NULL }, "has no port" },
  { { "--scheduler", "10.0.0.1:0", "--node-id", "n", NULL }, "is not a port (1-65535)" },
  { { "--scheduler", "10.0.0.1:70000", "--node-id", "n", NULL }, "is not a port" },
  { { "--scheduler", "10.0.0.1:77a", "--node-id", "n", NULL }, "is not a port" },
  { { "--scheduler", ":7701", "--node-id", "n", NULL }, "has no host" },
  { { "--scheduler", "fd00::1:7701", "--node-id", "n", NULL }, "IPv6 address in brackets" },
  { { "--scheduler", "[fd00::zz]:7701", "--node-id", "n", NULL }, "is not an IPv6 address" },
  { { "--scheduler", "bad host:7701", "--node-id", "n", NULL }, "is not a host name" },
  { { "--scheduler", "a:1,,b:2", "--node-id", "n", NULL }, "has an empty address" },
  { { "--scheduler", "a:1,", "--node-id", "n", NULL }, "has an empty address" },
  { { "--scheduler", "a:1,b", "--node-id", "n", NULL }, "\"b\" has no port" },
  { { "--scheduler", "a:1,b:2,c:3,d:4,e:5,f:6,g:7,h:8,i:9", "--node-id", "n", NULL },
    "more than 8 addresses" },
  { { "--scheduler", "h:1", "--node-id", "Node_1", NULL }, "\"Node_1\" is not a DNS label" },
  { { "--scheduler", "h:1", "--node-id", "-n", NULL }, "is not a DNS label" },
  { { "--scheduler", "h:1", "--node-id", "", NULL }, "is not a DNS label" },
  { { REQ, "--labels", "=a", NULL }, "\"=a\" has an empty key" },
  { { REQ, "--labels", "zone", NULL }, "\"zone\" is not K=V" },
  { { REQ, "--labels", "a=1,,b=2", NULL }, "empty item" },
  { { REQ, "--labels", "a=1,a=2", NULL }, "key \"a\" is given twice" },
  { { REQ, "--labels", "a b=1", NULL }, "may only hold letters" },
  { { REQ, "--state-dir", "var/lib/orch", NULL }, "must be an absolute path" },
  { { REQ, "--cgroup-parent", "/orch", NULL }, "must be relative" },
  { { REQ, "--cgroup-parent", "orch/../x", NULL }, "'..' component" },
  { { REQ, "--cgroup-parent", "", NULL }, "must not be empty" },
  { { REQ, "--advertise-address", "node1.example", NULL }, "is not an IPv4 or IPv6 address" },
  { { REQ, "--reserve-cpu", "lots", NULL }, "\"lots\" is not a CPU quantity" },
  { { REQ, "--reserve-cpu", "-1", NULL }, "is negative" },
  { { REQ, "--reserve-memory", "256MB", NULL }, "\"256MB\" is not a memory quantity" },
  { { REQ, "--heartbeat-interval", "2", NULL }, "is not a duration" },
  { { REQ, "--heartbeat-interval", "10ms", NULL }, "out of range (100ms to 1m)" },
  { { REQ, "--heartbeat-interval", "2h", NULL }, "out of range" },
  { { REQ, "--image-gc-interval", "soon", NULL }, "--image-gc-interval: \"soon\" is not a duration" },
  { { REQ, "--image-gc-interval", "10ms", NULL }, "out of range (1s to 24h)" },
  { { REQ, "--log-level", "loud", NULL }, "\"loud\" is not one of debug, info, warn, error" },
  { { REQ, "--bridge", "a/b", NULL }, "is not an interface name" },
  { { REQ, "--bridge", "much-too-long-bridge", NULL }, "is not an interface name" },
  { { REQ, "--bridge-subnet", "10.88.0.0", NULL }, "is not an IPv4 CIDR" },
  { { REQ, "--bridge-subnet", "10.88.0.0/33", NULL }, "out of range" },
  { { REQ, "--bridge-subnet", "fd00::/64", NULL }, "is not an IPv4 CIDR" },
  { { REQ, "--log-max-size", "big", NULL }, "is not a size" },
  { { REQ, "--log-max-size", "100", NULL }, "below 4Ki" },
  { { REQ, "--log-max-files", "0", NULL }, "from 1 to 100" },
  { { REQ, "--log-max-files", "3x", NULL }, "from 1 to 100" },
};

static void
test_flags_bad_command_lines (void **state)
{
  size_t i;

  for (i = 0; i < sizeof (bad_cases) / sizeof (bad_cases[0]); i++)
    {
      agent_config_t cfg;
      orch_err_t err;
      int r = parse (&cfg, &err, NULL, bad_cases[i].args);

      if (r != -1)
        fail_msg ("case %zu (%s ...): accepted", i, bad_cases[i].args[0]);
      if (strstr (err.msg, bad_cases[i].msg) == NULL)
        fail_msg ("case %zu: message \"%s\" lacks \"%s\"", i, err.msg, bad_cases[i].msg);
      agent_config_clear (&cfg);
    }
}

static void
test_flags_limits (void **state)
{
  char many[AGENT_MAX_LABELS * 8 + 16] = "";
  char token[AGENT_MAX_JOIN_TOKEN + 2];
  const char *args[] = { REQ, "--labels", many, NULL };
  const char *targs[] = { REQ, "--join-token", token, NULL };
  agent_config_t cfg;
  orch_err_t err;
  int i;

  for (i = 0; i <= AGENT_MAX_LABELS; i++)
    sprintf (many + strlen (many), "%sk%d=v", i ? "," : "", i);
  assert_int_equal (parse (&cfg, &err, NULL, args), -1);
  assert_non_null (strstr (err.msg, "more than 64 labels"));
  agent_config_clear (&cfg);

  memset (token, 'x', sizeof (token) - 1);
  token[sizeof (token) - 1] = '\0';
  assert_int_equal (parse (&cfg, &err, NULL, targs), -1);
  assert_non_null (strstr (err.msg, "--join-token: longer than"));
  agent_config_clear (&cfg);

  /* The same limit holds for the token from the environment. */
  {
    const char *ok[] = { REQ, NULL };
    assert_int_equal (parse (&cfg, &err, token, ok), -1);
    assert_non_null (strstr (err.msg, "ORCH_JOIN_TOKEN"));
    agent_config_clear (&cfg);
  }
}

static const struct CMUnitTest tests[] = {
  cmocka_unit_test (test_flags_defaults),
  cmocka_unit_test (test_flags_network_and_logs),
  cmocka_unit_test (test_flags_all_options),
  cmocka_unit_test (test_flags_join_token_from_env),
  cmocka_unit_test (test_flags_hostname_scheduler),
  cmocka_unit_test (test_flags_scheduler_list),
  cmocka_unit_test (test_flags_help_and_version),
  cmocka_unit_test (test_flags_help_text_documents_every_option),
  cmocka_unit_test (test_flags_bad_command_lines),
  cmocka_unit_test (test_flags_limits),
};

ORCH_TEST_MAIN (tests)
