/* The service spec (DESIGN.md §3): parsing and validation with JSON paths.
 *
 * One file holds one service object or {"services": [...]}. Validation
 * reports every problem with its path ("services[1].resources.memory: ...")
 * and the parse is all-or-nothing: on any error no spec is returned. */
#ifndef ORCH_SPEC_H
#define ORCH_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "orch_err.h"

#define ORCH_SPEC_MAX_BYTES (1024 * 1024) /* a spec file larger than this is refused */
#define ORCH_SPEC_MAX_SERVICES 128 /* one etcd transaction stores them all */
#define ORCH_SPEC_MAX_REPLICAS 10000

typedef enum
{
  ORCH_ISO_CONTAINER = 0,
  ORCH_ISO_MICROVM,
  ORCH_ISO_AUTO,
} orch_isolation_t;

typedef enum
{
  ORCH_NET_BRIDGE = 0,
  ORCH_NET_HOST,
} orch_network_t;

typedef enum
{
  ORCH_RESTART_NEVER = 0,
  ORCH_RESTART_ON_FAILURE,
  ORCH_RESTART_ALWAYS,
} orch_restart_policy_t;

typedef enum
{
  ORCH_OP_EQ = 0,
  ORCH_OP_NE,
  ORCH_OP_IN,
  ORCH_OP_NOT_IN,
  ORCH_OP_EXISTS,
} orch_constraint_op_t;

typedef struct orch_port_s
{
  char *name;     /* optional, may be NULL */
  uint16_t port;  /* port inside the workload */
  char *protocol; /* "tcp" (default) or "udp" */
} orch_port_t;

typedef struct orch_constraint_s
{
  char *attribute; /* "label.zone", "node.id", ... */
  orch_constraint_op_t op;
  char **values; /* one for = and !=, several for in/not_in, none for exists */
  size_t n_values;
} orch_constraint_t;

typedef struct orch_health_s
{
  bool set;
  char **exec; /* argv, NULL-terminated, or NULL */
  uint16_t tcp_port;
  char *http_path; /* with http_port */
  uint16_t http_port;
  int64_t interval_ms;
  int64_t timeout_ms;
  uint32_t failure_threshold;
} orch_health_t;

typedef struct orch_spec_s
{
  char *name;
  char *tenant; /* "default" when absent */
  uint32_t replicas;
  orch_isolation_t isolation;
  bool untrusted;
  char *image;
  char **command; /* argv, NULL-terminated; NULL = the image's default (/bin/sh) */
  char **env;     /* "KEY=VALUE", NULL-terminated, sorted by key; may be NULL */
  int64_t cpu_milli;
  int64_t memory_bytes;
  orch_port_t *ports;
  size_t n_ports;
  orch_network_t network;
  orch_constraint_t *constraints;
  size_t n_constraints;
  bool spread;
  orch_restart_policy_t restart_policy;
  uint32_t max_restarts;
  int64_t restart_backoff_ms;
  orch_health_t health;
  uint32_t update_max_parallel;
  int64_t stop_grace_ms; /* "stop_grace": default 10s */
  bool user_namespace;
  int64_t pids_max;      /* resources.pids; 0 = the runtime's default */
  char **seccomp_allow;  /* seccomp.allow: system calls the default filter would deny; NULL-terminated */
  char **seccomp_deny;   /* seccomp.deny: more system calls to deny; NULL-terminated */
  char *json; /* canonical JSON of this one service (sorted keys, compact); owned */
} orch_spec_t;

/* Parses and validates a whole document. On success returns 0 and stores a
 * newly allocated array of *n specs in *out (free with orch_specs_free). On
 * failure returns -1, stores nothing, and adds one line per problem to errs. */
int orch_spec_parse_doc (json_t *doc, orch_spec_t **out, size_t *n, orch_errlist_t *errs);

/* Same, from text (a JSON syntax error is reported with line and column). */
int orch_spec_parse_text (const char *text, size_t len, orch_spec_t **out, size_t *n,
                          orch_errlist_t *errs);

/* Parses one service's canonical JSON (as stored in etcd / sent to agents). */
int orch_spec_parse_one (const char *json_text, orch_spec_t *out, orch_errlist_t *errs);

void orch_spec_clear (orch_spec_t *s);
void orch_specs_free (orch_spec_t *specs, size_t n);

const char *orch_isolation_name (orch_isolation_t iso);
const char *orch_restart_policy_name (orch_restart_policy_t p);

#endif
