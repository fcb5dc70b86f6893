import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, request as httpRequest, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import { CdhTtrpcClient } from '../../src/client/cdh-ttrpc-client';
import { PACKAGE_ROOT } from '../../src/package-info';
import { runCli } from '../support/cli';
import { CDH_TOOL_BIN, spawnDaemon, tempDir, type DaemonProcess } from '../../src/devtools/daemon';
import { buildLayer, makeTar, tagImage, writeImage } from '../support/oci-image';
import { pushImage, remoteDigest, startRegistry, type TestRegistry } from '../support/registry';
import { Bundles } from '../support/image-bundles';
import { buildGoAttestationAgent, spawnGoAttestationAgent, type LinedProcess } from '../support/rest';
import { until } from '../support/wait';

const work = tempDir('cdh-image-calls-');
const layout = join(work.path, 'layout');
const bundles = new Bundles(work.path);
let registry: TestRegistry;
let seq = 0;
const big = buildLayer(makeTar([{ path: 'big', content: randomBytes(8 << 20) }]), 'none');

function bundle(): string {
  return bundles.dir();
}

function imageConfig(registryHost: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    image: {
      work_dir: join(work.path, `store-${++seq}`),
      registry_config: { registry: [{ location: registryHost, insecure: true }] },
      ...extra,
    },
  };
}

before(async () => {
  registry = await startRegistry();
  const small = writeImage(layout, { layers: [buildLayer(makeTar([{ path: 'hello', content: 'hi' }]))] });
  tagImage(layout, 'small', small);
  const large = writeImage(layout, { layers: [big] });
  tagImage(layout, 'large', large);
  await pushImage(layout, 'small', `${registry.host}/calls/small:v1`);
  await pushImage(layout, 'large', `${registry.host}/calls/large:v1`);
});

after(async () => {
  await bundles.unmountAll();
  await registry?.stop();
  work.cleanup();
});

describe('PullImage over both transports and from cdh-tool', () => {
  let daemon: DaemonProcess;
  before(async () => {
    daemon = await spawnDaemon({ config: imageConfig(registry.host) });
  });
  after(async () => {
    await daemon?.stop();
    daemon?.cleanup();
  });

  test('ttrpc (as the Kata agent calls it) answers the manifest digest and mounts the rootfs', async () => {
    const client = new CdhTtrpcClient(daemon.target);
    try {
      const target = bundle();
      const digest = await client.pullImage(`${registry.host}/calls/small:v1`, target, { timeoutMs: 60_000 });
      assert.equal(digest, await remoteDigest(`${registry.host}/calls/small:v1`));
      assert.ok(existsSync(join(target, 'rootfs', 'hello')));
      await assert.rejects(
        client.pullImage(`${registry.host}/calls/none:v1`, bundle(), { timeoutMs: 60_000 }),
        (error: { code?: number; peerMessage?: string }) => {
          assert.equal(error.code, 5);
          assert.match(error.peerMessage ?? '', /IMAGE_NOT_FOUND.*calls\/none:v1/);
          return true;
        },
      );
    } finally {
      client.close();
    }
  });

  for (const ttrpc of [false, true]) {
    test(`cdh-tool pull-image${ttrpc ? ' --ttrpc' : ''} prints the digest; a failure is one line with the status`, async () => {
      const flags = ['--socket', daemon.target, ...(ttrpc ? ['--ttrpc'] : [])];
      const target = bundle();
      const ok = await runCli(CDH_TOOL_BIN, [
        ...flags,
        'pull-image',
        '--image-url',
        `${registry.host}/calls/small:v1`,
        '--bundle-path',
        target,
      ]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(ok.stdout, `${await remoteDigest(`${registry.host}/calls/small:v1`)}\n`);
      const bad = await runCli(CDH_TOOL_BIN, [
        ...flags,
        'pull-image',
        '--image-url',
        `${registry.host}/calls/small:v1`,
        '--bundle-path',
        target,
      ]);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /^cdh-tool: FAILED_PRECONDITION: IMAGE_BUNDLE_IN_USE: .*config\.json\n$/);
    });
  }
});

describe('cdh-oneshot pull-image (no daemon)', () => {
  test('pulls into the bundle and prints the digest; a failure is one line on stderr, non-zero exit', async () => {
    const config = join(work.path, 'oneshot.json');
    writeFileSync(config, JSON.stringify(imageConfig(registry.host)));
    const target = bundle();
    const oneshot = join(PACKAGE_ROOT, 'dist/src/bin/cdh-oneshot.js');
    const ok = await runCli(oneshot, [
      '-c',
      config,
      'pull-image',
      '--image-url',
      `${registry.host}/calls/small:v1`,
      '--bundle-path',
      target,
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, `${await remoteDigest(`${registry.host}/calls/small:v1`)}\n`);
    assert.ok(existsSync(join(target, 'rootfs', 'hello')));
    const bad = await runCli(oneshot, [
      '-c',
      config,
      '--log-level',
      'error',
      'pull-image',
      '--image-url',
      `${registry.host}/calls/gone:v1`,
      '--bundle-path',
      bundle(),
    ]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /^cdh-oneshot: NOT_FOUND: image ".*calls\/gone:v1".*not found in the registry/);
    assert.equal(bad.stderr.trim().split('\n').length, 1, JSON.stringify(bad.stderr));
  });
});

describe("the caller's deadline bounds the pull and cancels the download", () => {
  let proxy: Server;
  let proxyHost = '';
  let daemon: DaemonProcess;
  const blobBodies = { started: 0, closedEarly: 0 };

  before(async () => {
    // A registry front that trickles blob bodies (16 KiB every 50 ms) and notes abandoned ones.
    proxy = createHttpServer((req, res) => {
      const upstream = httpRequest(
        {
          host: '127.0.0.1',
          port: Number(registry.host.split(':')[1]),
          path: req.url,
          method: req.method,
          headers: req.headers,
        },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          if (!/\/blobs\/sha256:/.test(req.url ?? '') || req.method !== 'GET') return void answer.pipe(res);
          blobBodies.started++;
          answer.pause();
          let done = false;
          res.on('close', () => {
            if (!done) blobBodies.closedEarly++;
            answer.destroy();
          });
          const tick = setInterval(() => {
            const chunk = answer.read(16 * 1024) as Buffer | null;
            if (chunk) res.write(chunk);
            else if (answer.readableEnded) {
              done = true;
              clearInterval(tick);
              res.end();
            }
          }, 50);
          res.on('close', () => clearInterval(tick));
        },
      );
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    proxyHost = `127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    daemon = await spawnDaemon({ config: imageConfig(proxyHost) });
  });

  after(async () => {
    await daemon?.stop();
    daemon?.cleanup();
    proxy?.closeAllConnections();
    await new Promise((resolve) => proxy?.close(resolve));
  });

  test('DEADLINE_EXCEEDED at the deadline; the blob download stops and no partial layer stays', async () => {
    const store = join(work.path, `store-${seq}`, 'layers');
    const started = Date.now();
    await assert.rejects(
      daemon.client().pullImage(`${proxyHost}/calls/large:v1`, bundle(), 1500),
      (error: grpc.ServiceError) => {
        assert.equal(error.code, 4, error.details);
        return true;
      },
    );
    assert.ok(Date.now() - started < 5000);
    assert.ok(await until(() => blobBodies.closedEarly >= 1, 5000), 'the daemon closed the blob download');
    assert.ok(
      await until(() => existsSync(store) && readdirSync(store).length === 0, 5000),
      readdirSync(store).join(','),
    );
  });
});

describe('ExtendRuntimeMeasurement after a pull (a Go ttrpc attestation agent)', () => {
  let agentBinary: string | undefined;
  let skip: string | undefined;
  before(() => {
    const built = buildGoAttestationAgent(work.path);
    if ('skip' in built) skip = built.skip;
    else agentBinary = built.binary;
  });

  async function withAgent(
    flags: string[],
    body: (agent: LinedProcess, daemon: DaemonProcess) => Promise<void>,
  ): Promise<void> {
    const socket = join(work.path, `aa-${++seq}.sock`);
    const agent = await spawnGoAttestationAgent(agentBinary as string, socket, flags);
    const daemon = await spawnDaemon({
      config: imageConfig(registry.host),
      env: { AA_SOCKET: `unix://${socket}` },
    });
    try {
      await body(agent, daemon);
    } finally {
      await daemon.stop();
      daemon.cleanup();
      await agent.stop();
    }
  }

  test('the event names the image as given and the manifest digest', async (t) => {
    if (skip) return t.skip(skip);
    await withAgent([], async (agent, daemon) => {
      const ref = `${registry.host}/calls/small:v1`;
      const digest = await daemon.client().pullImage(ref, bundle(), 60_000);
      assert.ok(await until(() => agent.lines.some((l) => l.startsWith('aael ')), 3000));
      assert.deepEqual(
        agent.lines.filter((l) => l.startsWith('aael ')),
        [`aael github.com/confidential-containers PullImage {"image":"${ref}", "digest":"${digest}"}`],
      );
    });
  });

  test('an agent that does not measure (NOT_SUPPORTED) lets the pull succeed', async (t) => {
    if (skip) return t.skip(skip);
    await withAgent(['-aael', 'not-supported'], async (_agent, daemon) => {
      assert.match(
        await daemon.client().pullImage(`${registry.host}/calls/small:v1`, bundle(), 60_000),
        /^sha256:/,
      );
    });
  });

  test('an agent socket that answers nothing fails the pull: UNAVAILABLE naming the image', async () => {
    const socket = join(work.path, `dead-aa-${++seq}.sock`);
    const dead = createNetServer((connection) => connection.destroy());
    await new Promise<void>((resolve) => dead.listen(socket, resolve));
    const daemon = await spawnDaemon({
      config: imageConfig(registry.host),
      env: { AA_SOCKET: `unix://${socket}` },
    });
    try {
      await assert.rejects(
        daemon.client().pullImage(`${registry.host}/calls/small:v1`, bundle(), 60_000),
        (error: grpc.ServiceError) => {
          assert.equal(error.code, 14, error.details);
          assert.match(error.details, /IMAGE_MEASUREMENT_FAILED.*calls\/small:v1.*attestation agent/);
          return true;
        },
      );
    } finally {
      await daemon.stop();
      daemon.cleanup();
      await new Promise((resolve) => dead.close(resolve));
    }
  });
});
