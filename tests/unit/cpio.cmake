# The cpio "newc" writer of the microvm runtime's initramfs. The test reads
# its archives back with libarchive (the runtime itself does not link it).
orch_unit_test(test_cpio SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_cpio.c
               LIBS orch_rt PkgConfig::ARCHIVE)
