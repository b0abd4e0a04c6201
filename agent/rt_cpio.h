/* A minimal writer of cpio "newc" archives (the format the Linux kernel
 * unpacks as an initramfs), for the microvm runtime's per-allocation
 * initramfs. It writes directories, regular files from memory and character
 * devices, owned by root with mtime 0 so the same input gives the same bytes.
 *
 * Errors are sticky: after any failure (a rejected name, a failed write) the
 * writer writes nothing more, every later call returns the first error
 * again, and rt_cpio_close reports it and removes the file. A caller may so
 * add several entries and check only rt_cpio_close. Every message starts
 * with the archive's path. */
#ifndef ORCH_RT_CPIO_H
#define ORCH_RT_CPIO_H

#include <stddef.h>
#include <sys/types.h>

#include "orch_err.h"

typedef struct rt_cpio_s rt_cpio_t;

/* Longest entry name, in bytes, its NUL included: the kernel's limit. */
#define RT_CPIO_NAME_MAX 4096

/* Creates (or truncates) path, mode 0644 less the umask, and returns a
 * writer the caller ends with rt_cpio_close or rt_cpio_abort. NULL with err
 * when the file cannot be created. */
rt_cpio_t *rt_cpio_open (const char *path, orch_err_t *err);

/* Adds an entry. name is relative ("lib/modules", not "/lib/modules"),
 * non-empty, with no empty, "." or ".." component, and shorter than
 * RT_CPIO_NAME_MAX; perm holds permission bits only (07777). Parents are not
 * added implicitly: add them first, as the kernel creates entries in archive
 * order. rt_cpio_file copies len bytes of data (at most 4 GiB - 1, newc's
 * limit). Each returns 0, or a negative errno with err set. */
int rt_cpio_dir (rt_cpio_t *c, const char *name, mode_t perm, orch_err_t *err);
int rt_cpio_file (rt_cpio_t *c, const char *name, mode_t perm, const void *data, size_t len,
                  orch_err_t *err);
int rt_cpio_chardev (rt_cpio_t *c, const char *name, mode_t perm, unsigned major, unsigned minor,
                     orch_err_t *err);

/* Writes the trailer, flushes and closes the file, and frees c. Without
 * fsync: the archive is read back at once on this host (by the VMM), and
 * after a crash the allocation's files are made anew. On failure, now or
 * earlier, removes the file and returns a negative errno with err set; c is
 * freed either way. */
int rt_cpio_close (rt_cpio_t *c, orch_err_t *err);

/* Closes and removes the file and frees c; for a caller giving up on its
 * own account. NULL is a no-op. */
void rt_cpio_abort (rt_cpio_t *c);

#endif
