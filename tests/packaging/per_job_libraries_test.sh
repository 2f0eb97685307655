#!/bin/sh
# queue and queue-shepherd start once per job, so every shared library they
# load is on every job's path (mapping and relocating libsystemd's seven
# libraries took 1.4 ms of CPU per start). They need libc and OpenSSL only;
# this fails when a build makes them load anything else, as a unity build of
# the library once did (see the top-level CMakeLists.txt).
# Usage: per_job_libraries_test.sh BIN_DIR
set -u
bin=${1:?usage: per_job_libraries_test.sh BIN_DIR}
command -v ldd >/dev/null || { echo "ldd is missing"; exit 1; }
status=0
for program in queue queue-shepherd; do
  [ -x "$bin/$program" ] || { echo "$bin/$program is missing"; status=1; continue; }
  extra=$(ldd "$bin/$program" | awk '{print $1}' |
    grep -v -E '^(linux-vdso\.so\.[0-9]+|/lib[0-9]*/ld-linux[-a-z0-9_.]*\.so\.[0-9]+|libc\.so\.6|libssl\.so\.3|libcrypto\.so\.3)$')
  if [ -n "$extra" ]; then
    echo "$program loads more than libc and OpenSSL:" $extra
    status=1
  else
    echo "$program: $(ldd "$bin/$program" | awk '{print $1}' | tr '\n' ' ')"
  fi
done
exit $status
