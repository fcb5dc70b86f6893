#!/bin/sh
# The daemon-facing integration tests again, run against the bundles (after `npm run bundle`):
# dist/bundle/*.js copied alone into an empty temp dir, which test/support/daemon.ts runs
# instead of dist/src/bin/ (CDH_TEST_BIN_DIR).
set -eu
cd "$(dirname "$0")/.."
dir=$(mktemp -d "${TMPDIR:-/tmp}/cdh-bundle-bins-XXXXXX")
trap 'rm -rf "$dir"' EXIT
cp dist/bundle/*.js "$dir/"
CDH_TEST_BIN_DIR="$dir" CDH_LOOPBACK_ONLY=1 node --test --test-concurrency=2 \
  dist/test/integration/daemon-lifecycle.test.js \
  dist/test/integration/aliyun-client-key-daemon.test.js \
  dist/test/integration/aliyun-openapi.test.js \
  dist/test/integration/cache-daemon.test.js \
  dist/test/integration/kbs-aliyun-chain.test.js \
  dist/test/integration/shutdown-under-load.test.js \
  dist/test/integration/secret-cli.test.js \
  dist/test/integration/demo.test.js \
  dist/test/integration/image-pull.test.js \
  dist/test/integration/api-server-rest.test.js \
  dist/test/integration/cdh-emulator.test.js \
  dist/test/integration/cdh-tool-ttrpc.test.js \
  dist/test/integration/cc-kbc-daemon.test.js \
  dist/test/integration/cdh-oneshot.test.js \
  dist/test/integration/keyprovider-unwrap.test.js
