/* The "container" runtime: namespaces, an overlay over the image's root
 * filesystem, pivot_root, a cgroup, dropped capabilities and a seccomp
 * deny-list; orch-init (agent/init/orch_init.c) as the container's pid 1.
 *
 * start() does everything that can allocate in the agent (paths, argv, env,
 * the seccomp program) and then clone()s. The child only makes system calls
 * until it exec's orch-init: the agent may have threads, and a clone() child
 * of a threaded process must not take locks another thread may hold. The
 * parent attaches the child to its cgroup while the child builds its mounts;
 * the child waits for that before it enters its cgroup namespace and execs. */
#define _GNU_SOURCE
#include <errno.h>
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

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
#define RT_HOSTNAME_MAX 64 /* the kernel's limit; longer ids are cut */

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

static int
rt_seccomp_build (void)
{
  scmp_filter_ctx ctx = seccomp_init (SCMP_ACT_ALLOW);
  if (ctx == NULL)
    return orch_err_set (&rt_seccomp_err, ENOMEM, "seccomp_init failed");
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
  for (size_t i = 0; i < ORCH_ARRAY_LEN (rt_seccomp_denied); i++)
    {
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
  for (size_t i = 0; i < ORCH_ARRAY_LEN (ns_flags); i++)
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
      return orch_err_sys (&rt_seccomp_err, "seccomp: memfd_create");
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
      return orch_err_set (&rt_seccomp_err, EINVAL, "seccomp: exported program has %lld bytes",
                           (long long) len);
    }
  struct sock_filter *f = xmalloc ((size_t) len);
  ssize_t n = pread (fd, f, (size_t) len, 0);
  close (fd);
  seccomp_release (ctx);
  if (n != len)
    {
      free (f);
      return orch_err_set (&rt_seccomp_err, EIO, "seccomp: short read of the exported program");
    }
  rt_seccomp_prog.len = (unsigned short) (len / (off_t) sizeof (struct sock_filter));
  rt_seccomp_prog.filter = f;
  return 0;
fail:
  seccomp_release (ctx);
  return orch_err_set (&rt_seccomp_err, -ret, "seccomp: %s", strerror (-ret));
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
  const char *env = getenv ("ORCH_INIT_PATH");
  if (env != NULL && *env != '\0')
    return xstrdup (env);
  char exe[PATH_MAX];
  ssize_t n = readlink ("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0)
    return xstrdup ("/usr/libexec/orch/orch-init");
  exe[n] = '\0';
  char *slash = strrchr (exe, '/');
  if (slash != NULL)
    *slash = '\0';
  return xasprintf ("%s/orch-init", exe);
}

/* ---- the child ---- */

/* Everything the child needs, prepared by the parent. */
typedef struct rt_child_s
{
  const char *alloc_id;
  const char *merged;
  const char *overlay_opts;
  const char *overlay_opts_volatile;
  char *const *argv;
  char *const *envp;
  const struct sock_fprog *seccomp;
  int log_fd, exit_fd, null_fd, init_fd;
  int sock; /* to the parent: reads "go", writes what failed */
  bool new_net, new_cgroup;
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

  if (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    rt_child_fail (c, "make / private", NULL);
  if (mount ("overlay", c->merged, "overlay", 0, c->overlay_opts_volatile) < 0
      && mount ("overlay", c->merged, "overlay", 0, c->overlay_opts) < 0)
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
  rt_child_mount (c, "sysfs", "sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
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
  char go;
  ssize_t n;
  do
    n = read (c->sock, &go, 1);
  while (n < 0 && errno == EINTR);
  if (n != 1)
    _exit (1); /* the parent gave up and reports why */
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

static bool
rt_valid_id (const char *id)
{
  size_t len = id != NULL ? strlen (id) : 0;
  if (len == 0 || len > 253 || id[0] == '.' || id[0] == '-')
    return false;
  for (const char *p = id; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')
          || *p == '-' || *p == '.' || *p == '_'))
      return false;
  return true;
}

static bool
rt_env_has (char *const *env, const char *key)
{
  size_t klen = strlen (key);
  for (size_t i = 0; env != NULL && env[i] != NULL; i++)
    if (strncmp (env[i], key, klen) == 0 && env[i][klen] == '=')
      return true;
  return false;
}

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
  return 0;
}

static void
rt_remove_dirs (const char *alloc_dir)
{
  cleanup_free char *merged = xasprintf ("%s/rootfs", alloc_dir);
  cleanup_free char *upper = xasprintf ("%s/upper", alloc_dir);
  cleanup_free char *work = xasprintf ("%s/work", alloc_dir);
  /* Normally the overlay lived and died in the container's mount namespace. */
  (void) umount2 (merged, MNT_DETACH);
  orch_rm_rf (upper);
  orch_rm_rf (work);
  rmdir (merged);
}

static void
rt_reap (pid_t pid)
{
  kill (pid, SIGKILL);
  while (waitpid (pid, NULL, 0) < 0 && errno == EINTR)
    ;
}

static int
rt_container_start (rt_env_t *env, const rt_alloc_t *a, rt_proc_t *out, orch_err_t *err)
{
  if (env == NULL || env->cg == NULL || a == NULL || a->spec == NULL || out == NULL)
    return orch_err_set (err, EINVAL, "container start: missing arguments");
  if (!rt_valid_id (a->alloc_id))
    return orch_err_set (err, EINVAL, "container start: invalid allocation id \"%s\"",
                         a->alloc_id != NULL ? a->alloc_id : "");
  if (a->rootfs == NULL || a->alloc_dir == NULL || a->log_path == NULL)
    return orch_err_set (err, EINVAL, "container start %s: missing rootfs, alloc_dir or log_path",
                         a->alloc_id);
  const orch_spec_t *spec = a->spec;
  if (spec->user_namespace)
    return orch_err_set (err, ENOTSUP, "container start %s: user namespaces are not supported yet",
                         a->alloc_id);
  /* overlayfs options are a comma-separated list with ':' between lower
   * dirs: such paths cannot be passed. */
  if (strpbrk (a->rootfs, ",:") != NULL || strpbrk (a->alloc_dir, ",:") != NULL)
    return orch_err_set (err, EINVAL, "container start %s: paths must not contain ',' or ':'",
                         a->alloc_id);

  const struct sock_fprog *filter = rt__seccomp_default (err);
  if (filter == NULL)
    return orch_err_wrap (err, "container start %s", a->alloc_id);

  cleanup_free char *merged = xasprintf ("%s/rootfs", a->alloc_dir);
  cleanup_free char *upper = xasprintf ("%s/upper", a->alloc_dir);
  cleanup_free char *work = xasprintf ("%s/work", a->alloc_dir);
  cleanup_free char *exit_path = xasprintf ("%s/exit", a->alloc_dir);
  cleanup_free char *opts
      = xasprintf ("lowerdir=%s,upperdir=%s,workdir=%s", a->rootfs, upper, work);
  /* volatile: no syncs on the scratch layer; it is thrown away anyway. */
  cleanup_free char *opts_volatile = xasprintf ("%s,volatile", opts);

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
  cleanup_free char *env_host = xasprintf ("HOSTNAME=%.*s", RT_HOSTNAME_MAX, a->alloc_id);
  if (nenv > 0)
    memcpy (envp, spec->env, nenv * sizeof (char *));
  size_t ne = nenv;
  if (!rt_env_has (spec->env, "PATH"))
    envp[ne++] = (char *) "PATH=" RT_DEFAULT_PATH;
  if (!rt_env_has (spec->env, "HOSTNAME"))
    envp[ne++] = env_host;
  if (!rt_env_has (spec->env, "HOME"))
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

  if ((mkdir (merged, 0755) < 0 && errno != EEXIST) || (mkdir (upper, 0755) < 0 && errno != EEXIST)
      || (mkdir (work, 0700) < 0 && errno != EEXIST))
    {
      orch_err_sys (err, "container start %s: mkdir under %s", a->alloc_id, a->alloc_dir);
      rt_remove_dirs (a->alloc_dir);
      return -1;
    }
  cleanup_close int exit_fd
      = open (exit_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644);
  if (exit_fd < 0)
    {
      orch_err_sys (err, "container start %s: open %s", a->alloc_id, exit_path);
      rt_remove_dirs (a->alloc_dir);
      return -1;
    }

  cg_limits_t lim = {
    .cpu_milli = spec->cpu_milli,
    .memory_bytes = spec->memory_bytes,
    .pids_max = RT_PIDS_MAX,
  };
  if (env->cg->ops->create (env->cg, a->alloc_id, &lim, err) < 0)
    {
      orch_err_wrap (err, "container start %s", a->alloc_id);
      rt_remove_dirs (a->alloc_dir);
      unlink (exit_path);
      return -1;
    }

  /* One channel both ways: the parent sends "go" once the child is in its
   * cgroup; the child sends the step that failed, or closes its end by
   * exec'ing (close-on-exec). A socket, so that a dead child makes send()
   * fail with EPIPE rather than raise SIGPIPE in the agent. */
  int sv[2] = { -1, -1 };
  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    {
      orch_err_sys (err, "container start %s: socketpair", a->alloc_id);
      goto fail_pipes;
    }

  rt_child_t c = {
    .alloc_id = a->alloc_id,
    .merged = merged,
    .overlay_opts = opts,
    .overlay_opts_volatile = opts_volatile,
    .argv = argv,
    .envp = envp,
    .seccomp = filter,
    .log_fd = log_fd,
    .exit_fd = exit_fd,
    .null_fd = null_fd,
    .init_fd = init_fd,
    .sock = sv[1],
    .new_net = spec->network != ORCH_NET_HOST,
    .new_cgroup = access ("/proc/self/ns/cgroup", F_OK) == 0,
  };
  unsigned long flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | SIGCHLD;
  if (c.new_net)
    flags |= CLONE_NEWNET;

  /* A raw clone without a new stack returns twice, like fork(), so the
   * child runs on its copy of this stack. On cgroup v2 the child is born in
   * its cgroup (clone3 CLONE_INTO_CGROUP): moving a process between cgroups
   * costs an RCU grace period (milliseconds), which is most of a start. */
  bool in_cgroup = false;
  pid_t pid = -1;
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
      goto fail_pipes;
    }
  if (pid == 0)
    {
      close (sv[0]);
      rt_child_run (&c);
    }
  int64_t started = orch_now_wall_ms ();
  close (sv[1]);
  sv[1] = -1;

  if (!in_cgroup && env->cg->ops->attach (env->cg, a->alloc_id, pid, err) < 0)
    {
      orch_err_wrap (err, "container start %s", a->alloc_id);
      goto fail_child;
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
          goto fail_child;
        }
      struct pollfd pfd = { .fd = sv[0], .events = POLLIN };
      int r = poll (&pfd, 1, (int) left);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0)
        {
          orch_err_sys (err, "container start %s: poll", a->alloc_id);
          goto fail_child;
        }
      if (r == 0)
        continue;
      ssize_t n = read (sv[0], msg + got, sizeof msg - 1 - got);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == ECONNRESET)
        break;
      if (n < 0)
        {
          orch_err_sys (err, "container start %s: read", a->alloc_id);
          goto fail_child;
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
      goto fail_child;
    }
  if (!released)
    {
      orch_err_set (err, EPIPE, "container start %s: the child died before exec", a->alloc_id);
      goto fail_child;
    }
  close (sv[0]);
  out->pid = pid;
  out->started_ms = started;
  return 0;

fail_child:
  rt_reap (pid);
fail_pipes:
  for (int i = 0; i < 2; i++)
    if (sv[i] >= 0)
      close (sv[i]);
  {
    orch_err_t ignored = { 0 };
    env->cg->ops->destroy (env->cg, a->alloc_id, &ignored);
  }
  rt_remove_dirs (a->alloc_dir);
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
  if (!rt_valid_id (alloc_id))
    return orch_err_set (err, EINVAL, "cleanup: invalid allocation id \"%s\"",
                         alloc_id != NULL ? alloc_id : "");
  int ret = env->cg->ops->destroy (env->cg, alloc_id, err);
  cleanup_free char *alloc_dir = xasprintf ("%s/allocs/%s", env->state_dir, alloc_id);
  rt_remove_dirs (alloc_dir);
  if (ret < 0)
    return orch_err_wrap (err, "cleanup %s", alloc_id);
  return 0;
}

const rt_ops_t rt_container_ops = {
  .name = "container",
  .probe = rt_container_probe,
  .start = rt_container_start,
  .kill = rt_container_kill,
  .usage = rt_container_usage,
  .cleanup = rt_container_cleanup,
};
