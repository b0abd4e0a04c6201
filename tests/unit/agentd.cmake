# orch-agent daemon (agent/agent_*.c): flags, restart/reconnect policy,
# reconciliation, capacity, log tails, the supervisor against a fake runtime,
# and the scheduler session against an in-process fake scheduler.
orch_unit_test(test_agent_flags SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_agent_flags.c
  LIBS orch_agentlib)
orch_unit_test(test_agent_policy SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_agent_policy.c
  LIBS orch_agentlib)
orch_unit_test(test_agent_logs SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_agent_logs.c
  LIBS orch_agentlib)
orch_unit_test(test_agent_sup SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_agent_sup.c
  LIBS orch_agentlib)
orch_unit_test(test_agent_session SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_agent_session.c
  LIBS orch_agentlib)
# The session test runs one case with the real container runtime, whose pid 1
# is the orch-init built here.
if(TARGET test_agent_session)
  add_dependencies(test_agent_session orch-init)
  target_compile_definitions(test_agent_session PRIVATE ORCH_INIT_BIN="$<TARGET_FILE:orch-init>")
endif()
# Pulls and GC through the orch-image helper, with a script standing in.
find_package(Threads REQUIRED)
orch_unit_test(test_agent_image SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_agent_image.c
  LIBS orch_agentlib Threads::Threads)
