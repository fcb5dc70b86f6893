#!/usr/bin/env bash
# check-image-healthcheck.sh
#
# The image's HEALTHCHECK with the socket moved away from the default: runs the image that
# ../shared/tools/build-image.sh has just built (its podman storage under $CDH_IMG_WORK, tag
# $CDH_IMG_TAG) three ways, a config file (-c) moving the Unix socket out of the volume, the
# --socket flag, and a config serving on loopback TCP, and checks for each that the default socket
# path is not served, `podman healthcheck run` passes and podman reports the container healthy,
# and SIGTERM exits 0 and withdraws the published address. Root; no network (--network none).
#
# Environment: CDH_IMG_WORK (default /tmp/cdh-image), CDH_IMG_TAG (default localhost/cdh-test),
# CDH_IMG_RUNTIME (default runc): the same as build-image.sh.
set -euo pipefail

PROG=check_image_healthcheck
log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: FAIL: %s\n' "$PROG" "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (podman with the build script's storage)"

WORK=${CDH_IMG_WORK:-/tmp/cdh-image}
TAG=${CDH_IMG_TAG:-localhost/cdh-test}
P() {
  podman --root "$WORK/storage" --runroot "$WORK/runroot" --storage-driver overlay --runtime "${CDH_IMG_RUNTIME:-runc}" \
    --cgroup-manager cgroupfs --events-backend file --tmpdir "$WORK/podman-tmp" "$@"
}
P image exists "$TAG" || die "no image $TAG in $WORK/storage: run ../shared/tools/build-image.sh first"
# the same ulimit bounds as build-image.sh (raising limits may be refused even to root)
nofile=$(ulimit -Hn)
if [ "$nofile" = unlimited ] || [ "$nofile" -gt 1048576 ]; then nofile=1048576; fi
nproc=$(ulimit -Hu)
if [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; then nproc=32768; fi
ULIMITS=(--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")

CONF=$(mktemp -d /tmp/cdh-hc.XXXXXX)
CTRS=()
cleanup() {
  for c in "${CTRS[@]}"; do P rm -f -t 2 "$c" >/dev/null 2>&1 || true; done
  rm -rf "$CONF"
}
trap cleanup EXIT
printf 'socket = "unix:///run/cdh-moved/cdh.sock"\n' >"$CONF/moved.toml"
printf 'socket = "127.0.0.1:50051"\n' >"$CONF/tcp.toml"

FAILS=()
check() { # check DESCRIPTION cmd...
  local d=$1
  shift
  if "$@"; then log "ok: $d"; else log "NOT OK: $d"; FAILS+=("$d"); fi
}

run_case() { # run_case NAME WANT_ADDRESS daemon-args...
  local name=$1 want=$2 ctr=cdh-hc-$1-$$ hc_rc=1 hc_out address default default_rc exit_code left
  shift 2
  CTRS+=("$ctr")
  P run -d --name "$ctr" "${ULIMITS[@]}" --network none -v "$CONF:/etc/confidential-data-hub:ro" "$TAG" "$@" >/dev/null 2>"$CONF/$name.run.err" ||
    die "$name: podman run failed"
  for _ in $(seq 1 40); do
    hc_out=$(P healthcheck run "$ctr" 2>&1) && { hc_rc=0; break; }
    [ "$(P inspect --format '{{.State.Running}}' "$ctr" 2>/dev/null)" = true ] || break
    sleep 0.5
  done
  check "$name ($*): the HEALTHCHECK passes (rc=$hc_rc ${hc_out//$'\n'/ })" test "$hc_rc" = 0
  check "$name: podman reports the container healthy" test "$(P inspect --format '{{.State.Health.Status}}' "$ctr")" = healthy
  address=$(P exec "$ctr" sh -c 'cat "$CDH_ADDRESS_FILE"' 2>&1 || true)
  check "$name: the daemon published $want (got: $address)" test "$address" = "$want"
  default=$(P exec "$ctr" cdh-tool --socket unix:///run/confidential-containers/cdh.sock --timeout-ms 2000 health 2>&1) &&
    default_rc=0 || default_rc=$?
  check "$name: nothing serves on the default socket (a check hard-coding it would fail: ${default//$'\n'/ })" test "$default_rc" != 0
  P stop -t 15 "$ctr" >/dev/null 2>&1 || true
  exit_code=$(P inspect --format '{{.State.ExitCode}}' "$ctr" 2>/dev/null || echo '?')
  check "$name: SIGTERM exits 0 (got $exit_code)" test "$exit_code" = 0
  if P cp "$ctr:/run/confidential-data-hub/address" "$CONF/$name.address" >/dev/null 2>&1; then left=yes; else left=no; fi
  check "$name: the published address is withdrawn on exit (file left: $left)" test "$left" = no
  P logs "$ctr" >"$CONF/$name.log" 2>&1 || true
  check "$name: the daemon logged that it serves on $want" grep -q "\"socket\":\"$want\".*\"msg\":\"serving\"" "$CONF/$name.log"
}

run_case config-unix unix:///run/cdh-moved/cdh.sock -c /etc/confidential-data-hub/moved.toml
run_case flag-unix unix:///tmp/cdh-flag.sock --socket unix:///tmp/cdh-flag.sock
run_case config-tcp 127.0.0.1:50051 -c /etc/confidential-data-hub/tcp.toml

if [ ${#FAILS[@]} -gt 0 ]; then
  for f in "${FAILS[@]}"; do printf '%s: FAIL: %s\n' "$PROG" "$f" >&2; done
  exit 1
fi
log "PASS: the HEALTHCHECK follows the socket the daemon serves on (-c unix, --socket, -c tcp)"
