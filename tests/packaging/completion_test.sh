#!/usr/bin/env bash
# Sources packaging/queue.bash-completion in a plain bash (no bash-completion
# package) and checks what it completes: queue's options (from the real
# `queue --help`), host names from a hosts file, queue names, and qsh's host.
# Usage: completion_test.sh SOURCE_DIR BIN_DIR
set -euo pipefail
src=${1:?usage: completion_test.sh SOURCE_DIR BIN_DIR}
bin=${2:?usage: completion_test.sh SOURCE_DIR BIN_DIR}
export PATH=$bin:$PATH
home=$(mktemp -d "${TMPDIR:-/tmp}/queue-completion.XXXXXX")
trap 'rm -rf "$home"' EXIT
export QUEUE_HOME=$home QUEUE_CONF=$home/absent.conf
printf '%s\n' '# the cluster' node1.example.org:1421 node2.example.org:1421 'gpu7:1500  # fast' >"$home/hosts"
mkdir -p "$home/spool/now" "$home/spool/wait" "$home/spool/gpu"
touch "$home/spool/now/profile" "$home/spool/wait/profile" "$home/spool/gpu/profile"

# shellcheck source=/dev/null
source "$src/packaging/queue.bash-completion"

failures=0
# Completes the line $1 (split as readline would, ':' a word break) and
# compares the sorted candidates with $2 (space-separated).
check() {
  local line=$1 want=$2
  COMP_LINE=$line COMP_POINT=${#line}
  COMP_WORDBREAKS=$' \t\n"\'><=;|&(:'
  # Split at blanks, then split out each ':' as bash does.
  local -a words=()
  local w
  read -r -a raw <<<"$line"
  for w in "${raw[@]}"; do
    while [[ $w == *:* ]]; do
      [[ -n ${w%%:*} ]] && words+=("${w%%:*}")
      words+=(":")
      w=${w#*:}
    done
    [[ -n $w ]] && words+=("$w")
  done
  [[ $line == *" " ]] && words+=("")
  COMP_WORDS=("${words[@]}") COMP_CWORD=$((${#words[@]} - 1))
  COMPREPLY=()
  local fn
  fn=$(complete -p "${words[0]}" | sed -E 's/.*-F ([^ ]+).*/\1/')
  # An interactive shell runs completions without errexit.
  set +e
  "$fn" "${words[0]}" "${words[COMP_CWORD]}" "${words[COMP_CWORD - 1]-}"
  set -e
  local got
  got=$(printf '%s\n' "${COMPREPLY[@]}" | sort | xargs)
  if [[ $got == "$want" ]]; then
    echo "ok: '$line' -> $got"
  else
    echo "FAIL: '$line' -> '$got', expected '$want'"
    failures=$((failures + 1))
  fi
}

check "queue --rob" "--robust-host"
check "queue --st" "--status"
check "queue -h node" "node1.example.org:1421 node2.example.org:1421"
check "queue -h gpu7:" "1500"
check "queue -H gpu7:15" "1500"
check "queue -d g" "gpu"
check "queue --queuedir " "gpu now wait"
check "qsh -t" "-t -tt"
check "qsh -p 1500 n" "node1.example.org:1421 node2.example.org:1421"
check "qsh " "+ gpu7:1500 node1.example.org:1421 node2.example.org:1421"
# After "--", or after qsh's host: the command, then its files.
touch "$home/command-input.txt"
check "queue -n -- true $home/command-inp" "$home/command-input.txt"
check "queue -n -- queue-no-such-command-xyz" ""
check "qsh node1.example.org:1421 cat $home/command-inp" "$home/command-input.txt"
check "qsh -n + queue-no-such-command-xyz" ""
# Every option `queue --help` prints is offered.
want=$(queue --help | grep -oE '(^|[[:space:],])--?[A-Za-z][A-Za-z-]*' | sed 's/^[[:space:],]*//' | sort -u | xargs)
[[ -n $want ]] || { echo "FAIL: queue --help printed no options"; failures=$((failures + 1)); }
check "queue -" "$want"
((failures == 0)) || { echo "completion_test: $failures failure(s)"; exit 1; }
echo "completion_test: all passed"
