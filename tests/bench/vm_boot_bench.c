/* MicroVM boot benchmark (issue 5), side by side in one run:
 *
 *   bare    qemu-system-x86_64 -M microvm booting the same guest kernel with
 *           a minimal /init (orch-init in probe mode: it prints a marker on
 *           the serial console and powers off), from spawn to the marker;
 *   microvm the runtime's start of an allocation (rt_microvm_ops.start: root
 *           disk from the cache, per-allocation initramfs, cgroup, VMM)
 *           to the workload's first output in the allocation's log.
 *
 * Medians over --runs, their ratio, and how the microVM path splits: host
 * preparation (start() returning), guest uptime when the workload printed
 * (read from /proc/uptime by the workload: the guest clock starts during the
 * kernel's early boot), and the rest (QEMU's start-up, loading and
 * decompressing the kernel, its early boot before the clock runs, and the
 * output's way back to the log).
 * Also the VMM's measured memory overhead per VM. Under each accelerator
 * that works here (--accel kvm|tcg|all).
 *
 *   vm_boot_bench [--runs N] [--accel all|kvm|tcg] [--cpu-milli M] [--json]
 *
 * --cpu-milli: the microVM's "cpu" (default 1000: one vCPU); 0 leaves its
 * cgroup without a CPU quota.
 *
 * Needs root, ORCH_TEST_BUSYBOX_TAR (deploy/make-busybox-image.sh),
 * ORCH_GUEST_KERNEL_DIR (deploy/fetch-guest-kernel.sh DIR -> DIR/guest-kernel)
 * and ORCH_INIT_PATH (the built orch-init). Not run by ctest. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "host_check.h"
#include "cg.h"
#include "orch_util.h"
#include "rt.h"
#include "vmm.h"

typedef struct bench_result_s
{
  const char *accel;
  int ok;
  double bare_ms, bare_uptime_s;
  double vm_ms, prep_ms, vm_uptime_s;
  double overhead_mib, reserve_mib;
  int runs;
} bench_result_t;

static char *state_dir;
static char *rootfs;
static rt_env_t env;
static int64_t bench_cpu_milli = 1000;
/* Both sides boot with the same guest memory. */
#define BENCH_MEM (128LL << 20)

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static double
median (double *v, int n)
{
  if (n == 0)
    return 0;
  qsort (v, (size_t) n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static char *
slurp (const char *path)
{
  char *data = NULL;
  size_t len;
  if (orch_read_file (path, 4 << 20, &data, &len) < 0)
    return xstrdup ("");
  return data;
}

/* One microVM start; returns ms to the first output (or -1), fills prep
 * and the guest uptime the workload saw. */
static double
vm_once (int i, const char *accel, double *prep, double *uptime)
{
  char *cmd[]
      = { "/bin/sh", "-c", "read up idle < /proc/uptime; echo first-output uptime=$up", NULL };
  cleanup_free char *id = xasprintf ("vmb-%s-%d", accel, i);
  cleanup_free char *dir = xasprintf ("%s/allocs/%s", state_dir, id);
  cleanup_free char *log = xasprintf ("%s/log", dir);
  orch_mkdir_p (dir, 0755);
  orch_spec_t spec = { 0 };
  spec.name = (char *) "vmbench";
  spec.command = cmd;
  spec.cpu_milli = bench_cpu_milli;
  spec.memory_bytes = BENCH_MEM;
  spec.network = ORCH_NET_HOST;
  rt_alloc_t a
      = { .alloc_id = id, .spec = &spec, .rootfs = rootfs, .alloc_dir = dir, .log_path = log };
  rt_proc_t p = { 0 };
  orch_err_t err = { 0 };
  double t0 = hc_now_ms ();
  if (rt_microvm_ops.start (&env, &a, &p, &err) < 0)
    {
      fprintf (stderr, "vm_boot_bench: start: %s\n", err.msg);
      return -1;
    }
  *prep = hc_now_ms () - t0;
  double took = -1;
  while (hc_now_ms () - t0 < 120000)
    {
      cleanup_free char *t = slurp (log);
      const char *m = strstr (t, "first-output uptime=");
      if (m != NULL && strchr (m, '\n') != NULL)
        {
          took = hc_now_ms () - t0;
          *uptime = atof (m + 20);
          break;
        }
      if (waitpid (p.pid, NULL, WNOHANG) == p.pid)
        {
          p.pid = -1;
          break;
        }
      usleep (1000);
    }
  if (p.pid > 0)
    {
      /* It exits by itself; do not let a slow power-off count. */
      kill (p.pid, SIGKILL);
      waitpid (p.pid, NULL, 0);
    }
  rt_microvm_ops.cleanup (&env, id, &err);
  orch_rm_rf (dir);
  return took;
}

static double
vm_overhead (const char *accel, orch_err_t *err)
{
  char *cmd[] = { "/bin/sh", "-c", "echo up; exec sleep 1000", NULL };
  cleanup_free char *id = xasprintf ("vmb-%s-idle", accel);
  cleanup_free char *dir = xasprintf ("%s/allocs/%s", state_dir, id);
  cleanup_free char *log = xasprintf ("%s/log", dir);
  orch_mkdir_p (dir, 0755);
  orch_spec_t spec = { 0 };
  spec.command = cmd;
  spec.cpu_milli = 1000;
  spec.memory_bytes = BENCH_MEM;
  spec.network = ORCH_NET_HOST;
  rt_alloc_t a
      = { .alloc_id = id, .spec = &spec, .rootfs = rootfs, .alloc_dir = dir, .log_path = log };
  rt_proc_t p = { 0 };
  if (rt_microvm_ops.start (&env, &a, &p, err) < 0)
    return -1;
  double t0 = hc_now_ms ();
  int up = 0;
  while (!up && hc_now_ms () - t0 < 120000)
    {
      cleanup_free char *t = slurp (log);
      up = strstr (t, "up\n") != NULL;
      usleep (10000);
    }
  /* Let the idle guest settle. */
  sleep (1);
  int64_t over = -1;
  if (up)
    rt_microvm_overhead (dir, &over, err);
  kill (p.pid, SIGKILL);
  waitpid (p.pid, NULL, 0);
  rt_microvm_ops.cleanup (&env, id, err);
  orch_rm_rf (dir);
  return over < 0 ? -1 : (double) over / 1048576.0;
}

static void
bench_accel (const char *accel, int runs, bench_result_t *r)
{
  memset (r, 0, sizeof *r);
  r->accel = accel;
  r->runs = runs;
  setenv ("ORCH_VMM_ACCEL", accel, 1);
  vmm_accel_t va = strcmp (accel, "kvm") == 0 ? VMM_ACCEL_KVM : VMM_ACCEL_NONE;
  orch_err_t err = { 0 };
  double ms;
  /* Warm-up: the root disk is built and cached, KVM is boot-tested. */
  int w = rt_microvm_boot_test (state_dir, va, BENCH_MEM, 15000, &ms, &err);
  if (w != 1)
    {
      fprintf (stderr, "# %s: the guest kernel does not boot here (%s)\n", accel,
               w < 0 ? err.msg : "no marker");
      return;
    }
  double prep, up;
  if (vm_once (999, accel, &prep, &up) < 0)
    {
      fprintf (stderr, "# %s: the microVM path does not work here\n", accel);
      return;
    }
  double *bare = xcalloc ((size_t) runs, sizeof (double));
  double *vm = xcalloc ((size_t) runs, sizeof (double));
  double *preps = xcalloc ((size_t) runs, sizeof (double));
  double *ups = xcalloc ((size_t) runs, sizeof (double));
  int nb = 0, nv = 0;
  /* Interleaved, so that a noisy period hits both sides alike. */
  for (int i = 0; i < runs; i++)
    {
      if (rt_microvm_boot_test (state_dir, va, BENCH_MEM, 60000, &ms, &err) == 1)
        bare[nb++] = ms;
      double t = vm_once (i, accel, &prep, &up);
      if (t >= 0)
        {
          preps[nv] = prep;
          ups[nv] = up;
          vm[nv++] = t;
        }
    }
  r->bare_ms = median (bare, nb);
  r->vm_ms = median (vm, nv);
  r->prep_ms = median (preps, nv);
  r->vm_uptime_s = median (ups, nv);
  r->ok = nb > 0 && nv > 0;
  r->overhead_mib = vm_overhead (accel, &err);
  r->reserve_mib = (double) rt_microvm_reserve (state_dir, 1) / 1048576.0;
  free (bare);
  free (vm);
  free (preps);
  free (ups);
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
  int runs = 5;
  int json = 0;
  const char *which = "all";
  for (int i = 1; i < argc; i++)
    {
      if (strcmp (argv[i], "--runs") == 0 && i + 1 < argc)
        runs = atoi (argv[++i]);
      else if (strcmp (argv[i], "--accel") == 0 && i + 1 < argc)
        which = argv[++i];
      else if (strcmp (argv[i], "--cpu-milli") == 0 && i + 1 < argc)
        bench_cpu_milli = atoll (argv[++i]);
      else if (strcmp (argv[i], "--json") == 0)
        json = 1;
      else
        {
          fprintf (
              stderr,
              "usage: vm_boot_bench [--runs N] [--accel all|kvm|tcg] [--cpu-milli M] [--json]\n");
          return 2;
        }
    }
  if (runs < 1 || runs > 1000)
    runs = 5;
  if (geteuid () != 0)
    {
      fprintf (stderr, "vm_boot_bench: needs root\n");
      return 77;
    }
  const char *tar = getenv ("ORCH_TEST_BUSYBOX_TAR");
  if (tar == NULL || getenv ("ORCH_GUEST_KERNEL_DIR") == NULL)
    {
      fprintf (stderr, "vm_boot_bench: set ORCH_TEST_BUSYBOX_TAR and ORCH_GUEST_KERNEL_DIR\n");
      return 2;
    }
  char tmpl[] = "/tmp/orch-vmbench.XXXXXX";
  state_dir = mkdtemp (tmpl);
  if (state_dir == NULL)
    return 1;
  orch_err_t err = { 0 };
  env.state_dir = state_dir;
  env.cg = cg_manager_new ("orch-vmbench", &err);
  if (env.cg == NULL || image_import (state_dir, "busybox", tar, &err) < 0
      || (rootfs = image_rootfs (state_dir, "busybox", &err)) == NULL)
    {
      fprintf (stderr, "vm_boot_bench: %s\n", err.msg);
      orch_rm_rf (state_dir);
      return 1;
    }

  const char *accels[2];
  int na = 0;
  if (strcmp (which, "all") == 0 || strcmp (which, "kvm") == 0)
    accels[na++] = "kvm";
  if (strcmp (which, "all") == 0 || strcmp (which, "tcg") == 0)
    accels[na++] = "tcg";
  bench_result_t res[2];
  for (int i = 0; i < na; i++)
    bench_accel (accels[i], runs, &res[i]);

  if (json)
    printf ("[");
  for (int i = 0; i < na; i++)
    {
      bench_result_t *r = &res[i];
      double ratio = r->bare_ms > 0 ? r->vm_ms / r->bare_ms : 0;
      if (json)
        {
          printf ("%s{\"bench\":\"vm_boot\",\"accel\":\"%s\",\"ok\":%s,\"runs\":%d,"
                  "\"bare_boot_ms\":%.1f,\"microvm_first_output_ms\":%.1f,\"ratio\":%.3f,"
                  "\"host_prep_ms\":%.1f,\"guest_uptime_at_output_ms\":%.1f,"
                  "\"vmm_overhead_mib\":%.1f,\"cgroup_reserve_mib\":%.0f}",
                  i ? "," : "", r->accel, r->ok ? "true" : "false", r->runs, r->bare_ms, r->vm_ms,
                  ratio, r->prep_ms, r->vm_uptime_s * 1000, r->overhead_mib, r->reserve_mib);
          continue;
        }
      if (!r->ok)
        {
          printf ("%s: not available on this host\n", r->accel);
          continue;
        }
      printf ("%s (median of %d):\n", r->accel, r->runs);
      printf ("  bare qemu boot to /init marker      %8.1f ms\n", r->bare_ms);
      printf ("  microVM start to first output       %8.1f ms  (%.2fx bare)\n", r->vm_ms, ratio);
      printf ("    host preparation (start returns)  %8.1f ms\n", r->prep_ms);
      printf ("    guest uptime at the output        %8.1f ms  (kernel after its clock starts + "
              "orch-init)\n",
              r->vm_uptime_s * 1000);
      printf ("    rest: QEMU start, kernel load + early boot %6.1f ms\n",
              r->vm_ms - r->prep_ms - r->vm_uptime_s * 1000);
      printf ("  VMM memory overhead (idle VM)       %8.1f MiB (cgroup reserve %.0f MiB)\n",
              r->overhead_mib, r->reserve_mib);
    }
  if (json)
    printf ("]\n");
  orch_rm_rf (state_dir);
  free (rootfs);
  remove_parent_cgroup (env.cg);
  cg_manager_free (env.cg);
  return 0;
}
