orch_unit_test(test_place SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_place.c LIBS orch_place)

# The benchmark's output checked by an independent program (place_check):
# on a hand-written fixture, and on a synthetic cluster it writes out.
set(_pf ${PROJECT_SOURCE_DIR}/tests/fixtures/place)
set(_pd ${CMAKE_CURRENT_BINARY_DIR}/place_check)
add_test(NAME place_check.fixture
  COMMAND sh -c "mkdir -p ${_pd} && $<TARGET_FILE:place_bench> --nodes-csv ${_pf}/nodes.csv --workloads-csv ${_pf}/workloads.csv --placements-out ${_pd}/fx.csv --baseline-out ${_pd}/fx-ff.csv && $<TARGET_FILE:place_check> --nodes-csv ${_pf}/nodes.csv --workloads-csv ${_pf}/workloads.csv --placements ${_pd}/fx.csv --allow-unplaced 1 && $<TARGET_FILE:place_check> --nodes-csv ${_pf}/nodes.csv --workloads-csv ${_pf}/workloads.csv --placements ${_pd}/fx-ff.csv")
add_test(NAME place_check.synthetic
  COMMAND sh -c "mkdir -p ${_pd} && $<TARGET_FILE:place_bench> --nodes 400 --workloads 6000 --seed 3 --fill 0.8 --inputs-out ${_pd}/syn --placements-out ${_pd}/syn.csv --baseline-out ${_pd}/syn-ff.csv && $<TARGET_FILE:place_check> --nodes-csv ${_pd}/syn-nodes.csv --workloads-csv ${_pd}/syn-workloads.csv --placements ${_pd}/syn.csv && $<TARGET_FILE:place_check> --nodes-csv ${_pd}/syn-nodes.csv --workloads-csv ${_pd}/syn-workloads.csv --placements ${_pd}/syn-ff.csv")
# Bad CSV rows are refused with a message naming the line, not used.
foreach(_bad workloads_zero_memory:memory_mib.is.zero workloads_missing_cpu:cpu_milli.is.missing
        workloads_no_memory_column:header.lacks.column.memory_mib)
  string(REPLACE ":" ";" _p ${_bad})
  list(GET _p 0 _f)
  list(GET _p 1 _re)
  add_test(NAME place_check.refuses_${_f}
    COMMAND $<TARGET_FILE:place_bench> --nodes 10 --workloads-csv ${_pf}/${_f}.csv)
  set_tests_properties(place_check.refuses_${_f} PROPERTIES WILL_FAIL FALSE
    PASS_REGULAR_EXPRESSION "${_re}")
endforeach()
add_test(NAME place_check.refuses_nodes_zero_cpu
  COMMAND $<TARGET_FILE:place_bench> --nodes-csv ${_pf}/nodes_zero_cpu.csv --workloads 10)
set_tests_properties(place_check.refuses_nodes_zero_cpu PROPERTIES
  PASS_REGULAR_EXPRESSION "nodes_zero_cpu.csv:2: cpu_milli is zero")
set_tests_properties(place_check.fixture place_check.synthetic PROPERTIES TIMEOUT 120 LABELS unit)
