# cgroup manager (agent/cg_*.c): layout detection, parsers, and the v1 and v2
# backends on copies of fake cgroup trees (tests/fixtures/cgroup).
orch_unit_test(test_cgroup SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_cgroup.c LIBS orch_rt)

# cg_check is not a unit test: it needs root and real cgroups
# (tests/integration/test_cgroup_host.sh runs it).
add_executable(cg_check ${PROJECT_SOURCE_DIR}/tests/integration/cg_check.c)
target_link_libraries(cg_check PRIVATE orch_rt)
