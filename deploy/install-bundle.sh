#!/bin/sh
# install-bundle.sh BUNDLE_DIR PREFIX
#
# Installs the guest artifact that `npm run bundle` made (BUNDLE_DIR = dist/bundle: one
# self-contained <program>.js per program, no node_modules) under PREFIX: the files in
# PREFIX/lib/confidential-data-hub/, executable, and relative links to them in PREFIX/bin.
# cdh-emulator (offline stand-ins for development and CI) is left out: a guest never needs it.
#
# Used by the Dockerfile and deploy/guest-image/README.md.
set -eu

[ $# -eq 2 ] || { echo "usage: $0 BUNDLE_DIR PREFIX" >&2; exit 2; }
bundle=$1 prefix=$2
[ -f "$bundle/confidential-data-hub.js" ] || { echo "$0: no $bundle/confidential-data-hub.js (run npm run bundle)" >&2; exit 2; }

lib=$prefix/lib/confidential-data-hub
rm -rf "$lib"
mkdir -p "$lib" "$prefix/bin"
for file in "$bundle"/*.js; do
  program=$(basename "$file" .js)
  [ "$program" = cdh-emulator ] && continue
  install -m 0755 "$file" "$lib/$program.js"
  ln -sfn "../lib/confidential-data-hub/$program.js" "$prefix/bin/$program"
done
