import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { defaultConfig } from '../../../src/config/types';
import { CdhError } from '../../../src/errors';
import { silentLogger } from '../../../src/log';
import { ProviderRegistry } from '../../../src/providers/registry';
import type { CallContext, Encrypter } from '../../../src/providers/types';
import { generateSigningJwkPair } from '../../../src/secret/jwk';
import {
  inspectSealedSecret,
  sealEnvelope,
  sealVault,
  signSealedSecret,
  unsignedSealedSecret,
} from '../../../src/secret/seal';
import { SecretUnsealer } from '../../../src/secret/unsealer';
import { callContext, cdhError, temporaryDirectory } from '../../support/secret-helpers';
import { TEST_ANNOTATIONS, TestKms } from '../../support/test-provider';

const PLAINTEXT = 'sealed-then-unsealed';
const tmp = temporaryDirectory('cdh-seal-');
after(() => tmp.remove());

function daemonSide(kms: TestKms, skipVerification: boolean): SecretUnsealer {
  const logger = silentLogger();
  const registry = new ProviderRegistry([kms.factory], { config: defaultConfig(), logger });
  return new SecretUnsealer({ registry, skipVerification, signingKeyDir: tmp.dir, logger });
}

test('sealEnvelope builds an A256GCM envelope the unsealer opens, with the encrypter annotations', async () => {
  const kms = new TestKms({ keyIds: ['key-1'] });
  const registry = new ProviderRegistry([kms.factory], { config: defaultConfig(), logger: silentLogger() });
  const envelope = await sealEnvelope({
    encrypter: await registry.encrypter('test', {}),
    provider: 'test',
    providerSettings: {},
    keyId: 'key-1',
    plaintext: Buffer.from(PLAINTEXT),
  });
  assert.equal(envelope.wrap_type, 'A256GCM');
  assert.equal(Buffer.from(envelope.iv, 'base64').length, 12);
  assert.deepEqual(envelope.annotations, TEST_ANNOTATIONS);
  assert.ok(!JSON.stringify(envelope).includes(PLAINTEXT));
  const unsealed = await daemonSide(kms, true).unseal(
    Buffer.from(unsignedSealedSecret(envelope)),
    callContext(),
  );
  assert.equal(unsealed.toString(), PLAINTEXT);
});

test('sealEnvelope can use A256CTR', async () => {
  const kms = new TestKms({ keyIds: ['key-1'] });
  const registry = new ProviderRegistry([kms.factory], { config: defaultConfig(), logger: silentLogger() });
  const envelope = await sealEnvelope({
    encrypter: await registry.encrypter('test', {}),
    provider: 'test',
    providerSettings: {},
    keyId: 'key-1',
    plaintext: Buffer.from(PLAINTEXT),
    wrapType: 'A256CTR',
  });
  assert.equal(Buffer.from(envelope.iv, 'base64').length, 16);
  const unsealed = await daemonSide(kms, true).unseal(
    Buffer.from(unsignedSealedSecret(envelope)),
    callContext(),
  );
  assert.equal(unsealed.toString(), PLAINTEXT);
});

test('sealEnvelope wipes the data key, also when the encrypter fails', async () => {
  for (const fail of [false, true]) {
    let seenDataKey: Uint8Array | undefined;
    const encrypter: Encrypter = {
      async encrypt(plaintext: Uint8Array, _keyId: string, _ctx: CallContext) {
        seenDataKey = plaintext;
        assert.ok(plaintext.some((byte) => byte !== 0));
        if (fail) throw new CdhError('KMS_UNAVAILABLE', 'kms down');
        return { ciphertext: Buffer.from('wrapped'), annotations: {} };
      },
    };
    const sealing = sealEnvelope({
      encrypter,
      provider: 'x',
      providerSettings: {},
      keyId: 'k',
      plaintext: Buffer.from('p'),
    });
    if (fail) await assert.rejects(sealing, cdhError('KMS_UNAVAILABLE'));
    else await sealing;
    assert.equal(seenDataKey?.length, 32);
    assert.ok(seenDataKey?.every((byte) => byte === 0));
  }
});

test('sealVault builds a vault payload; a signed one unseals in verified mode', async () => {
  const kms = new TestKms({ secrets: { 'db-password': PLAINTEXT } });
  const vault = sealVault({
    provider: 'test',
    name: 'db-password',
    annotations: { version_stage: 'ACSCurrent' },
  });
  assert.deepEqual(vault, {
    version: '0.1.0',
    type: 'vault',
    provider: 'test',
    provider_settings: {},
    annotations: { version_stage: 'ACSCurrent' },
    name: 'db-password',
  });
  const { privateJwk, publicJwk } = generateSigningJwkPair('my-key');
  writeFileSync(path.join(tmp.dir, 'my-key-public.json'), JSON.stringify(publicJwk));
  const signed = signSealedSecret(vault, privateJwk, 'my-key-public.json');
  const header = JSON.parse(Buffer.from(signed.split('.')[1] ?? '', 'base64url').toString());
  assert.deepEqual(header, { alg: 'ES256', kid: 'my-key-public.json' });
  assert.equal(
    (await daemonSide(kms, false).unseal(Buffer.from(signed), callContext())).toString(),
    PLAINTEXT,
  );
});

test('the unsigned form is sealed.fakejwsheader.<b64url payload>.fakesignature', () => {
  const vault = sealVault({ provider: 'kbs', name: 'kbs:///one/2/trois' });
  const unsigned = unsignedSealedSecret(vault);
  const [prefix, header, payload, signature] = unsigned.split('.');
  assert.deepEqual([prefix, header, signature], ['sealed', 'fakejwsheader', 'fakesignature']);
  assert.match(payload ?? '', /^[A-Za-z0-9_-]+$/);
  assert.deepEqual(JSON.parse(Buffer.from(payload ?? '', 'base64url').toString()), vault);
});

test('keygen gives a P-256 pair: the private JWK has d, the public one does not', () => {
  const { privateJwk, publicJwk } = generateSigningJwkPair('k1');
  assert.equal(privateJwk.kty, 'EC');
  assert.equal(privateJwk.crv, 'P-256');
  assert.equal(typeof privateJwk.d, 'string');
  assert.equal('d' in publicJwk, false);
  assert.equal(publicJwk.x, privateJwk.x);
  assert.equal(publicJwk.kid, 'k1');
  assert.equal(publicJwk.alg, 'ES256');
});

test('signing with a public or non-P-256 JWK is refused without echoing it', () => {
  const vault = sealVault({ provider: 'kbs', name: 'n' });
  const { publicJwk } = generateSigningJwkPair();
  assert.throws(() => signSealedSecret(vault, publicJwk, 'k'), cdhError('SIGNING_KEY_UNAVAILABLE', '"d"'));
  assert.throws(
    () => signSealedSecret(vault, { kty: 'RSA' }, 'k'),
    cdhError('SIGNING_KEY_UNAVAILABLE', 'P-256'),
  );
});

test('inspect returns the payload of the signed and both unsigned forms without decrypting', async () => {
  const kms = new TestKms({ keyIds: ['key-1'] });
  const registry = new ProviderRegistry([kms.factory], { config: defaultConfig(), logger: silentLogger() });
  const envelope = await sealEnvelope({
    encrypter: await registry.encrypter('test', {}),
    provider: 'test',
    providerSettings: {},
    keyId: 'key-1',
    plaintext: Buffer.from(PLAINTEXT),
  });
  const decryptsBefore = kms.calls.decrypt;
  const { privateJwk } = generateSigningJwkPair();
  const pretty = Buffer.from(JSON.stringify(envelope, null, 2)).toString('base64');
  for (const form of [
    unsignedSealedSecret(envelope),
    signSealedSecret(envelope, privateJwk, 'any'),
    `sealed.fakejwsheader.${pretty}.fakesignature\n`,
  ]) {
    assert.deepEqual(inspectSealedSecret(form), envelope);
    assert.deepEqual(inspectSealedSecret(Buffer.from(form)), envelope);
  }
  assert.equal(kms.calls.decrypt, decryptsBefore);
  assert.throws(() => inspectSealedSecret('sealed.a.!!.b'), cdhError('SEALED_SECRET_MALFORMED'));
});
