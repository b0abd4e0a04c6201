# The placement engine's benchmark and the independent checker of its
# output: built by default, never run by ctest as benchmarks (the checker
# runs on fixtures from tests/unit/place.cmake).
add_library(place_bench_input STATIC ${CMAKE_CURRENT_SOURCE_DIR}/place_input.c)
target_link_libraries(place_bench_input PUBLIC orch_place m)
add_executable(place_bench ${CMAKE_CURRENT_SOURCE_DIR}/place_bench.c)
target_link_libraries(place_bench PRIVATE place_bench_input)
add_executable(place_check ${CMAKE_CURRENT_SOURCE_DIR}/place_check.c)
target_link_libraries(place_check PRIVATE place_bench_input)
