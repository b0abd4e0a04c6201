/* orch-agent, the node daemon (DESIGN.md §1, §7, §8, §10): one libuv loop
 * that keeps a session with the scheduler, reports the node's capacity and
 * usage, and supervises the allocations the scheduler places on this node.
 *
 * main.c is thin: agent_config_parse, agent_new, agent_run, agent_free. */
#ifndef ORCH_AGENT_H
#define ORCH_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "orch_err.h"
#include "orch_log.h"

#ifndef ORCH_AGENT_VERSION
#define ORCH_AGENT_VERSION "0.1.0"
#endif

#define AGENT_DEFAULT_STATE_DIR "/var/lib/orch"
#define AGENT_DEFAULT_CGROUP_PARENT "orch"
#define AGENT_DEFAULT_HEARTBEAT_MS 2000
#define AGENT_MIN_HEARTBEAT_MS 100
#define AGENT_MAX_HEARTBEAT_MS 60000
#define AGENT_DEFAULT_IMAGE_GC_MS (10 * 60 * 1000)
#define AGENT_MIN_IMAGE_GC_MS 1000
#define AGENT_MAX_IMAGE_GC_MS (24LL * 3600 * 1000)
#define AGENT_MAX_LABELS 64
#define AGENT_MAX_SCHEDULERS 8
#define AGENT_MAX_LABEL_KEY 253
#define AGENT_MAX_LABEL_VALUE 256
#define AGENT_MAX_JOIN_TOKEN 1024
#define AGENT_DEFAULT_BRIDGE "orch0"
#define AGENT_DEFAULT_BRIDGE_SUBNET "10.88.0.0/24"
#define AGENT_DEFAULT_LOG_MAX_SIZE_TEXT "10Mi"
#define AGENT_MAX_LOG_FILES 100

typedef struct agent_label_s
{
  char *key;
  char *value;
} agent_label_t;

/* Everything the command line decides. Strings are owned (agent_config_clear). */
typedef struct agent_config_s
{
  char *scheduler;       /* "HOST:PORT[,HOST:PORT...]" as given */
  /* Every scheduler address, at least one: the session tries the next one
   * after each failed attempt, so that it finds the leader among several
   * schedulers (a standby refuses it). */
  char **scheduler_hosts; /* HOST without brackets */
  char **scheduler_ports; /* PORT, 1..65535 */
  char **scheduler_addrs; /* "HOST:PORT" each, for messages */
  size_t n_schedulers;
  char *node_id;         /* a DNS label */
  agent_label_t *labels; /* keys unique, in the order given */
  size_t n_labels;
  char *state_dir;         /* absolute */
  char *cgroup_parent;     /* relative, e.g. "orch" */
  char *join_token;        /* "" when none */
  char *advertise_address; /* an IP literal, or NULL: the local address of the session */
  int64_t reserve_cpu_milli;
  int64_t reserve_memory_bytes;
  int64_t heartbeat_ms;
  orch_log_level_t log_level;
  char *bridge;          /* node bridge name, default "orch0" */
  char *bridge_subnet;   /* CIDR, default "10.88.0.0/24" */
  int64_t log_max_size;  /* bytes before an allocation's log is rotated; 0 = never */
  int64_t log_max_files; /* the log and its rotated copies, 1..100 */
  int64_t image_budget;  /* bytes the image store may use before unused images go; 0 = no GC */
  int64_t image_gc_interval_ms; /* between image GCs */
  char *insecure_registry; /* "host[:port]" that may be pulled from over plain http, or NULL */
  char *guest_kernel_dir;  /* microVM guest kernels, or NULL: <state-dir>/guest-kernel */
} agent_config_t;

typedef enum
{
  AGENT_CONFIG_RUN = 0, /* run the daemon */
  AGENT_CONFIG_HELP,    /* --help: print agent_usage_text() to stdout, exit 0 */
  AGENT_CONFIG_VERSION, /* --version */
} agent_config_action_t;

/* Parses argv (argv[0] is the program name). env_join_token is the value of
 * ORCH_JOIN_TOKEN (or NULL); --join-token wins over it. Returns an action
 * (>= 0), or -1 with err holding a one-line message for the user (a usage
 * error: the caller prints it and exits 2). cfg is filled with defaults
 * first; clear it with agent_config_clear whatever the result. */
int agent_config_parse (int argc, char *const *argv, const char *env_join_token,
                        agent_config_t *cfg, orch_err_t *err);
void agent_config_clear (agent_config_t *cfg);

/* The --help text (static storage). */
const char *agent_usage_text (void);

typedef struct agent_s agent_t;

/* Builds the agent on loop: probes cgroups, the node network and runtimes,
 * reads the host's totals, re-adopts what a previous run left running in
 * <state>/allocs (and clears what cannot be re-adopted), installs the signal
 * handlers and starts connecting. cfg is borrowed and must outlive the
 * agent. Returns NULL with err when the node cannot run workloads at all. */
agent_t *agent_new (uv_loop_t *loop, const agent_config_t *cfg, orch_err_t *err);

/* Runs the loop until SIGTERM/SIGINT (or agent_shutdown). Workloads are left
 * running. Returns the process exit code (0). */
int agent_run (agent_t *a);

/* Asks the agent to stop: closes the session, stops timers, closes every
 * handle; uv_run returns once they are closed. Idempotent. */
void agent_shutdown (agent_t *a, const char *why);

/* Frees an agent whose loop has finished. NULL is fine. */
void agent_free (agent_t *a);

#endif
