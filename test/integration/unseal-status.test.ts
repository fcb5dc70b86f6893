import assert from 'node:assert/strict';
import { randomBytes, createPrivateKey } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { CdhClient } from '../../src/client/cdh-client';
import { defaultConfig, type CdhConfig } from '../../src/config/types';
import { ERROR_CATALOGUE, STATUS_NUMBER, type ErrorCode } from '../../src/errors';
import { silentLogger } from '../../src/log';
import { signCompact } from '../../src/secret/jws';
import type { EnvelopeSecret } from '../../src/secret/payload';
import { signSealedSecret } from '../../src/secret/seal';
import { startDaemon, type DaemonHandle } from '../../src/app/daemon';
import { tempDir } from '../../src/devtools/daemon';
import {
  envelopeFixture,
  unsignedSecret,
  upstreamJwk,
  vaultFixture,
  type EnvelopeFixtureOptions,
} from '../support/sealed-fixtures';
import { TestKms } from '../support/test-provider';

/**
 * UnsealSecret end to end: a gRPC client on a real Unix socket, the daemon in-process with the
 * test KMS provider in its registry. Every failure must come back with its catalogued status,
 * a message without plaintext, and the daemon still serving.
 */

const PLAINTEXT = 'plaintext-marker-7f3a9c';
const VAULT_VALUE = 'vault-marker-51d2e8';
const SIGNING_KID = 'signer.json';
const testKey = upstreamJwk('test-key.json');

interface RunningDaemon {
  readonly handle: DaemonHandle;
  readonly client: CdhClient;
  readonly kms: TestKms;
}

async function start(dir: string, name: string, skipVerification: boolean): Promise<RunningDaemon> {
  const kms = new TestKms({ keyIds: ['key-1'], secrets: { 'db-password': VAULT_VALUE } });
  const config: CdhConfig = {
    ...defaultConfig(),
    socket: `unix://${join(dir, `${name}.sock`)}`,
    skipSealedSecretVerification: skipVerification,
    sealedSecret: { signingKeyDir: dir },
  };
  const handle = await startDaemon(config, { providers: [kms.factory], logger: silentLogger() });
  return { handle, kms, client: new CdhClient(handle.address, { timeoutMs: 10_000 }) };
}

async function stop(daemon: RunningDaemon | undefined): Promise<void> {
  daemon?.client.close();
  await daemon?.handle.stop(1000);
}

function unsealFails(
  daemon: RunningDaemon,
  secret: string | Uint8Array,
  status: keyof typeof grpc.status,
  code: ErrorCode,
): Promise<void> {
  return assert.rejects(daemon.client.unsealSecret(Buffer.from(secret)), (error: unknown) => {
    const serviceError = error as grpc.ServiceError;
    assert.equal(serviceError.code, grpc.status[status], serviceError.details);
    assert.ok(serviceError.details.startsWith(`${code}:`), serviceError.details);
    for (const secretText of [PLAINTEXT, VAULT_VALUE]) assert.ok(!serviceError.details.includes(secretText));
    return true;
  });
}

describe('UnsealSecret over a real socket (verification on)', () => {
  const dir = tempDir('cdh-unseal-');
  let daemon: RunningDaemon;

  before(async () => {
    writeFileSync(join(dir.path, SIGNING_KID), JSON.stringify(testKey));
    daemon = await start(dir.path, 'verified', false);
  });
  after(async () => {
    await stop(daemon);
    dir.cleanup();
  });

  const sign = (payload: object): string => signSealedSecret(payload as EnvelopeSecret, testKey, SIGNING_KID);
  const envelope = (options: EnvelopeFixtureOptions = {}): EnvelopeSecret =>
    envelopeFixture(daemon.kms, PLAINTEXT, options);

  async function stillServes(): Promise<void> {
    assert.equal(await daemon.client.check(''), 'SERVING');
    assert.equal((await daemon.client.unsealSecret(Buffer.from(sign(envelope())))).toString(), PLAINTEXT);
  }

  async function failsAndServes(
    secret: string | Uint8Array,
    status: keyof typeof grpc.status,
    code: ErrorCode,
  ) {
    await unsealFails(daemon, secret, status, code);
    await stillServes();
  }

  test('envelope A256GCM round trip', async () => {
    const plaintext = await daemon.client.unsealSecret(Buffer.from(sign(envelope({ wrapType: 'A256GCM' }))));
    assert.equal(plaintext.toString(), PLAINTEXT);
  });

  test('envelope A256CTR round trip', async () => {
    const plaintext = await daemon.client.unsealSecret(Buffer.from(sign(envelope({ wrapType: 'A256CTR' }))));
    assert.equal(plaintext.toString(), PLAINTEXT);
  });

  test('vault round trip', async () => {
    const plaintext = await daemon.client.unsealSecret(Buffer.from(sign(vaultFixture('db-password'))));
    assert.equal(plaintext.toString(), VAULT_VALUE);
  });

  for (const field of ['encrypted_key', 'encrypted_data', 'iv'] as const) {
    test(`malformed base64 in ${field} is INVALID_ARGUMENT`, async () => {
      await failsAndServes(
        sign({ ...envelope(), [field]: 'bm90 YmFzZTY0' }),
        'INVALID_ARGUMENT',
        'PAYLOAD_INVALID',
      );
      await failsAndServes(sign({ ...envelope(), [field]: 'QUJ=' }), 'INVALID_ARGUMENT', 'PAYLOAD_INVALID');
    });
  }

  test('malformed base64url in the JWS header is INVALID_ARGUMENT, in the signature PERMISSION_DENIED', async () => {
    const [prefix, header, payload, signature] = sign(envelope()).split('.');
    await failsAndServes(
      `${prefix}.${header}*.${payload}.${signature}`,
      'INVALID_ARGUMENT',
      'SEALED_SECRET_MALFORMED',
    );
    await failsAndServes(
      `${prefix}.${header}.${payload}.${signature}=`,
      'PERMISSION_DENIED',
      'SIGNATURE_INVALID',
    );
  });

  test('input that is not UTF-8 or not a sealed JWS is INVALID_ARGUMENT', async () => {
    await failsAndServes(
      Buffer.from([0x73, 0x65, 0xff, 0xfe]),
      'INVALID_ARGUMENT',
      'SEALED_SECRET_MALFORMED',
    );
    await failsAndServes('sealed.only.three', 'INVALID_ARGUMENT', 'SEALED_SECRET_MALFORMED');
    await failsAndServes('', 'INVALID_ARGUMENT', 'SEALED_SECRET_MALFORMED');
  });

  test('bad JSON is INVALID_ARGUMENT', async () => {
    const key = createPrivateKey({ key: testKey, format: 'jwk' });
    await failsAndServes(
      signCompact('{"version": "0.1.0",', key, SIGNING_KID),
      'INVALID_ARGUMENT',
      'SEALED_SECRET_MALFORMED',
    );
  });

  test('wrong version is INVALID_ARGUMENT', async () => {
    await failsAndServes(sign({ ...envelope(), version: '0.2.0' }), 'INVALID_ARGUMENT', 'PAYLOAD_INVALID');
  });

  test('wrong type is INVALID_ARGUMENT', async () => {
    await failsAndServes(sign({ ...envelope(), type: 'kms' }), 'INVALID_ARGUMENT', 'PAYLOAD_INVALID');
  });

  test('wrong wrap_type is INVALID_ARGUMENT', async () => {
    await failsAndServes(
      sign({ ...envelope(), wrap_type: 'A128GCM' }),
      'INVALID_ARGUMENT',
      'PAYLOAD_INVALID',
    );
  });

  test('a missing field is INVALID_ARGUMENT', async () => {
    const { key_id: _dropped, ...withoutKeyId } = envelope();
    await failsAndServes(sign(withoutKeyId), 'INVALID_ARGUMENT', 'PAYLOAD_INVALID');
  });

  test('wrong IV length is INVALID_ARGUMENT, without a KMS call', async () => {
    const decrypts = daemon.kms.calls.decrypt;
    await unsealFails(daemon, sign(envelope({ iv: randomBytes(16) })), 'INVALID_ARGUMENT', 'PAYLOAD_INVALID');
    await unsealFails(
      daemon,
      sign(envelope({ wrapType: 'A256CTR', iv: randomBytes(12) })),
      'INVALID_ARGUMENT',
      'PAYLOAD_INVALID',
    );
    assert.equal(daemon.kms.calls.decrypt, decrypts);
    await stillServes();
  });

  for (const length of [16, 33]) {
    test(`a data key of ${length} bytes is INVALID_ARGUMENT`, async () => {
      await failsAndServes(
        sign(envelope({ dataKey: randomBytes(length) })),
        'INVALID_ARGUMENT',
        'DATA_KEY_INVALID',
      );
    });
  }

  test('a tag mismatch is DATA_LOSS', async () => {
    const payload = envelope();
    const data = Buffer.from(payload.encrypted_data, 'base64');
    data[data.length - 1]! ^= 0x01;
    await failsAndServes(
      sign({ ...payload, encrypted_data: data.toString('base64') }),
      'DATA_LOSS',
      'DECRYPTION_FAILED',
    );
  });

  test('an unknown provider is INVALID_ARGUMENT', async () => {
    await failsAndServes(sign(envelope({ provider: 'nosuch' })), 'INVALID_ARGUMENT', 'PROVIDER_UNKNOWN');
    await failsAndServes(sign(vaultFixture('db-password', 'nosuch')), 'INVALID_ARGUMENT', 'PROVIDER_UNKNOWN');
  });

  test('a huge provider name or key id is refused with a short message', async () => {
    await failsAndServes(
      sign(envelope({ provider: 'p'.repeat(200_000) })),
      'INVALID_ARGUMENT',
      'PAYLOAD_INVALID',
    );
    await failsAndServes(
      sign({ ...envelope(), key_id: 'k'.repeat(200_000) }),
      'INVALID_ARGUMENT',
      'PAYLOAD_INVALID',
    );
  });

  test('an unknown key id or secret is NOT_FOUND', async () => {
    await failsAndServes(sign({ ...envelope(), key_id: 'key-404' }), 'NOT_FOUND', 'KMS_NOT_FOUND');
    await failsAndServes(sign(vaultFixture('no-such-secret')), 'NOT_FOUND', 'KMS_NOT_FOUND');
  });

  test('a bad signature, a refused alg or an escaping kid is PERMISSION_DENIED', async () => {
    const signed = sign(envelope());
    const [prefix, header, payload, signature = ''] = signed.split('.');
    const flipped = signature.startsWith('A') ? `B${signature.slice(1)}` : `A${signature.slice(1)}`;
    await failsAndServes(
      `${prefix}.${header}.${payload}.${flipped}`,
      'PERMISSION_DENIED',
      'SIGNATURE_INVALID',
    );
    const none = Buffer.from(JSON.stringify({ alg: 'none', kid: SIGNING_KID })).toString('base64url');
    await failsAndServes(`${prefix}.${none}.${payload}.`, 'PERMISSION_DENIED', 'SIGNATURE_INVALID');
    const escaping = signSealedSecret(envelope(), testKey, '../outside.json');
    await failsAndServes(escaping, 'PERMISSION_DENIED', 'SIGNING_KEY_UNAVAILABLE');
  });

  test('the unsigned form is refused when verification is on', async () => {
    await failsAndServes(unsignedSecret(envelope()), 'INVALID_ARGUMENT', 'SEALED_SECRET_MALFORMED');
  });

  test('random bytes and mutated secrets never get a status outside the catalogue', async () => {
    const catalogued = new Set(
      Object.entries(ERROR_CATALOGUE)
        .filter(([code]) => code !== 'INTERNAL')
        .map(([, entry]) => STATUS_NUMBER[entry.status]),
    );
    const valid = sign(envelope());
    const mutated = fc
      .tuple(fc.nat({ max: valid.length - 1 }), fc.string({ minLength: 0, maxLength: 3 }))
      .map(([at, text]) => valid.slice(0, at) + text + valid.slice(at + 1));
    const input = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      mutated.map((s) => Buffer.from(s)),
    );
    await fc.assert(
      fc.asyncProperty(input, async (bytes) => {
        try {
          await daemon.client.unsealSecret(bytes);
        } catch (error) {
          const code = (error as grpc.ServiceError).code;
          assert.ok(catalogued.has(code), `status ${code}: ${(error as grpc.ServiceError).details}`);
        }
      }),
      { numRuns: 60 },
    );
    await stillServes();
  });
});

describe('UnsealSecret over a real socket (verification skipped)', () => {
  const dir = tempDir('cdh-unseal-skip-');
  let daemon: RunningDaemon;

  before(async () => {
    daemon = await start(dir.path, 'skip', true);
  });
  after(async () => {
    await stop(daemon);
    dir.cleanup();
  });

  test('the unsigned upstream form round-trips, with a base64url or a padded standard base64 payload', async () => {
    const payload = envelopeFixture(daemon.kms, PLAINTEXT);
    const padded = Buffer.from(JSON.stringify(payload, null, 2)).toString('base64');
    for (const secret of [unsignedSecret(payload), `sealed.fakejwsheader.${padded}.fakesignature\n`]) {
      assert.equal((await daemon.client.unsealSecret(Buffer.from(secret))).toString(), PLAINTEXT);
    }
  });

  test('a payload part that is not base64 is INVALID_ARGUMENT', async () => {
    await unsealFails(
      daemon,
      'sealed.fakejwsheader.not*base64.fakesignature',
      'INVALID_ARGUMENT',
      'SEALED_SECRET_MALFORMED',
    );
    assert.equal(await daemon.client.check(''), 'SERVING');
  });
});
