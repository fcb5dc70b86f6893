import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { isCdhError } from '../../../src/errors';
import { unpackBlob } from '../../../src/image/layer';
import type { LayerDescriptor } from '../../../src/image/manifest';
import { buildLayer, makeTar, sha256, type LayerCompression } from '../../support/oci-image';

function descriptor(
  compression: LayerCompression,
  content = 'payload',
): { layer: LayerDescriptor; blob: Buffer; diffId: string } {
  const built = buildLayer(makeTar([{ path: 'f', content }]), compression);
  return {
    layer: { mediaType: built.mediaType, digest: built.digest, size: built.blob.length, compression },
    blob: built.blob,
    diffId: built.diffId,
  };
}

async function expectCode(
  run: (dir: string) => Promise<unknown>,
  code: string,
  pattern: RegExp,
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'cdh-layer-'));
  try {
    await assert.rejects(run(dir), (error: unknown) => {
      assert.ok(isCdhError(error), String(error));
      assert.equal(error.code, code);
      assert.match(error.message, pattern);
      return true;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const never = new AbortController().signal;

for (const compression of ['gzip', 'zstd', 'none'] as const) {
  test(`${compression}: a layer whose tar does not match the config's diff_id is DATA_LOSS naming both digests`, async () => {
    const { layer, blob } = descriptor(compression);
    const wrong = sha256('something else');
    await expectCode(
      (dir) => unpackBlob(Readable.from([blob]), layer, wrong, dir, 'image "x"', never),
      'IMAGE_DIGEST_MISMATCH',
      new RegExp(`layer ${layer.digest}.*not the config's diff_id ${wrong}`),
    );
  });
}

test('a registry sending more bytes than the manifest size is stopped at once', async () => {
  const { layer, blob, diffId } = descriptor('gzip');
  await expectCode(
    (dir) => unpackBlob(Readable.from([blob, Buffer.alloc(1 << 20)]), layer, diffId, dir, 'image "x"', never),
    'IMAGE_DIGEST_MISMATCH',
    /sent more than the \d+ bytes in the manifest/,
  );
});

test('bytes that are not gzip (and do not match the digest) are a digest mismatch', async () => {
  const { layer, diffId } = descriptor('gzip');
  const junk = Buffer.alloc(layer.size, 0x41);
  await expectCode(
    (dir) => unpackBlob(Readable.from([junk]), layer, diffId, dir, 'image "x"', never),
    'IMAGE_DIGEST_MISMATCH',
    /the blob's digest is sha256:[0-9a-f]{64}, not the manifest's/,
  );
});

test('a good zstd layer unpacks', async () => {
  const { layer, blob, diffId } = descriptor('zstd', 'z'.repeat(100_000));
  const dir = mkdtempSync(join(tmpdir(), 'cdh-layer-'));
  try {
    await unpackBlob(
      Readable.from([blob.subarray(0, 10), blob.subarray(10)]),
      layer,
      diffId,
      dir,
      'image "x"',
      never,
    );
    assert.deepEqual(readdirSync(dir), ['f']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
