import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import { spawnDaemon, tempDir, type DaemonProcess } from '../../src/devtools/daemon';
import {
  buildLayer,
  makeTar,
  tagImage,
  writeImage,
  type BuiltLayer,
  type TarEntry,
} from '../support/oci-image';
import { createTestCa } from '../../src/emulators/pki';
import { pushImage, startRegistry, type TestRegistry } from '../support/registry';
import { Bundles } from '../support/image-bundles';
import { startTokenServer, type TokenServer } from '../support/token-server';

const work = tempDir('cdh-image-reg-');
const layout = join(work.path, 'layout');
const bundles = new Bundles(work.path);

function image(tag: string, layers: readonly BuiltLayer[]): void {
  const built = writeImage(layout, { layers });
  tagImage(layout, tag, built);
}

function layerOf(entries: TarEntry[]): BuiltLayer {
  return buildLayer(makeTar(entries), 'gzip');
}

const base = layerOf([
  { path: 'base/', type: 'dir' },
  { path: 'base/blob', content: randomBytes(1 << 20) },
]);
const topA = layerOf([{ path: 'a', content: 'a' }]);
const topB = layerOf([{ path: 'b', content: 'b' }]);
const tamper = layerOf([{ path: 'tamper', content: randomBytes(4096) }]);

let seq = 0;
function bundle(): string {
  return bundles.dir();
}

async function startDaemonFor(image: Record<string, unknown>): Promise<DaemonProcess> {
  return spawnDaemon({ config: { image: { work_dir: join(work.path, `store-${++seq}`), ...image } } });
}

function insecure(...hosts: string[]): Record<string, unknown> {
  return { registry_config: { registry: hosts.map((location) => ({ location, insecure: true })) } };
}

async function expectFailure(
  daemon: DaemonProcess,
  ref: string,
  code: number,
  pattern: RegExp,
  target = bundle(),
): Promise<string> {
  let details = '';
  await assert.rejects(daemon.client().pullImage(ref, target, 60_000), (error: grpc.ServiceError) => {
    details = error.details;
    assert.equal(error.code, code, error.details);
    assert.match(error.details, pattern);
    return true;
  });
  return details;
}

function storeLayers(daemon: DaemonProcess): string[] {
  const dir = join(work.path, `store-${daemonStores.get(daemon)}`, 'layers');
  return existsSync(dir) ? readdirSync(dir) : [];
}
const daemonStores = new Map<DaemonProcess, number>();

before(() => {
  image('a', [base, topA]);
  image('b', [base, topB]);
  image('tamper', [tamper]);
});

after(async () => {
  await bundles.unmountAll();
  work.cleanup();
});

describe('registry auth: Basic (htpasswd) and a Bearer token realm', () => {
  let basic: TestRegistry;
  let bearer: TestRegistry;
  let tokens: TokenServer;
  let good: DaemonProcess;
  let wrong: DaemonProcess;
  let none: DaemonProcess;

  before(async () => {
    const htpasswd = join(work.path, 'htpasswd');
    writeFileSync(htpasswd, execFileSync('htpasswd', ['-Bbn', 'alice', 'right-password']));
    basic = await startRegistry({ htpasswd });
    tokens = await startTokenServer('bob', 'token-password');
    const certs = join(work.path, 'token-cert.pem');
    writeFileSync(certs, tokens.certPem);
    bearer = await startRegistry({
      token: { realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootCertBundle: certs },
    });
    await pushImage(layout, 'a', `${basic.host}/auth/a:v1`, ['--dest-creds', 'alice:right-password']);
    await pushImage(layout, 'a', `${bearer.host}/auth/a:v1`, ['--dest-creds', 'bob:token-password']);
    const auth = (pairs: Record<string, string>): string => {
      const file = join(work.path, `auth-${++seq}.json`);
      const auths: Record<string, { auth: string }> = {};
      for (const [host, creds] of Object.entries(pairs))
        auths[host] = { auth: Buffer.from(creds).toString('base64') };
      writeFileSync(file, JSON.stringify({ auths }));
      return file;
    };
    good = await startDaemonFor({
      ...insecure(basic.host, bearer.host),
      authenticated_registry_credentials_uri: auth({
        [basic.host]: 'alice:right-password',
        [`${bearer.host}/auth`]: 'bob:token-password',
      }),
    });
    wrong = await startDaemonFor({
      ...insecure(basic.host, bearer.host),
      authenticated_registry_credentials_uri: `file://${auth({ [basic.host]: 'alice:nope', [bearer.host]: 'bob:nope' })}`,
    });
    none = await startDaemonFor(insecure(basic.host, bearer.host));
  });

  after(async () => {
    for (const d of [good, wrong, none]) {
      await d?.stop();
      d?.cleanup();
    }
    await basic?.stop();
    await bearer?.stop();
    await tokens?.close();
  });

  test('Basic credentials from auth.json pull the image', async () => {
    const target = bundle();
    assert.match(
      await good.client().pullImage(`${basic.host}/auth/a:v1`, target, 60_000),
      /^sha256:[0-9a-f]{64}$/,
    );
    assert.ok(existsSync(join(target, 'rootfs', 'base', 'blob')));
  });

  test('a Bearer challenge is answered with a token from the realm (credentials from the parent-path key)', async () => {
    const before = tokens.requests.length;
    const target = bundle();
    await good.client().pullImage(`${bearer.host}/auth/a:v1`, target, 60_000);
    assert.ok(existsSync(join(target, 'rootfs', 'a')));
    const asked = tokens.requests.slice(before);
    assert.deepEqual(asked, [{ scope: 'repository:auth/a:pull', authorized: true }]);
  });

  test('wrong credentials are PERMISSION_DENIED naming the image, for Basic and for the token realm', async () => {
    const b = await expectFailure(
      wrong,
      `${basic.host}/auth/a:v1`,
      7,
      /IMAGE_REGISTRY_DENIED.*auth\/a:v1.*refused the credentials/,
    );
    const t = await expectFailure(
      wrong,
      `${bearer.host}/auth/a:v1`,
      7,
      /IMAGE_REGISTRY_DENIED.*auth\/a:v1.*token service/,
    );
    for (const message of [b, t]) assert.doesNotMatch(message, /nope|right-password|token-password/);
    for (const d of [good, wrong, none])
      assert.doesNotMatch(
        d.logLines.join('\n'),
        /nope|right-password|token-password|Bearer ey|Basic [A-Za-z0-9+/=]{8}/,
      );
  });

  test('no credentials for a registry that needs them is PERMISSION_DENIED', async () => {
    await expectFailure(none, `${basic.host}/auth/a:v1`, 7, /IMAGE_REGISTRY_DENIED.*requires credentials/);
  });
});

describe('HTTPS registries: system roots plus extra_root_certificates', () => {
  let registry: TestRegistry;
  let trusted: DaemonProcess;
  let untrusted: DaemonProcess;

  before(async () => {
    const ca = createTestCa('CDH Test Registry CA');
    const cert = ca.issueServerCert(['localhost'], { ipAddresses: ['127.0.0.1'] });
    const dir = join(work.path, 'tls');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'cert.pem'), cert.chainPem);
    writeFileSync(join(dir, 'key.pem'), cert.keyPem);
    registry = await startRegistry({
      tls: { certificate: join(dir, 'cert.pem'), key: join(dir, 'key.pem') },
    });
    await pushImage(layout, 'a', `${registry.host}/tls/a:v1`);
    trusted = await startDaemonFor({ extra_root_certificates: [ca.certPem] });
    untrusted = await startDaemonFor({});
  });

  after(async () => {
    for (const d of [trusted, untrusted]) {
      await d?.stop();
      d?.cleanup();
    }
    await registry?.stop();
  });

  test('a registry whose CA is in extra_root_certificates is pulled over HTTPS', async () => {
    const target = bundle();
    await trusted.client().pullImage(`${registry.host}/tls/a:v1`, target, 60_000);
    assert.ok(existsSync(join(target, 'rootfs', 'a')));
  });

  test('without that CA the TLS handshake fails: UNAVAILABLE (TLS is never skipped)', async () => {
    await expectFailure(
      untrusted,
      `${registry.host}/tls/a:v1`,
      14,
      /IMAGE_REGISTRY_UNAVAILABLE.*certificate/i,
    );
  });
});

describe('failures: registry down, tampered blob, shared downloads', () => {
  let registry: TestRegistry;
  let daemon: DaemonProcess;
  let downHost = '';

  before(async () => {
    registry = await startRegistry();
    await pushImage(layout, 'a', `${registry.host}/test/a:v1`);
    await pushImage(layout, 'b', `${registry.host}/test/b:v1`);
    await pushImage(layout, 'tamper', `${registry.host}/test/tamper:v1`);
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    downHost = `127.0.0.1:${(closed.address() as { port: number }).port}`;
    await new Promise((resolve) => closed.close(resolve));
    daemon = await startDaemonFor(insecure(registry.host, downHost));
    daemonStores.set(daemon, seq);
  });

  after(async () => {
    await daemon?.stop();
    daemon?.cleanup();
    await registry?.stop();
  });

  test('a registry that is down is UNAVAILABLE naming the image and the registry', async () => {
    await expectFailure(
      daemon,
      `${downHost}/test/a:v1`,
      14,
      new RegExp(`IMAGE_REGISTRY_UNAVAILABLE.*test/a:v1.*${downHost}.*ECONNREFUSED`),
    );
  });

  test('two concurrent pulls of images sharing a layer download it once; a later pull downloads nothing', async () => {
    const [a, b] = await Promise.all([
      daemon.client().pullImage(`${registry.host}/test/a:v1`, bundle(), 60_000),
      daemon.client().pullImage(`${registry.host}/test/b:v1`, bundle(), 60_000),
    ]);
    assert.notEqual(a, b);
    assert.equal(registry.blobGets(base.digest), 1);
    assert.equal(registry.blobGets(topA.digest), 1);
    assert.equal(registry.blobGets(topB.digest), 1);
    await daemon.client().pullImage(`${registry.host}/test/a:v1`, bundle(), 60_000);
    assert.equal(registry.blobGets(base.digest), 1);
    assert.equal(registry.blobGets(topA.digest), 1);
  });

  test('a blob whose bytes do not match its digest is DATA_LOSS naming the layer, and nothing of it stays in the store', async () => {
    const hex = tamper.digest.slice('sha256:'.length);
    const blobFile = join(registry.dataDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
    const bytes = Buffer.from(tamper.blob);
    bytes[bytes.length - 5] = (bytes[bytes.length - 5] as number) ^ 0xff;
    writeFileSync(blobFile, bytes);
    const before = storeLayers(daemon);
    await expectFailure(
      daemon,
      `${registry.host}/test/tamper:v1`,
      15,
      new RegExp(`IMAGE_(DIGEST_MISMATCH|LAYER_INVALID).*test/tamper:v1.*${tamper.digest}`),
    );
    assert.deepEqual(storeLayers(daemon), before);
  });
});

describe('hostile layers through the daemon: nothing lands outside the layer', () => {
  let registry: TestRegistry;
  let daemon: DaemonProcess;
  const outside = join(work.path, 'host-outside');
  const climb = '../'.repeat(20);
  const hostile: Record<string, TarEntry[]> = {
    dotdot: [{ path: `${climb}${outside.slice(1)}/escape`, content: 'x' }],
    absolute: [{ path: `${outside}/abs-file`, content: 'inside the layer' }],
    symlink: [
      { path: 'evil', type: 'symlink', linkname: outside },
      { path: 'evil/pwned', content: 'x' },
    ],
    hardlink: [{ path: 'shadow', type: 'link', linkname: '/etc/shadow' }],
  };

  before(async () => {
    mkdirSync(outside, { recursive: true });
    registry = await startRegistry();
    for (const [name, entries] of Object.entries(hostile)) {
      image(`hostile-${name}`, [layerOf(entries)]);
      await pushImage(layout, `hostile-${name}`, `${registry.host}/hostile/${name}:v1`);
    }
    daemon = await startDaemonFor(insecure(registry.host));
    daemonStores.set(daemon, seq);
  });

  after(async () => {
    await daemon?.stop();
    daemon?.cleanup();
    await registry?.stop();
  });

  for (const [name, pattern] of [
    ['dotdot', /IMAGE_LAYER_INVALID.*hostile\/dotdot:v1.*layer sha256:[0-9a-f]{64}.*"\.\." component/],
    [
      'symlink',
      /IMAGE_LAYER_INVALID.*hostile\/symlink:v1.*"evil\/pwned" refused: parent "evil" is a symlink/,
    ],
    [
      'hardlink',
      /IMAGE_LAYER_INVALID.*hostile\/hardlink:v1.*"shadow" refused: hard link target "\/etc\/shadow"/,
    ],
  ] as const) {
    test(`${name}: the pull fails with DATA_LOSS naming the entry; no layer, no temp dir is left`, async () => {
      await expectFailure(daemon, `${registry.host}/hostile/${name}:v1`, 15, pattern);
      assert.deepEqual(readdirSync(outside), []);
      assert.deepEqual(storeLayers(daemon), []);
    });
  }

  test('absolute: the leading / is dropped and the file lands inside the rootfs', async () => {
    const target = bundle();
    await daemon.client().pullImage(`${registry.host}/hostile/absolute:v1`, target, 60_000);
    assert.deepEqual(readdirSync(outside), []);
    assert.ok(existsSync(join(target, 'rootfs', outside, 'abs-file')));
  });
});
