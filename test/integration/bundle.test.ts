import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { defaultConfig } from '../../src/config/types';
import { silentLogger } from '../../src/log';
import { PACKAGE_ROOT } from '../../src/package-info';
import { createClientKeyProvider } from '../../src/providers/aliyun/client-key';
import { generateSigningJwkPair, sealEnvelope, signSealedSecret } from '../../src/secret';
import { startAliyunScenario, type AliyunScenario } from '../../src/emulators/aliyun/scenario';
import { childEnv, spawnDaemon, tempDir, type DaemonProcess } from '../../src/devtools/daemon';
import { pythonGrpcAvailable, pythonGrpcClient } from '../support/python-grpc';
import { ReflectionClient } from '../support/reflection-client';
import { connectTtrpc, ttrpcUnsealSecret } from '../support/ttrpc-client';

/**
 * The guest artifact: each dist/bundle/<bin>.js copied alone into an empty directory (no
 * node_modules above it, no protos/ beside it) behaves as the bin it bundles, and the bundled
 * daemon serves both transports, reflection and a real unseal against the gateway emulator.
 */

const BUNDLE_DIR = join(PACKAGE_ROOT, 'dist', 'bundle');
const manifest = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as {
  bin: Record<string, string>;
};

function noNodeModulesAbove(dir: string): void {
  for (let d = dir; ; d = dirname(d)) {
    assert.equal(existsSync(join(d, 'node_modules')), false, `${d} has a node_modules`);
    if (dirname(d) === d) return;
  }
}

function run(
  program: string,
  args: string[],
  cwd: string,
): { status: number | null; out: string; err: string } {
  const result = spawnSync(process.execPath, [program, ...args], {
    cwd,
    env: childEnv(),
    encoding: 'utf8',
    timeout: 20_000,
  });
  return { status: result.status, out: result.stdout, err: result.stderr };
}

describe('the bundled programs, each alone in an empty directory', { timeout: 120_000 }, () => {
  const work = tempDir('cdh-bundle-');
  const alone = join(work.path, 'guest');
  let kms: AliyunScenario;
  let daemon: DaemonProcess | undefined;

  before(() => {
    mkdirSync(alone);
    for (const name of Object.keys(manifest.bin)) {
      copyFileSync(join(BUNDLE_DIR, `${name}.js`), join(alone, `${name}.js`));
    }
    noNodeModulesAbove(alone);
  });

  after(async () => {
    await daemon?.stop();
    daemon?.cleanup();
    await kms?.close();
    work.cleanup();
  });

  it('has one bundle per package.json bin and nothing else needed beside it', () => {
    assert.deepEqual(
      readdirSync(alone).sort(),
      Object.keys(manifest.bin)
        .map((n) => `${n}.js`)
        .sort(),
    );
  });

  for (const name of Object.keys(manifest.bin)) {
    for (const flag of ['--help', '--version']) {
      it(`${name} ${flag} answers as the tsc-built program does`, () => {
        const bundled = run(join(alone, `${name}.js`), [flag], alone);
        // Against dist/src/bin, what the bundle is made from (package.json bins point at the bundles).
        const built = run(join(PACKAGE_ROOT, 'dist/src/bin', `${name}.js`), [flag], PACKAGE_ROOT);
        assert.equal(bundled.err, built.err);
        assert.equal(bundled.status, built.status);
        assert.equal(bundled.out, built.out);
        assert.ok(bundled.out.length > 0, `${name} ${flag} printed nothing`);
      });
    }
  }

  it('the daemon serves SERVING, unseals over gRPC and ttrpc, and answers reflection', async () => {
    kms = await startAliyunScenario();
    const kid = 'bundle-test-key';
    const signing = generateSigningJwkPair(kid);
    const keyDir = join(work.path, 'sealed-secret');
    mkdirSync(keyDir);
    writeFileSync(join(keyDir, kid), JSON.stringify(signing.publicJwk));
    const config = defaultConfig();
    config.aliyun.credentialDir = kms.credentials.dir;
    config.aliyun.dkmsConnectTo = kms.emulator.connectTo;
    const provider = await createClientKeyProvider(kms.credentials.providerSettings, {
      config,
      logger: silentLogger(),
    });
    const plaintext = 'bundle-unseal-marker-51f0';
    let secret: Buffer;
    try {
      assert.ok(provider.encrypter);
      const payload = await sealEnvelope({
        encrypter: provider.encrypter,
        provider: 'aliyun',
        providerSettings: kms.credentials.providerSettings,
        keyId: kms.keyId,
        plaintext: Buffer.from(plaintext),
      });
      secret = Buffer.from(signSealedSecret(payload, signing.privateJwk, kid));
    } finally {
      await provider.close?.();
    }

    daemon = await spawnDaemon({
      bin: join(alone, 'confidential-data-hub.js'),
      config: { ...kms.daemonConfig, sealed_secret: { signing_key_dir: keyDir }, cache: { ttl_seconds: 0 } },
    });
    const client = daemon.client();
    assert.equal(await client.check('', 2000), 'SERVING');
    assert.equal(Buffer.from(await client.unsealSecret(secret)).toString(), plaintext);

    const ttrpc = await connectTtrpc(daemon.socketPath);
    try {
      const answer = await ttrpcUnsealSecret(ttrpc, secret);
      assert.equal(answer.status.code, 0, answer.status.message);
      assert.equal(answer.plaintext?.toString(), plaintext);
    } finally {
      await ttrpc.close();
    }

    const reflection = new ReflectionClient(daemon.target);
    try {
      const services = await reflection.listServices();
      assert.ok(services.includes('api.SealedSecretService'), services.join(', '));
      const files = await reflection.fileContainingSymbol('api.SealedSecretService');
      assert.ok(files.some((file) => (file.service ?? []).some((s) => s.name === 'SealedSecretService')));
    } finally {
      reflection.close();
    }
    for (const line of daemon.logLines) assert.ok(!line.includes(plaintext), 'plaintext in a log line');
  });

  it('evaluates no lazily loaded part before it is first used', async () => {
    const idle = await spawnDaemon({
      bin: join(alone, 'confidential-data-hub.js'),
      env: { NODE_V8_COVERAGE: join(work.path, 'coverage') },
    });
    assert.equal(await idle.client().check('', 2000), 'SERVING');
    assert.equal(await idle.stop(), 0);
    idle.cleanup();
    const ran = functionsRun(join(work.path, 'coverage'));
    assert.ok(ran.has('dist/src/app/daemon.js'), 'no coverage of the bundle was recorded');
    for (const lazy of [
      'loadBundlePart',
      'node_modules/@grpc/reflection/',
      'dist/src/providers/aliyun/client-key/',
      'dist/src/providers/aliyun/openapi/',
      // Nor does the Health/Check above: its messages go through src/server/flat-message.
      'node_modules/@bufbuild/protobuf/dist/cjs/index.js',
      'dist/src/gen/',
    ]) {
      const evaluated = [...ran].filter((name) => name.includes(lazy));
      assert.deepEqual(evaluated, [], `${lazy} ran before its first use`);
    }
  });

  it('serves Health Check and Watch to python3-grpcio without evaluating protobufjs or proto-loader', async (t) => {
    if (!pythonGrpcAvailable(t)) return;
    const served = await spawnDaemon({
      bin: join(alone, 'confidential-data-hub.js'),
      env: { NODE_V8_COVERAGE: join(work.path, 'coverage-health') },
    });
    try {
      const answer = await pythonGrpcClient(served.socketPath);
      assert.equal(answer.health, 'SERVING');
      assert.equal(answer.check_unknown, 'NOT_FOUND');
      assert.deepEqual(answer.watch, { '': 'SERVING', 'no.such.Service': 'SERVICE_UNKNOWN' });
      assert.ok(answer.services.includes('grpc.health.v1.Health'), answer.services.join(', '));
    } finally {
      assert.equal(await served.stop(), 0);
      served.cleanup();
    }
    const ran = functionsRun(join(work.path, 'coverage-health'));
    for (const family of [
      'node_modules/protobufjs/',
      'node_modules/@protobufjs/',
      'node_modules/@grpc/proto-loader/',
      'node_modules/long/',
    ]) {
      const evaluated = [...ran].filter((name) => name.includes(family));
      assert.deepEqual(evaluated, [], `${family} ran in the bundled daemon`);
    }
    // grpc-health-check's HealthImplementation, on the definition scripts/bundle-health.ts puts in.
    assert.ok(ran.has('node_modules/grpc-health-check/build/src/health.js'), 'grpc-health-check did not run');
    assert.ok(ran.has('dist/src/server/health-definition.js'), 'the health definition did not run');
  });
});

describe(
  'the daemon bundle with the code cache deploy/prime-code-cache.sh made beside it',
  { timeout: 60_000 },
  () => {
    it('starts from the cache and serves', async () => {
      const work = tempDir('cdh-bundle-primed-');
      let daemon: DaemonProcess | undefined;
      try {
        for (const name of ['confidential-data-hub', 'cdh-tool'])
          copyFileSync(join(BUNDLE_DIR, `${name}.js`), join(work.path, `${name}.js`));
        const primed = spawnSync('sh', [join(PACKAGE_ROOT, 'deploy/prime-code-cache.sh'), work.path], {
          env: childEnv(),
          encoding: 'utf8',
          timeout: 30_000,
        });
        assert.equal(primed.status, 0, primed.stderr);
        assert.deepEqual(
          readdirSync(work.path)
            .filter((file) => file.endsWith('.codecache'))
            .sort(),
          ['cdh-tool.js.codecache', 'confidential-data-hub.js.codecache'],
        );
        daemon = await spawnDaemon({ bin: join(work.path, 'confidential-data-hub.js') });
        const serving = daemon.logLines.find((line) => line.includes('"msg":"serving"'));
        assert.match(serving ?? '', /"code_cache":"used"/);
        assert.equal(await daemon.client().check('', 5000), 'SERVING');
      } finally {
        await daemon?.stop();
        daemon?.cleanup();
        work.cleanup();
      }
    });
  },
);

/**
 * V8's precise coverage (NODE_V8_COVERAGE), written at exit: the functions of the daemon bundle
 * that ran at all. esbuild names each module's wrapper after the module's path.
 */
function functionsRun(coverageDir: string): Set<string> {
  const ran = new Set<string>();
  for (const file of readdirSync(coverageDir)) {
    const { result } = JSON.parse(readFileSync(join(coverageDir, file), 'utf8')) as {
      result: Array<{
        url: string;
        functions: Array<{ functionName: string; ranges: Array<{ count: number }> }>;
      }>;
    };
    for (const script of result.filter((s) => s.url.endsWith('/confidential-data-hub.js'))) {
      for (const fn of script.functions) if ((fn.ranges[0]?.count ?? 0) > 0) ran.add(fn.functionName);
    }
  }
  return ran;
}
