#!/usr/bin/env bash
# Installs the Debian 12 packages Queue needs to build, test, fuzz and run.
# Idempotent: installs only what is missing, and refreshes the package lists
# only then. Quiet when all goes well; shows apt's output when it fails.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config      # toolchain
  libasio-dev libssl-dev libsqlite3-dev             # event loop, TLS, spool
  nlohmann-json3-dev libcli11-dev                   # status JSON, option parsing
  libsystemd-dev systemd                            # sd_notify; systemd-analyze verifies packaging/queued.service
  libgtest-dev libgmock-dev libbenchmark-dev        # tests and bench/
  iproute2 procps tmux                              # ss, ps/pgrep, pty tests
  python3 bsdutils util-linux                       # examples/counter.py, script(1), setpriv
  rsync git parallel mpich libmpich-dev             # programs the qsh tests drive (ssh drop-in)
  clang libclang-rt-14-dev                          # fuzz/ and clang sanitizers
  groff-base debootstrap                            # man/ pages rendered; the package test's clean root
  libmicrohttpd-dev                                 # queued --metrics (HTTP)
  prometheus                                        # metrics tests: a real scrape, and promtool
  serf libmsgpack-cxx-dev                           # large clusters: membership by Serf's agent, its RPC in msgpack
)

is_installed() {
  [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" == installed ]]
}

missing=()
for p in "${packages[@]}"; do
  is_installed "$p" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages are installed"
  exit 0
fi

as_root=()
if ((EUID != 0)); then
  if ! command -v sudo >/dev/null; then
    echo "install-deps: missing packages: ${missing[*]}" >&2
    echo "install-deps: not root and no sudo: install them as root, then run this again" >&2
    exit 1
  fi
  as_root=(sudo)
fi

log=$(mktemp "${TMPDIR:-/tmp}/install-deps.XXXXXX")
trap 'rm -f "$log"' EXIT
run_quietly() {
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    echo "install-deps: FAILED: $*" >&2
    exit 1
  fi
}

echo "install-deps: installing ${missing[*]}"
# Packages that ship a service (prometheus) must not start it: the tests run
# their own, on ports of their own. invoke-rc.d and deb-systemd-invoke ask
# policy-rc.d; one is put in place for the install when there is none.
policy=/usr/sbin/policy-rc.d
own_policy=false
if [[ ! -e "$policy" ]]; then
  printf '#!/bin/sh\n# install-deps.sh: no service starts while it installs\nexit 101\n' |
    "${as_root[@]}" tee "$policy" >/dev/null
  "${as_root[@]}" chmod 755 "$policy"
  own_policy=true
fi
remove_own_policy() { if $own_policy; then "${as_root[@]}" rm -f "$policy"; fi; rm -f "$log"; }
trap remove_own_policy EXIT
run_quietly "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
run_quietly "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -q --no-install-recommends "${missing[@]}"
for p in "${missing[@]}"; do
  if ! is_installed "$p"; then
    echo "install-deps: FAILED: $p is still not installed" >&2
    exit 1
  fi
done
echo "install-deps: installed ${#missing[@]} package(s)"
