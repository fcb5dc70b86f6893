import assert from 'node:assert/strict';
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import { spawnDaemon, tempDir, type DaemonProcess } from '../../src/devtools/daemon';
import { buildLayer, makeTar, tagImage, writeImage } from '../support/oci-image';
import { pushImage, startRegistry, type TestRegistry } from '../support/registry';
import { Bundles } from '../support/image-bundles';

const work = tempDir('cdh-image-settings-');
const bundles = new Bundles(work.path);
let registry: TestRegistry;
let seq = 0;
const layer = buildLayer(makeTar([{ path: 'settings', content: 'from a resource' }]));

function bundle(): string {
  return bundles.dir();
}

async function pullOk(daemon: DaemonProcess, ref: string): Promise<void> {
  const target = bundle();
  await daemon.client().pullImage(ref, target, 60_000);
  assert.ok(existsSync(join(target, 'rootfs', 'settings')));
}

before(async () => {
  registry = await startRegistry();
  const layout = join(work.path, 'layout');
  const image = writeImage(layout, { layers: [layer] });
  tagImage(layout, 'img', image);
  await pushImage(layout, 'img', `${registry.host}/settings/img:v1`);
});

after(async () => {
  await bundles.unmountAll();
  await registry?.stop();
  work.cleanup();
});

describe('[image] settings read from resources', () => {
  test('registry_configuration_uri: a remap of an unqualified name, trying a dead mirror first', async () => {
    const conf = join(work.path, 'registries.conf');
    writeFileSync(
      conf,
      [
        'unqualified-search-registries = ["docker.io"]',
        '[[registry]]',
        'prefix = "docker.io/settings"',
        `location = "${registry.host}/settings"`,
        'insecure = true',
        '[[registry.mirror]]',
        'location = "127.0.0.1:1/settings"',
        'insecure = true',
      ].join('\n'),
    );
    const daemon = await spawnDaemon({
      config: {
        image: { work_dir: join(work.path, `store-${++seq}`), registry_configuration_uri: `file://${conf}` },
      },
    });
    try {
      await pullOk(daemon, 'settings/img:v1');
      assert.ok(daemon.logLines.some((l) => l.includes('pull task failed') && l.includes('127.0.0.1:1')));
    } finally {
      await daemon.stop();
      daemon.cleanup();
    }
  });

  test('a policy named kbs:///… comes through the KBC (offline_fs) at every pull: it rejects, then a new one accepts', async () => {
    const resources = join(work.path, 'offline-fs.json');
    const policy = { default: [{ type: 'reject' }] };
    writeFileSync(
      resources,
      JSON.stringify({
        'default/security-policy/test': Buffer.from(JSON.stringify(policy)).toString('base64'),
      }),
    );
    const daemon = await spawnDaemon({
      config: {
        kbc: { name: 'offline_fs_kbc', offline_fs: { resource_files: [resources] } },
        image: {
          work_dir: join(work.path, `store-${++seq}`),
          image_security_policy_uri: 'kbs:///default/security-policy/test',
          registry_config: { registry: [{ location: registry.host, insecure: true }] },
        },
      },
    });
    try {
      await assert.rejects(
        daemon.client().pullImage(`${registry.host}/settings/img:v1`, bundle(), 60_000),
        (error: grpc.ServiceError) => {
          assert.equal(error.code, 7, error.details);
          assert.match(error.details, /IMAGE_POLICY_REJECTED.*rejected by the default requirement/);
          return true;
        },
      );
      const accept = { default: [{ type: 'insecureAcceptAnything' }] };
      writeFileSync(
        resources,
        JSON.stringify({
          'default/security-policy/test': Buffer.from(JSON.stringify(accept)).toString('base64'),
        }),
      );
      await pullOk(daemon, `${registry.host}/settings/img:v1`);
    } finally {
      await daemon.stop();
      daemon.cleanup();
    }
  });

  test('a malformed policy file is FAILED_PRECONDITION naming the key; the daemon keeps serving', async () => {
    const bad = join(work.path, 'bad-policy.json');
    writeFileSync(bad, '{"default": []}');
    const daemon = await spawnDaemon({
      config: {
        image: {
          work_dir: join(work.path, `store-${++seq}`),
          image_security_policy_uri: bad,
          registry_config: { registry: [{ location: registry.host, insecure: true }] },
        },
      },
    });
    try {
      await assert.rejects(
        daemon.client().pullImage(`${registry.host}/settings/img:v1`, bundle(), 60_000),
        (error: grpc.ServiceError) => {
          assert.equal(error.code, 9, error.details);
          assert.match(error.details, /IMAGE_SETTINGS_INVALID.*bad-policy\.json.*non-empty list/);
          return true;
        },
      );
      assert.equal(await daemon.client().check(), 'SERVING');
    } finally {
      await daemon.stop();
      daemon.cleanup();
    }
  });
});

describe('proxies and restarts', () => {
  let proxy: Server;
  let proxyUrl = '';
  const tunnels: string[] = [];

  before(async () => {
    // An HTTP CONNECT proxy (undici tunnels every request through CONNECT).
    proxy = createServer();
    proxy.on('connect', (req, socket, head) => {
      tunnels.push(req.url ?? '');
      const [host, port] = (req.url ?? '').split(':');
      const upstream = connect(Number(port), host, () => {
        socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        upstream.write(head);
        upstream.pipe(socket);
        socket.pipe(upstream);
      });
      upstream.on('error', () => socket.destroy());
      socket.on('error', () => upstream.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  });

  after(async () => {
    proxy?.closeAllConnections();
    await new Promise((resolve) => proxy?.close(resolve));
  });

  test('[image.image_pull_proxy] http_proxy carries the registry traffic; no_proxy bypasses it', async () => {
    for (const noProxy of ['', '127.0.0.1']) {
      tunnels.length = 0;
      const daemon = await spawnDaemon({
        config: {
          image: {
            work_dir: join(work.path, `store-${++seq}`),
            registry_config: { registry: [{ location: registry.host, insecure: true }] },
            image_pull_proxy: { http_proxy: proxyUrl, no_proxy: noProxy },
          },
        },
      });
      try {
        await pullOk(daemon, `${registry.host}/settings/img:v1`);
        if (noProxy === '') assert.ok(tunnels.includes(registry.host), tunnels.join(','));
        else assert.deepEqual(tunnels, []);
      } finally {
        await daemon.stop();
        daemon.cleanup();
      }
    }
  });

  test('the layer store survives a restart: a new daemon on the same work_dir downloads no layer', async () => {
    const config = {
      image: {
        work_dir: join(work.path, `store-${++seq}`),
        registry_config: { registry: [{ location: registry.host, insecure: true }] },
      },
    };
    const first = await spawnDaemon({ config });
    try {
      await pullOk(first, `${registry.host}/settings/img:v1`);
    } finally {
      await first.stop();
      first.cleanup();
    }
    const before = registry.blobGets(layer.digest);
    const second = await spawnDaemon({ config });
    try {
      await pullOk(second, `${registry.host}/settings/img:v1`);
      assert.equal(registry.blobGets(layer.digest), before);
      // A layer directory removed by hand is noticed and unpacked again.
      const layers = join(config.image.work_dir, 'layers');
      for (const name of readdirSync(layers)) rmSync(join(layers, name), { recursive: true, force: true });
      await pullOk(second, `${registry.host}/settings/img:v1`);
      assert.equal(registry.blobGets(layer.digest), before + 1);
    } finally {
      await second.stop();
      second.cleanup();
    }
  });
});
