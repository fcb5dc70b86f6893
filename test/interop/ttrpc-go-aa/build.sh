#!/usr/bin/env bash
# Builds the Go ttrpc attestation agent with Debian's packages, offline (GOPATH mode against
# /usr/share/gocode; no module download, no network).
#   build.sh OUTPUT
# Needs: apt-get install -y golang-go golang-github-containerd-ttrpc-dev
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [[ $# -ne 1 ]]; then
  echo "usage: $0 OUTPUT" >&2
  exit 2
fi
cache="$(mktemp -d)"
trap 'rm -rf "$cache"' EXIT
cgo=0
if command -v gcc >/dev/null 2>&1; then cgo=1; fi
cd "$here"
GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$cache" GOFLAGS= GOPROXY=off \
  CGO_ENABLED="$cgo" go build -o "$1" main.go
