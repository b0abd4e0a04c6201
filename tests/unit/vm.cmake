# The microvm runtime's host check. vm_check is not a unit test: it needs
# root, QEMU, a guest kernel and a busybox image
# (tests/integration/test_microvm.sh runs it, under KVM and under TCG).
add_executable(vm_check ${PROJECT_SOURCE_DIR}/tests/integration/vm_check.c)
# It imports its busybox image itself: the store's writing half too.
target_link_libraries(vm_check PRIVATE orch_rt orch_image orch_host_check)

# The QEMU command line, lookups and the runtime's refusals: no root, no QEMU.
orch_unit_test(test_vm SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_vm.c LIBS orch_rt)
