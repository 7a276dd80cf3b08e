#!/usr/bin/env bash
# Runs the test suite once under each OpenBLAS kernel this CPU can execute
# (OPENBLAS_CORETYPE), to show that no test's verdict depends on which kernel OpenBLAS
# picks at run time: each kernel rounds a matrix product differently, and training amplifies
# a one-ulp difference into a different trajectory.
#
#   scripts/test-kernels.sh [KERNEL ...]     (default: every kernel the CPU supports)
#
# Uses the build `make test` uses (BUILD_FLAGS from the Makefile's environment, or the
# release build). Exits non-zero when any kernel's run fails, after running all of them.
set -uo pipefail
cd "$(dirname "$0")/.."
flags=${BUILD_FLAGS:--c release}
kernels=("$@")
if [ ${#kernels[@]} -eq 0 ]; then
  kernels=(Prescott Nehalem SandyBridge)
  grep -qw avx2 /proc/cpuinfo && kernels+=(Haswell Zen)
  grep -qw avx512f /proc/cpuinfo && kernels+=(SkylakeX)
  grep -qw avx512_bf16 /proc/cpuinfo && kernels+=(Cooperlake)
fi
# shellcheck disable=SC2086
swift build $flags --build-tests >/dev/null || exit 1
failed=()
log=$(mktemp)
for kernel in "${kernels[@]}"; do
  echo "== OPENBLAS_CORETYPE=$kernel"
  # shellcheck disable=SC2086
  OPENBLAS_CORETYPE=$kernel swift test $flags --skip-build >"$log" 2>&1 || failed+=("$kernel")
  grep -E '^(✘|✔ Test run|Test Suite .All tests. (passed|failed))' "$log"
done
rm -f "$log"
if [ ${#failed[@]} -gt 0 ]; then echo "failed under: ${failed[*]}"; exit 1; fi
echo "passed under every kernel: ${kernels[*]}"
