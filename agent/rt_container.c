/* The "container" runtime: namespaces, an overlay over the image's root
 * filesystem, pivot_root, a cgroup, dropped capabilities and a seccomp
 * deny-list; orch-init (agent/init/orch_init.c) as the container's pid 1.
 * Optionally a user namespace (container root = an unprivileged range of
 * host ids, the image seen through an idmapped mount), and the node bridge
 * (agent/net.h) for "network": "bridge".
 *
 * start() does everything that can allocate in the agent (paths, argv, env,
 * the seccomp program) and then clone()s. The child only makes system calls
 * until it exec's orch-init: the agent may have threads, and a clone() child
 * of a threaded process must not take locks another thread may hold. The
 * parent attaches the child to its cgroup while the child builds its mounts;
 * the child waits for that before it enters its cgroup namespace and execs.
 *
 * The handshake on the socket pair: with a user namespace the parent first
 * writes the id maps and sends "u" with the idmapped image (SCM_RIGHTS);
 * then, once the child is in its cgroup, attached to the bridge and has its
 * rlimits, "g". The child answers with the step that failed, or with EOF
 * when it exec's orch-init. start() then leaves <alloc_dir>/state (pid, its
 * start time, address) for adopt(). */
#define _GNU_SOURCE
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "orch_run.h"
#include "orch_util.h"
#include "rt.h"
#include "rt_internal.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define RT_START_TIMEOUT_MS 5000
#define RT_PIDS_MAX 4096
#define RT_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define RT_MAX_ARGS 4096
#define RT_MAX_ENV 4096
#define RT_HOSTNAME_MAX 64    /* the kernel's limit; longer ids are cut */
#define RT_NOFILE_MAX 1048576 /* Docker's default; cut to fs.nr_open where that is lower */

/* The new mount API (Linux 5.2 / 5.12), for the user namespace's idmapped
 * image; glibc 2.36 has no wrappers for all of it. */
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#endif
#ifndef MOUNT_ATTR_IDMAP
#define MOUNT_ATTR_IDMAP 0x00100000
#endif
typedef struct rt_mount_attr_s
{
  uint64_t attr_set;
  uint64_t attr_clr;
  uint64_t propagation;
  uint64_t userns_fd;
} rt_mount_attr_t;

/* struct clone_args of clone3(2), version 2 (with cgroup); declared here
 * because <linux/sched.h> clashes with glibc's <sched.h>. */
typedef struct rt_clone_args_s
{
  uint64_t flags;
  uint64_t pidfd;
  uint64_t child_tid;
  uint64_t parent_tid;
  uint64_t exit_signal;
  uint64_t stack;
  uint64_t stack_size;
  uint64_t tls;
  uint64_t set_tid;
  uint64_t set_tid_size;
  uint64_t cgroup;
} rt_clone_args_t;
#define RT_CLONE_INTO_CGROUP 0x200000000ULL

/* Docker's default capability set. */
const unsigned long long rt__default_caps
    = (1ULL << CAP_CHOWN) | (1ULL << CAP_DAC_OVERRIDE) | (1ULL << CAP_FSETID) | (1ULL << CAP_FOWNER)
      | (1ULL << CAP_MKNOD) | (1ULL << CAP_NET_RAW) | (1ULL << CAP_SETGID) | (1ULL << CAP_SETUID)
      | (1ULL << CAP_SETFCAP) | (1ULL << CAP_SETPCAP) | (1ULL << CAP_NET_BIND_SERVICE)
      | (1ULL << CAP_SYS_CHROOT) | (1ULL << CAP_KILL) | (1ULL << CAP_AUDIT_WRITE);

/* ---- seccomp: compiled once per process ---- */

static const char *const rt_seccomp_denied[] = {
  "mount",
  "umount2",
  "umount",
  "kexec_load",
  "kexec_file_load",
  "init_module",
  "finit_module",
  "delete_module",
  "keyctl",
  "add_key",
  "request_key",
  "ptrace",
  "bpf",
  "perf_event_open",
  "unshare",
  "setns",
  "open_by_handle_at",
  "clock_settime",
  "clock_settime64",
  "settimeofday",
  "adjtimex",
  "clock_adjtime",
  "clock_adjtime64",
  "swapon",
  "swapoff",
  "reboot",
  "pivot_root",
  "fsopen",
  "fsmount",
  "move_mount",
  "open_tree",
  "fsconfig",
  "fspick",
  "mount_setattr",
};

static pthread_once_t rt_seccomp_once = PTHREAD_ONCE_INIT;
static struct sock_fprog rt_seccomp_prog;
static orch_err_t rt_seccomp_err;
static int rt_seccomp_ok;

static bool
rt_name_listed (const char *name, char *const *list)
{
  for (size_t i = 0; list && list[i]; i++)
    if (strcmp (list[i], name) == 0)
      return true;
  return false;
}

/* Compiles the default deny-list, less the names in allow, plus those in
 * deny (both NULL-terminated, may be NULL), into *out (filter malloc'd). */
static int
rt_seccomp_compile (char *const *allow, char *const *deny, struct sock_fprog *out,
                    orch_err_t *err)
{
  scmp_filter_ctx ctx = seccomp_init (SCMP_ACT_ALLOW);
  if (ctx == NULL)
    return orch_err_set (err, ENOMEM, "seccomp_init failed");
  int ret;
  /* A 64-bit process can still make 32-bit system calls: deny them there too. */
  if (seccomp_arch_native () == SCMP_ARCH_X86_64)
    {
      ret = seccomp_arch_add (ctx, SCMP_ARCH_X86);
      if (ret < 0 && ret != -EEXIST)
        goto fail;
      ret = seccomp_arch_add (ctx, SCMP_ARCH_X32);
      if (ret < 0 && ret != -EEXIST)
        goto fail;
    }
  for (size_t i = 0; deny && deny[i]; i++)
    {
      int nr = seccomp_syscall_resolve_name (deny[i]);
      if (nr == __NR_SCMP_ERROR)
        {
          seccomp_release (ctx);
          return orch_err_set (err, EINVAL, "seccomp.deny: unknown system call \"%s\"", deny[i]);
        }
      ret = seccomp_rule_add (ctx, SCMP_ACT_ERRNO (EPERM), nr, 0);
      if (ret < 0 && ret != -EDOM && ret != -EINVAL && ret != -EEXIST)
        goto fail;
    }
  for (size_t i = 0; i < ORCH_ARRAY_LEN (rt_seccomp_denied); i++)
    {
      if (rt_name_listed (rt_seccomp_denied[i], allow) || rt_name_listed (rt_seccomp_denied[i], deny))
        continue;
      int nr = seccomp_syscall_resolve_name (rt_seccomp_denied[i]);
      if (nr == __NR_SCMP_ERROR)
        continue; /* not known to this libseccomp: nothing to deny */
      ret = seccomp_rule_add (ctx, SCMP_ACT_ERRNO (EPERM), nr, 0);
      /* Pseudo-syscalls that exist on no arch in the filter fail harmlessly. */
      if (ret < 0 && ret != -EDOM && ret != -EINVAL)
        goto fail;
    }
  /* clone may not make namespaces either (what unshare is denied for). */
  static const unsigned long ns_flags[]
      = { CLONE_NEWNS,  CLONE_NEWUTS, CLONE_NEWIPC,   CLONE_NEWUSER,
          CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP };
  for (size_t i = 0; !rt_name_listed ("unshare", allow) && i < ORCH_ARRAY_LEN (ns_flags); i++)
    {
      ret = seccomp_rule_add (ctx, SCMP_ACT_ERRNO (EPERM), SCMP_SYS (clone), 1,
                              SCMP_A0 (SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]));
      if (ret < 0)
        goto fail;
    }
  /* clone3 passes its flags in memory, where a filter cannot look: ENOSYS
   * makes glibc fall back to clone. */
  ret = seccomp_rule_add (ctx, SCMP_ACT_ERRNO (ENOSYS), SCMP_SYS (clone3), 0);
  if (ret < 0 && ret != -EDOM)
    goto fail;
  int fd = memfd_create ("orch-seccomp", MFD_CLOEXEC);
  if (fd < 0)
    {
      seccomp_release (ctx);
      return orch_err_sys (err, "seccomp: memfd_create");
    }
  ret = seccomp_export_bpf (ctx, fd);
  if (ret < 0)
    {
      close (fd);
      goto fail;
    }
  off_t len = lseek (fd, 0, SEEK_END);
  if (len <= 0 || len % (off_t) sizeof (struct sock_filter) != 0 || len > 1024 * 1024)
    {
      close (fd);
      seccomp_release (ctx);
      return orch_err_set (err, EINVAL, "seccomp: exported program has %lld bytes",
                           (long long) len);
    }
  struct sock_filter *f = xmalloc ((size_t) len);
  ssize_t n = pread (fd, f, (size_t) len, 0);
  close (fd);
  seccomp_release (ctx);
  if (n != len)
    {
      free (f);
      return orch_err_set (err, EIO, "seccomp: short read of the exported program");
    }
  out->len = (unsigned short) (len / (off_t) sizeof (struct sock_filter));
  out->filter = f;
  return 0;
fail:
  seccomp_release (ctx);
  return orch_err_set (err, -ret, "seccomp: %s", strerror (-ret));
}

static int
rt_seccomp_build (void)
{
  return rt_seccomp_compile (NULL, NULL, &rt_seccomp_prog, &rt_seccomp_err);
}

static void
rt_seccomp_once_fn (void)
{
  rt_seccomp_ok = rt_seccomp_build () == 0;
}

const struct sock_fprog *
rt__seccomp_default (orch_err_t *err)
{
  pthread_once (&rt_seccomp_once, rt_seccomp_once_fn);
  if (!rt_seccomp_ok)
    {
      if (err != NULL)
        *err = rt_seccomp_err;
      return NULL;
    }
  return &rt_seccomp_prog;
}

char *
rt__init_path (void)
{
  return orch_program_path ("ORCH_INIT_PATH", "orch-init");
}

/* ---- the child ---- */

/* Everything the child needs, prepared by the parent. */
typedef struct rt_child_s
{
  const char *alloc_id;
  const char *merged; /* relative to alloc_dir, as every path of the child's */
  const char *overlay_opts;
  char *const *argv;
  char *const *envp;
  const struct sock_fprog *seccomp;
  int log_fd, exit_fd, null_fd, init_fd;
  const char *alloc_dir; /* the child's working directory */
  int sock;              /* to the parent: reads "go", writes what failed */
  bool new_net, new_cgroup;
  bool userns; /* wait for the id maps and the idmapped image first */
} rt_child_t;

static void
rt_child_write (int fd, const char *s)
{
  size_t len = strlen (s);
  while (len > 0)
    {
      ssize_t n = write (fd, s, len);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return;
      s += n;
      len -= (size_t) n;
    }
}

/* Reports "step: strerror(errno)" to the parent and dies. */
__attribute__ ((noreturn)) static void
rt_child_fail (const rt_child_t *c, const char *step, const char *arg)
{
  int e = errno;
  char buf[PATH_MAX + 256];
  /* strerrordesc_np, not strerror: no gettext, so no lock another thread
   * of the agent may have held when we were cloned. */
  const char *etext = strerrordesc_np (e);
  if (etext == NULL)
    etext = "Unknown error";
  if (arg != NULL)
    snprintf (buf, sizeof buf, "%s %s: %s", step, arg, etext);
  else
    snprintf (buf, sizeof buf, "%s: %s", step, etext);
  rt_child_write (c->sock, buf);
  _exit (1);
}

static void
rt_child_path (char *buf, size_t size, const rt_child_t *c, const char *rel)
{
  snprintf (buf, size, "%s/%s", c->merged, rel);
}

static void
rt_child_mkdir (const rt_child_t *c, const char *rel, mode_t mode)
{
  char p[PATH_MAX];
  rt_child_path (p, sizeof p, c, rel);
  if (mkdir (p, mode) < 0 && errno != EEXIST)
    rt_child_fail (c, "mkdir", p);
}

static void
rt_child_mount (const rt_child_t *c, const char *src, const char *rel, const char *type,
                unsigned long flags, const char *data)
{
  char p[PATH_MAX];
  rt_child_path (p, sizeof p, c, rel);
  if (mount (src, p, type, flags, data) < 0)
    rt_child_fail (c, "mount", p);
}

static void
rt_child_dev (const rt_child_t *c, const char *name, unsigned maj, unsigned min)
{
  char p[PATH_MAX];
  char rel[64];
  snprintf (rel, sizeof rel, "dev/%s", name);
  rt_child_path (p, sizeof p, c, rel);
  if (mknod (p, S_IFCHR | 0666, makedev (maj, min)) == 0)
    return;
  /* Where mknod is refused, bind the host's node. */
  int fd = open (p, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0)
    rt_child_fail (c, "create", p);
  close (fd);
  char host[64];
  snprintf (host, sizeof host, "/dev/%s", name);
  if (mount (host, p, NULL, MS_BIND, NULL) < 0)
    rt_child_fail (c, "bind mount", host);
}

static void
rt_child_symlink (const rt_child_t *c, const char *target, const char *rel)
{
  char p[PATH_MAX];
  rt_child_path (p, sizeof p, c, rel);
  if (symlink (target, p) < 0 && errno != EEXIST)
    rt_child_fail (c, "symlink", p);
}

/* /proc and /sys files that reach the host kernel itself: the workload
 * runs as root in the host's user namespace, and /proc/sys/kernel/core_pattern
 * or /proc/sysrq-trigger would let it take the host over. The same list as
 * Docker's; the workload cannot undo it (no CAP_SYS_ADMIN, mount denied). */
static const char *const rt_readonly_paths[] = {
  "proc/bus", "proc/fs", "proc/irq", "proc/sys", "proc/sysrq-trigger",
};
static const char *const rt_masked_paths[] = {
  "proc/acpi",
  "proc/asound",
  "proc/kcore",
  "proc/keys",
  "proc/latency_stats",
  "proc/timer_list",
  "proc/timer_stats",
  "proc/sched_debug",
  "proc/scsi",
  "sys/firmware",
  "sys/devices/virtual/powercap",
};

static void
rt_child_mask (const rt_child_t *c)
{
  char p[PATH_MAX];
  for (size_t i = 0; i < ORCH_ARRAY_LEN (rt_readonly_paths); i++)
    {
      rt_child_path (p, sizeof p, c, rt_readonly_paths[i]);
      if (mount (p, p, NULL, MS_BIND | MS_REC, NULL) < 0)
        {
          if (errno == ENOENT)
            continue;
          rt_child_fail (c, "bind mount", p);
        }
      if (mount (NULL, p, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                 NULL)
          < 0)
        rt_child_fail (c, "make read-only", p);
    }
  char null[PATH_MAX];
  rt_child_path (null, sizeof null, c, "dev/null");
  for (size_t i = 0; i < ORCH_ARRAY_LEN (rt_masked_paths); i++)
    {
      rt_child_path (p, sizeof p, c, rt_masked_paths[i]);
      struct stat st;
      if (stat (p, &st) < 0)
        continue;
      int r = S_ISDIR (st.st_mode) ? mount ("tmpfs", p, "tmpfs",
                                            MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0")
                                   : mount (null, p, NULL, MS_BIND, NULL);
      if (r < 0)
        rt_child_fail (c, "mask", p);
    }
}

/* Reads one byte from the parent, with the descriptor it passes along if
 * any (SCM_RIGHTS); *fd is -1 without one. Dies quietly on EOF: the parent
 * gave up and reports why. */
static char
rt_child_recv (const rt_child_t *c, int *fd)
{
  char b = 0;
  union
  {
    char buf[CMSG_SPACE (sizeof (int))];
    struct cmsghdr align;
  } u;
  struct iovec iov = { .iov_base = &b, .iov_len = 1 };
  struct msghdr mh
      = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
  ssize_t n;
  do
    n = recvmsg (c->sock, &mh, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n != 1)
    _exit (1);
  *fd = -1;
  struct cmsghdr *cm = CMSG_FIRSTHDR (&mh);
  if (cm != NULL && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS
      && cm->cmsg_len == CMSG_LEN (sizeof (int)))
    memcpy (fd, CMSG_DATA (cm), sizeof (int));
  return b;
}

/* Becomes root of the new user namespace (the parent has written the id
 * maps by now) and puts the idmapped image where the overlay finds it. */
static void
rt_child_userns (const rt_child_t *c)
{
  int tree = -1;
  if (rt_child_recv (c, &tree) != 'u' || tree < 0)
    {
      errno = EPROTO;
      rt_child_fail (c, "receive the idmapped image", NULL);
    }
  /* Raw system calls: glibc's wrappers would try to change the ids of
   * every thread of the agent, which this copy of it does not have. */
  if (syscall (SYS_setgroups, 0, NULL) < 0)
    rt_child_fail (c, "setgroups", NULL);
  if (syscall (SYS_setresgid, 0, 0, 0) < 0)
    rt_child_fail (c, "setresgid", NULL);
  if (syscall (SYS_setresuid, 0, 0, 0) < 0)
    rt_child_fail (c, "setresuid", NULL);
  if (syscall (SYS_move_mount, tree, "", AT_FDCWD, "scratch/lower", MOVE_MOUNT_F_EMPTY_PATH) < 0)
    rt_child_fail (c, "move the idmapped image to", "scratch/lower");
  close (tree);
}

static int
rt_child_move_fd (const rt_child_t *c, int fd)
{
  int n = fcntl (fd, F_DUPFD_CLOEXEC, 10);
  if (n < 0)
    rt_child_fail (c, "dup", NULL);
  return n;
}

static void
rt_child_caps (const rt_child_t *c)
{
  for (int cap = 0; cap < 64; cap++)
    {
      if (rt__default_caps & (1ULL << cap))
        continue;
      if (prctl (PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
        {
          if (errno == EINVAL)
            break; /* past the kernel's last capability */
          rt_child_fail (c, "drop capabilities", NULL);
        }
    }
  prctl (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
  struct __user_cap_data_struct data[2];
  memset (data, 0, sizeof data);
  data[0].effective = data[0].permitted = (uint32_t) rt__default_caps;
  data[1].effective = data[1].permitted = (uint32_t) (rt__default_caps >> 32);
  if (syscall (SYS_capset, &hdr, data) < 0)
    rt_child_fail (c, "capset", NULL);
}

__attribute__ ((noreturn)) static void
rt_child_run (rt_child_t *c)
{
  /* The agent's signal mask and ignored signals must not reach the
   * workload (a libuv worker thread blocks every signal). The signals
   * orch-init forwards stay blocked across exec: a namespace's pid 1 drops
   * an unblocked signal it has no handler for, so a SIGTERM sent right
   * after start would be lost before orch-init is ready for it. */
  sigset_t mask;
  sigemptyset (&mask);
  static const int held[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCHLD };
  for (size_t i = 0; i < ORCH_ARRAY_LEN (held); i++)
    sigaddset (&mask, held[i]);
  sigprocmask (SIG_SETMASK, &mask, NULL);
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP)
      signal (sig, SIG_DFL);
  umask (0);

  /* Every path from here is relative to the allocation's directory: in a
   * user namespace the state directory above it may not be searchable once
   * we are the namespace's root (we are still the host's root now, and own
   * it). By path, not by a descriptor: one opened before clone() refers to
   * the parent's mounts, which overlayfs refuses as layers. */
  if (chdir (c->alloc_dir) < 0)
    rt_child_fail (c, "chdir", c->alloc_dir);
  if (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    rt_child_fail (c, "make / private", NULL);
  if (c->userns)
    rt_child_userns (c);
  if (mount ("overlay", c->merged, "overlay", 0, c->overlay_opts) < 0)
    rt_child_fail (c, "mount overlay on", c->merged);

  rt_child_mkdir (c, "proc", 0555);
  rt_child_mount (c, "proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);

  rt_child_mkdir (c, "dev", 0755);
  rt_child_mount (c, "tmpfs", "dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k");
  rt_child_dev (c, "null", 1, 3);
  rt_child_dev (c, "zero", 1, 5);
  rt_child_dev (c, "full", 1, 7);
  rt_child_dev (c, "random", 1, 8);
  rt_child_dev (c, "urandom", 1, 9);
  rt_child_dev (c, "tty", 5, 0);
  rt_child_mkdir (c, "dev/pts", 0755);
  rt_child_mount (c, "devpts", "dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                  "newinstance,ptmxmode=0666,mode=0620");
  rt_child_mkdir (c, "dev/shm", 01777);
  rt_child_mount (c, "shm", "dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  "mode=1777,size=65536k");
  rt_child_symlink (c, "pts/ptmx", "dev/ptmx");
  rt_child_symlink (c, "/proc/self/fd", "dev/fd");
  rt_child_symlink (c, "/proc/self/fd/0", "dev/stdin");
  rt_child_symlink (c, "/proc/self/fd/1", "dev/stdout");
  rt_child_symlink (c, "/proc/self/fd/2", "dev/stderr");

  rt_child_mkdir (c, "sys", 0555);
  {
    char p[PATH_MAX];
    rt_child_path (p, sizeof p, c, "sys");
    if (mount ("sysfs", p, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
      {
        /* A user namespace may mount sysfs only with a network namespace of
         * its own: with the host's network, bind the host's, read-only. */
        if (errno != EPERM || !c->userns || c->new_net)
          rt_child_fail (c, "mount", p);
        if (mount ("/sys", p, NULL, MS_BIND | MS_REC, NULL) < 0)
          rt_child_fail (c, "bind mount", p);
        rt_mount_attr_t ro = { .attr_set = MOUNT_ATTR_RDONLY };
        if (syscall (SYS_mount_setattr, AT_FDCWD, p, AT_RECURSIVE, &ro, sizeof ro) < 0)
          rt_child_fail (c, "make read-only", p);
      }
  }
  rt_child_mkdir (c, "tmp", 01777);
  rt_child_mask (c);

  if (sethostname (c->alloc_id, strnlen (c->alloc_id, RT_HOSTNAME_MAX)) < 0)
    rt_child_fail (c, "sethostname", NULL);
  if (c->new_net)
    {
      /* A new network namespace starts with lo down. */
      int s = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      struct ifreq ifr;
      memset (&ifr, 0, sizeof ifr);
      strcpy (ifr.ifr_name, "lo");
      if (s < 0 || ioctl (s, SIOCGIFFLAGS, &ifr) < 0)
        rt_child_fail (c, "loopback up", NULL);
      ifr.ifr_flags |= IFF_UP;
      if (ioctl (s, SIOCSIFFLAGS, &ifr) < 0)
        rt_child_fail (c, "loopback up", NULL);
      close (s);
    }

  if (chdir (c->merged) < 0)
    rt_child_fail (c, "chdir", c->merged);
  /* pivot_root(".", ".") stacks the old root on the new one; unmounting
   * "." then detaches the old root without needing a directory for it. */
  if (syscall (SYS_pivot_root, ".", ".") < 0)
    rt_child_fail (c, "pivot_root", NULL);
  if (umount2 (".", MNT_DETACH) < 0)
    rt_child_fail (c, "unmount old root", NULL);
  if (chdir ("/") < 0)
    rt_child_fail (c, "chdir /", NULL);

  /* stdin /dev/null, stdout+stderr the log, fd 3 the exit record. Every
   * descriptor the child still uses moves above 9 first: any of them may be
   * one of 0..3 now. */
  c->sock = rt_child_move_fd (c, c->sock);
  c->init_fd = rt_child_move_fd (c, c->init_fd);
  int lfd = rt_child_move_fd (c, c->log_fd);
  int efd = rt_child_move_fd (c, c->exit_fd);
  int nfd = rt_child_move_fd (c, c->null_fd);
  if (dup2 (nfd, 0) < 0 || dup2 (lfd, 1) < 0 || dup2 (lfd, 2) < 0 || dup2 (efd, 3) < 0)
    rt_child_fail (c, "dup2", NULL);
  /* Nothing else of the agent's reaches the workload. */
  syscall (SYS_close_range, 4U, ~0U, CLOSE_RANGE_CLOEXEC);

  /* The cgroup namespace must be created inside the workload's cgroup, so
   * wait for the parent to attach us. */
  int unused_fd;
  if (rt_child_recv (c, &unused_fd) != 'g')
    _exit (1);
  if (c->new_cgroup && unshare (CLONE_NEWCGROUP) < 0)
    rt_child_fail (c, "unshare cgroup namespace", NULL);

  rt_child_caps (c);
  if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    rt_child_fail (c, "no_new_privs", NULL);
  umask (022);
  if (c->seccomp != NULL
      && syscall (SYS_seccomp, 1 /* SECCOMP_SET_MODE_FILTER */, 0, c->seccomp) < 0)
    rt_child_fail (c, "seccomp", NULL);
  syscall (SYS_execveat, c->init_fd, "", c->argv, c->envp, AT_EMPTY_PATH);
  rt_child_fail (c, "exec orch-init", NULL);
}

/* ---- the parent ---- */


static void rt_pool_fill (const char *state_dir);

static int
rt_container_probe (rt_env_t *env, orch_err_t *err)
{
  if (geteuid () != 0)
    return orch_err_set (err, EPERM, "container runtime: needs root");
  if (env == NULL || env->cg == NULL)
    return orch_err_set (err, EINVAL, "container runtime: no cgroup manager");
  /* The namespaces may exist and still be refused (inside another
   * container, or under a seccomp policy): make them once. */
  pid_t pid = (pid_t) syscall (
      SYS_clone, CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | SIGCHLD,
      NULL, NULL, NULL, 0);
  if (pid < 0)
    return orch_err_sys (err, "container runtime: cannot create namespaces");
  if (pid == 0)
    _exit (0);
  while (waitpid (pid, NULL, 0) < 0 && errno == EINTR)
    ;
  cleanup_free char *fs = NULL;
  size_t len;
  int ret = orch_read_file ("/proc/filesystems", 1 << 20, &fs, &len);
  if (ret < 0)
    return orch_err_set (err, -ret, "container runtime: read /proc/filesystems: %s",
                         strerror (-ret));
  if (strstr (fs, "\toverlay\n") == NULL)
    return orch_err_set (err, ENODEV, "container runtime: the kernel has no overlay filesystem");
  cleanup_free char *init = rt__init_path ();
  if (access (init, X_OK) < 0)
    return orch_err_sys (err, "container runtime: orch-init %s", init);
  if (rt__seccomp_default (err) == NULL)
    return orch_err_wrap (err, "container runtime");
  if (env->state_dir != NULL)
    rt_pool_fill (env->state_dir);
  return 0;
}

static void
rt_remove_dirs (const char *alloc_dir)
{
  cleanup_free char *scratch = xasprintf ("%s/scratch", alloc_dir);
  cleanup_free char *merged = xasprintf ("%s/scratch/rootfs", alloc_dir);
  /* Normally the overlay lived and died in the container's mount namespace. */
  (void) umount2 (merged, MNT_DETACH);
  orch_rm_rf (scratch);
}

/* ---- scratch sets: the per-allocation directories, made ahead ----
 *
 * Every metadata change on the state directory's filesystem costs a
 * journalled operation (about half a millisecond each on the machines this
 * was measured on), and a start needs a handful: the overlay's mount point,
 * upper and work directories, /etc with hosts and resolv.conf, the idmapped
 * image's mount point. They do not depend on the allocation, so they are
 * made ahead in <state>/rt-scratch/<name> (while a previous start waits for
 * its child) and a start takes one with a single rename() to
 * <alloc_dir>/scratch. Without a ready one a start makes it in place. */
#define RT_POOL_TARGET 2
#define RT_POOL_MAX_SCAN 64

static int
rt_scratch_make (const char *dir)
{
  static const char *const dirs[] = { "rootfs", "upper", "upper/etc", "work", "lower" };
  static const char *const files[] = { "upper/etc/hosts", "upper/etc/resolv.conf" };
  if (mkdir (dir, 0755) < 0 && errno != EEXIST)
    return -errno;
  for (size_t i = 0; i < ORCH_ARRAY_LEN (dirs); i++)
    {
      cleanup_free char *p = xasprintf ("%s/%s", dir, dirs[i]);
      if (mkdir (p, strcmp (dirs[i], "work") == 0 ? 0700 : 0755) < 0 && errno != EEXIST)
        return -errno;
    }
  for (size_t i = 0; i < ORCH_ARRAY_LEN (files); i++)
    {
      cleanup_free char *p = xasprintf ("%s/%s", dir, files[i]);
      int fd = open (p, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
      if (fd < 0)
        return -errno;
      close (fd);
    }
  return 0;
}

/* Tops the pool up to RT_POOL_TARGET ready sets. Best effort: a start
 * without a ready set makes its own. */
static void
rt_pool_fill (const char *state_dir)
{
  static unsigned long seq;
  cleanup_free char *pool = xasprintf ("%s/rt-scratch", state_dir);
  if (mkdir (pool, 0700) < 0 && errno != EEXIST)
    return;
  int ready = 0;
  DIR *d = opendir (pool);
  if (d == NULL)
    return;
  struct dirent *e;
  while ((e = readdir (d)) != NULL && ready < RT_POOL_TARGET)
    if (e->d_name[0] != '.' && strncmp (e->d_name, "tmp-", 4) != 0)
      ready++;
  closedir (d);
  for (; ready < RT_POOL_TARGET; ready++)
    {
      unsigned long n = __atomic_add_fetch (&seq, 1, __ATOMIC_RELAXED);
      cleanup_free char *tmp = xasprintf ("%s/tmp-%d-%lu", pool, (int) getpid (), n);
      cleanup_free char *name = xasprintf ("%s/%d-%lu", pool, (int) getpid (), n);
      /* Made under a temporary name and renamed when complete, so that a
       * start never takes half a set. */
      if (rt_scratch_make (tmp) < 0 || rename (tmp, name) < 0)
        {
          orch_rm_rf (tmp);
          return;
        }
    }
}

/* The pool is topped up by a thread of its own at SCHED_IDLE priority: on
 * a busy host the work must not take CPU from the container that has just
 * started (measured: done inline after start, it delayed the workload's
 * first output by as long as it took). It only runs when a CPU would
 * otherwise idle; when it is starved, starts make their own sets. */
static pthread_mutex_t rt_pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rt_pool_cv = PTHREAD_COND_INITIALIZER;
static char *rt_pool_want; /* the state directory to top up, or NULL */
static bool rt_pool_thread;

static void *
rt_pool_main (void *arg)
{
  (void) arg;
  sigset_t all;
  sigfillset (&all);
  pthread_sigmask (SIG_BLOCK, &all, NULL);
  struct sched_param sp = { .sched_priority = 0 };
  pthread_setschedparam (pthread_self (), SCHED_IDLE, &sp);
  for (;;)
    {
      pthread_mutex_lock (&rt_pool_mu);
      while (rt_pool_want == NULL)
        pthread_cond_wait (&rt_pool_cv, &rt_pool_mu);
      char *dir = rt_pool_want;
      rt_pool_want = NULL;
      pthread_mutex_unlock (&rt_pool_mu);
      rt_pool_fill (dir);
      free (dir);
    }
  return NULL;
}

static void
rt_pool_request (const char *state_dir)
{
  pthread_mutex_lock (&rt_pool_mu);
  if (!rt_pool_thread)
    {
      pthread_t th;
      pthread_attr_t attr;
      pthread_attr_init (&attr);
      pthread_attr_setdetachstate (&attr, PTHREAD_CREATE_DETACHED);
      rt_pool_thread = pthread_create (&th, &attr, rt_pool_main, NULL) == 0;
      pthread_attr_destroy (&attr);
    }
  if (rt_pool_thread)
    {
      free (rt_pool_want);
      rt_pool_want = xstrdup (state_dir);
      pthread_cond_signal (&rt_pool_cv);
    }
  pthread_mutex_unlock (&rt_pool_mu);
}

/* Moves a ready set to dest. Returns true when one was taken. */
static bool
rt_pool_take (const char *state_dir, const char *dest)
{
  cleanup_free char *pool = xasprintf ("%s/rt-scratch", state_dir);
  DIR *d = opendir (pool);
  if (d == NULL)
    return false;
  bool taken = false;
  struct dirent *e;
  int scanned = 0;
  while (!taken && scanned++ < RT_POOL_MAX_SCAN && (e = readdir (d)) != NULL)
    {
      if (e->d_name[0] == '.' || strncmp (e->d_name, "tmp-", 4) == 0)
        continue;
      cleanup_free char *src = xasprintf ("%s/%s", pool, e->d_name);
      /* Another start may take the same one first: then try the next. */
      taken = rename (src, dest) == 0;
    }
  closedir (d);
  return taken;
}

static void
rt_reap (pid_t pid)
{
  kill (pid, SIGKILL);
  while (waitpid (pid, NULL, 0) < 0 && errno == EINTR)
    ;
}

/* ---- user namespaces: one range of 65536 host ids per allocation ---- */

static char *
rt_userns_slot_path (const char *state_dir, int slot)
{
  return xasprintf ("%s/userns/%d", state_dir, slot);
}

/* Reserves the lowest free slot: <state>/userns/<k>, created exclusively,
 * holds the allocation's id, so that the reservation survives the agent
 * and two allocations never share host ids. Returns the slot or -1. */
static int
rt_userns_reserve (const char *state_dir, const char *alloc_id, orch_err_t *err)
{
  cleanup_free char *dir = xasprintf ("%s/userns", state_dir);
  if (mkdir (dir, 0700) < 0 && errno != EEXIST)
    return orch_err_sys (err, "mkdir %s", dir);
  for (int slot = 0; slot < RT_USERNS_SLOTS; slot++)
    {
      cleanup_free char *p = rt_userns_slot_path (state_dir, slot);
      cleanup_close int fd = open (p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
      if (fd < 0 && errno == EEXIST)
        continue;
      if (fd < 0)
        return orch_err_sys (err, "create %s", p);
      size_t len = strlen (alloc_id);
      if (write (fd, alloc_id, len) != (ssize_t) len)
        {
          orch_err_sys (err, "write %s", p);
          unlink (p);
          return -1;
        }
      return slot;
    }
  return orch_err_set (err, ENOSPC, "all %d user namespace ranges are in use", RT_USERNS_SLOTS);
}

/* Frees slot if alloc_id holds it. */
static void
rt_userns_release (const char *state_dir, const char *alloc_id, int slot)
{
  if (slot < 0)
    return;
  cleanup_free char *p = rt_userns_slot_path (state_dir, slot);
  cleanup_free char *owner = NULL;
  size_t len;
  if (orch_read_file (p, 1024, &owner, &len) == 0 && strcmp (owner, alloc_id) == 0)
    unlink (p);
}

static int
rt_write_proc (pid_t pid, const char *file, const char *text, orch_err_t *err)
{
  char path[64];
  snprintf (path, sizeof path, "/proc/%d/%s", (int) pid, file);
  cleanup_close int fd = open (path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return orch_err_sys (err, "open %s", path);
  size_t len = strlen (text);
  if (write (fd, text, len) != (ssize_t) len)
    return orch_err_sys (err, "write %s", path);
  return 0;
}

/* Maps the child's user namespace and hands it the image's root
 * filesystem as an idmapped mount: files the image has as root appear as
 * the range's first host id, which is root inside. The image itself is not
 * touched; many allocations share it, each through its own mapping. */
static int
rt_userns_setup (int sock, pid_t pid, uid_t base, const char *rootfs, orch_err_t *err)
{
  char map[64];
  snprintf (map, sizeof map, "0 %u %u\n", (unsigned) base, RT_USERNS_SIZE);
  if (rt_write_proc (pid, "uid_map", map, err) < 0 || rt_write_proc (pid, "gid_map", map, err) < 0)
    return -1;
  char ns[64];
  snprintf (ns, sizeof ns, "/proc/%d/ns/user", (int) pid);
  cleanup_close int ns_fd = open (ns, O_RDONLY | O_CLOEXEC);
  if (ns_fd < 0)
    return orch_err_sys (err, "open %s", ns);
  cleanup_close int tree = (int) syscall (SYS_open_tree, AT_FDCWD, rootfs,
                                          OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
  if (tree < 0)
    return orch_err_sys (err, "open_tree %s", rootfs);
  rt_mount_attr_t attr = { .attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (uint64_t) ns_fd };
  if (syscall (SYS_mount_setattr, tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0)
    return orch_err_sys (err,
                         "idmapped mount of %s (the image's filesystem must support "
                         "idmapped mounts)",
                         rootfs);
  char b = 'u';
  union
  {
    char buf[CMSG_SPACE (sizeof (int))];
    struct cmsghdr align;
  } u;
  memset (&u, 0, sizeof u);
  struct iovec iov = { .iov_base = &b, .iov_len = 1 };
  struct msghdr mh
      = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
  struct cmsghdr *cm = CMSG_FIRSTHDR (&mh);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN (sizeof (int));
  memcpy (CMSG_DATA (cm), &tree, sizeof (int));
  if (sendmsg (sock, &mh, MSG_NOSIGNAL) != 1)
    return orch_err_sys (err, "pass the idmapped image to the child");
  return 0;
}

/* ---- /etc files ---- */

/* Rewrites path in place: it may already be bound into the container,
 * which sees this inode, not whatever a rename would put there. */
static int
rt_write_in_place (const char *path, const char *text, orch_err_t *err)
{
  cleanup_close int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644);
  if (fd < 0)
    return orch_err_sys (err, "open %s", path);
  size_t len = strlen (text);
  if (write (fd, text, len) != (ssize_t) len)
    return orch_err_sys (err, "write %s", path);
  return 0;
}

/* Host facts read once per process: they do not change under us. */
static pthread_once_t rt_host_once = PTHREAD_ONCE_INIT;
static rlim_t rt_host_nofile = RT_NOFILE_MAX;
static bool rt_host_cgroupns;

static void
rt_host_once_fn (void)
{
  cleanup_free char *text = NULL;
  size_t len;
  if (orch_read_file ("/proc/sys/fs/nr_open", 64, &text, &len) == 0)
    {
      long long v = atoll (text);
      if (v > 0 && v < RT_NOFILE_MAX)
        rt_host_nofile = (rlim_t) v;
    }
  rt_host_cgroupns = access ("/proc/self/ns/cgroup", F_OK) == 0;
}

static rlim_t
rt_nofile_max (void)
{
  pthread_once (&rt_host_once, rt_host_once_fn);
  return rt_host_nofile;
}

static bool
rt_have_cgroupns (void)
{
  pthread_once (&rt_host_once, rt_host_once_fn);
  return rt_host_cgroupns;
}

/* Set once raising RLIMIT_NOFILE above the agent's own hard limit was
 * refused (no CAP_SYS_RESOURCE, e.g. the agent itself in a container). */
static int rt_nofile_refused;

/* The workload's rlimits, set on the child from here: in a user namespace
 * it could not raise its own hard limit. Docker's defaults: 1048576 open
 * files (or the most this host allows), no core dumps (a dump of a
 * workload would land in the host's core_pattern). 0 or -1 with errno. */
static int
rt_set_rlimits (pid_t pid)
{
  struct rlimit rl_core = { .rlim_cur = 0, .rlim_max = 0 };
  if (prlimit (pid, RLIMIT_CORE, &rl_core, NULL) < 0)
    return -1;
  if (!__atomic_load_n (&rt_nofile_refused, __ATOMIC_RELAXED))
    {
      rlim_t nofile = rt_nofile_max ();
      struct rlimit rl = { .rlim_cur = nofile, .rlim_max = nofile };
      if (prlimit (pid, RLIMIT_NOFILE, &rl, NULL) == 0)
        return 0;
      if (errno != EPERM)
        return -1;
      __atomic_store_n (&rt_nofile_refused, 1, __ATOMIC_RELAXED);
    }
  /* The host's maximum for us: our own hard limit, as soft and hard. */
  struct rlimit mine;
  if (getrlimit (RLIMIT_NOFILE, &mine) < 0)
    return -1;
  mine.rlim_cur = mine.rlim_max;
  return prlimit (pid, RLIMIT_NOFILE, &mine, NULL);
}

static bool
rt_net_available (const rt_env_t *env)
{
  return env->net != NULL;
}

static int
rt_container_start (rt_env_t *env, const rt_alloc_t *a, rt_proc_t *out, orch_err_t *err)
{
  if (env == NULL || env->cg == NULL || a == NULL || a->spec == NULL || out == NULL)
    return orch_err_set (err, EINVAL, "container start: missing arguments");
  if (!rt__valid_id (a->alloc_id))
    return orch_err_set (err, EINVAL, "container start: invalid allocation id \"%s\"",
                         a->alloc_id != NULL ? a->alloc_id : "");
  if (a->rootfs == NULL || a->alloc_dir == NULL || a->log_path == NULL)
    return orch_err_set (err, EINVAL, "container start %s: missing rootfs, alloc_dir or log_path",
                         a->alloc_id);
  const orch_spec_t *spec = a->spec;
  bool userns = spec->user_namespace;
  if (userns && env->state_dir == NULL)
    return orch_err_set (
        err, EINVAL, "container start %s: a user namespace needs a state directory", a->alloc_id);
  /* overlayfs options are a comma-separated list with ':' between lower
   * dirs: such paths cannot be passed. */
  if (strpbrk (a->rootfs, ",:") != NULL)
    return orch_err_set (err, EINVAL, "container start %s: paths must not contain ',' or ':'",
                         a->alloc_id);
  bool bridge = spec->network != ORCH_NET_HOST;
  bool attach_net = bridge && rt_net_available (env);

  /* The default filter is compiled once; a spec that adjusts it gets its
   * own, compiled for this start (the child keeps its copy after fork). */
  const struct sock_fprog *filter = rt__seccomp_default (err);
  if (filter == NULL)
    return orch_err_wrap (err, "container start %s", a->alloc_id);
  struct sock_fprog custom = { 0 };
  cleanup_free struct sock_filter *custom_filter = NULL;
  if (spec->seccomp_allow || spec->seccomp_deny)
    {
      if (rt_seccomp_compile (spec->seccomp_allow, spec->seccomp_deny, &custom, err) < 0)
        return orch_err_wrap (err, "container start %s", a->alloc_id);
      custom_filter = custom.filter;
      filter = &custom;
    }

  cleanup_free char *scratch = xasprintf ("%s/scratch", a->alloc_dir);
  cleanup_free char *upper = xasprintf ("%s/scratch/upper", a->alloc_dir);
  cleanup_free char *work = xasprintf ("%s/scratch/work", a->alloc_dir);
  cleanup_free char *exit_path = xasprintf ("%s/exit", a->alloc_dir);
  cleanup_free char *upper_etc = xasprintf ("%s/scratch/upper/etc", a->alloc_dir);
  cleanup_free char *hosts_path = xasprintf ("%s/scratch/upper/etc/hosts", a->alloc_dir);
  cleanup_free char *resolv_path = xasprintf ("%s/scratch/upper/etc/resolv.conf", a->alloc_dir);
  /* Relative to the allocation's directory, where the child works from.
   * With a user namespace the image comes in as an idmapped mount on
   * "lower". */
  cleanup_free char *opts = xasprintf ("lowerdir=%s,upperdir=scratch/upper,workdir=scratch/work",
                                       userns ? "scratch/lower" : a->rootfs);
  /* Not "volatile": it would spare the workload's fsyncs, but its marker
   * directories cost three more journalled mkdirs per start (about 1 ms
   * measured here), on the critical path. */
  char hostname[RT_HOSTNAME_MAX];
  snprintf (hostname, sizeof hostname, "%s", a->alloc_id);

  struct stat st;
  if (stat (a->rootfs, &st) < 0)
    return orch_err_sys (err, "container start %s: rootfs %s", a->alloc_id, a->rootfs);
  if (!S_ISDIR (st.st_mode))
    return orch_err_set (err, ENOTDIR, "container start %s: rootfs %s is not a directory",
                         a->alloc_id, a->rootfs);

  /* argv: orch-init -- CMD... */
  size_t nargs = 0;
  while (spec->command != NULL && spec->command[nargs] != NULL)
    nargs++;
  if (nargs > RT_MAX_ARGS)
    return orch_err_set (err, E2BIG, "container start %s: %zu arguments (limit %d)", a->alloc_id,
                         nargs, RT_MAX_ARGS);
  cleanup_free char **argv = xcalloc (nargs + 4, sizeof (char *));
  argv[0] = (char *) "orch-init";
  argv[1] = (char *) "--";
  if (nargs == 0)
    argv[2] = (char *) "/bin/sh";
  else
    memcpy (argv + 2, spec->command, nargs * sizeof (char *));

  size_t nenv = 0;
  while (spec->env != NULL && spec->env[nenv] != NULL)
    nenv++;
  if (nenv > RT_MAX_ENV)
    return orch_err_set (err, E2BIG, "container start %s: %zu environment variables (limit %d)",
                         a->alloc_id, nenv, RT_MAX_ENV);
  cleanup_free char **envp = xcalloc (nenv + 4, sizeof (char *));
  cleanup_free char *env_host = xasprintf ("HOSTNAME=%s", hostname);
  if (nenv > 0)
    memcpy (envp, spec->env, nenv * sizeof (char *));
  size_t ne = nenv;
  if (!rt__env_has (spec->env, "PATH"))
    envp[ne++] = (char *) "PATH=" RT_DEFAULT_PATH;
  if (!rt__env_has (spec->env, "HOSTNAME"))
    envp[ne++] = env_host;
  if (!rt__env_has (spec->env, "HOME"))
    envp[ne++] = (char *) "HOME=/root";

  cleanup_free char *init_path = rt__init_path ();
  cleanup_close int init_fd = open (init_path, O_PATH | O_CLOEXEC);
  if (init_fd < 0)
    return orch_err_sys (err, "container start %s: orch-init %s", a->alloc_id, init_path);
  cleanup_close int log_fd
      = open (a->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
  if (log_fd < 0)
    return orch_err_sys (err, "container start %s: open log %s", a->alloc_id, a->log_path);
  cleanup_close int null_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0)
    return orch_err_sys (err, "container start %s: open /dev/null", a->alloc_id);

  /* From here on, failures undo what was made. */
  int userns_slot = -1;
  bool net_attached = false;
  pid_t pid = -1;
  int sv[2] = { -1, -1 };
  cleanup_close int exit_fd = -1;
  bool cg_made = false;
  char address[64] = "";

  {
    /* Left over from a start that died: replace it. */
    if (access (scratch, F_OK) == 0)
      rt_remove_dirs (a->alloc_dir);
    bool taken = env->state_dir != NULL && rt_pool_take (env->state_dir, scratch);
    int r = taken ? 0 : rt_scratch_make (scratch);
    if (r < 0)
      {
        orch_err_set (err, -r, "container start %s: make %s: %s", a->alloc_id, scratch,
                      strerror (-r));
        goto fail;
      }
  }
  exit_fd = open (exit_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644);
  if (exit_fd < 0)
    {
      orch_err_sys (err, "container start %s: open %s", a->alloc_id, exit_path);
      goto fail;
    }

  /* The container's /etc/resolv.conf and /etc/hosts are written into its
   * scratch layer (the set comes with both files) before the overlay
   * exists: no bind mounts, and the container may edit them as any file.
   * An image whose /etc is not a directory (a symlink, say) keeps what it
   * has. */
  bool etc_files = false;
  {
    cleanup_free char *image_etc = xasprintf ("%s/etc", a->rootfs);
    struct stat est;
    etc_files = lstat (image_etc, &est) == 0 && S_ISDIR (est.st_mode);
  }
  if (etc_files)
    {
      cleanup_free char *host_resolv = NULL;
      size_t len;
      if (orch_read_file ("/etc/resolv.conf", 64 * 1024, &host_resolv, &len) < 0)
        host_resolv = xstrdup ("");
      cleanup_free char *resolv = rt__resolv_conf (host_resolv, bridge);
      cleanup_free char *hosts = rt__hosts_file (hostname, NULL);
      if (rt_write_in_place (resolv_path, resolv, err) < 0
          || rt_write_in_place (hosts_path, hosts, err) < 0)
        {
          orch_err_wrap (err, "container start %s", a->alloc_id);
          goto fail;
        }
    }
  else
    orch_rm_rf (upper_etc);

  uid_t id_base = 0;
  if (userns)
    {
      userns_slot = rt_userns_reserve (env->state_dir, a->alloc_id, err);
      if (userns_slot < 0)
        {
          orch_err_wrap (err, "container start %s", a->alloc_id);
          goto fail;
        }
      id_base = RT_USERNS_BASE + (uid_t) userns_slot * RT_USERNS_SIZE;
      /* What the container's root writes to. */
      const char *owned[] = { upper, work, upper_etc, hosts_path, resolv_path };
      for (size_t i = 0; i < (etc_files ? ORCH_ARRAY_LEN (owned) : 2); i++)
        if (chown (owned[i], id_base, id_base) < 0)
          {
            orch_err_sys (err, "container start %s: chown %s", a->alloc_id, owned[i]);
            goto fail;
          }
    }

  cg_limits_t lim = {
    .cpu_milli = spec->cpu_milli,
    .memory_bytes = spec->memory_bytes,
    .pids_max = spec->pids_max > 0 ? spec->pids_max : RT_PIDS_MAX,
  };
  if (env->cg->ops->create (env->cg, a->alloc_id, &lim, err) < 0)
    {
      orch_err_wrap (err, "container start %s", a->alloc_id);
      goto fail;
    }
  cg_made = true;
  if (env->cg->layout.version == 2)
    {
      /* An OOM kill takes the whole workload, not one process of it: half a
       * workload is worse than a restarted one. orch-init goes too, so the
       * exit record stays empty: the agent sees SIGKILL in the wait status
       * and oom_kill in memory.events. (v1 has no such switch: the kernel
       * kills the biggest process, the workload, and orch-init records it.)
       * A hierarchy without the memory controller has no file: nothing to
       * set. */
      cleanup_free char *dir = env->cg->ops->path (env->cg, a->alloc_id, "memory");
      cleanup_free char *file = dir != NULL ? xasprintf ("%s/memory.oom.group", dir) : NULL;
      cleanup_close int fd = file != NULL ? open (file, O_WRONLY | O_CLOEXEC) : -1;
      if (fd >= 0 && write (fd, "1", 1) != 1)
        {
          orch_err_sys (err, "container start %s: write %s", a->alloc_id, file);
          goto fail;
        }
    }

  /* One channel both ways: the parent sends "go" once the child is in its
   * cgroup; the child sends the step that failed, or closes its end by
   * exec'ing (close-on-exec). A socket, so that a dead child makes send()
   * fail with EPIPE rather than raise SIGPIPE in the agent. */
  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    {
      orch_err_sys (err, "container start %s: socketpair", a->alloc_id);
      goto fail;
    }

  rt_child_t c = {
    .alloc_id = a->alloc_id,
    .merged = "scratch/rootfs",
    .overlay_opts = opts,
    .argv = argv,
    .envp = envp,
    .seccomp = filter,
    .log_fd = log_fd,
    .exit_fd = exit_fd,
    .null_fd = null_fd,
    .init_fd = init_fd,
    .alloc_dir = a->alloc_dir,
    .sock = sv[1],
    .new_net = bridge,
    .new_cgroup = rt_have_cgroupns (),
    .userns = userns,
  };
  unsigned long flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | SIGCHLD;
  if (c.new_net)
    flags |= CLONE_NEWNET;
  /* With CLONE_NEWUSER in the same call every other new namespace is owned
   * by the new user namespace, so that its root may manage them. */
  if (userns)
    flags |= CLONE_NEWUSER;

  /* A raw clone without a new stack returns twice, like fork(), so the
   * child runs on its copy of this stack. On cgroup v2 the child is born in
   * its cgroup (clone3 CLONE_INTO_CGROUP): moving a process between cgroups
   * costs an RCU grace period (milliseconds), which is most of a start. */
  bool in_cgroup = false;
  if (env->cg->layout.version == 2)
    {
      cleanup_free char *cg_dir = env->cg->ops->path (env->cg, a->alloc_id, "memory");
      cleanup_close int cg_fd
          = cg_dir != NULL ? open (cg_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
      if (cg_fd >= 0)
        {
          rt_clone_args_t ca = {
            .flags = (flags & ~(unsigned long) CSIGNAL) | RT_CLONE_INTO_CGROUP,
            .exit_signal = SIGCHLD,
            .cgroup = (uint64_t) cg_fd,
          };
          pid = (pid_t) syscall (SYS_clone3, &ca, sizeof ca);
          in_cgroup = pid >= 0;
        }
    }
  /* Kernels before 5.7, or a v2 hierarchy clone3 refused: migrate. */
  if (pid < 0)
    pid = (pid_t) syscall (SYS_clone, flags, NULL, NULL, NULL, 0);
  if (pid < 0)
    {
      orch_err_sys (err, "container start %s: clone", a->alloc_id);
      goto fail;
    }
  if (pid == 0)
    {
      close (sv[0]);
      rt_child_run (&c);
    }
  int64_t started = orch_now_wall_ms ();
  close (sv[1]);
  sv[1] = -1;

  /* The child waits for its id maps before anything else: do them first. */
  if (userns && rt_userns_setup (sv[0], pid, id_base, a->rootfs, err) < 0)
    {
      orch_err_wrap (err, "container start %s: user namespace", a->alloc_id);
      goto fail;
    }
  uint64_t starttime = 0;
  int r = rt__proc_starttime (pid, &starttime);
  if (r < 0)
    {
      orch_err_set (err, -r, "container start %s: read /proc/%d/stat: %s", a->alloc_id, (int) pid,
                    strerror (-r));
      goto fail;
    }
  if (!in_cgroup && env->cg->ops->attach (env->cg, a->alloc_id, pid, err) < 0)
    {
      orch_err_wrap (err, "container start %s", a->alloc_id);
      goto fail;
    }
  if (attach_net)
    {
      if (net_attach_netns (env->net, a->alloc_id, pid, a->ports, a->n_ports, address,
                            sizeof address, err)
          < 0)
        {
          orch_err_wrap (err, "container start %s", a->alloc_id);
          goto fail;
        }
      net_attached = true;
      /* In place, into the scratch layer under the mounted overlay: safe
       * here because nothing has looked the file up through the overlay
       * yet (the child never touches /etc), and the workload reads it only
       * after "go". */
      cleanup_free char *hosts = rt__hosts_file (hostname, address);
      if (etc_files && rt_write_in_place (hosts_path, hosts, err) < 0)
        {
          orch_err_wrap (err, "container start %s", a->alloc_id);
          goto fail;
        }
    }
  if (rt_set_rlimits (pid) < 0)
    {
      orch_err_sys (err, "container start %s: prlimit", a->alloc_id);
      goto fail;
    }
  /* When this fails the child is gone; what it said is still readable. */
  bool released = send (sv[0], "g", 1, MSG_NOSIGNAL) == 1;

  /* EOF: the child exec'd orch-init. Data: the step that failed. */
  char msg[PATH_MAX + 256];
  size_t got = 0;
  int64_t deadline = orch_now_mono_ms () + RT_START_TIMEOUT_MS;
  for (;;)
    {
      int64_t left = deadline - orch_now_mono_ms ();
      if (left <= 0)
        {
          orch_err_set (err, ETIMEDOUT, "container start %s: timed out after %d ms", a->alloc_id,
                        RT_START_TIMEOUT_MS);
          goto fail;
        }
      struct pollfd pfd = { .fd = sv[0], .events = POLLIN };
      int pr = poll (&pfd, 1, (int) left);
      if (pr < 0 && errno == EINTR)
        continue;
      if (pr < 0)
        {
          orch_err_sys (err, "container start %s: poll", a->alloc_id);
          goto fail;
        }
      if (pr == 0)
        continue;
      ssize_t n = read (sv[0], msg + got, sizeof msg - 1 - got);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == ECONNRESET)
        break;
      if (n < 0)
        {
          orch_err_sys (err, "container start %s: read", a->alloc_id);
          goto fail;
        }
      if (n == 0)
        break;
      got += (size_t) n;
      if (got == sizeof msg - 1)
        break;
    }
  if (got > 0)
    {
      msg[got] = '\0';
      orch_err_set (err, EIO, "container start %s: %s", a->alloc_id, msg);
      goto fail;
    }
  if (!released)
    {
      orch_err_set (err, EPIPE, "container start %s: the child died before exec", a->alloc_id);
      goto fail;
    }
  /* What a restarted agent needs to find the workload; written once the
   * child is done, not to take a CPU from it on a busy host. */
  rt__state_t state
      = { .pid = pid, .starttime = starttime, .started_ms = started, .userns_slot = userns_slot };
  snprintf (state.address, sizeof state.address, "%s", address);
  if (rt__state_write (a->alloc_dir, &state, err) < 0)
    {
      orch_err_wrap (err, "container start %s", a->alloc_id);
      goto fail;
    }
  /* The next start's scratch set, in the background. */
  if (env->state_dir != NULL)
    rt_pool_request (env->state_dir);
  close (sv[0]);
  out->pid = pid;
  out->started_ms = started;
  snprintf (out->address, sizeof out->address, "%s", address);
  return 0;

fail:
  if (pid > 0)
    rt_reap (pid);
  for (int i = 0; i < 2; i++)
    if (sv[i] >= 0)
      close (sv[i]);
  {
    orch_err_t ignored = { 0 };
    if (net_attached)
      net_detach (env->net, a->alloc_id, &ignored);
    if (cg_made)
      env->cg->ops->destroy (env->cg, a->alloc_id, &ignored);
  }
  if (userns_slot >= 0)
    rt_userns_release (env->state_dir, a->alloc_id, userns_slot);
  rt_remove_dirs (a->alloc_dir);
  cleanup_free char *state_path = xasprintf ("%s/state", a->alloc_dir);
  unlink (state_path);
  unlink (exit_path);
  return -1;
}

static int
rt_container_kill (rt_env_t *env, const char *alloc_id, const rt_proc_t *p, int sig,
                   orch_err_t *err)
{
  if (p == NULL || p->pid <= 0)
    return orch_err_set (err, EINVAL, "kill %s: no process", alloc_id != NULL ? alloc_id : "");
  if (kill (p->pid, sig) < 0)
    return orch_err_sys (err, "kill %s (pid %d, signal %d)", alloc_id != NULL ? alloc_id : "",
                         (int) p->pid, sig);
  return 0;
}

static int
rt_container_usage (rt_env_t *env, const char *alloc_id, cg_usage_t *out, orch_err_t *err)
{
  if (env == NULL || env->cg == NULL)
    return orch_err_set (err, EINVAL, "usage: no cgroup manager");
  return env->cg->ops->usage (env->cg, alloc_id, out, err);
}

static int
rt_container_cleanup (rt_env_t *env, const char *alloc_id, orch_err_t *err)
{
  if (env == NULL || env->cg == NULL || env->state_dir == NULL)
    return orch_err_set (err, EINVAL, "cleanup: missing state dir or cgroup manager");
  if (!rt__valid_id (alloc_id))
    return orch_err_set (err, EINVAL, "cleanup: invalid allocation id \"%s\"",
                         alloc_id != NULL ? alloc_id : "");
  int ret = env->cg->ops->destroy (env->cg, alloc_id, err);
  cleanup_free char *alloc_dir = xasprintf ("%s/allocs/%s", env->state_dir, alloc_id);
  rt__state_t st;
  orch_err_t ignored = { 0 };
  bool have_state = rt__state_read (alloc_dir, &st, &ignored) == 0;
  /* Only once every process is gone: the address may be leased again. */
  if (ret == 0 && rt_net_available (env) && net_detach (env->net, alloc_id, err) < 0)
    ret = -1;
  rt_remove_dirs (alloc_dir);
  if (ret == 0)
    {
      if (have_state)
        rt_userns_release (env->state_dir, alloc_id, st.userns_slot);
      cleanup_free char *state_path = xasprintf ("%s/state", alloc_dir);
      unlink (state_path);
    }
  if (ret < 0)
    return orch_err_wrap (err, "cleanup %s", alloc_id);
  return 0;
}

static int
rt_container_adopt (rt_env_t *env, const char *alloc_id, const char *alloc_dir, rt_proc_t *out,
                    orch_err_t *err)
{
  if (alloc_dir == NULL || out == NULL)
    return orch_err_set (err, EINVAL, "adopt: missing arguments");
  rt__state_t st;
  if (rt__state_read (alloc_dir, &st, err) < 0)
    {
      orch_err_wrap (err, "adopt %s", alloc_id != NULL ? alloc_id : "");
      return -1;
    }
  /* A pid alone may have been reused by now; its start time may not. */
  uint64_t now = 0;
  int r = rt__proc_starttime (st.pid, &now);
  if (r == -ENOENT || r == -ESRCH || (r == 0 && now != st.starttime))
    return 0;
  if (r < 0)
    {
      orch_err_set (err, -r, "adopt %s: read /proc/%d/stat: %s", alloc_id != NULL ? alloc_id : "",
                    (int) st.pid, strerror (-r));
      return -1;
    }
  /* A zombie has exited already; only its parent's wait is missing. */
  char path[64];
  snprintf (path, sizeof path, "/proc/%d/stat", (int) st.pid);
  cleanup_free char *stat = NULL;
  size_t len;
  if (orch_read_file (path, 4096, &stat, &len) == 0)
    {
      const char *p = strrchr (stat, ')');
      if (p != NULL && (p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X')))
        return 0;
    }
  memset (out, 0, sizeof *out);
  out->pid = st.pid;
  out->started_ms = st.started_ms;
  snprintf (out->address, sizeof out->address, "%s", st.address);
  return 1;
}

const rt_ops_t rt_container_ops = {
  .name = "container",
  .probe = rt_container_probe,
  .start = rt_container_start,
  .kill = rt_container_kill,
  .usage = rt_container_usage,
  .cleanup = rt_container_cleanup,
  .adopt = rt_container_adopt,
};
