import assert from 'node:assert/strict';
import { createCipheriv, createHash, createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, test } from 'node:test';
import { CdhError, isCdhError, type ErrorCode } from '../../../src/errors';
import { unpackEncrypted } from '../../../src/image/decrypt';
import { parseManifest, type LayerDescriptor } from '../../../src/image/manifest';
import {
  layerCipher,
  parsePublicOptions,
  unwrapLayerCipher,
  type LayerKeyUnwrapper,
} from '../../../src/image/ocicrypt';
import { buildLayer, makeTar, type LayerCompression } from '../../support/oci-image';

const AA = 'org.opencontainers.image.enc.keys.provider.attestation-agent';
const PUBOPTS = 'org.opencontainers.image.enc.pubopts';
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function b64json(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64');
}

/** A layer encrypted as ocicrypt does: AES-256-CTR (nonce = counter block), HMAC-SHA256 over the ciphertext. */
function encryptedLayer(packets: string[], tamper = false, compression: LayerCompression = 'gzip') {
  const plain = buildLayer(makeTar([{ path: 'secret-file', content: 'top secret\n' }]), compression);
  const symkey = randomBytes(32);
  const nonce = randomBytes(16);
  const cipher = createCipheriv('aes-256-ctr', symkey, nonce);
  const blob = Buffer.concat([cipher.update(plain.blob), cipher.final()]);
  const hmac = createHmac('sha256', symkey).update(blob).digest();
  if (tamper) blob[3] = (blob[3] as number) ^ 0x80;
  const options = JSON.stringify({
    symkey: symkey.toString('base64'),
    digest: plain.digest,
    cipheroptions: { nonce: nonce.toString('base64') },
  });
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  const manifest = parseManifest(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        config: { mediaType: 'x', digest: plain.digest, size: 1 },
        layers: [
          {
            mediaType: `${plain.mediaType}+encrypted`,
            digest,
            size: blob.length,
            annotations: {
              [AA]: packets.join(','),
              [PUBOPTS]: b64json({
                cipher: 'AES_256_CTR_HMAC_SHA256',
                hmac: hmac.toString('base64'),
                cipheroptions: {},
              }),
            },
          },
        ],
      }),
    ),
    'image "t"',
  );
  assert.equal(manifest.kind, 'manifest');
  const layer = manifest.layers[0] as LayerDescriptor;
  return { layer, blob, options, diffId: plain.diffId };
}

/** Unwraps packet "good" to the options; any other packet fails with `code`. */
function fakeUnwrapper(options: string, code: ErrorCode = 'RESOURCE_NOT_FOUND') {
  const calls: string[] = [];
  const handed: Buffer[] = [];
  const unwrapper: LayerKeyUnwrapper = {
    unwrapPacket(packet) {
      calls.push(Buffer.from(packet).toString());
      if (Buffer.from(packet).toString() !== 'good')
        return Promise.reject(new CdhError(code, 'packet refused by the test'));
      const out = Buffer.from(options);
      handed.push(out);
      return Promise.resolve(out);
    },
  };
  return { unwrapper, calls, handed };
}

const ctx = { signal: new AbortController().signal };
const packet = (text: string): string => Buffer.from(text).toString('base64');

test('the media type +encrypted keeps the compression and the attestation-agent annotations; other schemes are listed', () => {
  const { layer } = encryptedLayer([packet('good')]);
  assert.equal(layer.compression, 'gzip');
  assert.equal(layer.encryption?.packets, packet('good'));
  assert.deepEqual(layer.encryption?.otherSchemes, []);
});

test('packets are tried in turn: the first that unwraps wins; the options buffer handed over is wiped', async () => {
  const { layer, options } = encryptedLayer([packet('bad'), packet('good'), packet('never')]);
  const fake = fakeUnwrapper(options);
  const cipher = await unwrapLayerCipher(layer, fake.unwrapper, 'L', ctx);
  assert.deepEqual(fake.calls, ['bad', 'good']);
  assert.equal(cipher.symkey.length, 32);
  assert.ok(
    fake.handed[0]?.every((b) => b === 0),
    'the options JSON was not wiped',
  );
  const symkey = cipher.symkey;
  cipher.wipe();
  assert.ok(
    symkey.every((b) => b === 0),
    'the symkey was not wiped',
  );
});

test('no packet unwraps: the status of the unwrap failure, naming the layer and every packet', async () => {
  const { layer, options } = encryptedLayer([packet('bad'), packet('worse')]);
  await assert.rejects(
    unwrapLayerCipher(
      layer,
      fakeUnwrapper(options, 'KMS_ACCESS_DENIED').unwrapper,
      'image "t": layer X',
      ctx,
    ),
    (error: unknown) => {
      assert.ok(isCdhError(error));
      assert.equal(error.code, 'KMS_ACCESS_DENIED');
      assert.match(
        error.message,
        /^image "t": layer X: none of its 2 keys could be unwrapped \(packet 1: .*; packet 2: /,
      );
      return true;
    },
  );
});

test('pubopts: missing, another cipher, an empty or short hmac are refused before any key is unwrapped', () => {
  const bad = (pubopts: string | undefined): string => {
    try {
      parsePublicOptions({ ...(pubopts === undefined ? {} : { pubopts }), otherSchemes: [] }, 'L');
    } catch (error) {
      assert.ok(isCdhError(error));
      return `${error.code} ${error.message}`;
    }
    return 'accepted';
  };
  assert.match(bad(undefined), /IMAGE_LAYER_OPTIONS_INVALID .*no pubopts/);
  assert.match(bad(b64json({ cipher: 'AES_128_GCM', hmac: 'AA==' })), /IMAGE_UNSUPPORTED .*AES_128_GCM/);
  assert.match(bad(b64json({ cipher: 'AES_256_CTR_HMAC_SHA256', hmac: '' })), /empty hmac/);
  assert.match(bad(b64json({ cipher: 'AES_256_CTR_HMAC_SHA256', hmac: 'AAAA' })), /3-byte hmac/);
  assert.match(bad('not base64!'), /IMAGE_LAYER_OPTIONS_INVALID L: pubopts/);
});

test('private options: a short symkey or nonce is refused without quoting them, and the buffers are wiped', () => {
  const pub = { hmac: Buffer.alloc(32), cipheroptions: {} };
  const short = Buffer.from(
    JSON.stringify({ symkey: 'c2hvcnQ=', cipheroptions: { nonce: randomBytes(16).toString('base64') } }),
  );
  assert.throws(() => layerCipher(short, pub, 'L'), /L: .*5-byte symkey, not 32/);
  assert.ok(short.every((b) => b === 0));
  const noNonce = Buffer.from(JSON.stringify({ symkey: randomBytes(32).toString('base64') }));
  assert.throws(() => layerCipher(noNonce, pub, 'L'), /field "nonce" is missing/);
  const notJson = Buffer.from('{"symkey": "c2VjcmV0');
  assert.throws(
    () => layerCipher(notJson, pub, 'L'),
    (error: Error) => !error.message.includes('c2VjcmV0') && /not UTF-8 JSON/.test(error.message),
  );
});

function workDirs(): { dir: string; staging: string } {
  const root = mkdtempSync(join(tmpdir(), 'cdh-ocicrypt-'));
  dirs.push(root);
  mkdirSync(join(root, 'layer'));
  mkdirSync(join(root, 'staging'));
  return { dir: join(root, 'layer'), staging: join(root, 'staging') };
}

for (const compression of ['gzip', 'zstd', 'none'] as const)
  test(`an authentic tar${compression === 'none' ? '' : `+${compression}`}+encrypted layer is decrypted and unpacked; the staged ciphertext is removed`, async () => {
    const { layer, blob, options, diffId } = encryptedLayer([packet('good')], false, compression);
    assert.equal(layer.compression, compression);
    const { dir, staging } = workDirs();
    const signal = new AbortController().signal;
    await unpackEncrypted(
      {
        layer,
        diffId,
        dir,
        stagingFile: join(staging, 'x.blob'),
        label: 'image "t"',
        signal,
        ctx,
        fetch: () => Promise.resolve(Readable.from([blob])),
      },
      fakeUnwrapper(options).unwrapper,
    );
    assert.equal(readFileSync(join(dir, 'secret-file'), 'utf8'), 'top secret\n');
    assert.deepEqual(readdirSync(staging), []);
  });

test('a flipped ciphertext byte fails the HMAC before anything is unpacked (no file ever in the layer dir)', async () => {
  const { layer, blob, options, diffId } = encryptedLayer([packet('good')], true);
  // The descriptor describes the tampered blob, so only the HMAC can tell.
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  const { dir, staging } = workDirs();
  const seen: string[] = [];
  const body = Readable.from(
    (function* () {
      for (let i = 0; i < blob.length; i += 16) {
        seen.push(...readdirSync(dir));
        yield blob.subarray(i, i + 16);
      }
    })(),
  );
  await assert.rejects(
    unpackEncrypted(
      {
        layer: { ...layer, digest },
        diffId,
        dir,
        stagingFile: join(staging, 'x.blob'),
        label: 'image "t"',
        signal: new AbortController().signal,
        ctx,
        fetch: () => Promise.resolve(body),
      },
      fakeUnwrapper(options).unwrapper,
    ),
    (error: unknown) =>
      isCdhError(error) && error.code === 'IMAGE_LAYER_AUTH_FAILED' && error.message.includes(digest),
  );
  assert.deepEqual(seen, []);
  assert.deepEqual(readdirSync(dir), []);
  assert.equal(existsSync(join(staging, 'x.blob')), false);
});

test('media types: the nondistributable +encrypted variants are accepted, a docker type with +encrypted is not; other key schemes are named', () => {
  const manifest = (mediaType: string, annotations: Record<string, string>) =>
    parseManifest(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          config: { mediaType: 'x', digest: `sha256:${'0'.repeat(64)}`, size: 1 },
          layers: [{ mediaType, digest: `sha256:${'1'.repeat(64)}`, size: 1, annotations }],
        }),
      ),
      'image "t"',
    );
  const nd = manifest('application/vnd.oci.image.layer.nondistributable.v1.tar+zstd+encrypted', {
    'org.opencontainers.image.enc.keys.jwe': 'x',
    'org.opencontainers.image.enc.keys.pgp': 'y',
  });
  assert.equal(nd.kind, 'manifest');
  const layer = nd.kind === 'manifest' ? nd.layers[0] : undefined;
  assert.equal(layer?.compression, 'zstd');
  assert.deepEqual(layer?.encryption, { otherSchemes: ['jwe', 'pgp'] });
  assert.throws(
    () => manifest('application/vnd.docker.image.rootfs.diff.tar.gzip+encrypted', {}),
    (error: unknown) => isCdhError(error) && error.code === 'IMAGE_UNSUPPORTED',
  );
});
