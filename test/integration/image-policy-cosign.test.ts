import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import { spawnDaemon, tempDir, type DaemonProcess } from '../../src/devtools/daemon';
import { buildLayer, makeTar, tagImage, writeImage } from '../support/oci-image';
import { pushImage, remoteDigest, startRegistry, type TestRegistry } from '../support/registry';
import { Bundles, closeImagePullWorld, registryImageConfig } from '../support/image-bundles';

const sha256 = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/**
 * What `cosign sign --key` stores (sigstore's cosign signature spec, also what containers/image
 * reads: signature/internal/sigstore_payload.go): the simple signing payload as a layer of media
 * type application/vnd.dev.cosign.simplesigning.v1+json, its ECDSA-P256-SHA256 signature (DER,
 * base64) in the dev.cosignproject.cosign/signature annotation, under the tag
 * `sha256-<manifest hex>.sig` of the image's repository. Pushed over the distribution API as
 * cosign does (go-containerregistry: blob uploads, then the manifest).
 */
async function pushCosignSignature(
  host: string,
  repo: string,
  digest: string,
  payloadDigest: string,
  reference: string,
  key: KeyObject,
): Promise<void> {
  const payload = Buffer.from(
    JSON.stringify({
      critical: {
        identity: { 'docker-reference': reference },
        image: { 'docker-manifest-digest': payloadDigest },
        type: 'cosign container image signature',
      },
      optional: null,
    }),
  );
  const signature = sign('sha256', payload, key).toString('base64');
  const config = Buffer.from(
    JSON.stringify({
      architecture: '',
      os: '',
      config: {},
      rootfs: { type: 'layers', diff_ids: [sha256(payload)] },
    }),
  );
  for (const blob of [payload, config]) await pushBlob(host, repo, blob);
  const manifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: {
      mediaType: 'application/vnd.oci.image.config.v1+json',
      size: config.length,
      digest: sha256(config),
    },
    layers: [
      {
        mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json',
        size: payload.length,
        digest: sha256(payload),
        annotations: { 'dev.cosignproject.cosign/signature': signature },
      },
    ],
  };
  const tag = `${digest.replace(':', '-')}.sig`;
  const put = await fetch(`http://${host}/v2/${repo}/manifests/${tag}`, {
    method: 'PUT',
    headers: { 'content-type': manifest.mediaType },
    body: JSON.stringify(manifest),
  });
  assert.equal(put.status, 201, await put.text());
}

async function pushBlob(host: string, repo: string, blob: Buffer): Promise<void> {
  const start = await fetch(`http://${host}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  assert.equal(start.status, 202, await start.text());
  const location = new URL(start.headers.get('location') as string, `http://${host}`);
  location.searchParams.set('digest', sha256(blob));
  const put = await fetch(location, {
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream' },
    body: blob,
  });
  assert.equal(put.status, 201, await put.text());
}

describe('image security policy: sigstoreSigned (cosign signatures with a public key)', () => {
  const work = tempDir('cdh-image-cosign-');
  const layout = join(work.path, 'layout');
  const bundles = new Bundles(work.path);
  let registry: TestRegistry;
  let daemon: DaemonProcess;

  before(async () => {
    registry = await startRegistry();
    const built = writeImage(layout, {
      layers: [buildLayer(makeTar([{ path: 'hello', content: 'cosign world' }]))],
    });
    tagImage(layout, 'img', built);
    const trusted = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const repos = ['signed', 'unsigned', 'badkey', 'otherdigest', 'copied', 'keyless'];
    for (const repo of repos) await pushImage(layout, 'img', `${registry.host}/cosign/${repo}:v1`);
    const digest = await remoteDigest(`${registry.host}/cosign/signed:v1`);
    const name = (repo: string): string => `${registry.host}/cosign/${repo}`;
    const h = registry.host;
    await pushCosignSignature(h, 'cosign/signed', digest, digest, name('signed'), trusted.privateKey);
    await pushCosignSignature(h, 'cosign/badkey', digest, digest, name('badkey'), other.privateKey);
    await pushCosignSignature(
      h,
      'cosign/otherdigest',
      digest,
      `sha256:${'0'.repeat(64)}`,
      name('otherdigest'),
      trusted.privateKey,
    );
    await pushCosignSignature(h, 'cosign/copied', digest, digest, name('signed'), trusted.privateKey);
    const pubPath = join(work.path, 'cosign.pub');
    writeFileSync(pubPath, trusted.publicKey.export({ type: 'spki', format: 'pem' }));
    const keyData = Buffer.from(trusted.publicKey.export({ type: 'spki', format: 'pem' })).toString('base64');
    const cosign = { type: 'sigstoreSigned', keyPath: pubPath, signedIdentity: { type: 'matchRepository' } };
    const policy = {
      default: [{ type: 'reject' }],
      transports: {
        docker: {
          [name('signed')]: [{ ...cosign, keyPath: undefined, keyData }],
          [name('unsigned')]: [cosign],
          [name('badkey')]: [cosign],
          [name('otherdigest')]: [cosign],
          [name('copied')]: [cosign],
          [name('keyless')]: [{ type: 'sigstoreSigned', fulcio: { caPath: '/x' }, rekorPublicKeyPath: '/y' }],
        },
      },
    };
    const policyFile = join(work.path, 'policy.json');
    writeFileSync(policyFile, JSON.stringify(policy));
    daemon = await spawnDaemon({
      config: {
        image: registryImageConfig(work.path, registry.host, {
          image_security_policy_uri: policyFile,
        }),
      },
    });
  });

  after(() => closeImagePullWorld({ bundles, work, daemon, registry }));

  const bundle = (): string => bundles.dir();

  async function refused(repo: string, code: number, pattern: RegExp): Promise<void> {
    const target = bundle();
    await assert.rejects(
      daemon.client().pullImage(`${registry.host}/cosign/${repo}:v1`, target, 60_000),
      (error: grpc.ServiceError) => {
        assert.equal(error.code, code, error.details);
        assert.match(error.details, pattern);
        return true;
      },
    );
    assert.equal(existsSync(join(target, 'config.json')), false);
  }

  test('an image with a cosign signature by the policy key (keyData) is accepted, on every pull', async () => {
    for (let i = 0; i < 2; i++) {
      const target = bundle();
      await daemon.client().pullImage(`${registry.host}/cosign/signed:v1`, target, 60_000);
      assert.ok(existsSync(join(target, 'rootfs', 'hello')));
    }
  });

  test('no .sig tag: rejected naming the missing signature', async () => {
    await refused(
      'unsigned',
      7,
      /IMAGE_POLICY_REJECTED.*cosign\/unsigned:v1.*sigstoreSigned.*no sha256-[0-9a-f]{64}\.sig/,
    );
  });

  test('signed by another key: rejected', async () => {
    await refused('badkey', 7, /IMAGE_POLICY_REJECTED.*does not verify with the policy's key/);
  });

  test('a good signature of another manifest digest: rejected', async () => {
    await refused('otherdigest', 7, /IMAGE_POLICY_REJECTED.*signs another manifest digest/);
  });

  test('a good signature naming another repository: rejected (signedIdentity matchRepository)', async () => {
    await refused('copied', 7, /IMAGE_POLICY_REJECTED.*signed for ".*cosign\/signed"/);
  });

  test('Fulcio/Rekor policies cannot be checked offline: IMAGE_UNSUPPORTED naming sigstoreSigned and the fields', async () => {
    await refused('keyless', 9, /IMAGE_UNSUPPORTED.*sigstoreSigned.*fulcio, rekorPublicKeyPath/);
  });
});
