/* The microvm runtime's host-independent parts: the QEMU command line the
 * backend builds (what each option is for is what a user relies on: the
 * accelerator, the guest's size, the guest channels, the private disk
 * layer), backend lookup, accelerator override, the cgroup reserve, and the
 * runtime's refusals before it touches anything. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "orch_test.h"
#include "orch_util.h"
#include "rt.h"
#include "vmm.h"

static vmm_launch_t
launch (vmm_accel_t accel)
{
  vmm_launch_t l = {
    .alloc_dir = "/var/lib/orch/allocs/a1",
    .kernel = "/k/vmlinuz",
    .initrd = "/var/lib/orch/allocs/a1/initrd.cpio",
    .cmdline = "console=ttyS0 quiet orch.hostname=a1",
    .root_disk = "/var/lib/orch/vm-disks/x.ext4",
    .console_path = "/var/lib/orch/allocs/a1/log",
    .log_path = "/var/lib/orch/allocs/a1/log",
    .exit_path = "/var/lib/orch/allocs/a1/exit",
    .ctl_path = "/var/lib/orch/allocs/a1/ctl",
    .vcpus = 2,
    .mem_bytes = (100LL << 20) + 1,
    .accel = accel,
  };
  return l;
}

/* The value following option opt (the n-th occurrence), or NULL. */
static const char *
opt_value (char **argv, const char *opt, int n)
{
  for (size_t i = 0; argv[i] != NULL; i++)
    if (strcmp (argv[i], opt) == 0 && argv[i + 1] != NULL && n-- == 0)
      return argv[i + 1];
  return NULL;
}

static bool
has_value (char **argv, const char *opt, const char *value)
{
  for (int n = 0;; n++)
    {
      const char *v = opt_value (argv, opt, n);
      if (v == NULL)
        return false;
      if (strcmp (v, value) == 0)
        return true;
    }
}

static void
test_qemu_argv_kvm (void **state)
{
  (void) state;
  vmm_launch_t l = launch (VMM_ACCEL_KVM);
  orch_err_t err = { 0 };
  char **argv = vmm_qemu_ops.argv (&l, &err);
  assert_non_null (argv);
  assert_string_equal (argv[0], vmm_qemu_ops.binary ());
  assert_true (has_value (argv, "-accel", "kvm"));
  assert_true (has_value (argv, "-cpu", "host"));
  assert_true (has_value (argv, "-M", "microvm,x-option-roms=off,rtc=off"));
  /* Guest memory is rounded up to whole MiB, never down. */
  assert_true (has_value (argv, "-m", "101M"));
  assert_true (has_value (argv, "-smp", "2"));
  assert_true (has_value (argv, "-kernel", "/k/vmlinuz"));
  assert_true (has_value (argv, "-append", "console=ttyS0 quiet orch.hostname=a1"));
  /* A guest that resets must end the VMM, not reboot. */
  bool no_reboot = false;
  for (size_t i = 0; argv[i] != NULL; i++)
    no_reboot |= strcmp (argv[i], "-no-reboot") == 0;
  assert_true (no_reboot);
  vmm_argv_free (argv);
}

static void
test_qemu_argv_tcg (void **state)
{
  (void) state;
  vmm_launch_t l = launch (VMM_ACCEL_NONE);
  orch_err_t err = { 0 };
  char **argv = vmm_qemu_ops.argv (&l, &err);
  assert_non_null (argv);
  const char *accel = opt_value (argv, "-accel", 0);
  assert_non_null (accel);
  /* TCG, with a bounded translation cache (the VMM's overhead). */
  assert_int_equal (strncmp (accel, "tcg,", 4), 0);
  assert_non_null (strstr (accel, "tb-size="));
  assert_true (has_value (argv, "-cpu", "max"));
  vmm_argv_free (argv);
}

static void
test_qemu_argv_channels (void **state)
{
  (void) state;
  vmm_launch_t l = launch (VMM_ACCEL_KVM);
  orch_err_t err = { 0 };
  char **argv = vmm_qemu_ops.argv (&l, &err);
  assert_non_null (argv);
  /* Console and workload output are appended to the allocation's log, the
   * exit record goes to alloc_dir/exit, stop requests come from the FIFO. */
  assert_true (
      has_value (argv, "-chardev", "file,id=con,path=/var/lib/orch/allocs/a1/log,append=on"));
  assert_true (has_value (argv, "-serial", "chardev:con"));
  assert_true (
      has_value (argv, "-chardev", "file,id=log,path=/var/lib/orch/allocs/a1/log,append=on"));
  assert_true (has_value (argv, "-device", "virtserialport,chardev=log,name=orch.log"));
  assert_true (has_value (argv, "-chardev", "file,id=exit,path=/var/lib/orch/allocs/a1/exit"));
  assert_true (has_value (argv, "-device", "virtserialport,chardev=exit,name=orch.exit"));
  assert_true (has_value (argv, "-chardev", "pipe,id=ctl,path=/var/lib/orch/allocs/a1/ctl"));
  assert_true (has_value (argv, "-device", "virtserialport,chardev=ctl,name=orch.ctl"));
  /* The shared root disk is never written: snapshot=on. */
  const char *drive = opt_value (argv, "-drive", 0);
  assert_non_null (drive);
  assert_non_null (strstr (drive, "file=/var/lib/orch/vm-disks/x.ext4,"));
  assert_non_null (strstr (drive, "snapshot=on"));
  assert_true (has_value (argv, "-device", "virtio-blk-device,drive=root"));
  /* No tap: no network device at all. */
  assert_null (opt_value (argv, "-netdev", 0));
  vmm_argv_free (argv);

  l.tap = "orcht1";
  l.mac = "52:54:00:01:02:03";
  argv = vmm_qemu_ops.argv (&l, &err);
  assert_non_null (argv);
  assert_true (has_value (argv, "-netdev", "tap,id=net0,ifname=orcht1,script=no,downscript=no"));
  assert_true (has_value (argv, "-device", "virtio-net-device,netdev=net0,mac=52:54:00:01:02:03"));
  vmm_argv_free (argv);
}

static void
test_qemu_argv_refuses (void **state)
{
  (void) state;
  orch_err_t err = { 0 };
  /* ',' would split a QEMU option into two. */
  vmm_launch_t l = launch (VMM_ACCEL_KVM);
  l.log_path = "/tmp/a,b/log";
  assert_null (vmm_qemu_ops.argv (&l, &err));
  assert_int_equal (err.code, EINVAL);
  assert_non_null (strstr (err.msg, "/tmp/a,b/log"));
  l = launch (VMM_ACCEL_KVM);
  l.vcpus = 0;
  assert_null (vmm_qemu_ops.argv (&l, &err));
  l = launch (VMM_ACCEL_KVM);
  l.mem_bytes = 1 << 20;
  assert_null (vmm_qemu_ops.argv (&l, &err));
}

static void
test_lookup_and_accel (void **state)
{
  (void) state;
  assert_ptr_equal (vmm_lookup ("qemu-microvm"), &vmm_qemu_ops);
  assert_null (vmm_lookup ("firecracker"));
  assert_ptr_equal (rt_lookup ("microvm"), &rt_microvm_ops);
  assert_string_equal (rt_microvm_ops.name, "microvm");
  assert_non_null (rt_microvm_ops.adopt);

  setenv ("ORCH_VMM_ACCEL", "tcg", 1);
  vmm_accel_t a = VMM_ACCEL_KVM;
  orch_err_t err = { 0 };
  assert_int_equal (vmm_accel_detect (&a, &err), 0);
  assert_int_equal (a, VMM_ACCEL_NONE);
  unsetenv ("ORCH_VMM_ACCEL");
  assert_string_equal (vmm_accel_name (VMM_ACCEL_KVM), "kvm");
  assert_string_equal (vmm_accel_name (VMM_ACCEL_NONE), "tcg");
}

static void
test_reserve (void **state)
{
  (void) state;
  /* TCG's translation cache costs more than KVM; more vCPUs cost more. */
  int64_t kvm1 = vmm_qemu_ops.reserve (VMM_ACCEL_KVM, 1);
  int64_t tcg1 = vmm_qemu_ops.reserve (VMM_ACCEL_NONE, 1);
  assert_true (kvm1 >= (32LL << 20));
  assert_true (tcg1 > kvm1);
  assert_true (vmm_qemu_ops.reserve (VMM_ACCEL_KVM, 4) > kvm1);
}

static void
test_owns (void **state)
{
  (void) state;
  /* This test process is no QEMU: adoption must not take it over. */
  assert_false (vmm_qemu_ops.owns (getpid (), "/"));
  assert_false (vmm_qemu_ops.owns (999999999, "/"));
}

/* A cgroup manager that only counts what the runtime asks of it. */
static int fake_creates;

static int
fake_create (cg_manager_t *m, const char *name, const cg_limits_t *lim, orch_err_t *err)
{
  (void) m;
  (void) name;
  (void) lim;
  (void) err;
  fake_creates++;
  return 0;
}

static void
test_start_refusals (void **state)
{
  (void) state;
  char tmpl[] = "/tmp/orch-test-vm.XXXXXX";
  char *dir = mkdtemp (tmpl);
  assert_non_null (dir);
  cg_ops_t ops = { .name = "fake", .create = fake_create };
  cg_manager_t cg = { .ops = &ops };
  rt_env_t env = { .state_dir = dir, .cg = &cg };
  char *cmd[] = { "/bin/true", NULL };
  orch_spec_t spec = { 0 };
  spec.command = cmd;
  spec.cpu_milli = 500;
  spec.memory_bytes = 32 << 20;
  rt_alloc_t a = {
    .alloc_id = "a1", .spec = &spec, .rootfs = dir, .alloc_dir = dir, .log_path = "/dev/null"
  };
  rt_proc_t p = { 0 };
  orch_err_t err = { 0 };
  unsetenv ("ORCH_GUEST_KERNEL_DIR");

  /* Too little memory for a guest kernel: refused, with the figure. */
  assert_true (rt_microvm_ops.start (&env, &a, &p, &err) < 0);
  assert_int_equal (err.code, EINVAL);
  assert_non_null (strstr (err.msg, "32 MiB"));

  /* No guest kernel fetched: refused, saying how to get one. */
  spec.memory_bytes = 128 << 20;
  memset (&err, 0, sizeof err);
  assert_true (rt_microvm_ops.start (&env, &a, &p, &err) < 0);
  assert_non_null (strstr (err.msg, "fetch-guest-kernel.sh"));
  memset (&err, 0, sizeof err);
  assert_true (rt_microvm_ops.probe (&env, &err) < 0 || geteuid () != 0);

  /* An allocation id that is not a name. */
  a.alloc_id = "../x";
  assert_true (rt_microvm_ops.start (&env, &a, &p, &err) < 0);
  assert_int_equal (fake_creates, 0);
  assert_int_equal (p.pid, 0);
  orch_rm_rf (dir);
}

static const struct CMUnitTest tests[] = {
  cmocka_unit_test (test_qemu_argv_kvm),
  cmocka_unit_test (test_qemu_argv_tcg),
  cmocka_unit_test (test_qemu_argv_channels),
  cmocka_unit_test (test_qemu_argv_refuses),
  cmocka_unit_test (test_lookup_and_accel),
  cmocka_unit_test (test_reserve),
  cmocka_unit_test (test_owns),
  cmocka_unit_test (test_start_refusals),
};

ORCH_TEST_MAIN (tests)
