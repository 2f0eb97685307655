#!/usr/bin/env bash
# The second command, and what CI runs: installs what Queue needs, builds it
# into build/ and runs every test (unit and integration) with ctest, then does
# the same under AddressSanitizer + UBSan in build-asan/, and the unit tests
# under ThreadSanitizer in build-tsan/. Exits non-zero if any
# step fails; the last line sums up each step and its time.
# QUEUE_SKIP_SANITIZE=1 and QUEUE_SKIP_FUZZ=1 skip those passes (for quick local runs only).
set -uo pipefail
cd "$(dirname "$0")" || exit 1

summary=()
failures=0

# Runs one step, timing it; its status is the step's.
step() {
  local name=$1 started=$SECONDS status=0
  shift
  echo "=== test.sh: $name: $*"
  "$@" || status=$?
  local took=$((SECONDS - started))
  if ((status == 0)); then
    summary+=("$name ok ${took}s")
  else
    summary+=("$name FAILED ${took}s")
    failures=$((failures + 1))
  fi
  echo "=== test.sh: $name: $([[ $status == 0 ]] && echo ok || echo "FAILED (exit $status)") in ${took}s"
  return "$status"
}

finish() {
  local steps
  steps=$(printf '%s, ' "${summary[@]}")
  steps=${steps%, }
  if ((failures == 0)); then
    echo "test.sh: PASSED in ${SECONDS}s ($steps)"
  else
    echo "test.sh: FAILED ($failures step(s)) in ${SECONDS}s ($steps)"
  fi
  exit $((failures > 0))
}

# A test that hangs fails after this long instead of holding CI; --no-tests=error
# turns a build that registered no tests into a failure rather than a pass.
ctest_args=(--output-on-failure --timeout 300 --no-tests=error)
# Unit tests keep a core busy each: two at a time (CI has two cores).
# Integration tests mostly wait for daemons and timers, each test with
# loopback addresses of its own: six at a time, on two cores, plain or under
# ASan (eight was no faster). tests/integration/test_properties.cmake keeps
# apart those that cannot run beside others. QUEUE_INTEGRATION_JOBS=1 runs
# them one at a time.
integration_jobs=${QUEUE_INTEGRATION_JOBS:-6}

# The tests of build directory $1: those not labelled integration (the unit
# tests; in the plain build only the manuals' and completion's tests), then
# the integration tests, as steps named $2 and $3.
#
# An integration test that fails is run once more before the step fails:
# dozens of daemons' timers on two busy cores make a rare timing miss likelier
# than on a quiet machine, and one such miss kept whole sessions' work from
# landing. Every first failure stays in the log, and the step's last line
# names the tests that needed a second run, so a flaky test is seen, not hidden.
run_tests() {
  step "$2" ctest --test-dir "$1" -LE integration -j2 "${ctest_args[@]}"
  step "$3" integration_ctest "$1" "$3"
}

# ctest over the integration tests of build directory $1, each failure run
# once more; says which tests failed a first time (step $2).
integration_ctest() {
  local log status retried
  log=$(mktemp)
  ctest --test-dir "$1" -L integration -j"$integration_jobs" --repeat until-pass:2 "${ctest_args[@]}" 2>&1 |
    tee "$log"
  status=${PIPESTATUS[0]}
  retried=$(grep -E 'Test +#[0-9]+: .*(\*\*\*Failed|\*\*\*Timeout|\*\*\*Exception)' "$log" |
    sed -E 's/.*Test +#[0-9]+: ([^ ]+).*/\1/' | sort -u | tr '\n' ' ')
  rm -f "$log"
  [[ -n $retried ]] && echo "=== test.sh: $2: failed a first time: $retried"
  return "$status"
}

step deps scripts/install-deps.sh || finish
# CRIU (checkpointmode 1) is optional: without it the CRIU tests skip
# themselves and say why, so its failure is noted rather than counted.
if ! step criu scripts/install-criu.sh; then
  summary[-1]="criu unavailable"
  failures=$((failures - 1))
fi
# The plain (optimised) build: the programs, the integration tests (at full
# size: a GiB restart file, 500 jobs killed at random, the footprint
# measurements the sanitizers would distort), the Debian package, the manuals
# and the benchmarks' code. Its unit tests are not built: they run under
# ASan+UBSan and under TSan below, and compiling them a third time took a
# quarter of this build. (With QUEUE_SKIP_SANITIZE=1 they are built and run here.)
plain_unit_tests=OFF
[[ "${QUEUE_SKIP_SANITIZE:-0}" == 1 ]] && plain_unit_tests=ON
if step build scripts/build.sh build -DQUEUE_UNIT_TESTS=$plain_unit_tests; then
  run_tests build docs-tests integration-tests
fi
if [[ "${QUEUE_SKIP_SANITIZE:-0}" == 1 ]]; then
  summary+=("sanitizers skipped")
else
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
  # Debug (-O0 -g) compiles in about half the time of an optimised ASan build,
  # which keeps the whole script well inside CI's time on two cores. The
  # benchmarks are not run under the sanitizers, so they are not built there.
  if step asan-build scripts/build.sh build-asan -DQUEUE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DQUEUE_BENCH=OFF \
      -DQUEUE_UNIT_TESTS=ON; then
    run_tests build-asan asan-unit-tests asan-integration-tests
  fi
  # ThreadSanitizer over the unit tests of the modules that start threads
  # (tests/CMakeLists.txt, thread_tests: the daemon's worker thread, the
  # stub's output writer, the metrics server); the rest are single-threaded,
  # and compiling them for TSan took most of this step. Only thread_tests is
  # built, so only the tests labelled threads are run.
  if step tsan-build scripts/build.sh build-tsan -DQUEUE_TSAN=ON -DCMAKE_BUILD_TYPE=Debug -- thread_tests; then
    export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1}
    step tsan-tests ctest --test-dir build-tsan -L threads -j2 "${ctest_args[@]}"
  fi
fi
# Every parser of untrusted input under libFuzzer (clang, ASan+UBSan): a short
# run over the checked-in corpora and what it discovers, BUILD_TESTING off so
# only the fuzz targets are compiled.
if [[ "${QUEUE_SKIP_FUZZ:-0}" == 1 ]]; then
  summary+=("fuzz skipped")
elif step fuzz-build scripts/build.sh build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DQUEUE_FUZZ=ON \
    -DQUEUE_FUZZ_ONLY=ON -- wire_fuzz hosts_fuzz loadavg_fuzz profile_fuzz bundle_fuzz serf_fuzz; then
  step fuzz ctest --test-dir build-fuzz -L fuzz -j2 "${ctest_args[@]}"
fi
finish
