#!/usr/bin/env bash
# Builds the Go reflection checker with Debian's packages, offline, and runs it.
#   run.sh SOCKET VERSION [SECRET_FILE]   build into a temp dir and run against SOCKET
#   run.sh --build OUTPUT                 build only, into OUTPUT
# Needs: apt-get install -y golang-go golang-google-grpc-dev golang-google-protobuf-dev
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

# shellcheck source=../go-build.sh
. "$here/../go-build.sh"
build() { go_build "$here" "$1"; }

if [[ "${1:-}" == "--build" && $# -eq 2 ]]; then
  build "$2"
  exit 0
fi
if [[ $# -lt 2 || $# -gt 3 ]]; then
  echo "usage: $0 SOCKET VERSION [SECRET_FILE] | $0 --build OUTPUT" >&2
  exit 2
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
build "$work/reflection-check"
"$work/reflection-check" "$@"
