/* Service spec parsing and validation (DESIGN.md §3): good documents give the
 * fields users wrote plus documented defaults; bad ones give every problem,
 * one line each, with its JSON path, and nothing else. */
#define _GNU_SOURCE
#include "orch_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orch_spec.h"
#include "orch_util.h"

/* Specs below are written with ' for " to stay readable. */
static char *
dq (const char *s)
{
  char *out = xstrdup (s);
  for (char *p = out; *p; p++)
    if (*p == '\'')
      *p = '"';
  return out;
}

static char *
load_fixture (const char *name, size_t *len)
{
  cleanup_free char *path = xasprintf ("%s/spec/%s", ORCH_FIXTURES, name);
  char *buf = NULL;
  size_t l = 0;

  if (orch_read_file (path, ORCH_SPEC_MAX_BYTES, &buf, &l) < 0)
    fail_msg ("cannot read fixture %s", path);
  if (len != NULL)
    *len = l;
  return buf;
}

/* Parses text expecting failure; returns the joined error lines. */
static char *
parse_errors (const char *text, size_t len)
{
  orch_spec_t *specs = (orch_spec_t *) (uintptr_t) 0x1;
  size_t n = 12345;
  orch_errlist_t errs = { 0 };
  char *joined;

  if (orch_spec_parse_text (text, len, &specs, &n, &errs) == 0)
    {
      orch_specs_free (specs, n);
      fail_msg ("spec unexpectedly accepted: %s", text);
    }
  /* All-or-nothing: nothing stored on failure. */
  assert_ptr_equal (specs, (orch_spec_t *) (uintptr_t) 0x1);
  assert_int_equal (n, 12345);
  assert_true (errs.len > 0);
  joined = orch_errlist_join (&errs);
  orch_errlist_free (&errs);
  return joined;
}

static orch_spec_t *
parse_ok (const char *text, size_t *n)
{
  orch_spec_t *specs = NULL;
  orch_errlist_t errs = { 0 };

  if (orch_spec_parse_text (text, strlen (text), &specs, n, &errs) != 0)
    {
      cleanup_free char *joined = orch_errlist_join (&errs);
      orch_errlist_free (&errs);
      fail_msg ("spec refused:\n%s\n--- input:\n%s", joined, text);
    }
  assert_int_equal (errs.len, 0);
  return specs;
}

static void
single_service (void **state)
{
  cleanup_free char *text = load_fixture ("web.json", NULL);
  orch_spec_t *s;
  size_t n = 0;

  (void) state;
  s = parse_ok (text, &n);
  assert_int_equal (n, 1);
  assert_string_equal (s->name, "web");
  assert_string_equal (s->tenant, "acme");
  assert_int_equal (s->replicas, 3);
  assert_int_equal (s->isolation, ORCH_ISO_CONTAINER);
  assert_false (s->untrusted);
  assert_string_equal (s->image, "busybox");
  assert_non_null (s->command);
  assert_string_equal (s->command[0], "/bin/httpd");
  assert_string_equal (s->command[3], "8080");
  assert_null (s->command[4]);
  assert_string_equal (s->env[0], "MODE=prod");
  assert_null (s->env[1]);
  assert_int_equal (s->cpu_milli, 250);
  assert_int_equal (s->memory_bytes, 64 << 20);
  assert_int_equal (s->n_ports, 1);
  assert_string_equal (s->ports[0].name, "http");
  assert_int_equal (s->ports[0].port, 8080);
  assert_string_equal (s->ports[0].protocol, "tcp");
  assert_int_equal (s->network, ORCH_NET_BRIDGE);
  assert_int_equal (s->n_constraints, 1);
  assert_string_equal (s->constraints[0].attribute, "label.zone");
  assert_int_equal (s->constraints[0].op, ORCH_OP_EQ);
  assert_int_equal (s->constraints[0].n_values, 1);
  assert_string_equal (s->constraints[0].values[0], "a");
  assert_true (s->spread);
  assert_int_equal (s->restart_policy, ORCH_RESTART_ON_FAILURE);
  assert_int_equal (s->max_restarts, 5);
  assert_int_equal (s->restart_backoff_ms, 1000);
  assert_true (s->health.set);
  assert_int_equal (s->health.tcp_port, 8080);
  assert_null (s->health.exec);
  assert_null (s->health.http_path);
  assert_int_equal (s->health.interval_ms, 5000);
  assert_int_equal (s->health.timeout_ms, 1000);
  assert_int_equal (s->health.failure_threshold, 3);
  assert_int_equal (s->update_max_parallel, 1);
  assert_int_equal (s->stop_grace_ms, 10000);
  assert_false (s->user_namespace);
  assert_non_null (s->json);
  assert_string_equal (orch_isolation_name (s->isolation), "container");
  assert_string_equal (orch_restart_policy_name (s->restart_policy), "on-failure");
  orch_specs_free (s, n);
}

static void
service_list (void **state)
{
  cleanup_free char *text = load_fixture ("stack.json", NULL);
  orch_spec_t *s;
  size_t n = 0;

  (void) state;
  s = parse_ok (text, &n);
  assert_int_equal (n, 3);

  assert_string_equal (s[0].name, "api");
  assert_int_equal (s[0].isolation, ORCH_ISO_AUTO);
  assert_true (s[0].untrusted);
  assert_string_equal (s[0].image, "registry.local:5000/acme/api@sha256:0123abcd");
  /* env is sorted by key, whatever the order in the file. */
  assert_string_equal (s[0].env[0], "LOG_LEVEL=debug");
  assert_string_equal (s[0].env[1], "ZONE=a");
  assert_string_equal (s[0].env[2], "_PRIVATE=1");
  assert_null (s[0].env[3]);
  assert_int_equal (s[0].cpu_milli, 1500);
  assert_int_equal (s[0].memory_bytes, 512 << 20);
  /* One number for tcp and udp is fine. */
  assert_int_equal (s[0].n_ports, 2);
  assert_string_equal (s[0].ports[1].protocol, "udp");
  assert_null (s[0].ports[1].name);
  assert_int_equal (s[0].n_constraints, 3);
  assert_int_equal (s[0].constraints[0].op, ORCH_OP_IN);
  assert_int_equal (s[0].constraints[0].n_values, 2);
  assert_string_equal (s[0].constraints[0].values[1], "b");
  assert_int_equal (s[0].constraints[1].op, ORCH_OP_EXISTS);
  assert_int_equal (s[0].constraints[1].n_values, 0);
  assert_int_equal (s[0].constraints[2].op, ORCH_OP_NE);
  assert_string_equal (s[0].constraints[2].values[0], "n3");
  assert_int_equal (s[0].restart_policy, ORCH_RESTART_ALWAYS);
  assert_int_equal (s[0].max_restarts, 0);
  assert_int_equal (s[0].restart_backoff_ms, 500);
  assert_int_equal (s[0].health.http_port, 9000);
  assert_string_equal (s[0].health.http_path, "/healthz");
  assert_int_equal (s[0].health.failure_threshold, 5);
  assert_int_equal (s[0].health.interval_ms, 10000);
  assert_int_equal (s[0].health.timeout_ms, 2000);
  assert_int_equal (s[0].update_max_parallel, 2);
  assert_int_equal (s[0].stop_grace_ms, 30000);
  assert_true (s[0].user_namespace);

  assert_string_equal (s[1].name, "db");
  assert_int_equal (s[1].isolation, ORCH_ISO_MICROVM);
  assert_int_equal (s[1].network, ORCH_NET_HOST);
  assert_int_equal (s[1].cpu_milli, 2000);
  assert_int_equal (s[1].memory_bytes, 1 << 30);
  assert_string_equal (s[1].health.exec[0], "/bin/true");
  assert_null (s[1].health.exec[1]);
  assert_int_equal (s[1].stop_grace_ms, 300000);

  assert_string_equal (s[2].name, "batch");
  assert_int_equal (s[2].replicas, 0);
  assert_int_equal (s[2].cpu_milli, 250);
  assert_int_equal (s[2].memory_bytes, 268435456);
  assert_int_equal (s[2].restart_policy, ORCH_RESTART_NEVER);
  orch_specs_free (s, n);
}

static void
defaults_applied (void **state)
{
  cleanup_free char *text = load_fixture ("minimal.json", NULL);
  orch_spec_t *s;
  size_t n = 0;

  (void) state;
  s = parse_ok (text, &n);
  assert_int_equal (n, 1);
  assert_string_equal (s->tenant, "default");
  assert_int_equal (s->replicas, 1);
  assert_int_equal (s->isolation, ORCH_ISO_CONTAINER);
  assert_false (s->untrusted);
  assert_null (s->command);
  assert_null (s->env);
  assert_int_equal (s->n_ports, 0);
  assert_null (s->ports);
  assert_int_equal (s->network, ORCH_NET_BRIDGE);
  assert_int_equal (s->n_constraints, 0);
  assert_false (s->spread);
  assert_int_equal (s->restart_policy, ORCH_RESTART_ON_FAILURE);
  assert_int_equal (s->max_restarts, 5);
  assert_int_equal (s->restart_backoff_ms, 1000);
  assert_false (s->health.set);
  assert_int_equal (s->update_max_parallel, 1);
  assert_int_equal (s->stop_grace_ms, 10000);
  assert_false (s->user_namespace);
  /* Defaults are not written into the canonical JSON. */
  assert_string_equal (s->json, "{\"image\":\"busybox\",\"name\":\"tiny\",\"resources\":{\"cpu\":"
                                "\"100m\",\"memory\":\"16Mi\"}}");
  orch_specs_free (s, n);
}

static void
canonical_json_equal_for_reordered_keys (void **state)
{
  cleanup_free char *a
      = dq ("{'name':'w','image':'busybox','env':{'B':'2','A':'1'},"
            "'resources':{'cpu':'1','memory':'1Mi'},'health':{'tcp':80,'interval':'5s'}}");
  cleanup_free char *b
      = dq ("{ \"health\" : {\"interval\":\"5s\", \"tcp\":80},\n \"resources\": {\"memory\":"
            "\"1Mi\",\"cpu\":\"1\"}, \"env\": {\"A\":\"1\",\"B\":\"2\"},\n"
            " \"image\": \"busybox\", \"name\": \"w\"}");
  cleanup_free char *list = NULL;
  orch_spec_t *sa, *sb, *sl;
  size_t na, nb, nl;

  (void) state;
  list = xasprintf ("{\"services\": [%s]}", b);
  sa = parse_ok (a, &na);
  sb = parse_ok (b, &nb);
  sl = parse_ok (list, &nl);
  assert_string_equal (sa->json, sb->json);
  /* The list form stores each service's own object, without "services". */
  assert_string_equal (sa->json, sl->json);
  assert_string_equal (sa->json, "{\"env\":{\"A\":\"1\",\"B\":\"2\"},\"health\":{\"interval\":"
                                 "\"5s\",\"tcp\":80},\"image\":\"busybox\",\"name\":\"w\","
                                 "\"resources\":{\"cpu\":\"1\",\"memory\":\"1Mi\"}}");
  orch_specs_free (sa, na);
  orch_specs_free (sb, nb);
  orch_specs_free (sl, nl);
}

/* What is stored in etcd and sent to agents parses back to the same spec. */
static void
parse_one_round_trip (void **state)
{
  cleanup_free char *text = load_fixture ("stack.json", NULL);
  orch_errlist_t errs = { 0 };
  orch_spec_t *s, back;
  size_t n, i;

  (void) state;
  s = parse_ok (text, &n);
  for (i = 0; i < n; i++)
    {
      assert_int_equal (orch_spec_parse_one (s[i].json, &back, &errs), 0);
      assert_int_equal (errs.len, 0);
      assert_string_equal (back.json, s[i].json);
      assert_string_equal (back.name, s[i].name);
      assert_string_equal (back.tenant, s[i].tenant);
      assert_int_equal (back.cpu_milli, s[i].cpu_milli);
      assert_int_equal (back.memory_bytes, s[i].memory_bytes);
      assert_int_equal (back.n_constraints, s[i].n_constraints);
      assert_int_equal (back.stop_grace_ms, s[i].stop_grace_ms);
      orch_spec_clear (&back);
    }
  orch_specs_free (s, n);
}

static void
parse_one_errors (void **state)
{
  orch_errlist_t errs = { 0 };
  orch_spec_t s;
  cleanup_free char *j1 = NULL, *j2 = NULL, *j3 = NULL;
  cleanup_free char *bad = dq ("{'name':'x','image':'busybox','resources':{'cpu':'1',"
                               "'memory':'1MB'}}");
  cleanup_free char *list = dq ("{'services':[]}");

  (void) state;
  /* Paths have no "services[i]" prefix. */
  assert_int_equal (orch_spec_parse_one (bad, &s, &errs), -1);
  j1 = orch_errlist_join (&errs);
  assert_string_equal (j1, "resources.memory: \"1MB\" is not a quantity; use Mi or Gi (e.g. "
                           "\"1Mi\")");
  orch_errlist_free (&errs);
  /* One service only: the list form is not a service. */
  assert_int_equal (orch_spec_parse_one (list, &s, &errs), -1);
  j2 = orch_errlist_join (&errs);
  assert_string_equal (j2, "services: unknown field\n"
                           "name: required field is missing\n"
                           "image: required field is missing\n"
                           "resources: required field is missing");
  orch_errlist_free (&errs);
  assert_int_equal (orch_spec_parse_one ("[1]", &s, &errs), -1);
  j3 = orch_errlist_join (&errs);
  assert_string_equal (j3, "document: expected a service object, got an array");
  orch_errlist_free (&errs);
}

static void
parse_doc_from_json (void **state)
{
  json_t *doc = json_pack ("{s:s, s:s, s:{s:f, s:s}, s:i}", "name", "j", "image", "busybox",
                           "resources", "cpu", 0.5, "memory", "1Gi", "replicas", 4);
  orch_errlist_t errs = { 0 };
  orch_spec_t *s = NULL;
  size_t n = 0;

  (void) state;
  assert_non_null (doc);
  assert_int_equal (orch_spec_parse_doc (doc, &s, &n, &errs), 0);
  assert_int_equal (n, 1);
  assert_int_equal (s->cpu_milli, 500);
  assert_int_equal (s->replicas, 4);
  orch_specs_free (s, n);
  /* A caller-built string with a NUL inside is refused, not truncated. */
  json_object_set_new (doc, "image", json_stringn ("busy\0box", 8));
  assert_int_equal (orch_spec_parse_doc (doc, &s, &n, &errs), -1);
  assert_int_equal (errs.len, 1);
  assert_string_equal (errs.items[0], "image: contains a NUL character");
  orch_errlist_free (&errs);
  assert_int_equal (orch_spec_parse_doc (NULL, &s, &n, &errs), -1);
  orch_errlist_free (&errs);
  json_decref (doc);
}

/* Errors are added to what the list already holds, never replacing it. */
static void
errors_append (void **state)
{
  orch_errlist_t errs = { 0 };
  orch_spec_t *s = NULL;
  size_t n = 0;

  (void) state;
  orch_errlist_add (&errs, "earlier");
  assert_int_equal (orch_spec_parse_text ("{}", 2, &s, &n, &errs), -1);
  assert_int_equal (errs.len, 4);
  assert_string_equal (errs.items[0], "earlier");
  orch_errlist_free (&errs);
}

#define SVC "'image':'busybox','resources':{'cpu':'1','memory':'1Mi'}"
#define DNS_HINT                                                                                   \
  " is not a DNS label (lower-case letters, digits and '-', starting and ending with a letter "   \
  "or digit, at most 63 characters)"
#define DUR_HINT "is not a duration; use a number with ms, s, m or h (e.g. \"500ms\", \"10s\", \"1m30s\")"

typedef struct
{
  const char *spec; /* ' stands for " */
  const char *want; /* every line, joined with \n */
} bad_case_t;

static const bad_case_t bad_cases[] = {
  /* seccomp adjustments and the pids limit */
  { "{'name':'a'," SVC ",'seccomp':{'deny':['mount','nosuchcall']}}",
    "seccomp.deny[1]: \"nosuchcall\" is not a system call this host knows" },
  { "{'name':'a'," SVC ",'seccomp':{'allow':['ptrace'],'deny':['ptrace']}}",
    "seccomp.deny[0]: \"ptrace\" is also in allow" },
  { "{'name':'a'," SVC ",'seccomp':{'off':true}}", "seccomp.off: unknown field" },
  { "{'name':'a'," SVC ",'seccomp':false}", "seccomp: expected an object, got a boolean" },
  { "{'name':'a','image':'busybox','resources':{'cpu':'1','memory':'1Mi','pids':3}}",
    "resources.pids: must be between 16 and 4194304 (got 3)" },
  /* required fields and unknown fields */
  { "{" SVC "}", "name: required field is missing" },
  { "{}", "name: required field is missing\nimage: required field is missing\n"
          "resources: required field is missing" },
  { "{'name':'a'," SVC ",'resourcez':{}}",
    "resourcez: unknown field (did you mean \"resources\"?)" },
  { "{'name':'a','image':'busybox','resourcez':{'cpu':'1','memory':'1Mi'}}",
    "resourcez: unknown field (did you mean \"resources\"?)\n"
    "resources: required field is missing" },
  { "{'name':'a','image':'busybox','resources':{'cpus':'1','memory':'1Mi'}}",
    "resources.cpus: unknown field (did you mean \"cpu\"?)\n"
    "resources.cpu: required field is missing" },
  { "{'name':'a'," SVC ",'colour':'blue'}", "colour: unknown field" },
  { "{'name':'a'," SVC ",'restart':{'policy':'always','delay':'1s'}}",
    "restart.delay: unknown field" },
  /* names */
  { "{'name':'Web_1'," SVC "}", "name: \"Web_1\"" DNS_HINT },
  { "{'name':'a','tenant':''," SVC "}", "tenant: \"\"" DNS_HINT },
  { "{'name':'a','tenant':null," SVC "}", "tenant: expected a string, got null" },
  { "{'name':7," SVC "}", "name: expected a string, got an integer" },
  /* replicas */
  { "{'name':'a','replicas':'3'," SVC "}", "replicas: expected an integer, got a string (\"3\")" },
  { "{'name':'a','replicas':10001," SVC "}", "replicas: must be between 0 and 10000 (got 10001)" },
  { "{'name':'a','replicas':-1," SVC "}", "replicas: must be between 0 and 10000 (got -1)" },
  { "{'name':'a','replicas':2.5," SVC "}", "replicas: expected an integer, got 2.5" },
  /* enums and booleans */
  { "{'name':'a','isolation':'vm'," SVC "}",
    "isolation: \"vm\" is not one of \"container\", \"microvm\" or \"auto\"" },
  { "{'name':'a','untrusted':'yes'," SVC "}",
    "untrusted: expected a boolean (true or false), got a string (\"yes\")" },
  { "{'name':'a','network':'overlay'," SVC "}",
    "network: \"overlay\" is not one of \"bridge\" or \"host\"" },
  { "{'name':'a','user_namespace':1," SVC "}",
    "user_namespace: expected a boolean (true or false), got an integer" },
  /* image */
  { "{'name':'a','image':'','resources':{'cpu':'1','memory':'1Mi'}}", "image: must not be empty" },
  { "{'name':'a','image':'busy box','resources':{'cpu':'1','memory':'1Mi'}}",
    "image: \"busy box\" holds ' ', which is not allowed; use letters, digits and . _ / : @ -" },
  { "{'name':'a','image':['busybox'],'resources':{'cpu':'1','memory':'1Mi'}}",
    "image: expected a string, got an array" },
  /* command and env */
  { "{'name':'a','command':[]," SVC "}", "command: must not be empty" },
  { "{'name':'a','command':['/bin/sh',1,true]," SVC "}",
    "command[1]: expected a string, got an integer\n"
    "command[2]: expected a string, got a boolean" },
  { "{'name':'a','command':'sh -c x'," SVC "}", "command: expected an array of strings, got a string (\"sh -c x\")" },
  { "{'name':'a','command':['']," SVC "}", "command[0]: the program must not be empty" },
  { "{'name':'a','env':{'1BAD':'x','OK':2,'A.B':'y'}," SVC "}",
    "env.1BAD: \"1BAD\" is not a valid environment variable name (letters, digits and '_', not "
    "starting with a digit)\n"
    "env.OK: expected a string, got an integer\n"
    "env[\"A.B\"]: \"A.B\" is not a valid environment variable name (letters, digits and '_', not "
    "starting with a digit)" },
  { "{'name':'a','env':['A=1']," SVC "}", "env: expected an object of strings, got an array" },
  /* resources */
  { "{'name':'a','image':'busybox','resources':{'cpu':'1'}}",
    "resources.memory: required field is missing" },
  { "{'name':'a','image':'busybox','resources':'1Gi'}", "resources: expected an object, got a string (\"1Gi\")" },
  { "{'name':'a','image':'busybox','resources':{'cpu':'1','memory':'64MB'}}",
    "resources.memory: \"64MB\" is not a quantity; use Mi or Gi (e.g. \"64Mi\")" },
  { "{'name':'a','image':'busybox','resources':{'cpu':'1','memory':'64 Mi'}}",
    "resources.memory: \"64 Mi\" is not a quantity; use Mi or Gi (e.g. \"64Mi\")" },
  { "{'name':'a','image':'busybox','resources':{'cpu':'1','memory':'2gb'}}",
    "resources.memory: \"2gb\" is not a quantity; use Mi or Gi (e.g. \"2Gi\")" },
  { "{'name':'a','image':'busybox','resources':{'cpu':'1','memory':'lots'}}",
    "resources.memory: \"lots\" is not a quantity; use Mi or Gi (e.g. \"64Mi\")" },
  { "{'name':'a','image':'busybox','resources':{'cpu':'1','memory':'-1Mi'}}",
    "resources.memory: must be greater than zero (got \"-1Mi\")" },
  { "{'name':'a','image':'busybox','resources':{'cpu':'1','memory':'0'}}",
    "resources.memory: must be greater than zero (got \"0\")" },
  { "{'name':'a','image':'busybox','resources':{'cpu':'1','memory':67108864}}",
    "resources.memory: expected a string such as \"64Mi\", got an integer" },
  { "{'name':'a','image':'busybox','resources':{'cpu':'1','memory':'0.3'}}",
    "resources.memory: \"0.3\" is not a whole number of bytes" },
  { "{'name':'a','image':'busybox','resources':{'cpu':'1','memory':'9999999999Ei'}}",
    "resources.memory: \"9999999999Ei\" is too large" },
  { "{'name':'a','image':'busybox','resources':{'cpu':'abc','memory':'1Mi'}}",
    "resources.cpu: \"abc\" is not a CPU quantity; use cores (\"0.5\", \"2\") or millicores "
    "(\"250m\")" },
  { "{'name':'a','image':'busybox','resources':{'cpu':'5x','memory':'1Mi'}}",
    "resources.cpu: \"5x\" is not a CPU quantity; use cores (\"0.5\", \"2\") or millicores "
    "(\"250m\")" },
  { "{'name':'a','image':'busybox','resources':{'cpu':'1.2345','memory':'1Mi'}}",
    "resources.cpu: \"1.2345\" is finer than 1 millicore; use at most 3 decimals of a core, or "
    "whole millicores (\"250m\")" },
  { "{'name':'a','image':'busybox','resources':{'cpu':1.2345,'memory':'1Mi'}}",
    "resources.cpu: 1.2345 is finer than 1 millicore; use at most 3 decimals (or \"250m\")" },
  { "{'name':'a','image':'busybox','resources':{'cpu':0,'memory':'1Mi'}}",
    "resources.cpu: must be greater than zero" },
  { "{'name':'a','image':'busybox','resources':{'cpu':'0m','memory':'1Mi'}}",
    "resources.cpu: must be greater than zero (got \"0m\")" },
  { "{'name':'a','image':'busybox','resources':{'cpu':'-1','memory':'1Mi'}}",
    "resources.cpu: must be greater than zero (got \"-1\")" },
  { "{'name':'a','image':'busybox','resources':{'cpu':true,'memory':'1Mi'}}",
    "resources.cpu: expected a string such as \"250m\" or \"0.5\", or a number, got a boolean" },
  { "{'name':'a','image':'busybox','resources':{'cpu':'99999999999999999999','memory':'1Mi'}}",
    "resources.cpu: \"99999999999999999999\" is too large" },
  /* ports */
  { "{'name':'a'," SVC ",'ports':[{'port':80},{'port':80}]}",
    "ports[1].port: duplicate port 80/tcp (also ports[0].port)" },
  { "{'name':'a'," SVC ",'ports':[{'port':0},{'port':65536}]}",
    "ports[0].port: must be between 1 and 65535 (got 0)\n"
    "ports[1].port: must be between 1 and 65535 (got 65536)" },
  { "{'name':'a'," SVC ",'ports':[{'port':53,'protocol':'sctp'}]}",
    "ports[0].protocol: \"sctp\" is not one of \"tcp\" or \"udp\"" },
  { "{'name':'a'," SVC ",'ports':[{'name':'HTTP'}]}",
    "ports[0].name: \"HTTP\"" DNS_HINT "\nports[0].port: required field is missing" },
  { "{'name':'a'," SVC ",'ports':[{'name':'h','port':1},{'name':'h','port':2}]}",
    "ports[1].name: duplicate port name \"h\" (also ports[0].name)" },
  { "{'name':'a'," SVC ",'ports':[8080]}",
    "ports[0]: expected an object such as {\"port\": 8080}, got an integer" },
  /* constraints */
  { "{'name':'a'," SVC ",'constraints':[{'attribute':'label.zone','operator':'='}]}",
    "constraints[0].value: required with operator \"=\"" },
  { "{'name':'a'," SVC ",'constraints':[{'attribute':'z','operator':'in','value':'x'}]}",
    "constraints[0].value: not allowed with operator \"in\" (use \"values\")\n"
    "constraints[0].values: required with operator \"in\"" },
  { "{'name':'a'," SVC ",'constraints':[{'attribute':'z','operator':'!=','values':['x']}]}",
    "constraints[0].values: not allowed with operator \"!=\" (use \"value\")\n"
    "constraints[0].value: required with operator \"!=\"" },
  { "{'name':'a'," SVC ",'constraints':[{'attribute':'z','operator':'exists','value':'x'}]}",
    "constraints[0].value: not allowed with operator \"exists\"" },
  { "{'name':'a'," SVC ",'constraints':[{'operator':'=='}]}",
    "constraints[0].attribute: required field is missing\n"
    "constraints[0].operator: \"==\" is not one of \"=\", \"!=\", \"in\", \"not_in\" or "
    "\"exists\"" },
  { "{'name':'a'," SVC ",'constraints':[{'attribute':'z','operator':'not_in','values':[]}]}",
    "constraints[0].values: must not be empty" },
  { "{'name':'a'," SVC ",'constraints':[{'attribute':'z','operator':'in','values':['a',1]}]}",
    "constraints[0].values[1]: expected a string, got an integer" },
  /* restart */
  { "{'name':'a'," SVC ",'restart':{'policy':'sometimes'}}",
    "restart.policy: \"sometimes\" is not one of \"never\", \"on-failure\" or \"always\"" },
  { "{'name':'a'," SVC ",'restart':{'max_restarts':-1}}",
    "restart.max_restarts: must be between 0 and 1000000 (got -1)" },
  { "{'name':'a'," SVC ",'restart':{'backoff':'1x'}}", "restart.backoff: \"1x\" " DUR_HINT },
  { "{'name':'a'," SVC ",'restart':{'backoff':'-1s'}}",
    "restart.backoff: must not be negative (got \"-1s\")" },
  /* health */
  { "{'name':'a'," SVC ",'health':{}}",
    "health: needs exactly one probe: \"exec\", \"tcp\" or \"http\"" },
  { "{'name':'a'," SVC ",'health':{'tcp':80,'http':{'port':80}}}",
    "health: has both \"tcp\" and \"http\"; use exactly one probe" },
  { "{'name':'a'," SVC ",'health':{'http':{'path':'healthz'}}}",
    "health.http.port: required field is missing\n"
    "health.http.path: \"healthz\" must start with '/'" },
  { "{'name':'a'," SVC ",'health':{'exec':['x'],'interval':'0s','failure_threshold':0}}",
    "health.interval: must be greater than zero (got \"0s\")\n"
    "health.failure_threshold: must be between 1 and 1000 (got 0)" },
  { "{'name':'a'," SVC ",'health':{'tcp':'80'}}", "health.tcp: expected an integer, got a string (\"80\")" },
  /* update, stop_grace */
  { "{'name':'a'," SVC ",'update':{'max_parallel':0}}",
    "update.max_parallel: must be between 1 and 10000 (got 0)" },
  { "{'name':'a'," SVC ",'stop_grace':'10m'}",
    "stop_grace: \"10m\" is longer than the maximum of 5m" },
  { "{'name':'a'," SVC ",'stop_grace':10}",
    "stop_grace: expected a duration string such as \"10s\", got an integer" },
  /* documents */
  { "{'services':[]}", "services: must not be empty" },
  { "{'services':{'name':'a'}}", "services: expected an array of service objects, got an object" },
  { "{'services':['a']}", "services[0]: expected a service object, got a string (\"a\")" },
  { "{'services':[{'name':'a'," SVC "},{'name':'b'," SVC "},{'name':'a'," SVC "}]}",
    "services[2].name: duplicate service name \"a\" (also services[0].name)" },
  { "{'services':[{'name':'a'," SVC "}],'version':1}", "version: unknown field" },
  { "[]", "document: expected a service object or {\"services\": [...]}, got an array" },
  { "'web'", "document: expected a service object or {\"services\": [...]}, got a string" },
  /* syntax */
  { "{'name':'a',}", "line 1, column 13: string or '}' expected near '}'" },
  { "{'name':'a','name':'b'," SVC "}", "line 1, column 18: duplicate object key near '\"name\"'" },
  { "", "document: is empty; expected a service object or {\"services\": [...]}" },
  { " \n\t", "document: is empty; expected a service object or {\"services\": [...]}" },
  { "{'name':'a'," SVC "} x", "line 1, column 71: end of file expected near 'x'" },
  /* a multi-error document: every problem, in document order */
  { "{'services':[{'name':'ok'," SVC "},"
    "{'name':'-bad','replicas':'two','image':'a b','resources':{'cpu':'1.2345','memory':'64MB'},"
    "'ports':[{'port':80},{'port':80}],'restart':{'policy':'on_failure'}},"
    "{'name':'ok','isolation':'kvm'," SVC ",'health':{'tcp':80,'exec':['x']}}]}",
    "services[1].name: \"-bad\"" DNS_HINT "\n"
    "services[1].replicas: expected an integer, got a string (\"two\")\n"
    "services[1].image: \"a b\" holds ' ', which is not allowed; use letters, digits and . _ / : "
    "@ -\n"
    "services[1].resources.cpu: \"1.2345\" is finer than 1 millicore; use at most 3 decimals of a "
    "core, or whole millicores (\"250m\")\n"
    "services[1].resources.memory: \"64MB\" is not a quantity; use Mi or Gi (e.g. \"64Mi\")\n"
    "services[1].ports[1].port: duplicate port 80/tcp (also services[1].ports[0].port)\n"
    "services[1].restart.policy: \"on_failure\" is not one of \"never\", \"on-failure\" or "
    "\"always\"\n"
    "services[2].isolation: \"kvm\" is not one of \"container\", \"microvm\" or \"auto\"\n"
    "services[2].health: has both \"exec\" and \"tcp\"; use exactly one probe\n"
    "services[2].name: duplicate service name \"ok\" (also services[0].name)" },
};

static void
bad_specs (void **state)
{
  size_t i, failures = 0;

  (void) state;
  assert_true (ORCH_ARRAY_LEN (bad_cases) >= 25);
  for (i = 0; i < ORCH_ARRAY_LEN (bad_cases); i++)
    {
      cleanup_free char *text = dq (bad_cases[i].spec);
      cleanup_free char *got = parse_errors (text, strlen (text));
      if (strcmp (got, bad_cases[i].want) != 0)
        {
          fprintf (stderr, "case %zu: %s\n--- got:\n%s\n--- want:\n%s\n\n", i, text, got,
                   bad_cases[i].want);
          failures++;
        }
    }
  if (failures > 0)
    fail_msg ("%zu of %zu bad specs gave unexpected errors", failures,
              ORCH_ARRAY_LEN (bad_cases));
}

/* Bad fixture files, each with the exact expected output next to it. */
static void
bad_fixture_files (void **state)
{
  static const char *const names[] = { "bad-many", "bad-syntax" };
  size_t i;

  (void) state;
  for (i = 0; i < ORCH_ARRAY_LEN (names); i++)
    {
      cleanup_free char *jn = xasprintf ("%s.json", names[i]);
      cleanup_free char *en = xasprintf ("%s.err", names[i]);
      size_t len;
      cleanup_free char *text = load_fixture (jn, &len);
      cleanup_free char *want = load_fixture (en, NULL);
      cleanup_free char *got = parse_errors (text, len);
      size_t wl = strlen (want);

      if (wl > 0 && want[wl - 1] == '\n')
        want[wl - 1] = '\0';
      if (strcmp (got, want) != 0)
        fail_msg ("%s: got:\n%s\n--- want:\n%s", jn, got, want);
    }
}

static void
every_line_has_a_path (void **state)
{
  cleanup_free char *text = load_fixture ("bad-many.json", NULL);
  orch_errlist_t errs = { 0 };
  orch_spec_t *s = NULL;
  size_t n = 0, i;

  (void) state;
  assert_int_equal (orch_spec_parse_text (text, strlen (text), &s, &n, &errs), -1);
  assert_true (errs.len >= 10);
  for (i = 0; i < errs.len; i++)
    {
      assert_int_equal (strncmp (errs.items[i], "services[", 9), 0);
      assert_non_null (strstr (errs.items[i], ": "));
      assert_null (strchr (errs.items[i], '\n'));
    }
  orch_errlist_free (&errs);
}

static void
limits (void **state)
{
  orch_errlist_t errs = { 0 };
  orch_spec_t *s = NULL;
  size_t n = 0, i, off = 0;
  char *big;
  const size_t cap = (size_t) ORCH_SPEC_MAX_SERVICES * 128 + 64;

  (void) state;
  /* Too large: refused before parsing, whatever the content. */
  big = xmalloc (ORCH_SPEC_MAX_BYTES + 2);
  memset (big, ' ', ORCH_SPEC_MAX_BYTES + 1);
  big[ORCH_SPEC_MAX_BYTES + 1] = '\0';
  assert_int_equal (orch_spec_parse_text (big, ORCH_SPEC_MAX_BYTES + 1, &s, &n, &errs), -1);
  assert_int_equal (errs.len, 1);
  assert_string_equal (errs.items[0],
                       "document: 1048577 bytes is more than the limit of 1048576 bytes");
  orch_errlist_free (&errs);
  free (big);

  /* Too many services. */
  big = xmalloc (cap);
  off += (size_t) snprintf (big + off, cap - off, "{\"services\":[");
  for (i = 0; i <= ORCH_SPEC_MAX_SERVICES; i++)
    off += (size_t) snprintf (big + off, cap - off,
                              "%s{\"name\":\"s%zu\",\"image\":\"i\",\"resources\":{\"cpu\":\"1\","
                              "\"memory\":\"1Mi\"}}",
                              i ? "," : "", i);
  off += (size_t) snprintf (big + off, cap - off, "]}");
  assert_true (off < cap);
  assert_int_equal (orch_spec_parse_text (big, off, &s, &n, &errs), -1);
  assert_int_equal (errs.len, 1);
  {
    cleanup_free char *want = xasprintf ("services: holds %d services; at most %d are allowed",
                                         ORCH_SPEC_MAX_SERVICES + 1, ORCH_SPEC_MAX_SERVICES);
    assert_string_equal (errs.items[0], want);
  }
  orch_errlist_free (&errs);
  free (big);
}

/* Text of a JSON string or key in a message stays on one line. */
static void
hostile_keys_quoted (void **state)
{
  const char *text = "{\"name\":\"a\",\"image\":\"busybox\",\"resources\":{\"cpu\":\"1\","
                     "\"memory\":\"1Mi\"},\"bad\\nkey\":1,\"env\":{\"X\\\"Y\":\"1\"}}";
  cleanup_free char *got = parse_errors (text, strlen (text));

  (void) state;
  assert_string_equal (got, "[\"bad\\u000akey\"]: unknown field\n"
                            "env[\"X\\\"Y\"]: \"X\\\"Y\" is not a valid environment variable "
                            "name (letters, digits and '_', not starting with a digit)");
}

/* jansson quotes the input near a syntax error; a raw newline there must
 * not split the message (found by fuzz_spec). */
static void
syntax_error_one_line (void **state)
{
  const char text[] = "{\"name\": \"a\\\n\"}";
  cleanup_free char *got = parse_errors (text, strlen (text));

  (void) state;
  assert_string_equal (got, "line 2, column 0: invalid escape near '\"a\\ '");
}

static const struct CMUnitTest tests[] = {
  cmocka_unit_test (single_service),
  cmocka_unit_test (service_list),
  cmocka_unit_test (defaults_applied),
  cmocka_unit_test (canonical_json_equal_for_reordered_keys),
  cmocka_unit_test (parse_one_round_trip),
  cmocka_unit_test (parse_one_errors),
  cmocka_unit_test (parse_doc_from_json),
  cmocka_unit_test (errors_append),
  cmocka_unit_test (bad_specs),
  cmocka_unit_test (bad_fixture_files),
  cmocka_unit_test (every_line_has_a_path),
  cmocka_unit_test (limits),
  cmocka_unit_test (hostile_keys_quoted),
  cmocka_unit_test (syntax_error_one_line),
};

ORCH_TEST_MAIN (tests)
