# Sourced by the interop run.sh scripts: go_build DIR OUTPUT builds DIR/main.go with Debian's
# Go packages, offline (GOPATH mode against /usr/share/gocode; no module download, no network).
go_build() {
  local dir="$1" output="$2" cache cgo=0 status=0
  cache="$(mktemp -d)"
  # With a C compiler, cgo stays on and Debian's precompiled standard library is reused
  # (faster); without one, the standard library is compiled pure-Go into the temp cache.
  if command -v gcc >/dev/null 2>&1; then cgo=1; fi
  (
    cd "$dir"
    GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$cache" GOFLAGS= GOPROXY=off \
      CGO_ENABLED="$cgo" go build -o "$output" main.go
  ) || status=$?
  rm -rf "$cache"
  return "$status"
}

# go_main DIR NAME USAGE MIN MAX ARGS...: what each peer's run.sh does. `--build OUTPUT` builds
# DIR/main.go into OUTPUT; otherwise, given MIN to MAX arguments, builds NAME into a temp dir
# and runs it with them (its exit status is the script's).
go_main() {
  local dir="$1" name="$2" usage="$3" min="$4" max="$5" work status=0
  shift 5
  if [[ "${1:-}" == "--build" && $# -eq 2 ]]; then
    go_build "$dir" "$2"
    return
  fi
  if [[ $# -lt $min || $# -gt $max ]]; then
    echo "usage: $0 $usage | $0 --build OUTPUT" >&2
    return 2
  fi
  work="$(mktemp -d)"
  { go_build "$dir" "$work/$name" && "$work/$name" "$@"; } || status=$?
  rm -rf "$work"
  return "$status"
}
