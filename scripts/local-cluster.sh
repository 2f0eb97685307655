#!/usr/bin/env bash
# Runs a personal one-host Queue cluster from this checkout's build, so that
# `queue -- cmd` can be tried at once. Everything lives in one directory:
#   ${QUEUE_HOME:-$HOME/.queue}/  cluster.key  hosts  spool/  queued.sock  queued.pid
# and the daemon listens on 127.0.0.1:${QUEUE_PORT:-14210}. The programs come from
# ${QUEUE_BIN_DIR:-build/bin} of this checkout.
#
# Usage: scripts/local-cluster.sh [start|stop|status]
#   start (default)  set up what is missing, (re)start queued, run a sample job
#   stop             stop this directory's queued (running jobs keep running)
#   status           queue --status against this directory's queued
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
home=${QUEUE_HOME:-$HOME/.queue}
port=${QUEUE_PORT:-14210}
bin=${QUEUE_BIN_DIR:-$repo/build/bin}
key=$home/cluster.key
hosts=$home/hosts
spool=$home/spool
socket=$home/queued.sock
pidfile=$home/queued.pid
log=$spool/queued.log
host=127.0.0.1:$port

say() { echo "local-cluster: $*"; }
die() {
  echo "local-cluster: $*" >&2
  exit 1
}

# Prints the PID from the pidfile if that process is alive and is the queued
# of this spool; a stale pidfile, or a recycled PID, prints nothing.
running_pid() {
  [[ -r "$pidfile" ]] || return 0
  local pid
  pid=$(tr -dc 0-9 <"$pidfile")
  [[ -n "$pid" && -r /proc/$pid/cmdline ]] || return 0
  local -a argv
  mapfile -d '' argv </proc/"$pid"/cmdline || return 0
  ((${#argv[@]} > 0)) || return 0
  [[ "$(basename "${argv[0]}")" == queued ]] || return 0
  local arg
  for arg in "${argv[@]}"; do
    if [[ "$arg" == "$spool" ]]; then
      echo "$pid"
      return 0
    fi
  done
}

stop_daemon() {
  local pid
  pid=$(running_pid)
  if [[ -z "$pid" ]]; then
    rm -f "$pidfile"
    say "no queued running for $home"
    return 0
  fi
  kill -TERM "$pid"
  local i
  for ((i = 0; i < 100; i++)); do
    [[ -d /proc/$pid ]] || break
    sleep 0.1
  done
  [[ -d /proc/$pid ]] && die "queued (pid $pid) did not stop within 10 s; see $log"
  rm -f "$pidfile"
  say "stopped queued (pid $pid)"
}

status_answers() {
  QUEUE_SOCKET=$socket "$bin/queue" --status >/dev/null 2>&1
}

wait_until_answering() {
  local i
  for ((i = 0; i < 100; i++)); do
    status_answers && return 0
    sleep 0.1
  done
  tail -n 20 "$log" >&2 || true
  die "queued did not answer on $socket within 10 s; its log is $log"
}

# A personal cluster that root owns runs root's jobs; queued refuses them
# unless the queue's profile says so.
allow_root_jobs() {
  ((EUID == 0)) || return 0
  local q profile changed=0
  for q in now wait; do
    profile=$spool/$q/profile
    [[ -f "$profile" ]] || continue
    grep -qx 'allowroot' "$profile" && continue
    printf '%s\n' \
      '# Added by scripts/local-cluster.sh: this personal cluster is owned by root,' \
      '# so it runs root'"'"'s jobs (queued refuses them without allowroot).' \
      'allowroot' >>"$profile"
    changed=1
  done
  if ((changed)); then
    kill -HUP "$(running_pid)"  # re-read the profiles now rather than at the next check
    wait_until_answering
  fi
}

set_up_files() {
  mkdir -p "$home" "$spool"
  chmod 700 "$home" "$spool"
  [[ -f "$key" ]] || "$bin/queued" --keygen "$key" || die "could not create the cluster key $key"
  echo "$host" >"$hosts"
  chmod 644 "$hosts"
}

start_daemon() {
  [[ -x "$bin/queued" && -x "$bin/queue" ]] || die "no queued/queue in $bin: build first (./run.sh does)"
  set_up_files
  if [[ -n "$(running_pid)" ]]; then
    say "restarting the queued already running for $home"
    stop_daemon >/dev/null
  fi
  rm -f "$pidfile"
  # Without -D, queued checks its set-up, then detaches and logs to $log.
  if ! "$bin/queued" --spooldir "$spool" --hosts "$hosts" --key "$key" --listen "$host" \
    --socket "$socket" --pidfile "$pidfile"; then
    die "queued did not start (above is why; another port: QUEUE_PORT=NNNN $0)"
  fi
  wait_until_answering
  allow_root_jobs
  say "queued (pid $(running_pid)) serves $host; files in $home, log $log"
}

run_sample_job() {
  say "sample job: queue -i -w -n -- sh -c 'echo \"hello from \$QUEUE_HOST (job \$QUEUE_JOBID)\"; uname -sr'"
  # shellcheck disable=SC2016  # the job's shell expands these, not this one
  QUEUE_SOCKET=$socket "$bin/queue" -i -w -n -- \
    sh -c 'echo "hello from $QUEUE_HOST (job $QUEUE_JOBID)"; uname -sr' ||
    die "the sample job failed (exit $?); see $log"
}

print_usage() {
  cat <<EOF

Queue is running. To use it from this shell:
  export QUEUE_SOCKET=$socket PATH=$bin:\$PATH
  queue -- make -j2           # runs on the least-loaded host, as if here
  queue -i -w -n -- cmd args  # the same, spelled out: now queue, wait, no pty
  qsh $host 'hostname; uptime'  # rsh-style: host, then a shell command
  queue --status              # hosts, loads, queues, your jobs (--json too)
Stop it with: $0 stop
EOF
}

case "${1:-start}" in
  start)
    start_daemon
    run_sample_job
    print_usage
    ;;
  stop) stop_daemon ;;
  status)
    [[ -n "$(running_pid)" ]] || die "no queued running for $home (start it: $0)"
    QUEUE_SOCKET=$socket exec "$bin/queue" --status
    ;;
  *) die "unknown command \"$1\" (usage: $0 [start|stop|status])" ;;
esac
