/* SHA-256 (FIPS 180-4) in portable C, for the agent's small digests: ref-file
 * names and other short inputs. It exists so that the agent daemon need not
 * load OpenSSL's libcrypto (about 1.4 MiB of resident memory) just for these.
 * Bulk blob verification in the image store keeps using OpenSSL, which is far
 * faster where the CPU has SHA instructions.
 *
 * Not hardened against side channels: the code makes no effort to be
 * constant-time or to wipe intermediate state. That is fine because only
 * public data (names, digests of public content) is hashed with it; do not
 * use it for secrets or keys.
 *
 * Input may have any alignment, and a message may be fed in pieces of any
 * size, including 0. Message lengths are counted modulo 2^64 bits, as the
 * standard requires messages shorter than that. */
#ifndef ORCH_SHA256_H
#define ORCH_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define ORCH_SHA256_LEN 32   /* raw digest, bytes */
#define ORCH_SHA256_BLOCK 64 /* compression block, bytes */

typedef struct orch_sha256_s
{
  uint32_t h[8];                  /* chaining state */
  uint64_t total;                 /* bytes hashed so far */
  uint8_t buf[ORCH_SHA256_BLOCK]; /* a partial block awaiting more input */
  size_t buflen;                  /* bytes held in buf, < ORCH_SHA256_BLOCK */
} orch_sha256_t;

/* Starts a new message in c. */
void orch_sha256_init (orch_sha256_t *c);
/* Feeds len bytes of data; data may be NULL when len is 0. */
void orch_sha256_update (orch_sha256_t *c, const void *data, size_t len);
/* Writes the digest of everything fed since init to out. c is spent
 * afterwards: call orch_sha256_init before using it again. */
void orch_sha256_final (orch_sha256_t *c, uint8_t out[ORCH_SHA256_LEN]);

/* "sha256:" + 64 lowercase hex digits + NUL, the OCI digest form. */
#define ORCH_SHA256_DIGEST_STR 72

/* One-shot: the OCI digest string of data[0..len) into out. data may be
 * NULL when len is 0. */
void orch_sha256_digest_str (const void *data, size_t len, char out[ORCH_SHA256_DIGEST_STR]);

#endif
