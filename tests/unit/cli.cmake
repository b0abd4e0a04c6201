# orchctl: argument parsing, requests and output against a scripted scheduler
# (test_cli_cmd), exact tables and JSON (test_cli_format), and the protocol
# client against a real socket (test_cli_client).
orch_unit_test(test_cli_format
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_cli_format.c
  LIBS orch_cli)
orch_unit_test(test_cli_cmd
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_cli_cmd.c
  LIBS orch_cli)
target_compile_definitions(test_cli_cmd PRIVATE ORCH_VERSION_FOR_TEST="${PROJECT_VERSION}")
find_package(Threads REQUIRED)
orch_unit_test(test_cli_client
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_cli_client.c
  LIBS orch_cli Threads::Threads)
