#!/usr/bin/env bash
# The manual pages in man/: each renders without a single groff warning, and
# each program's page names every option its --help prints (queue(1),
# qsh(1), queued(8)). queue-profile(5)'s keywords are checked against the
# parser's table by the unit test ProfileManPage.
# Usage: man_pages_test.sh SOURCE_DIR BIN_DIR
set -uo pipefail
src=${1:?usage: man_pages_test.sh SOURCE_DIR BIN_DIR}
bin=${2:?usage: man_pages_test.sh SOURCE_DIR BIN_DIR}
command -v groff >/dev/null || { echo "FAIL: groff is not installed (scripts/install-deps.sh installs groff-base)"; exit 1; }

failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

pages=(queue.1 qsh.1 queued.8 queue-profile.5 queued.conf.5)
for page in "${pages[@]}"; do
  file=$src/man/$page
  [[ -f $file ]] || { fail "$file is missing"; continue; }
  # -ww: every warning; -z: no output. groff exits 0 on warnings, so its
  # stderr is what tells.
  warnings=$(LC_ALL=C groff -man -ww -z "$file" 2>&1)
  [[ -z $warnings ]] || fail "$page: groff warns:"$'\n'"$warnings"
done

# The options a --help text names: words that start with - or -- after a
# blank, a comma, a bracket or a bar (CLI11's "-h,--host", qsh's "[-t|-tt|-T]").
options_of() {
  grep -oE '(^|[][[:space:],|(])--?[A-Za-z0-9][A-Za-z0-9-]*' | sed -E 's/^[][[:space:],|(]+//' | sort -u
}

# Plain text of a page, one long line per paragraph: no hyphenation, no
# bold or underline, so that an option is found as written.
rendered() {
  LC_ALL=C groff -man -Tascii -rLL=400n -rHY=0 -P-cbou "$src/man/$1" 2>/dev/null
}

check_options() {
  local program=$1 page=$2 help text option count=0
  if ! help=$("$bin/$program" --help 2>&1); then
    # CLI11 exits 0 on --help; qsh prints its usage and exits 0 too.
    fail "$program --help failed: $help"
    return
  fi
  text=$(rendered "$page")
  while IFS= read -r option; do
    [[ -n $option ]] || continue
    count=$((count + 1))
    grep -qwF -e "$option" <<<"$text" || fail "$program --help prints $option, which man/$page does not mention"
  done < <(options_of <<<"$help")
  ((count > 0)) || fail "$program --help printed no options"
  echo "$program: $count options of --help checked against man/$page"
}

check_options queue queue.1
check_options qsh qsh.1
check_options queued queued.8

if ((failures > 0)); then
  echo "man_pages_test: $failures failure(s)"
  exit 1
fi
echo "man_pages_test: all passed"
