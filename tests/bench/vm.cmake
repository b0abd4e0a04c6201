# The microVM boot benchmark (issue 5): bare QEMU boot vs the runtime's
# start to first output, under KVM and TCG. Built by default, not run by
# ctest; tests/bench/vm_boot_bench.sh sets it up and runs it.
add_executable(vm_boot_bench ${CMAKE_CURRENT_SOURCE_DIR}/vm_boot_bench.c)
target_link_libraries(vm_boot_bench PRIVATE orch_rt orch_image orch_host_check)
