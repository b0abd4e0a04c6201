# The image store (cmocka) and the container runtime's host check.
orch_unit_test(test_image SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_image.c LIBS orch_image)

# rt_check is not a unit test: it needs root, cgroups and a busybox image
# (tests/integration/test_runtime.sh runs it).
add_executable(rt_check ${PROJECT_SOURCE_DIR}/tests/integration/rt_check.c)
target_link_libraries(rt_check PRIVATE orch_rt)
