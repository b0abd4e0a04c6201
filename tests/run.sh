#!/usr/bin/env bash
# Installs what is missing, builds orch and runs every test through ctest:
# unit tests, integration tests with real etcd, scheduler, agents,
# namespaces and cgroups, and the unit tests again under ASan+UBSan.
#
#   sudo tests/run.sh              everything
#   sudo tests/run.sh --quick      skip the sanitizer pass
#   ORCH_CTEST_ARGS="-R wire" sudo tests/run.sh    pass arguments to ctest
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${ORCH_BUILD_DIR:-$ROOT/build}
ASAN_BUILD=${ORCH_ASAN_BUILD_DIR:-$ROOT/build-asan}
quick=0
[ "${1:-}" = "--quick" ] && quick=1

if [ "$(id -u)" -ne 0 ]; then
  echo "tests/run.sh: run as root: the integration tests need namespaces and cgroups" >&2
  exit 1
fi

ORCH_WITH_TEST_DEPS=1 "$ROOT/deploy/install-deps.sh"

jobs=$(nproc)
echo "==> build ($BUILD, -Werror)"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DORCH_WERROR=ON >/dev/null
cmake --build "$BUILD" -j"$jobs"

echo "==> tests"
# shellcheck disable=SC2086
(cd "$BUILD" && ctest --output-on-failure --timeout 600 -j"$jobs" ${ORCH_CTEST_ARGS:-})

if [ $quick -eq 0 ]; then
  echo "==> unit tests under AddressSanitizer + UndefinedBehaviorSanitizer ($ASAN_BUILD)"
  cmake -S "$ROOT" -B "$ASAN_BUILD" -DCMAKE_BUILD_TYPE=Debug -DORCH_WERROR=ON -DORCH_SANITIZE=ON >/dev/null
  cmake --build "$ASAN_BUILD" -j"$jobs"
  (cd "$ASAN_BUILD" && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
     ctest --output-on-failure -L unit -j"$jobs")
fi
