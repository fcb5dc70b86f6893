import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { PACKAGE_ROOT } from '../../../src/package-info';
import { ADDRESS_FILE_ENV } from '../../../src/server/address-file';

// No Docker engine runs the tests, so the Dockerfile is checked as text: the facts the
// deployment relies on, not its every line.

const dockerfile = readFileSync(join(PACKAGE_ROOT, 'Dockerfile'), 'utf8');
/** Instructions with their continuation lines joined, comments dropped. */
const instructions = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .map((line) => line.trim())
  .filter((line) => line !== '' && !line.startsWith('#'));
const stages = instructions.join('\n').split(/^FROM /m).slice(1);

test('two stages: a build stage and a runtime stage', () => {
  assert.equal(stages.length, 2);
  assert.match(stages[0] as string, /AS build\n/);
});

test('the build stage installs dev dependencies, builds and packs', () => {
  const build = stages[0] as string;
  assert.match(build, /RUN npm ci\b/);
  assert.match(build, /npm run build/);
  assert.match(build, /npm pack\b/);
});

test('no syntax directive: BuildKit would fetch a frontend image from a registry', () => {
  assert.doesNotMatch(dockerfile, /^#\s*syntax\s*=/im);
});

test('the runtime stage installs only the packed tarball, with exactly the locked production dependencies', () => {
  const build = stages[0] as string;
  const runtime = stages[1] as string;
  assert.match(build, /cp package-lock\.json deploy\/install-locked\.sh deploy\/prime-code-cache\.sh \/pkg\//);
  assert.match(runtime, /COPY --from=build \/pkg\//);
  assert.match(
    runtime,
    /RUN sh \/tmp\/pkg\/install-locked\.sh \/tmp\/pkg\/confidential-data-hub-\*\.tgz \/tmp\/pkg\/package-lock\.json \/usr\/local\b/,
  );
  // V8's code cache is made by the runtime image's own node, beside the installed bundles.
  assert.match(
    runtime,
    /install-locked\.sh [^\n]*\/usr\/local +&& sh \/tmp\/pkg\/prime-code-cache\.sh \/usr\/local\/lib\/node_modules\/confidential-data-hub\/dist\/bundle /,
  );
  // npm install -g of a tarball resolves the dependencies afresh: it cannot see the lockfile.
  assert.doesNotMatch(runtime, /npm install/);
  assert.doesNotMatch(runtime, /^COPY (?!--from=build)/m, 'nothing copied from the build context');
  assert.doesNotMatch(runtime, /apt-get|build-essential|python3|make\b|g\+\+/);
});

test('entrypoint, socket volume, and a health check at the address the daemon publishes', () => {
  const runtime = stages[1] as string;
  assert.match(runtime, /^ENTRYPOINT \["confidential-data-hub"\]$/m);
  assert.match(runtime, /^VOLUME \/run\/confidential-containers$/m);
  assert.match(runtime, new RegExp(`^ENV ${ADDRESS_FILE_ENV}=/run/[^\\s]+$`, 'm'));
  const healthcheck = /^HEALTHCHECK .*CMD (\[.*\])$/m.exec(runtime);
  assert.ok(healthcheck, 'HEALTHCHECK ... CMD [...]');
  // No --socket: cdh-tool reads the published address, so -c or --socket moving the socket is followed.
  assert.deepEqual(JSON.parse(healthcheck[1] as string), ['cdh-tool', '--timeout-ms', '4000', 'health']);
});

test('.dockerignore lets in everything the build compiles', () => {
  const ignore = readFileSync(join(PACKAGE_ROOT, '.dockerignore'), 'utf8');
  const allowed = ignore
    .split('\n')
    .filter((line) => line.startsWith('!'))
    .map((line) => line.slice(1));
  const tsconfig = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'tsconfig.json'), 'utf8')) as {
    include: string[];
  };
  for (const needed of [
    'package.json',
    'package-lock.json',
    'tsconfig.json',
    'protos',
    'LICENSE',
    'README.md',
    'deploy/install-locked.sh',
    // npm run build ends with it, and the runtime stage runs it.
    'deploy/prime-code-cache.sh',
  ]) {
    assert.ok(allowed.includes(needed), needed);
  }
  for (const dir of tsconfig.include) assert.ok(allowed.includes(dir), `tsconfig include "${dir}"`);
});

test('the runtime stage fails the build unless the entrypoint and cdh-tool are the bundles', () => {
  const runtime = (stages[1] as string).replace(/\s+/g, ' ');
  for (const program of ['confidential-data-hub', 'cdh-tool']) {
    assert.ok(
      runtime.includes(
        `test "$(readlink -f /usr/local/bin/${program})" = ` +
          `/usr/local/lib/node_modules/confidential-data-hub/dist/bundle/${program}.js`,
      ),
      `${program} checked`,
    );
  }
});

test('package.json: the deployed programs are the bundles that npm run build writes and npm pack ships', () => {
  const manifest = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as {
    bin: Record<string, string>;
    files: string[];
    scripts: Record<string, string>;
  };
  for (const [name, target] of Object.entries(manifest.bin)) {
    // cdh-emulator, the development stand-in for remote services, stays on the tsc output.
    assert.equal(target, name === 'cdh-emulator' ? `dist/src/bin/${name}.js` : `dist/bundle/${name}.js`, name);
  }
  assert.match(
    manifest.scripts['build'] as string,
    /&& node dist\/scripts\/bundle\.js && sh deploy\/prime-code-cache\.sh dist\/bundle >\/dev\/null$/,
  );
  // The code caches are made where the bundles run (the Dockerfile, deploy/guest-image), never shipped.
  assert.ok(!manifest.files.some((pattern) => pattern.includes('codecache')));
  assert.ok(manifest.files.includes('dist/bundle/*.js'));
  assert.ok(manifest.files.includes('!dist/bundle/cdh-emulator.js'));
});
