import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import { spawnDaemon, tempDir, type DaemonProcess } from '../../src/devtools/daemon';
import {
  buildLayer,
  makeTar,
  tagImage,
  tagInLayout,
  writeImage,
  writeIndex,
  type TarEntry,
} from '../support/oci-image';
import { pushImage, remoteDigest, startRegistry, type TestRegistry } from '../support/registry';
import { Bundles, closeImagePullWorld, registryImageConfig } from '../support/image-bundles';
import { diffTrees, snapshotTree, umociUnpack } from '../support/tree';

const LOWER: TarEntry[] = [
  { path: 'etc/', type: 'dir' },
  { path: 'etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n' },
  { path: 'etc/hosts', content: '127.0.0.1 localhost\n' },
  { path: 'bin/', type: 'dir' },
  { path: 'bin/tool', content: '#!/bin/sh\necho tool\n', mode: 0o4755 },
  { path: 'bin/sgid', content: 'sgid\n', mode: 0o2755, gid: 50 },
  { path: 'bin/link', type: 'symlink', linkname: 'tool' },
  { path: 'bin/abs-link', type: 'symlink', linkname: '/etc/passwd' },
  { path: 'bin/hard', type: 'link', linkname: 'bin/tool' },
  { path: 'home/', type: 'dir' },
  { path: 'home/user/', type: 'dir', mode: 0o750, uid: 1000, gid: 1000 },
  { path: 'home/user/notes', content: 'mine\n', mode: 0o640, uid: 1000, gid: 1000 },
  { path: 'opaque/', type: 'dir' },
  { path: 'opaque/a', content: 'a\n' },
  { path: 'opaque/b', content: 'b\n' },
  { path: 'remove-me', content: 'gone soon\n' },
  { path: 'tmp/', type: 'dir', mode: 0o1777 },
  { path: `deep/${'d'.repeat(60)}/${'e'.repeat(60)}/long-name-file`, content: 'long\n' },
];
const UPPER: TarEntry[] = [
  { path: '.wh.remove-me' },
  { path: 'opaque/', type: 'dir' },
  { path: 'opaque/.wh..wh..opq' },
  { path: 'opaque/c', content: 'c\n' },
  { path: 'etc/', type: 'dir' },
  { path: 'etc/hosts', content: '127.0.0.1 localhost upper\n', mode: 0o600 },
  { path: 'data/', type: 'dir', uid: 1000, gid: 1000 },
  { path: 'data/x', content: Buffer.alloc(200_000, 7), uid: 1000, gid: 1000 },
];

describe('PullImage from a registry (docker-registry + skopeo, compared with umoci)', () => {
  let registry: TestRegistry;
  let daemon: DaemonProcess;
  const work = tempDir('cdh-image-');
  const layout = join(work.path, 'layout');
  const bundles = new Bundles(work.path);
  let lowerDigest = '';
  let upperDigest = '';

  before(async () => {
    registry = await startRegistry();
    const lower = buildLayer(makeTar(LOWER), 'gzip');
    const upper = buildLayer(makeTar(UPPER), 'gzip');
    lowerDigest = lower.digest;
    upperDigest = upper.digest;
    const image = writeImage(layout, {
      layers: [lower, upper],
      config: {
        Entrypoint: ['/bin/tool'],
        Cmd: ['--flag'],
        Env: ['PATH=/bin', 'A=1'],
        WorkingDir: '/home/user',
      },
    });
    tagImage(layout, 'multi', image);
    const zstdImage = writeImage(layout, {
      layers: [buildLayer(makeTar(LOWER), 'zstd'), buildLayer(makeTar(UPPER), 'zstd')],
    });
    tagImage(layout, 'zstd', zstdImage);
    const other = writeImage(layout, {
      layers: [buildLayer(makeTar([{ path: 'other-arch', content: 'x' }]))],
      architecture: 'riscv64',
    });
    const index = writeIndex(layout, [
      { manifest: other, architecture: 'riscv64' },
      { manifest: image, architecture: process.arch === 'x64' ? 'amd64' : process.arch },
    ]);
    tagInLayout(layout, 'index', {
      digest: index.digest,
      size: index.index.length,
      mediaType: 'application/vnd.oci.image.index.v1+json',
    });
    await pushImage(layout, 'multi', `${registry.host}/test/multi:v1`);
    await pushImage(layout, 'multi', `${registry.host}/test/docker:v1`, ['--format', 'v2s2']);
    await pushImage(layout, 'zstd', `${registry.host}/test/zstd:v1`);
    await pushImage(layout, 'index', `${registry.host}/test/index:v1`, ['--all']);
    daemon = await spawnDaemon({
      config: {
        image: registryImageConfig(work.path, registry.host),
      },
    });
  });

  after(() => closeImagePullWorld({ bundles, work, daemon, registry }));

  async function pull(ref: string, name: string): Promise<{ digest: string; bundle: string }> {
    const bundle = bundles.dir(name);
    const digest = await daemon.client().pullImage(ref, bundle, 60_000);
    return { digest, bundle };
  }

  let umociRootfs = '';
  async function expected(): Promise<
    Map<string, ReturnType<typeof snapshotTree> extends Map<string, infer V> ? V : never>
  > {
    umociRootfs ||= await umociUnpack(layout, 'multi', join(work.path, 'umoci'));
    return snapshotTree(umociRootfs);
  }

  test('an OCI image pulled by tag: rootfs equals umoci unpack file by file, config.json from the image config', async () => {
    const { digest, bundle } = await pull(`${registry.host}/test/multi:v1`, 'by-tag');
    assert.equal(digest, await remoteDigest(`${registry.host}/test/multi:v1`));
    const ours = snapshotTree(join(bundle, 'rootfs'));
    assert.deepEqual(diffTrees(ours, await expected()), []);
    assert.equal(ours.get('bin/tool')?.mode, '4755');
    assert.equal(ours.get('home/user/notes')?.uid, 1000);
    assert.equal(ours.has('remove-me'), false);
    assert.deepEqual(
      [...ours.keys()].filter((p) => p.startsWith('opaque/')),
      ['opaque/c'],
    );
    const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as {
      process: { args: string[]; env: string[]; cwd: string };
      root: { path: string };
    };
    assert.deepEqual(spec.process.args, ['/bin/tool', '--flag']);
    assert.deepEqual(spec.process.env, ['PATH=/bin', 'A=1']);
    assert.equal(spec.process.cwd, '/home/user');
    assert.equal(spec.root.path, 'rootfs');
  });

  test('the same image by digest reuses every stored layer (no blob downloaded again)', async () => {
    const before = registry.blobGets(lowerDigest) + registry.blobGets(upperDigest);
    const digest = await remoteDigest(`${registry.host}/test/multi:v1`);
    const { digest: got, bundle } = await pull(`${registry.host}/test/multi@${digest}`, 'by-digest');
    assert.equal(got, digest);
    assert.equal(registry.blobGets(lowerDigest) + registry.blobGets(upperDigest), before);
    assert.deepEqual(diffTrees(snapshotTree(join(bundle, 'rootfs')), await expected()), []);
  });

  test('a Docker schema 2 manifest (skopeo --format v2s2) gives the same rootfs', async () => {
    const { digest, bundle } = await pull(`${registry.host}/test/docker:v1`, 'v2s2');
    assert.equal(digest, await remoteDigest(`${registry.host}/test/docker:v1`));
    assert.deepEqual(diffTrees(snapshotTree(join(bundle, 'rootfs')), await expected()), []);
  });

  test('zstd layers give the same rootfs', async () => {
    const { bundle } = await pull(`${registry.host}/test/zstd:v1`, 'zstd');
    assert.deepEqual(diffTrees(snapshotTree(join(bundle, 'rootfs')), await expected()), []);
  });

  test('an index with two platforms: the entry for this CPU, answering its digest (not the index digest)', async () => {
    const { digest, bundle } = await pull(`${registry.host}/test/index:v1`, 'index');
    const indexDigest = await remoteDigest(`${registry.host}/test/index:v1`);
    assert.notEqual(digest, indexDigest);
    assert.equal(digest, await remoteDigest(`${registry.host}/test/multi:v1`));
    assert.equal(existsSync(join(bundle, 'rootfs', 'other-arch')), false);
    assert.ok(existsSync(join(bundle, 'rootfs', 'bin', 'tool')));
  });

  test('a bundle that already holds config.json is refused before anything is mounted', async () => {
    const bundle = join(work.path, 'bundles', 'by-tag');
    await assert.rejects(
      daemon.client().pullImage(`${registry.host}/test/multi:v1`, bundle, 30_000),
      (error: grpc.ServiceError) => {
        assert.equal(error.code, 9);
        assert.match(error.details, /IMAGE_BUNDLE_IN_USE/);
        return true;
      },
    );
    const mountinfo = readFileSync('/proc/self/mountinfo', 'utf8');
    assert.equal(mountinfo.split('\n').filter((l) => l.includes(join(bundle, 'rootfs'))).length, 1);
  });

  test('two pulls into one bundle at once: one mounts, the other is IMAGE_BUNDLE_IN_USE (never two mounts)', async () => {
    const bundle = bundles.dir('racing');
    const results = await Promise.allSettled([
      daemon.client().pullImage(`${registry.host}/test/multi:v1`, bundle, 60_000),
      daemon.client().pullImage(`${registry.host}/test/docker:v1`, bundle, 60_000),
    ]);
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.match((failed?.reason as grpc.ServiceError).details, /IMAGE_BUNDLE_IN_USE/);
    const mountinfo = readFileSync('/proc/self/mountinfo', 'utf8');
    assert.equal(mountinfo.split('\n').filter((l) => l.includes(join(bundle, 'rootfs'))).length, 1);
  });

  test('an unknown tag is NOT_FOUND naming the image', async () => {
    await assert.rejects(
      daemon.client().pullImage(`${registry.host}/test/multi:nope`, join(work.path, 'bundles', 'nf'), 30_000),
      (error: grpc.ServiceError) => {
        assert.equal(error.code, 5);
        assert.match(error.details, /IMAGE_NOT_FOUND.*test\/multi:nope/);
        return true;
      },
    );
  });

  test('a malformed reference is INVALID_ARGUMENT', async () => {
    await assert.rejects(
      daemon.client().pullImage('UPPER/Case::x', join(work.path, 'bundles', 'bad'), 30_000),
      (error: grpc.ServiceError) => {
        assert.equal(error.code, 3);
        assert.match(error.details, /IMAGE_REFERENCE_INVALID/);
        return true;
      },
    );
  });

  test('the layer store keeps one directory per layer and a meta store', () => {
    const store = join(work.path, 'store');
    const layers = readdirSync(join(store, 'layers'));
    assert.ok(
      layers.every((n) => /^\d+$/.test(n)),
      layers.join(','),
    );
    const meta = JSON.parse(readFileSync(join(store, 'meta_store.json'), 'utf8')) as {
      layers: Record<string, unknown>;
    };
    assert.equal(Object.keys(meta.layers).length, layers.length);
    assert.ok(lowerDigest in meta.layers && upperDigest in meta.layers);
  });
});
