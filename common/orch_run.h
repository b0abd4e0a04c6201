/* Running a helper program to completion from a thread that may block (a
 * libuv pool thread, a CLI), never from an event loop: mke2fs for a
 * microVM's disk, orch-image for a pull. */
#ifndef ORCH_RUN_H
#define ORCH_RUN_H

#include <stddef.h>

#include "orch_err.h"

#define ORCH_RUN_ERR_TAIL 4096

typedef struct orch_run_s
{
  /* In (borrowed). argv[0] is a path (no PATH search). envp NULL: a
   * minimal environment (PATH=/usr/sbin:/usr/bin:/sbin:/bin, LC_ALL=C). */
  char *const *argv;
  char *const *envp;
  /* Bytes of stdout to keep in out; 0: stdout goes to /dev/null. More
   * output than that fails the run (E2BIG) after the child is killed. */
  size_t out_max;
  /* Polled every 100 ms (may be NULL): once non-zero the child gets
   * SIGTERM, and SIGKILL 5 s later, and the run fails with ECANCELED. */
  const volatile int *cancel;

  /* Out. out: stdout, NUL-terminated (caller frees; NULL without
   * out_max). err_tail: the last ORCH_RUN_ERR_TAIL - 1 bytes of stderr,
   * NUL-terminated, trailing newlines removed. exit_code: the child's exit
   * status, or -1 when it did not exit (killed, not started). */
  char *out;
  char err_tail[ORCH_RUN_ERR_TAIL];
  int exit_code;
} orch_run_t;

/* Spawns argv[0] (stdin /dev/null, no file descriptor of ours but the
 * pipes), collects its output and waits for it. 0 when it exited with
 * status 0; else -err.code (< 0) with err: "<program>: <strerror>" when it could not be
 * started, "<program> exited with status N: <stderr tail>", "<program>
 * killed by signal N: ..." (code EIO), ECANCELED or E2BIG as above. The
 * caller may build its own message from exit_code and err_tail instead.
 * Safe in a multi-threaded process (posix_spawn, O_CLOEXEC pipes). */
int orch_run (orch_run_t *r, orch_err_t *err);

/* Frees r->out. */
void orch_run_clear (orch_run_t *r);

/* The path of a program shipped with orch: $env_var when set and not
 * empty, else name next to the running executable (/proc/self/exe), else
 * /usr/libexec/orch/<name>. Caller frees. */
char *orch_program_path (const char *env_var, const char *name);

#endif
