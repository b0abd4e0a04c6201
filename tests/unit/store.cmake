# The scheduler's state store (scheduler/store_*.c): the etcd encoding, the
# in-memory backend, and store_etcd_check, the program that
# tests/integration/test_store_etcd.sh runs against a real etcd.
orch_unit_test(test_etcd_json
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_etcd_json.c
  LIBS orch_store)
orch_unit_test(test_store_mem
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_store_mem.c
  LIBS orch_store)

add_executable(store_etcd_check ${PROJECT_SOURCE_DIR}/tests/integration/store_etcd_check.c)
target_link_libraries(store_etcd_check PRIVATE orch_store)
