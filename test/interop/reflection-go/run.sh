#!/usr/bin/env bash
# Builds the Go reflection checker with Debian's packages, offline, and runs it.
#   run.sh SOCKET VERSION [SECRET_FILE]   build into a temp dir and run against SOCKET
#   run.sh --build OUTPUT                 build only, into OUTPUT
# Needs: apt-get install -y golang-go golang-google-grpc-dev golang-google-protobuf-dev
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

# shellcheck source=../go-build.sh
. "$here/../go-build.sh"
go_main "$here" reflection-check "SOCKET VERSION [SECRET_FILE]" 2 3 "$@"
