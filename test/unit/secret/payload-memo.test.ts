import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { test } from 'node:test';
import { CdhError } from '../../../src/errors';
import type { CallContext } from '../../../src/providers/types';
import { PayloadMemo } from '../../../src/secret/payload-memo';
import type { SealedSecretPayload } from '../../../src/secret/payload';
import type { VerificationKeyResolver } from '../../../src/secret/signing-keys';

const ctx: CallContext = { signal: new AbortController().signal };
const parts = { header: 'h', payload: 'p', signature: 's' };
const newKey = (): KeyObject => generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
const payload = (): SealedSecretPayload =>
  ({
    version: '0.1.0',
    type: 'vault',
    name: 'n',
    provider: 'kbs',
    provider_settings: { nested: { a: 1 } },
    annotations: {},
  }) as unknown as SealedSecretPayload;

function resolverOf(current: () => KeyObject): VerificationKeyResolver & { calls: number } {
  const resolver = {
    calls: 0,
    resolve: async () => {
      resolver.calls++;
      return current();
    },
  };
  return resolver;
}

test('a verified payload is recalled while its kid resolves to the very key that verified it', async () => {
  const memo = new PayloadMemo();
  let key = newKey();
  const keys = resolverOf(() => key);
  const digest = PayloadMemo.digestOf(parts) as string;
  memo.remember(digest, payload(), { kid: 'k', key });
  assert.ok(await memo.recall(digest, keys, ctx));
  key = newKey(); // the key file was replaced
  assert.equal(await memo.recall(digest, keys, ctx), undefined);
  assert.equal(keys.calls, 2);
});

test('a removed key is an error, not a recalled payload', async () => {
  const memo = new PayloadMemo();
  const key = newKey();
  const digest = PayloadMemo.digestOf(parts) as string;
  memo.remember(digest, payload(), { kid: 'k', key });
  const gone: VerificationKeyResolver = {
    resolve: async () => {
      throw new CdhError('SIGNING_KEY_UNAVAILABLE', 'no such key file');
    },
  };
  await assert.rejects(memo.recall(digest, gone, ctx), /no such key file/);
});

test('unverified and verified entries never answer for each other', async () => {
  const memo = new PayloadMemo();
  const digest = PayloadMemo.digestOf(parts) as string;
  memo.remember(digest, payload());
  assert.ok(await memo.recall(digest, undefined, ctx));
  assert.equal(await memo.recall(digest, resolverOf(newKey), ctx), undefined);
  memo.remember(digest, payload(), { kid: 'k', key: newKey() });
  assert.equal(await memo.recall(digest, undefined, ctx), undefined);
});

test('remembered payloads are frozen, deeply', async () => {
  const memo = new PayloadMemo();
  const digest = PayloadMemo.digestOf(parts) as string;
  memo.remember(digest, payload());
  const recalled = (await memo.recall(digest, undefined, ctx)) as unknown as {
    provider_settings: { nested: { a: number } };
  };
  assert.throws(() => {
    recalled.provider_settings.nested.a = 2;
  }, TypeError);
});

test('large inputs are not remembered', () => {
  assert.equal(
    PayloadMemo.digestOf({ header: 'h', payload: 'x'.repeat(70 * 1024), signature: 's' }),
    undefined,
  );
});
