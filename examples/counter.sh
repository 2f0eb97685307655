#!/bin/sh
# A long, deterministic computation that Queue can migrate between hosts.
#
#   counter.sh [--resume] STEPS [DELAY_SECONDS]
#
# The same program as counter.cc (same arithmetic, output and restart file), in
# POSIX sh: step i (1..STEPS) folds i*i into an accumulator,
# acc = (31*acc + i*i) mod p. On the checkpoint signal (USR2, or
# QUEUE_CHECKPOINT_SIGNAL) it saves "queue-example-counter 1 STEPS STEP ACC"
# to $QUEUE_RESTART_FILE (default ./checkpoint.restart) and exits 0. Started
# with --resume, or with RESTARTED=1, it goes on from that file, and never
# starts over instead: a missing or bad file is exit code 2. A finished run
# ends with the line "result ACC". DELAY_SECONDS may be a fraction where
# sleep(1) accepts one (GNU, BusyBox); each step then costs a fork as well.
#
# Checks read "valid && valid || fail", on purpose:
# shellcheck disable=SC2015
set -u

MODULUS=1000000007
MAX_STEPS=1000000000
MAGIC=queue-example-counter
FORMAT=1

fail() {
  printf 'queue-example-counter: %s\n' "$*" >&2
  exit 2
}

usage() {
  fail "usage: counter.sh [--resume] STEPS [DELAY_SECONDS]
  STEPS 1..1000000000, DELAY_SECONDS 0..60 per step (default 0)"
}

# A plain decimal number of at most 18 digits with no leading zero, so that
# $(( )) reads it as decimal (not octal) and cannot overflow.
is_count() {
  case $1 in 0 | [1-9]*) ;; *) return 1 ;; esac
  case $1 in *[!0-9]*) return 1 ;; esac
  [ ${#1} -le 18 ]
}

# First, so that an early checkpoint signal is not fatal. A bad signal is
# tried in a subshell: trap's error would end a non-interactive shell at once
# (and some shells accept KILL and STOP silently).
checkpoint_requested=0
checkpoint_signal=${QUEUE_CHECKPOINT_SIGNAL:-USR2}
checkpoint_signal=${checkpoint_signal#SIG}
catchable=no
case $checkpoint_signal in
  KILL | STOP | 9) ;;
  *) if (trap : "$checkpoint_signal") 2>/dev/null; then catchable=yes; fi ;;
esac
[ "$catchable" = yes ] ||
  fail "QUEUE_CHECKPOINT_SIGNAL=${QUEUE_CHECKPOINT_SIGNAL:-}: not a signal this program can catch"
trap 'checkpoint_requested=1' "$checkpoint_signal"

resume=0 total='' delay=0
words=0
for word; do
  case $word in
    --resume) resume=1 ;;
    *)
      words=$((words + 1))
      case $words in 1) total=$word ;; 2) delay=$word ;; *) usage ;; esac
      ;;
  esac
done
is_count "$total" && [ "$total" -ge 1 ] && [ "$total" -le "$MAX_STEPS" ] || usage
case $delay in '' | . | *[!0-9.]* | *.*.*) usage ;; esac
delay_whole=${delay%%.*}
[ ${#delay_whole} -le 2 ] && [ "${delay_whole:-0}" -le 60 ] || usage
if [ "${RESTARTED:-}" = 1 ]; then resume=1; fi
if is_count "${QUEUE_RESTART_COUNT:-}" && [ "$QUEUE_RESTART_COUNT" -gt 0 ]; then resume=1; fi

restart_file=${QUEUE_RESTART_FILE:-checkpoint.restart}
step=0 acc=0

# Sets step and acc from the restart file, or exits 2.
load_or_exit() {
  [ -e "$restart_file" ] || fail "cannot resume: restart file $restart_file: No such file or directory"
  [ -f "$restart_file" ] && [ -r "$restart_file" ] ||
    fail "cannot resume: restart file $restart_file cannot be read"
  line=''
  IFS= read -r line <"$restart_file" || [ -n "$line" ] ||
    fail "cannot resume: restart file $restart_file is not a counter checkpoint"
  set -f
  # shellcheck disable=SC2086 # split into fields, on purpose
  set -- $line
  set +f
  [ $# -eq 5 ] && [ "$1" = "$MAGIC" ] && [ "$2" = "$FORMAT" ] && is_count "$3" && is_count "$4" &&
    is_count "$5" && [ "$4" -le "$3" ] && [ "$5" -lt "$MODULUS" ] ||
    fail "cannot resume: restart file $restart_file is not a counter checkpoint"
  [ "$3" -eq "$total" ] || fail "cannot resume: restart file $restart_file is for $3 steps, not $total"
  step=$4 acc=$5
}

# Temp file beside the restart file, flushed to disk, renamed over it: a
# reader sees the old file or the new one. (POSIX has no fsync command;
# GNU and BusyBox sync take a file, others get a whole sync.)
save_atomically() {
  temporary="$restart_file.$$"
  printf '%s %s %s %s %s\n' "$MAGIC" "$FORMAT" "$total" "$step" "$acc" >"$temporary" &&
    { sync -- "$temporary" 2>/dev/null || sync; } &&
    mv -f "$temporary" "$restart_file" && return 0
  rm -f "$temporary"
  return 1
}

checkpoint() {
  if ! save_atomically; then
    printf 'queue-example-counter: cannot save restart file %s\n' "$restart_file" >&2
    exit 1
  fi
  echo "checkpoint at step $step of $total saved to $restart_file"
  exit 0
}

if [ "$resume" = 1 ]; then
  load_or_exit
  echo "resumed at step $step of $total from $restart_file"
else
  echo "start at step 0 of $total"
fi
report_every=1
if [ "$total" -ge 10 ]; then report_every=$((total / 10)); fi
case $delay in *[1-9]*) pause=1 ;; *) pause=0 ;; esac

while [ "$step" -lt "$total" ]; do
  if [ "$checkpoint_requested" = 1 ]; then checkpoint; fi
  step=$((step + 1))
  acc=$(((acc * 31 + step * step) % MODULUS))
  if [ $((step % report_every)) -eq 0 ]; then echo "step $step of $total"; fi
  # sleep ignores the signal: Queue signals the whole process group, and a
  # sleep killed by it would only make the shell report that on stderr.
  if [ "$pause" = 1 ]; then (trap '' "$checkpoint_signal" && exec sleep "$delay"); fi
done
echo "result $acc"
