/* The QEMU backend of the microvm runtime: qemu-system-x86_64 -M microvm,
 * virtio-mmio devices only (no PCI, no firmware option ROMs, no RTC), the
 * kernel loaded directly (-kernel/-initrd, no bootloader), KVM when usable
 * and TCG otherwise. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "orch_util.h"
#include "vmm.h"

#define VMM_QEMU_DEFAULT "/usr/bin/qemu-system-x86_64"
/* TCG's translated-code cache: QEMU 7.2 reserves 1 GiB by default, which a
 * busy guest does fill. Capped so the VMM's overhead stays bounded. */
#define VMM_QEMU_TB_MIB 32

static const char *
vmm_qemu_binary (void)
{
  const char *b = getenv ("ORCH_QEMU");
  return b != NULL && *b != '\0' ? b : VMM_QEMU_DEFAULT;
}

const char *
vmm_accel_name (vmm_accel_t accel)
{
  return accel == VMM_ACCEL_KVM ? "kvm" : "tcg";
}

static int
vmm_kvm_usable (void)
{
  int fd = open ("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  int v = ioctl (fd, KVM_GET_API_VERSION, 0);
  int e = errno;
  close (fd);
  if (v < 0)
    return -e;
  return v == KVM_API_VERSION ? 0 : -ENOTSUP;
}

int
vmm_accel_detect (vmm_accel_t *out, orch_err_t *err)
{
  const char *force = getenv ("ORCH_VMM_ACCEL");
  if (force != NULL && strcmp (force, "tcg") == 0)
    {
      *out = VMM_ACCEL_NONE;
      return 0;
    }
  int r = vmm_kvm_usable ();
  if (r == 0)
    {
      *out = VMM_ACCEL_KVM;
      return 0;
    }
  if (force != NULL && strcmp (force, "kvm") == 0)
    return orch_err_set (err, -r, "ORCH_VMM_ACCEL=kvm but /dev/kvm is not usable: %s",
                         strerror (-r));
  *out = VMM_ACCEL_NONE;
  return 0;
}

static int
vmm_qemu_probe (vmm_accel_t accel, orch_err_t *err)
{
  const char *bin = vmm_qemu_binary ();
  if (access (bin, X_OK) < 0)
    return orch_err_sys (err, "qemu: %s", bin);
  if (accel == VMM_ACCEL_KVM)
    {
      int r = vmm_kvm_usable ();
      if (r < 0)
        return orch_err_set (err, -r, "qemu: /dev/kvm: %s", strerror (-r));
    }
  return 0;
}

typedef struct vmm_args_s
{
  char **v;
  size_t n, cap;
} vmm_args_t;

static void vmm_add (vmm_args_t *a, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static void
vmm_add (vmm_args_t *a, const char *fmt, ...)
{
  orch_grow ((void **) &a->v, &a->cap, a->n + 2, sizeof (char *));
  va_list ap;
  va_start (ap, fmt);
  char *s = NULL;
  if (vasprintf (&s, fmt, ap) < 0)
    abort ();
  va_end (ap);
  a->v[a->n++] = s;
  a->v[a->n] = NULL;
}

void
vmm_argv_free (char **argv)
{
  for (size_t i = 0; argv != NULL && argv[i] != NULL; i++)
    free (argv[i]);
  free (argv);
}

/* QEMU's option syntax splits on ',' (doubled to escape); '=' is fine. */
static bool
vmm_path_ok (const char *p)
{
  return p == NULL || strchr (p, ',') == NULL;
}

static char **
vmm_qemu_argv (const vmm_launch_t *l, orch_err_t *err)
{
  const char *paths[] = { l->alloc_dir, l->kernel,    l->initrd,   l->root_disk, l->console_path,
                          l->log_path,  l->exit_path, l->ctl_path, l->tap };
  for (size_t i = 0; i < ORCH_ARRAY_LEN (paths); i++)
    if (!vmm_path_ok (paths[i]))
      {
        orch_err_set (err, EINVAL, "qemu: path %s contains ','", paths[i]);
        return NULL;
      }
  if (l->kernel == NULL || l->initrd == NULL || l->cmdline == NULL || l->vcpus < 1
      || l->mem_bytes < (16 << 20))
    {
      orch_err_set (err, EINVAL, "qemu: incomplete launch description");
      return NULL;
    }
  vmm_args_t a = { 0 };
  int64_t mem_mib = (l->mem_bytes + (1 << 20) - 1) >> 20;
  vmm_add (&a, "%s", vmm_qemu_binary ());
  /* No option ROMs (no firmware pass to speed the boot through), no RTC
   * (the kernel does not need one; saves its probe). Not run as a user
   * config: only what is on this line. */
  vmm_add (&a, "-M");
  vmm_add (&a, "microvm,x-option-roms=off,rtc=off");
  vmm_add (&a, "-nodefaults");
  vmm_add (&a, "-no-user-config");
  vmm_add (&a, "-display");
  vmm_add (&a, "none");
  vmm_add (&a, "-no-reboot");
  if (l->accel == VMM_ACCEL_KVM)
    {
      vmm_add (&a, "-accel");
      vmm_add (&a, "kvm");
      vmm_add (&a, "-cpu");
      vmm_add (&a, "host");
    }
  else
    {
      vmm_add (&a, "-accel");
      vmm_add (&a, "tcg,thread=multi,tb-size=%d", VMM_QEMU_TB_MIB);
      vmm_add (&a, "-cpu");
      vmm_add (&a, "max");
    }
  vmm_add (&a, "-smp");
  vmm_add (&a, "%d", l->vcpus);
  vmm_add (&a, "-m");
  vmm_add (&a, "%" PRId64 "M", mem_mib);
  vmm_add (&a, "-kernel");
  vmm_add (&a, "%s", l->kernel);
  vmm_add (&a, "-initrd");
  vmm_add (&a, "%s", l->initrd);
  vmm_add (&a, "-append");
  vmm_add (&a, "%s", l->cmdline);

  vmm_add (&a, "-chardev");
  vmm_add (&a, "file,id=con,path=%s,append=on", l->console_path);
  vmm_add (&a, "-serial");
  vmm_add (&a, "chardev:con");

  if (l->root_disk != NULL)
    {
      /* snapshot=on: writes land in a temporary qcow2 layer that QEMU
       * unlinks at once (in $TMPDIR, the allocation's directory), so one
       * cached image serves every VM of that image. */
      vmm_add (&a, "-drive");
      vmm_add (&a, "id=root,file=%s,format=raw,if=none,snapshot=on,cache=unsafe,aio=threads",
               l->root_disk);
      vmm_add (&a, "-device");
      vmm_add (&a, "virtio-blk-device,drive=root");
    }

  vmm_add (&a, "-device");
  vmm_add (&a, "virtio-serial-device,max_ports=4");
  vmm_add (&a, "-chardev");
  vmm_add (&a, "file,id=log,path=%s,append=on", l->log_path);
  vmm_add (&a, "-device");
  vmm_add (&a, "virtserialport,chardev=log,name=orch.log");
  vmm_add (&a, "-chardev");
  vmm_add (&a, "file,id=exit,path=%s", l->exit_path);
  vmm_add (&a, "-device");
  vmm_add (&a, "virtserialport,chardev=exit,name=orch.exit");
  /* A FIFO that QEMU opens read-write: it never sees EOF, and what the
   * agent writes before the guest opens its port waits in the pipe. */
  vmm_add (&a, "-chardev");
  vmm_add (&a, "pipe,id=ctl,path=%s", l->ctl_path);
  vmm_add (&a, "-device");
  vmm_add (&a, "virtserialport,chardev=ctl,name=orch.ctl");

  if (l->tap != NULL)
    {
      vmm_add (&a, "-netdev");
      vmm_add (&a, "tap,id=net0,ifname=%s,script=no,downscript=no", l->tap);
      vmm_add (&a, "-device");
      vmm_add (&a, "virtio-net-device,netdev=net0%s%s", l->mac != NULL ? ",mac=" : "",
               l->mac != NULL ? l->mac : "");
    }
  return a.v;
}

static bool
vmm_qemu_owns (pid_t pid, const char *alloc_dir)
{
  char path[64];
  snprintf (path, sizeof path, "/proc/%d/cmdline", (int) pid);
  cleanup_free char *text = NULL;
  size_t len = 0;
  if (orch_read_file (path, 1 << 20, &text, &len) < 0 || len == 0)
    return false;
  /* argv[0] is the QEMU binary and some argument names alloc_dir: the
   * kernel command line names the VM's files under it. */
  if (strstr (text, "qemu-system") == NULL)
    return false;
  size_t dlen = strlen (alloc_dir);
  for (size_t off = 0; off < len; off += strlen (text + off) + 1)
    {
      const char *hit = strstr (text + off, alloc_dir);
      if (hit != NULL && (hit[dlen] == '/' || hit[dlen] == '\0' || hit[dlen] == ','))
        return true;
    }
  return false;
}

/* Parses /proc/PID/smaps: Rss of every mapping, and of the guest RAM block
 * (the anonymous mapping at least mem_bytes large; QEMU allocates guest RAM
 * in one piece). */
static int
vmm_qemu_overhead (pid_t pid, int64_t mem_bytes, int64_t *out, orch_err_t *err)
{
  char path[64];
  snprintf (path, sizeof path, "/proc/%d/smaps", (int) pid);
  FILE *f = fopen (path, "re");
  if (f == NULL)
    return orch_err_sys (err, "qemu overhead: %s", path);
  char line[512];
  int64_t total_kb = 0, guest_kb = 0, cur_size = 0, best_size = 0;
  bool in_guest = false;
  while (fgets (line, sizeof line, f) != NULL)
    {
      long long v;
      if (sscanf (line, "Size: %lld kB", &v) == 1)
        {
          cur_size = v;
          in_guest = cur_size * 1024 >= mem_bytes && cur_size > best_size;
          if (in_guest)
            best_size = cur_size;
        }
      else if (sscanf (line, "Rss: %lld kB", &v) == 1)
        {
          total_kb += v;
          if (in_guest)
            guest_kb = v;
        }
    }
  fclose (f);
  snprintf (path, sizeof path, "/proc/%d/status", (int) pid);
  cleanup_free char *st = NULL;
  size_t len;
  int64_t pte_kb = 0;
  if (orch_read_file (path, 1 << 16, &st, &len) == 0)
    {
      const char *p = strstr (st, "VmPTE:");
      long long v;
      if (p != NULL && sscanf (p, "VmPTE: %lld kB", &v) == 1)
        pte_kb = v;
    }
  *out = (total_kb - guest_kb + pte_kb) * 1024;
  return 0;
}

static int64_t
vmm_qemu_reserve (vmm_accel_t accel, int vcpus)
{
  /* Measured with vm_check (VmRSS outside guest RAM + page tables): about
   * 30 MiB under KVM and 50-60 MiB under TCG, whose code cache is capped at
   * VMM_QEMU_TB_MIB. Rounded up generously: a VMM killed for its own
   * overhead is the failure this reserve exists to prevent. */
  int64_t base = accel == VMM_ACCEL_KVM ? (64LL << 20) : ((96LL + VMM_QEMU_TB_MIB) << 20);
  return base + (int64_t) (vcpus > 1 ? vcpus - 1 : 0) * (8LL << 20);
}

const vmm_ops_t vmm_qemu_ops = {
  .name = "qemu-microvm",
  .probe = vmm_qemu_probe,
  .argv = vmm_qemu_argv,
  .binary = vmm_qemu_binary,
  .owns = vmm_qemu_owns,
  .overhead = vmm_qemu_overhead,
  .reserve = vmm_qemu_reserve,
};

const vmm_ops_t *
vmm_lookup (const char *name)
{
  if (name == NULL || strcmp (name, vmm_qemu_ops.name) == 0)
    return &vmm_qemu_ops;
  return NULL;
}
