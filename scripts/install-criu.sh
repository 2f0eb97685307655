#!/usr/bin/env bash
# Makes a working CRIU available for `checkpointmode 1` (transparent checkpoints),
# as /usr/local/sbin/criu. Does nothing if a criu in PATH, /usr/local/sbin or
# /usr/sbin already passes `criu check`.
#
# Why build it: Debian 12's own criu (3.17.1) cannot run on recent kernels;
# every command fails with "vdso: Unexpected rt vDSO area bounds" because the
# kernel has a [vvar_vclock] mapping that CRIU 3.17 does not know. Trixie's
# criu 4.1.1 binary needs glibc 2.38, so it cannot be installed on bookworm.
# Debian's own source of that same 4.1.1 (the orig tarball trixie builds from)
# builds on bookworm and works, so this fetches it pinned by SHA-256, builds
# only the criu binary and installs it beside, not over, /usr/sbin/criu.
# Plain http is enough: the checksum, not the transport, vouches for the file.
#
# Quiet when all goes well; shows apt's output, or the end of the build's,
# when that fails, and then exits non-zero with a one-line reason.
set -euo pipefail

criu_version=4.1.1
# Where: the pool of the Debian mirror this machine's apt uses (see debian_mirror).
source_path="pool/main/c/criu/criu_${criu_version}.orig.tar.xz"
source_sha256=f80a66cb3726bb2116266d4759ce3bcbfab7abdb6b6d430bf20dd41911717afe
target=/usr/local/sbin/criu

packages=(
  build-essential pkgconf curl xz-utils                  # toolchain, download
  libbsd-dev libcap-dev libgnutls28-dev libnet1-dev      # libraries criu links
  libnftables-dev libnl-3-dev libprotobuf-c-dev uuid-dev
  libprotobuf-dev protobuf-c-compiler protobuf-compiler  # criu's image format
  python3-protobuf
)

fail() {
  echo "install-criu: FAILED: $*" >&2
  exit 1
}

# The Debian archive this machine's apt is configured with (whatever mirror the
# site uses; its pool holds the source too): the first source apt-cache policy
# lists as Debian's own (o=Debian, l=Debian: not security, not a third party).
debian_mirror() {
  apt-cache policy 2>/dev/null | awk '
    /^ *[0-9]+ (https?|ftp|file):/ { url = $2; next }
    url != "" && /release / && /o=Debian,/ && /l=Debian,/ { print url; exit }
    { url = "" }'
}

as_root=()
if ((EUID != 0)); then
  command -v sudo >/dev/null || fail "not root and no sudo: run this as root"
  as_root=(sudo)
fi

# Every criu this host could use, each path once (/sbin is often /usr/sbin).
candidate_crius() {
  local path
  { type -ap criu || true; echo "$target"; echo /usr/sbin/criu; } | while read -r path; do
    if [[ -x "$path" ]]; then readlink -f "$path"; fi
  done | awk '!seen[$0]++'
}

# `criu check` needs root; it prints "Looks good." and exits 0 when usable.
criu_works() {
  "${as_root[@]}" "$1" check >/dev/null 2>&1
}

criu_version_of() {
  "$1" --version 2>/dev/null | awk '/^Version:/ { print $2 }'
}

while read -r criu; do
  if criu_works "$criu"; then
    echo "install-criu: criu $(criu_version_of "$criu") works here ($criu)"
    exit 0
  fi
done < <(candidate_crius)

workdir=$(mktemp -d "${TMPDIR:-/tmp}/install-criu.XXXXXX")
trap 'rm -rf "$workdir"' EXIT
log="$workdir/log"

# Runs a command with its output in $log, shown (the last lines of it) only on
# failure, then stops with `reason`.
run_quietly() {
  local reason=$1
  shift
  if ! "$@" >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    fail "$reason"
  fi
}

is_installed() {
  [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" == installed ]]
}

install_build_packages() {
  local missing=() p
  for p in "${packages[@]}"; do
    is_installed "$p" || missing+=("$p")
  done
  ((${#missing[@]} > 0)) || return 0
  echo "install-criu: installing ${missing[*]}"
  run_quietly "apt-get update" "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  run_quietly "apt-get install ${missing[*]}" "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
  for p in "${missing[@]}"; do
    is_installed "$p" || fail "$p is still not installed"
  done
}

fetch_source() {
  local tarball="$workdir/criu_${criu_version}.orig.tar.xz" actual
  mirror=$(debian_mirror)
  [[ -n "$mirror" ]] || fail "apt has no Debian archive configured to fetch criu's source from (apt-cache policy)"
  source_url="${mirror%/}/$source_path"
  curl -fsSL --retry 3 --connect-timeout 30 -o "$tarball" "$source_url" ||
    fail "could not download $source_url"
  actual=$(sha256sum "$tarball" | awk '{ print $1 }')
  [[ "$actual" == "$source_sha256" ]] ||
    fail "checksum mismatch for $source_url (got $actual, want $source_sha256)"
  tar -xJf "$tarball" -C "$workdir" || fail "could not unpack $tarball"
}

echo "install-criu: no working criu here; building criu $criu_version from Debian's source"
install_build_packages
fetch_source
srcdir="$workdir/criu-$criu_version"
[[ -d "$srcdir" ]] || fail "the tarball has no criu-$criu_version/ directory"
run_quietly "building criu $criu_version (make criu)" nice -n 10 make -C "$srcdir" -j"$(nproc)" criu
run_quietly "installing $target" "${as_root[@]}" install -m 0755 "$srcdir/criu/criu" "$target"
criu_works "$target" || fail "$target check does not pass: run '$target check' to see why"
echo "install-criu: installed criu $(criu_version_of "$target") as $target; criu check passes"
