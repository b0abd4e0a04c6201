# The container runtime's host check.

# rt_check is not a unit test: it needs root, cgroups and a busybox image
# (tests/integration/test_runtime.sh runs it).
add_executable(rt_check ${PROJECT_SOURCE_DIR}/tests/integration/rt_check.c)
target_link_libraries(rt_check PRIVATE orch_rt orch_host_check)

# What the runtimes share: exit records, the adopt state file, /etc files.
orch_unit_test(test_rt_common SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_rt_common.c LIBS orch_rt)
