# orch-scheduler's logic (scheduler/sched_*.c) over the in-memory store,
# driven over loopback TCP by a fake orchctl and fake agents.
orch_unit_test(test_sched
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_sched.c ${CMAKE_CURRENT_SOURCE_DIR}/sched_test_util.c
  LIBS orch_schedlib)
