/* Host check of the node network (agent/net.h), run as root by
 * tests/integration/test_net.sh.
 *
 * The check makes its own "node": a fresh network namespace, so the bridge,
 * the nftables table "ip orch", forwarding and every address it touches are
 * its own and vanish with it; the host's network is never changed. In it:
 * a bridge with an unusual name on NET_CHECK_SUBNET (default 10.199.0.0/24),
 * a "container" (a child in a new network namespace running a TCP and UDP
 * echo server on port 8080), and a "client host" (another namespace joined
 * to the node by a veth, NET_CHECK_CLIENT_SUBNET, default 10.198.0.0/24: the
 * node is .1 there, the client .2, and the client has no route to the
 * workload subnet). It proves:
 *   - the client reaches the container through the published port on the
 *     node's address (DNAT in prerouting), over TCP and UDP;
 *   - the node reaches it on its own address and on 127.0.0.1 (output);
 *   - the container reaches the bridge address, and the client host with
 *     the node's address as source (masquerading);
 *   - a restarted agent (net_free + net_new) keeps the lease, the rules and
 *     does not duplicate its own rules;
 *   - a failed attach leaves nothing; detach removes the veth, the rules
 *     and the lease; a tap attach makes an up tap on the bridge;
 * and measures net_attach_netns (median of 50, with and without a port).
 *
 * Exits 0 when every check passed, 1 otherwise, 77 when it cannot run. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "host_check.h"
#include "net.h"
#include "net_internal.h"
#include "orch_util.h"

#define ECHO_PORT 8080

static int failures;
static int checks;

static net_t *net;
static net_nl_t *nl;
static net_nft_t *nft;
static char state_dir[64];
static char bridge[IFNAMSIZ];
static char client_link[IFNAMSIZ];
static net_subnet_t sn;
static net_subnet_t client_sn;
static int client_ns = -1;
static pid_t children[512];
static size_t n_children;

static void check (int ok, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static void
check (int ok, const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  checks++;
  printf ("%s - ", ok ? "ok" : "not ok");
  vprintf (fmt, ap);
  printf ("\n");
  fflush (stdout);
  va_end (ap);
  if (!ok)
    failures++;
}

/* CPU time of this thread, the kernel's work in its system calls included:
 * what an attach costs the node, apart from waiting for a busy host. */
static double
cpu_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

static struct sockaddr_in
sin_of (uint32_t addr, uint16_t port)
{
  struct sockaddr_in sa;

  memset (&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons (port);
  sa.sin_addr.s_addr = htonl (addr);
  return sa;
}

static void
set_timeouts (int fd)
{
  struct timeval tv = { .tv_sec = 3, .tv_usec = 0 };

  setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* ---- the container: an echo server in its own network namespace ---- */

static void
echo_serve (int ready_fd)
{
  struct sockaddr_in any = sin_of (INADDR_ANY, ECHO_PORT);
  int one = 1, tcp, udp;
  char c = 'r';

  tcp = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  udp = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (tcp < 0 || udp < 0)
    _exit (2);
  setsockopt (tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind (tcp, (struct sockaddr *) &any, sizeof any) < 0 || listen (tcp, 16) < 0
      || bind (udp, (struct sockaddr *) &any, sizeof any) < 0)
    _exit (3);
  if (write (ready_fd, &c, 1) != 1)
    _exit (4);
  close (ready_fd);
  for (;;)
    {
      struct pollfd p[2] = { { .fd = tcp, .events = POLLIN }, { .fd = udp, .events = POLLIN } };
      char buf[512];

      if (poll (p, 2, -1) < 0)
        continue;
      if (p[1].revents & POLLIN)
        {
          struct sockaddr_in from;
          socklen_t fl = sizeof from;
          ssize_t n = recvfrom (udp, buf, sizeof buf, 0, (struct sockaddr *) &from, &fl);

          if (n > 0)
            sendto (udp, buf, (size_t) n, 0, (struct sockaddr *) &from, fl);
        }
      if (p[0].revents & POLLIN)
        {
          int c_fd = accept4 (tcp, NULL, NULL, SOCK_CLOEXEC);
          ssize_t n;

          if (c_fd < 0)
            continue;
          set_timeouts (c_fd);
          /* Echo until the client's end of stream. */
          while ((n = read (c_fd, buf, sizeof buf)) > 0)
            if (write (c_fd, buf, (size_t) n) != n)
              break;
          close (c_fd);
        }
    }
}

/* Starts a child in a new network namespace; with serve it runs the echo
 * server, else it just sleeps. Returns its pid once its namespace exists
 * (and the server listens). */
static pid_t
spawn_netns_child (int serve)
{
  int p[2];
  pid_t pid;
  char c;

  if (pipe2 (p, O_CLOEXEC) < 0)
    return -1;
  pid = fork ();
  if (pid < 0)
    return -1;
  if (pid == 0)
    {
      prctl (PR_SET_PDEATHSIG, SIGKILL);
      close (p[0]);
      if (unshare (CLONE_NEWNET) < 0)
        _exit (5);
      if (serve)
        echo_serve (p[1]);
      if (write (p[1], "r", 1) != 1)
        _exit (4);
      for (;;)
        pause ();
    }
  close (p[1]);
  if (read (p[0], &c, 1) != 1)
    {
      close (p[0]);
      kill (pid, SIGKILL);
      waitpid (pid, NULL, 0);
      return -1;
    }
  close (p[0]);
  if (n_children < ORCH_ARRAY_LEN (children))
    children[n_children++] = pid;
  return pid;
}

static void
reap (pid_t pid)
{
  size_t i;

  kill (pid, SIGKILL);
  waitpid (pid, NULL, 0);
  for (i = 0; i < n_children; i++)
    if (children[i] == pid)
      children[i] = children[--n_children];
}

static int
open_netns_of (pid_t pid)
{
  char path[64];

  snprintf (path, sizeof path, "/proc/%d/ns/net", (int) pid);
  return open (path, O_RDONLY | O_CLOEXEC);
}

/* ---- running code in another namespace (a thread that enters it) ---- */

typedef struct nsrun_s
{
  int nsfd;
  int (*fn) (void *);
  void *arg;
  int ret;
} nsrun_t;

static void *
nsrun_thread (void *p)
{
  nsrun_t *r = p;

  if (setns (r->nsfd, CLONE_NEWNET) < 0)
    {
      r->ret = -errno;
      return NULL;
    }
  r->ret = r->fn (r->arg);
  return NULL;
}

static int
in_netns (int nsfd, int (*fn) (void *), void *arg)
{
  nsrun_t r = { .nsfd = nsfd, .fn = fn, .arg = arg, .ret = -1 };
  pthread_t th;

  if (pthread_create (&th, NULL, nsrun_thread, &r) != 0)
    return -1;
  pthread_join (th, NULL);
  return r.ret;
}

static void *
new_netns_thread (void *p)
{
  int *fd = p;

  if (unshare (CLONE_NEWNET) == 0)
    *fd = open ("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  return NULL;
}

/* A new network namespace that nothing runs in, kept by its fd. */
static int
new_netns (void)
{
  pthread_t th;
  int fd = -1;

  if (pthread_create (&th, NULL, new_netns_thread, &fd) != 0)
    return -1;
  pthread_join (th, NULL);
  return fd;
}

/* ---- traffic ---- */

typedef struct echo_s
{
  uint32_t addr;
  uint16_t port;
  int udp;
  const char *msg;
  char got[256];
  char why[128];
} echo_t;

/* Sends msg and reads the echo. 0 when it came back intact. */
static int
echo_roundtrip (void *p)
{
  echo_t *e = p;
  struct sockaddr_in to = sin_of (e->addr, e->port);
  size_t len = strlen (e->msg), got = 0;
  int fd;
  ssize_t n;

  e->got[0] = '\0';
  fd = socket (AF_INET, (e->udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  set_timeouts (fd);
  if (connect (fd, (struct sockaddr *) &to, sizeof to) < 0)
    {
      snprintf (e->why, sizeof e->why, "connect: %s", strerror (errno));
      close (fd);
      return -1;
    }
  if (write (fd, e->msg, len) != (ssize_t) len)
    {
      snprintf (e->why, sizeof e->why, "write: %s", strerror (errno));
      close (fd);
      return -1;
    }
  if (!e->udp)
    shutdown (fd, SHUT_WR);
  while (got + 1 < sizeof e->got && (n = read (fd, e->got + got, sizeof e->got - 1 - got)) > 0)
    {
      got += (size_t) n;
      if (e->udp)
        break;
    }
  e->got[got] = '\0';
  if (got == 0)
    snprintf (e->why, sizeof e->why, "no answer: %s", strerror (errno));
  close (fd);
  return strcmp (e->got, e->msg) == 0 ? 0 : -1;
}

static void
check_echo (int nsfd, const char *who, uint32_t addr, uint16_t port, int udp)
{
  echo_t e = { .addr = addr, .port = port, .udp = udp };
  char msg[128], a[16];
  int r;

  net__addr_format (addr, a, sizeof a);
  snprintf (msg, sizeof msg, "hello from %s to %s:%u/%s", who, a, port, udp ? "udp" : "tcp");
  e.msg = msg;
  r = nsfd >= 0 ? in_netns (nsfd, echo_roundtrip, &e) : echo_roundtrip (&e);
  check (r == 0, "%s reaches %s:%u/%s and gets its echo back (got \"%s\"%s%s)", who, a, port,
         udp ? "udp" : "tcp", e.got, e.why[0] ? ", " : "", e.why);
}

typedef struct dial_s
{
  uint32_t addr;
  uint16_t port;
  int ok;
} dial_t;

/* Connects and sends a line; the listener (already listening) accepts it
 * afterwards from the backlog. */
static int
dial (void *p)
{
  dial_t *d = p;
  struct sockaddr_in to = sin_of (d->addr, d->port);
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  if (fd < 0)
    return -1;
  set_timeouts (fd);
  d->ok = connect (fd, (struct sockaddr *) &to, sizeof to) == 0 && write (fd, "out\n", 4) == 4;
  close (fd);
  return d->ok ? 0 : -1;
}

typedef struct listener_s
{
  uint32_t addr;
  int fd;
  uint16_t port;
} listener_t;

static int
listen_on (void *p)
{
  listener_t *l = p;
  struct sockaddr_in sa = sin_of (l->addr, 0);
  socklen_t sl = sizeof sa;

  l->fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (l->fd < 0)
    return -1;
  if (bind (l->fd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen (l->fd, 4) < 0
      || getsockname (l->fd, (struct sockaddr *) &sa, &sl) < 0)
    return -1;
  l->port = ntohs (sa.sin_port);
  return 0;
}

/* From inside the container (nsfd), connects to addr on a listener made in
 * listen_ns (-1: the node); returns the source address the listener saw. */
static int
check_outbound (int nsfd, int listen_ns, uint32_t addr, uint32_t want_src, const char *what)
{
  listener_t l = { .addr = addr, .fd = -1, .port = 0 };
  dial_t d = { .addr = addr, .port = 0, .ok = 0 };
  struct sockaddr_in peer;
  socklen_t pl = sizeof peer;
  char a[16], src[16] = "?", want[16];
  int r, c_fd;

  net__addr_format (addr, a, sizeof a);
  net__addr_format (want_src, want, sizeof want);
  r = listen_ns >= 0 ? in_netns (listen_ns, listen_on, &l) : listen_on (&l);
  if (r < 0)
    {
      check (0, "listen on %s for %s", a, what);
      if (l.fd >= 0)
        close (l.fd);
      return -1;
    }
  d.port = l.port;
  in_netns (nsfd, dial, &d);
  set_timeouts (l.fd);
  c_fd = d.ok ? accept4 (l.fd, (struct sockaddr *) &peer, &pl, SOCK_CLOEXEC) : -1;
  if (c_fd >= 0)
    {
      net__addr_format (ntohl (peer.sin_addr.s_addr), src, sizeof src);
      close (c_fd);
    }
  check (d.ok && c_fd >= 0 && strcmp (src, want) == 0,
         "the container reaches %s:%u (%s); the listener sees source %s (want %s)", a, l.port, what,
         src, want);
  close (l.fd);
  return 0;
}

/* ---- state of the node ---- */

static char *
nft_listing (void)
{
  orch_err_t err = { 0 };
  char *out = NULL;

  if (net__nft_list (nft, "list table ip orch", &out, &err) < 0)
    return xstrdup ("");
  return out;
}

static int
count (const char *hay, const char *needle)
{
  int c = 0;
  const char *p = hay;

  while ((p = strstr (p, needle)) != NULL)
    {
      c++;
      p += strlen (needle);
    }
  return c;
}

static int
lease_exists (const char *alloc_id)
{
  char path[256];
  struct stat st;

  snprintf (path, sizeof path, "%s/net/leases/%s", state_dir, alloc_id);
  return stat (path, &st) == 0;
}

static int
sort_cmp (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return x < y ? -1 : x > y;
}

static void
cleanup (void)
{
  orch_err_t err = { 0 };

  while (n_children > 0)
    reap (children[n_children - 1]);
  if (net != NULL)
    net_free (net);
  net = NULL;
  if (nl != NULL)
    {
      if (client_link[0] != '\0')
        net__nl_link_del (nl, client_link);
      if (bridge[0] != '\0')
        net__nl_link_del (nl, bridge);
    }
  if (nft != NULL)
    net__nft_run (nft, "delete table ip orch", &err);
  net__nft_free (nft);
  nft = NULL;
  net__nl_close (nl);
  nl = NULL;
  if (client_ns >= 0)
    close (client_ns);
  if (state_dir[0] != '\0')
    orch_rm_rf (state_dir);
}

static void
on_signal (int sig)
{
  /* The namespace and everything in it go with the process. */
  _exit (128 + sig);
}

static int
setup_client_host (void)
{
  orch_err_t err = { 0 };
  net_nl_t *in;
  int host, eth0, lo, r;

  client_ns = new_netns ();
  if (client_ns < 0)
    return -1;
  snprintf (client_link, sizeof client_link, "ncl%x", (unsigned) getpid () & 0xffff);
  r = net__nl_veth_create (nl, client_link, 0, NULL, "eth0", NULL, 0, client_ns);
  if (r < 0)
    return r;
  host = net__nl_link_get (nl, client_link, NULL, 0, NULL, NULL);
  if (host < 0)
    return host;
  r = net__nl_addr_add (nl, host, client_sn.base + 1, client_sn.prefix, 0);
  if (r == 0)
    r = net__nl_link_set (nl, host, 1, 0, NULL);
  if (r < 0)
    return r;
  in = net__nl_open (client_ns, &err);
  if (in == NULL)
    return -1;
  eth0 = net__nl_link_get (in, "eth0", NULL, 0, NULL, NULL);
  lo = net__nl_link_get (in, "lo", NULL, 0, NULL, NULL);
  r = eth0 < 0 ? eth0 : lo < 0 ? lo : 0;
  if (r == 0)
    r = net__nl_addr_add (in, eth0, client_sn.base + 2, client_sn.prefix, 0);
  if (r == 0)
    r = net__nl_link_set (in, eth0, 1, 0, NULL);
  if (r == 0)
    r = net__nl_link_set (in, lo, 1, 0, NULL);
  net__nl_close (in);
  return r;
}

static uint16_t
free_port (int type)
{
  struct sockaddr_in sa = sin_of (INADDR_ANY, 0);
  socklen_t sl = sizeof sa;
  int fd = socket (AF_INET, type | SOCK_CLOEXEC, 0);
  uint16_t port = 0;

  if (fd < 0)
    return 0;
  if (bind (fd, (struct sockaddr *) &sa, sizeof sa) == 0
      && getsockname (fd, (struct sockaddr *) &sa, &sl) == 0)
    port = ntohs (sa.sin_port);
  close (fd);
  return port;
}

/* Times net_attach_netns for n containers that all exist at once (as on a
 * busy node), then net_detach for each. Timing attach and teardown apart
 * keeps the kernel's asynchronous namespace cleanup (which holds the rtnl
 * lock) out of the attach figures as much as the host allows. */
static void
report (const char *op, const char *what, double *t, size_t n)
{
  qsort (t, n, sizeof t[0], sort_cmp);
  printf ("# %s %s: median %.3f ms, p90 %.3f ms, min %.3f ms, max %.3f ms (n=%zu)\n", op, what,
          t[n / 2], t[n * 9 / 10], t[0], t[n - 1], n);
  printf ("{\"bench\": \"%s\", \"case\": \"%s\", \"n\": %zu, \"p50_ms\": %.3f, "
          "\"p90_ms\": %.3f}\n",
          op, what, n, t[n / 2], t[n * 9 / 10]);
  fflush (stdout);
}

static void
bench (const char *what, size_t count_, const net_port_t *ports, size_t n_ports)
{
  cleanup_free pid_t *pids = xcalloc (count_, sizeof *pids);
  cleanup_free double *t = xcalloc (count_, sizeof *t);
  cleanup_free double *td = xcalloc (count_, sizeof *td);
  cleanup_free double *tc = xcalloc (count_, sizeof *tc);
  size_t i, n = 0, done = 0, dd = 0;
  orch_err_t err = { 0 };
  char id[32];

  for (n = 0; n < count_; n++)
    {
      pids[n] = spawn_netns_child (0);
      if (pids[n] < 0)
        break;
    }
  for (i = 0; i < n; i++)
    {
      net_port_t p[4];
      char addr[16];
      double t0, c0;
      size_t k;
      int r;

      /* Each allocation publishes its own host ports. */
      for (k = 0; k < n_ports && k < ORCH_ARRAY_LEN (p); k++)
        {
          p[k] = ports[k];
          p[k].host_port = (uint16_t) (ports[k].host_port + i);
        }
      snprintf (id, sizeof id, "bench-%zu", i);
      t0 = hc_now_ms ();
      c0 = cpu_ms ();
      r = net_attach_netns (net, id, pids[i], p, k, addr, sizeof addr, &err);
      t[done] = hc_now_ms () - t0;
      tc[done] = cpu_ms () - c0;
      if (r < 0)
        {
          check (0, "bench attach %s: %s", id, err.msg);
          break;
        }
      done++;
    }
  for (i = 0; i < done; i++)
    {
      double t0 = hc_now_ms ();

      snprintf (id, sizeof id, "bench-%zu", i);
      if (net_detach (net, id, &err) == 0)
        td[dd++] = hc_now_ms () - t0;
    }
  for (i = 0; i < n; i++)
    reap (pids[i]);
  if (done > 0)
    {
      report ("net_attach_netns", what, t, done);
      report ("net_attach_netns (cpu)", what, tc, done);
    }
  if (dd > 0)
    report ("net_detach", what, td, dd);
}

int
main (void)
{
  const char *subnet = getenv ("NET_CHECK_SUBNET");
  const char *client_subnet = getenv ("NET_CHECK_CLIENT_SUBNET");
  orch_err_t err = { 0 };
  net_config_t cfg;
  net_port_t ports[2];
  uint16_t hp_tcp, hp_udp;
  char addr[16], addr2[16], gw[16], tap[IFNAMSIZ] = "", tap_addr[16], tap_gw[16];
  char *listing;
  uint32_t wl;
  unsigned flags = 0;
  int master = 0, prefix = 0, r, wl_ns;
  pid_t web;

  if (geteuid () != 0)
    {
      printf ("# skip: needs root\n");
      return 77;
    }
  if (subnet == NULL)
    subnet = "10.199.0.0/24";
  if (client_subnet == NULL)
    client_subnet = "10.198.0.0/24";
  if (net__subnet_parse (subnet, &sn, &err) < 0
      || net__subnet_parse (client_subnet, &client_sn, &err) < 0)
    {
      fprintf (stderr, "%s\n", err.msg);
      return 1;
    }
  /* The node of this check is a namespace of its own. */
  if (unshare (CLONE_NEWNET) < 0)
    {
      printf ("# skip: cannot make a network namespace: %s\n", strerror (errno));
      return 77;
    }
  signal (SIGINT, on_signal);
  signal (SIGTERM, on_signal);
  snprintf (state_dir, sizeof state_dir, "/tmp/net_check.XXXXXX");
  if (mkdtemp (state_dir) == NULL)
    {
      perror ("mkdtemp");
      return 1;
    }
  nl = net__nl_open (-1, &err);
  nft = net__nft_new (&err);
  if (nl == NULL || nft == NULL)
    {
      fprintf (stderr, "%s\n", err.msg);
      cleanup ();
      return 1;
    }
  r = net__nl_link_set (nl, net__nl_link_get (nl, "lo", NULL, 0, NULL, NULL), 1, 0, NULL);
  check (r == 0, "node namespace: lo up");

  /* ---- net_new ---- */
  snprintf (bridge, sizeof bridge, "orchk%x", (unsigned) getpid () & 0xfffff);
  cfg.state_dir = state_dir;
  cfg.bridge = bridge;
  cfg.subnet = "10.199.0.1/24";
  net = net_new (&cfg, &err);
  check (net == NULL && strstr (err.msg, "host bits set") != NULL,
         "net_new refuses a subnet with host bits set (%s)", err.msg);
  {
    /* A link of the bridge's name that is not a bridge is left alone. */
    net_config_t taken = { .state_dir = state_dir, .bridge = "nclash1", .subnet = subnet };

    r = net__nl_veth_create (nl, "nclash1", 0, NULL, "nclash2", NULL, 0, -1);
    net = r == 0 ? net_new (&taken, &err) : NULL;
    check (r == 0 && net == NULL && strstr (err.msg, "not a bridge") != NULL,
           "net_new refuses a bridge name taken by a veth (%s)", err.msg);
    net_free (net);
    net__nl_link_del (nl, "nclash1");
  }
  cfg.subnet = subnet;
  net = net_new (&cfg, &err);
  check (net != NULL, "net_new with bridge %s on %s%s%s", bridge, subnet, net ? "" : ": ",
         net ? "" : err.msg);
  if (net == NULL)
    {
      cleanup ();
      return 1;
    }
  net__addr_format (net__subnet_gateway (&sn), gw, sizeof gw);
  r = net__nl_link_get (nl, bridge, NULL, 0, &flags, NULL);
  check (r > 0 && (flags & IFF_UP), "bridge %s exists and is up", bridge);
  {
    char *fwd = NULL;
    size_t len;

    r = orch_read_file ("/proc/sys/net/ipv4/ip_forward", 64, &fwd, &len);
    check (r == 0 && fwd[0] == '1', "IPv4 forwarding is on");
    free (fwd);
  }
  listing = nft_listing ();
  check (strstr (listing, "masquerade") != NULL && strstr (listing, "chain prerouting") != NULL
             && strstr (listing, "chain forward") != NULL,
         "table ip orch has masquerading, the DNAT chains and forward accepts");
  free (listing);

  r = setup_client_host ();
  check (r == 0, "client host namespace with %s (r=%d)", client_link, r);

  /* ---- a container with published ports ---- */
  web = spawn_netns_child (1);
  check (web > 0, "echo server child in its own network namespace (pid %d)", (int) web);
  if (web <= 0)
    goto out;
  hp_tcp = free_port (SOCK_STREAM);
  hp_udp = free_port (SOCK_DGRAM);
  ports[0] = (net_port_t){ .port = ECHO_PORT, .host_port = hp_tcp, .udp = 0 };
  ports[1] = (net_port_t){ .port = ECHO_PORT, .host_port = hp_udp, .udp = 1 };

  r = net_attach_netns (net, "bad id", web, ports, 2, addr, sizeof addr, &err);
  check (r < 0 && strstr (err.msg, "bad id") != NULL, "an invalid allocation id is refused (%s)",
         err.msg);
  r = net_attach_netns (net, "chk-web", web, ports, 2, addr, sizeof addr, &err);
  check (r == 0, "net_attach_netns chk-web -> %s%s%s", r == 0 ? addr : "", r == 0 ? "" : ": ",
         r == 0 ? "" : err.msg);
  if (r < 0)
    goto out;
  check (net__addr_parse (addr, &wl) == 0 && net__subnet_contains (&sn, wl)
             && wl != net__subnet_gateway (&sn),
         "the address %s is a workload address of %s", addr, subnet);
  check (net_lookup (net, "chk-web", addr2, sizeof addr2) == 0 && strcmp (addr, addr2) == 0,
         "net_lookup finds the lease");
  {
    char veth[IFNAMSIZ], alias[IFALIASZ];
    int br = net__nl_link_get (nl, bridge, NULL, 0, NULL, NULL);

    net__link_name ("veth", "chk-web", veth, sizeof veth);
    r = net__nl_link_get (nl, veth, alias, sizeof alias, &flags, &master);
    check (r > 0 && (flags & IFF_UP) && master == br && strcmp (alias, "orch:chk-web") == 0,
           "host end %s is up on the bridge, alias \"%s\"", veth, alias);
  }
  wl_ns = open_netns_of (web);
  {
    net_nl_t *in = net__nl_open (wl_ns, &err);

    r = in != NULL ? net__nl_link_get (in, "eth0", NULL, 0, &flags, NULL) : -1;
    check (r > 0 && (flags & IFF_UP), "eth0 is up inside the container");
    r = in != NULL ? net__nl_link_get (in, "lo", NULL, 0, &flags, NULL) : -1;
    check (r > 0 && (flags & IFF_UP), "lo is up inside the container");
    net__nl_close (in);
  }

  check_echo (client_ns, "client host", client_sn.base + 1, hp_tcp, 0);
  check_echo (client_ns, "client host", client_sn.base + 1, hp_udp, 1);
  check_echo (-1, "the node", client_sn.base + 1, hp_tcp, 0);
  check_echo (-1, "the node", INADDR_LOOPBACK, hp_tcp, 0);
  check_echo (-1, "the node", wl, ECHO_PORT, 0);
  check_outbound (wl_ns, -1, net__subnet_gateway (&sn), wl, "the bridge address");
  check_outbound (wl_ns, client_ns, client_sn.base + 2, client_sn.base + 1,
                  "the client host, masqueraded");

  listing = nft_listing ();
  check (count (listing, "comment \"chk-web\"") == 4,
         "4 DNAT rules tagged chk-web (prerouting and output, tcp and udp)");
  r = count (listing, "masquerade");
  free (listing);

  /* ---- a restarted agent ---- */
  net_free (net);
  net = net_new (&cfg, &err);
  check (net != NULL, "net_new again (agent restart)%s%s", net ? "" : ": ", net ? "" : err.msg);
  if (net == NULL)
    goto out;
  check (net_lookup (net, "chk-web", addr2, sizeof addr2) == 0 && strcmp (addr, addr2) == 0,
         "after the restart the lease is still %s", addr2);
  listing = nft_listing ();
  check (count (listing, "comment \"chk-web\"") == 4, "after the restart the DNAT rules remain");
  check (count (listing, "masquerade") == r, "the restart did not duplicate rules (%d masquerade)",
         r);
  free (listing);
  check_echo (client_ns, "client host (after restart)", client_sn.base + 1, hp_tcp, 0);
  {
    /* A new allocation after the restart does not get the leased address. */
    pid_t other = spawn_netns_child (0);

    r = other > 0 ? net_attach_netns (net, "chk-other", other, NULL, 0, addr2, sizeof addr2, &err)
                  : -1;
    check (r == 0 && strcmp (addr2, addr) != 0, "a second allocation gets %s, not %s", addr2, addr);
    if (r == 0)
      {
        /* Through the node's address to a neighbour on the same bridge:
         * works only if the hairpin is masqueraded. */
        int ons = open_netns_of (other);

        check_echo (ons, "another container (hairpin)", client_sn.base + 1, hp_tcp, 0);
        close (ons);
      }
    net_detach (net, "chk-other", &err);
    if (other > 0)
      reap (other);
  }

  /* ---- the workload restarts: same allocation, new namespace ---- */
  {
    pid_t web2 = spawn_netns_child (1);

    r = web2 > 0 ? net_attach_netns (net, "chk-web", web2, ports, 2, addr2, sizeof addr2, &err)
                 : -1;
    check (r == 0 && strcmp (addr2, addr) == 0,
           "re-attaching chk-web to a new namespace keeps %s (got %s)%s%s", addr, addr2,
           r == 0 ? "" : ": ", r == 0 ? "" : err.msg);
    listing = nft_listing ();
    check (count (listing, "comment \"chk-web\"") == 4, "and replaces its rules (%d tagged)",
           count (listing, "comment \"chk-web\""));
    free (listing);
    /* The old namespace is gone: the answer can only come from the new one. */
    close (wl_ns);
    reap (web);
    web = web2;
    wl_ns = open_netns_of (web);
    check_echo (client_ns, "client host (new workload)", client_sn.base + 1, hp_tcp, 0);
  }

  /* ---- failure leaves nothing ---- */
  {
    pid_t clash = spawn_netns_child (0);
    int cns = clash > 0 ? open_netns_of (clash) : -1;
    char veth[IFNAMSIZ];

    /* An eth0 already in the namespace makes the attach fail midway. */
    r = cns >= 0 ? net__nl_veth_create (nl, "nclash0", 0, NULL, "eth0", NULL, 0, cns) : -1;
    check (r == 0, "a namespace that already has an eth0");
    r = net_attach_netns (net, "chk-clash", clash, ports, 1, addr2, sizeof addr2, &err);
    check (r < 0 && strstr (err.msg, "eth0") != NULL && strstr (err.msg, "File exists") != NULL,
           "attach into it fails naming the step: %s", err.msg);
    net__link_name ("veth", "chk-clash", veth, sizeof veth);
    listing = nft_listing ();
    check (net__nl_link_get (nl, veth, NULL, 0, NULL, NULL) == -ENODEV
               && !lease_exists ("chk-clash") && strstr (listing, "chk-clash") == NULL,
           "the failed attach left no veth, lease or rule");
    free (listing);
    net__nl_link_del (nl, "nclash0");
    if (cns >= 0)
      close (cns);
    if (clash > 0)
      reap (clash);
  }
  r = net_attach_netns (net, "chk-gone", 999999, NULL, 0, addr2, sizeof addr2, &err);
  check (r < 0 && strstr (err.msg, "pid 999999") != NULL && !lease_exists ("chk-gone"),
         "attach to a pid that does not exist fails and leaves no lease: %s", err.msg);

  /* ---- detach ---- */
  r = net_detach (net, "chk-web", &err);
  check (r == 0, "net_detach chk-web%s%s", r == 0 ? "" : ": ", r == 0 ? "" : err.msg);
  {
    char veth[IFNAMSIZ];

    net__link_name ("veth", "chk-web", veth, sizeof veth);
    check (net__nl_link_get (nl, veth, NULL, 0, NULL, NULL) == -ENODEV, "%s is gone", veth);
  }
  listing = nft_listing ();
  check (strstr (listing, "chk-web") == NULL && strstr (listing, "chain prerouting") != NULL,
         "its rules are gone (the chains stay)");
  free (listing);
  check (!lease_exists ("chk-web") && net_lookup (net, "chk-web", addr2, sizeof addr2) < 0,
         "its lease is gone");
  check (net_detach (net, "chk-web", &err) == 0, "a second detach is a no-op");
  {
    /* The server still runs: only the forwarding is gone. */
    echo_t e = { .addr = client_sn.base + 1, .port = hp_tcp, .udp = 0, .msg = "gone?" };

    r = in_netns (client_ns, echo_roundtrip, &e);
    check (r != 0 && strstr (e.why, "refused") != NULL,
           "after detach the published port no longer forwards (%s)", e.why);
  }
  close (wl_ns);
  reap (web);

  /* ---- a tap for a microVM ---- */
  {
    net_port_t ssh = { .port = 22, .host_port = free_port (SOCK_STREAM), .udp = 0 };
    int br = net__nl_link_get (nl, bridge, NULL, 0, NULL, NULL);

    r = net_attach_tap (net, "chk-vm", tap, sizeof tap, &ssh, 1, tap_addr, sizeof tap_addr, &prefix,
                        tap_gw, sizeof tap_gw, &err);
    check (r == 0, "net_attach_tap chk-vm -> %s %s/%d gw %s%s%s", tap, tap_addr, prefix, tap_gw,
           r == 0 ? "" : ": ", r == 0 ? "" : err.msg);
    check (r == 0 && strcmp (tap_gw, gw) == 0 && prefix == sn.prefix
               && net__addr_parse (tap_addr, &wl) == 0 && net__subnet_contains (&sn, wl),
           "the guest gets an address of the subnet and the bridge as gateway");
    r = net__nl_link_get (nl, tap, NULL, 0, &flags, &master);
    check (r > 0 && (flags & IFF_UP) && master == br, "tap %s is up on the bridge", tap);
    listing = nft_listing ();
    check (count (listing, "comment \"chk-vm\"") == 2, "the tap's port is published");
    free (listing);
    r = net_detach (net, "chk-vm", &err);
    check (r == 0 && net__nl_link_get (nl, tap, NULL, 0, NULL, NULL) == -ENODEV
               && !lease_exists ("chk-vm"),
           "detach removes the tap and its lease");
  }

  /* ---- cost of a start's network ---- */
  {
    net_port_t one = { .port = ECHO_PORT, .host_port = 20000, .udp = 0 };

    const char *bn = getenv ("NET_CHECK_BENCH_N");
    size_t count_ = bn != NULL ? strtoul (bn, NULL, 10) : 50;

    if (count_ > 250)
      count_ = 250;
    bench ("no published port", count_, NULL, 0);
    bench ("one published port", count_, &one, 1);
  }

out:
  cleanup ();
  printf ("# %d checks, %d failed\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
