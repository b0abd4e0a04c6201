/* The microvm runtime: each workload in its own guest kernel (Debian's cloud
 * kernel, fetched by deploy/fetch-guest-kernel.sh) under a VMM backend
 * (vmm.h; QEMU's microvm machine now).
 *
 * Boot image. The image's root filesystem becomes a raw ext4 disk image,
 * built once per image (mke2fs -d) and cached under <state>/vm-disks; every
 * VM attaches it as virtio-blk with a private copy-on-write layer (QEMU
 * snapshot=on), and a small per-allocation initramfs carries orch-init as
 * /init, the virtio modules and the workload's argv/env (about 1 MiB). A
 * disk, not an initramfs of the whole image, because:
 *  - memory: an initramfs is unpacked into the guest's page cache (tmpfs)
 *    while the compressed or plain archive also sits in guest RAM until it
 *    is freed, so a 300 MiB image would need 600 MiB of guest memory at
 *    boot; from a disk the guest reads only the pages it uses, and they are
 *    reclaimable;
 *  - boot time: the kernel unpacks all of an initramfs before /init runs,
 *    whatever the workload reads, while a disk mounts in milliseconds
 *    whatever its size (a 300 MiB image boots like busybox: vm_check);
 *  - caching: the ext4 image is built once per image, not per allocation,
 *    and its pages sit once in the host's page cache for every VM.
 * 9p is not built into this kernel. virtiofs would need a virtiofsd process
 * per VM beside QEMU (one more process to supervise and re-adopt) and guest
 * RAM as shared memory (memory-backend-memfd,share=on), which changes how
 * the VMM's memory is accounted; virtio-blk needs neither.
 *
 * Files per allocation (alloc_dir): initrd.cpio, ctl (a FIFO: the agent
 * writes "signal N" lines that orch-init forwards to the workload), exit (the
 * exit record, written by orch-init through a virtio-serial port), vmm.pid
 * and vmm.info (for re-adoption). The VMM runs in its own session, in the
 * allocation's cgroup sized guest memory + the backend's reserve. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#include "orch_run.h"
#include "orch_util.h"
#include "rt.h"
#include "rt_cpio.h"
#include "rt_internal.h"
#include "vmm.h"

/* Below about 72 MiB the cloud kernel does not even decompress. */
#define MV_MIN_MEM (80LL << 20)
#define MV_PROBE_MEM (96LL << 20)
#define MV_MAX_VCPUS 64
#define MV_MAX_ARGS 4096
#define MV_MAX_CONFIG (1 << 20) /* argv or env, bytes; orch-init's limit */
#define MV_PIDS_MAX 1024
#define MV_HOSTNAME_MAX 63
#define MV_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define MV_MKE2FS "/sbin/mke2fs"

extern char **environ;

/* ---- guest kernel ---- */

typedef struct mv_kernel_s
{
  char *dir; /* .../guest-kernel/<version> */
  char *version;
  char *image; /* vmlinux (PVH entry) when the fetch script found one, else vmlinuz */
} mv_kernel_t;

static void
mv_kernel_clear (mv_kernel_t *k)
{
  free (k->dir);
  free (k->version);
  free (k->image);
  memset (k, 0, sizeof *k);
}

/* $ORCH_GUEST_KERNEL_DIR (the agent's --guest-kernel-dir), else
 * <state>/guest-kernel; "current" there names the version directory. */
static int
mv_kernel_find (const rt_env_t *env, mv_kernel_t *k, orch_err_t *err)
{
  const char *over = getenv ("ORCH_GUEST_KERNEL_DIR");
  cleanup_free char *base = over != NULL && *over != '\0'
                                ? xstrdup (over)
                                : xasprintf ("%s/guest-kernel", env->state_dir);
  cleanup_free char *cur_path = xasprintf ("%s/current", base);
  cleanup_free char *cur = NULL;
  size_t len = 0;
  int r = orch_read_file (cur_path, 256, &cur, &len);
  if (r < 0)
    return orch_err_set (err, -r, "guest kernel: %s: %s (run deploy/fetch-guest-kernel.sh)",
                         cur_path, strerror (-r));
  while (len > 0 && (cur[len - 1] == '\n' || cur[len - 1] == ' '))
    cur[--len] = '\0';
  if (len == 0 || strchr (cur, '/') != NULL || strcmp (cur, "..") == 0)
    return orch_err_set (err, EINVAL, "guest kernel: %s names no version", cur_path);
  k->dir = xasprintf ("%s/%s", base, cur);
  k->version = TAKE_PTR (cur);
  /* The bzImage by default. The uncompressed vmlinux (PVH entry) boots
   * about 0.4 s faster under TCG (no decompression, no 16-bit setup) but
   * QEMU keeps the whole 50 MiB ELF in memory as a ROM image for resets:
   * +35 MiB of VMM overhead per VM. ORCH_VM_PVH=1 chooses it; under KVM
   * decompression costs tens of milliseconds and it never pays. */
  const char *pvh = getenv ("ORCH_VM_PVH");
  k->image
      = xasprintf ("%s/%s", k->dir, pvh != NULL && strcmp (pvh, "1") == 0 ? "vmlinux" : "vmlinuz");
  if (access (k->image, R_OK) < 0)
    {
      orch_err_sys (err, "guest kernel: %s", k->image);
      mv_kernel_clear (k);
      return -1;
    }
  return 0;
}

/* ---- the root disk, cached per image ---- */

static uint64_t
mv_hash (const char *s)
{
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (; *s; s++)
    h = (h ^ (unsigned char) *s) * 1099511628211ULL;
  return h;
}

static __thread int64_t mv_walk_bytes;
static __thread int64_t mv_walk_inodes;

static int
mv_walk_fn (const char *path, const struct stat *st, int type, struct FTW *ftw)
{
  (void) path;
  (void) type;
  (void) ftw;
  mv_walk_bytes += ((int64_t) st->st_blocks * 512 + 4095) / 4096 * 4096;
  mv_walk_inodes++;
  return 0;
}

/* The cached ext4 image of rootfs: <state>/vm-disks/<hash>-<ino>-<mtime>.ext4.
 * An image_import swaps in a new directory (new inode), so a re-imported
 * image gets a new disk; older disks of that rootfs path are removed (a
 * running VM keeps its open file). */
static char *
mv_root_disk (const rt_env_t *env, const char *rootfs, orch_err_t *err)
{
  struct stat st;
  if (stat (rootfs, &st) < 0)
    {
      orch_err_sys (err, "rootfs %s", rootfs);
      return NULL;
    }
  if (!S_ISDIR (st.st_mode))
    {
      orch_err_set (err, ENOTDIR, "rootfs %s is not a directory", rootfs);
      return NULL;
    }
  cleanup_free char *dir = xasprintf ("%s/vm-disks", env->state_dir);
  int r = orch_mkdir_p (dir, 0700);
  if (r < 0)
    {
      orch_err_set (err, -r, "mkdir %s: %s", dir, strerror (-r));
      return NULL;
    }
  char prefix[32];
  snprintf (prefix, sizeof prefix, "%016" PRIx64 "-", mv_hash (rootfs));
  char *path
      = xasprintf ("%s/%s%ju-%jd.ext4", dir, prefix, (uintmax_t) st.st_ino, (intmax_t) st.st_mtime);
  if (access (path, R_OK) == 0)
    return path;

  mv_walk_bytes = 0;
  mv_walk_inodes = 0;
  if (nftw (rootfs, mv_walk_fn, 64, FTW_PHYS) < 0)
    {
      orch_err_sys (err, "walk %s", rootfs);
      free (path);
      return NULL;
    }
  /* Room for metadata and for the workload's own writes (they land in the
   * VM's private layer; the file is sparse, so free space costs nothing). */
  int64_t bytes = mv_walk_bytes + mv_walk_bytes / 4 + mv_walk_inodes * 512 + (256LL << 20);
  int64_t inodes = mv_walk_inodes * 2 + 65536;
  /* Unique per process and call: two starts of one image may race. */
  static unsigned seq;
  cleanup_free char *tmp = xasprintf ("%s/.tmp-%d-%u-%s", dir, (int) getpid (),
                                      __atomic_add_fetch (&seq, 1, __ATOMIC_RELAXED), prefix);
  unlink (tmp);
  char size_arg[32], inodes_arg[32];
  snprintf (size_arg, sizeof size_arg, "%" PRId64 "k", bytes / 1024);
  snprintf (inodes_arg, sizeof inodes_arg, "%" PRId64, inodes);
  /* No journal (the base image is never written), no reserved blocks,
   * files owned as in the image whoever runs mke2fs. */
  char *const argv[] = { (char *) MV_MKE2FS,
                         (char *) "-q",
                         (char *) "-F",
                         (char *) "-t",
                         (char *) "ext4",
                         (char *) "-O",
                         (char *) "^has_journal",
                         (char *) "-m",
                         (char *) "0",
                         (char *) "-N",
                         inodes_arg,
                         (char *) "-L",
                         (char *) "orch-root",
                         (char *) "-E",
                         (char *) "root_owner=0:0",
                         (char *) "-d",
                         (char *) rootfs,
                         tmp,
                         size_arg,
                         NULL };
  orch_run_t run = { .argv = argv };
  if (orch_run (&run, err) < 0)
    {
      unlink (tmp);
      orch_err_wrap (err, "build the root disk of %s", rootfs);
      free (path);
      return NULL;
    }
  if (rename (tmp, path) < 0)
    {
      orch_err_sys (err, "rename %s", tmp);
      unlink (tmp);
      free (path);
      return NULL;
    }
  /* Older disks of the same rootfs path. */
  DIR *d = opendir (dir);
  struct dirent *de;
  const char *base = strrchr (path, '/') + 1;
  while (d != NULL && (de = readdir (d)) != NULL)
    if (strncmp (de->d_name, prefix, strlen (prefix)) == 0 && strcmp (de->d_name, base) != 0)
      unlinkat (dirfd (d), de->d_name, 0);
  if (d != NULL)
    closedir (d);
  return path;
}

/* ---- the per-allocation initramfs ---- */

/* Adds the file at src to the archive as name. */
static int
mv_cpio_file (rt_cpio_t *c, const char *name, mode_t mode, const char *src, orch_err_t *err)
{
  cleanup_free char *data = NULL;
  size_t len = 0;
  int r = orch_read_file (src, 64 << 20, &data, &len);
  if (r < 0)
    return orch_err_set (err, -r, "read %s: %s", src, strerror (-r));
  if (rt_cpio_file (c, name, mode, data, len, err) < 0)
    return orch_err_wrap (err, "initramfs");
  return 0;
}

/* Strings, each ended by a NUL, as orch-init reads them. */
static char *
mv_strings (char *const *v, size_t *len)
{
  size_t total = 0;
  for (size_t i = 0; v != NULL && v[i] != NULL; i++)
    total += strlen (v[i]) + 1;
  char *buf = xmalloc (total + 1);
  size_t off = 0;
  for (size_t i = 0; v != NULL && v[i] != NULL; i++)
    {
      size_t l = strlen (v[i]) + 1;
      memcpy (buf + off, v[i], l);
      off += l;
    }
  *len = total;
  return buf;
}

/* Modules a VM needs: vsock is fetched for later VMM backends but unused
 * (the guest channels are virtio-serial ports), and the network driver only
 * matters with a tap. Each module loaded is boot time under TCG. */
static bool
mv_module_wanted (const char *name, bool net)
{
  if (strstr (name, "vsock") != NULL)
    return false;
  if (!net && (strstr (name, "virtio_net") != NULL || strstr (name, "failover") != NULL))
    return false;
  return true;
}

static int
mv_initrd (const char *path, const mv_kernel_t *k, char *const *argv, char *const *envp, bool net,
           orch_err_t *err)
{
  cleanup_free char *init = rt__init_path ();
  cleanup_free char *order_path = xasprintf ("%s/modules.order", k->dir);
  cleanup_free char *order = NULL;
  size_t olen = 0;
  int r = orch_read_file (order_path, 1 << 16, &order, &olen);
  if (r < 0)
    return orch_err_set (err, -r, "guest kernel: %s: %s", order_path, strerror (-r));

  rt_cpio_t *c = rt_cpio_open (path, err);
  if (c == NULL)
    return orch_err_wrap (err, "initramfs");
  static const char *const dirs[]
      = { "dev", "proc", "sys", "newroot", "lib", "lib/modules", "lib/modules/orch", "orch" };
  for (size_t i = 0; i < ORCH_ARRAY_LEN (dirs); i++)
    if (rt_cpio_dir (c, dirs[i], 0755, err) < 0)
      goto cpio_fail;
  /* The kernel opens /dev/console for /init's stdio before devtmpfs is
   * mounted. */
  if (rt_cpio_chardev (c, "dev/console", 0600, 5, 1, err) < 0)
    goto cpio_fail;
  if (mv_cpio_file (c, "init", 0755, init, err) < 0)
    goto fail;
  for (char *save = NULL, *m = strtok_r (order, "\n", &save); m != NULL;
       m = strtok_r (NULL, "\n", &save))
    {
      if (*m == '\0' || strchr (m, '/') != NULL || !mv_module_wanted (m, net))
        continue;
      cleanup_free char *src = xasprintf ("%s/modules/%s", k->dir, m);
      cleanup_free char *dst = xasprintf ("lib/modules/orch/%s", m);
      if (mv_cpio_file (c, dst, 0644, src, err) < 0)
        goto fail;
    }
  {
    size_t alen, elen;
    cleanup_free char *a = mv_strings (argv, &alen);
    cleanup_free char *e = mv_strings (envp, &elen);
    if (alen > MV_MAX_CONFIG || elen > MV_MAX_CONFIG)
      {
        orch_err_set (err, E2BIG, "command or environment larger than %d bytes", MV_MAX_CONFIG);
        goto fail;
      }
    if (rt_cpio_file (c, "orch/argv", 0644, a, alen, err) < 0
        || rt_cpio_file (c, "orch/env", 0644, e, elen, err) < 0)
      goto cpio_fail;
  }
  /* Removes the file itself when it fails. */
  if (rt_cpio_close (c, err) < 0)
    return orch_err_wrap (err, "initramfs");
  return 0;

cpio_fail:
  orch_err_wrap (err, "initramfs");
fail:
  rt_cpio_abort (c);
  return -1;
}

/* ---- helpers ---- */


static char *
mv_alloc_dir (const rt_env_t *env, const char *alloc_id)
{
  return xasprintf ("%s/allocs/%s", env->state_dir, alloc_id);
}

static void
mv_remove_files (const char *alloc_dir)
{
  static const char *const files[] = { "initrd.cpio", "ctl", "vmm.pid", "vmm.info" };
  for (size_t i = 0; i < ORCH_ARRAY_LEN (files); i++)
    {
      cleanup_free char *p = xasprintf ("%s/%s", alloc_dir, files[i]);
      unlink (p);
    }
}

/* vmm.info: "key=value" lines that adopt() and overhead reads need. */
static char *
mv_info_get (const char *alloc_dir, const char *key)
{
  cleanup_free char *path = xasprintf ("%s/vmm.info", alloc_dir);
  cleanup_free char *text = NULL;
  size_t len;
  if (orch_read_file (path, 1 << 16, &text, &len) < 0)
    return NULL;
  size_t klen = strlen (key);
  for (char *save = NULL, *l = strtok_r (text, "\n", &save); l != NULL;
       l = strtok_r (NULL, "\n", &save))
    if (strncmp (l, key, klen) == 0 && l[klen] == '=')
      return xstrdup (l + klen + 1);
  return NULL;
}

static pid_t
mv_read_pid (const char *alloc_dir)
{
  cleanup_free char *path = xasprintf ("%s/vmm.pid", alloc_dir);
  cleanup_free char *text = NULL;
  size_t len;
  if (orch_read_file (path, 64, &text, &len) < 0)
    return -1;
  long v = strtol (text, NULL, 10);
  return v > 1 && v < INT32_MAX ? (pid_t) v : -1;
}

/* The host's TSC rate in kHz (0 when unknown), measured once against
 * CLOCK_MONOTONIC_RAW over 20 ms. */
static int64_t
mv_tsc_khz (void)
{
#if defined(__x86_64__)
  static int64_t khz = -1;
  if (khz >= 0)
    return khz;
  struct timespec a, b;
  clock_gettime (CLOCK_MONOTONIC_RAW, &a);
  uint64_t t0 = __rdtsc ();
  struct timespec nap = { 0, 20 * 1000 * 1000 };
  while (nanosleep (&nap, &nap) < 0 && errno == EINTR)
    ;
  uint64_t t1 = __rdtsc ();
  clock_gettime (CLOCK_MONOTONIC_RAW, &b);
  int64_t ns = (int64_t) (b.tv_sec - a.tv_sec) * 1000000000 + (b.tv_nsec - a.tv_nsec);
  khz = ns > 0 ? (int64_t) ((double) (t1 - t0) * 1e6 / (double) ns) : 0;
  return khz;
#else
  return 0;
#endif
}

/* The kernel command line every VM starts with. quiet: boot messages would
 * cost serial-port time under TCG and bury the workload's output in the
 * log; errors still show. panic=-1 and reboot=t: a guest that panics, or
 * whose power-off fails, resets, and QEMU (-no-reboot) exits. */
static char *
mv_cmdline_base (vmm_accel_t accel)
{
  /* Under TCG the guest's TSC runs at the host's rate, but the kernel's
   * calibration against the emulated PIT fails on a loaded host, marks the
   * TSC unstable and then hangs in early boot (seen here about one boot in
   * two). Telling it the rate skips that calibration. Under KVM kvmclock
   * gives the rate. */
  if (accel == VMM_ACCEL_NONE && mv_tsc_khz () > 0)
    return xasprintf ("console=ttyS0 quiet panic=-1 reboot=t tsc_early_khz=%" PRId64,
                      mv_tsc_khz ());
  return xstrdup ("console=ttyS0 quiet panic=-1 reboot=t");
}

/* Starts the VMM: its own session (an agent's terminal or process group
 * signals never reach it), stdin /dev/null, stdout and stderr appended to
 * out_path, $TMPDIR = tmpdir, and, when cg is set, inside cgroup name before
 * it execs. *pid is the agent's child. On failure nothing runs. */
static int
mv_spawn (const char *bin, char **argv, const char *out_path, const char *tmpdir, cg_manager_t *cg,
          const char *name, pid_t *pid_out, orch_err_t *err)
{
  cleanup_free char *tmpdir_env = xasprintf ("TMPDIR=%s", tmpdir);
  char *qenv[] = { tmpdir_env, (char *) "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
  cleanup_close int out_fd
      = open (out_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
  cleanup_close int null_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  if (out_fd < 0 || null_fd < 0)
    return orch_err_sys (err, "open %s or /dev/null", out_path);
  int go[2] = { -1, -1 }, ep[2] = { -1, -1 };
  if (pipe2 (go, O_CLOEXEC) < 0)
    return orch_err_sys (err, "pipe");
  if (pipe2 (ep, O_CLOEXEC) < 0)
    {
      orch_err_sys (err, "pipe");
      close (go[0]);
      close (go[1]);
      return -1;
    }
  pid_t pid = fork ();
  if (pid < 0)
    {
      orch_err_sys (err, "fork");
      close (go[0]);
      close (go[1]);
      close (ep[0]);
      close (ep[1]);
      return -1;
    }
  if (pid == 0)
    {
      /* Async-signal-safe calls only from here: the agent may have threads. */
      char c;
      close (go[1]);
      close (ep[0]);
      /* Wait until the parent has put us in the cgroup: the VMM's first
       * allocation is charged there. */
      while (read (go[0], &c, 1) < 0 && errno == EINTR)
        ;
      setsid ();
      dup2 (null_fd, 0);
      dup2 (out_fd, 1);
      dup2 (out_fd, 2);
      sigset_t none;
      sigemptyset (&none);
      sigprocmask (SIG_SETMASK, &none, NULL);
      execve (bin, argv, qenv);
      int e = errno;
      (void) !write (ep[1], &e, sizeof e);
      _exit (127);
    }
  close (go[0]);
  close (ep[1]);
  int ret = 0;
  if (cg != NULL && cg->ops->attach (cg, name, pid, err) < 0)
    ret = -1;
  else if (write (go[1], "g", 1) != 1)
    ret = orch_err_sys (err, "release the VMM");
  close (go[1]);
  if (ret == 0)
    {
      /* EOF: exec'd. An errno: exec failed. */
      int e = 0;
      ssize_t n;
      do
        n = read (ep[0], &e, sizeof e);
      while (n < 0 && errno == EINTR);
      if (n == (ssize_t) sizeof e)
        ret = orch_err_set (err, e, "exec %s: %s", bin, strerror (e));
    }
  close (ep[0]);
  if (ret < 0)
    {
      kill (pid, SIGKILL);
      while (waitpid (pid, NULL, 0) < 0 && errno == EINTR)
        ;
      return ret;
    }
  *pid_out = pid;
  return 0;
}

/* Boots the guest kernel with orch-init in probe mode (it prints a marker
 * and powers off) and waits up to timeout_ms for the marker. Returns 1 when
 * it came (*ms: from spawn to marker), 0 when the VM hung or died, -1 with
 * err when the test could not be set up. */
int
rt_microvm_boot_test (const char *state_dir, vmm_accel_t accel, int64_t mem_bytes, int timeout_ms,
                      double *ms, orch_err_t *err)
{
  rt_env_t env = { .state_dir = state_dir };
  mv_kernel_t k = { 0 };
  if (mv_kernel_find (&env, &k, err) < 0)
    return -1;
  cleanup_free char *tmpl = xasprintf ("%s/vm-probe.XXXXXX", state_dir);
  if (orch_mkdir_p (state_dir, 0755) < 0 || mkdtemp (tmpl) == NULL)
    {
      mv_kernel_clear (&k);
      return orch_err_sys (err, "mkdtemp %s", tmpl);
    }
  cleanup_free char *initrd = xasprintf ("%s/initrd.cpio", tmpl);
  cleanup_free char *console = xasprintf ("%s/console", tmpl);
  cleanup_free char *log = xasprintf ("%s/log", tmpl);
  cleanup_free char *exitp = xasprintf ("%s/exit", tmpl);
  cleanup_free char *ctl = xasprintf ("%s/ctl", tmpl);
  char *argv0[] = { (char *) "probe", NULL };
  char *env0[] = { NULL };
  char **argv = NULL;
  int ret = -1;
  pid_t pid = -1;
  cleanup_free char *base = mv_cmdline_base (accel);
  cleanup_free char *cmdline = xasprintf ("%s orch.probe", base);
  if (mv_initrd (initrd, &k, argv0, env0, false, err) < 0)
    goto out;
  if (mkfifo (ctl, 0600) < 0)
    {
      orch_err_sys (err, "mkfifo %s", ctl);
      goto out;
    }
  vmm_launch_t l = {
    .alloc_dir = tmpl,
    .kernel = k.image,
    .initrd = initrd,
    .cmdline = cmdline,
    .console_path = console,
    .log_path = log,
    .exit_path = exitp,
    .ctl_path = ctl,
    .vcpus = 1,
    .mem_bytes = mem_bytes > 0 ? mem_bytes : MV_PROBE_MEM,
    .accel = accel,
  };
  argv = vmm_qemu_ops.argv (&l, err);
  if (argv == NULL)
    goto out;
  int64_t t0 = orch_now_mono_ms ();
  if (mv_spawn (vmm_qemu_ops.binary (), argv, console, tmpl, NULL, NULL, &pid, err) < 0)
    goto out;
  ret = 0;
  for (;;)
    {
      cleanup_free char *text = NULL;
      size_t len = 0;
      if (orch_read_file (console, 1 << 20, &text, &len) == 0
          && strstr (text, "orch-probe-ok") != NULL)
        {
          if (ms != NULL)
            *ms = (double) (orch_now_mono_ms () - t0);
          ret = 1;
          break;
        }
      if (waitpid (pid, NULL, WNOHANG) == pid)
        {
          pid = -1;
          break;
        }
      if (orch_now_mono_ms () - t0 > timeout_ms)
        break;
      usleep (2000);
    }
out:
  if (pid > 0)
    {
      kill (pid, SIGKILL);
      while (waitpid (pid, NULL, 0) < 0 && errno == EINTR)
        ;
    }
  vmm_argv_free (argv);
  mv_kernel_clear (&k);
  orch_rm_rf (tmpl);
  return ret;
}

/* The accelerator to use: KVM only when /dev/kvm answers and the guest
 * kernel really boots under it. Some hosts (nested virtualisation, as on
 * the build machines) open /dev/kvm and answer KVM_GET_API_VERSION, yet
 * QEMU aborts on an MSR or the guest hangs in early boot. The verdict is
 * cached per guest kernel, host kernel and QEMU in <state>/vm-disks/kvm-check
 * and in the process, so only the first start after a change pays the test
 * (about a second where KVM works, MV_KVM_TEST_MS where it hangs). */
#define MV_KVM_TEST_MS 5000

static int
mv_accel (const rt_env_t *env, const mv_kernel_t *k, vmm_accel_t *out, orch_err_t *err)
{
  static char cached_key[512];
  static int cached_ok = -1;
  vmm_accel_t accel;
  if (vmm_accel_detect (&accel, err) < 0)
    return -1;
  if (accel != VMM_ACCEL_KVM)
    {
      *out = accel;
      return 0;
    }
  struct utsname u;
  uname (&u);
  char key[512];
  snprintf (key, sizeof key, "kernel=%s host=%s qemu=%s", k->version, u.release,
            vmm_qemu_ops.binary ());
  int ok = strcmp (key, cached_key) == 0 ? cached_ok : -1;
  cleanup_free char *dir = xasprintf ("%s/vm-disks", env->state_dir);
  cleanup_free char *path = xasprintf ("%s/kvm-check", dir);
  if (ok < 0)
    {
      cleanup_free char *text = NULL;
      size_t len;
      size_t klen = strlen (key);
      if (orch_read_file (path, 4096, &text, &len) == 0 && len > klen
          && strncmp (text, key, klen) == 0)
        ok = strncmp (text + klen, " kvm=ok", 7) == 0;
    }
  if (ok < 0)
    {
      orch_err_t terr = { 0 };
      int r = rt_microvm_boot_test (env->state_dir, VMM_ACCEL_KVM, 0, MV_KVM_TEST_MS, NULL, &terr);
      if (r < 0)
        {
          if (err != NULL)
            *err = terr;
          return orch_err_wrap (err, "KVM boot test");
        }
      ok = r;
      cleanup_free char *line = xasprintf ("%s kvm=%s\n", key, ok ? "ok" : "broken");
      orch_mkdir_p (dir, 0700);
      orch_write_file_atomic (path, line, strlen (line), 0644);
    }
  snprintf (cached_key, sizeof cached_key, "%s", key);
  cached_ok = ok;
  const char *force = getenv ("ORCH_VMM_ACCEL");
  if (!ok && force != NULL && strcmp (force, "kvm") == 0)
    return orch_err_set (err, ENOTSUP,
                         "ORCH_VMM_ACCEL=kvm, but guest kernel %s does not boot under KVM here",
                         k->version);
  *out = ok ? VMM_ACCEL_KVM : VMM_ACCEL_NONE;
  return 0;
}

/* ---- ops ---- */

static int
rt_microvm_probe (rt_env_t *env, orch_err_t *err)
{
  if (geteuid () != 0)
    return orch_err_set (err, EPERM, "microvm runtime: needs root");
  if (env == NULL || env->cg == NULL || env->state_dir == NULL)
    return orch_err_set (err, EINVAL, "microvm runtime: no cgroup manager or state dir");
  mv_kernel_t k = { 0 };
  if (mv_kernel_find (env, &k, err) < 0)
    return orch_err_wrap (err, "microvm runtime");
  cleanup_free char *order = xasprintf ("%s/modules.order", k.dir);
  int ok = access (order, R_OK);
  if (ok < 0)
    {
      mv_kernel_clear (&k);
      return orch_err_sys (err, "microvm runtime: guest kernel modules");
    }
  vmm_accel_t accel;
  ok = mv_accel (env, &k, &accel, err);
  mv_kernel_clear (&k);
  if (ok < 0)
    return orch_err_wrap (err, "microvm runtime");
  if (vmm_qemu_ops.probe (accel, err) < 0)
    return orch_err_wrap (err, "microvm runtime");
  if (access (MV_MKE2FS, X_OK) < 0)
    return orch_err_sys (err, "microvm runtime: %s", MV_MKE2FS);
  cleanup_free char *init = rt__init_path ();
  if (access (init, X_OK) < 0)
    return orch_err_sys (err, "microvm runtime: orch-init %s", init);
  return 0;
}

static int
rt_microvm_start (rt_env_t *env, const rt_alloc_t *a, rt_proc_t *out, orch_err_t *err)
{
  if (env == NULL || env->cg == NULL || env->state_dir == NULL || a == NULL || a->spec == NULL
      || out == NULL)
    return orch_err_set (err, EINVAL, "microvm start: missing arguments");
  if (!rt__valid_id (a->alloc_id))
    return orch_err_set (err, EINVAL, "microvm start: invalid allocation id \"%s\"",
                         a->alloc_id != NULL ? a->alloc_id : "");
  if (a->rootfs == NULL || a->alloc_dir == NULL || a->log_path == NULL)
    return orch_err_set (err, EINVAL, "microvm start %s: missing rootfs, alloc_dir or log_path",
                         a->alloc_id);
  const orch_spec_t *spec = a->spec;
  const vmm_ops_t *vmm = &vmm_qemu_ops;
  if (spec->memory_bytes < MV_MIN_MEM)
    return orch_err_set (err, EINVAL,
                         "microvm start %s: memory %" PRId64 " MiB is below the %lld MiB a "
                         "guest kernel needs",
                         a->alloc_id, spec->memory_bytes >> 20, MV_MIN_MEM >> 20);
  int64_t vcpus = spec->cpu_milli > 0 ? (spec->cpu_milli + 999) / 1000 : 1;
  if (vcpus > MV_MAX_VCPUS)
    vcpus = MV_MAX_VCPUS;

  /* argv and environment, as a container would get them. */
  size_t nargs = 0;
  while (spec->command != NULL && spec->command[nargs] != NULL)
    nargs++;
  if (nargs > MV_MAX_ARGS)
    return orch_err_set (err, E2BIG, "microvm start %s: %zu arguments (limit %d)", a->alloc_id,
                         nargs, MV_MAX_ARGS);
  char *sh[] = { (char *) "/bin/sh", NULL };
  char *const *cmd = nargs > 0 ? spec->command : sh;
  size_t nenv = 0;
  while (spec->env != NULL && spec->env[nenv] != NULL)
    nenv++;
  if (nenv > MV_MAX_ARGS)
    return orch_err_set (err, E2BIG, "microvm start %s: %zu environment variables (limit %d)",
                         a->alloc_id, nenv, MV_MAX_ARGS);
  cleanup_free char **envp = xcalloc (nenv + 4, sizeof (char *));
  cleanup_free char *env_host = xasprintf ("HOSTNAME=%.*s", MV_HOSTNAME_MAX, a->alloc_id);
  if (nenv > 0)
    memcpy (envp, spec->env, nenv * sizeof (char *));
  size_t ne = nenv;
  if (!rt__env_has (spec->env, "PATH"))
    envp[ne++] = (char *) "PATH=" MV_DEFAULT_PATH;
  if (!rt__env_has (spec->env, "HOSTNAME"))
    envp[ne++] = env_host;
  if (!rt__env_has (spec->env, "HOME"))
    envp[ne++] = (char *) "HOME=/root";

  mv_kernel_t k = { 0 };
  if (mv_kernel_find (env, &k, err) < 0)
    return orch_err_wrap (err, "microvm start %s", a->alloc_id);
  vmm_accel_t accel;
  if (mv_accel (env, &k, &accel, err) < 0 || vmm->probe (accel, err) < 0)
    {
      mv_kernel_clear (&k);
      return orch_err_wrap (err, "microvm start %s", a->alloc_id);
    }

  cleanup_free char *disk = mv_root_disk (env, a->rootfs, err);
  if (disk == NULL)
    {
      mv_kernel_clear (&k);
      return orch_err_wrap (err, "microvm start %s", a->alloc_id);
    }
  cleanup_free char *initrd = xasprintf ("%s/initrd.cpio", a->alloc_dir);
  cleanup_free char *ctl = xasprintf ("%s/ctl", a->alloc_dir);
  cleanup_free char *exit_path = xasprintf ("%s/exit", a->alloc_dir);
  cleanup_free char *pid_path = xasprintf ("%s/vmm.pid", a->alloc_dir);
  cleanup_free char *info_path = xasprintf ("%s/vmm.info", a->alloc_dir);

  char tap[16] = "", addr[64] = "", gw[64] = "", mac[32] = "";
  int prefix = 0;
  bool net_attached = false;
  char **argv = NULL;
  cleanup_free char *cmdline = NULL;
  pid_t pid = -1;
  bool cg_made = false;

  bool want_net = spec->network != ORCH_NET_HOST && env->net != NULL;
  if (mv_initrd (initrd, &k, cmd, envp, want_net, err) < 0)
    goto fail;
  unlink (ctl);
  if (mkfifo (ctl, 0600) < 0)
    {
      orch_err_sys (err, "mkfifo %s", ctl);
      goto fail;
    }
  {
    /* An empty record until orch-init writes one: "none yet". */
    int fd = open (exit_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
      {
        orch_err_sys (err, "open %s", exit_path);
        goto fail;
      }
    close (fd);
  }
  {
    int fd = open (a->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
    if (fd < 0)
      {
        orch_err_sys (err, "open log %s", a->log_path);
        goto fail;
      }
    close (fd);
  }

  if (want_net)
    {
      if (net_attach_tap (env->net, a->alloc_id, tap, sizeof tap, a->ports, a->n_ports, addr,
                          sizeof addr, &prefix, gw, sizeof gw, err)
          < 0)
        goto fail;
      net_attached = true;
      uint64_t h = mv_hash (a->alloc_id);
      snprintf (mac, sizeof mac, "52:54:00:%02x:%02x:%02x", (unsigned) (h >> 16) & 0xff,
                (unsigned) (h >> 8) & 0xff, (unsigned) h & 0xff);
    }

  {
    cleanup_free char *base = mv_cmdline_base (accel);
    cmdline = xasprintf ("%s orch.hostname=%.*s", base, MV_HOSTNAME_MAX, a->alloc_id);
  }
  if (getenv ("ORCH_VM_DEBUG") != NULL)
    {
      /* orch-init reports each step on the console. */
      char *dbg = xasprintf ("%s orch.debug", cmdline);
      free (cmdline);
      cmdline = dbg;
    }
  if (addr[0])
    {
      char *with_net
          = xasprintf ("%s orch.ip=%s/%d%s%s", cmdline, addr, prefix, gw[0] ? " orch.gw=" : "", gw);
      free (cmdline);
      cmdline = with_net;
    }

  vmm_launch_t l = {
    .alloc_dir = a->alloc_dir,
    .kernel = k.image,
    .initrd = initrd,
    .cmdline = cmdline,
    .root_disk = disk,
    .console_path = a->log_path,
    .log_path = a->log_path,
    .exit_path = exit_path,
    .ctl_path = ctl,
    .tap = tap[0] ? tap : NULL,
    .mac = tap[0] ? mac : NULL,
    .vcpus = (int) vcpus,
    .mem_bytes = spec->memory_bytes,
    .accel = accel,
  };
  argv = vmm->argv (&l, err);
  if (argv == NULL)
    goto fail;

  int64_t reserve = vmm->reserve (accel, (int) vcpus);
  cg_limits_t lim = {
    .cpu_milli = spec->cpu_milli,
    .memory_bytes = spec->memory_bytes + reserve,
    .pids_max = MV_PIDS_MAX,
  };
  if (env->cg->ops->create (env->cg, a->alloc_id, &lim, err) < 0)
    goto fail;
  cg_made = true;

  int64_t started = orch_now_wall_ms ();
  if (mv_spawn (vmm->binary (), argv, a->log_path, a->alloc_dir, env->cg, a->alloc_id, &pid, err)
      < 0)
    goto fail;

  {
    char buf[32];
    int len = snprintf (buf, sizeof buf, "%d\n", (int) pid);
    if (orch_write_file_atomic (pid_path, buf, (size_t) len, 0644) < 0)
      {
        orch_err_sys (err, "write %s", pid_path);
        goto fail;
      }
    snprintf (out->vmm, sizeof out->vmm, "%s (%s)", vmm->name, vmm_accel_name (accel));
    snprintf (out->guest_kernel, sizeof out->guest_kernel, "%s", k.version);
    snprintf (out->address, sizeof out->address, "%s", addr);
    cleanup_free char *info
        = xasprintf ("vmm=%s\naccel=%s\nguest_kernel=%s\naddress=%s\nmem_bytes=%" PRId64
                     "\nvcpus=%d\nstarted_ms=%" PRId64 "\n",
                     vmm->name, vmm_accel_name (accel), k.version, addr, spec->memory_bytes,
                     (int) vcpus, started);
    if (orch_write_file_atomic (info_path, info, strlen (info), 0644) < 0)
      {
        orch_err_sys (err, "write %s", info_path);
        goto fail;
      }
  }
  vmm_argv_free (argv);
  mv_kernel_clear (&k);
  out->pid = pid;
  out->started_ms = started;
  return 0;

fail:
  orch_err_wrap (err, "microvm start %s", a->alloc_id);
  if (pid > 0)
    {
      kill (pid, SIGKILL);
      while (waitpid (pid, NULL, 0) < 0 && errno == EINTR)
        ;
    }
  if (cg_made)
    {
      orch_err_t ignored = { 0 };
      env->cg->ops->destroy (env->cg, a->alloc_id, &ignored);
    }
  if (net_attached)
    {
      orch_err_t ignored = { 0 };
      net_detach (env->net, a->alloc_id, &ignored);
    }
  vmm_argv_free (argv);
  mv_kernel_clear (&k);
  mv_remove_files (a->alloc_dir);
  unlink (exit_path);
  return -1;
}

/* SIGKILL ends the VMM at once; any other signal goes to the workload
 * through the guest init (the ctl FIFO, read by QEMU and passed on the
 * orch.ctl port). A request made while the guest still boots waits in the
 * FIFO and is delivered as soon as the workload runs. */
/* Builds (or finds) the image's root disk, so that start() finds it cached. */
static int
rt_microvm_prepare (rt_env_t *env, const char *rootfs, orch_err_t *err)
{
  cleanup_free char *disk = mv_root_disk (env, rootfs, err);
  return disk ? 0 : -1;
}

static int
rt_microvm_kill (rt_env_t *env, const char *alloc_id, const rt_proc_t *p, int sig, orch_err_t *err)
{
  if (p == NULL || p->pid <= 0 || env == NULL || env->state_dir == NULL)
    return orch_err_set (err, EINVAL, "kill %s: no process", alloc_id != NULL ? alloc_id : "");
  if (!rt__valid_id (alloc_id))
    return orch_err_set (err, EINVAL, "kill: invalid allocation id");
  if (sig == SIGKILL || sig == 0)
    {
      if (kill (p->pid, sig) < 0)
        return orch_err_sys (err, "kill %s (vmm pid %d, signal %d)", alloc_id, (int) p->pid, sig);
      return 0;
    }
  cleanup_free char *dir = mv_alloc_dir (env, alloc_id);
  cleanup_free char *ctl = xasprintf ("%s/ctl", dir);
  /* O_NONBLOCK: ENXIO rather than a hang when no VMM holds the FIFO. */
  cleanup_close int fd = open (ctl, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    return orch_err_sys (err, "kill %s: %s", alloc_id, ctl);
  char line[32];
  int len = snprintf (line, sizeof line, "signal %d\n", sig);
  if (write (fd, line, (size_t) len) != len)
    return orch_err_sys (err, "kill %s: write %s", alloc_id, ctl);
  return 0;
}

static int
rt_microvm_usage (rt_env_t *env, const char *alloc_id, cg_usage_t *out, orch_err_t *err)
{
  if (env == NULL || env->cg == NULL)
    return orch_err_set (err, EINVAL, "usage: no cgroup manager");
  return env->cg->ops->usage (env->cg, alloc_id, out, err);
}

static int
rt_microvm_cleanup (rt_env_t *env, const char *alloc_id, orch_err_t *err)
{
  if (env == NULL || env->cg == NULL || env->state_dir == NULL)
    return orch_err_set (err, EINVAL, "cleanup: missing state dir or cgroup manager");
  if (!rt__valid_id (alloc_id))
    return orch_err_set (err, EINVAL, "cleanup: invalid allocation id \"%s\"",
                         alloc_id != NULL ? alloc_id : "");
  /* The cgroup's destroy SIGKILLs a VMM still in it. */
  int ret = env->cg->ops->destroy (env->cg, alloc_id, err);
  if (env->net != NULL)
    {
      orch_err_t nerr = { 0 };
      if (net_detach (env->net, alloc_id, &nerr) < 0 && ret == 0)
        {
          if (err != NULL)
            *err = nerr;
          ret = -1;
        }
    }
  cleanup_free char *dir = mv_alloc_dir (env, alloc_id);
  mv_remove_files (dir);
  if (ret < 0)
    return orch_err_wrap (err, "cleanup %s", alloc_id);
  return 0;
}

static int
rt_microvm_adopt (rt_env_t *env, const char *alloc_id, const char *alloc_dir, rt_proc_t *out,
                  orch_err_t *err)
{
  (void) env;
  if (alloc_dir == NULL || out == NULL)
    return orch_err_set (err, EINVAL, "adopt: missing arguments");
  cleanup_free char *vmm_name = mv_info_get (alloc_dir, "vmm");
  pid_t pid = mv_read_pid (alloc_dir);
  cleanup_free char *exit_path = xasprintf ("%s/exit", alloc_dir);
  struct stat st;
  /* A VM that ended and was cleaned up leaves its exit record only. */
  if ((pid < 0 || vmm_name == NULL) && stat (exit_path, &st) == 0 && st.st_size > 0)
    return 0;
  if (pid < 0 || vmm_name == NULL)
    return orch_err_set (err, ENOENT, "adopt %s: no vmm.pid or vmm.info in %s",
                         alloc_id != NULL ? alloc_id : "", alloc_dir);
  const vmm_ops_t *vmm = vmm_lookup (vmm_name);
  if (vmm == NULL)
    return orch_err_set (err, ENOTSUP, "adopt %s: unknown VMM %s", alloc_id, vmm_name);
  if (kill (pid, 0) < 0 || !vmm->owns (pid, alloc_dir))
    return 0;
  cleanup_free char *accel = mv_info_get (alloc_dir, "accel");
  cleanup_free char *kv = mv_info_get (alloc_dir, "guest_kernel");
  cleanup_free char *addr = mv_info_get (alloc_dir, "address");
  cleanup_free char *started = mv_info_get (alloc_dir, "started_ms");
  out->pid = pid;
  out->started_ms = started != NULL ? strtoll (started, NULL, 10) : 0;
  snprintf (out->vmm, sizeof out->vmm, "%s (%s)", vmm->name, accel != NULL ? accel : "?");
  snprintf (out->guest_kernel, sizeof out->guest_kernel, "%s", kv != NULL ? kv : "");
  snprintf (out->address, sizeof out->address, "%s", addr != NULL ? addr : "");
  return 1;
}

int
rt_microvm_overhead (const char *alloc_dir, int64_t *out, orch_err_t *err)
{
  cleanup_free char *vmm_name = mv_info_get (alloc_dir, "vmm");
  cleanup_free char *mem = mv_info_get (alloc_dir, "mem_bytes");
  pid_t pid = mv_read_pid (alloc_dir);
  const vmm_ops_t *vmm = vmm_name != NULL ? vmm_lookup (vmm_name) : NULL;
  if (pid < 0 || vmm == NULL || mem == NULL)
    return orch_err_set (err, ENOENT, "overhead: no running VM in %s", alloc_dir);
  if (!vmm->owns (pid, alloc_dir))
    return orch_err_set (err, ESRCH, "overhead: the VM of %s is gone", alloc_dir);
  return vmm->overhead (pid, strtoll (mem, NULL, 10), out, err);
}

int64_t
rt_microvm_reserve (const char *state_dir, int vcpus)
{
  vmm_accel_t accel = VMM_ACCEL_NONE;
  rt_env_t env = { .state_dir = state_dir };
  mv_kernel_t k = { 0 };
  orch_err_t ignored = { 0 };
  if (mv_kernel_find (&env, &k, &ignored) == 0)
    {
      if (mv_accel (&env, &k, &accel, &ignored) < 0)
        accel = VMM_ACCEL_NONE;
      mv_kernel_clear (&k);
    }
  return vmm_qemu_ops.reserve (accel, vcpus);
}

const rt_ops_t rt_microvm_ops = {
  .name = "microvm",
  .probe = rt_microvm_probe,
  .start = rt_microvm_start,
  .kill = rt_microvm_kill,
  .usage = rt_microvm_usage,
  .cleanup = rt_microvm_cleanup,
  .adopt = rt_microvm_adopt,
  .prepare = rt_microvm_prepare,
};
