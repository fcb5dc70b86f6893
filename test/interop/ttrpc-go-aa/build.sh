#!/usr/bin/env bash
# Builds the Go ttrpc attestation agent with Debian's packages, offline.
#   build.sh OUTPUT
# Needs: apt-get install -y golang-go golang-github-containerd-ttrpc-dev
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [[ $# -ne 1 ]]; then
  echo "usage: $0 OUTPUT" >&2
  exit 2
fi
# shellcheck source=../go-build.sh
. "$here/../go-build.sh"
go_build "$here" "$1"
