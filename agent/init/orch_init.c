/* orch-init: the pid 1 of every container and of every microVM guest.
 *
 *   orch-init [--] CMD ARGS...      container mode
 *   /init                           guest mode (pid 1 of a microVM, run by the
 *                                   kernel from the initramfs; see init_guest)
 *
 * A process that is pid 1 of a pid namespace gets no default signal actions:
 * a bare /bin/sh there ignores SIGTERM, and nobody reaps orphans. orch-init
 * runs CMD as its child, forwards the stop signals to it, reaps every zombie
 * and, when CMD exits, records how on fd 3 (when the runtime opened it: the
 * record outlives the agent) and exits the same way (128+sig for a signal).
 *
 * It is linked statically and exec'd from outside the image, so it must not
 * touch glibc's NSS or anything else that loads files at run time. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define INIT_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define INIT_RECORD_FD 3

static const int init_forwarded[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };

static void
init_write_all (int fd, const char *buf, size_t len)
{
  while (len > 0)
    {
      ssize_t n = write (fd, buf, len);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return;
      buf += n;
      len -= (size_t) n;
    }
}

static void
init_record (const char *text)
{
  if (fcntl (INIT_RECORD_FD, F_GETFD) < 0)
    return;
  init_write_all (INIT_RECORD_FD, text, strlen (text));
}

/* execvp without touching the environment: a command without a slash is
 * searched on the container's PATH (INIT_DEFAULT_PATH when unset). Returns
 * the most telling errno (EACCES wins over ENOENT, as in execvp). */
static int
init_exec (char **argv)
{
  const char *cmd = argv[0];
  if (strchr (cmd, '/') != NULL)
    {
      execv (cmd, argv);
      return errno;
    }
  const char *path = getenv ("PATH");
  if (path == NULL || *path == '\0')
    path = INIT_DEFAULT_PATH;
  int best = ENOENT;
  size_t clen = strlen (cmd);
  for (const char *p = path;;)
    {
      const char *end = strchrnul (p, ':');
      size_t dlen = (size_t) (end - p);
      char full[PATH_MAX];
      if (dlen + 1 + clen < sizeof full)
        {
          if (dlen == 0)
            memcpy (full, ".", (dlen = 1));
          else
            memcpy (full, p, dlen);
          full[dlen] = '/';
          memcpy (full + dlen + 1, cmd, clen + 1);
          execv (full, argv);
          if (errno == EACCES || errno == EPERM || errno == ENOEXEC || errno == ETXTBSY)
            best = errno;
        }
      if (*end == '\0')
        break;
      p = end + 1;
    }
  return best;
}

/* ---- guest mode: pid 1 of a microVM ----
 *
 * The kernel runs /init from a small initramfs that the agent wrote for the
 * allocation: this binary, the virtio driver modules the guest kernel lacks
 * (/lib/modules/orch/NN-name.ko, loaded in name order: dependencies first)
 * and the workload's argv and environment (/orch/argv, /orch/env: strings
 * each ended by a NUL). The image's root filesystem is the first virtio
 * disk (/dev/vda, ext4), which becomes /. The kernel command line carries
 * orch.hostname=NAME, orch.ip=ADDR/PREFIX and orch.gw=ADDR; with orch.probe
 * the init prints "orch-probe-ok" on the console and powers off at once.
 *
 * Channels to the host are virtio-serial ports found by name: orch.log (the
 * workload's stdout and stderr, appended to the allocation's log), orch.exit
 * (the exit record, same format as a container's) and orch.ctl (lines
 * "signal N" from the agent: forwarded to the workload). A serial port was
 * chosen over ACPI or ctrl-alt-del for stop requests because the microvm
 * machine has no keyboard controller and its ACPI power button reaches no
 * process without acpid; a port carries any signal, works the same under
 * KVM and TCG, and needs nothing but the virtio_console module. When the
 * workload has ended the VM powers off, and QEMU (-no-reboot) exits. */

#define GUEST_MODULES "/lib/modules/orch"
#define GUEST_MAX_CONFIG (1 << 20)
#define GUEST_MAX_STRINGS 4096

typedef struct guest_s
{
  int log_fd, exit_fd, ctl_fd;
  char hostname[65];
  char ip[64];
  char gw[64];
  bool probe;
  bool debug; /* orch.debug: each step on the console */
} guest_t;

static bool guest_debug;

static void
guest_say (const char *a, const char *b)
{
  /* The serial console (fd 2 from the kernel) goes to the allocation's log. */
  init_write_all (2, "orch-init: ", 11);
  init_write_all (2, a, strlen (a));
  if (b != NULL)
    {
      init_write_all (2, ": ", 2);
      init_write_all (2, b, strlen (b));
    }
  init_write_all (2, "\n", 1);
}

/* With orch.debug: the step and the guest's uptime, to see where a boot
 * spends its time. */
static void
guest_step (const char *what)
{
  if (!guest_debug)
    return;
  struct timespec ts;
  clock_gettime (CLOCK_BOOTTIME, &ts);
  char up[32];
  snprintf (up, sizeof up, "%ld.%03ld", (long) ts.tv_sec, ts.tv_nsec / 1000000);
  guest_say (up, what);
}

static void
guest_power_off (void)
{
  guest_step ("sync");
  sync ();
  guest_step ("power off");
  reboot (RB_POWER_OFF);
  /* Should the power-off return (no ACPI), a reset ends QEMU as well
   * (-no-reboot, reboot=t); failing that, pid 1 exiting panics the kernel
   * and panic=-1 resets it. */
  reboot (RB_AUTOBOOT);
  _exit (1);
}

/* Reports a failure before the workload could run, as an exec failure: the
 * agent shows it like a container's. */
static void __attribute__ ((noreturn))
guest_fail (guest_t *g, const char *cmd, const char *step, int e)
{
  char text[PATH_MAX + 256];
  snprintf (text, sizeof text, "failed exec %s: %s: %s\n", cmd != NULL ? cmd : "?", step,
            strerror (e));
  guest_say (text, NULL);
  if (g->exit_fd >= 0)
    init_write_all (g->exit_fd, text, strlen (text));
  guest_power_off ();
  _exit (127);
}

static int
guest_read_file (const char *path, char *buf, size_t size, size_t *len)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  size_t got = 0;
  for (;;)
    {
      if (got == size)
        {
          close (fd);
          return -EFBIG;
        }
      ssize_t n = read (fd, buf + got, size - got);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          int e = errno;
          close (fd);
          return -e;
        }
      if (n == 0)
        break;
      got += (size_t) n;
    }
  close (fd);
  *len = got;
  return 0;
}

static int
guest_cmp (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

static void
guest_load_modules (void)
{
  DIR *d = opendir (GUEST_MODULES);
  if (d == NULL)
    return;
  char *names[128];
  size_t n = 0;
  struct dirent *de;
  while ((de = readdir (d)) != NULL && n < sizeof names / sizeof names[0])
    if (strstr (de->d_name, ".ko") != NULL)
      names[n++] = strdup (de->d_name);
  closedir (d);
  qsort (names, n, sizeof names[0], guest_cmp);
  for (size_t i = 0; i < n; i++)
    {
      char path[PATH_MAX];
      snprintf (path, sizeof path, GUEST_MODULES "/%s", names[i]);
      int fd = open (path, O_RDONLY | O_CLOEXEC);
      if (fd >= 0)
        {
          if (syscall (SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)
            guest_say (path, strerror (errno));
          close (fd);
        }
      free (names[i]);
    }
}

static void
guest_cmdline (guest_t *g)
{
  char buf[4096];
  size_t len = 0;
  if (guest_read_file ("/proc/cmdline", buf, sizeof buf - 1, &len) < 0)
    return;
  buf[len] = '\0';
  for (char *save = NULL, *tok = strtok_r (buf, " \n", &save); tok != NULL;
       tok = strtok_r (NULL, " \n", &save))
    {
      if (strncmp (tok, "orch.hostname=", 14) == 0)
        snprintf (g->hostname, sizeof g->hostname, "%s", tok + 14);
      else if (strncmp (tok, "orch.ip=", 8) == 0)
        snprintf (g->ip, sizeof g->ip, "%s", tok + 8);
      else if (strncmp (tok, "orch.gw=", 8) == 0)
        snprintf (g->gw, sizeof g->gw, "%s", tok + 8);
      else if (strcmp (tok, "orch.probe") == 0)
        g->probe = true;
      else if (strcmp (tok, "orch.debug") == 0)
        guest_debug = g->debug = true;
    }
}

static int64_t
guest_now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
guest_nap (void)
{
  struct timespec ts = { 0, 2 * 1000 * 1000 };
  nanosleep (&ts, NULL);
}

/* The virtio-serial ports appear, and get their names, asynchronously after
 * the module loads (the host announces them on a control queue). */
static void
guest_find_ports (guest_t *g, int timeout_ms)
{
  int64_t end = guest_now_ms () + timeout_ms;
  for (;;)
    {
      DIR *d = opendir ("/sys/class/virtio-ports");
      struct dirent *de;
      while (d != NULL && (de = readdir (d)) != NULL)
        {
          if (de->d_name[0] == '.')
            continue;
          char path[PATH_MAX], name[64];
          size_t len = 0;
          snprintf (path, sizeof path, "/sys/class/virtio-ports/%s/name", de->d_name);
          if (guest_read_file (path, name, sizeof name - 1, &len) < 0)
            continue;
          while (len > 0 && (name[len - 1] == '\n' || name[len - 1] == '\0'))
            len--;
          name[len] = '\0';
          int *slot = NULL;
          int flags = O_WRONLY;
          if (strcmp (name, "orch.log") == 0)
            slot = &g->log_fd;
          else if (strcmp (name, "orch.exit") == 0)
            slot = &g->exit_fd;
          else if (strcmp (name, "orch.ctl") == 0)
            {
              slot = &g->ctl_fd;
              flags = O_RDONLY | O_NONBLOCK;
            }
          if (slot == NULL || *slot >= 0)
            continue;
          snprintf (path, sizeof path, "/dev/%s", de->d_name);
          *slot = open (path, flags | O_CLOEXEC | O_NOCTTY);
        }
      if (d != NULL)
        closedir (d);
      if ((g->log_fd >= 0 && g->exit_fd >= 0 && g->ctl_fd >= 0) || guest_now_ms () > end)
        return;
      guest_nap ();
    }
}

static int
guest_wait_path (const char *path, int timeout_ms)
{
  int64_t end = guest_now_ms () + timeout_ms;
  while (access (path, F_OK) < 0)
    {
      if (guest_now_ms () > end)
        return -ENOENT;
      guest_nap ();
    }
  return 0;
}

/* Splits NUL-ended strings into a NULL-terminated vector (pointing into buf). */
static char **
guest_strings (char *buf, size_t len)
{
  size_t n = 0;
  for (size_t i = 0; i < len; i++)
    if (buf[i] == '\0')
      n++;
  if (n > GUEST_MAX_STRINGS)
    return NULL;
  char **v = calloc (n + 1, sizeof (char *));
  if (v == NULL)
    return NULL;
  size_t k = 0;
  for (size_t i = 0; i < len && k < n; i += strlen (buf + i) + 1)
    v[k++] = buf + i;
  return v;
}

static int
guest_switch_root (void)
{
  static const char *const moves[] = { "/dev", "/proc", "/sys" };
  if (mount ("/dev/vda", "/newroot", "ext4", MS_NOATIME, NULL) < 0)
    return -errno;
  for (size_t i = 0; i < sizeof moves / sizeof moves[0]; i++)
    {
      char target[64];
      snprintf (target, sizeof target, "/newroot%s", moves[i]);
      mkdir (target, 0755);
      if (mount (moves[i], target, NULL, MS_MOVE, NULL) < 0)
        return -errno;
    }
  /* The initramfs cannot be pivoted away from; move the new root over it
   * (what switch_root does). Its few files stay in memory, about 1 MiB. */
  if (chdir ("/newroot") < 0 || mount (".", "/", NULL, MS_MOVE, NULL) < 0 || chroot (".") < 0
      || chdir ("/") < 0)
    return -errno;
  mkdir ("/dev/pts", 0755);
  mkdir ("/dev/shm", 01777);
  mount ("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666");
  mount ("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
  mkdir ("/tmp", 01777);
  return 0;
}

static int
guest_ifreq (int s, unsigned long req, const char *ifname, struct ifreq *ifr)
{
  snprintf (ifr->ifr_name, sizeof ifr->ifr_name, "%s", ifname);
  return ioctl (s, req, ifr) < 0 ? -errno : 0;
}

static int
guest_if_up (int s, const char *ifname)
{
  struct ifreq ifr;
  memset (&ifr, 0, sizeof ifr);
  int r = guest_ifreq (s, SIOCGIFFLAGS, ifname, &ifr);
  if (r < 0)
    return r;
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  return guest_ifreq (s, SIOCSIFFLAGS, ifname, &ifr);
}

static void
guest_set_sin (struct sockaddr *sa, struct in_addr a)
{
  struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr = a };
  memcpy (sa, &sin, sizeof sin);
}

/* lo up; eth0 with orch.ip and a default route via orch.gw. ioctls rather
 * than rtnetlink: IPv4 address, mask and one route is all it takes. */
static int
guest_network (const guest_t *g, const char **step)
{
  int s = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0)
    return *step = "socket", -errno;
  int r = guest_if_up (s, "lo");
  if (r < 0 || g->ip[0] == '\0')
    {
      close (s);
      return r < 0 ? (*step = "lo up", r) : 0;
    }
  char ip[64];
  snprintf (ip, sizeof ip, "%s", g->ip);
  int prefix = 24;
  char *slash = strchr (ip, '/');
  if (slash != NULL)
    {
      *slash = '\0';
      prefix = atoi (slash + 1);
    }
  struct in_addr addr, mask, gw;
  if (inet_pton (AF_INET, ip, &addr) != 1 || prefix < 0 || prefix > 32)
    {
      close (s);
      return *step = "orch.ip", -EINVAL;
    }
  mask.s_addr = prefix == 0 ? 0 : htonl (~0u << (32 - prefix));
  struct ifreq ifr;
  memset (&ifr, 0, sizeof ifr);
  guest_set_sin (&ifr.ifr_addr, addr);
  if ((r = guest_ifreq (s, SIOCSIFADDR, "eth0", &ifr)) < 0)
    {
      close (s);
      return *step = "eth0 address", r;
    }
  memset (&ifr, 0, sizeof ifr);
  guest_set_sin (&ifr.ifr_netmask, mask);
  if ((r = guest_ifreq (s, SIOCSIFNETMASK, "eth0", &ifr)) < 0 || (r = guest_if_up (s, "eth0")) < 0)
    {
      close (s);
      return *step = "eth0 up", r;
    }
  if (g->gw[0] != '\0' && inet_pton (AF_INET, g->gw, &gw) == 1)
    {
      struct rtentry rt;
      memset (&rt, 0, sizeof rt);
      struct in_addr any = { 0 };
      guest_set_sin (&rt.rt_dst, any);
      guest_set_sin (&rt.rt_genmask, any);
      guest_set_sin (&rt.rt_gateway, gw);
      rt.rt_flags = RTF_UP | RTF_GATEWAY;
      rt.rt_dev = (char *) "eth0";
      if (ioctl (s, SIOCADDRT, &rt) < 0 && errno != EEXIST)
        {
          r = -errno;
          close (s);
          return *step = "default route", r;
        }
    }
  close (s);
  return 0;
}

/* Reads "signal N" lines from the agent and forwards them. */
static void
guest_ctl (guest_t *g, pid_t child)
{
  static char line[256];
  static size_t have;
  for (;;)
    {
      ssize_t n = read (g->ctl_fd, line + have, sizeof line - 1 - have);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          if (n == 0)
            {
              /* The host side went away: stop polling it. */
              close (g->ctl_fd);
              g->ctl_fd = -1;
            }
          return;
        }
      have += (size_t) n;
      line[have] = '\0';
      char *nl;
      while ((nl = strchr (line, '\n')) != NULL)
        {
          *nl = '\0';
          int sig;
          if (sscanf (line, "signal %d", &sig) == 1 && sig > 0 && sig < NSIG)
            kill (child, sig);
          size_t rest = have - (size_t) (nl + 1 - line);
          memmove (line, nl + 1, rest + 1);
          have = rest;
        }
      if (have == sizeof line - 1)
        have = 0; /* an overlong line: drop it */
    }
}

static int
init_guest (void)
{
  guest_t g = { .log_fd = -1, .exit_fd = -1, .ctl_fd = -1 };
  mount ("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
  mount ("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  mount ("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  /* The console must pass bytes as they are: no "\r\n" for "\n". */
  struct termios tio;
  if (tcgetattr (2, &tio) == 0)
    {
      tio.c_oflag &= ~(tcflag_t) OPOST;
      tcsetattr (2, TCSANOW, &tio);
    }
  guest_cmdline (&g);
  if (g.probe)
    {
      /* The host checks that this kernel boots with this VMM and
       * accelerator (and the benchmark times a bare boot): a marker on the
       * serial console, then off. */
      char up[64] = "";
      size_t ulen = 0;
      if (guest_read_file ("/proc/uptime", up, sizeof up - 1, &ulen) < 0)
        ulen = 0;
      up[ulen] = '\0';
      up[strcspn (up, " \n")] = '\0';
      char line[128];
      int n = snprintf (line, sizeof line, "orch-probe-ok uptime=%s\n", up);
      init_write_all (2, line, (size_t) n);
      guest_power_off ();
    }
  guest_step ("started; load modules");
  guest_load_modules ();
  guest_step ("find ports");
  guest_find_ports (&g, 10000);
  guest_step ("ports found");

  static char argbuf[GUEST_MAX_CONFIG], envbuf[GUEST_MAX_CONFIG];
  size_t alen = 0, elen = 0;
  int r = guest_read_file ("/orch/argv", argbuf, sizeof argbuf, &alen);
  if (r < 0)
    guest_fail (&g, NULL, "/orch/argv", -r);
  if (guest_read_file ("/orch/env", envbuf, sizeof envbuf, &elen) < 0)
    elen = 0;
  char **argv = guest_strings (argbuf, alen);
  char **envp = guest_strings (envbuf, elen);
  if (argv == NULL || argv[0] == NULL || envp == NULL)
    guest_fail (&g, NULL, "/orch/argv", EINVAL);

  guest_step ("wait for /dev/vda");
  if ((r = guest_wait_path ("/dev/vda", 10000)) < 0)
    guest_fail (&g, argv[0], "root disk /dev/vda", -r);
  guest_step ("switch root");
  if ((r = guest_switch_root ()) < 0)
    guest_fail (&g, argv[0], "mount the root disk", -r);
  if (g.hostname[0] != '\0')
    sethostname (g.hostname, strlen (g.hostname));
  guest_step ("root mounted; network");
  const char *step = NULL;
  if ((r = guest_network (&g, &step)) < 0)
    guest_fail (&g, argv[0], step, -r);

  sigset_t waitset;
  sigemptyset (&waitset);
  for (size_t i = 0; i < sizeof init_forwarded / sizeof init_forwarded[0]; i++)
    sigaddset (&waitset, init_forwarded[i]);
  sigaddset (&waitset, SIGCHLD);
  sigprocmask (SIG_BLOCK, &waitset, NULL);
  int sfd = signalfd (-1, &waitset, SFD_CLOEXEC | SFD_NONBLOCK);
  guest_step ("run the workload");

  int errpipe[2];
  if (pipe2 (errpipe, O_CLOEXEC) < 0)
    guest_fail (&g, argv[0], "pipe", errno);
  int out_fd = g.log_fd >= 0 ? g.log_fd : 2;
  pid_t child = fork ();
  if (child < 0)
    guest_fail (&g, argv[0], "fork", errno);
  if (child == 0)
    {
      close (errpipe[0]);
      setsid ();
      int null_fd = open ("/dev/null", O_RDWR);
      if (null_fd >= 0)
        dup2 (null_fd, 0);
      dup2 (out_fd, 1);
      dup2 (out_fd, 2);
      sigset_t none;
      sigemptyset (&none);
      sigprocmask (SIG_SETMASK, &none, NULL);
      environ = envp;
      int e = init_exec (argv);
      init_write_all (errpipe[1], (const char *) &e, sizeof e);
      _exit (127);
    }
  close (errpipe[1]);
  int exec_errno = 0;
  ssize_t n;
  do
    n = read (errpipe[0], &exec_errno, sizeof exec_errno);
  while (n < 0 && errno == EINTR);
  close (errpipe[0]);
  if (n != (ssize_t) sizeof exec_errno)
    exec_errno = 0;

  char text[PATH_MAX + 128];
  for (;;)
    {
      struct pollfd pfd[2]
          = { { .fd = sfd, .events = POLLIN }, { .fd = g.ctl_fd, .events = POLLIN } };
      if (poll (pfd, g.ctl_fd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR)
        break;
      if (g.ctl_fd >= 0 && (pfd[1].revents & (POLLIN | POLLHUP)))
        guest_ctl (&g, child);
      struct signalfd_siginfo si;
      while (read (sfd, &si, sizeof si) == (ssize_t) sizeof si)
        if (si.ssi_signo != SIGCHLD)
          kill (child, (int) si.ssi_signo);
      int status;
      pid_t p;
      bool done = false;
      while ((p = waitpid (-1, &status, WNOHANG)) > 0)
        {
          if (p != child)
            continue;
          if (exec_errno != 0)
            snprintf (text, sizeof text, "failed exec %s: %s\n", argv[0], strerror (exec_errno));
          else if (WIFEXITED (status))
            snprintf (text, sizeof text, "exited %d\n", WEXITSTATUS (status));
          else
            snprintf (text, sizeof text, "signaled %d\n", WTERMSIG (status));
          done = true;
        }
      if (done)
        break;
    }
  if (exec_errno != 0)
    guest_say (text, NULL);
  guest_step ("workload ended");
  if (g.exit_fd >= 0)
    init_write_all (g.exit_fd, text, strlen (text));
  /* Whatever the workload left behind dies with the VM. */
  guest_power_off ();
  return 0;
}

int
main (int argc, char **argv)
{
  /* The kernel starts the initramfs's /init as pid 1 with argv[0] "/init";
   * in a container the runtime execs us as "orch-init". */
  if (getpid () == 1 && argc >= 1 && strcmp (argv[0], "/init") == 0)
    return init_guest ();
  int first = 1;
  if (first < argc && strcmp (argv[first], "--") == 0)
    first++;
  if (first >= argc)
    {
      static const char usage[] = "usage: orch-init [--] CMD ARGS...\n";
      init_write_all (2, usage, sizeof usage - 1);
      return 2;
    }

  /* The workload must not inherit the record fd. */
  if (fcntl (INIT_RECORD_FD, F_GETFD) >= 0)
    fcntl (INIT_RECORD_FD, F_SETFD, FD_CLOEXEC);

  /* Every signal we care about is taken with sigwaitinfo: a blocked signal
   * is queued for a namespace's pid 1 even without a handler. */
  sigset_t waitset;
  sigemptyset (&waitset);
  for (size_t i = 0; i < sizeof init_forwarded / sizeof init_forwarded[0]; i++)
    sigaddset (&waitset, init_forwarded[i]);
  sigaddset (&waitset, SIGCHLD);
  signal (SIGCHLD, SIG_DFL);
  sigprocmask (SIG_BLOCK, &waitset, NULL);

  /* Reports an exec failure of the child (its errno) to us. */
  int errpipe[2];
  if (pipe2 (errpipe, O_CLOEXEC) < 0)
    {
      perror ("orch-init: pipe");
      return 127;
    }

  pid_t child = fork ();
  if (child < 0)
    {
      perror ("orch-init: fork");
      return 127;
    }
  if (child == 0)
    {
      close (errpipe[0]);
      /* Its own process group, so a terminal's or a shell's group signals
       * aimed at the workload do not hit pid 1 as well. */
      setpgid (0, 0);
      /* The workload starts with nothing blocked, whatever we inherited
       * (the runtime holds the forwarded signals blocked across its exec
       * of us so that none is lost before we wait for them). */
      sigset_t none;
      sigemptyset (&none);
      sigprocmask (SIG_SETMASK, &none, NULL);
      int e = init_exec (argv + first);
      init_write_all (errpipe[1], (const char *) &e, sizeof e);
      _exit (127);
    }
  close (errpipe[1]);

  int exec_errno = 0;
  ssize_t n;
  do
    n = read (errpipe[0], &exec_errno, sizeof exec_errno);
  while (n < 0 && errno == EINTR);
  close (errpipe[0]);
  if (n != (ssize_t) sizeof exec_errno)
    exec_errno = 0;

  int code = 0;
  for (;;)
    {
      siginfo_t si;
      int sig = sigwaitinfo (&waitset, &si);
      if (sig < 0)
        continue;
      if (sig != SIGCHLD)
        {
          kill (child, sig);
          continue;
        }
      /* Reap everything: orphans re-parented to us as well as the child. */
      int status;
      pid_t p;
      int done = 0;
      while ((p = waitpid (-1, &status, WNOHANG)) > 0)
        {
          if (p != child)
            continue;
          char text[PATH_MAX + 128];
          if (exec_errno != 0)
            {
              snprintf (text, sizeof text, "failed exec %s: %s\n", argv[first],
                        strerror (exec_errno));
              code = 127;
            }
          else if (WIFEXITED (status))
            {
              code = WEXITSTATUS (status);
              snprintf (text, sizeof text, "exited %d\n", code);
            }
          else
            {
              code = 128 + WTERMSIG (status);
              snprintf (text, sizeof text, "signaled %d\n", WTERMSIG (status));
            }
          init_record (text);
          if (exec_errno != 0)
            {
              /* The log gets it too: that is where users look first. */
              init_write_all (2, "orch-init: ", 11);
              init_write_all (2, text, strlen (text));
            }
          done = 1;
        }
      if (done)
        break;
    }
  return code;
}
