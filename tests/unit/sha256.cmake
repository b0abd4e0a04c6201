# Unit tests of the common library's SHA-256; OpenSSL is linked only here, as
# the reference the implementation is compared against.
orch_unit_test(test_sha256 SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_sha256.c LIBS orch_common PkgConfig::CRYPTO)
