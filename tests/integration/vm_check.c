/* Host check of the microvm runtime (run as root by test_microvm.sh): real
 * QEMU, the Debian cloud guest kernel, orch-init as the guest's pid 1, a
 * busybox image, the allocation's cgroup.
 *
 * Environment: ORCH_TEST_BUSYBOX_TAR (deploy/make-busybox-image.sh),
 * ORCH_INIT_PATH (the built orch-init), ORCH_GUEST_KERNEL_DIR (a directory
 * filled by deploy/fetch-guest-kernel.sh, i.e. DIR/guest-kernel),
 * ORCH_VMM_ACCEL=tcg to force software emulation. Exits 0 when every check
 * passed, 1 otherwise, 77 when it cannot run here. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cg.h"
#include "host_check.h"
#include "orch_util.h"
#include "rt.h"
#include "vmm.h"

static int failures;
static char *state_dir;
static char *rootfs;
static rt_env_t env;
static const rt_ops_t *rt;
static const char *want_accel; /* "kvm" or "tcg" */
static int boot_timeout_ms;

static void
check (int ok, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  printf ("%s - [%s] ", ok ? "ok" : "not ok", want_accel);
  vprintf (fmt, ap);
  printf ("\n");
  fflush (stdout);
  va_end (ap);
  if (!ok)
    failures++;
}

/* Waits until the file contains needle. */
static int
wait_for_text (const char *path, const char *needle, int timeout_ms)
{
  double end = hc_now_ms () + timeout_ms;
  for (;;)
    {
      cleanup_free char *t = hc_slurp (path);
      if (strstr (t, needle) != NULL)
        return 0;
      if (hc_now_ms () > end)
        return -1;
      usleep (5000);
    }
}

/* The exit record, read as the agent reads a container's: the same format. */
static int
exit_code_of (const char *alloc_dir)
{
  int code = -1;
  char *reason = NULL;
  orch_err_t err = { 0 };
  int r = rt_exit_record_read (alloc_dir, &code, &reason, &err);
  free (reason);
  return r == 1 ? code : -1;
}

typedef struct
{
  char *id, *alloc_dir, *log;
  orch_spec_t spec;
  rt_alloc_t a;
  rt_proc_t proc;
} vm_t;

static void
vm_init (vm_t *v, const char *id, char **cmd, int64_t mem)
{
  memset (v, 0, sizeof *v);
  v->id = xasprintf ("%s-%s", id, want_accel);
  v->alloc_dir = xasprintf ("%s/allocs/%s", state_dir, v->id);
  v->log = xasprintf ("%s/log", v->alloc_dir);
  orch_mkdir_p (v->alloc_dir, 0755);
  v->spec.name = (char *) "vmcheck";
  v->spec.image = (char *) "busybox";
  v->spec.command = cmd;
  v->spec.cpu_milli = 1000;
  v->spec.memory_bytes = mem;
  v->spec.network = ORCH_NET_HOST;
  v->a.alloc_id = v->id;
  v->a.spec = &v->spec;
  v->a.rootfs = rootfs;
  v->a.alloc_dir = v->alloc_dir;
  v->a.log_path = v->log;
}

static void
vm_done (vm_t *v)
{
  orch_err_t err = { 0 };
  if (getenv ("ORCH_VMCHECK_KEEP") != NULL)
    return;
  if (rt->cleanup (&env, v->id, &err) < 0)
    check (0, "cleanup %s: %s", v->id, err.msg);
  free (v->id);
  free (v->alloc_dir);
  free (v->log);
}

static void
dump_log (const vm_t *v)
{
  cleanup_free char *t = hc_slurp (v->log);
  printf ("# --- log of %s ---\n%s\n# ---\n", v->id, t);
}

static void
check_exit_code_and_kernel (void)
{
  char *cmd[] = { "/bin/sh", "-c",
                  "echo guest-kernel=$(uname -r); echo host=$(hostname); "
                  "echo foo=$FOO; exit 3",
                  NULL };
  char *envv[] = { "FOO=bar baz", NULL };
  vm_t v;
  vm_init (&v, "vmc-exit", cmd, 128 << 20);
  v.spec.env = envv;
  orch_err_t err = { 0 };
  double t0 = hc_now_ms ();
  int r = rt->start (&env, &v.a, &v.proc, &err);
  check (r == 0, "start a microVM (%s)", r == 0 ? v.proc.vmm : err.msg);
  if (r < 0)
    {
      vm_done (&v);
      return;
    }
  char want_vmm[64];
  snprintf (want_vmm, sizeof want_vmm, "qemu-microvm (%s)", want_accel);
  check (strcmp (v.proc.vmm, want_vmm) == 0, "vmm is \"%s\" (%s)", want_vmm, v.proc.vmm);
  int status = hc_wait_exit (v.proc.pid, boot_timeout_ms);
  double took = hc_now_ms () - t0;
  check (status >= 0 && WIFEXITED (status) && WEXITSTATUS (status) == 0,
         "the VMM exits by itself when the workload ends (status %#x, %.0f ms)", status, took);
  if (status < 0)
    kill (v.proc.pid, SIGKILL), waitpid (v.proc.pid, NULL, 0);
  check (exit_code_of (v.alloc_dir) == 3, "exit record says exited 3");
  cleanup_free char *log = hc_slurp (v.log);
  struct utsname u;
  uname (&u);
  cleanup_free char *want = xasprintf ("guest-kernel=%s\n", v.proc.guest_kernel);
  check (v.proc.guest_kernel[0] != '\0' && strstr (log, want) != NULL,
         "the log has the guest kernel's version (%s)", v.proc.guest_kernel);
  check (strcmp (v.proc.guest_kernel, u.release) != 0,
         "the guest kernel differs from the host's (%s)", u.release);
  cleanup_free char *host = xasprintf ("host=%s\n", v.id);
  check (strstr (log, host) != NULL, "hostname is the allocation id");
  check (strstr (log, "foo=bar baz\n") != NULL, "the spec's environment reaches the workload");
  check (strstr (log, "foo=bar baz\r") == NULL, "workload output is not mangled by a tty (no \\r)");
  if (failures)
    dump_log (&v);
  vm_done (&v);
}

static void
check_memory_and_cgroup (void)
{
  char *cmd[] = { "/bin/sh", "-c",
                  "grep MemTotal /proc/meminfo; nproc | sed 's/^/cpus=/'; "
                  "echo done",
                  NULL };
  vm_t v;
  int64_t mem = 256 << 20;
  vm_init (&v, "vmc-mem", cmd, mem);
  v.spec.cpu_milli = 1500;
  orch_err_t err = { 0 };
  int r = rt->start (&env, &v.a, &v.proc, &err);
  check (r == 0, "start a 256 MiB, 1.5 CPU microVM (%s)", r == 0 ? "ok" : err.msg);
  if (r < 0)
    {
      vm_done (&v);
      return;
    }
  cleanup_free char *cgdir = env.cg->ops->path (env.cg, v.id, "memory");
  cleanup_free char *lim_path = xasprintf (
      "%s/%s", cgdir, env.cg->layout.version == 2 ? "memory.max" : "memory.limit_in_bytes");
  cleanup_free char *lim_text = hc_slurp (lim_path);
  long long lim = atoll (lim_text);
  int64_t reserve = rt_microvm_reserve (state_dir, 2);
  check (lim == mem + reserve, "cgroup memory limit = guest %lld MiB + VMM reserve %lld MiB (%lld)",
         (long long) mem >> 20, (long long) reserve >> 20, lim);
  /* The VMM is in the allocation's cgroup. */
  pid_t *pids = NULL;
  size_t n = 0;
  int in_cg = 0;
  if (env.cg->ops->pids (env.cg, v.id, &pids, &n, &err) == 0)
    for (size_t i = 0; i < n; i++)
      in_cg |= pids[i] == v.proc.pid;
  free (pids);
  check (in_cg, "the VMM runs in the allocation's cgroup");

  int status = hc_wait_exit (v.proc.pid, boot_timeout_ms);
  check (status >= 0, "the VM ends");
  if (status < 0)
    kill (v.proc.pid, SIGKILL), waitpid (v.proc.pid, NULL, 0);
  cleanup_free char *log = hc_slurp (v.log);
  const char *m = strstr (log, "MemTotal:");
  long long kb = 0;
  if (m != NULL)
    sscanf (m, "MemTotal: %lld kB", &kb);
  /* The kernel keeps its own image and reserved areas out of MemTotal. */
  check (kb * 1024 <= mem && kb * 1024 >= mem * 8 / 10,
         "the guest sees its memory: MemTotal %lld kB of %lld kB", kb, (long long) mem >> 10);
  check (strstr (log, "cpus=2\n") != NULL, "the guest has ceil(1.5) = 2 vCPUs");
  if (failures)
    dump_log (&v);
  vm_done (&v);
}

static void
check_graceful_stop_and_adopt (void)
{
  char *cmd[]
      = { "/bin/sh", "-c", "trap 'echo bye; exit 0' TERM; echo ready; sleep 1000 & wait", NULL };
  vm_t v;
  vm_init (&v, "vmc-stop", cmd, 128 << 20);
  orch_err_t err = { 0 };
  int r = rt->start (&env, &v.a, &v.proc, &err);
  check (r == 0, "start a long-running microVM (%s)", r == 0 ? "ok" : err.msg);
  if (r < 0)
    {
      vm_done (&v);
      return;
    }
  r = wait_for_text (v.log, "ready\n", boot_timeout_ms);
  check (r == 0, "the workload runs");

  /* What a restarted agent does: find the VM again from alloc_dir. */
  rt_proc_t again = { 0 };
  r = rt->adopt (&env, v.id, v.alloc_dir, &again, &err);
  check (r == 1 && again.pid == v.proc.pid && strcmp (again.vmm, v.proc.vmm) == 0
             && strcmp (again.guest_kernel, v.proc.guest_kernel) == 0,
         "adopt finds the running VM (r=%d pid %d/%d %s)", r, (int) again.pid, (int) v.proc.pid,
         r < 0 ? err.msg : again.vmm);

  int64_t over = 0;
  r = rt_microvm_overhead (v.alloc_dir, &over, &err);
  int64_t reserve = rt_microvm_reserve (state_dir, 1);
  check (r == 0 && over > 0 && over < reserve, "VMM overhead measured: %.1f MiB (reserve %.0f MiB)",
         (double) over / 1048576.0, (double) reserve / 1048576.0);
  printf ("{\"accel\":\"%s\",\"vmm_overhead_bytes\":%lld}\n", want_accel, (long long) over);
  cg_usage_t u = { 0 };
  r = rt->usage (&env, v.id, &u, &err);
  check (r == 0 && u.memory_bytes > 0, "usage from the cgroup: %lld MiB",
         (long long) u.memory_bytes >> 20);

  r = rt->kill (&env, v.id, &v.proc, SIGTERM, &err);
  check (r == 0, "kill(SIGTERM) asks the guest to stop (%s)", r == 0 ? "ok" : err.msg);
  int status = hc_wait_exit (v.proc.pid, 30000);
  check (status >= 0 && WIFEXITED (status), "the VM powers off after the stop request");
  if (status < 0)
    kill (v.proc.pid, SIGKILL), waitpid (v.proc.pid, NULL, 0);
  cleanup_free char *log = hc_slurp (v.log);
  check (strstr (log, "bye\n") != NULL, "the workload's TERM trap ran (graceful stop)");
  check (exit_code_of (v.alloc_dir) == 0, "exit record says exited 0");
  r = rt->adopt (&env, v.id, v.alloc_dir, &again, &err);
  check (r == 0, "adopt reports a finished VM as gone (r=%d)", r);
  if (failures)
    dump_log (&v);
  vm_done (&v);
}

static void
check_sigkill_and_bad_exec (void)
{
  char *cmd[] = { "/no/such/program", NULL };
  vm_t v;
  vm_init (&v, "vmc-noexec", cmd, 96 << 20);
  orch_err_t err = { 0 };
  int r = rt->start (&env, &v.a, &v.proc, &err);
  check (r == 0, "start a microVM with a missing program (%s)", r == 0 ? "ok" : err.msg);
  if (r == 0)
    {
      int status = hc_wait_exit (v.proc.pid, boot_timeout_ms);
      check (status >= 0, "it ends");
      if (status < 0)
        kill (v.proc.pid, SIGKILL), waitpid (v.proc.pid, NULL, 0);
      cleanup_free char *path = xasprintf ("%s/exit", v.alloc_dir);
      cleanup_free char *t = hc_slurp (path);
      t[strcspn (t, "\n")] = '\0';
      check (strncmp (t, "failed exec /no/such/program: ", 30) == 0,
             "exit record says failed exec (%s)", t);
    }
  vm_done (&v);

  char *cmd2[] = { "/bin/sleep", "1000", NULL };
  vm_init (&v, "vmc-kill", cmd2, 96 << 20);
  r = rt->start (&env, &v.a, &v.proc, &err);
  if (r == 0)
    {
      r = rt->kill (&env, v.id, &v.proc, SIGKILL, &err);
      int status = hc_wait_exit (v.proc.pid, 10000);
      check (r == 0 && status >= 0 && WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL,
             "kill(SIGKILL) ends the VMM at once");
    }
  vm_done (&v);
  char *id = xasprintf ("vmc-kill-%s", want_accel);
  check (!env.cg->ops->exists (env.cg, id), "cleanup removed the cgroup");
  free (id);
}

/* ---- bridge networking: a tap on the node bridge, a published port ----
 *
 * As in rt_check: a forked process with its own network namespace plays the
 * node (bridge, nftables table and links vanish with it), and a "client
 * host" namespace joined to it by a veth reaches the VM only through the
 * published port on the node's address. */
#define BR_NODE_ADDR "10.231.19.1"
#define BR_CLIENT_ADDR "10.231.19.2"
#define BR_SUBNET "10.231.18.0/24"
#define BR_HOST_PORT 18081

static void
bridge_node (void)
{
  if (unshare (CLONE_NEWNET) < 0)
    {
      check (0, "bridge: unshare a node network namespace: %s", strerror (errno));
      return;
    }
  hc_sh ("ip link set lo up");
  bool linked;
  pid_t client = hc_client_host ("vmc-cl0", BR_NODE_ADDR, BR_CLIENT_ADDR, &linked);
  check (linked, "bridge: a client host joined to the node by a veth");
  cleanup_free char *net_state = xasprintf ("%s/net-state", state_dir);
  orch_mkdir_p (net_state, 0755);
  net_config_t cfg = { .state_dir = net_state, .bridge = "vmcbr0", .subnet = BR_SUBNET };
  orch_err_t err = { 0 };
  net_t *n = net_new (&cfg, &err);
  check (n != NULL, "bridge: net_new (%s)", n != NULL ? "ok" : err.msg);
  if (n == NULL)
    goto out;
  env.net = n;

  char *cmd[] = { "/bin/sh", "-c",
                  "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && "
                  "exec httpd -f -p 8080 -h /www",
                  NULL };
  vm_t v;
  vm_init (&v, "vmc-br", cmd, 128 << 20);
  v.spec.network = ORCH_NET_BRIDGE;
  net_port_t ports[] = { { .port = 8080, .host_port = BR_HOST_PORT } };
  v.a.ports = ports;
  v.a.n_ports = 1;
  int r = rt->start (&env, &v.a, &v.proc, &err);
  check (r == 0, "bridge: start a microVM with a published port (%s)", r == 0 ? "ok" : err.msg);
  if (r == 0)
    {
      check (strncmp (v.proc.address, "10.231.18.", 10) == 0,
             "bridge: the VM's address is on the node subnet (%s)", v.proc.address);
      cleanup_free char *out = xasprintf ("%s/client-out", state_dir);
      cleanup_free char *want = xasprintf ("hello-from-%s\n", v.id);
      int got = 0;
      double end = hc_now_ms () + boot_timeout_ms;
      while (!got && hc_now_ms () < end)
        {
          hc_sh ("nsenter -t %d -n curl -s -m 2 -o %s http://" BR_NODE_ADDR ":%d/ 2>/dev/null",
              (int) client, out, BR_HOST_PORT);
          cleanup_free char *body = hc_slurp (out);
          got = strcmp (body, want) == 0;
          if (!got)
            usleep (200000);
        }
      check (got,
             "bridge: from another network namespace, the published port " BR_NODE_ADDR
             ":%d answers from the VM",
             BR_HOST_PORT);
      if (!got)
        dump_log (&v);
      rt_proc_t again = { 0 };
      check (rt->adopt (&env, v.id, v.alloc_dir, &again, &err) == 1
                 && strcmp (again.address, v.proc.address) == 0,
             "bridge: adopt gives the address back");
      rt->kill (&env, v.id, &v.proc, SIGKILL, &err);
      hc_wait_exit (v.proc.pid, 10000);
      char addr[64];
      r = rt->cleanup (&env, v.id, &err);
      check (r == 0 && net_lookup (n, v.id, addr, sizeof addr) < 0,
             "bridge: cleanup releases the address (%s)", r == 0 ? "ok" : err.msg);
    }
  free (v.id);
  free (v.alloc_dir);
  free (v.log);
  env.net = NULL;
  net_free (n);
out:
  kill (client, SIGKILL);
  waitpid (client, NULL, 0);
}

static void
check_bridge (void)
{
  if (system ("command -v ip >/dev/null && command -v nsenter >/dev/null && "
              "command -v curl >/dev/null")
      != 0)
    {
      printf ("# skip: the bridge check needs ip, nsenter and curl\n");
      return;
    }
  fflush (stdout);
  pid_t node = fork ();
  if (node == 0)
    {
      int before = failures;
      bridge_node ();
      fflush (stdout);
      _exit (failures - before > 100 ? 100 : failures - before);
    }
  int st = 0;
  waitpid (node, &st, 0);
  if (!WIFEXITED (st))
    check (0, "bridge: the node process died (status %#x)", st);
  else
    failures += WEXITSTATUS (st);
}

/* An image of a few hundred MiB in a guest with less memory than that: the
 * root disk is read on demand (an initramfs would need it all in RAM). */
static void
check_big_image (void)
{
  cleanup_free char *src = xasprintf ("%s/big-src", state_dir);
  int r = hc_sh ("cp -a '%s' '%s' && head -c 300M /dev/urandom > '%s/big.bin' && "
              "md5sum < '%s/big.bin' | cut -d' ' -f1 > '%s/../big.md5'",
              rootfs, src, src, src, src);
  check (r == 0, "big image: a 300 MiB root filesystem made");
  orch_err_t err = { 0 };
  cleanup_free char *big_rootfs = NULL;
  if (r == 0 && image_import (state_dir, "big", src, &err) == 0)
    big_rootfs = image_rootfs (state_dir, "big", &err);
  check (big_rootfs != NULL, "big image: imported (%s)", big_rootfs != NULL ? "ok" : err.msg);
  orch_rm_rf (src);
  if (big_rootfs == NULL)
    return;
  char *cmd[] = { "/bin/sh", "-c",
                  "echo md5=$(md5sum < /big.bin | cut -d' ' -f1); "
                  "grep MemTotal /proc/meminfo",
                  NULL };
  vm_t v;
  vm_init (&v, "vmc-big", cmd, 128 << 20);
  v.a.rootfs = big_rootfs;
  double t0 = hc_now_ms ();
  r = rt->start (&env, &v.a, &v.proc, &err);
  double prep = hc_now_ms () - t0;
  check (r == 0, "big image: start a 128 MiB microVM (%s; first start %.0f ms incl. the disk)",
         r == 0 ? "ok" : err.msg, prep);
  if (r == 0)
    {
      int status = hc_wait_exit (v.proc.pid, boot_timeout_ms * 2);
      if (status < 0)
        kill (v.proc.pid, SIGKILL), waitpid (v.proc.pid, NULL, 0);
      cleanup_free char *md5_path = xasprintf ("%s/big.md5", state_dir);
      cleanup_free char *want = hc_slurp (md5_path);
      want[strcspn (want, "\n")] = '\0';
      cleanup_free char *line = xasprintf ("md5=%s\n", want);
      cleanup_free char *log = hc_slurp (v.log);
      check (want[0] != '\0' && strstr (log, line) != NULL && exit_code_of (v.alloc_dir) == 0,
             "big image: the guest reads all 300 MiB intact with 128 MiB of RAM");
      if (failures)
        dump_log (&v);
    }
  vm_done (&v);
}

/* The parent cgroup made for this run, in every hierarchy (empty by now). */
static void
remove_parent_cgroup (cg_manager_t *m)
{
  const char *roots[] = { m->layout.v2_root, m->layout.v1_cpu, m->layout.v1_cpuacct,
                          m->layout.v1_memory, m->layout.v1_pids };
  for (size_t i = 0; i < ORCH_ARRAY_LEN (roots); i++)
    if (roots[i] != NULL)
      {
        cleanup_free char *dir = xasprintf ("%s/%s", roots[i], m->parent);
        rmdir (dir);
      }
}

int
main (int argc, char **argv)
{
  /* vm_check [CHECK]: only the checks whose name contains CHECK. */
  const char *only = argc > 1 ? argv[1] : "";
  if (geteuid () != 0)
    {
      printf ("SKIP: needs root\n");
      return 77;
    }
  const char *tar = getenv ("ORCH_TEST_BUSYBOX_TAR");
  if (tar == NULL)
    {
      printf ("SKIP: ORCH_TEST_BUSYBOX_TAR not set\n");
      return 77;
    }
  vmm_accel_t accel;
  orch_err_t err = { 0 };
  if (vmm_accel_detect (&accel, &err) < 0)
    {
      printf ("SKIP: %s\n", err.msg);
      return 77;
    }
  char tmpl[] = "/tmp/orch-vmcheck.XXXXXX";
  state_dir = mkdtemp (tmpl);
  if (state_dir == NULL)
    return 1;
  env.state_dir = state_dir;
  if (image_import (state_dir, "busybox", tar, &err) < 0)
    {
      printf ("FAIL: import %s: %s\n", tar, err.msg);
      return 1;
    }
  rootfs = image_rootfs (state_dir, "busybox", &err);
  env.cg = cg_manager_new ("orch-vmcheck", &err);
  if (env.cg == NULL || rootfs == NULL)
    {
      printf ("FAIL: %s\n", err.msg);
      return 1;
    }
  rt = rt_lookup ("microvm");
  if (rt == NULL)
    {
      printf ("FAIL: rt_lookup(\"microvm\") is NULL\n");
      return 1;
    }
  if (rt->probe (&env, &err) < 0)
    {
      printf ("SKIP: %s\n", err.msg);
      orch_rm_rf (state_dir);
      return 77;
    }
  /* The probe boot-tested KVM (when /dev/kvm answered) and left its
   * verdict here. */
  want_accel = "tcg";
  if (accel == VMM_ACCEL_KVM)
    {
      cleanup_free char *path = xasprintf ("%s/vm-disks/kvm-check", state_dir);
      cleanup_free char *verdict = hc_slurp (path);
      verdict[strcspn (verdict, "\n")] = '\0';
      if (strstr (verdict, " kvm=ok") != NULL)
        want_accel = "kvm";
      else
        printf ("# /dev/kvm answers, but the guest kernel does not boot under KVM here "
                "(%s): the runtime falls back to TCG\n",
                verdict);
    }
  boot_timeout_ms = strcmp (want_accel, "kvm") == 0 ? 30000 : 120000;
  static const struct
  {
    const char *name;
    void (*fn) (void);
  } checks[] = {
    { "exit", check_exit_code_and_kernel },
    { "memory", check_memory_and_cgroup },
    { "stop", check_graceful_stop_and_adopt },
    { "kill", check_sigkill_and_bad_exec },
    { "bridge", check_bridge },
    { "big", check_big_image },
  };
  for (size_t i = 0; i < ORCH_ARRAY_LEN (checks); i++)
    if (strstr (checks[i].name, only) != NULL)
      checks[i].fn ();

  if (getenv ("ORCH_VMCHECK_KEEP") == NULL)
    orch_rm_rf (state_dir);
  free (rootfs);
  remove_parent_cgroup (env.cg);
  cg_manager_free (env.cg);
  printf ("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
  return failures ? 1 : 0;
}
