/* Virtual machine monitors for the microvm runtime (rt_microvm.c), behind
 * one small ops table, as the runtimes themselves are (STYLE.md "Backends
 * are ops tables"). Only QEMU's microvm machine ships; the shape is what
 * Firecracker and cloud-hypervisor need as well: a kernel, an initramfs, one
 * read-only root disk with a private writable layer, a tap, and three byte
 * channels between the host and the guest init (see vmm_launch_t).
 *
 * The runtime decides everything about the guest; a backend only turns a
 * vmm_launch_t into a running VMM process and knows how to recognise and
 * measure its own processes. */
#ifndef ORCH_VMM_H
#define ORCH_VMM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "orch_err.h"

typedef enum vmm_accel_e
{
  VMM_ACCEL_NONE = 0, /* software emulation (QEMU TCG) */
  VMM_ACCEL_KVM,
} vmm_accel_t;

/* One VM to boot. Everything is borrowed. Paths are absolute. */
typedef struct vmm_launch_s
{
  const char *alloc_dir;    /* per-allocation directory; the VMM may keep scratch files here */
  const char *kernel;       /* uncompressed-or-bzImage kernel */
  const char *initrd;       /* newc cpio: the guest init, its modules and config */
  const char *cmdline;      /* kernel command line */
  const char *root_disk;    /* raw ext4 image, opened read-only; writes go to a private
                               layer that dies with the VM */
  const char *console_path; /* serial console, appended (the allocation's log) */
  /* The guest init's channels (virtio-serial ports named orch.log, orch.exit,
   * orch.ctl): workload output appended to log_path, the exit record written
   * to exit_path, stop requests read by the guest from the FIFO ctl_path. */
  const char *log_path;
  const char *exit_path;
  const char *ctl_path;
  const char *tap; /* tap device name, or NULL for no network */
  const char *mac; /* "52:54:00:xx:xx:xx" when tap is set */
  int vcpus;
  int64_t mem_bytes; /* guest memory */
  vmm_accel_t accel;
} vmm_launch_t;

typedef struct vmm_ops_s
{
  const char *name; /* "qemu-microvm" */
  /* 0 when the VMM binary is present and can run with accel here. */
  int (*probe) (vmm_accel_t accel, orch_err_t *err);
  /* Builds the VMM's argv for l (NULL-terminated, every string and the
   * array malloc'd; free with vmm_argv_free). */
  char **(*argv) (const vmm_launch_t *l, orch_err_t *err);
  /* Path of the VMM binary to exec. */
  const char *(*binary) (void);
  /* True when pid is this backend's VMM for alloc_dir (adoption after an
   * agent restart must not take over a recycled pid). */
  bool (*owns) (pid_t pid, const char *alloc_dir);
  /* Memory the VMM process uses beyond the guest's RAM that is in use:
   * resident set outside the guest RAM mapping, plus page tables. */
  int (*overhead) (pid_t pid, int64_t mem_bytes, int64_t *out, orch_err_t *err);
  /* Memory to reserve for the VMM on top of guest memory in the VM's cgroup
   * (an upper bound of what overhead() reports; never OOM-kill the VMM for
   * its own needs). */
  int64_t (*reserve) (vmm_accel_t accel, int vcpus);
} vmm_ops_t;

extern const vmm_ops_t vmm_qemu_ops;

void vmm_argv_free (char **argv);

/* The backend named name, or NULL. */
const vmm_ops_t *vmm_lookup (const char *name);

/* KVM usable here: /dev/kvm opens and answers KVM_GET_API_VERSION with 12.
 * ORCH_VMM_ACCEL=tcg forces software emulation (tests, benchmarks);
 * ORCH_VMM_ACCEL=kvm makes a missing KVM an error. Returns the accelerator
 * or -1 with err. */
int vmm_accel_detect (vmm_accel_t *out, orch_err_t *err);

/* Measured overhead of the running VM of alloc_dir (see vmm_ops_t.overhead),
 * for the node's report to the scheduler. 0 or -1 with err (no VM there). */
int rt_microvm_overhead (const char *alloc_dir, int64_t *out, orch_err_t *err);

/* What the microvm runtime adds to a VM's cgroup on top of guest memory on
 * this host (with the accelerator it would use: this may boot-test KVM once,
 * see rt_microvm_probe), for a VM of vcpus. The scheduler should charge each
 * microVM this much beyond its memory. */
int64_t rt_microvm_reserve (const char *state_dir, int vcpus);

/* Boots the guest kernel in <state_dir>/guest-kernel (or
 * $ORCH_GUEST_KERNEL_DIR) with orch-init in probe mode under accel, with
 * mem_bytes of guest memory (0: 96 MiB), and waits up to timeout_ms for its
 * marker. 1: booted (*ms = spawn to marker), 0: hung or died, -1 with err:
 * could not try. The runtime uses it to decide whether KVM really works; the
 * benchmark times a bare boot with it. */
int rt_microvm_boot_test (const char *state_dir, vmm_accel_t accel, int64_t mem_bytes,
                          int timeout_ms, double *ms, orch_err_t *err);

/* "kvm" / "tcg" */
const char *vmm_accel_name (vmm_accel_t accel);

#endif
