/* Command line of orch-agent (DESIGN.md §10). Parsed by hand rather than
 * with getopt_long so that errors are ours (one clear line each), the parser
 * keeps no global state (tests call it many times), and both "--flag value"
 * and "--flag=value" work. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "orch_quantity.h"
#include "orch_util.h"

static const char agent__usage[]
    = "NAME\n"
      "    orch-agent - the orch node agent\n"
      "\n"
      "SYNOPSIS\n"
      "    orch-agent --scheduler HOST:PORT[,...] --node-id NAME [--labels K=V,...]\n"
      "               [--state-dir DIR] [--cgroup-parent PATH] [--join-token TOKEN]\n"
      "               [--advertise-address IP] [--reserve-cpu CPU] [--reserve-memory MEM]\n"
      "               [--heartbeat-interval DURATION] [--log-level LEVEL]\n"
      "               [--bridge NAME] [--bridge-subnet CIDR]\n"
      "               [--log-max-size SIZE] [--log-max-files N]\n"
      "               [--image-budget SIZE] [--image-gc-interval DURATION]\n"
      "               [--insecure-registry HOST[:PORT]]\n"
      "               [--guest-kernel-dir DIR]\n"
      "    orch-agent --help | --version\n"
      "\n"
      "DESCRIPTION\n"
      "    orch-agent runs on every node of an orch cluster. It connects to the\n"
      "    scheduler's agent port, registers the node (its id, labels, allocatable\n"
      "    CPU and memory, available runtimes and address), sends a heartbeat with\n"
      "    the node's measured usage and the state of every allocation, and runs the\n"
      "    allocations the scheduler places on the node as containers, each in its\n"
      "    own cgroup under the cgroup parent, restarting them as their restart\n"
      "    policy says. Each allocation's stdout and stderr go to\n"
      "    DIR/allocs/ID/log, which 'orchctl logs' reads through the scheduler.\n"
      "\n"
      "    Capacity is the limit of the cgroup parent when one is set, otherwise\n"
      "    the host's CPUs and memory minus the reserves. When the connection to\n"
      "    the scheduler fails or drops, the agent keeps its workloads running and\n"
      "    reconnects with exponential backoff (200ms doubling to 10s).\n"
      "\n"
      "OPTIONS\n"
      "    --scheduler HOST:PORT[,HOST:PORT...]\n"
      "        The scheduler's agent endpoint (required), e.g. 10.0.0.1:7701,\n"
      "        [fd00::1]:7701 or scheduler.example:7701. With several schedulers\n"
      "        (one leads, the others stand by), list them all, up to 8: after a\n"
      "        failed attempt or a refusal the agent tries the next one.\n"
      "\n"
      "    --node-id NAME\n"
      "        This node's id (required): a DNS label, lower-case letters, digits\n"
      "        and '-', at most 63 characters.\n"
      "\n"
      "    --labels K=V[,K=V...]\n"
      "        Node labels that placement constraints match (label.K). Keys are\n"
      "        non-empty and unique; letters, digits, '.', '_', '-' and '/'.\n"
      "        Default: none.\n"
      "\n"
      "    --state-dir DIR\n"
      "        Absolute directory for images and allocations.\n"
      "        Default: " AGENT_DEFAULT_STATE_DIR ".\n"
      "\n"
      "    --cgroup-parent PATH\n"
      "        Cgroup, relative to each hierarchy's root, under which every\n"
      "        allocation gets its own cgroup. Default: " AGENT_DEFAULT_CGROUP_PARENT ".\n"
      "\n"
      "    --join-token TOKEN\n"
      "        Shared cluster token sent in the Hello. Default: the value of the\n"
      "        ORCH_JOIN_TOKEN environment variable, or none. Prefer the variable:\n"
      "        command lines are visible to every user of the host.\n"
      "\n"
      "    --advertise-address IP\n"
      "        Address the node's published ports are reached at. Default: the\n"
      "        local address of the connection to the scheduler.\n"
      "\n"
      "    --reserve-cpu CPU\n"
      "        CPU kept back for the system when capacity comes from the host\n"
      "        totals, in cores or millicores (0.5, 100m). Default: 0.\n"
      "\n"
      "    --reserve-memory MEM\n"
      "        Memory kept back likewise (256Mi, 1Gi). Default: 0.\n"
      "\n"
      "    --heartbeat-interval DURATION\n"
      "        Time between heartbeats, 100ms to 1m (500ms, 2s). Default: 2s.\n"
      "\n"
      "    --log-level LEVEL\n"
      "        debug, info, warn or error. Default: info.\n"
      "\n"
      "    --bridge NAME\n"
      "        The node bridge that workloads with network \"bridge\" join, created\n"
      "        when missing. Default: " AGENT_DEFAULT_BRIDGE ". When it cannot be set up the\n"
      "        agent says so and runs without it (no bridge addresses, no\n"
      "        published ports). \"none\": no bridge network (host networking only).\n"
      "\n"
      "    --bridge-subnet CIDR\n"
      "        This node's workload subnet; the bridge takes its first address.\n"
      "        Default: " AGENT_DEFAULT_BRIDGE_SUBNET ".\n"
      "\n"
      "    --log-max-size SIZE\n"
      "        An allocation's log is rotated when it grows past SIZE (checked\n"
      "        every 2s; copied to log.1 and truncated in place). 0: never.\n"
      "        Default: " AGENT_DEFAULT_LOG_MAX_SIZE_TEXT ".\n"
      "\n"
      "    --log-max-files N\n"
      "        Files kept per allocation, the live log included (log, log.1,\n"
      "        ...), 1 to 100. Default: 3.\n"
      "\n"
      "    --image-budget SIZE\n"
      "        Disk the image store may use. Every --image-gc-interval, images no\n"
      "        allocation uses are removed, least recently used first, until\n"
      "        the store is under the budget (by an orch-image process, which\n"
      "        must be next to orch-agent or named by $ORCH_IMAGE_HELPER; pulls\n"
      "        run in it too). 0 turns this off. Default: 20Gi.\n"
      "\n"
      "    --image-gc-interval DURATION\n"
      "        Time between image garbage collections, 1s to 24h. Default: 10m.\n"
      "\n"
      "    --guest-kernel-dir DIR\n"
      "        Where microVM guest kernels are (as deploy/fetch-guest-kernel.sh\n"
      "        leaves them: DIR/current names the version). The microvm runtime is\n"
      "        offered only when a kernel is there and QEMU can boot it.\n"
      "        Default: STATE_DIR/guest-kernel.\n"
      "\n"
      "    --insecure-registry HOST[:PORT]\n"
      "        A registry that may be pulled from over plain http when https\n"
      "        cannot connect (loopback registries always may).\n"
      "\n"
      "    -h, --help\n"
      "        Print this help and exit.\n"
      "\n"
      "    --version\n"
      "        Print the version and exit.\n"
      "\n"
      "SIGNALS\n"
      "    SIGTERM, SIGINT\n"
      "        Close the session and exit 0. Workloads keep running (run the agent\n"
      "        under systemd with KillMode=process). On start the agent re-adopts\n"
      "        what a previous run left in DIR/allocs: running workloads are\n"
      "        supervised again (not restarted), ended ones are reported with\n"
      "        their exit code.\n"
      "\n"
      "FILES\n"
      "    DIR/images/NAME/rootfs   imported images\n"
      "    DIR/allocs/ID/log        an allocation's stdout and stderr (log.1... rotated)\n"
      "    DIR/allocs/ID/alloc.json what re-adoption needs after an agent restart\n"
      "\n"
      "EXIT STATUS\n"
      "    0 on a clean stop, 1 when the node cannot run workloads at all,\n"
      "    2 on a usage error.\n";

const char *
agent_usage_text (void)
{
  return agent__usage;
}

static void
agent__schedulers_clear (agent_config_t *cfg)
{
  for (size_t i = 0; i < cfg->n_schedulers; i++)
    {
      free (cfg->scheduler_hosts[i]);
      free (cfg->scheduler_ports[i]);
      free (cfg->scheduler_addrs[i]);
    }
  free (cfg->scheduler_hosts);
  free (cfg->scheduler_ports);
  free (cfg->scheduler_addrs);
  free (cfg->scheduler);
  cfg->scheduler_hosts = cfg->scheduler_ports = cfg->scheduler_addrs = NULL;
  cfg->scheduler = NULL;
  cfg->n_schedulers = 0;
}

void
agent_config_clear (agent_config_t *cfg)
{
  size_t i;

  if (cfg == NULL)
    return;
  agent__schedulers_clear (cfg);
  free (cfg->node_id);
  for (i = 0; i < cfg->n_labels; i++)
    {
      free (cfg->labels[i].key);
      free (cfg->labels[i].value);
    }
  free (cfg->labels);
  free (cfg->state_dir);
  free (cfg->cgroup_parent);
  free (cfg->join_token);
  free (cfg->advertise_address);
  free (cfg->insecure_registry);
  free (cfg->guest_kernel_dir);
  free (cfg->bridge);
  free (cfg->bridge_subnet);
  memset (cfg, 0, sizeof (*cfg));
}

/* Splits "HOST:PORT", "[V6]:PORT" into *host_out and *port_out (newly
 * allocated). The host is not resolved here: the session resolves it on
 * every connection attempt, so a scheduler that moves (a container
 * restarted with a new address) is found again. */
static int
agent__parse_scheduler_one (const char *s, char **host_out, char **port_out, orch_err_t *err)
{
  const char *colon, *host, *port;
  size_t host_len;
  char *end;
  long p;

  if (s[0] == '[')
    {
      const char *close = strchr (s, ']');
      if (close == NULL || close[1] != ':')
        return orch_err_set (err, EINVAL,
                             "--scheduler: \"%s\" is not HOST:PORT ([ADDR]:PORT for IPv6)", s);
      host = s + 1;
      host_len = (size_t) (close - host);
      colon = close + 1;
      struct in6_addr a6;
      char tmp[INET6_ADDRSTRLEN];
      if (host_len == 0 || host_len >= sizeof (tmp))
        return orch_err_set (err, EINVAL, "--scheduler: \"%s\" has no valid IPv6 address", s);
      memcpy (tmp, host, host_len);
      tmp[host_len] = '\0';
      if (inet_pton (AF_INET6, tmp, &a6) != 1)
        return orch_err_set (err, EINVAL, "--scheduler: \"%s\" is not an IPv6 address", tmp);
    }
  else
    {
      colon = strrchr (s, ':');
      if (colon == NULL)
        return orch_err_set (
            err, EINVAL, "--scheduler: \"%s\" has no port; use HOST:PORT, e.g. 10.0.0.1:7701", s);
      if (memchr (s, ':', (size_t) (colon - s)) != NULL)
        return orch_err_set (
            err, EINVAL, "--scheduler: \"%s\": write an IPv6 address in brackets, [ADDR]:PORT", s);
      host = s;
      host_len = (size_t) (colon - s);
      if (host_len == 0)
        return orch_err_set (err, EINVAL, "--scheduler: \"%s\" has no host", s);
      if (host_len > 253)
        return orch_err_set (err, EINVAL, "--scheduler: host name is longer than 253 characters");
      for (size_t i = 0; i < host_len; i++)
        {
          char c = host[i];
          if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                || c == '-' || c == '.' || c == '_'))
            return orch_err_set (err, EINVAL, "--scheduler: \"%.*s\" is not a host name or address",
                                 (int) host_len, host);
        }
    }
  port = colon + 1;
  errno = 0;
  p = strtol (port, &end, 10);
  if (port[0] == '\0' || port[0] == '+' || port[0] == '-' || *end != '\0' || errno != 0 || p < 1
      || p > 65535)
    return orch_err_set (err, EINVAL, "--scheduler: \"%s\" is not a port (1-65535)", port);

  *host_out = xstrndup (host, host_len);
  *port_out = xasprintf ("%ld", p);
  return 0;
}

/* "ADDR[,ADDR...]" (at most AGENT_MAX_SCHEDULERS). */
static int
agent__parse_scheduler (const char *list, agent_config_t *cfg, orch_err_t *err)
{
  cleanup_free char *copy = xstrdup (list);
  char *save = NULL;
  size_t n = 0;

  if (*list == '\0' || list[strlen (list) - 1] == ',' || list[0] == ',' || strstr (list, ",,"))
    return orch_err_set (err, EINVAL, "--scheduler: \"%s\" has an empty address", list);
  cfg->scheduler_hosts = xcalloc (AGENT_MAX_SCHEDULERS, sizeof (char *));
  cfg->scheduler_ports = xcalloc (AGENT_MAX_SCHEDULERS, sizeof (char *));
  cfg->scheduler_addrs = xcalloc (AGENT_MAX_SCHEDULERS, sizeof (char *));
  for (char *one = strtok_r (copy, ",", &save); one != NULL; one = strtok_r (NULL, ",", &save))
    {
      if (n == AGENT_MAX_SCHEDULERS)
        return orch_err_set (err, EINVAL, "--scheduler: more than %d addresses",
                             AGENT_MAX_SCHEDULERS);
      if (agent__parse_scheduler_one (one, &cfg->scheduler_hosts[n], &cfg->scheduler_ports[n],
                                      err)
          < 0)
        return -1;
      cfg->scheduler_addrs[n] = xstrdup (one);
      cfg->n_schedulers = ++n;
    }
  cfg->scheduler = xstrdup (list);
  return 0;
}

static bool
agent__label_key_ok (const char *k, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++)
    {
      char c = k[i];
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.'
            || c == '_' || c == '-' || c == '/'))
        return false;
    }
  return true;
}

/* "k=v,k2=v2". Values may be empty ("k=") but not contain ','. */
static int
agent__parse_labels (const char *s, agent_config_t *cfg, orch_err_t *err)
{
  const char *p = s;
  size_t cap = 0;

  if (*s == '\0')
    return 0;
  for (;;)
    {
      const char *end = strchr (p, ',');
      size_t n = end ? (size_t) (end - p) : strlen (p);
      const char *eq = memchr (p, '=', n);
      size_t klen, vlen, i;

      if (n == 0)
        return orch_err_set (err, EINVAL, "--labels: empty item in \"%s\"; use K=V,K=V", s);
      if (eq == NULL)
        return orch_err_set (err, EINVAL, "--labels: \"%.*s\" is not K=V", (int) n, p);
      klen = (size_t) (eq - p);
      vlen = n - klen - 1;
      if (klen == 0)
        return orch_err_set (err, EINVAL, "--labels: \"%.*s\" has an empty key", (int) n, p);
      if (klen > AGENT_MAX_LABEL_KEY)
        return orch_err_set (err, EINVAL, "--labels: key \"%.20s...\" is longer than %d characters",
                             p, AGENT_MAX_LABEL_KEY);
      if (!agent__label_key_ok (p, klen))
        return orch_err_set (
            err, EINVAL, "--labels: key \"%.*s\" may only hold letters, digits, '.', '_', '-', '/'",
            (int) klen, p);
      if (vlen > AGENT_MAX_LABEL_VALUE)
        return orch_err_set (err, EINVAL,
                             "--labels: value of \"%.*s\" is longer than %d characters", (int) klen,
                             p, AGENT_MAX_LABEL_VALUE);
      for (i = 0; i < cfg->n_labels; i++)
        if (strlen (cfg->labels[i].key) == klen && memcmp (cfg->labels[i].key, p, klen) == 0)
          return orch_err_set (err, EINVAL, "--labels: key \"%.*s\" is given twice", (int) klen, p);
      if (cfg->n_labels >= AGENT_MAX_LABELS)
        return orch_err_set (err, EINVAL, "--labels: more than %d labels", AGENT_MAX_LABELS);
      orch_grow ((void **) &cfg->labels, &cap, cfg->n_labels + 1, sizeof (agent_label_t));
      cfg->labels[cfg->n_labels].key = xstrndup (p, klen);
      cfg->labels[cfg->n_labels].value = xstrndup (eq + 1, vlen);
      cfg->n_labels++;
      if (end == NULL)
        break;
      p = end + 1;
    }
  return 0;
}

static int
agent__parse_cgroup_parent (const char *s, agent_config_t *cfg, orch_err_t *err)
{
  const char *p;

  if (*s == '\0')
    return orch_err_set (err, EINVAL, "--cgroup-parent: must not be empty");
  if (s[0] == '/')
    return orch_err_set (
        err, EINVAL, "--cgroup-parent: \"%s\" must be relative to the cgroup root (e.g. orch)", s);
  if (strlen (s) > 255)
    return orch_err_set (err, EINVAL, "--cgroup-parent: longer than 255 characters");
  for (p = s; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')
          || *p == '.' || *p == '_' || *p == '-' || *p == '/'))
      return orch_err_set (err, EINVAL,
                           "--cgroup-parent: \"%s\" holds '%c'; use letters, digits, "
                           "'.', '_', '-' and '/'",
                           s, *p);
  /* Every component must be a real name: no "..", ".", or empty ones. */
  p = s;
  while (*p)
    {
      const char *e = strchr (p, '/');
      size_t n = e ? (size_t) (e - p) : strlen (p);
      if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
        return orch_err_set (err, EINVAL,
                             "--cgroup-parent: \"%s\" has an empty, '.' or '..' component", s);
      if (e == NULL)
        break;
      p = e + 1;
      if (*p == '\0')
        return orch_err_set (err, EINVAL, "--cgroup-parent: \"%s\" ends with '/'", s);
    }
  free (cfg->cgroup_parent);
  cfg->cgroup_parent = xstrdup (s);
  return 0;
}

/* A non-negative quantity; zero is a valid reserve. */
static int
agent__parse_reserve (const char *flag, const char *s, bool cpu, int64_t *out, orch_err_t *err)
{
  int r = cpu ? orch_parse_cpu_milli (s, out) : orch_parse_memory_bytes (s, out);

  if (r < 0)
    return orch_err_set (err, EINVAL, "%s: \"%s\" is not a %s", flag, s,
                         cpu ? "CPU quantity; use cores (0.5) or millicores (100m)"
                             : "memory quantity; use Ki, Mi or Gi (256Mi)");
  if (*out < 0)
    return orch_err_set (err, EINVAL, "%s: \"%s\" is negative", flag, s);
  return 0;
}

/* A duration within [min_ms, max_ms]; range names the bounds for people. */
static int
agent__parse_duration (const char *flag, const char *s, int64_t min_ms, int64_t max_ms,
                       const char *range, int64_t *out, orch_err_t *err)
{
  int64_t ms;
  if (orch_parse_duration_ms (s, &ms) < 0)
    return orch_err_set (err, EINVAL, "%s: \"%s\" is not a duration (500ms, 2s, 10m)", flag, s);
  if (ms < min_ms || ms > max_ms)
    return orch_err_set (err, EINVAL, "%s: %s is out of range (%s)", flag, s, range);
  *out = ms;
  return 0;
}

typedef enum
{
  AGENT__F_SCHEDULER,
  AGENT__F_NODE_ID,
  AGENT__F_LABELS,
  AGENT__F_STATE_DIR,
  AGENT__F_CGROUP_PARENT,
  AGENT__F_JOIN_TOKEN,
  AGENT__F_ADVERTISE,
  AGENT__F_RESERVE_CPU,
  AGENT__F_RESERVE_MEM,
  AGENT__F_HEARTBEAT,
  AGENT__F_LOG_LEVEL,
  AGENT__F_BRIDGE,
  AGENT__F_BRIDGE_SUBNET,
  AGENT__F_LOG_MAX_SIZE,
  AGENT__F_LOG_MAX_FILES,
  AGENT__F_IMAGE_BUDGET,
  AGENT__F_IMAGE_GC_INTERVAL,
  AGENT__F_INSECURE_REGISTRY,
  AGENT__F_GUEST_KERNEL_DIR,
  AGENT__F_HELP,
  AGENT__F_VERSION,
} agent__flag_id_t;

static const struct
{
  const char *name;
  agent__flag_id_t id;
  bool has_arg;
} agent__flags[] = {
  { "--scheduler", AGENT__F_SCHEDULER, true },
  { "--node-id", AGENT__F_NODE_ID, true },
  { "--labels", AGENT__F_LABELS, true },
  { "--state-dir", AGENT__F_STATE_DIR, true },
  { "--cgroup-parent", AGENT__F_CGROUP_PARENT, true },
  { "--join-token", AGENT__F_JOIN_TOKEN, true },
  { "--advertise-address", AGENT__F_ADVERTISE, true },
  { "--reserve-cpu", AGENT__F_RESERVE_CPU, true },
  { "--reserve-memory", AGENT__F_RESERVE_MEM, true },
  { "--heartbeat-interval", AGENT__F_HEARTBEAT, true },
  { "--log-level", AGENT__F_LOG_LEVEL, true },
  { "--bridge", AGENT__F_BRIDGE, true },
  { "--bridge-subnet", AGENT__F_BRIDGE_SUBNET, true },
  { "--log-max-size", AGENT__F_LOG_MAX_SIZE, true },
  { "--log-max-files", AGENT__F_LOG_MAX_FILES, true },
  { "--image-budget", AGENT__F_IMAGE_BUDGET, true },
  { "--image-gc-interval", AGENT__F_IMAGE_GC_INTERVAL, true },
  { "--insecure-registry", AGENT__F_INSECURE_REGISTRY, true },
  { "--guest-kernel-dir", AGENT__F_GUEST_KERNEL_DIR, true },
  { "--help", AGENT__F_HELP, false },
  { "-h", AGENT__F_HELP, false },
  { "--version", AGENT__F_VERSION, false },
};

static int
agent__apply_flag (agent__flag_id_t id, const char *name, const char *v, agent_config_t *cfg,
                   bool *seen_labels, orch_err_t *err)
{
  switch (id)
    {
    case AGENT__F_SCHEDULER:
      agent__schedulers_clear (cfg);
      return agent__parse_scheduler (v, cfg, err);

    case AGENT__F_NODE_ID:
      if (!orch_is_dns_label (v))
        return orch_err_set (err, EINVAL,
                             "--node-id: \"%s\" is not a DNS label (lower-case letters, digits and "
                             "'-', not at either end, at most 63 characters)",
                             v);
      free (cfg->node_id);
      cfg->node_id = xstrdup (v);
      return 0;

    case AGENT__F_LABELS:
      if (*seen_labels)
        return orch_err_set (err, EINVAL,
                             "--labels: given twice; list every label in one --labels K=V,K=V");
      *seen_labels = true;
      return agent__parse_labels (v, cfg, err);

    case AGENT__F_STATE_DIR:
      if (v[0] != '/')
        return orch_err_set (err, EINVAL, "--state-dir: \"%s\" must be an absolute path", v);
      if (strlen (v) > 1024)
        return orch_err_set (err, EINVAL, "--state-dir: longer than 1024 characters");
      free (cfg->state_dir);
      cfg->state_dir = xstrdup (v);
      /* Trailing slashes would double up in every path built from it. */
      for (size_t n = strlen (cfg->state_dir); n > 1 && cfg->state_dir[n - 1] == '/'; n--)
        cfg->state_dir[n - 1] = '\0';
      return 0;

    case AGENT__F_CGROUP_PARENT:
      return agent__parse_cgroup_parent (v, cfg, err);

    case AGENT__F_JOIN_TOKEN:
      if (strlen (v) > AGENT_MAX_JOIN_TOKEN)
        return orch_err_set (err, EINVAL, "--join-token: longer than %d characters",
                             AGENT_MAX_JOIN_TOKEN);
      free (cfg->join_token);
      cfg->join_token = xstrdup (v);
      return 0;

    case AGENT__F_ADVERTISE:
      {
        unsigned char buf[sizeof (struct in6_addr)];
        if (inet_pton (AF_INET, v, buf) != 1 && inet_pton (AF_INET6, v, buf) != 1)
          return orch_err_set (err, EINVAL,
                               "--advertise-address: \"%s\" is not an IPv4 or IPv6 address", v);
        free (cfg->advertise_address);
        cfg->advertise_address = xstrdup (v);
        return 0;
      }

    case AGENT__F_RESERVE_CPU:
      return agent__parse_reserve (name, v, true, &cfg->reserve_cpu_milli, err);

    case AGENT__F_RESERVE_MEM:
      return agent__parse_reserve (name, v, false, &cfg->reserve_memory_bytes, err);

    case AGENT__F_HEARTBEAT:
      return agent__parse_duration (name, v, AGENT_MIN_HEARTBEAT_MS, AGENT_MAX_HEARTBEAT_MS,
                                    "100ms to 1m", &cfg->heartbeat_ms, err);

    case AGENT__F_LOG_LEVEL:
      if (orch_log_level_parse (v, &cfg->log_level) < 0)
        return orch_err_set (err, EINVAL,
                             "--log-level: \"%s\" is not one of debug, info, warn, error", v);
      return 0;

    case AGENT__F_BRIDGE:
      {
        /* A Linux interface name: 1..15 bytes, no '/', no space, not . or .. */
        size_t n = strlen (v);
        if (strcmp (v, "none") == 0)
          {
            /* No bridge network at all: host networking only. */
            free (cfg->bridge);
            cfg->bridge = NULL;
            return 0;
          }
        if (n == 0 || n > 15 || strpbrk (v, "/ \t\n:") != NULL || strcmp (v, ".") == 0
            || strcmp (v, "..") == 0)
          return orch_err_set (err, EINVAL,
                               "--bridge: \"%s\" is not an interface name (1-15 characters, no "
                               "'/', ':' or spaces)",
                               v);
        free (cfg->bridge);
        cfg->bridge = xstrdup (v);
        return 0;
      }

    case AGENT__F_BRIDGE_SUBNET:
      {
        char addr[INET_ADDRSTRLEN];
        struct in_addr in;
        const char *slash = strchr (v, '/');
        char *end;
        long prefix;
        if (slash == NULL || (size_t) (slash - v) >= sizeof (addr))
          return orch_err_set (err, EINVAL,
                               "--bridge-subnet: \"%s\" is not an IPv4 CIDR such as "
                               "10.88.0.0/24",
                               v);
        memcpy (addr, v, (size_t) (slash - v));
        addr[slash - v] = '\0';
        prefix = strtol (slash + 1, &end, 10);
        if (inet_pton (AF_INET, addr, &in) != 1 || *end != '\0' || end == slash + 1)
          return orch_err_set (err, EINVAL,
                               "--bridge-subnet: \"%s\" is not an IPv4 CIDR such as "
                               "10.88.0.0/24",
                               v);
        if (prefix < 8 || prefix > 30)
          return orch_err_set (err, EINVAL,
                               "--bridge-subnet: prefix /%ld is out of range (/8 to /30)", prefix);
        free (cfg->bridge_subnet);
        cfg->bridge_subnet = xstrdup (v);
        return 0;
      }

    case AGENT__F_LOG_MAX_SIZE:
      if (orch_parse_memory_bytes (v, &cfg->log_max_size) < 0 || cfg->log_max_size < 0)
        return orch_err_set (err, EINVAL,
                             "--log-max-size: \"%s\" is not a size; use Ki, Mi or Gi (10Mi), "
                             "or 0 for no limit",
                             v);
      if (cfg->log_max_size > 0 && cfg->log_max_size < 4096)
        return orch_err_set (err, EINVAL, "--log-max-size: %s is below 4Ki", v);
      return 0;

    case AGENT__F_LOG_MAX_FILES:
      {
        char *end;
        long n = strtol (v, &end, 10);
        if (*end != '\0' || end == v || n < 1 || n > AGENT_MAX_LOG_FILES)
          return orch_err_set (err, EINVAL, "--log-max-files: \"%s\" is not a number from 1 to %d",
                               v, AGENT_MAX_LOG_FILES);
        cfg->log_max_files = n;
        return 0;
      }

    case AGENT__F_IMAGE_BUDGET:
      if (orch_parse_memory_bytes (v, &cfg->image_budget) < 0 || cfg->image_budget < 0)
        return orch_err_set (err, EINVAL,
                             "--image-budget: \"%s\" is not a size; use Mi or Gi (20Gi), or 0 "
                             "to keep every image",
                             v);
      return 0;

    case AGENT__F_IMAGE_GC_INTERVAL:
      return agent__parse_duration (name, v, AGENT_MIN_IMAGE_GC_MS, AGENT_MAX_IMAGE_GC_MS,
                                    "1s to 24h", &cfg->image_gc_interval_ms, err);

    case AGENT__F_INSECURE_REGISTRY:
      if (*v == '\0' || strlen (v) > 255 || strpbrk (v, "/ \t") != NULL)
        return orch_err_set (err, EINVAL,
                             "--insecure-registry: \"%s\" is not HOST or HOST:PORT", v);
      free (cfg->insecure_registry);
  free (cfg->guest_kernel_dir);
      cfg->insecure_registry = xstrdup (v);
      return 0;

    case AGENT__F_GUEST_KERNEL_DIR:
      if (v[0] != '/')
        return orch_err_set (err, EINVAL, "--guest-kernel-dir: \"%s\" is not an absolute path", v);
      free (cfg->guest_kernel_dir);
      cfg->guest_kernel_dir = xstrdup (v);
      return 0;

    case AGENT__F_HELP:
    case AGENT__F_VERSION:
      break;
    }
  return 0;
}

static int
agent__config_parse (int argc, char *const *argv, const char *env_join_token, agent_config_t *cfg,
                     orch_err_t *err)
{
  bool seen_labels = false;
  int action = AGENT_CONFIG_RUN;
  int i;

  memset (cfg, 0, sizeof (*cfg));
  cfg->state_dir = xstrdup (AGENT_DEFAULT_STATE_DIR);
  cfg->cgroup_parent = xstrdup (AGENT_DEFAULT_CGROUP_PARENT);
  cfg->heartbeat_ms = AGENT_DEFAULT_HEARTBEAT_MS;
  cfg->log_level = ORCH_LOG_INFO;
  cfg->bridge = xstrdup (AGENT_DEFAULT_BRIDGE);
  cfg->bridge_subnet = xstrdup (AGENT_DEFAULT_BRIDGE_SUBNET);
  cfg->log_max_size = 10 * 1024 * 1024;
  cfg->log_max_files = 3;
  cfg->image_budget = 20LL * 1024 * 1024 * 1024;
  cfg->image_gc_interval_ms = AGENT_DEFAULT_IMAGE_GC_MS;

  for (i = 1; i < argc; i++)
    {
      const char *arg = argv[i];
      const char *eq, *value = NULL;
      size_t name_len, k;
      bool found = false;

      if (arg[0] != '-')
        return orch_err_set (err, EINVAL, "unexpected argument \"%s\"", arg);
      eq = strchr (arg, '=');
      name_len = eq ? (size_t) (eq - arg) : strlen (arg);
      for (k = 0; k < ORCH_ARRAY_LEN (agent__flags); k++)
        {
          if (strlen (agent__flags[k].name) != name_len
              || memcmp (agent__flags[k].name, arg, name_len) != 0)
            continue;
          found = true;
          if (agent__flags[k].has_arg)
            {
              if (eq)
                value = eq + 1;
              else if (i + 1 < argc)
                value = argv[++i];
              else
                return orch_err_set (err, EINVAL, "%s needs a value", agent__flags[k].name);
            }
          else if (eq)
            return orch_err_set (err, EINVAL, "%s takes no value", agent__flags[k].name);

          if (agent__flags[k].id == AGENT__F_HELP)
            return AGENT_CONFIG_HELP; /* --help wins over everything, even bad flags after it */
          if (agent__flags[k].id == AGENT__F_VERSION)
            action = AGENT_CONFIG_VERSION;
          else if (agent__apply_flag (agent__flags[k].id, agent__flags[k].name, value, cfg,
                                      &seen_labels, err)
                   < 0)
            return -1;
          break;
        }
      if (!found)
        return orch_err_set (err, EINVAL, "unknown option \"%.*s\"", (int) name_len, arg);
    }

  if (action == AGENT_CONFIG_VERSION)
    return action;

  if (cfg->join_token == NULL)
    {
      if (env_join_token != NULL && strlen (env_join_token) > AGENT_MAX_JOIN_TOKEN)
        return orch_err_set (err, EINVAL, "ORCH_JOIN_TOKEN: longer than %d characters",
                             AGENT_MAX_JOIN_TOKEN);
      cfg->join_token = xstrdup (env_join_token ? env_join_token : "");
    }
  if (cfg->scheduler == NULL)
    return orch_err_set (err, EINVAL, "--scheduler HOST:PORT is required");
  if (cfg->node_id == NULL)
    return orch_err_set (err, EINVAL, "--node-id NAME is required");
  return AGENT_CONFIG_RUN;
}

int
agent_config_parse (int argc, char *const *argv, const char *env_join_token, agent_config_t *cfg,
                    orch_err_t *err)
{
  /* orch_err_set returns -errno; the contract here is plain -1. */
  int r = agent__config_parse (argc, argv, env_join_token, cfg, err);
  return r < 0 ? -1 : r;
}
