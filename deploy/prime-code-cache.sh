#!/bin/sh
# prime-code-cache.sh BUNDLE_DIR [NODE]
#
# Makes V8's code cache beside each bundle in BUNDLE_DIR (<program>.js.codecache), by running
# each program once with NODE (default: node on PATH), the Node.js that will run it: the cache
# is valid only for that node binary and its V8 flags (V8 rejects any other, and the program
# then compiles as it would without a cache). The daemon is started on a socket in a temporary
# directory, asked for its health by cdh-tool and stopped; the other programs print their help.
# Run it where the bundles are installed (deploy/install-bundle.sh, the Dockerfile), as the
# owner of the bundles: src/bundle/program-loader.ts reads a cache only if it is owned by the
# bundle's owner and writable by nobody else. A cache holds bytecode, never run-time values.
set -eu

[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: $0 BUNDLE_DIR [NODE]" >&2; exit 2; }
dir=$1 node=${2:-node}
[ -f "$dir/confidential-data-hub.js" ] || { echo "$0: no $dir/confidential-data-hub.js" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/cdh-prime-XXXXXX")
daemon=
cleanup() {
  [ -n "$daemon" ] && kill "$daemon" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

rm -f "$dir"/*.codecache
export CDH_CODE_CACHE_WRITE=1
# The priming run talks to nothing but its own socket; the guard makes sure of it.
export CDH_LOOPBACK_ONLY=1
printf 'socket = "unix://%s/cdh.sock"\n' "$work" >"$work/cdh.toml"
CDH_ADDRESS_FILE="$work/address" "$node" "$dir/confidential-data-hub.js" -c "$work/cdh.toml" \
  >"$work/daemon.log" 2>&1 &
daemon=$!
tries=0
until [ -S "$work/cdh.sock" ] && [ -s "$work/address" ]; do
  tries=$((tries + 1))
  if [ $tries -gt 300 ] || ! kill -0 "$daemon" 2>/dev/null; then
    echo "$0: the daemon did not start:" >&2
    cat "$work/daemon.log" >&2
    exit 1
  fi
  sleep 0.05
done
if [ -f "$dir/cdh-tool.js" ]; then
  "$node" "$dir/cdh-tool.js" --socket "unix://$work/cdh.sock" health >/dev/null
fi
kill -TERM "$daemon"
wait "$daemon"
daemon=

for file in "$dir"/*.js; do
  case $(basename "$file") in
  confidential-data-hub.js | cdh-tool.js) ;;
  *) "$node" "$file" --help >/dev/null 2>&1 || true ;;
  esac
done
[ -f "$dir/confidential-data-hub.js.codecache" ] || { echo "$0: no code cache was written" >&2; exit 1; }
ls "$dir"/*.codecache
