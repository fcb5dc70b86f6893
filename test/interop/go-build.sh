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
