import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createPrivateKey, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { defaultConfig } from '../../../src/config/types';
import { CdhError, ERROR_CATALOGUE } from '../../../src/errors';
import { silentLogger } from '../../../src/log';
import { ProviderRegistry } from '../../../src/providers/registry';
import { signCompact } from '../../../src/secret/jws';
import { signSealedSecret } from '../../../src/secret/seal';
import { SecretUnsealer } from '../../../src/secret/unsealer';
import { envelopeFixture, unsignedSecret, upstreamJwk, vaultFixture } from '../../support/sealed-fixtures';
import { callContext, temporaryDirectory } from '../../support/secret-helpers';
import { TestKms } from '../../support/test-provider';

/**
 * Whatever arrives, unseal answers with a plaintext or a catalogued CdhError, never with
 * INTERNAL (an unexpected exception) and never by crashing.
 */

const RUNS = 250;
const tmp = temporaryDirectory('cdh-prop-');
const testKey = upstreamJwk('test-key.json');
const signingKey = createPrivateKey({ key: testKey, format: 'jwk' });
const kms = new TestKms({ keyIds: ['key-1'], secrets: { 'db-password': 'vault-value' } });

function unsealerFor(skipVerification: boolean): SecretUnsealer {
  const logger = silentLogger();
  const registry = new ProviderRegistry([kms.factory], { config: defaultConfig(), logger });
  return new SecretUnsealer({ registry, skipVerification, signingKeyDir: tmp.dir, logger });
}

const unsealers = [unsealerFor(true), unsealerFor(false)];

before(() => writeFileSync(path.join(tmp.dir, 'key.json'), JSON.stringify(testKey)));
after(() => tmp.remove());

async function answersWithinCatalogue(input: Uint8Array | string): Promise<void> {
  const bytes = typeof input === 'string' ? Buffer.from(input, 'utf8') : input;
  for (const unsealer of unsealers) {
    try {
      const plaintext = await unsealer.unseal(bytes, callContext());
      assert.ok(Buffer.isBuffer(plaintext));
    } catch (error) {
      assert.ok(error instanceof CdhError, `not a CdhError: ${String(error)}`);
      assert.ok(error.code in ERROR_CATALOGUE, error.code);
      assert.notEqual(error.code, 'INTERNAL', `INTERNAL: ${String(error.cause)}`);
    }
  }
}

const validEnvelope = envelopeFixture(kms, 'the plaintext');
const validPayloads = [
  validEnvelope,
  envelopeFixture(kms, 'the plaintext', { wrapType: 'A256CTR' }),
  vaultFixture('db-password'),
];
const validSecrets = validPayloads.flatMap((payload) => [
  unsignedSecret(payload),
  signSealedSecret(payload, testKey, 'key.json'),
]);

function signedJson(json: string): string {
  return signCompact(json, signingKey, 'key.json');
}

test('random bytes never produce anything but a catalogued error', async () => {
  await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 600 }), answersWithinCatalogue), {
    numRuns: RUNS,
  });
  const sealedish = fc
    .tuple(fc.string(), fc.string(), fc.string())
    .map(([a, b, c]) => `sealed.${a}.${b}.${c}`);
  await fc.assert(fc.asyncProperty(sealedish, answersWithinCatalogue), { numRuns: RUNS });
});

test('random JSON as the payload, unsigned and signed, never produces an uncatalogued error', async () => {
  await fc.assert(
    fc.asyncProperty(fc.jsonValue({ maxDepth: 40 }), async (value) => {
      const json = JSON.stringify(value);
      await answersWithinCatalogue(unsignedSecret(json));
      await answersWithinCatalogue(signedJson(json));
    }),
    { numRuns: RUNS },
  );
});

const anyJson = fc.jsonValue({ maxDepth: 3 });
const base64Text = fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b).toString('base64'));

/** Objects shaped like payloads, each field either plausible or random. */
const payloadLike = fc.record(
  {
    version: fc.oneof(fc.constant('0.1.0'), anyJson),
    type: fc.oneof(fc.constantFrom('envelope', 'vault'), anyJson),
    provider: fc.oneof(fc.constantFrom('test', 'TEST', 'nosuch', ''), anyJson),
    provider_settings: fc.oneof(fc.constant({}), fc.dictionary(fc.string(), anyJson), anyJson),
    annotations: fc.oneof(fc.dictionary(fc.string(), fc.string()), anyJson),
    key_id: fc.oneof(fc.constantFrom('key-1', 'key-2'), anyJson),
    encrypted_key: fc.oneof(fc.constant(validEnvelope.encrypted_key), base64Text, fc.string()),
    encrypted_data: fc.oneof(base64Text, fc.string(), anyJson),
    wrap_type: fc.oneof(fc.constantFrom('A256GCM', 'A256CTR'), anyJson),
    iv: fc.oneof(
      fc.integer({ min: 0, max: 20 }).map((n) => randomBytes(n).toString('base64')),
      fc.string(),
      anyJson,
    ),
    name: fc.oneof(fc.constantFrom('db-password', 'missing'), anyJson),
  },
  { requiredKeys: [] },
);

test('random payload-shaped objects never produce an uncatalogued error', async () => {
  await fc.assert(
    fc.asyncProperty(payloadLike, async (payload) => {
      await answersWithinCatalogue(unsignedSecret(payload));
      await answersWithinCatalogue(signedJson(JSON.stringify(payload)));
    }),
    { numRuns: RUNS },
  );
});

type Edit =
  | { kind: 'replace'; at: number; char: string }
  | { kind: 'insert'; at: number; text: string }
  | { kind: 'delete'; at: number; count: number };

const edit: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({
    kind: fc.constant('replace' as const),
    at: fc.nat(),
    char: fc.string({ minLength: 1, maxLength: 1 }),
  }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: fc.string({ maxLength: 4 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 8 }) }),
);

function applyEdit(text: string, change: Edit): string {
  const at = text.length === 0 ? 0 : change.at % text.length;
  switch (change.kind) {
    case 'replace':
      return text.slice(0, at) + change.char + text.slice(at + 1);
    case 'insert':
      return text.slice(0, at) + change.text + text.slice(at);
    case 'delete':
      return text.slice(0, at) + text.slice(at + change.count);
  }
}

test('random mutations of valid sealed secrets never produce an uncatalogued error', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...validSecrets),
      fc.array(edit, { minLength: 1, maxLength: 4 }),
      (secret, edits) => answersWithinCatalogue(edits.reduce(applyEdit, secret)),
    ),
    { numRuns: RUNS * 2 },
  );
});

test('random mutations of a valid payload JSON never produce an uncatalogued error', async () => {
  const jsonTexts = validPayloads.map((payload) => JSON.stringify(payload));
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...jsonTexts),
      fc.array(edit, { minLength: 1, maxLength: 4 }),
      async (json, edits) => {
        const mutated = edits.reduce(applyEdit, json);
        await answersWithinCatalogue(unsignedSecret(mutated));
        await answersWithinCatalogue(signedJson(mutated));
      },
    ),
    { numRuns: RUNS * 2 },
  );
});
