/* Ordered writes to the store. Every write the scheduler makes goes through
 * one queue and runs one transaction at a time, so that a status update can
 * never overtake the deletion of the same allocation. A batch larger than
 * etcd's per-transaction limit is split into several transactions, applied
 * in order. */
#ifndef ORCH_SCHED_WRITE_H
#define ORCH_SCHED_WRITE_H

#include "sched_internal.h"

typedef struct sched_batch_s sched_batch_t;

/* status 0 when every transaction succeeded; otherwise error says why and
 * the transactions after the failed one were not sent. failed_compare is true
 * when a compare did not hold (nothing of that transaction was applied).
 * revision is the store revision of the last transaction (the mod_revision of
 * every key it wrote). */
typedef void (*sched_batch_cb) (sched_t *s, void *ctx, int status, const char *error,
                                bool failed_compare, int64_t revision);

sched_batch_t *sched_batch_new (sched_t *s);
/* Takes ownership of key and value. */
void sched_batch_put (sched_batch_t *b, char *key, char *value, int64_t lease);
void sched_batch_del (sched_batch_t *b, char *key);
/* A compare on the first transaction (use for small, single-transaction batches). */
void sched_batch_cmp (sched_batch_t *b, char *key, store_cmp_target_t target, int64_t rev);
size_t sched_batch_len (const sched_batch_t *b);
/* Frees a batch that will not be submitted. */
void sched_batch_free (sched_batch_t *b);
/* Queues the batch; cb runs once it is done. The batch is freed after cb. */
void sched_batch_submit (sched_batch_t *b, sched_batch_cb cb, void *ctx);

#endif
