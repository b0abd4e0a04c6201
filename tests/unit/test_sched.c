/* orch-scheduler's logic, end to end over loopback TCP: the real daemon code
 * (API server, agent sessions, reconciler, ordered writes, load and watch)
 * over the in-memory store, driven by a fake orchctl and fake agents that
 * speak the real wire protocol. Each case checks what an operator relies on:
 * what apply/get/delete/drain/logs answer, what agents are told to start and
 * stop, and what survives a scheduler restart. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "orch_test.h"

#include "sched_internal.h" /* election cases look at leading/stopping */
#include "sched_test_util.h"

#define MIB (1024LL * 1024)
#define GIB (1024LL * MIB)

/* A service spec (kept by the fixture); extra is spliced in as more
 * top-level fields ("" for none). */
static char *
svc_json (stu_fx_t *fx, const char *name, unsigned replicas, const char *cpu, const char *arg,
          const char *extra)
{
  return stu_keep (fx, xasprintf ("{\"name\": \"%s\", \"replicas\": %u, \"image\": \"busybox\","
                                  " \"command\": [\"/bin/sleep\", \"%s\"],"
                                  " \"resources\": {\"cpu\": \"%s\", \"memory\": \"64Mi\"}%s%s}",
                                  name, replicas, arg, cpu, *extra ? ", " : "", extra));
}

static int
setup (void **state)
{
  stu_fx_t *fx = xcalloc (1, sizeof *fx);
  stu_fx_init (fx);
  *state = fx;
  return 0;
}

static int
teardown (void **state)
{
  stu_fx_t *fx = *state;
  stu_fx_teardown (fx);
  free (fx);
  return 0;
}

/* ---- 1. Hello ------------------------------------------------------------------ */

/* A peer that speaks another protocol version, knocks on the wrong port or
 * brings the wrong join token is told why in an Error and disconnected; the
 * right token gets in. */
static void
test_hello_refusals (void **state)
{
  stu_fx_t *fx = *state;
  fx->cfg.join_token = "s3cret";
  stu_sched_start (fx);

  stu_peer_t *p = stu_connect (fx, fx->api_port);
  uint64_t id = stu_hello (p, WIRE_PROTOCOL_VERSION + 1, "cli", "me", "s3cret");
  Orch__Error *e = stu_expect_error (stu_wait_reply (p, id, STU_WAIT_MS), 1);
  assert_non_null (strstr (e->message, "protocol version"));
  assert_true (stu_wait_closed (p, STU_WAIT_MS));

  /* An agent on the API port. */
  p = stu_connect (fx, fx->api_port);
  id = stu_hello (p, WIRE_PROTOCOL_VERSION, "agent", "n1", "s3cret");
  e = stu_expect_error (stu_wait_reply (p, id, STU_WAIT_MS), 1);
  assert_non_null (strstr (e->message, "role"));
  assert_true (stu_wait_closed (p, STU_WAIT_MS));

  /* orchctl on the agent port. */
  p = stu_connect (fx, fx->agent_port);
  id = stu_hello (p, WIRE_PROTOCOL_VERSION, "cli", "me", "s3cret");
  e = stu_expect_error (stu_wait_reply (p, id, STU_WAIT_MS), 1);
  assert_non_null (strstr (e->message, "role"));
  assert_true (stu_wait_closed (p, STU_WAIT_MS));

  /* Wrong and missing join token, on both ports. */
  p = stu_connect (fx, fx->agent_port);
  id = stu_hello (p, WIRE_PROTOCOL_VERSION, "agent", "n1", "guess");
  e = stu_expect_error (stu_wait_reply (p, id, STU_WAIT_MS), 1);
  assert_non_null (strstr (e->message, "token"));
  assert_true (stu_wait_closed (p, STU_WAIT_MS));
  p = stu_connect (fx, fx->api_port);
  id = stu_hello (p, WIRE_PROTOCOL_VERSION, "cli", "me", "");
  e = stu_expect_error (stu_wait_reply (p, id, STU_WAIT_MS), 1);
  assert_non_null (strstr (e->message, "token"));
  assert_true (stu_wait_closed (p, STU_WAIT_MS));

  /* Anything before Hello. */
  p = stu_connect (fx, fx->api_port);
  Orch__GetRequest g = ORCH__GET_REQUEST__INIT;
  g.kind = "services";
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  env.msg_case = ORCH__ENVELOPE__MSG_GET_REQUEST;
  env.get_request = &g;
  id = stu_request (p, &env);
  stu_expect_error (stu_wait_reply (p, id, STU_WAIT_MS), 1);
  assert_true (stu_wait_closed (p, STU_WAIT_MS));

  /* An agent may register only the node id it said hello as. */
  p = stu_connect (fx, fx->agent_port);
  id = stu_hello (p, WIRE_PROTOCOL_VERSION, "agent", "n1", "s3cret");
  assert_int_equal (stu_wait_reply (p, id, STU_WAIT_MS)->msg_case,
                    ORCH__ENVELOPE__MSG_HELLO_REPLY);
  Orch__Resources cap = ORCH__RESOURCES__INIT;
  cap.cpu_milli = 1000;
  cap.memory_bytes = GIB;
  Orch__NodeRegister reg = ORCH__NODE_REGISTER__INIT;
  reg.node_id = "n2";
  reg.capacity = &cap;
  Orch__Envelope renv = ORCH__ENVELOPE__INIT;
  renv.msg_case = ORCH__ENVELOPE__MSG_NODE_REGISTER;
  renv.node_register = &reg;
  id = stu_request (p, &renv);
  stu_expect_error (stu_wait_reply (p, id, STU_WAIT_MS), 2);
  assert_true (stu_wait_closed (p, STU_WAIT_MS));

  /* The right token: Hello answered, and the connection serves requests. */
  stu_peer_t *cli = stu_cli (fx);
  stu_expect_get (stu_get (cli, "services", NULL));
  stu_peer_t *agent = stu_agent (fx, "n1", 1000, GIB, NULL, 0);
  assert_false (agent->closed);
  Orch__GetReply *nr = stu_expect_get (stu_get (cli, "nodes", NULL));
  assert_int_equal (nr->n_nodes, 1);
  assert_string_equal (nr->nodes[0]->node_id, "n1");
}

/* ---- 2. apply and get ------------------------------------------------------------ */

static void
test_apply_places_and_starts (void **state)
{
  stu_fx_t *fx = *state;
  stu_sched_start (fx);
  stu_peer_t *agent = stu_agent (fx, "n1", 2000, 4 * GIB, NULL, 0);
  stu_peer_t *cli = stu_cli (fx);

  char *spec = svc_json (fx, "web", 2, "250m", "1000", "");
  Orch__ApplyReply *ar = stu_expect_apply (stu_apply (cli, spec));
  assert_int_equal (ar->n_changes, 1);
  assert_string_equal (ar->changes[0]->name, "web");
  assert_string_equal (ar->changes[0]->action, "created");
  assert_int_equal (ar->changes[0]->version, 1);
  assert_int_equal (ar->n_placements, 2);
  for (size_t i = 0; i < 2; i++)
    {
      assert_string_equal (ar->placements[i]->service, "web");
      assert_string_equal (ar->placements[i]->node, "n1");
      assert_string_equal (ar->placements[i]->isolation, "container");
      assert_true (strncmp (ar->placements[i]->alloc_id, "web-", 4) == 0);
    }
  assert_string_not_equal (ar->placements[0]->alloc_id, ar->placements[1]->alloc_id);

  /* The agent is told to start exactly these two, with the service's spec. */
  assert_true (stu_wait_count (agent, ORCH__ENVELOPE__MSG_START_ALLOC, 2, STU_WAIT_MS));
  Orch__GetReply *desc = stu_expect_get (stu_get (cli, "service", "web"));
  assert_int_equal (desc->n_services, 1);
  const char *canonical = desc->services[0]->spec_json;
  assert_non_null (strstr (canonical, "/bin/sleep"));
  for (size_t i = 0; i < 2; i++)
    {
      Orch__Alloc *a = stu_nth (agent, ORCH__ENVELOPE__MSG_START_ALLOC, i)->start_alloc->alloc;
      assert_true (strcmp (a->alloc_id, ar->placements[0]->alloc_id) == 0
                   || strcmp (a->alloc_id, ar->placements[1]->alloc_id) == 0);
      assert_string_equal (a->service, "web");
      assert_string_equal (a->isolation, "container");
      assert_int_equal (a->spec_version, 1);
      assert_string_equal (a->spec_json, canonical);
    }
  assert_string_not_equal (
      stu_nth (agent, ORCH__ENVELOPE__MSG_START_ALLOC, 0)->start_alloc->alloc->alloc_id,
      stu_nth (agent, ORCH__ENVELOPE__MSG_START_ALLOC, 1)->start_alloc->alloc->alloc_id);

  /* get allocs: both on n1, pending until the agent reports. */
  Orch__GetReply *gr = stu_expect_get (stu_get (cli, "allocs", NULL));
  assert_int_equal (gr->n_allocs, 2);
  for (size_t i = 0; i < 2; i++)
    {
      Orch__AllocInfo *ai = stu_find_alloc (gr, ar->placements[i]->alloc_id);
      assert_non_null (ai);
      assert_string_equal (ai->node, "n1");
      assert_string_equal (ai->service, "web");
      assert_string_equal (ai->status->state, "pending");
    }

  for (size_t i = 0; i < 2; i++)
    stu_agent_event (agent, ar->placements[i]->alloc_id, "running");
  bool all_running = false;
  int64_t deadline = orch_now_mono_ms () + STU_WAIT_MS;
  while (!all_running && orch_now_mono_ms () < deadline)
    {
      gr = stu_expect_get (stu_get (cli, "allocs", NULL));
      all_running = gr->n_allocs == 2 && strcmp (gr->allocs[0]->status->state, "running") == 0
                    && strcmp (gr->allocs[1]->status->state, "running") == 0;
    }
  assert_true (all_running);
  assert_int_equal (gr->allocs[0]->status->pid, 4242);
  Orch__GetReply *sr = stu_expect_get (stu_get (cli, "services", NULL));
  assert_int_equal (sr->n_services, 1);
  assert_int_equal (sr->services[0]->replicas, 2);
  assert_int_equal (sr->services[0]->running, 2);
  assert_int_equal (sr->services[0]->pending, 0);

  /* get nodes charges the placed requests to n1. */
  Orch__GetReply *nr = stu_expect_get (stu_get (cli, "nodes", NULL));
  Orch__NodeInfo *n1 = stu_find_node (nr, "n1");
  assert_non_null (n1);
  assert_string_equal (n1->state, "ready");
  assert_int_equal (n1->allocs, 2);
  assert_int_equal (n1->allocated->cpu_milli, 500);
  assert_int_equal (n1->allocated->memory_bytes, 128 * MIB);
  assert_int_equal (n1->capacity->cpu_milli, 2000);

  /* The agent was never told to stop anything. */
  assert_int_equal (stu_count (agent, ORCH__ENVELOPE__MSG_STOP_ALLOC), 0);
}

/* ---- 3. bad spec ----------------------------------------------------------------- */

static void
test_apply_bad_spec_changes_nothing (void **state)
{
  stu_fx_t *fx = *state;
  stu_sched_start (fx);
  stu_peer_t *agent = stu_agent (fx, "n1", 2000, 4 * GIB, NULL, 0);
  stu_peer_t *cli = stu_cli (fx);

  /* The first service is fine, the second's memory is not a quantity:
   * apply is all-or-nothing. */
  const char *spec
      = "{\"services\": ["
        "{\"name\": \"ok\", \"image\": \"busybox\","
        " \"resources\": {\"cpu\": \"100m\", \"memory\": \"64Mi\"}},"
        "{\"name\": \"bad\", \"image\": \"busybox\","
        " \"resources\": {\"cpu\": \"100m\", \"memory\": \"64MB\"}}]}";
  Orch__Error *e = stu_expect_error (stu_apply (cli, spec), 2);
  bool path_named = false;
  for (size_t i = 0; i < e->n_details; i++)
    if (strstr (e->details[i], "services[1].resources.memory"))
      path_named = true;
  if (!path_named)
    fail_msg ("no detail names services[1].resources.memory (%zu details, first: %s)",
              e->n_details, e->n_details ? e->details[0] : "-");

  /* Unknown fields are refused with their path too. */
  e = stu_expect_error (stu_apply (cli, "{\"name\": \"x\", \"image\": \"busybox\", \"colour\": 1,"
                                        " \"resources\": {\"cpu\": \"1\", \"memory\": \"1Gi\"}}"),
                        2);
  path_named = false;
  for (size_t i = 0; i < e->n_details; i++)
    if (strstr (e->details[i], "colour"))
      path_named = true;
  assert_true (path_named);

  /* Nothing stored, nothing placed, nothing started. */
  stu_run_for (fx, 50);
  assert_int_equal (stu_store_range (fx, fx->store, "/orch/services/", NULL), 0);
  assert_int_equal (stu_store_range (fx, fx->store, "/orch/allocs/", NULL), 0);
  assert_int_equal (stu_expect_get (stu_get (cli, "services", NULL))->n_services, 0);
  assert_int_equal (stu_expect_get (stu_get (cli, "allocs", NULL))->n_allocs, 0);
  assert_int_equal (stu_count (agent, ORCH__ENVELOPE__MSG_START_ALLOC), 0);
}

/* ---- 4. scale beyond capacity ------------------------------------------------------ */

static void
test_scale_beyond_capacity_pends (void **state)
{
  stu_fx_t *fx = *state;
  stu_sched_start (fx);
  stu_peer_t *a1 = stu_agent (fx, "n1", 1000, 4 * GIB, NULL, 0);
  stu_peer_t *cli = stu_cli (fx);

  char *spec = svc_json (fx, "web", 4, "300m", "1000", "");
  Orch__ApplyReply *ar = stu_expect_apply (stu_apply (cli, spec));
  assert_int_equal (ar->n_placements, 4);
  size_t placed = 0, unplaced = 0;
  for (size_t i = 0; i < ar->n_placements; i++)
    {
      if (*ar->placements[i]->node)
        {
          assert_string_equal (ar->placements[i]->node, "n1");
          placed++;
        }
      else
        {
          assert_string_equal (ar->placements[i]->alloc_id, "");
          assert_non_null (strstr (ar->placements[i]->reason, "insufficient cpu"));
          unplaced++;
        }
    }
  assert_int_equal (placed, 3);
  assert_int_equal (unplaced, 1);
  assert_true (stu_wait_count (a1, ORCH__ENVELOPE__MSG_START_ALLOC, 3, STU_WAIT_MS));
  stu_run_for (fx, 50);
  assert_int_equal (stu_count (a1, ORCH__ENVELOPE__MSG_START_ALLOC), 3);

  Orch__GetReply *d = stu_expect_get (stu_get (cli, "service", "web"));
  assert_int_equal (d->n_services, 1);
  assert_int_equal (d->services[0]->pending, 1);
  assert_non_null (strstr (d->services[0]->pending_reason, "insufficient cpu"));
  assert_int_equal (d->n_allocs, 3);

  /* A second node: the pending replica goes there, and only that one. */
  stu_peer_t *a2 = stu_agent (fx, "n2", 1000, 4 * GIB, NULL, 0);
  assert_true (stu_wait_count (a2, ORCH__ENVELOPE__MSG_START_ALLOC, 1, STU_WAIT_MS));
  stu_run_for (fx, 50);
  assert_int_equal (stu_count (a2, ORCH__ENVELOPE__MSG_START_ALLOC), 1);
  assert_int_equal (stu_count (a1, ORCH__ENVELOPE__MSG_START_ALLOC), 3);
  assert_int_equal (stu_count (a1, ORCH__ENVELOPE__MSG_STOP_ALLOC), 0);
  d = stu_expect_get (stu_get (cli, "service", "web"));
  assert_int_equal (d->services[0]->pending, 0);
  assert_string_equal (d->services[0]->pending_reason, "");
  assert_int_equal (d->n_allocs, 4);
  size_t on_n2 = 0;
  for (size_t i = 0; i < d->n_allocs; i++)
    if (strcmp (d->allocs[i]->node, "n2") == 0)
      {
        on_n2++;
        assert_string_equal (
            d->allocs[i]->alloc_id,
            stu_nth (a2, ORCH__ENVELOPE__MSG_START_ALLOC, 0)->start_alloc->alloc->alloc_id);
      }
  assert_int_equal (on_n2, 1);
}

/* ---- 5. scale down ------------------------------------------------------------------ */

static void
test_scale_down_stops_extra (void **state)
{
  stu_fx_t *fx = *state;
  stu_sched_start (fx);
  stu_peer_t *agent = stu_agent (fx, "n1", 4000, 4 * GIB, NULL, 0);
  stu_peer_t *cli = stu_cli (fx);

  char *spec3 = svc_json (fx, "web", 3, "100m", "1000", "");
  Orch__ApplyReply *ar = stu_expect_apply (stu_apply (cli, spec3));
  assert_int_equal (ar->n_placements, 3);
  assert_true (stu_wait_count (agent, ORCH__ENVELOPE__MSG_START_ALLOC, 3, STU_WAIT_MS));
  /* One replica runs, two are still starting: scale-down keeps the running one. */
  char *keep = stu_strdup (fx, ar->placements[1]->alloc_id);
  stu_agent_event (agent, keep, "running");
  assert_true (STU_RUN_UNTIL (
      fx,
      strcmp (stu_find_alloc (stu_expect_get (stu_get (cli, "allocs", NULL)), keep)->status->state,
              "running")
          == 0,
      STU_WAIT_MS));

  char *spec1 = svc_json (fx, "web", 1, "100m", "1000", "");
  ar = stu_expect_apply (stu_apply (cli, spec1));
  assert_string_equal (ar->changes[0]->action, "scaled");
  assert_int_equal (ar->changes[0]->version, 1); /* scaling is not a new version */
  assert_int_equal (ar->n_placements, 1);
  assert_string_equal (ar->placements[0]->alloc_id, keep);

  assert_true (stu_wait_count (agent, ORCH__ENVELOPE__MSG_STOP_ALLOC, 2, STU_WAIT_MS));
  stu_run_for (fx, 50);
  char **stopped;
  size_t n_stopped = stu_stopped (agent, &stopped);
  assert_int_equal (n_stopped, 2);
  assert_false (stu_has (stopped, n_stopped, keep));
  assert_string_not_equal (stopped[0], stopped[1]);
  assert_int_equal (stu_count (agent, ORCH__ENVELOPE__MSG_START_ALLOC), 3); /* nothing new */

  Orch__GetReply *gr = stu_expect_get (stu_get (cli, "allocs", NULL));
  assert_int_equal (gr->n_allocs, 1);
  assert_string_equal (gr->allocs[0]->alloc_id, keep);
  assert_int_equal (stu_store_range (fx, fx->store, "/orch/allocs/web/", NULL), 1);
}

/* ---- 6. spec change ------------------------------------------------------------------ */

static void
test_spec_change_replaces_allocs (void **state)
{
  stu_fx_t *fx = *state;
  stu_sched_start (fx);
  stu_peer_t *agent = stu_agent (fx, "n1", 4000, 4 * GIB, NULL, 0);
  stu_peer_t *cli = stu_cli (fx);

  char *v1 = svc_json (fx, "web", 2, "100m", "1000", "");
  stu_expect_apply (stu_apply (cli, v1));
  assert_true (stu_wait_count (agent, ORCH__ENVELOPE__MSG_START_ALLOC, 2, STU_WAIT_MS));
  char **old;
  size_t n_old = stu_started (agent, &old);
  stu_clear (agent);

  /* Applying the same spec again changes nothing. */
  Orch__ApplyReply *ar = stu_expect_apply (stu_apply (cli, v1));
  assert_string_equal (ar->changes[0]->action, "unchanged");
  assert_int_equal (ar->changes[0]->version, 1);
  stu_run_for (fx, 50);
  assert_int_equal (stu_count (agent, ORCH__ENVELOPE__MSG_START_ALLOC), 0);
  assert_int_equal (stu_count (agent, ORCH__ENVELOPE__MSG_STOP_ALLOC), 0);

  /* A new command is a new version: both replicas are replaced. */
  char *v2 = svc_json (fx, "web", 2, "100m", "2000", "");
  ar = stu_expect_apply (stu_apply (cli, v2));
  assert_string_equal (ar->changes[0]->action, "updated");
  assert_int_equal (ar->changes[0]->version, 2);
  assert_int_equal (ar->n_placements, 2);
  for (size_t i = 0; i < ar->n_placements; i++)
    assert_false (stu_has (old, n_old, ar->placements[i]->alloc_id));

  assert_true (stu_wait_count (agent, ORCH__ENVELOPE__MSG_START_ALLOC, 2, STU_WAIT_MS));
  assert_true (stu_wait_count (agent, ORCH__ENVELOPE__MSG_STOP_ALLOC, 2, STU_WAIT_MS));
  char **started, **stopped;
  size_t n_started = stu_started (agent, &started);
  size_t n_stopped = stu_stopped (agent, &stopped);
  assert_int_equal (n_started, 2);
  assert_int_equal (n_stopped, 2);
  for (size_t i = 0; i < n_old; i++)
    assert_true (stu_has (stopped, n_stopped, old[i]));
  for (size_t i = 0; i < n_started; i++)
    {
      assert_false (stu_has (old, n_old, started[i]));
      Orch__Alloc *a = stu_nth (agent, ORCH__ENVELOPE__MSG_START_ALLOC, i)->start_alloc->alloc;
      assert_int_equal (a->spec_version, 2);
      assert_non_null (strstr (a->spec_json, "\"2000\""));
    }

  Orch__GetReply *gr = stu_expect_get (stu_get (cli, "service", "web"));
  assert_int_equal (gr->services[0]->version, 2);
  assert_int_equal (gr->n_allocs, 2);
  for (size_t i = 0; i < gr->n_allocs; i++)
    {
      assert_int_equal (gr->allocs[i]->spec_version, 2);
      assert_true (stu_has (started, n_started, gr->allocs[i]->alloc_id));
    }
}

/* ---- 7. delete ------------------------------------------------------------------------ */

static void
test_delete_stops_with_grace (void **state)
{
  stu_fx_t *fx = *state;
  stu_sched_start (fx);
  stu_peer_t *agent = stu_agent (fx, "n1", 4000, 4 * GIB, NULL, 0);
  stu_peer_t *cli = stu_cli (fx);

  char *spec = svc_json (fx, "web", 2, "100m", "1000", "\"stop_grace\": \"3s\"");
  stu_expect_apply (stu_apply (cli, spec));
  assert_true (stu_wait_count (agent, ORCH__ENVELOPE__MSG_START_ALLOC, 2, STU_WAIT_MS));
  char **started;
  size_t n_started = stu_started (agent, &started);

  Orch__Envelope *r = stu_delete (cli, "web");
  assert_int_equal (r->msg_case, ORCH__ENVELOPE__MSG_DELETE_REPLY);
  assert_int_equal (r->delete_reply->stopped, 2);

  assert_true (stu_wait_count (agent, ORCH__ENVELOPE__MSG_STOP_ALLOC, 2, STU_WAIT_MS));
  for (size_t i = 0; i < 2; i++)
    {
      Orch__StopAlloc *st = stu_nth (agent, ORCH__ENVELOPE__MSG_STOP_ALLOC, i)->stop_alloc;
      assert_true (stu_has (started, n_started, st->alloc_id));
      assert_int_equal (st->grace_ms, 3000);
    }
  assert_string_not_equal (
      stu_nth (agent, ORCH__ENVELOPE__MSG_STOP_ALLOC, 0)->stop_alloc->alloc_id,
      stu_nth (agent, ORCH__ENVELOPE__MSG_STOP_ALLOC, 1)->stop_alloc->alloc_id);

  assert_int_equal (stu_expect_get (stu_get (cli, "services", NULL))->n_services, 0);
  assert_int_equal (stu_expect_get (stu_get (cli, "allocs", NULL))->n_allocs, 0);
  assert_int_equal (stu_store_range (fx, fx->store, "/orch/services/", NULL), 0);
  assert_int_equal (stu_store_range (fx, fx->store, "/orch/allocs/", NULL), 0);
  stu_expect_error (stu_get (cli, "service", "web"), 3);

  /* Deleting what is not there is "not found", and sends no stop. */
  Orch__Error *e = stu_expect_error (stu_delete (cli, "web"), 3);
  assert_non_null (strstr (e->message, "web"));
  stu_expect_error (stu_delete (cli, "never-was"), 3);
  stu_run_for (fx, 50);
  assert_int_equal (stu_count (agent, ORCH__ENVELOPE__MSG_STOP_ALLOC), 2);
}

/* ---- 8. restart -------------------------------------------------------------------- */

/* A second scheduler on the same store (what a restarted scheduler finds
 * in etcd) has every service and allocation, and adopts what the agent
 * still runs instead of starting it again. */
static void
test_restart_keeps_state_and_running_allocs (void **state)
{
  stu_fx_t *fx = *state;
  stu_sched_start (fx);
  stu_peer_t *agent = stu_agent (fx, "n1", 4000, 4 * GIB, NULL, 0);
  stu_peer_t *cli = stu_cli (fx);
  char *spec = svc_json (fx, "web", 2, "100m", "1000", "");
  Orch__ApplyReply *ar = stu_expect_apply (stu_apply (cli, spec));
  assert_int_equal (ar->n_placements, 2);
  const char *ids[2] = { stu_strdup (fx, ar->placements[0]->alloc_id),
                         stu_strdup (fx, ar->placements[1]->alloc_id) };
  assert_true (stu_wait_count (agent, ORCH__ENVELOPE__MSG_START_ALLOC, 2, STU_WAIT_MS));
  stu_agent_event (agent, ids[0], "running");
  stu_agent_event (agent, ids[1], "running");

  /* Wait until the running state is in the store, not only in memory. */
  bool persisted = false;
  int64_t deadline = orch_now_mono_ms () + STU_WAIT_MS;
  while (!persisted && orch_now_mono_ms () < deadline)
    {
      stu_kv_t *kvs;
      size_t n = stu_store_range (fx, fx->store, "/orch/", &kvs);
      size_t running = 0;
      for (size_t i = 0; i < n; i++)
        if (strncmp (kvs[i].key, "/orch/allocs/", 13) == 0
            && strstr (kvs[i].value, "\"state\":\"running\""))
          running++;
      stu_kvs_free (kvs, n);
      persisted = running == 2;
      if (!persisted)
        stu_run_for (fx, 20);
    }
  assert_true (persisted);

  stu_close (agent);
  stu_close (cli);
  stu_sched_stop (fx);
  stu_sched_start (fx);

  cli = stu_cli (fx);
  Orch__GetReply *gr = stu_expect_get (stu_get (cli, "service", "web"));
  assert_int_equal (gr->n_services, 1);
  assert_int_equal (gr->services[0]->replicas, 2);
  assert_int_equal (gr->services[0]->version, 1);
  assert_int_equal (gr->services[0]->running, 2);
  assert_int_equal (gr->n_allocs, 2);
  for (size_t i = 0; i < 2; i++)
    {
      Orch__AllocInfo *ai = stu_find_alloc (gr, ids[i]);
      assert_non_null (ai);
      assert_string_equal (ai->node, "n1");
      assert_string_equal (ai->status->state, "running");
    }

  /* The node is known from its record, down until its agent returns. */
  Orch__GetReply *nr0 = stu_expect_get (stu_get (cli, "nodes", NULL));
  assert_non_null (stu_find_node (nr0, "n1"));
  assert_string_equal (stu_find_node (nr0, "n1")->state, "down");
  assert_int_equal (stu_find_node (nr0, "n1")->capacity->cpu_milli, 4000);

  /* The agent comes back with both still running (and one allocation the
   * cluster does not know): it is told to keep exactly the two, and is not
   * asked to start (or stop) anything. */
  const char *reported[3] = { ids[0], ids[1], "ghost-0000beef" };
  agent = stu_agent (fx, "n1", 4000, 4 * GIB, reported, 3);
  Orch__DesiredAllocs *d
      = stu_nth (agent, ORCH__ENVELOPE__MSG_DESIRED_ALLOCS, 0)->desired_allocs;
  assert_int_equal (d->n_allocs, 2);
  for (size_t i = 0; i < d->n_allocs; i++)
    {
      assert_true (strcmp (d->allocs[i]->alloc_id, ids[0]) == 0
                   || strcmp (d->allocs[i]->alloc_id, ids[1]) == 0);
      assert_non_null (strstr (d->allocs[i]->spec_json, "/bin/sleep"));
    }
  assert_string_not_equal (d->allocs[0]->alloc_id, d->allocs[1]->alloc_id);
  stu_run_for (fx, 300);
  assert_int_equal (stu_count (agent, ORCH__ENVELOPE__MSG_START_ALLOC), 0);
  assert_int_equal (stu_count (agent, ORCH__ENVELOPE__MSG_STOP_ALLOC), 0);
  gr = stu_expect_get (stu_get (cli, "allocs", NULL));
  assert_int_equal (gr->n_allocs, 2);
  Orch__GetReply *nr = stu_expect_get (stu_get (cli, "nodes", NULL));
  assert_string_equal (stu_find_node (nr, "n1")->state, "ready");
  assert_int_equal (stu_find_node (nr, "n1")->allocs, 2);
}

/* An agent that restarts (new connection, same node id) and reports what it
 * still runs is told to keep exactly that: nothing is started or stopped,
 * and the old session is replaced by the new one. */
static void
test_agent_reconnect_adopts (void **state)
{
  stu_fx_t *fx = *state;
  stu_sched_start (fx);
  stu_peer_t *agent = stu_agent (fx, "n1", 4000, 4 * GIB, NULL, 0);
  stu_peer_t *cli = stu_cli (fx);
  char *spec = svc_json (fx, "web", 2, "100m", "1000", "");
  Orch__ApplyReply *ar = stu_expect_apply (stu_apply (cli, spec));
  assert_int_equal (ar->n_placements, 2);
  const char *ids[2] = { stu_strdup (fx, ar->placements[0]->alloc_id),
                         stu_strdup (fx, ar->placements[1]->alloc_id) };
  assert_true (stu_wait_count (agent, ORCH__ENVELOPE__MSG_START_ALLOC, 2, STU_WAIT_MS));

  /* The new session registers before the scheduler saw the old one close. */
  stu_peer_t *again = stu_agent (fx, "n1", 4000, 4 * GIB, ids, 2);
  assert_true (stu_wait_closed (agent, STU_WAIT_MS));
  Orch__DesiredAllocs *d = stu_nth (again, ORCH__ENVELOPE__MSG_DESIRED_ALLOCS, 0)->desired_allocs;
  assert_int_equal (d->n_allocs, 2);
  for (size_t i = 0; i < d->n_allocs; i++)
    assert_true (strcmp (d->allocs[i]->alloc_id, ids[0]) == 0
                 || strcmp (d->allocs[i]->alloc_id, ids[1]) == 0);
  stu_run_for (fx, 200);
  assert_int_equal (stu_count (again, ORCH__ENVELOPE__MSG_START_ALLOC), 0);
  assert_int_equal (stu_count (again, ORCH__ENVELOPE__MSG_STOP_ALLOC), 0);

  /* The states it reported on register are what get shows. */
  Orch__GetReply *gr = stu_expect_get (stu_get (cli, "allocs", NULL));
  assert_int_equal (gr->n_allocs, 2);
  for (size_t i = 0; i < 2; i++)
    assert_string_equal (stu_find_alloc (gr, ids[i])->status->state, "running");
  Orch__GetReply *nr = stu_expect_get (stu_get (cli, "nodes", NULL));
  assert_string_equal (stu_find_node (nr, "n1")->state, "ready");
  assert_int_equal (stu_find_node (nr, "n1")->allocs, 2);

  /* The new session is the live one: logs requests go to it. */
  stu_peer_t *c2 = stu_cli (fx);
  Orch__LogsRequest lr = ORCH__LOGS_REQUEST__INIT;
  lr.alloc_id = (char *) ids[0];
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  env.msg_case = ORCH__ENVELOPE__MSG_LOGS_REQUEST;
  env.logs_request = &lr;
  stu_request (c2, &env);
  assert_true (stu_wait_count (again, ORCH__ENVELOPE__MSG_LOGS_REQUEST, 1, STU_WAIT_MS));
}

/* Changes written to the store by another writer (a second scheduler,
 * etcdctl) are followed through the watch: a service scaled there gets its
 * new replica, a service deleted there is stopped. */
static void
test_external_changes_followed (void **state)
{
  stu_fx_t *fx = *state;
  stu_sched_start (fx);
  stu_peer_t *agent = stu_agent (fx, "n1", 4000, 4 * GIB, NULL, 0);
  stu_peer_t *cli = stu_cli (fx);
  char *spec = svc_json (fx, "web", 2, "100m", "1000", "");
  stu_expect_apply (stu_apply (cli, spec));
  assert_true (stu_wait_count (agent, ORCH__ENVELOPE__MSG_START_ALLOC, 2, STU_WAIT_MS));

  /* Scaled to 3 by someone else: same template, same version. */
  char *spec3 = svc_json (fx, "web", 3, "100m", "1000", "");
  stu_kv_t kv = { .key = "/orch/services/web" };
  kv.value
      = stu_keep (fx, xasprintf ("{\"version\": 1, \"created_at_ms\": 1, \"spec\": %s}", spec3));
  kv.value_len = strlen (kv.value);
  stu_store_put (fx, fx->store, &kv, 1);
  if (!stu_wait_count (agent, ORCH__ENVELOPE__MSG_START_ALLOC, 3, STU_WAIT_MS))
    fail_msg ("a service scaled to 3 in the store got no third StartAlloc");
  Orch__GetReply *gr = stu_expect_get (stu_get (cli, "service", "web"));
  assert_int_equal (gr->services[0]->replicas, 3);
  assert_int_equal (gr->n_allocs, 3);
  assert_int_equal (stu_count (agent, ORCH__ENVELOPE__MSG_STOP_ALLOC), 0);

  /* Deleted by someone else: every allocation is stopped. */
  stu_store_delete (fx, fx->store, "/orch/services/web");
  if (!stu_wait_count (agent, ORCH__ENVELOPE__MSG_STOP_ALLOC, 3, STU_WAIT_MS))
    fail_msg ("a service deleted in the store: %zu of 3 allocations stopped",
              stu_count (agent, ORCH__ENVELOPE__MSG_STOP_ALLOC));
  assert_int_equal (stu_expect_get (stu_get (cli, "services", NULL))->n_services, 0);
  assert_int_equal (stu_expect_get (stu_get (cli, "allocs", NULL))->n_allocs, 0);
  assert_int_equal (stu_store_range (fx, fx->store, "/orch/allocs/", NULL), 0);
}

/* An allocation record deleted by another writer is replaced, and the
 * agent is told to stop the allocation whose record is gone (a StopAlloc
 * or a DesiredAllocs without it): otherwise it runs on unaccounted. */
static void
test_host_ports_distinct (void **state)
{
  stu_fx_t *fx = *state;
  stu_sched_start (fx);
  stu_peer_t *agent = stu_agent (fx, "n1", 4000, 4 * GIB, NULL, 0);
  stu_peer_t *cli = stu_cli (fx);
  const char *ports = "\"ports\": [{\"name\": \"http\", \"port\": 8080}]";
  stu_expect_apply (stu_apply (cli, svc_json (fx, "web", 2, "100m", "1000", ports)));
  assert_true (stu_wait_count (agent, ORCH__ENVELOPE__MSG_START_ALLOC, 2, STU_WAIT_MS));
  uint32_t used[3] = { 0 };
  for (size_t i = 0; i < 2; i++)
    {
      Orch__Alloc *a = stu_nth (agent, ORCH__ENVELOPE__MSG_START_ALLOC, i)->start_alloc->alloc;
      assert_int_equal (a->n_ports, 1);
      assert_string_equal (a->ports[0]->name, "http");
      assert_int_equal (a->ports[0]->port, 8080);
      assert_in_range (a->ports[0]->host_port, 30000, 32767);
      used[i] = a->ports[0]->host_port;
      Orch__GetReply *gr = stu_expect_get (stu_get (cli, "allocs", NULL));
      Orch__AllocInfo *ai = stu_find_alloc (gr, a->alloc_id);
      assert_non_null (ai);
      assert_int_equal (ai->n_ports, 1);
      assert_int_equal (ai->ports[0]->host_port, used[i]);
      assert_string_equal (ai->node_address, "127.0.0.1");
    }
  assert_int_not_equal (used[0], used[1]);

  /* After a restart the ports held by running allocations stay taken. */
  stu_close (agent);
  stu_close (cli);
  stu_sched_stop (fx);
  stu_sched_start (fx);
  agent = stu_agent (fx, "n1", 4000, 4 * GIB, NULL, 0);
  cli = stu_cli (fx);
  stu_clear (agent);
  stu_expect_apply (stu_apply (cli, svc_json (fx, "api", 1, "100m", "1000", ports)));
  assert_true (stu_wait_count (agent, ORCH__ENVELOPE__MSG_START_ALLOC, 1, STU_WAIT_MS));
  Orch__Alloc *a = stu_nth (agent, ORCH__ENVELOPE__MSG_START_ALLOC, 0)->start_alloc->alloc;
  assert_string_equal (a->service, "api");
  assert_int_equal (a->n_ports, 1);
  used[2] = a->ports[0]->host_port;
  assert_in_range (used[2], 30000, 32767);
  assert_int_not_equal (used[2], used[0]);
  assert_int_not_equal (used[2], used[1]);
}

/* ---- 9. node liveness ------------------------------------------------------------------ */

static void
test_silent_node_goes_down (void **state)
{
  stu_fx_t *fx = *state;
  fx->cfg.node_ttl_ms = 300;
  fx->cfg.node_grace_ms = 200;
  stu_sched_start (fx);
  stu_peer_t *silent = stu_agent (fx, "n1", 4000, 4 * GIB, NULL, 0);
  stu_peer_t *alive = stu_agent (fx, "n2", 4000, 4 * GIB, NULL, 0);
  stu_agent_heartbeats (alive, 100);
  stu_peer_t *cli = stu_cli (fx);
  int64_t t0 = orch_now_mono_ms ();

  Orch__GetReply *nr = stu_expect_get (stu_get (cli, "nodes", NULL));
  assert_string_equal (stu_find_node (nr, "n1")->state, "ready");

  /* Down once TTL + grace have passed, and disconnected. */
  assert_true (STU_RUN_UNTIL (
      fx,
      strcmp (stu_find_node (stu_expect_get (stu_get (cli, "nodes", NULL)), "n1")->state, "down")
          == 0,
      2000));
  int64_t down_after = orch_now_mono_ms () - t0;
  assert_true (down_after >= 450);
  assert_true (stu_wait_closed (silent, 2000));
  nr = stu_expect_get (stu_get (cli, "nodes", NULL));
  assert_string_equal (stu_find_node (nr, "n1")->state, "down");
  assert_string_equal (stu_find_node (nr, "n2")->state, "ready");

  /* New placements avoid it. */
  char *spec = svc_json (fx, "web", 3, "100m", "1000", "");
  Orch__ApplyReply *ar = stu_expect_apply (stu_apply (cli, spec));
  assert_int_equal (ar->n_placements, 3);
  for (size_t i = 0; i < ar->n_placements; i++)
    assert_string_equal (ar->placements[i]->node, "n2");
  assert_true (stu_wait_count (alive, ORCH__ENVELOPE__MSG_START_ALLOC, 3, STU_WAIT_MS));
}

/* DESIGN.md §8: the allocations of a node that missed its TTL are replaced
 * on other nodes. */
static void
test_down_node_allocs_replaced (void **state)
{
  stu_fx_t *fx = *state;
  fx->cfg.node_ttl_ms = 300;
  fx->cfg.node_grace_ms = 200;
  stu_sched_start (fx);
  stu_peer_t *silent = stu_agent (fx, "n1", 4000, 4 * GIB, NULL, 0);
  stu_agent_heartbeats (silent, 100);
  stu_peer_t *cli = stu_cli (fx);
  char *spec = svc_json (fx, "web", 2, "100m", "1000", "");
  Orch__ApplyReply *ar = stu_expect_apply (stu_apply (cli, spec));
  assert_int_equal (ar->n_placements, 2);
  assert_string_equal (ar->placements[0]->node, "n1");
  assert_string_equal (ar->placements[1]->node, "n1");

  stu_peer_t *alive = stu_agent (fx, "n2", 4000, 4 * GIB, NULL, 0);
  stu_agent_heartbeats (alive, 100);
  /* n1 stops heartbeating (its heartbeat timer stops; the socket stays). */
  uv_timer_stop (&silent->hb_timer);
  assert_true (stu_wait_closed (silent, 2000));

  if (!stu_wait_count (alive, ORCH__ENVELOPE__MSG_START_ALLOC, 2, 3000))
    fail_msg ("the 2 allocations of the down node n1 were not replaced on n2 (n2 got %zu "
              "StartAlloc)",
              stu_count (alive, ORCH__ENVELOPE__MSG_START_ALLOC));
  Orch__GetReply *gr = stu_expect_get (stu_get (cli, "allocs", NULL));
  size_t on_n2 = 0;
  for (size_t i = 0; i < gr->n_allocs; i++)
    if (strcmp (gr->allocs[i]->node, "n2") == 0)
      on_n2++;
  assert_int_equal (on_n2, 2);
}

/* ---- 10. logs ---------------------------------------------------------------------------- */

static void
test_logs_forwarded (void **state)
{
  stu_fx_t *fx = *state;
  stu_sched_start (fx);
  stu_peer_t *agent = stu_agent (fx, "n1", 4000, 4 * GIB, NULL, 0);
  stu_peer_t *cli = stu_cli (fx);
  char *spec = svc_json (fx, "web", 1, "100m", "1000", "");
  Orch__ApplyReply *ar = stu_expect_apply (stu_apply (cli, spec));
  char *id = stu_strdup (fx, ar->placements[0]->alloc_id);
  /* Move the client's request ids away from the agent's. */
  for (int i = 0; i < 5; i++)
    stu_expect_get (stu_get (cli, "services", NULL));

  Orch__LogsRequest lr = ORCH__LOGS_REQUEST__INIT;
  lr.alloc_id = id;
  lr.tail_bytes = 100;
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  env.msg_case = ORCH__ENVELOPE__MSG_LOGS_REQUEST;
  env.logs_request = &lr;
  uint64_t req = stu_request (cli, &env);

  assert_true (stu_wait_count (agent, ORCH__ENVELOPE__MSG_LOGS_REQUEST, 1, STU_WAIT_MS));
  Orch__Envelope *fwd = stu_nth (agent, ORCH__ENVELOPE__MSG_LOGS_REQUEST, 0);
  assert_string_equal (fwd->logs_request->alloc_id, id);
  assert_int_equal (fwd->logs_request->tail_bytes, 100);

  const char text[] = "hello from web\n";
  Orch__LogsReply rep = ORCH__LOGS_REPLY__INIT;
  rep.data.data = (uint8_t *) text;
  rep.data.len = sizeof text - 1;
  rep.truncated = true;
  Orch__Envelope out = ORCH__ENVELOPE__INIT;
  out.request_id = fwd->request_id;
  out.msg_case = ORCH__ENVELOPE__MSG_LOGS_REPLY;
  out.logs_reply = &rep;
  stu_send_raw (agent, &out);

  Orch__Envelope *got = stu_wait_reply (cli, req, STU_WAIT_MS);
  assert_non_null (got);
  assert_int_equal (got->msg_case, ORCH__ENVELOPE__MSG_LOGS_REPLY);
  assert_int_equal (got->logs_reply->data.len, sizeof text - 1);
  assert_memory_equal (got->logs_reply->data.data, text, sizeof text - 1);
  assert_true (got->logs_reply->truncated);

  /* An agent's refusal comes back to the client as the client's Error. */
  stu_clear (agent);
  env.request_id = 0;
  req = stu_request (cli, &env);
  assert_true (stu_wait_count (agent, ORCH__ENVELOPE__MSG_LOGS_REQUEST, 1, STU_WAIT_MS));
  fwd = stu_nth (agent, ORCH__ENVELOPE__MSG_LOGS_REQUEST, 0);
  Orch__Error ae = ORCH__ERROR__INIT;
  ae.code = 3;
  ae.message = "no log for this allocation yet";
  Orch__Envelope aenv = ORCH__ENVELOPE__INIT;
  aenv.request_id = fwd->request_id;
  aenv.msg_case = ORCH__ENVELOPE__MSG_ERROR;
  aenv.error = &ae;
  stu_send_raw (agent, &aenv);
  Orch__Error *e = stu_expect_error (stu_wait_reply (cli, req, STU_WAIT_MS), 3);
  assert_string_equal (e->message, "no log for this allocation yet");

  /* Unknown allocation: not found, and the agent is not asked. */
  stu_clear (agent);
  stu_expect_error (stu_logs (cli, "web-00000000", 0), 3);
  stu_run_for (fx, 50);
  assert_int_equal (stu_count (agent, ORCH__ENVELOPE__MSG_LOGS_REQUEST), 0);
}

/* The node goes away while its agent is fetching logs: orchctl is told at
 * once that the logs are unavailable instead of waiting out the 10 s
 * forwarding timeout. */
static void
test_logs_agent_gone (void **state)
{
  stu_fx_t *fx = *state;
  stu_sched_start (fx);
  stu_peer_t *agent = stu_agent (fx, "n1", 4000, 4 * GIB, NULL, 0);
  stu_peer_t *cli = stu_cli (fx);
  char *spec = svc_json (fx, "web", 1, "100m", "1000", "");
  Orch__ApplyReply *ar = stu_expect_apply (stu_apply (cli, spec));
  Orch__LogsRequest lr = ORCH__LOGS_REQUEST__INIT;
  lr.alloc_id = stu_strdup (fx, ar->placements[0]->alloc_id);
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  env.msg_case = ORCH__ENVELOPE__MSG_LOGS_REQUEST;
  env.logs_request = &lr;
  uint64_t req = stu_request (cli, &env);
  assert_true (stu_wait_count (agent, ORCH__ENVELOPE__MSG_LOGS_REQUEST, 1, STU_WAIT_MS));
  stu_close (agent);

  Orch__Envelope *r = stu_wait_reply (cli, req, 2000);
  if (r == NULL)
    fail_msg ("orchctl logs got no answer within 2 s after the node's agent disconnected");
  stu_expect_error (r, 4);

  /* And while the node is down, logs are refused at once. */
  stu_expect_error (stu_logs (cli, lr.alloc_id, 0), 4);
}

/* ---- 11. drain -------------------------------------------------------------------------- */

static void
test_drain_moves_allocs (void **state)
{
  stu_fx_t *fx = *state;
  stu_sched_start (fx);
  stu_peer_t *a1 = stu_agent (fx, "n1", 4000, 4 * GIB, NULL, 0);
  stu_peer_t *cli = stu_cli (fx);
  char *spec = svc_json (fx, "web", 2, "100m", "1000", "");
  Orch__ApplyReply *ar = stu_expect_apply (stu_apply (cli, spec));
  assert_int_equal (ar->n_placements, 2);
  assert_true (stu_wait_count (a1, ORCH__ENVELOPE__MSG_START_ALLOC, 2, STU_WAIT_MS));
  char **old;
  size_t n_old = stu_started (a1, &old);

  stu_peer_t *a2 = stu_agent (fx, "n2", 4000, 4 * GIB, NULL, 0);
  stu_run_for (fx, 50);
  assert_int_equal (stu_count (a2, ORCH__ENVELOPE__MSG_START_ALLOC), 0);

  Orch__Envelope *r = stu_drain (cli, "n1");
  assert_int_equal (r->msg_case, ORCH__ENVELOPE__MSG_DRAIN_REPLY);
  assert_int_equal (r->drain_reply->moved, 2);

  assert_true (stu_wait_count (a2, ORCH__ENVELOPE__MSG_START_ALLOC, 2, STU_WAIT_MS));
  assert_true (stu_wait_count (a1, ORCH__ENVELOPE__MSG_STOP_ALLOC, 2, STU_WAIT_MS));
  char **stopped;
  size_t n_stopped = stu_stopped (a1, &stopped);
  for (size_t i = 0; i < n_old; i++)
    assert_true (stu_has (stopped, n_stopped, old[i]));

  Orch__GetReply *gr = stu_expect_get (stu_get (cli, "allocs", NULL));
  assert_int_equal (gr->n_allocs, 2);
  for (size_t i = 0; i < gr->n_allocs; i++)
    {
      assert_string_equal (gr->allocs[i]->node, "n2");
      assert_false (stu_has (old, n_old, gr->allocs[i]->alloc_id));
    }
  Orch__GetReply *nr = stu_expect_get (stu_get (cli, "nodes", NULL));
  assert_string_equal (stu_find_node (nr, "n1")->state, "draining");
  assert_int_equal (stu_find_node (nr, "n1")->allocs, 0);

  /* A draining node takes no new work either. */
  char *spec2 = svc_json (fx, "api", 1, "100m", "1000", "");
  ar = stu_expect_apply (stu_apply (cli, spec2));
  assert_string_equal (ar->placements[0]->node, "n2");
  stu_expect_error (stu_drain (cli, "nope"), 3);
}

/* Draining the only node with room must not take the service down: the
 * allocations stay until a replacement can run elsewhere (Nomad's drain
 * migrates; DESIGN.md §8 places the replacement before giving up the old
 * one). */
static void
test_drain_without_room_keeps_allocs (void **state)
{
  stu_fx_t *fx = *state;
  stu_sched_start (fx);
  stu_peer_t *a1 = stu_agent (fx, "n1", 4000, 4 * GIB, NULL, 0);
  stu_peer_t *cli = stu_cli (fx);
  stu_expect_apply (stu_apply (cli, svc_json (fx, "web", 2, "100m", "1000", "")));
  assert_true (stu_wait_count (a1, ORCH__ENVELOPE__MSG_START_ALLOC, 2, STU_WAIT_MS));

  Orch__Envelope *r = stu_drain (cli, "n1");
  assert_int_equal (r->msg_case, ORCH__ENVELOPE__MSG_DRAIN_REPLY);
  stu_run_for (fx, 200);
  if (stu_count (a1, ORCH__ENVELOPE__MSG_STOP_ALLOC) != 0)
    fail_msg ("draining the only node stopped %zu of 2 allocations with nowhere to move them",
              stu_count (a1, ORCH__ENVELOPE__MSG_STOP_ALLOC));
  Orch__GetReply *gr = stu_expect_get (stu_get (cli, "service", "web"));
  assert_int_equal (gr->n_allocs, 2);

  /* Room appears: now they move. */
  stu_peer_t *a2 = stu_agent (fx, "n2", 4000, 4 * GIB, NULL, 0);
  assert_true (stu_wait_count (a2, ORCH__ENVELOPE__MSG_START_ALLOC, 2, STU_WAIT_MS));
  assert_true (stu_wait_count (a1, ORCH__ENVELOPE__MSG_STOP_ALLOC, 2, STU_WAIT_MS));
}

/* ---- 12. plan ---------------------------------------------------------------------------- */

/* plan (apply with dry_run) answers what would be placed where and changes
 * nothing: no record, no allocation, no start. */
static void
test_plan_changes_nothing (void **state)
{
  stu_fx_t *fx = *state;
  stu_sched_start (fx);
  stu_peer_t *agent = stu_agent (fx, "n1", 1000, 4 * GIB, NULL, 0);
  stu_peer_t *cli = stu_cli (fx);
  Orch__ApplyRequest req = ORCH__APPLY_REQUEST__INIT;
  req.spec_json = svc_json (fx, "web", 4, "300m", "1000", "");
  req.dry_run = true;
  Orch__Envelope env = ORCH__ENVELOPE__INIT;
  env.msg_case = ORCH__ENVELOPE__MSG_APPLY_REQUEST;
  env.apply_request = &req;
  uint64_t id = stu_request (cli, &env);
  Orch__ApplyReply *ar = stu_expect_apply (stu_wait_reply (cli, id, STU_WAIT_MS));
  assert_int_equal (ar->n_changes, 1);
  assert_string_equal (ar->changes[0]->action, "created");
  assert_int_equal (ar->n_placements, 4);
  size_t placed = 0;
  for (size_t i = 0; i < ar->n_placements; i++)
    {
      assert_string_equal (ar->placements[i]->alloc_id, "");
      if (strcmp (ar->placements[i]->node, "n1") == 0)
        placed++;
      else
        assert_non_null (strstr (ar->placements[i]->reason, "insufficient cpu"));
    }
  assert_int_equal (placed, 3);

  stu_run_for (fx, 100);
  assert_int_equal (stu_expect_get (stu_get (cli, "services", NULL))->n_services, 0);
  assert_int_equal (stu_count (agent, ORCH__ENVELOPE__MSG_START_ALLOC), 0);
  if (stu_store_range (fx, fx->store, "/orch/services/", NULL) != 0)
    fail_msg ("plan wrote the service to the store (a restart would run it, and the next "
              "apply is refused as a concurrent change)");
  assert_int_equal (stu_store_range (fx, fx->store, "/orch/allocs/", NULL), 0);
  /* The plan reserved nothing: a real apply still gets all three. */
  ar = stu_expect_apply (stu_apply (cli, svc_json (fx, "web", 3, "300m", "1000", "")));
  assert_int_equal (ar->n_placements, 3);
  for (size_t i = 0; i < ar->n_placements; i++)
    assert_string_equal (ar->placements[i]->node, "n1");
}

/* ---- 9. leader election ------------------------------------------------------------ */

/* A second scheduler on the same store, on ports of its own, named name.
 * The strings live in the fixture. */
static sched_t *
second_scheduler (stu_fx_t *fx, const char *name, int *api_port)
{
  sched_config_t cfg = fx->cfg;
  *api_port = stu_free_port ();
  cfg.api_listen = stu_keep (fx, xasprintf ("127.0.0.1:%d", *api_port));
  cfg.agent_listen = stu_keep (fx, xasprintf ("127.0.0.1:%d", stu_free_port ()));
  cfg.identity = name;
  orch_err_t err = { 0 };
  sched_t *s = sched_new_with_store (&fx->loop, &cfg, fx->store, &err);
  if (s == NULL)
    fail_msg ("sched_new_with_store: %s", err.msg);
  return s;
}

/* A Hello to port: the error a standby answers with, or NULL when accepted. */
static Orch__Error *
hello_error (stu_fx_t *fx, int port)
{
  stu_peer_t *p = stu_connect (fx, port);
  uint64_t id = stu_hello (p, WIRE_PROTOCOL_VERSION, "cli", "tester", "");
  Orch__Envelope *r = stu_wait_reply (p, id, STU_WAIT_MS);
  assert_non_null (r);
  return r->msg_case == ORCH__ENVELOPE__MSG_ERROR ? r->error : NULL;
}

/* One scheduler leads; another on the same etcd stands by, refusing
 * clients with the leader's name, and takes over with the whole state when
 * the leader's lease expires. The deposed leader stops (exit status 1). */
static void
test_standby_takes_over (void **state)
{
  stu_fx_t *fx = *state;
  fx->cfg.leader_ttl_ms = 2000;
  stu_sched_start (fx);
  assert_true (fx->s->leading);
  stu_peer_t *cli = stu_cli (fx);
  stu_expect_apply (stu_apply (cli, svc_json (fx, "web", 1, "100m", "100", "")));
  stu_close (cli);

  int port2;
  sched_t *s2 = second_scheduler (fx, "standby-2", &port2);
  stu_run_for (fx, 300);
  assert_false (s2->leading);
  Orch__Error *e = hello_error (fx, port2);
  assert_non_null (e);
  assert_int_equal (e->code, 4);
  assert_non_null (strstr (e->message, "scheduler standby-2 is standing by: sched-test"));
  assert_non_null (strstr (e->message, fx->api_addr));

  /* The leader's lease expires (etcd lost it while the leader was cut off). */
  store_mem_expire_lease (fx->store, fx->s->lease_id);
  assert_true (STU_RUN_UNTIL (fx, fx->s->stopping, 3000));
  assert_int_equal (sched_exit_code (fx->s), 1);
  assert_true (STU_RUN_UNTIL (fx, s2->leading && s2->loaded, 3000));
  assert_null (hello_error (fx, port2));
  assert_non_null (orch_map_get (&s2->services, "web"));

  stu_sched_stop (fx);
  stu_sched_halt (fx, s2);
  /* A clean stop gave the key back. */
  assert_int_equal (stu_store_range (fx, fx->store, "/orch/leader", NULL), 0);
}

/* A leader whose key is taken over writes nothing more: every transaction
 * carries the compare on the key (the fence), and the failed write makes it
 * notice and stop. */
static void
test_deposed_leader_cannot_write (void **state)
{
  stu_fx_t *fx = *state;
  stu_sched_start (fx);
  stu_peer_t *cli = stu_cli (fx);
  /* This leader no longer checks its key by itself: only the fence can
   * tell it. */
  uv_timer_stop (&fx->s->leader_timer);

  /* Another scheduler becomes leader while this one still believes it leads
   * (an operator deleted the key; the standby won the next campaign). */
  int port2;
  sched_t *s2 = second_scheduler (fx, "other", &port2);
  stu_run_for (fx, 100);
  stu_store_delete (fx, fx->store, "/orch/leader");
  assert_true (STU_RUN_UNTIL (fx, s2->leading, 3000));
  assert_true (fx->s->leading);

  Orch__Envelope *r = stu_apply (cli, svc_json (fx, "late", 1, "100m", "100", ""));
  assert_int_equal (r->msg_case, ORCH__ENVELOPE__MSG_ERROR);
  assert_int_equal (stu_store_range (fx, fx->store, "/orch/services/late", NULL), 0);
  assert_true (STU_RUN_UNTIL (fx, fx->s->stopping, 3000));
  assert_int_equal (sched_exit_code (fx->s), 1);
  stu_sched_stop (fx);
  stu_sched_halt (fx, s2);
}

/* ---- 10. metrics ------------------------------------------------------------------- */

/* Sends request to 127.0.0.1:port and returns the whole answer (kept by the
 * fixture), driving the loop while the scheduler serves it. */
static char *
http_raw (stu_fx_t *fx, int port, const char *request)
{
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true (fd >= 0);
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) port) };
  sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  assert_int_equal (connect (fd, (struct sockaddr *) &sa, sizeof sa), 0);
  assert_int_equal (send (fd, request, strlen (request), 0), (ssize_t) strlen (request));
  char *buf = stu_keep (fx, xmalloc (1 << 16));
  size_t len = 0;
  int64_t deadline = orch_now_mono_ms () + STU_WAIT_MS;
  for (;;)
    {
      ssize_t n = recv (fd, buf + len, (1 << 16) - 1 - len, MSG_DONTWAIT);
      if (n == 0)
        break;
      if (n > 0)
        len += (size_t) n;
      else if (orch_now_mono_ms () > deadline)
        fail_msg ("no answer from the metrics endpoint");
      else
        stu_run_once (fx);
    }
  close (fd);
  buf[len] = '\0';
  return buf;
}

/* GET /metrics: the scheduler's state in Prometheus' text format; other
 * requests get a clear HTTP error. */
static void
test_metrics_endpoint (void **state)
{
  stu_fx_t *fx = *state;
  int port = stu_free_port ();
  fx->cfg.metrics_listen = stu_keep (fx, xasprintf ("127.0.0.1:%d", port));
  stu_sched_start (fx);
  stu_peer_t *agent = stu_agent (fx, "n1", 2000, 4 * GIB, NULL, 0);
  stu_peer_t *cli = stu_cli (fx);
  Orch__ApplyReply *ar = stu_expect_apply (stu_apply (cli, svc_json (fx, "web", 2, "250m", "1000", "")));
  assert_true (stu_wait_count (agent, ORCH__ENVELOPE__MSG_START_ALLOC, 2, STU_WAIT_MS));
  stu_agent_event (agent, ar->placements[0]->alloc_id, "running");
  stu_run_for (fx, 50);

  char *r = http_raw (fx, port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  assert_true (strncmp (r, "HTTP/1.1 200 OK\r\n", 17) == 0);
  assert_non_null (strstr (r, "Content-Type: text/plain; version=0.0.4"));
  static const char *const want[] = {
    "# TYPE orch_scheduler_leader gauge\norch_scheduler_leader 1\n",
    "orch_scheduler_info{name=\"sched-test\",version=\"",
    "\norch_services 1\n",
    "\norch_allocations{state=\"running\"} 1\n",
    "\norch_allocations{state=\"pending\"} 1\n",
    "\norch_allocations_by_isolation{isolation=\"container\"} 2\n",
    "\norch_nodes{state=\"ready\"} 1\n",
    "\norch_capacity_cpu_millicores 2000\n",
    "\norch_agent_sessions 1\n",
    "\norch_api_connections 1\n",
    "# TYPE orch_reconcile_passes_total counter\n",
  };
  for (size_t i = 0; i < ORCH_ARRAY_LEN (want); i++)
    if (strstr (r, want[i]) == NULL)
      fail_msg ("metrics lack \"%s\":\n%s", want[i], r);
  /* Content-Length matches the body. */
  const char *body = strstr (r, "\r\n\r\n") + 4;
  const char *cl = strstr (r, "Content-Length: ");
  assert_non_null (cl);
  assert_int_equal (strtoul (cl + 16, NULL, 10), strlen (body));

  assert_non_null (strstr (http_raw (fx, port, "GET /other HTTP/1.1\r\n\r\n"), "HTTP/1.1 404 "));
  assert_non_null (strstr (http_raw (fx, port, "POST /metrics HTTP/1.1\r\n\r\n"), "HTTP/1.1 405 "));
  assert_non_null (strstr (http_raw (fx, port, "hello\r\n\r\n"), "HTTP/1.1 400 "));
  /* The scheduler still serves afterwards. */
  stu_expect_get (stu_get (cli, "services", NULL));
}

static const struct CMUnitTest tests[] = {
  cmocka_unit_test_setup_teardown (test_hello_refusals, setup, teardown),
  cmocka_unit_test_setup_teardown (test_apply_places_and_starts, setup, teardown),
  cmocka_unit_test_setup_teardown (test_apply_bad_spec_changes_nothing, setup, teardown),
  cmocka_unit_test_setup_teardown (test_scale_beyond_capacity_pends, setup, teardown),
  cmocka_unit_test_setup_teardown (test_scale_down_stops_extra, setup, teardown),
  cmocka_unit_test_setup_teardown (test_spec_change_replaces_allocs, setup, teardown),
  cmocka_unit_test_setup_teardown (test_delete_stops_with_grace, setup, teardown),
  cmocka_unit_test_setup_teardown (test_restart_keeps_state_and_running_allocs, setup, teardown),
  cmocka_unit_test_setup_teardown (test_agent_reconnect_adopts, setup, teardown),
  cmocka_unit_test_setup_teardown (test_external_changes_followed, setup, teardown),
  cmocka_unit_test_setup_teardown (test_host_ports_distinct, setup, teardown),
  cmocka_unit_test_setup_teardown (test_silent_node_goes_down, setup, teardown),
  cmocka_unit_test_setup_teardown (test_down_node_allocs_replaced, setup, teardown),
  cmocka_unit_test_setup_teardown (test_logs_forwarded, setup, teardown),
  cmocka_unit_test_setup_teardown (test_logs_agent_gone, setup, teardown),
  cmocka_unit_test_setup_teardown (test_drain_moves_allocs, setup, teardown),
  cmocka_unit_test_setup_teardown (test_drain_without_room_keeps_allocs, setup, teardown),
  cmocka_unit_test_setup_teardown (test_plan_changes_nothing, setup, teardown),
  cmocka_unit_test_setup_teardown (test_standby_takes_over, setup, teardown),
  cmocka_unit_test_setup_teardown (test_deposed_leader_cannot_write, setup, teardown),
  cmocka_unit_test_setup_teardown (test_metrics_endpoint, setup, teardown),
};

ORCH_TEST_MAIN (tests)
