#!/usr/bin/env bash
# Builds the Go reflection checker with Debian's packages, offline, and runs it.
#   run.sh SOCKET VERSION [SECRET_FILE]   build into a temp dir and run against SOCKET
#   run.sh --build OUTPUT                 build only, into OUTPUT
# Needs: apt-get install -y golang-go golang-google-grpc-dev golang-google-protobuf-dev
# (GOPATH mode against /usr/share/gocode; no module download, no network).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

build() {
  local output="$1" cache cgo=0 status=0
  cache="$(mktemp -d)"
  # With a C compiler, cgo stays on and Debian's precompiled standard library is reused.
  if command -v gcc >/dev/null 2>&1; then cgo=1; fi
  (
    cd "$here"
    GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$cache" GOFLAGS= GOPROXY=off \
      CGO_ENABLED="$cgo" go build -o "$output" main.go
  ) || status=$?
  rm -rf "$cache"
  return "$status"
}

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
