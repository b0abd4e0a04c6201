# Node network (agent/net_*.c): subnet parsing, the address allocator and
# its lease files, link names and nftables rule text. No root needed.
orch_unit_test(test_net SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_net.c LIBS orch_rt)

# net_check is not a unit test: it needs root, network namespaces and
# nftables (tests/integration/test_net.sh runs it).
add_executable(net_check ${PROJECT_SOURCE_DIR}/tests/integration/net_check.c)
target_link_libraries(net_check PRIVATE orch_rt orch_host_check)
