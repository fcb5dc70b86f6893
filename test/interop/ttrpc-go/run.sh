#!/usr/bin/env bash
# Builds the Go ttrpc interop client with Debian's packages, offline, and runs it.
#   run.sh SOCKET SECRET     build into a temp dir, call UnsealSecret on SOCKET, print the result
#   run.sh --build OUTPUT    build only, into OUTPUT
# Needs: apt-get install -y golang-go golang-github-containerd-ttrpc-dev
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

# shellcheck source=../go-build.sh
. "$here/../go-build.sh"
go_main "$here" ttrpc-unseal "SOCKET SECRET" 2 2 "$@"
