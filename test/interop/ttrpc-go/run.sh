#!/usr/bin/env bash
# Builds the Go ttrpc interop client with Debian's packages, offline, and runs it.
#   run.sh SOCKET SECRET     build into a temp dir, call UnsealSecret on SOCKET, print the result
#   run.sh --build OUTPUT    build only, into OUTPUT
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
if [[ $# -ne 2 ]]; then
  echo "usage: $0 SOCKET SECRET | $0 --build OUTPUT" >&2
  exit 2
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
build "$work/ttrpc-unseal"
"$work/ttrpc-unseal" "$1" "$2"
