/* orchctl's output: tables, describe pages and JSON documents built from
 * constructed replies, compared with the exact text users and scripts see. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orch_test.h"

#include "cli.h"

#define NOW_MS 1700000000000LL

/* Captures what a printer writes. */
typedef struct capture_s
{
  FILE *f;
  char *buf;
  size_t len;
} capture_t;

static void
cap_open (capture_t *c)
{
  c->buf = NULL;
  c->len = 0;
  c->f = open_memstream (&c->buf, &c->len);
  assert_non_null (c->f);
}

static char *
cap_close (capture_t *c)
{
  fclose (c->f);
  return c->buf;
}

/* ---- Fixtures --------------------------------------------------------------- */

typedef struct services_s
{
  Orch__ServiceInfo web, api;
  Orch__ServiceInfo *list[2];
  Orch__GetReply reply;
} services_t;

static void
services_init (services_t *s)
{
  Orch__ServiceInfo init = ORCH__SERVICE_INFO__INIT;
  Orch__GetReply rinit = ORCH__GET_REPLY__INIT;

  s->web = init;
  s->web.name = "web";
  s->web.tenant = "acme";
  s->web.replicas = 3;
  s->web.isolation = "container";
  s->web.image = "busybox";
  s->web.version = 4;
  s->web.running = 2;
  s->web.pending = 1;
  s->web.pending_reason = "0/3 nodes: 3 insufficient memory";
  s->web.cpu_milli = 250;
  s->web.memory_bytes = 64 << 20;
  s->web.spec_json = "{\"name\":\"web\",\"replicas\":3}";

  s->api = init;
  s->api.name = "api";
  s->api.tenant = "default";
  s->api.replicas = 1;
  s->api.isolation = "microvm";
  s->api.image = "alpine";
  s->api.version = 12;
  s->api.running = 1;
  s->api.cpu_milli = 1500;
  s->api.memory_bytes = 1 << 30;

  /* Unsorted on purpose: the output is sorted by name. */
  s->list[0] = &s->web;
  s->list[1] = &s->api;
  s->reply = rinit;
  s->reply.n_services = 2;
  s->reply.services = s->list;
}

typedef struct allocs_s
{
  Orch__AllocStatus st1, st2, st3;
  Orch__AllocInfo a1, a2, a3, a4;
  Orch__AllocInfo *list[4];
  Orch__PortMapping port1;
  Orch__PortMapping *ports1[1];
  Orch__GetReply reply;
} allocs_t;

static void
allocs_init (allocs_t *x)
{
  Orch__AllocStatus sinit = ORCH__ALLOC_STATUS__INIT;
  Orch__AllocInfo ainit = ORCH__ALLOC_INFO__INIT;
  Orch__GetReply rinit = ORCH__GET_REPLY__INIT;

  x->st1 = sinit;
  x->st1.alloc_id = "web-0a1b2c3d";
  x->st1.state = "running";
  x->st1.memory_bytes = 3 * 1024 * 1024 + 512 * 1024; /* 3.5Mi */
  x->st1.cpu_usec = 1250000;                          /* 1.25 s */
  x->st1.pid = 4242;
  x->st1.restarts = 1;

  x->st2 = sinit;
  x->st2.alloc_id = "web-ffff0000";
  x->st2.state = "exited";
  x->st2.exit_code = 3;
  x->st2.reason = "exited with code 3";
  x->st2.cpu_usec = 75 * 1000000LL; /* 1m15s */

  x->st3 = sinit;
  x->st3.alloc_id = "api-12345678";
  x->st3.state = "running";

  x->a1 = ainit;
  x->a1.alloc_id = "web-0a1b2c3d";
  x->a1.service = "web";
  x->a1.node = "n1";
  x->a1.isolation = "container";
  x->a1.reason = "best fit";
  x->a1.desired = "run";
  x->a1.status = &x->st1;
  x->a1.spec_version = 4;
  x->a1.created_at_ms = NOW_MS - 45 * 1000;
  /* One published port: shown where a client reaches it. */
  orch__port_mapping__init (&x->port1);
  x->port1.name = "http";
  x->port1.port = 8080;
  x->port1.host_port = 30001;
  x->port1.protocol = "tcp";
  x->ports1[0] = &x->port1;
  x->a1.ports = x->ports1;
  x->a1.n_ports = 1;
  x->a1.node_address = "10.0.0.1";

  x->a2 = ainit;
  x->a2.alloc_id = "web-ffff0000";
  x->a2.service = "web";
  x->a2.node = "node-long-name";
  x->a2.isolation = "container";
  x->a2.reason = "best fit";
  x->a2.desired = "run";
  x->a2.status = &x->st2;
  x->a2.spec_version = 4;
  x->a2.created_at_ms = NOW_MS - 3 * 3600 * 1000;

  /* Asked to stop, still reported running. */
  x->a3 = ainit;
  x->a3.alloc_id = "api-12345678";
  x->a3.service = "api";
  x->a3.node = "n2";
  x->a3.isolation = "microvm";
  x->a3.reason = "tenant acme shares n2's kernel";
  x->a3.desired = "stop";
  x->a3.status = &x->st3;
  x->a3.spec_version = 1;
  x->a3.created_at_ms = NOW_MS - 3 * 86400 * 1000LL;

  /* Never reported by an agent: no status at all. */
  x->a4 = ainit;
  x->a4.alloc_id = "web-00000001";
  x->a4.service = "web";
  x->a4.node = "n1";
  x->a4.isolation = "container";
  x->a4.desired = "run";
  x->a4.spec_version = 4;
  x->a4.created_at_ms = NOW_MS - 10 * 60 * 1000;

  x->list[0] = &x->a1;
  x->list[1] = &x->a2;
  x->list[2] = &x->a3;
  x->list[3] = &x->a4;
  x->reply = rinit;
  x->reply.n_allocs = 4;
  x->reply.allocs = x->list;
}

typedef struct nodes_s
{
  Orch__Resources cap1, use1, al1, cap2;
  Orch__NodeInfo__LabelsEntry l1, l2;
  Orch__NodeInfo__LabelsEntry *labels[2];
  char *rt1[2], *rt2[1];
  Orch__NodeInfo n1, n2;
  Orch__NodeInfo *list[2];
  Orch__GetReply reply;
} nodes_t;

static void
nodes_init (nodes_t *x)
{
  Orch__Resources rinit = ORCH__RESOURCES__INIT;
  Orch__NodeInfo ninit = ORCH__NODE_INFO__INIT;
  Orch__NodeInfo__LabelsEntry linit = ORCH__NODE_INFO__LABELS_ENTRY__INIT;
  Orch__GetReply ginit = ORCH__GET_REPLY__INIT;

  x->cap1 = rinit;
  x->cap1.cpu_milli = 2000;
  x->cap1.memory_bytes = 4LL << 30;
  x->use1 = rinit;
  x->use1.cpu_milli = 120;
  x->use1.memory_bytes = 12LL << 20;
  x->al1 = rinit;
  x->al1.cpu_milli = 500;
  x->al1.memory_bytes = 192LL << 20;
  x->cap2 = rinit;
  x->cap2.cpu_milli = 1000;
  x->cap2.memory_bytes = 1536LL << 20; /* 1.5Gi */

  x->l1 = linit;
  x->l1.key = "zone";
  x->l1.value = "a";
  x->l2 = linit;
  x->l2.key = "disk";
  x->l2.value = "ssd";
  x->labels[0] = &x->l1;
  x->labels[1] = &x->l2;
  x->rt1[0] = "container";
  x->rt1[1] = "microvm";
  x->rt2[0] = "container";

  x->n1 = ninit;
  x->n1.node_id = "n1";
  x->n1.address = "10.0.0.1";
  x->n1.state = "ready";
  x->n1.n_labels = 2;
  x->n1.labels = x->labels;
  x->n1.capacity = &x->cap1;
  x->n1.usage = &x->use1;
  x->n1.allocated = &x->al1;
  x->n1.n_runtimes = 2;
  x->n1.runtimes = x->rt1;
  x->n1.last_heartbeat_ms = NOW_MS - 2000;
  x->n1.allocs = 3;
  x->n1.cgroup_version = "v1";

  /* A node that never sent usage: absent messages read as zero. */
  x->n2 = ninit;
  x->n2.node_id = "n0";
  x->n2.address = "10.0.0.2";
  x->n2.state = "down";
  x->n2.capacity = &x->cap2;
  x->n2.n_runtimes = 1;
  x->n2.runtimes = x->rt2;
  x->n2.last_heartbeat_ms = NOW_MS - 300 * 1000;
  x->n2.cgroup_version = "v2";

  x->list[0] = &x->n1;
  x->list[1] = &x->n2;
  x->reply = ginit;
  x->reply.n_nodes = 2;
  x->reply.nodes = x->list;
}

/* ---- Tables ----------------------------------------------------------------- */

static void
test_table_aligns_columns (void **state)
{
  static const char *const h[] = { "A", "LONGER", "C" };
  static const char *const r1[] = { "wide-cell", "x", "last" };
  static const char *const r2[] = { "y", NULL, "" };
  cli_table_t t;
  capture_t c;
  char *out;

  cap_open (&c);
  cli_table_init (&t, 3, h);
  cli_table_add (&t, r1);
  cli_table_add (&t, r2);
  cli_table_print (&t, c.f, "  ");
  cli_table_free (&t);
  out = cap_close (&c);
  /* Widths from the widest cell, three spaces between columns, NULL as "-",
   * and no padding after the last column. */
  assert_string_equal (out, "  A           LONGER   C\n"
                            "  wide-cell   x        last\n"
                            "  y           -        \n");
  free (out);
}

static void
test_services_table (void **state)
{
  services_t s;
  capture_t c;
  char *out;

  services_init (&s);
  cap_open (&c);
  cli_print_services (c.f, &s.reply, CLI_OUT_TABLE);
  out = cap_close (&c);
  assert_string_equal (out, "NAME   TENANT    ISOLATION   REPLICAS   RUNNING   IMAGE     VERSION\n"
                            "api    default   microvm     1          1         alpine    12\n"
                            "web    acme      container   3          2         busybox   4\n");
  free (out);
}

static void
test_services_wide (void **state)
{
  services_t s;
  capture_t c;
  char *out;

  services_init (&s);
  cap_open (&c);
  cli_print_services (c.f, &s.reply, CLI_OUT_WIDE);
  out = cap_close (&c);
  assert_string_equal (
      out, "NAME   TENANT    ISOLATION   REPLICAS   RUNNING   IMAGE     VERSION   CPU    MEMORY   "
           "PENDING   REASON\n"
           "api    default   microvm     1          1         alpine    12        1.5    1Gi      "
           "0         -\n"
           "web    acme      container   3          2         busybox   4         250m   64Mi     "
           "1         0/3 nodes: 3 insufficient memory\n");
  free (out);
}

static void
test_services_json (void **state)
{
  services_t s;
  capture_t c;
  char *out;

  services_init (&s);
  cap_open (&c);
  cli_print_services (c.f, &s.reply, CLI_OUT_JSON);
  out = cap_close (&c);
  assert_string_equal (out, "{\n"
                            "  \"services\": [\n"
                            "    {\n"
                            "      \"image\": \"alpine\",\n"
                            "      \"isolation\": \"microvm\",\n"
                            "      \"name\": \"api\",\n"
                            "      \"pending\": 0,\n"
                            "      \"pending_reason\": \"\",\n"
                            "      \"replicas\": 1,\n"
                            "      \"resources\": {\n"
                            "        \"cpu_milli\": 1500,\n"
                            "        \"memory_bytes\": 1073741824\n"
                            "      },\n"
                            "      \"running\": 1,\n"
                            "      \"spec\": null,\n"
                            "      \"tenant\": \"default\",\n"
                            "      \"version\": 12\n"
                            "    },\n"
                            "    {\n"
                            "      \"image\": \"busybox\",\n"
                            "      \"isolation\": \"container\",\n"
                            "      \"name\": \"web\",\n"
                            "      \"pending\": 1,\n"
                            "      \"pending_reason\": \"0/3 nodes: 3 insufficient memory\",\n"
                            "      \"replicas\": 3,\n"
                            "      \"resources\": {\n"
                            "        \"cpu_milli\": 250,\n"
                            "        \"memory_bytes\": 67108864\n"
                            "      },\n"
                            "      \"running\": 2,\n"
                            "      \"spec\": {\n"
                            "        \"name\": \"web\",\n"
                            "        \"replicas\": 3\n"
                            "      },\n"
                            "      \"tenant\": \"acme\",\n"
                            "      \"version\": 4\n"
                            "    }\n"
                            "  ]\n"
                            "}\n");
  free (out);
}

static void
test_allocs_table (void **state)
{
  allocs_t x;
  capture_t c;
  char *out;

  allocs_init (&x);
  cap_open (&c);
  cli_print_allocs (c.f, &x.reply, CLI_OUT_TABLE, NOW_MS);
  out = cap_close (&c);
  /* Sorted by service then id; "stopping" for a running allocation asked to
   * stop; EXIT only once exited; an unreported allocation is pending. */
  assert_string_equal (
      out,
      "ID             SERVICE   NODE             ISOLATION   STATE      EXIT   CPU     MEM     "
      "AGE   PORTS\n"
      "api-12345678   api       n2               microvm     stopping   -      -       -       3d    "
      "-\n"
      "web-00000001   web       n1               container   pending    -      -       -       "
      "10m   -\n"
      "web-0a1b2c3d   web       n1               container   running    -      1.25s   3.5Mi   "
      "45s   10.0.0.1:30001->8080\n"
      "web-ffff0000   web       node-long-name   container   exited     3      1m15s   -       "
      "3h    -\n");
  free (out);
}

static void
test_allocs_wide (void **state)
{
  allocs_t x;
  capture_t c;
  char *out;

  allocs_init (&x);
  cap_open (&c);
  cli_print_allocs (c.f, &x.reply, CLI_OUT_WIDE, NOW_MS);
  out = cap_close (&c);
  /* REASON: the agent's reason when there is one, else the placement's. */
  assert_string_equal (out, "ID             SERVICE   NODE             ISOLATION   STATE      EXIT "
                            "  CPU     MEM     AGE   PORTS                  "
                            "PID    REASON\n"
                            "api-12345678   api       n2               microvm     stopping   -    "
                            "  -       -       3d    -                      "
                            "-      tenant acme shares n2's kernel\n"
                            "web-00000001   web       n1               container   pending    -    "
                            "  -       -       10m   -                      "
                            "-      -\n"
                            "web-0a1b2c3d   web       n1               container   running    -    "
                            "  1.25s   3.5Mi   45s   10.0.0.1:30001->8080   "
                            "4242   best fit\n"
                            "web-ffff0000   web       node-long-name   container   exited     3    "
                            "  1m15s   -       3h    -                      "
                            "-      exited with code 3\n");
  free (out);
}

static void
test_allocs_json (void **state)
{
  allocs_t x;
  Orch__AllocInfo *one[1];
  capture_t c;
  char *out;

  allocs_init (&x);
  one[0] = &x.a4;
  x.reply.n_allocs = 1;
  x.reply.allocs = one;
  cap_open (&c);
  cli_print_allocs (c.f, &x.reply, CLI_OUT_JSON, NOW_MS);
  out = cap_close (&c);
  /* The status is nested, and present (as pending) even before the agent
   * has reported, so that `.status.state` always works. */
  assert_string_equal (out, "{\n"
                            "  \"allocs\": [\n"
                            "    {\n"
                            "      \"alloc_id\": \"web-00000001\",\n"
                            "      \"created_at_ms\": 1699999400000,\n"
                            "      \"desired\": \"run\",\n"
                            "      \"isolation\": \"container\",\n"
                            "      \"node\": \"n1\",\n"
                            "      \"node_address\": \"\",\n"
                            "      \"ports\": [],\n"
                            "      \"reason\": \"\",\n"
                            "      \"service\": \"web\",\n"
                            "      \"spec_version\": 4,\n"
                            "      \"status\": {\n"
                            "        \"address\": \"\",\n"
                            "        \"alloc_id\": \"web-00000001\",\n"
                            "        \"cpu_usec\": 0,\n"
                            "        \"exit_code\": 0,\n"
                            "        \"finished_at_ms\": 0,\n"
                            "        \"guest_kernel\": \"\",\n"
                            "        \"health\": \"\",\n"
                            "        \"memory_bytes\": 0,\n"
                            "        \"pid\": 0,\n"
                            "        \"reason\": \"\",\n"
                            "        \"restarts\": 0,\n"
                            "        \"started_at_ms\": 0,\n"
                            "        \"state\": \"pending\",\n"
                            "        \"vmm\": \"\"\n"
                            "      }\n"
                            "    }\n"
                            "  ]\n"
                            "}\n");
  free (out);
}

static void
test_nodes_table (void **state)
{
  nodes_t x;
  capture_t c;
  char *out;

  nodes_init (&x);
  cap_open (&c);
  cli_print_nodes (c.f, &x.reply, CLI_OUT_TABLE, NOW_MS);
  out = cap_close (&c);
  assert_string_equal (out,
                       "NAME   STATE   ADDRESS    CPU(used/alloc/cap)   MEMORY(used/alloc/cap)   "
                       "ALLOCS   RUNTIMES\n"
                       "n0     down    10.0.0.2   0/0/1                 0/0/1.5Gi                "
                       "0        container\n"
                       "n1     ready   10.0.0.1   120m/500m/2           12Mi/192Mi/4Gi           "
                       "3        container,microvm\n");
  free (out);
}

static void
test_nodes_wide (void **state)
{
  nodes_t x;
  capture_t c;
  char *out;

  nodes_init (&x);
  cap_open (&c);
  cli_print_nodes (c.f, &x.reply, CLI_OUT_WIDE, NOW_MS);
  out = cap_close (&c);
  /* Labels sorted by key, the heartbeat as an age. */
  assert_string_equal (out,
                       "NAME   STATE   ADDRESS    CPU(used/alloc/cap)   MEMORY(used/alloc/cap)   "
                       "ALLOCS   RUNTIMES            CGROUP   HEARTBEAT   LABELS\n"
                       "n0     down    10.0.0.2   0/0/1                 0/0/1.5Gi                "
                       "0        container           v2       5m          -\n"
                       "n1     ready   10.0.0.1   120m/500m/2           12Mi/192Mi/4Gi           "
                       "3        container,microvm   v1       2s          disk=ssd,zone=a\n");
  free (out);
}

static void
test_nodes_json (void **state)
{
  nodes_t x;
  Orch__NodeInfo *one[1];
  capture_t c;
  char *out;

  nodes_init (&x);
  one[0] = &x.n1;
  x.reply.n_nodes = 1;
  x.reply.nodes = one;
  cap_open (&c);
  cli_print_nodes (c.f, &x.reply, CLI_OUT_JSON, NOW_MS);
  out = cap_close (&c);
  assert_string_equal (out, "{\n"
                            "  \"nodes\": [\n"
                            "    {\n"
                            "      \"address\": \"10.0.0.1\",\n"
                            "      \"allocated\": {\n"
                            "        \"cpu_milli\": 500,\n"
                            "        \"memory_bytes\": 201326592\n"
                            "      },\n"
                            "      \"allocs\": 3,\n"
                            "      \"capacity\": {\n"
                            "        \"cpu_milli\": 2000,\n"
                            "        \"memory_bytes\": 4294967296\n"
                            "      },\n"
                            "      \"cgroup_version\": \"v1\",\n"
                            "      \"labels\": {\n"
                            "        \"disk\": \"ssd\",\n"
                            "        \"zone\": \"a\"\n"
                            "      },\n"
                            "      \"last_heartbeat_ms\": 1699999998000,\n"
                            "      \"node_id\": \"n1\",\n"
                            "      \"runtimes\": [\n"
                            "        \"container\",\n"
                            "        \"microvm\"\n"
                            "      ],\n"
                            "      \"state\": \"ready\",\n"
                            "      \"usage\": {\n"
                            "        \"cpu_milli\": 120,\n"
                            "        \"memory_bytes\": 12582912\n"
                            "      }\n"
                            "    }\n"
                            "  ]\n"
                            "}\n");
  free (out);
}

static void
test_empty_json_is_a_document (void **state)
{
  Orch__GetReply r = ORCH__GET_REPLY__INIT;
  capture_t c;
  char *out;

  cap_open (&c);
  cli_print_nodes (c.f, &r, CLI_OUT_JSON, NOW_MS);
  out = cap_close (&c);
  assert_string_equal (out, "{\n  \"nodes\": []\n}\n");
  free (out);
}

/* ---- describe --------------------------------------------------------------- */

static void
test_describe_service (void **state)
{
  services_t s;
  allocs_t x;
  Orch__AllocInfo *web[3];
  capture_t c;
  char *out;

  services_init (&s);
  allocs_init (&x);
  web[0] = &x.a2;
  web[1] = &x.a1;
  web[2] = &x.a4;
  x.reply.n_allocs = 3;
  x.reply.allocs = web;
  cap_open (&c);
  cli_print_describe (c.f, &s.web, &x.reply, CLI_OUT_TABLE, NOW_MS);
  out = cap_close (&c);
  assert_string_equal (
      out,
      "Name:         web\n"
      "Tenant:       acme\n"
      "Version:      4\n"
      "Isolation:    container\n"
      "Image:        busybox\n"
      "Resources:    cpu 250m, memory 64Mi\n"
      "Replicas:     3 desired, 2 running, 1 pending\n"
      "Pending:      1 replica: 0/3 nodes: 3 insufficient memory\n"
      "Spec:\n"
      "  {\n"
      "    \"name\": \"web\",\n"
      "    \"replicas\": 3\n"
      "  }\n"
      "Allocations:\n"
      "  ID             NODE             ISOLATION   STATE     EXIT   RESTARTS   AGE   PLACEMENT\n"
      "  web-00000001   n1               container   pending   -      0          10m   -\n"
      "  web-0a1b2c3d   n1               container   running   -      1          45s   best fit\n"
      "  web-ffff0000   node-long-name   container   exited    3      0          3h    best fit\n"
      "Details:\n"
      "  web-0a1b2c3d: ports 10.0.0.1:30001->8080\n"
      "Problems:\n"
      "  web-ffff0000: exited: exited with code 3\n");
  free (out);
}

static void
test_describe_json (void **state)
{
  services_t s;
  Orch__GetReply r = ORCH__GET_REPLY__INIT;
  json_t *doc;
  capture_t c;
  char *out;

  services_init (&s);
  cap_open (&c);
  cli_print_describe (c.f, &s.api, &r, CLI_OUT_JSON, NOW_MS);
  out = cap_close (&c);
  doc = json_loads (out, 0, NULL);
  assert_non_null (doc);
  assert_string_equal (
      json_string_value (json_object_get (json_object_get (doc, "service"), "name")), "api");
  assert_int_equal (json_array_size (json_object_get (doc, "allocs")), 0);
  json_decref (doc);
  free (out);
}

/* ---- apply and plan --------------------------------------------------------- */

typedef struct apply_s
{
  Orch__ServiceChange ch;
  Orch__ServiceChange *changes[1];
  Orch__Placement p[4];
  Orch__Placement *placements[4];
  Orch__ApplyReply reply;
} apply_t;

static void
apply_init (apply_t *a)
{
  Orch__ServiceChange cinit = ORCH__SERVICE_CHANGE__INIT;
  Orch__Placement pinit = ORCH__PLACEMENT__INIT;
  Orch__ApplyReply rinit = ORCH__APPLY_REPLY__INIT;
  static const char *const ids[] = { "web-1a2b3c4d", "", "web-5e6f7a8b", "" };
  static const char *const nodes[] = { "n1", "", "n2", "" };

  a->ch = cinit;
  a->ch.name = "web";
  a->ch.action = "created";
  a->ch.version = 1;
  a->changes[0] = &a->ch;
  for (int i = 0; i < 4; i++)
    {
      a->p[i] = pinit;
      a->p[i].service = "web";
      a->p[i].alloc_id = (char *) ids[i];
      a->p[i].node = (char *) nodes[i];
      a->p[i].isolation = "container";
      a->p[i].reason
          = ids[i][0] ? "best fit (cpu 12%, memory 30%)" : "0/3 nodes: 3 insufficient memory";
      a->placements[i] = &a->p[i];
    }
  a->reply = rinit;
  a->reply.n_changes = 1;
  a->reply.changes = a->changes;
  a->reply.n_placements = 4;
  a->reply.placements = a->placements;
}

static void
test_apply_output (void **state)
{
  apply_t a;
  capture_t c;
  char *out;

  apply_init (&a);
  cap_open (&c);
  cli_print_apply (c.f, &a.reply);
  out = cap_close (&c);
  /* Unplaced replicas are counted per reason, not listed one by one. */
  assert_string_equal (out, "service/web created (version 1)\n"
                            "  web-1a2b3c4d -> n1 (container): best fit (cpu 12%, memory 30%)\n"
                            "  web-5e6f7a8b -> n2 (container): best fit (cpu 12%, memory 30%)\n"
                            "  web: 2 replicas pending: 0/3 nodes: 3 insufficient memory\n");
  free (out);
}

static void
test_plan_table (void **state)
{
  apply_t a;
  capture_t c;
  char *out;

  apply_init (&a);
  cap_open (&c);
  cli_print_plan (c.f, &a.reply, CLI_OUT_TABLE);
  out = cap_close (&c);
  assert_string_equal (
      out, "service/web would be created (version 1)\n"
           "\n"
           "SERVICE   ALLOC          NODE   ISOLATION   REASON\n"
           "web       web-1a2b3c4d   n1     container   best fit (cpu 12%, memory 30%)\n"
           "web       web-5e6f7a8b   n2     container   best fit (cpu 12%, memory 30%)\n"
           "web       (2 pending)    -      -           0/3 nodes: 3 insufficient memory\n");
  free (out);
}

static void
test_plan_json (void **state)
{
  apply_t a;
  capture_t c;
  json_t *doc, *p;
  char *out;

  apply_init (&a);
  a.reply.n_placements = 2;
  cap_open (&c);
  cli_print_plan (c.f, &a.reply, CLI_OUT_JSON);
  out = cap_close (&c);
  doc = json_loads (out, 0, NULL);
  assert_non_null (doc);
  assert_string_equal (json_string_value (json_object_get (
                           json_array_get (json_object_get (doc, "changes"), 0), "action")),
                       "created");
  p = json_object_get (doc, "placements");
  assert_int_equal (json_array_size (p), 2);
  assert_string_equal (json_string_value (json_object_get (json_array_get (p, 0), "node")), "n1");
  assert_string_equal (json_string_value (json_object_get (json_array_get (p, 1), "node")), "");
  json_decref (doc);
  free (out);
}

/* ---- Small formats and --tail ----------------------------------------------- */

static void
test_small_formats (void **state)
{
  char b[32];

  assert_string_equal (cli_fmt_age (NOW_MS, 0, b, sizeof (b)), "-");
  assert_string_equal (cli_fmt_age (NOW_MS, NOW_MS + 5000, b, sizeof (b)), "0s");
  assert_string_equal (cli_fmt_age (NOW_MS, NOW_MS - 119999, b, sizeof (b)), "119s");
  assert_string_equal (cli_fmt_age (NOW_MS, NOW_MS - 120000, b, sizeof (b)), "2m");
  assert_string_equal (cli_fmt_age (NOW_MS, NOW_MS - 47LL * 3600000, b, sizeof (b)), "47h");
  assert_string_equal (cli_fmt_age (NOW_MS, NOW_MS - 50LL * 3600000, b, sizeof (b)), "2d");
  assert_string_equal (cli_fmt_cpu_time (0, b, sizeof (b)), "0.00s");
  assert_string_equal (cli_fmt_cpu_time (59990000, b, sizeof (b)), "59.99s");
  assert_string_equal (cli_fmt_cpu_time (3725LL * 1000000, b, sizeof (b)), "1h02m");
  assert_string_equal (cli_fmt_duration (10000, b, sizeof (b)), "10s");
  assert_string_equal (cli_fmt_duration (1500, b, sizeof (b)), "1500ms");
}

static void
test_tail_lines (void **state)
{
  static const struct
  {
    const char *data;
    uint64_t n;
    const char *want;
  } cases[] = {
    { "a\nb\nc\n", 2, "b\nc\n" },
    { "a\nb\nc\n", 1, "c\n" },
    { "a\nb\nc", 2, "b\nc" }, /* last line without newline still counts */
    { "a\nb\nc\n", 3, "a\nb\nc\n" },
    { "a\nb\nc\n", 10, "a\nb\nc\n" }, /* fewer lines than asked: all of them */
    { "a\nb\nc\n", 0, "" },
    { "", 5, "" },
    { "\n\n\n", 2, "\n\n" }, /* empty lines are lines */
    { "only", 1, "only" },
  };

  for (size_t i = 0; i < sizeof (cases) / sizeof (cases[0]); i++)
    {
      size_t len = strlen (cases[i].data);
      size_t off = cli_tail_lines (cases[i].data, len, cases[i].n);
      assert_true (off <= len);
      assert_string_equal (cases[i].data + off, cases[i].want);
    }
}

static const struct CMUnitTest tests[] = {
  cmocka_unit_test (test_table_aligns_columns),
  cmocka_unit_test (test_services_table),
  cmocka_unit_test (test_services_wide),
  cmocka_unit_test (test_services_json),
  cmocka_unit_test (test_allocs_table),
  cmocka_unit_test (test_allocs_wide),
  cmocka_unit_test (test_allocs_json),
  cmocka_unit_test (test_nodes_table),
  cmocka_unit_test (test_nodes_wide),
  cmocka_unit_test (test_nodes_json),
  cmocka_unit_test (test_empty_json_is_a_document),
  cmocka_unit_test (test_describe_service),
  cmocka_unit_test (test_describe_json),
  cmocka_unit_test (test_apply_output),
  cmocka_unit_test (test_plan_table),
  cmocka_unit_test (test_plan_json),
  cmocka_unit_test (test_small_formats),
  cmocka_unit_test (test_tail_lines),
};

ORCH_TEST_MAIN (tests)
