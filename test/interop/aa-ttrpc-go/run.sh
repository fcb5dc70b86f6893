#!/usr/bin/env bash
# Builds the Go ttrpc attestation agent (GetToken) with Debian's packages, offline.
#   run.sh --build OUTPUT    build into OUTPUT
# Needs: apt-get install -y golang-go golang-github-containerd-ttrpc-dev
# (GOPATH mode against /usr/share/gocode; no module download, no network).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

build() {
  local output="$1" cache cgo=0 status=0
  cache="$(mktemp -d)"
  # With a C compiler, cgo stays on and Debian's precompiled standard library is reused
  # (faster); without one, the standard library is compiled pure-Go into the temp cache.
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
echo "usage: $0 --build OUTPUT" >&2
exit 2
