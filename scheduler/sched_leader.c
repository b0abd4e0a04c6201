/* Leader election among schedulers sharing one etcd (DESIGN.md §5, §8).
 *
 * /orch/leader holds the leader's name and addresses and is attached to its
 * lease. Every scheduler starts as a candidate: it grants itself a lease
 * and tries to create the key (a transaction comparing its create_revision
 * with 0). The winner loads the state and serves; the others stand by,
 * refusing clients and agents with the leader's name (sched_core.c), and
 * try again every second while keeping their own lease alive.
 *
 * Everyone renews its lease every third of the TTL; the leader also reads
 * its key every second. It stops at once when
 * the lease is gone, when etcd could not be reached for longer than the TTL
 * (its lease may have expired unseen), or when a write finds the key no
 * longer its own: another scheduler may lead by then, and two writers would
 * undo each other's work. Every transaction of the write queue also carries
 * a compare on the key's create_revision (sched_write.c), so a deposed
 * leader cannot write even before it notices. A leader that stops cleanly
 * revokes its lease first, so that a standby takes over within one retry
 * instead of one TTL. */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orch_log.h"
#include "orch_util.h"
#include "sched_internal.h"

/* Rounds: a standby campaigns and a leader checks its key once a second
 * (or every third of a shorter TTL); keep-alives go every third of the TTL. */
#define SCHED_LEADER_MIN_STEP_MS 200
#define SCHED_LEADER_MAX_STEP_MS 1000

static int64_t
leader_ttl_s (const sched_t *s)
{
  int64_t ttl = (s->cfg.leader_ttl_ms + 999) / 1000;
  return ttl < 2 ? 2 : ttl;
}

/* What the key holds: who leads and where to reach it. */
static char *
leader_value (const sched_t *s)
{
  json_t *o = json_pack ("{s:s, s:s, s:s}", "name", s->cfg.identity ? s->cfg.identity : "",
                         "api", s->cfg.api_listen ? s->cfg.api_listen : "", "agents",
                         s->cfg.agent_listen ? s->cfg.agent_listen : "");
  char *v = json_dumps (o, JSON_COMPACT);
  json_decref (o);
  return v;
}

/* "NAME (orchctl at API, agents at AGENTS)" from a key's value. */
static char *
leader_describe (const char *value, size_t len)
{
  json_error_t je;
  json_t *o = json_loadb (value, len, 0, &je);
  const char *name = json_string_value (json_object_get (o, "name"));
  const char *api = json_string_value (json_object_get (o, "api"));
  const char *agents = json_string_value (json_object_get (o, "agents"));
  char *d = name != NULL ? xasprintf ("%s (orchctl at %s, agents at %s)", name, api ? api : "?",
                                      agents ? agents : "?")
                         : xstrdup ("an unknown scheduler");
  json_decref (o);
  return d;
}

static void
leader_lose (sched_t *s, const char *why)
{
  if (s->stopping)
    return;
  orch_error ("lost the leadership: %s; stopping so that only the new leader writes (run again, "
              "this scheduler stands by)",
              why);
  s->leading = false;
  s->exit_code = 1;
  sched_stop (s);
}

static void
on_leader_read (void *ctx, int status, const orch_err_t *err, const store_kv_t *kvs, size_t n,
                int64_t revision)
{
  sched_t *s = ctx;
  (void) revision;
  s->leader_req--;
  if (s->stopping || status < 0)
    return;
  for (size_t i = 0; i < n; i++)
    if (strcmp (kvs[i].key, SCHED_LEADER_KEY) == 0)
      {
        if (s->leading && kvs[i].create_revision != s->leader_rev)
          {
            leader_lose (s, "/orch/leader now belongs to another scheduler");
            return;
          }
        if (!s->leading)
          {
            char *who = leader_describe (kvs[i].value, kvs[i].value_len);
            if (s->leader_seen == NULL || strcmp (s->leader_seen, who) != 0)
              orch_info ("standing by: %s leads", who);
            free (s->leader_seen);
            s->leader_seen = who;
          }
        return;
      }
  if (s->leading)
    leader_lose (s, "/orch/leader is gone");
}

/* Reads the key: who leads (standby), or whether we still do. */
static void
leader_read (sched_t *s)
{
  orch_err_t err = { 0 };
  if (s->store == NULL)
    return;
  if (s->store->ops->range_prefix (s->store, SCHED_LEADER_KEY, on_leader_read, s, &err) == 0)
    s->leader_req++;
}

static void
on_campaign (void *ctx, int status, const orch_err_t *err, bool succeeded, int64_t revision)
{
  sched_t *s = ctx;
  s->leader_req--;
  if (s->stopping)
    return;
  if (status < 0)
    {
      orch_warn ("leader election: %s", err ? err->msg : "store error");
      return;
    }
  if (!succeeded)
    {
      leader_read (s);
      return;
    }
  s->leading = true;
  s->leader_rev = revision;
  free (s->leader_seen);
  s->leader_seen = NULL;
  orch_info ("leading (etcd lease %llx, TTL %lld s); loading the cluster's state",
             (unsigned long long) s->lease_id, (long long) leader_ttl_s (s));
  sched_persist_load (s);
}

static void
campaign (sched_t *s)
{
  orch_err_t err = { 0 };
  cleanup_free char *value = leader_value (s);
  store_cmp_t cmp = { .key = SCHED_LEADER_KEY, .target = STORE_CMP_CREATE_REVISION, .revision = 0 };
  store_op_t op = { .type = STORE_OP_PUT,
                    .key = SCHED_LEADER_KEY,
                    .value = value,
                    .value_len = strlen (value),
                    .lease = s->lease_id };
  if (s->store->ops->txn (s->store, &cmp, 1, &op, 1, on_campaign, s, &err) == 0)
    s->leader_req++;
  else
    orch_warn ("leader election: %s", err.msg);
}

static void
on_keepalive (void *ctx, int status, const orch_err_t *err, int64_t lease_id, int64_t ttl_s)
{
  sched_t *s = ctx;
  (void) lease_id;
  s->leader_req--;
  if (s->stopping)
    return;
  int64_t now = orch_now_mono_ms ();
  if (status < 0)
    {
      if (err != NULL && err->code == ENOENT)
        ttl_s = 0; /* the lease is gone */
      else
        {
          if (s->leading && now - s->lease_ok_ms > s->cfg.leader_ttl_ms)
            leader_lose (s, "etcd could not be reached for longer than the leader TTL");
          else
            orch_warn ("leader lease keep-alive: %s", err ? err->msg : "store error");
          return;
        }
    }
  if (ttl_s <= 0)
    {
      if (s->leading)
        {
          leader_lose (s, "its etcd lease expired");
          return;
        }
      s->lease_id = 0; /* a candidate grants itself another */
      return;
    }
  s->lease_ok_ms = now;
  if (!s->leading)
    campaign (s);
  else
    leader_read (s); /* still ours? (a deleted key does not end the lease) */
}

static void
on_ignored_revoke (void *ctx, int status, const orch_err_t *err, int64_t lease_id, int64_t ttl_s)
{
  (void) ctx;
  (void) status;
  (void) err;
  (void) lease_id;
  (void) ttl_s;
}

static void
on_grant (void *ctx, int status, const orch_err_t *err, int64_t lease_id, int64_t ttl_s)
{
  sched_t *s = ctx;
  (void) ttl_s;
  s->leader_req--;
  if (s->stopping)
    {
      /* Granted while stopping: give it back rather than let it linger. */
      if (status == 0 && s->store != NULL)
        s->store->ops->lease_revoke (s->store, lease_id, on_ignored_revoke, NULL, NULL);
      return;
    }
  if (status < 0)
    {
      orch_warn ("leader election: cannot grant a lease: %s", err ? err->msg : "store error");
      return;
    }
  s->lease_id = lease_id;
  s->lease_ok_ms = orch_now_mono_ms ();
  campaign (s);
}

/* One round: a lease first, then keep-alive (and, standing by, a campaign
 * once it is known to live). */
static void
leader_step (sched_t *s)
{
  orch_err_t err = { 0 };
  if (s->stopping || s->store == NULL || s->leader_req > 0)
    return;
  if (s->lease_id == 0)
    {
      if (s->store->ops->lease_grant (s->store, leader_ttl_s (s), on_grant, s, &err) == 0)
        s->leader_req++;
      else
        orch_warn ("leader election: %s", err.msg);
      return;
    }
  if (orch_now_mono_ms () - s->lease_ok_ms < s->cfg.leader_ttl_ms / 3)
    {
      if (!s->leading)
        campaign (s);
      else
        leader_read (s);
      return;
    }
  if (s->store->ops->lease_keepalive (s->store, s->lease_id, on_keepalive, s, &err) == 0)
    s->leader_req++;
  else
    orch_warn ("leader lease keep-alive: %s", err.msg);
}

static void
on_leader_timer (uv_timer_t *t)
{
  leader_step (t->data);
}

void
sched_leader_start (sched_t *s)
{
  int64_t step = s->cfg.leader_ttl_ms / 3;
  if (step < SCHED_LEADER_MIN_STEP_MS)
    step = SCHED_LEADER_MIN_STEP_MS;
  if (step > SCHED_LEADER_MAX_STEP_MS)
    step = SCHED_LEADER_MAX_STEP_MS;
  uv_timer_init (s->loop, &s->leader_timer);
  s->leader_timer.data = s;
  s->handles_open++;
  uv_timer_start (&s->leader_timer, on_leader_timer, 0, (uint64_t) step);
}

void
sched_leader_check (sched_t *s)
{
  if (s->leading)
    leader_read (s);
}

const char *
sched_leader_seen (const sched_t *s)
{
  return s->leader_seen;
}

typedef struct leader_release_s
{
  sched_t *s;
  void (*done) (sched_t *s);
} leader_release_t;

static void
on_revoked (void *ctx, int status, const orch_err_t *err, int64_t lease_id, int64_t ttl_s)
{
  leader_release_t *r = ctx;
  (void) lease_id;
  (void) ttl_s;
  if (status < 0)
    orch_warn ("could not give up the leadership (a standby takes over when the lease expires): "
               "%s",
               err ? err->msg : "store error");
  else
    orch_info ("gave up the leadership");
  r->s->handles_open--;
  r->done (r->s);
  free (r);
}

bool
sched_leader_release (sched_t *s, void (*done) (sched_t *s))
{
  orch_err_t err = { 0 };
  if (s->leader_timer.loop == s->loop && !uv_is_closing ((uv_handle_t *) &s->leader_timer))
    uv_close ((uv_handle_t *) &s->leader_timer, sched_on_handle_closed);
  if (s->lease_id == 0 || s->store == NULL)
    return false;
  leader_release_t *r = xcalloc (1, sizeof *r);
  r->s = s;
  r->done = done;
  int64_t lease = s->lease_id;
  s->lease_id = 0;
  s->leading = false;
  if (s->store->ops->lease_revoke (s->store, lease, on_revoked, r, &err) < 0)
    {
      free (r);
      return false;
    }
  s->handles_open++; /* the revoke keeps the scheduler alive until it answers */
  return true;
}
