/* libFuzzer target for the frame reader (not built by CMake).
 *
 * Input: byte 0 picks the frame limit, bytes 1-2 seed the chunking, the rest
 * is the stream. The stream is fed once whole and once in pseudo-random
 * chunks; both must deliver the same envelopes and end with the same result,
 * since how TCP splits a stream must never change what is decoded. Every
 * delivered envelope is re-encoded and fed to a second reader as well.
 *
 * Re-encoding is not checked to round-trip: protobuf-c 1.4.1 accepts an
 * unknown field numbered 0 when its tag is a non-canonical two-byte varint
 * (82 00) but re-encodes it canonically (02), which it then refuses, so a
 * decoded envelope is not always re-encodable into a decodable one. Nothing
 * in orch forwards a received envelope verbatim.
 *
 * Build (from the repository root, after a CMake build generated the
 * protobuf-c sources into build-wire/proto/gen):
 *   clang-14 -g -O1 -fsanitize=fuzzer,address,undefined -Iproto -Icommon \
 *     -Ibuild-wire/proto/gen tests/fuzz/fuzz_wire.c proto/wire_frame.c \
 *     common/orch_err.c common/orch_util.c build-wire/proto/gen/orch.pb-c.c \
 *     -lprotobuf-c -o /tmp/fuzz_wire
 *   /tmp/fuzz_wire -max_total_time=60 /tmp/fuzz_wire_corpus */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

typedef struct fuzz_run_s
{
  size_t n;      /* envelopes delivered */
  uint64_t hash; /* over their canonical encodings, in order */
} fuzz_run_t;

static uint64_t
fuzz_hash (uint64_t h, const uint8_t *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 1099511628211ull; /* FNV-1a */
  return h;
}

static int
fuzz_recheck_cb (void *ctx, Orch__Envelope *env)
{
  uint8_t **packed = ctx;
  size_t len = orch__envelope__get_packed_size (env);

  *packed = malloc (len ? len : 1);
  orch__envelope__pack (env, *packed);
  return 0;
}

static int
fuzz_cb (void *ctx, Orch__Envelope *env)
{
  fuzz_run_t *run = ctx;
  orch_err_t err = { 0 };
  wire_reader_t again;
  uint8_t *frame = NULL;
  uint8_t *repacked = NULL;
  size_t frame_len;

  if (env->msg_case == ORCH__ENVELOPE__MSG__NOT_SET)
    abort (); /* the reader must have refused it */

  /* Re-encoding can grow an envelope (protobuf-c writes canonical varints),
   * so use the default limit rather than the fuzzed one. */
  if (wire_frame_encode (env, WIRE_MAX_FRAME, &frame, &frame_len, &err) == 0)
    {
      wire_reader_init (&again, WIRE_MAX_FRAME);
      wire_reader_feed (&again, frame, frame_len, fuzz_recheck_cb, &repacked, &err);
      wire_reader_free (&again);
      run->hash = fuzz_hash (run->hash, frame + 4, frame_len - 4);
      free (repacked);
      free (frame);
    }
  run->n++;
  return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  wire_reader_t r;
  orch_err_t err1 = { 0 }, err2 = { 0 };
  fuzz_run_t whole = { 0, 14695981039346656037ull }, chunked = whole;
  size_t max_frame;
  uint32_t seed;
  int rc1, rc2 = 0;

  if (size < 3)
    return 0;
  /* Small limits so that the oversize path is reached; now and then the
   * default one. */
  max_frame = data[0] == 0xff ? WIRE_MAX_FRAME : 1 + (size_t) data[0] * 8;
  seed = (uint32_t) data[1] << 8 | data[2];
  data += 3;
  size -= 3;

  wire_reader_init (&r, max_frame);
  rc1 = wire_reader_feed (&r, data, size, fuzz_cb, &whole, &err1);
  if (r.cap > WIRE_MAX_FRAME + 4)
    abort ();
  wire_reader_free (&r);

  wire_reader_init (&r, max_frame);
  for (size_t pos = 0; pos < size;)
    {
      size_t n;

      seed = seed * 1103515245u + 12345u;
      n = 1 + (seed >> 16) % 64;
      if (n > size - pos)
        n = size - pos;
      rc2 = wire_reader_feed (&r, data + pos, n, fuzz_cb, &chunked, &err2);
      /* A buffer never grows beyond one frame the limit allows. */
      if (r.cap > max_frame + 4 && r.cap > 256)
        abort ();
      if (rc2 < 0)
        break;
      pos += n;
    }
  wire_reader_free (&r);

  if (rc1 != rc2 || whole.n != chunked.n || whole.hash != chunked.hash
      || strcmp (err1.msg, err2.msg) != 0)
    abort ();
  return 0;
}
