#include "orch_sha256.h"

#include <string.h>

/* FIPS 180-4 section 4.2.2: the first 32 bits of the fractional parts of the
 * cube roots of the first 64 primes. */
static const uint32_t sha256_k[64] = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/* Section 5.3.3: the first 32 bits of the fractional parts of the square
 * roots of the first 8 primes. */
static const uint32_t sha256_h0[8] = {
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

static inline uint32_t
sha256_rotr (uint32_t x, unsigned n)
{
  return (x >> n) | (x << (32 - n));
}

/* Byte-wise loads and stores: correct for any alignment and host byte order,
 * and compilers turn them into single (byte-swapping) moves where they can. */
static inline uint32_t
sha256_load_be32 (const uint8_t *p)
{
  return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) | ((uint32_t) p[2] << 8)
         | (uint32_t) p[3];
}

static inline void
sha256_store_be32 (uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t) (v >> 24);
  p[1] = (uint8_t) (v >> 16);
  p[2] = (uint8_t) (v >> 8);
  p[3] = (uint8_t) v;
}

/* Section 6.2.2: folds one 64-byte block into the chaining state. */
static void
sha256_block (uint32_t h[8], const uint8_t *block)
{
  uint32_t w[64];
  for (int t = 0; t < 16; t++)
    w[t] = sha256_load_be32 (block + 4 * t);
  for (int t = 16; t < 64; t++)
    {
      uint32_t s0 = sha256_rotr (w[t - 15], 7) ^ sha256_rotr (w[t - 15], 18) ^ (w[t - 15] >> 3);
      uint32_t s1 = sha256_rotr (w[t - 2], 17) ^ sha256_rotr (w[t - 2], 19) ^ (w[t - 2] >> 10);
      w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }

  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
  for (int t = 0; t < 64; t++)
    {
      uint32_t S1 = sha256_rotr (e, 6) ^ sha256_rotr (e, 11) ^ sha256_rotr (e, 25);
      uint32_t ch = (e & f) ^ (~e & g);
      uint32_t t1 = hh + S1 + ch + sha256_k[t] + w[t];
      uint32_t S0 = sha256_rotr (a, 2) ^ sha256_rotr (a, 13) ^ sha256_rotr (a, 22);
      uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
      uint32_t t2 = S0 + maj;
      hh = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
  h[0] += a;
  h[1] += b;
  h[2] += c;
  h[3] += d;
  h[4] += e;
  h[5] += f;
  h[6] += g;
  h[7] += hh;
}

void
orch_sha256_init (orch_sha256_t *c)
{
  memcpy (c->h, sha256_h0, sizeof c->h);
  c->total = 0;
  c->buflen = 0;
}

void
orch_sha256_update (orch_sha256_t *c, const void *data, size_t len)
{
  /* Return before touching data: it may be NULL, and memcpy from NULL is
   * undefined even for 0 bytes. */
  if (len == 0)
    return;
  const uint8_t *p = data;
  c->total += len;

  if (c->buflen > 0)
    {
      size_t take = ORCH_SHA256_BLOCK - c->buflen;
      if (take > len)
        take = len;
      memcpy (c->buf + c->buflen, p, take);
      c->buflen += take;
      p += take;
      len -= take;
      if (c->buflen < ORCH_SHA256_BLOCK)
        return;
      sha256_block (c->h, c->buf);
      c->buflen = 0;
    }
  /* Whole blocks straight from the caller's memory, without copying. */
  for (; len >= ORCH_SHA256_BLOCK; p += ORCH_SHA256_BLOCK, len -= ORCH_SHA256_BLOCK)
    sha256_block (c->h, p);
  if (len > 0)
    {
      memcpy (c->buf, p, len);
      c->buflen = len;
    }
}

void
orch_sha256_final (orch_sha256_t *c, uint8_t out[ORCH_SHA256_LEN])
{
  /* Section 5.1.1: a 1 bit, zeros up to 56 mod 64 bytes, then the message
   * length in bits as a 64-bit big-endian number. */
  uint64_t bits = c->total << 3;
  c->buf[c->buflen++] = 0x80;
  if (c->buflen > ORCH_SHA256_BLOCK - 8)
    {
      memset (c->buf + c->buflen, 0, ORCH_SHA256_BLOCK - c->buflen);
      sha256_block (c->h, c->buf);
      c->buflen = 0;
    }
  memset (c->buf + c->buflen, 0, ORCH_SHA256_BLOCK - 8 - c->buflen);
  sha256_store_be32 (c->buf + ORCH_SHA256_BLOCK - 8, (uint32_t) (bits >> 32));
  sha256_store_be32 (c->buf + ORCH_SHA256_BLOCK - 4, (uint32_t) bits);
  sha256_block (c->h, c->buf);

  for (int i = 0; i < 8; i++)
    sha256_store_be32 (out + 4 * i, c->h[i]);
  /* Leave nothing that looks like a usable context behind. */
  memset (c, 0, sizeof *c);
}

_Static_assert (ORCH_SHA256_DIGEST_STR == 7 + 2 * ORCH_SHA256_LEN + 1,
                "ORCH_SHA256_DIGEST_STR must hold \"sha256:\", the hex digits and a NUL");

void
orch_sha256_digest_str (const void *data, size_t len, char out[ORCH_SHA256_DIGEST_STR])
{
  static const char hex[] = "0123456789abcdef";
  orch_sha256_t c;
  uint8_t raw[ORCH_SHA256_LEN];

  orch_sha256_init (&c);
  orch_sha256_update (&c, data, len);
  orch_sha256_final (&c, raw);

  memcpy (out, "sha256:", 7);
  for (int i = 0; i < ORCH_SHA256_LEN; i++)
    {
      out[7 + 2 * i] = hex[raw[i] >> 4];
      out[7 + 2 * i + 1] = hex[raw[i] & 0x0f];
    }
  out[7 + 2 * ORCH_SHA256_LEN] = '\0';
}
