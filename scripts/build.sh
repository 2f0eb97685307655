#!/usr/bin/env bash
# Configures (once) and builds Queue into a build directory with Ninja, two jobs
# at a time. Usage: scripts/build.sh BUILD_DIR [-DOPTION=VALUE...] [-- TARGET...]
# Quiet when all goes well; shows CMake's output when configuring fails.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${1:?usage: scripts/build.sh BUILD_DIR [-DOPTION=VALUE...] [-- TARGET...]}
shift
cmake_args=()
while (($# > 0)) && [[ "$1" != -- ]]; do
  cmake_args+=("$1")
  shift
done
(($# > 0)) && shift  # the --
targets=("$@")

# A build directory keeps the generator it was made with; only a new one gets -G.
[[ -f "$build_dir/CMakeCache.txt" ]] || cmake_args+=(-G Ninja)
log=$(mktemp "${TMPDIR:-/tmp}/queue-cmake.XXXXXX")
trap 'rm -f "$log"' EXIT
if ! cmake -S "$repo" -B "$build_dir" "${cmake_args[@]}" >"$log" 2>&1; then
  cat "$log" >&2
  echo "build: configuring $build_dir FAILED" >&2
  exit 1
fi
cmake --build "$build_dir" --parallel "${QUEUE_BUILD_JOBS:-2}" ${targets[@]+--target "${targets[@]}"}
