#!/usr/bin/env bash
# The Debian package, end to end: builds it with CPack from BUILD_DIR, makes a
# clean Debian 12 (debootstrap --variant=minbase bookworm, from the mirror
# this machine's apt uses), installs the package there with apt-get, starts
# queued with its systemd unit's ExecStart (systemd cannot be PID 1 here),
# and runs an interactive and a batch job through it as an ordinary user.
# Also checks what the maintainer scripts promise: conffiles, a cluster key
# of mode 0600 that a reinstall keeps, the hosts file, the profile links.
#
# The chroot runs in namespaces of its own (mount, PID, UTS): its mounts are
# invisible outside and go when it ends, and every process started in it
# (queued, shepherds, jobs) is killed by the kernel when the test's PID 1 in
# there exits, whatever the way out. Its host name is made up and resolves to
# a loopback address, so queued listens on loopback only.
#
# A clean root is cached as a tarball in QUEUE_DEB_TEST_CACHE (default
# ~/.cache/queue-deb-test) between local runs; CI's first run makes it.
# Needs root, debootstrap and unshare (scripts/install-deps.sh).
# Usage: deb_test.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: deb_test.sh BUILD_DIR}
build=$(cd "$build" && pwd)

say() { echo "deb_test: $*"; }
die() {
  echo "deb_test: FAIL: $*" >&2
  exit 1
}

((EUID == 0)) || die "needs root (debootstrap, chroot, namespaces)"
for tool in debootstrap unshare chroot cpack dpkg-deb; do
  command -v "$tool" >/dev/null || die "$tool is not installed (scripts/install-deps.sh installs it)"
done

# The Debian mirror apt uses here: the first deb source of bookworm in
# /etc/apt/sources.list or /etc/apt/sources.list.d (one-line or deb822).
apt_mirror() {
  local file
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -r $file ]] || continue
    # deb [options] URI SUITE COMPONENTS...
    awk '$1 == "deb" { i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                       if ($(i + 1) == "bookworm") { print $i; exit } }' "$file"
  done
  for file in /etc/apt/sources.list.d/*.sources; do
    [[ -r $file ]] || continue
    # Paragraphs of "Field: value" lines; one with Types deb and Suites bookworm.
    awk 'function flush() { if (types ~ /(^| )deb( |$)/ && suites ~ /(^| )bookworm( |$)/ && uris != "") {
                              split(uris, u, " "); print u[1]; found = 1 }
                            types = suites = uris = "" }
         /^#/ { next }
         /^[[:space:]]*$/ { flush(); if (found) exit; next }
         tolower($1) == "types:"  { $1 = ""; types = $0 }
         tolower($1) == "suites:" { $1 = ""; suites = $0 }
         tolower($1) == "uris:"   { $1 = ""; uris = $0 }
         END { if (!found) flush() }' "$file"
  done
}
mirror=$(apt_mirror | head -n 1)
[[ -n $mirror ]] || die "no bookworm deb source in /etc/apt/sources.list*; cannot tell debootstrap a mirror"

work=$(mktemp -d /var/tmp/queue-deb-test.XXXXXX)
trap 'rm -rf --one-file-system "$work"' EXIT
root=$work/root

# ---- the package ----
say "building the package (cpack -G DEB) from $build"
cpack -G DEB -B "$work/pkg" --config "$build/CPackConfig.cmake" >"$work/cpack.log" 2>&1 ||
  { cat "$work/cpack.log" >&2; die "cpack failed"; }
deb=$(find "$work/pkg" -maxdepth 1 -name 'queue_*.deb' | head -n 1)
[[ -n $deb ]] || { cat "$work/cpack.log" >&2; die "cpack made no queue_*.deb"; }
say "built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"
dpkg-deb --info "$deb" >"$work/info"
dpkg-deb --contents "$deb" >"$work/contents"
grep -E '^ Depends:.*libc6' "$work/info" >/dev/null || { cat "$work/info"; die "Depends was not computed (no libc6)"; }
grep -E '^ Depends:.*libssl3' "$work/info" >/dev/null || { cat "$work/info"; die "Depends lacks libssl3"; }
for path in ./usr/bin/queue ./usr/bin/qsh ./usr/sbin/queued ./usr/lib/queue/queue-shepherd \
  ./usr/share/man/man1/queue.1.gz ./usr/share/man/man1/qsh.1.gz ./usr/share/man/man8/queued.8.gz \
  ./usr/share/man/man5/queue-profile.5.gz ./usr/share/man/man5/queued.conf.5.gz \
  ./usr/share/bash-completion/completions/queue ./usr/share/bash-completion/completions/qsh \
  ./etc/queue/profiles/now ./etc/queue/profiles/wait ./etc/queue/queued.conf \
  ./etc/logrotate.d/queued ./lib/systemd/system/queued.service; do
  grep -qE " ${path//./\\.}( |$)" "$work/contents" ||
    { cat "$work/contents"; die "the package lacks $path (packaging/CMakeLists.txt installs it when its source exists)"; }
done

# ---- a clean Debian 12 ----
cache=${QUEUE_DEB_TEST_CACHE:-$HOME/.cache/queue-deb-test}
tarball=$cache/bookworm-minbase.tar
mkdir -p "$root"
if [[ -r $tarball ]]; then
  say "clean root from the cache $tarball"
  tar -xpf "$tarball" -C "$root" || die "cannot unpack $tarball (remove it to make a new one)"
else
  say "debootstrap --variant=minbase bookworm from $mirror"
  started=$SECONDS
  debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
  say "debootstrap took $((SECONDS - started)) s"
  mkdir -p "$cache"
  tar -cpf "$tarball.tmp" -C "$root" . && mv "$tarball.tmp" "$tarball" || rm -f "$tarball.tmp"
fi
cp "$deb" "$root/tmp/"

# ---- inside: namespaces of its own ----
cat >"$work/inside.sh" <<'INSIDE'
set -euo pipefail
root=$1 deb=/tmp/$2 logs=$3
say() { echo "deb_test: $*"; }
die() { echo "deb_test: FAIL: $*" >&2; exit 1; }
in_root() { chroot "$root" "$@"; }

# A made-up host name on a loopback address: queued's default --listen and
# the hosts file postinst writes both name it.
hostname queue-deb-test
# debootstrap writes no /etc/hosts; the installer of a real system would.
printf '127.0.0.1 localhost\n127.0.1.1 queue-deb-test\n' >>"$root/etc/hosts"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o mode=0755 tmpfs "$root/run"
cp /etc/resolv.conf "$root/etc/resolv.conf"

say "apt-get install ./$(basename "$deb") in the chroot"
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
in_root apt-get update -q >"$logs/apt.log" 2>&1 || { cat "$logs/apt.log"; die "apt-get update failed"; }
in_root apt-get install -y -q --no-install-recommends "$deb" >>"$logs/apt.log" 2>&1 ||
  { cat "$logs/apt.log"; die "apt-get install of the package failed"; }

# What postinst made.
[[ "$(stat -c %a "$root/etc/queue/cluster.key")" == 600 ]] || die "cluster.key is not mode 0600"
[[ "$(cat "$root/etc/queue/hosts")" == queue-deb-test:1421 ]] || die "the hosts file is not this host: $(cat "$root/etc/queue/hosts")"
[[ "$(readlink "$root/var/spool/queue/now/profile")" == /etc/queue/profiles/now ]] || die "the now profile is not linked"
conffiles=$(in_root dpkg-query -W -f='${Conffiles}\n' queue)
for f in /etc/queue/queued.conf /etc/queue/profiles/now /etc/queue/profiles/wait /etc/logrotate.d/queued; do
  grep -q "^ $f " <<<"$conffiles" || die "$f is not a conffile: $conffiles"
done
key_before=$(sha256sum <"$root/etc/queue/cluster.key")
in_root apt-get install -y -q --reinstall "$deb" >>"$logs/apt.log" 2>&1 || die "reinstalling failed"
[[ "$(sha256sum <"$root/etc/queue/cluster.key")" == "$key_before" ]] || die "a reinstall replaced the cluster key"
[[ "$(stat -c %a "$root/etc/queue/cluster.key")" == 600 ]] || die "cluster.key lost mode 0600 on reinstall"

# queued as systemd would start it: the unit's ExecStart (its prefixes - @ : + !
# dropped), after making its RuntimeDirectory.
unit=$root/lib/systemd/system/queued.service
execstart=$(sed -n 's/^ExecStart=[-@:+!]*//p' "$unit" | tail -n 1)
[[ -n $execstart ]] || die "no ExecStart in $unit"
runtime=$(sed -n 's/^RuntimeDirectory=//p' "$unit" | tail -n 1)
for dir in $runtime; do install -d -m 0755 "$root/run/$dir"; done
say "starting queued: $execstart"
in_root /bin/sh -c "exec $execstart" >"$logs/queued.log" 2>&1 &
answered=0
for _ in $(seq 1 300); do
  if in_root queue --status >/dev/null 2>&1; then answered=1; break; fi
  sleep 0.1
done
((answered)) || { cat "$logs/queued.log" "$root/var/spool/queue/queued.log" 2>/dev/null; die "queued did not answer within 30 s"; }

# The jobs of an ordinary user (root's are refused without allowroot).
in_root useradd --create-home --shell /bin/sh qtest
as_user() { in_root setpriv --reuid=qtest --regid=qtest --init-groups env HOME=/home/qtest USER=qtest sh -c "cd && $1"; }
out=$(as_user 'queue -i -w -- echo hello </dev/null' 2>&1) || die "queue -i -w -- echo hello failed: $out"
[[ $out == hello ]] || die "the interactive job printed '$out', not hello"
say "interactive job: $out"
id=$(as_user 'queue -r -j batch -- sh -c "echo batch on \$QUEUE_HOST"' 2>&1) || die "queue -r failed: $id"
file=$root/home/qtest/batch.o$id
for _ in $(seq 1 300); do
  [[ -s $file ]] && break
  sleep 0.1
done
[[ -s $file ]] || { as_user 'queue --jobs --all' || true; die "the batch job $id left no output file batch.o$id within 30 s"; }
[[ "$(cat "$file")" == "batch on queue-deb-test:1421" ]] || die "the batch output is '$(cat "$file")'"
say "batch job $id: $(cat "$file")"
say "passed"
INSIDE

say "installing and running in the chroot"
# --kill-child: should this shell die, the kernel kills everything in there.
unshare --mount --pid --uts --fork --propagation private --kill-child \
  bash "$work/inside.sh" "$root" "$(basename "$deb")" "$work"
