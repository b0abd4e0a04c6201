#include <string.h>

#include "orch_log.h"
#include "orch_util.h"
#include "sched_write.h"

struct sched_batch_s
{
  sched_t *s;
  store_op_t *ops;
  size_t n_ops, cap_ops;
  store_cmp_t *cmps;
  size_t n_cmps, cap_cmps;
  size_t next; /* first op not yet sent */
  size_t sent; /* ops in the transaction in flight */
  sched_batch_cb cb;
  void *ctx;
  sched_batch_t *queue_next;
  int64_t revision;
};

static sched_batch_t **
queue_head (sched_t *s)
{
  return &s->write_queue;
}

sched_batch_t *
sched_batch_new (sched_t *s)
{
  sched_batch_t *b = xcalloc (1, sizeof *b);
  b->s = s;
  return b;
}

void
sched_batch_put (sched_batch_t *b, char *key, char *value, int64_t lease)
{
  orch_grow ((void **) &b->ops, &b->cap_ops, b->n_ops + 1, sizeof *b->ops);
  b->ops[b->n_ops++] = (store_op_t){ .type = STORE_OP_PUT, .key = key, .value = value,
                                     .value_len = strlen (value), .lease = lease };
}

void
sched_batch_del (sched_batch_t *b, char *key)
{
  orch_grow ((void **) &b->ops, &b->cap_ops, b->n_ops + 1, sizeof *b->ops);
  b->ops[b->n_ops++] = (store_op_t){ .type = STORE_OP_DELETE, .key = key };
}

void
sched_batch_cmp (sched_batch_t *b, char *key, store_cmp_target_t target, int64_t rev)
{
  orch_grow ((void **) &b->cmps, &b->cap_cmps, b->n_cmps + 1, sizeof *b->cmps);
  b->cmps[b->n_cmps++] = (store_cmp_t){ .key = key, .target = target, .revision = rev };
}

size_t
sched_batch_len (const sched_batch_t *b)
{
  return b->n_ops;
}

void
sched_batch_free (sched_batch_t *b)
{
  for (size_t i = 0; i < b->n_ops; i++)
    {
      free ((char *) b->ops[i].key);
      free ((char *) b->ops[i].value);
    }
  for (size_t i = 0; i < b->n_cmps; i++)
    free ((char *) b->cmps[i].key);
  free (b->ops);
  free (b->cmps);
  free (b);
}

static void queue_run (sched_t *s);

static void
batch_finish (sched_batch_t *b, int status, const char *error, bool failed_compare)
{
  sched_t *s = b->s;
  *queue_head (s) = b->queue_next;
  s->writes_in_flight--;
  if (b->cb)
    b->cb (s, b->ctx, status, error, failed_compare, b->revision);
  sched_batch_free (b);
  queue_run (s);
  sched_persist_drain_watch (s);
}

static void
on_txn (void *ctx, int status, const orch_err_t *err, bool succeeded, int64_t revision)
{
  sched_batch_t *b = ctx;
  if (status < 0)
    {
      batch_finish (b, -1, err ? err->msg : "store error", false);
      return;
    }
  if (!succeeded)
    {
      /* Perhaps the fence: is /orch/leader still ours? */
      sched_leader_check (b->s);
      batch_finish (b, -1, "a compare failed: the record was changed concurrently", true);
      return;
    }
  sched_persist_note_own_revision (b->s, revision);
  b->revision = revision;
  b->next += b->sent;
  b->sent = 0;
  if (b->next >= b->n_ops)
    batch_finish (b, 0, NULL, false);
  else
    queue_run (b->s);
}

/* Sends the next transaction of the batch at the head of the queue. */
static void
queue_run (sched_t *s)
{
  sched_batch_t *b = *queue_head (s);
  if (b == NULL || b->sent > 0 || s->store == NULL)
    return;
  if (b->n_ops == 0)
    {
      batch_finish (b, 0, NULL, false);
      return;
    }
  size_t n = b->n_ops - b->next;
  if (n > STORE_MAX_TXN_OPS)
    n = STORE_MAX_TXN_OPS;
  /* Keep each transaction under etcd's request size limit too. */
  size_t bytes = 0, fit = 0;
  for (; fit < n; fit++)
    {
      const store_op_t *op = &b->ops[b->next + fit];
      size_t sz = (strlen (op->key) + op->value_len) * 4 / 3 + 128;
      if (fit > 0 && bytes + sz > STORE_MAX_REQUEST_BYTES - 4096)
        break;
      bytes += sz;
    }
  n = fit;
  /* The batch's own compares go with its first transaction; every one
   * carries the fence: /orch/leader is still the key this scheduler
   * created, or nothing is written. */
  size_t ncmp = b->next == 0 ? b->n_cmps : 0;
  store_cmp_t *cmps = b->cmps;
  cleanup_free store_cmp_t *fenced = NULL;
  if (s->leader_rev > 0)
    {
      fenced = xmalloc ((ncmp + 1) * sizeof *fenced);
      if (ncmp > 0)
        memcpy (fenced, b->cmps, ncmp * sizeof *fenced);
      fenced[ncmp++] = (store_cmp_t){ .key = SCHED_LEADER_KEY,
                                      .target = STORE_CMP_CREATE_REVISION,
                                      .revision = s->leader_rev };
      cmps = fenced;
    }
  b->sent = n;
  orch_err_t err = {0};
  if (s->store->ops->txn (s->store, cmps, ncmp, b->ops + b->next, n, on_txn, b, &err) < 0)
    {
      b->sent = 0;
      batch_finish (b, -1, err.msg, false);
    }
}

void
sched_batch_submit (sched_batch_t *b, sched_batch_cb cb, void *ctx)
{
  sched_t *s = b->s;
  b->cb = cb;
  b->ctx = ctx;
  s->writes_in_flight++;
  sched_batch_t **p = queue_head (s);
  while (*p)
    p = &(*p)->queue_next;
  *p = b;
  if (p == queue_head (s))
    queue_run (s);
}
