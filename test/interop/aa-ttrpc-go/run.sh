#!/usr/bin/env bash
# Builds the Go ttrpc attestation agent (GetToken) with Debian's packages, offline.
#   run.sh --build OUTPUT    build into OUTPUT
# Needs: apt-get install -y golang-go golang-github-containerd-ttrpc-dev
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

# shellcheck source=../go-build.sh
. "$here/../go-build.sh"
build() { go_build "$here" "$1"; }

if [[ "${1:-}" == "--build" && $# -eq 2 ]]; then
  build "$2"
  exit 0
fi
echo "usage: $0 --build OUTPUT" >&2
exit 2
