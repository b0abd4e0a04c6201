# Unit tests of the common library (errors, quantities, util, service spec).
orch_unit_test(test_quantity SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_quantity.c LIBS orch_common)
orch_unit_test(test_util SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_util.c LIBS orch_common)
orch_unit_test(test_spec SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_spec.c LIBS orch_common)
orch_unit_test(test_map SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_map.c LIBS orch_common)
# Running helper programs (orch_run.c); the cancel tests use a thread.
find_package(Threads REQUIRED)
orch_unit_test(test_run SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_run.c LIBS orch_common Threads::Threads)
