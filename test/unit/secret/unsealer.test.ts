import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { defaultConfig } from '../../../src/config/types';
import { CdhError } from '../../../src/errors';
import { silentLogger } from '../../../src/log';
import { ProviderRegistry } from '../../../src/providers/registry';
import type { Annotations, CallContext, Decrypter, ProviderFactory } from '../../../src/providers/types';
import { signSealedSecret } from '../../../src/secret/seal';
import { SecretUnsealer } from '../../../src/secret/unsealer';
import {
  envelopeFixture,
  unsignedSecret,
  unsignedSecretStandardBase64,
  upstreamJwk,
  vaultFixture,
} from '../../support/sealed-fixtures';
import { callContext, cdhError, temporaryDirectory } from '../../support/secret-helpers';
import { TestKms } from '../../support/test-provider';

const PLAINTEXT = 'the-plaintext-password-42';
const tmp = temporaryDirectory('cdh-unseal-');
const testKey = upstreamJwk('test-key.json');

before(() => writeFileSync(path.join(tmp.dir, 'signer.json'), JSON.stringify(testKey)));
after(() => tmp.remove());

function setUp(options: { skipVerification?: boolean; factories?: ProviderFactory[] } = {}) {
  const kms = new TestKms({ keyIds: ['key-1'], secrets: { 'db-password': PLAINTEXT } });
  const logger = silentLogger();
  const registry = new ProviderRegistry(options.factories ?? [kms.factory], {
    config: defaultConfig(),
    logger,
  });
  const unsealer = new SecretUnsealer({
    registry,
    skipVerification: options.skipVerification ?? true,
    signingKeyDir: tmp.dir,
    logger,
  });
  const unseal = (secret: string): Promise<Buffer> => unsealer.unseal(Buffer.from(secret), callContext());
  return { kms, unsealer, unseal };
}

test('envelope A256GCM and A256CTR round trip in the unsigned form', async () => {
  const { kms, unseal } = setUp();
  for (const wrapType of ['A256GCM', 'A256CTR'] as const) {
    const secret = unsignedSecret(envelopeFixture(kms, PLAINTEXT, { wrapType }));
    assert.equal((await unseal(secret)).toString(), PLAINTEXT);
  }
});

test('the unsigned form with a standard-base64 pretty-printed payload and a trailing newline is accepted', async () => {
  const { kms, unseal } = setUp();
  const secret = `${unsignedSecretStandardBase64(envelopeFixture(kms, PLAINTEXT))}\n`;
  assert.equal((await unseal(secret)).toString(), PLAINTEXT);
});

test('vault round trip through the provider Getter, provider matched case-insensitively', async () => {
  const { unseal } = setUp();
  assert.equal((await unseal(unsignedSecret(vaultFixture('db-password', 'TEST')))).toString(), PLAINTEXT);
});

test('in verified mode a signed secret unseals and the unsigned form is refused', async () => {
  const { kms, unseal } = setUp({ skipVerification: false });
  const payload = envelopeFixture(kms, PLAINTEXT);
  assert.equal((await unseal(signSealedSecret(payload, testKey, 'signer.json'))).toString(), PLAINTEXT);
  await assert.rejects(unseal(unsignedSecret(payload)), (error: unknown) => error instanceof CdhError);
});

test('in skip mode the header and signature are not read, but the 4-part shape is', async () => {
  const { kms, unseal } = setUp();
  const payload = unsignedSecret(envelopeFixture(kms, PLAINTEXT)).split('.')[2];
  assert.equal((await unseal(`sealed.!!.${payload}.??`)).toString(), PLAINTEXT);
  for (const bad of [
    `sealed.${payload}`,
    `sealed.a.${payload}.b.c`,
    `unsealed.a.${payload}.b`,
    `x sealed.a.${payload}.b`,
  ]) {
    await assert.rejects(unseal(bad), cdhError('SEALED_SECRET_MALFORMED'));
  }
});

test('input that is not UTF-8 is SEALED_SECRET_MALFORMED', async () => {
  const { unsealer } = setUp();
  await assert.rejects(
    unsealer.unseal(Buffer.from([0x73, 0xff, 0xfe]), callContext()),
    cdhError('SEALED_SECRET_MALFORMED', 'UTF-8'),
  );
});

test('malformed base64 in encrypted_key, encrypted_data or iv is PAYLOAD_INVALID and costs no KMS call', async () => {
  const { kms, unseal } = setUp();
  for (const field of ['encrypted_key', 'encrypted_data', 'iv'] as const) {
    for (const bad of ['not base64!', 'QUI', 'QUJD\n', 'QUJ=', 'QUJD-_==']) {
      const payload = { ...envelopeFixture(kms, PLAINTEXT), [field]: bad };
      await assert.rejects(unseal(unsignedSecret(payload)), cdhError('PAYLOAD_INVALID', field, 'base64'));
    }
  }
  assert.equal(kms.calls.decrypt, 0);
});

test('a wrong IV length is PAYLOAD_INVALID before the KMS is asked', async () => {
  const { kms, unseal } = setUp();
  for (const length of [11, 13, 16]) {
    const payload = envelopeFixture(kms, PLAINTEXT, { iv: randomBytes(length) });
    await assert.rejects(
      unseal(unsignedSecret(payload)),
      cdhError('PAYLOAD_INVALID', 'iv', `${length} bytes`, '12-byte'),
    );
  }
  const ctr = envelopeFixture(kms, PLAINTEXT, { wrapType: 'A256CTR', iv: randomBytes(12) });
  await assert.rejects(unseal(unsignedSecret(ctr)), cdhError('PAYLOAD_INVALID', 'iv', '16-byte'));
  assert.equal(kms.calls.decrypt, 0);
});

test('a data key of 16 or 33 bytes is DATA_KEY_INVALID', async () => {
  const { kms, unseal } = setUp();
  for (const length of [16, 33]) {
    const payload = envelopeFixture(kms, PLAINTEXT, { dataKey: randomBytes(length) });
    await assert.rejects(
      unseal(unsignedSecret(payload)),
      cdhError('DATA_KEY_INVALID', `${length} bytes`, 'A256GCM'),
    );
  }
});

test('a tag mismatch is DECRYPTION_FAILED (DATA_LOSS) with no plaintext in the message', async () => {
  const { kms, unseal } = setUp();
  const payload = envelopeFixture(kms, PLAINTEXT);
  const data = Buffer.from(payload.encrypted_data, 'base64');
  data[data.length - 1]! ^= 1;
  await assert.rejects(
    unseal(unsignedSecret({ ...payload, encrypted_data: data.toString('base64') })),
    (error: unknown) => {
      cdhError('DECRYPTION_FAILED')(error);
      assert.equal((error as CdhError).status, 'DATA_LOSS');
      assert.ok(!(error as Error).message.includes(PLAINTEXT));
      return true;
    },
  );
});

test('an unknown provider is PROVIDER_UNKNOWN (INVALID_ARGUMENT) via the registry', async () => {
  const { kms, unseal } = setUp();
  for (const payload of [
    envelopeFixture(kms, PLAINTEXT, { provider: 'nosuch' }),
    vaultFixture('db-password', 'nosuch'),
  ]) {
    await assert.rejects(unseal(unsignedSecret(payload)), (error: unknown) => {
      cdhError('PROVIDER_UNKNOWN', 'nosuch')(error);
      assert.equal((error as CdhError).status, 'INVALID_ARGUMENT');
      return true;
    });
  }
});

test('KMS errors pass through unchanged (unknown key id, unknown secret)', async () => {
  const { kms, unseal } = setUp();
  const otherKey = { ...envelopeFixture(kms, PLAINTEXT), key_id: 'key-2' };
  await assert.rejects(unseal(unsignedSecret(otherKey)), cdhError('KMS_NOT_FOUND', 'key-2'));
  await assert.rejects(unseal(unsignedSecret(vaultFixture('missing'))), cdhError('KMS_NOT_FOUND', 'missing'));
});

/** A provider whose Decrypter hands out data keys it keeps references to. */
function keepingProvider(dataKeys: Buffer[]): ProviderFactory {
  const decrypter: Decrypter = {
    async decrypt(_ciphertext: Uint8Array, _keyId: string, _annotations: Annotations, _ctx: CallContext) {
      const next = dataKeys.shift();
      assert.ok(next, 'no data key left');
      return next;
    },
  };
  return { name: 'keeping', create: () => ({ label: 'keeping', decrypter }) };
}

test('the data key buffer is all zero after unseal, on success and on every failure', async () => {
  const kms = new TestKms({ keyIds: ['key-1'] });
  const good = randomBytes(32);
  const fixture = (options: Parameters<typeof envelopeFixture>[2] = {}) =>
    envelopeFixture(kms, PLAINTEXT, { provider: 'keeping', encryptionKey: good, ...options });
  const tampered = fixture();
  tampered.encrypted_data = Buffer.from(tampered.encrypted_data, 'base64').reverse().toString('base64');

  const cases: Array<{ dataKey: Buffer; payload: object; expect: string | undefined }> = [
    { dataKey: Buffer.from(good), payload: fixture(), expect: undefined },
    { dataKey: Buffer.from(good), payload: fixture({ wrapType: 'A256CTR' }), expect: undefined },
    { dataKey: Buffer.from(good), payload: tampered, expect: 'DECRYPTION_FAILED' },
    { dataKey: randomBytes(16), payload: fixture(), expect: 'DATA_KEY_INVALID' },
    { dataKey: randomBytes(33), payload: fixture(), expect: 'DATA_KEY_INVALID' },
  ];
  const handedOut = cases.map((c) => c.dataKey);
  const registry = new ProviderRegistry([keepingProvider([...handedOut])], {
    config: defaultConfig(),
    logger: silentLogger(),
  });
  const unsealer = new SecretUnsealer({
    registry,
    skipVerification: true,
    signingKeyDir: tmp.dir,
    logger: silentLogger(),
  });
  for (const { dataKey, payload, expect } of cases) {
    assert.ok(dataKey.some((byte) => byte !== 0));
    const outcome = unsealer.unseal(Buffer.from(unsignedSecret(payload)), callContext());
    if (expect === undefined) assert.equal((await outcome).toString(), PLAINTEXT);
    else await assert.rejects(outcome, cdhError(expect as CdhError['code']));
    assert.ok(
      dataKey.every((byte) => byte === 0),
      `data key not wiped (${expect ?? 'success'})`,
    );
  }
});
