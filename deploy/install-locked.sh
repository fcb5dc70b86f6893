#!/bin/sh
# install-locked.sh TARBALL LOCKFILE PREFIX
#
# Installs the package that `npm pack` made (TARBALL) with exactly the production dependencies
# that LOCKFILE (the checkout's package-lock.json) pins, laid out as `npm install -g --prefix
# PREFIX` lays it out: the package in PREFIX/lib/node_modules/<name>, relative links to its
# programs in PREFIX/bin. `npm install -g <tarball>` cannot do this: a tarball never holds
# package-lock.json, and npm ignores an npm-shrinkwrap.json inside a local tarball, so it
# resolves the dependencies afresh. Here `npm ci --omit=dev` runs in the unpacked package with
# the lockfile beside it, and fails when the lockfile does not match the package's package.json.
#
# Used by the Dockerfile, deploy/guest-image/README.md and test/integration/package-install.test.ts.
# npm settings (registry, cache, --prefer-offline as npm_config_prefer_offline) come from the
# environment as usual. No install scripts run: no production dependency needs one.
set -eu

[ $# -eq 3 ] || { echo "usage: $0 TARBALL LOCKFILE PREFIX" >&2; exit 2; }
tarball=$1 lockfile=$2 prefix=$3
[ -f "$tarball" ] || { echo "$0: no tarball $tarball" >&2; exit 2; }
[ -f "$lockfile" ] || { echo "$0: no lockfile $lockfile" >&2; exit 2; }

name=$(tar -xzOf "$tarball" package/package.json | node -e '
  let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => process.stdout.write(JSON.parse(s).name));')
[ -n "$name" ] || { echo "$0: $tarball has no package/package.json with a name" >&2; exit 2; }
app=$prefix/lib/node_modules/$name

rm -rf "$app"
mkdir -p "$app" "$prefix/bin"
tar -xzf "$tarball" -C "$app" --strip-components=1 --no-same-owner
cp "$lockfile" "$app/package-lock.json"
(cd "$app" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund)

# The programs: each "bin" entry executable, linked (relatively) from PREFIX/bin.
node -e '
  const fs = require("fs"), path = require("path");
  const [app, binDir] = process.argv.slice(1).map((p) => path.resolve(p));
  const { bin = {} } = JSON.parse(fs.readFileSync(path.join(app, "package.json"), "utf8"));
  for (const [program, target] of Object.entries(bin)) {
    const file = path.join(app, target);
    fs.chmodSync(file, 0o755);
    const link = path.join(binDir, program);
    fs.rmSync(link, { force: true });
    fs.symlinkSync(path.relative(binDir, file), link);
  }' "$app" "$prefix/bin"
