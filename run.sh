#!/usr/bin/env bash
# The first command: installs what Queue needs (Debian 12), builds it into
# build/, and starts a personal one-host cluster (scripts/local-cluster.sh).
# Arguments go to local-cluster.sh: ./run.sh stop, ./run.sh status.
set -euo pipefail
cd "$(dirname "$0")"

if [[ "${1:-start}" == start ]]; then
  scripts/install-deps.sh
  scripts/build.sh build -- queue queued queue-shepherd
fi
exec scripts/local-cluster.sh "$@"
