# The node-local image store.
orch_unit_test(test_image SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_image.c LIBS orch_image)

# registry_check is not a unit test: it pulls from a real docker-registry
# (tests/integration/test_registry.sh starts one and runs it).
add_executable(registry_check ${PROJECT_SOURCE_DIR}/tests/integration/registry_check.c)
target_link_libraries(registry_check PRIVATE orch_image)

# Pulls against a scripted registry on loopback (no docker-registry needed).
find_package(Threads REQUIRED)
orch_unit_test(test_image_pull SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_image_pull.c
               LIBS orch_image Threads::Threads)

# orch-image, the helper the agent runs for pulls and GC: its output and
# errors as the agent and operators see them.
orch_unit_test(test_image_cli SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_image_cli.c
               LIBS orch_common PkgConfig::JANSSON)
target_compile_definitions(test_image_cli PRIVATE ORCH_IMAGE_BIN="$<TARGET_FILE:orch-image>")
add_dependencies(test_image_cli orch-image)
