# The node-local image store.
orch_unit_test(test_image SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_image.c LIBS orch_image)
