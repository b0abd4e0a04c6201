/* orch_sha256: the agent's libcrypto-free SHA-256, checked against the
 * FIPS 180 example vectors and against OpenSSL. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "orch_sha256.h"
#include "orch_test.h"

static const char msg448[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
static const char msg896[] = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
                             "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";

static void
to_hex (const uint8_t *raw, size_t n, char *out)
{
  for (size_t i = 0; i < n; i++)
    sprintf (out + 2 * i, "%02x", raw[i]);
}

static void
sha_hex (const void *data, size_t len, char out[2 * ORCH_SHA256_LEN + 1])
{
  orch_sha256_t c;
  uint8_t raw[ORCH_SHA256_LEN];
  orch_sha256_init (&c);
  orch_sha256_update (&c, data, len);
  orch_sha256_final (&c, raw);
  to_hex (raw, sizeof raw, out);
}

static void
openssl_sha256 (const void *data, size_t len, uint8_t out[ORCH_SHA256_LEN])
{
  unsigned int n = 0;
  assert_int_equal (EVP_Digest (data, len, out, &n, EVP_sha256 (), NULL), 1);
  assert_int_equal (n, ORCH_SHA256_LEN);
}

/* splitmix64: a fixed, libc-independent sequence, so a failure reproduces
 * everywhere. */
static uint64_t
rng_next (uint64_t *s)
{
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static size_t
rng_below (uint64_t *s, size_t n)
{
  return (size_t) (rng_next (s) % n);
}

static void
test_sha256_fips_vectors (void **state)
{
  (void) state;
  char hex[2 * ORCH_SHA256_LEN + 1];

  sha_hex ("", 0, hex);
  assert_string_equal (hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  sha_hex ("abc", 3, hex);
  assert_string_equal (hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  sha_hex (msg448, strlen (msg448), hex);
  assert_string_equal (hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  sha_hex (msg896, strlen (msg896), hex);
  assert_string_equal (hex, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

static void
test_sha256_million_a (void **state)
{
  (void) state;
  static const char want[] = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
  const size_t n = 1000000;
  char *a = malloc (n);
  assert_non_null (a);
  memset (a, 'a', n);
  char hex[2 * ORCH_SHA256_LEN + 1];

  /* In one call. */
  sha_hex (a, n, hex);
  assert_string_equal (hex, want);

  /* In pieces whose size (997, prime) never lines up with the block size. */
  orch_sha256_t c;
  uint8_t raw[ORCH_SHA256_LEN];
  orch_sha256_init (&c);
  for (size_t off = 0; off < n; off += 997)
    orch_sha256_update (&c, a + off, n - off < 997 ? n - off : 997);
  orch_sha256_final (&c, raw);
  to_hex (raw, sizeof raw, hex);
  assert_string_equal (hex, want);
  free (a);
}

static void
test_sha256_empty_updates (void **state)
{
  (void) state;
  orch_sha256_t c;
  uint8_t raw[ORCH_SHA256_LEN];
  char hex[2 * ORCH_SHA256_LEN + 1];

  /* NULL with length 0 is allowed, and empty updates change nothing. */
  orch_sha256_init (&c);
  orch_sha256_update (&c, NULL, 0);
  orch_sha256_update (&c, "a", 0);
  orch_sha256_update (&c, "ab", 2);
  orch_sha256_update (&c, NULL, 0);
  orch_sha256_update (&c, "c", 1);
  orch_sha256_update (&c, NULL, 0);
  orch_sha256_final (&c, raw);
  to_hex (raw, sizeof raw, hex);
  assert_string_equal (hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

  char s[ORCH_SHA256_DIGEST_STR];
  orch_sha256_digest_str (NULL, 0, s);
  assert_string_equal (
      s, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

/* The 896-bit message is 112 bytes, so its splits cross the first block
 * boundary and the 56-byte padding limit from both sides. */
static void
test_sha256_every_split (void **state)
{
  (void) state;
  const size_t n = strlen (msg896);
  static const char want[] = "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1";
  orch_sha256_t c;
  uint8_t raw[ORCH_SHA256_LEN];
  char hex[2 * ORCH_SHA256_LEN + 1];

  for (size_t i = 0; i <= n; i++)
    for (size_t j = i; j <= n; j++)
      {
        orch_sha256_init (&c);
        orch_sha256_update (&c, msg896, i);
        orch_sha256_update (&c, msg896 + i, j - i);
        orch_sha256_update (&c, msg896 + j, n - j);
        orch_sha256_final (&c, raw);
        to_hex (raw, sizeof raw, hex);
        if (strcmp (hex, want) != 0)
          fail_msg ("split at %zu and %zu: %s", i, j, hex);
      }

  /* One byte at a time. */
  orch_sha256_init (&c);
  for (size_t i = 0; i < n; i++)
    orch_sha256_update (&c, msg896 + i, 1);
  orch_sha256_final (&c, raw);
  to_hex (raw, sizeof raw, hex);
  assert_string_equal (hex, want);
}

/* Every length across the padding edge cases (0..3 blocks) at every input
 * alignment, one-shot and split in two at an odd point, against OpenSSL. */
static void
test_sha256_lengths_and_alignment (void **state)
{
  (void) state;
  enum { MAXLEN = 3 * ORCH_SHA256_BLOCK + 1, MAXOFF = 16 };
  static uint8_t src[MAXLEN + MAXOFF];
  uint64_t seed = 42;
  for (size_t i = 0; i < sizeof src; i++)
    src[i] = (uint8_t) rng_next (&seed);

  for (size_t len = 0; len <= MAXLEN; len++)
    for (size_t off = 0; off < MAXOFF; off++)
      {
        const uint8_t *p = src + off;
        uint8_t want[ORCH_SHA256_LEN], got[ORCH_SHA256_LEN];
        openssl_sha256 (p, len, want);

        orch_sha256_t c;
        orch_sha256_init (&c);
        orch_sha256_update (&c, p, len);
        orch_sha256_final (&c, got);
        if (memcmp (got, want, sizeof want) != 0)
          fail_msg ("length %zu at offset %zu: differs from OpenSSL", len, off);

        size_t cut = len / 3;
        orch_sha256_init (&c);
        orch_sha256_update (&c, p, cut);
        orch_sha256_update (&c, p + cut, len - cut);
        orch_sha256_final (&c, got);
        if (memcmp (got, want, sizeof want) != 0)
          fail_msg ("length %zu at offset %zu cut at %zu: differs from OpenSSL", len, off, cut);
      }
}

static void
test_sha256_digest_str (void **state)
{
  (void) state;
  char s[ORCH_SHA256_DIGEST_STR];

  memset (s, 'X', sizeof s);
  orch_sha256_digest_str ("abc", 3, s);
  assert_string_equal (
      s, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  /* Exactly the buffer: "sha256:" + 64 hex + NUL. */
  assert_int_equal (strlen (s), ORCH_SHA256_DIGEST_STR - 1);
  assert_int_equal (s[ORCH_SHA256_DIGEST_STR - 1], '\0');
  for (size_t i = 7; i < ORCH_SHA256_DIGEST_STR - 1; i++)
    assert_true ((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'));

  orch_sha256_digest_str (msg448, strlen (msg448), s);
  assert_string_equal (
      s, "sha256:248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

/* Random messages of 0..5000 bytes, fed in random-sized chunks (often 0,
 * sometimes larger than a block), must agree with OpenSSL. */
static void
test_sha256_random_vs_openssl (void **state)
{
  (void) state;
  enum { MAXLEN = 5000, ROUNDS = 2000 };
  static uint8_t msg[MAXLEN];
  uint64_t seed = 0x0123456789abcdefULL;

  for (int round = 0; round < ROUNDS; round++)
    {
      size_t len = rng_below (&seed, MAXLEN + 1);
      for (size_t i = 0; i < len; i++)
        msg[i] = (uint8_t) rng_next (&seed);

      uint8_t want[ORCH_SHA256_LEN], got[ORCH_SHA256_LEN];
      openssl_sha256 (msg, len, want);

      orch_sha256_t c;
      orch_sha256_init (&c);
      size_t off = 0;
      while (off < len)
        {
          /* Mostly small pieces, to hit every buffer fill level, with the
           * occasional large one to take the whole-block path. */
          size_t max = rng_below (&seed, 4) == 0 ? 300 : 70;
          size_t piece = rng_below (&seed, max + 1);
          if (piece > len - off)
            piece = len - off;
          orch_sha256_update (&c, msg + off, piece);
          off += piece;
        }
      orch_sha256_final (&c, got);
      if (memcmp (got, want, sizeof want) != 0)
        fail_msg ("round %d, length %zu: differs from OpenSSL", round, len);
    }
}

static const struct CMUnitTest tests[] = {
  cmocka_unit_test (test_sha256_fips_vectors),
  cmocka_unit_test (test_sha256_million_a),
  cmocka_unit_test (test_sha256_empty_updates),
  cmocka_unit_test (test_sha256_every_split),
  cmocka_unit_test (test_sha256_lengths_and_alignment),
  cmocka_unit_test (test_sha256_digest_str),
  cmocka_unit_test (test_sha256_random_vs_openssl),
};

ORCH_TEST_MAIN (tests)
