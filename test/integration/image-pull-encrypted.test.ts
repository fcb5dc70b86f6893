import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import { startAliyunScenario, type AliyunScenario } from '../../src/emulators/aliyun/scenario';
import { runCli } from '../support/cli';
import { CDH_TOOL_BIN, programPath, spawnDaemon, tempDir, type DaemonProcess } from '../support/daemon';
import {
  replaceDiffId,
  rewrapLayout,
  rsaRecipient,
  secretKeyprovider,
  skopeoEncrypt,
  tamperLayer,
  type PacketWrapper,
  type RsaRecipient,
} from '../support/encrypted-image';
import { ccKbcConfig, startKbsWorld, type KbsWorld } from '../support/kbs-world';
import { buildLayer, makeTar, tagImage, writeImage, type TarEntry } from '../support/oci-image';
import { keyproviderAliFlags } from '../support/keyprovider-world';
import { pushImage, startRegistry, type TestRegistry } from '../support/registry';
import { diffTrees, snapshotTree, umociUnpack, unmount, type TreeNode } from '../support/tree';

/**
 * PullImage of images encrypted by Debian's skopeo (`jwe:`), their layer keys re-wrapped by
 * `secret keyprovider` (ocicrypt's cmd provider) into `provider.attestation-agent` packets: v1
 * with a KEK served by the KBS emulator (cc_kbc) and v2 with the Alibaba Cloud KMS (dkms gateway
 * emulator). The daemon runs as a process.
 */

const DATA_LOSS = 15;
const PERMISSION_DENIED = 7;
const KEK_ID = 'kbs:///default/image-kek/1';
const KEK = randomBytes(32);

const LOWER: TarEntry[] = [
  { path: 'etc/', type: 'dir' },
  { path: 'etc/hosts', content: '127.0.0.1 localhost\n' },
  { path: 'bin/', type: 'dir' },
  { path: 'bin/tool', content: '#!/bin/sh\necho tool\n', mode: 0o4755 },
  { path: 'bin/link', type: 'symlink', linkname: 'tool' },
  { path: 'bin/hard', type: 'link', linkname: 'bin/tool' },
  { path: 'home/user/', type: 'dir', mode: 0o750, uid: 1000, gid: 1000 },
  { path: 'home/user/notes', content: 'mine\n', mode: 0o640, uid: 1000, gid: 1000 },
  { path: 'opaque/', type: 'dir' },
  { path: 'opaque/a', content: 'a\n' },
  { path: 'remove-me', content: 'gone soon\n' },
];
const UPPER: TarEntry[] = [
  { path: '.wh.remove-me' },
  { path: 'opaque/', type: 'dir' },
  { path: 'opaque/.wh..wh..opq' },
  { path: 'opaque/c', content: 'c\n' },
  { path: 'etc/', type: 'dir' },
  { path: 'etc/hosts', content: '127.0.0.1 localhost upper\n', mode: 0o600 },
  { path: 'data/', type: 'dir', uid: 1000, gid: 1000 },
  { path: 'data/x', content: randomBytes(300_000), uid: 1000, gid: 1000 },
];

/** `secret keyprovider kbs` (Go-style request): a v1 packet, A256GCM under the KEK in `kekFile`. */
function kbsWrapper(kekFile: string, kid = KEK_ID): PacketWrapper {
  return secretKeyprovider(['kbs', '--kid', kid, '--kek-file', kekFile], 'go');
}

/** `secret keyprovider ali` (Rust-style request): a v2 packet, the options encrypted by the KMS. */
function aliyunWrapper(kms: AliyunScenario): PacketWrapper {
  return secretKeyprovider(keyproviderAliFlags(kms), 'rust', {
    ALIYUN_DKMS_CONNECT_TO: kms.emulator.connectTo,
  });
}

interface Failure {
  code: number;
  details: string;
}

describe('PullImage of skopeo-encrypted layers with keys in provider.attestation-agent packets', () => {
  const work = tempDir('cdh-enc-image-');
  const plain = join(work.path, 'plain');
  const store = join(work.path, 'store');
  const kekFile = join(work.path, 'kek.bin');
  const mounts: string[] = [];
  const secrets: string[] = [KEK.toString('base64'), KEK.toString('hex')];
  const encrypted = new Map<string, string[]>();
  let registry: TestRegistry;
  let world: KbsWorld;
  let kms: AliyunScenario;
  let daemon: DaemonProcess;
  let recipient: RsaRecipient;
  let expected: Map<string, TreeNode>;

  /** skopeo-encrypts the plain image, re-wraps its keys and pushes it as `test/<name>:v1`. */
  async function publish(
    name: string,
    wrap: PacketWrapper,
    options: {
      layers?: number[];
      zstd?: boolean;
      extraPackets?: Buffer[];
      tamper?: boolean;
      wrongDiffId?: string;
    } = {},
  ): Promise<string> {
    const layout = join(work.path, `enc-${name}`);
    await skopeoEncrypt(plain, layout, 'v1', recipient, options);
    const rewrapped = await rewrapLayout(layout, 'v1', recipient, wrap, options.extraPackets);
    for (const json of rewrapped.options) {
      const parsed = JSON.parse(json) as { symkey: string };
      secrets.push(json, parsed.symkey, Buffer.from(parsed.symkey, 'base64').toString('hex'));
    }
    let layers = rewrapped.encryptedLayers;
    if (options.tamper) layers = [tamperLayer(layout, 'v1', layers[layers.length - 1] as string)];
    if (options.wrongDiffId) {
      replaceDiffId(layout, 'v1', 1, options.wrongDiffId);
      layers = layers.slice(1);
    }
    encrypted.set(name, layers);
    await pushImage(layout, 'v1', `${registry.host}/test/${name}:v1`);
    return `${registry.host}/test/${name}:v1`;
  }

  before(async () => {
    registry = await startRegistry();
    recipient = rsaRecipient(work.path);
    const image = writeImage(plain, {
      layers: [buildLayer(makeTar(LOWER), 'gzip'), buildLayer(makeTar(UPPER), 'gzip')],
    });
    tagImage(plain, 'v1', image);
    expected = snapshotTree(await umociUnpack(plain, 'v1', join(work.path, 'umoci')));
    writeFileSync(kekFile, KEK, { mode: 0o600 });
    world = await startKbsWorld({ resources: { 'default/image-kek/1': KEK } });
    kms = await startAliyunScenario();
    daemon = await spawnDaemon({
      config: {
        log: { level: 'trace' },
        ...ccKbcConfig(world),
        ...kms.daemonConfig,
        image: {
          work_dir: store,
          registry_config: { registry: [{ location: registry.host, insecure: true }] },
        },
      },
    });
  });

  after(async () => {
    for (const m of mounts.reverse()) await unmount(m);
    await daemon?.stop();
    const logs = daemon?.logLines.join('\n') ?? '';
    daemon?.cleanup();
    await kms?.close();
    await world?.close();
    await registry?.stop();
    work.cleanup();
    // The log was at trace level and saw the unwraps; none of its lines holds key material.
    assert.ok(logs.includes('unwrapping a layer key'), 'no debug line of the unwraps in the log');
    for (const secret of secrets) assert.ok(!logs.includes(secret), 'key material reached a daemon log line');
  });

  /** PullImage over gRPC (the daemon's client), or over ttrpc with `cdh-tool --ttrpc` (as Kata calls it). */
  async function pull(ref: string, name: string, ttrpc = false): Promise<string> {
    const bundle = join(work.path, 'bundles', name);
    mounts.push(join(bundle, 'rootfs'));
    if (!ttrpc) await daemon.client().pullImage(ref, bundle, 120_000);
    else {
      const args = [
        '--socket',
        daemon.target,
        '--ttrpc',
        'pull-image',
        '--image-url',
        ref,
        '--bundle-path',
        bundle,
      ];
      const result = await runCli(CDH_TOOL_BIN, args, { timeoutMs: 120_000 });
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /^sha256:[0-9a-f]{64}\n$/);
    }
    return join(bundle, 'rootfs');
  }

  function assertNoSecret(text: string): void {
    for (const secret of secrets) assert.ok(!text.includes(secret), 'key material in a status message');
  }

  /**
   * Nothing of `digests` in the store: not in the meta store, no temp layer directory, nothing
   * staged; every layer directory is a recorded (verified) layer.
   */
  function assertNotStored(digests: readonly string[]): void {
    const meta = JSON.parse(readFileSync(join(store, 'meta_store.json'), 'utf8')) as {
      layers: Record<string, { id: number }>;
    };
    for (const d of digests) assert.ok(!(d in meta.layers), `${d} recorded in the meta store`);
    const recorded = Object.values(meta.layers).map((l) => String(l.id));
    assert.deepEqual(readdirSync(join(store, 'layers')).sort(), recorded.sort());
    assert.deepEqual(readdirSync(join(store, 'staging')), []);
  }

  test('v1 packets with the KEK from the KBS (cc_kbc): rootfs identical to the plaintext image under umoci', async () => {
    const ref = await publish('kbs', kbsWrapper(kekFile));
    assert.equal(encrypted.get('kbs')?.length, 2);
    const rootfs = await pull(ref, 'kbs');
    assert.deepEqual(diffTrees(snapshotTree(rootfs), expected), []);
  });

  test('v2 packets with provider aliyun (the KMS through the dkms gateway): the same rootfs', async () => {
    const ref = await publish('aliyun', aliyunWrapper(kms));
    const rootfs = await pull(ref, 'aliyun');
    assert.deepEqual(diffTrees(snapshotTree(rootfs), expected), []);
  });

  test('one layer left plaintext (--encrypt-layer), the first packet of the list not unwrappable: the next one is used', async () => {
    const unknownKid = await kbsWrapper(kekFile, 'kbs:///default/image-kek/absent')(Buffer.from('{}'));
    const ref = await publish('one-layer', kbsWrapper(kekFile), {
      layers: [1],
      extraPackets: unknownKid,
    });
    assert.equal(encrypted.get('one-layer')?.length, 1);
    const rootfs = await pull(ref, 'one-layer');
    assert.deepEqual(diffTrees(snapshotTree(rootfs), expected), []);
  });

  test('tar+zstd+encrypted layers over ttrpc (cdh-tool --ttrpc, as the Kata agent calls): the same rootfs', async () => {
    const ref = await publish('zstd', kbsWrapper(kekFile), { zstd: true });
    const rootfs = await pull(ref, 'zstd', true);
    assert.deepEqual(diffTrees(snapshotTree(rootfs), expected), []);
  });

  test('cdh-oneshot pull-image (no daemon, its own work_dir) decrypts the same image', async () => {
    const config = join(work.path, 'oneshot.json');
    writeFileSync(
      config,
      JSON.stringify({
        ...ccKbcConfig(world),
        image: {
          work_dir: join(work.path, 'oneshot-store'),
          registry_config: { registry: [{ location: registry.host, insecure: true }] },
        },
      }),
    );
    const bundle = join(work.path, 'bundles', 'oneshot');
    mounts.push(join(bundle, 'rootfs'));
    const args = [
      '-c',
      config,
      'pull-image',
      '--image-url',
      `${registry.host}/test/kbs:v1`,
      '--bundle-path',
      bundle,
    ];
    const result = await runCli(programPath('cdh-oneshot'), args, { timeoutMs: 120_000 });
    assert.equal(result.code, 0, result.stderr);
    assertNoSecret(result.stdout + result.stderr);
    assert.deepEqual(diffTrees(snapshotTree(join(bundle, 'rootfs')), expected), []);
  });

  test('a flipped byte in an encrypted layer (digest re-published to match): DATA_LOSS naming the layer, nothing of it stored', async () => {
    const ref = await publish('tampered', kbsWrapper(kekFile), { tamper: true });
    const [tampered] = encrypted.get('tampered') as string[];
    const bundle = join(work.path, 'bundles', 'tampered');
    await assert.rejects(daemon.client().pullImage(ref, bundle, 120_000), (error: Failure) => {
      assert.equal(error.code, DATA_LOSS, error.details);
      assert.match(error.details, /IMAGE_LAYER_AUTH_FAILED/);
      assert.match(error.details, /HMAC/);
      assert.ok(error.details.includes('test/tampered:v1'), error.details);
      assert.ok(error.details.includes(tampered as string), error.details);
      assertNoSecret(error.details);
      return true;
    });
    assertNotStored([tampered as string]);
    assert.equal(existsSync(join(bundle, 'rootfs', 'data')), false);
    assert.equal(await daemon.client().check(), 'SERVING');
  });

  test('an encrypted blob altered in the registry (digest no longer matching): DATA_LOSS naming the layer, nothing of it stored', async () => {
    const ref = await publish('altered', kbsWrapper(kekFile));
    const layer = (encrypted.get('altered') as string[])[1] as string;
    const hex = layer.slice('sha256:'.length);
    const blobFile = join(registry.dataDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
    const bytes = Buffer.from(readFileSync(blobFile));
    bytes[10] = (bytes[10] as number) ^ 0xff;
    writeFileSync(blobFile, bytes);
    await assert.rejects(
      daemon.client().pullImage(ref, join(work.path, 'bundles', 'altered'), 120_000),
      (error: Failure) => {
        assert.equal(error.code, DATA_LOSS, error.details);
        assert.match(error.details, /IMAGE_DIGEST_MISMATCH/);
        assert.ok(error.details.includes(`layer ${layer}`), error.details);
        assertNoSecret(error.details);
        return true;
      },
    );
    assertNotStored([layer]);
  });

  test('an encrypted layer whose decrypted tar is not the config diff_id: DATA_LOSS naming the layer, nothing of it stored', async () => {
    const wrong = `sha256:${'ab'.repeat(32)}`;
    const ref = await publish('diff-id', kbsWrapper(kekFile), { wrongDiffId: wrong });
    const [layer] = encrypted.get('diff-id') as string[];
    await assert.rejects(
      daemon.client().pullImage(ref, join(work.path, 'bundles', 'diff-id'), 120_000),
      (error: Failure) => {
        assert.equal(error.code, DATA_LOSS, error.details);
        assert.match(error.details, /IMAGE_DIGEST_MISMATCH.*diff_id/);
        assert.ok(error.details.includes(`layer ${layer as string}`), error.details);
        assert.ok(error.details.includes(wrong));
        assertNoSecret(error.details);
        return true;
      },
    );
    assertNotStored([layer as string]);
  });

  test('the KMS refusing the key: its status (PERMISSION_DENIED) naming the layer, nothing of it stored', async () => {
    const ref = await publish('refused', aliyunWrapper(kms));
    const layers = encrypted.get('refused') as string[];
    kms.emulator.failNext(20, 403, 'Forbidden.NoPermission');
    try {
      await assert.rejects(
        daemon.client().pullImage(ref, join(work.path, 'bundles', 'refused'), 120_000),
        (error: Failure) => {
          assert.equal(error.code, PERMISSION_DENIED, error.details);
          assert.match(error.details, /Forbidden\.NoPermission/);
          assert.ok(
            layers.some((d) => error.details.includes(d)),
            error.details,
          );
          assertNoSecret(error.details);
          return true;
        },
      );
    } finally {
      kms.emulator.clearFaults();
    }
    assertNotStored(layers);
    assert.equal(await daemon.client().check(), 'SERVING');
  });

  test('an encrypted layer with only a JWE key (no attestation-agent packet): FAILED_PRECONDITION naming the layer and the scheme', async () => {
    const layout = join(work.path, 'enc-jwe-only');
    await skopeoEncrypt(plain, layout, 'v1', recipient);
    await pushImage(layout, 'v1', `${registry.host}/test/jwe-only:v1`);
    await assert.rejects(
      daemon
        .client()
        .pullImage(`${registry.host}/test/jwe-only:v1`, join(work.path, 'bundles', 'jwe'), 60_000),
      (error: grpc.ServiceError) => {
        assert.equal(error.code, 9, error.details);
        assert.match(error.details, /IMAGE_LAYER_KEY_UNAVAILABLE.*layer sha256:[0-9a-f]{12}.*jwe/);
        return true;
      },
    );
  });
});
