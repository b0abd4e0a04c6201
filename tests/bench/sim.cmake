# cluster_sim: a load generator that drives the real orch-scheduler and a real
# etcd with N simulated agents over TCP (issue 3's second benchmark). Built by
# default, never run by ctest: it needs etcd and takes seconds. Run it as
#   build/tests/bench/cluster_sim --scheduler build/bin/orch-scheduler [--json]
find_package(Threads REQUIRED)
add_executable(cluster_sim ${CMAKE_CURRENT_SOURCE_DIR}/cluster_sim.c)
target_link_libraries(cluster_sim PRIVATE orch_wire orch_common PkgConfig::CURL
                      PkgConfig::JANSSON PkgConfig::UV Threads::Threads)
