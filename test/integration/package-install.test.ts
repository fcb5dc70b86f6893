import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { PACKAGE_ROOT, PROTOS_DIR } from '../../src/package-info';
import { childEnv, spawnDaemon, tempDir } from '../../src/devtools/daemon';
import { clientKeyDaemonConfig } from '../../src/emulators/aliyun/scenario';
import { startAliyunChain } from '../support/aliyun-chain';
import { ReflectionClient } from '../support/reflection-client';

// What a user gets from `npm pack` + the locked install (deploy/install-locked.sh, as the image
// and the guest image do it): the tarball holds only what runs, the installed tree is exactly the
// production part of package-lock.json, every bin answers --help and --version, and the installed
// daemon serves and stops cleanly. The deployed programs are the bundles (package.json "bin" ->
// dist/bundle/<bin>.js; cdh-emulator, a development stand-in, stays on dist/src): the installed
// daemon loads no file but its bundle, and serves with the package's node_modules moved away.

const run = promisify(execFile);

interface Manifest {
  name: string;
  version: string;
  bin: Record<string, string>;
}

const manifest = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as Manifest;
/** The programs a guest runs: every bin but the development emulator. */
const DEPLOYED = Object.keys(manifest.bin).filter((name) => name !== 'cdh-emulator');

/** Every file node loaded as a module, from NODE_DEBUG=module's `load "<file>" for module` lines. */
function modulesLoaded(stderr: string): string[] {
  const lines = stderr.matchAll(/^MODULE \d+: load ("(?:[^"\\]|\\.)*") for module /gm);
  return [...new Set([...lines].map((line) => JSON.parse(line[1] as string) as string))];
}

/** npm's own settings from a parent `npm test` must not redirect the install. */
function npmEnv(): NodeJS.ProcessEnv {
  const env = childEnv();
  for (const name of Object.keys(env)) {
    if (/^npm_(config_(prefix|global_prefix|local_prefix|global|location)|command|lifecycle_.*)$/i.test(name))
      delete env[name];
  }
  return env;
}

/** `<path> -> version` of every package installed under `root`/node_modules (nested ones too). */
function installedPackages(root: string): Map<string, string> {
  const found = new Map<string, string>();
  const walk = (dir: string, rel: string): void => {
    if (!existsSync(dir)) return;
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
      if (entry.name.startsWith('@')) {
        walk(join(dir, entry.name), `${rel}${entry.name}/`);
        continue;
      }
      const path = `${rel}${entry.name}`;
      const manifestFile = join(dir, entry.name, 'package.json');
      if (existsSync(manifestFile))
        found.set(path, (JSON.parse(readFileSync(manifestFile, 'utf8')) as { version: string }).version);
      walk(join(dir, entry.name, 'node_modules'), `${path}/node_modules/`);
    }
  };
  walk(join(root, 'node_modules'), 'node_modules/');
  return found;
}

/** `<path> -> version` of the lockfile's production packages (what `npm ci --omit=dev` installs). */
function lockedProductionPackages(): Map<string, string> {
  const lock = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { version?: string; dev?: boolean; optional?: boolean; link?: boolean }>;
  };
  return new Map(
    Object.entries(lock.packages)
      .filter(
        ([path, entry]) => path.startsWith('node_modules/') && !entry.dev && !entry.optional && !entry.link,
      )
      .map(([path, entry]) => [path, entry.version ?? '']),
  );
}

function protoFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.proto'))
    .map((entry) => relative(PACKAGE_ROOT, join(entry.parentPath, entry.name)));
}

describe('installed package (npm pack, deploy/install-locked.sh into a prefix)', { timeout: 120_000 }, () => {
  const work = tempDir('cdh-pack-');
  const prefix = join(work.path, 'prefix');
  const installedRoot = join(prefix, 'lib/node_modules', manifest.name);
  let packedFiles: string[] = [];

  before(async () => {
    assert.ok(
      existsSync(join(PACKAGE_ROOT, 'dist/src/bin')),
      'dist/src is missing: build first (npm run build)',
    );
    // --ignore-scripts: pack the build that is there (npm test has just built it).
    const packed = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work.path], {
      cwd: PACKAGE_ROOT,
      env: npmEnv(),
      maxBuffer: 16 * 1024 * 1024,
    });
    const [result] = JSON.parse(packed.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
    assert.ok(result, 'npm pack --json printed its result');
    packedFiles = result.files.map((file) => file.path);
    // --prefer-offline: `npm ci` has filled the cache with every production dependency.
    await run(
      join(PACKAGE_ROOT, 'deploy/install-locked.sh'),
      [join(work.path, result.filename), join(PACKAGE_ROOT, 'package-lock.json'), prefix],
      {
        cwd: work.path,
        env: { ...npmEnv(), npm_config_prefer_offline: 'true' },
        maxBuffer: 16 * 1024 * 1024,
      },
    );
  });

  after(() => work.cleanup());

  test('the tarball holds only what runs: dist/src JavaScript, the bundles, protos, README, LICENSE', () => {
    const unexpected = packedFiles.filter(
      (path) =>
        !/^(package\.json|README\.md|LICENSE|dist\/src\/.+\.js|dist\/bundle\/[^/]+\.js|dist\/src\/protos\.binpb|protos\/.+\.proto)$/.test(
          path,
        ),
    );
    assert.deepEqual(unexpected, []);
    assert.ok(!packedFiles.includes('dist/bundle/cdh-emulator.js'), 'the emulator bundle is not shipped');
    for (const needed of [
      'package.json',
      'README.md',
      'LICENSE',
      'dist/src/protos.binpb',
      ...DEPLOYED.map((name) => `dist/bundle/${name}.js`),
      ...protoFiles(PROTOS_DIR),
    ]) {
      assert.ok(packedFiles.includes(needed), `${needed} is in the tarball`);
    }
  });

  test('the installed dependencies are exactly the production packages package-lock.json pins', () => {
    const installed = installedPackages(installedRoot);
    const locked = lockedProductionPackages();
    const differing = [...locked]
      .filter(([path, version]) => installed.get(path) !== version)
      .map(([path, version]) => `${path}: locked ${version}, installed ${installed.get(path) ?? 'nothing'}`);
    const unlocked = [...installed.keys()].filter((path) => !locked.has(path));
    assert.deepEqual({ differing, unlocked }, { differing: [], unlocked: [] });
    assert.ok(locked.size > 0, 'the lockfile has production packages');
  });

  for (const [name, target] of Object.entries(manifest.bin)) {
    test(`bin ${name}: --help and --version work once installed`, async () => {
      assert.ok(
        existsSync(join(installedRoot, target)),
        `package.json bin "${name}" points at ${target}, which is not in the packed package (is its source in src/bin/ and built?)`,
      );
      const program = join(prefix, 'bin', name);
      const help = await run(program, ['--help'], { env: childEnv() });
      assert.match(help.stdout, /usage/i);
      const version = await run(program, ['--version'], { env: childEnv() });
      assert.ok(version.stdout.includes(manifest.version), `--version printed ${version.stdout}`);
    });
  }

  test('the installed daemon, with the example config, serves health SERVING on a temp socket and stops on SIGTERM', async () => {
    const daemon = await spawnDaemon({
      bin: join(prefix, 'bin', 'confidential-data-hub'),
      args: ['-c', join(PACKAGE_ROOT, 'deploy/config/cdh.toml')],
    });
    try {
      assert.equal(await daemon.client().check(''), 'SERVING');
      const reflection = new ReflectionClient(daemon.target);
      const [api] = await reflection
        .fileContainingSymbol('api.SecureMountRequest')
        .finally(() => reflection.close());
      assert.equal(api?.name, 'api.proto', 'reflection serves the compiled descriptors once installed');
      assert.equal(await daemon.stop('SIGTERM'), 0);
      assert.equal(existsSync(daemon.socketPath), false, 'socket removed');
    } finally {
      daemon.cleanup();
    }
  });

  test('every installed program but the emulator is its bundle', () => {
    for (const name of Object.keys(manifest.bin)) {
      const expected = name === 'cdh-emulator' ? `dist/src/bin/${name}.js` : `dist/bundle/${name}.js`;
      assert.equal(
        realpathSync(join(prefix, 'bin', name)),
        realpathSync(join(installedRoot, expected)),
        `${name} runs ${expected}`,
      );
    }
  });

  test('the installed daemon loads no module file but its bundle: start, health, reflection, a client_key unseal', async () => {
    const signer = 'installed-signer';
    const chain = await startAliyunChain('kst-installed00000000', signer);
    const keyDir = join(work.path, 'signing-keys');
    mkdirSync(keyDir, { recursive: true });
    writeFileSync(join(keyDir, signer), chain.publicJwk);
    const plaintext = 'installed-bundle-marker-7c1d';
    const daemon = await spawnDaemon({
      bin: join(prefix, 'bin', 'confidential-data-hub'),
      config: {
        ...clientKeyDaemonConfig(chain.emulator, chain.creds.dir),
        sealed_secret: { signing_key_dir: keyDir },
      },
      // No preload from the caller's NODE_OPTIONS: only what the program itself loads is listed.
      env: { NODE_DEBUG: 'module', NODE_OPTIONS: '' },
    });
    try {
      assert.equal(await daemon.client().check(''), 'SERVING');
      const reflection = new ReflectionClient(daemon.target);
      const services = await reflection.listServices().finally(() => reflection.close());
      assert.ok(services.includes('api.SealedSecretService'), services.join(', '));
      // The unseal evaluates the lazily embedded parts (node-forge for the PKCS#12, the gateway client).
      const secret = Buffer.from(await chain.sealEnvelope(plaintext, signer));
      assert.equal(Buffer.from(await daemon.client().unsealSecret(secret)).toString(), plaintext);
      assert.equal(await daemon.stop('SIGTERM'), 0);
      const loaded = modulesLoaded(daemon.stderr());
      assert.deepEqual(
        loaded.map((file) => realpathSync(file)),
        [realpathSync(join(installedRoot, 'dist/bundle/confidential-data-hub.js'))],
        'node loaded only the bundle (NODE_DEBUG=module)',
      );
    } finally {
      daemon.cleanup();
      await chain.close();
    }
  });

  test("with the package's node_modules moved away, the installed daemon serves and cdh-tool and secret answer", async () => {
    const modules = join(installedRoot, 'node_modules');
    const away = join(work.path, 'node_modules.away');
    renameSync(modules, away);
    try {
      const daemon = await spawnDaemon({
        bin: join(prefix, 'bin', 'confidential-data-hub'),
        args: ['-c', join(PACKAGE_ROOT, 'deploy/config/cdh.toml')],
      });
      try {
        const health = await run(
          join(prefix, 'bin', 'cdh-tool'),
          ['--socket', daemon.target, '--timeout-ms', '5000', 'health'],
          { env: childEnv() },
        );
        assert.equal(health.stdout.trim(), 'SERVING');
        const keygen = await run(
          join(prefix, 'bin', 'secret'),
          ['keygen', '--kid', 'away-key', '--output-dir', join(work.path, 'away-keys')],
          { env: childEnv() },
        );
        assert.equal(keygen.stderr, '');
        assert.ok(
          existsSync(join(work.path, 'away-keys', 'away-key-public.json')),
          'secret keygen wrote its key pair',
        );
        assert.equal(await daemon.stop('SIGTERM'), 0);
      } finally {
        daemon.cleanup();
      }
    } finally {
      renameSync(away, modules);
    }
  });
});
