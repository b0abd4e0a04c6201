# The container runtime's start latency side by side with crun, runc and a
# bare clone + pivot_root launcher (tests/bench/start_bench.c), and the
# density run (tests/bench/density.sh, a script: nothing to build). Built by
# default, never run by ctest: it needs root and takes a minute. Run it as
#   sudo build/tests/bench/start_bench [-n 50] [--json]
add_executable(start_bench ${CMAKE_CURRENT_SOURCE_DIR}/start_bench.c)
find_package(Threads REQUIRED)
target_link_libraries(start_bench PRIVATE orch_rt orch_host_check Threads::Threads)
target_compile_definitions(start_bench PRIVATE ORCH_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
