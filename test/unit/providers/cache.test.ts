import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CdhError } from '../../../src/errors';
import { SecretCache } from '../../../src/providers/cache';
import type { CallContext } from '../../../src/providers/types';

const ctx = (): CallContext => ({ signal: new AbortController().signal });

function counter(value = 'dek-material-32-bytes-long......', delayMs = 20) {
  const handed: Buffer[] = [];
  return {
    handed,
    calls: () => handed.length,
    load: async (): Promise<Buffer> => {
      const buffer = Buffer.from(value);
      handed.push(buffer);
      await new Promise((r) => setTimeout(r, delayMs));
      return buffer;
    },
  };
}

test('50 concurrent identical loads share one call, and each caller gets its own copy', async () => {
  const cache = new SecretCache({ ttlMs: 0, maxEntries: 10 });
  const source = counter();
  const results = await Promise.all(
    Array.from({ length: 50 }, () => cache.getOrLoad('k', ctx(), source.load)),
  );
  assert.equal(source.calls(), 1);
  assert.equal(new Set(results).size, 50, 'distinct buffers');
  results[0]?.fill(0);
  assert.equal(results[1]?.toString(), 'dek-material-32-bytes-long......');
  // ttl 0: nothing kept, and the provider's buffer is wiped once everyone has a copy.
  assert.equal(cache.size, 0);
  await new Promise((r) => setImmediate(r));
  assert.ok(source.handed[0]?.every((b) => b === 0));
});

test('a hit avoids the load; ttl 0 disables caching', async () => {
  const cached = new SecretCache({ ttlMs: 60_000, maxEntries: 10 });
  const a = counter('value-a', 1);
  await cached.getOrLoad('k', ctx(), a.load);
  await cached.getOrLoad('k', ctx(), a.load);
  assert.equal(a.calls(), 1);

  const uncached = new SecretCache({ ttlMs: 0, maxEntries: 10 });
  const b = counter('value-b', 1);
  await uncached.getOrLoad('k', ctx(), b.load);
  await uncached.getOrLoad('k', ctx(), b.load);
  assert.equal(b.calls(), 2);
  cached.clear();
});

test('after the TTL the value is fetched again and the old copy is wiped', async () => {
  let now = 1_000;
  const cache = new SecretCache({ ttlMs: 5_000, maxEntries: 10, now: () => now });
  const source = counter('v', 1);
  await cache.getOrLoad('k', ctx(), source.load);
  now += 4_999;
  await cache.getOrLoad('k', ctx(), source.load);
  assert.equal(source.calls(), 1);
  now += 2;
  await cache.getOrLoad('k', ctx(), source.load);
  assert.equal(source.calls(), 2);
  assert.ok(
    source.handed[0]?.every((b) => b === 0),
    'expired buffer wiped',
  );
  cache.clear();
});

test('eviction (LRU, max_entries) wipes the evicted data key', async () => {
  const cache = new SecretCache({ ttlMs: 60_000, maxEntries: 2 });
  const source = counter('secret-dek', 1);
  await cache.getOrLoad('a', ctx(), source.load);
  await cache.getOrLoad('b', ctx(), source.load);
  await cache.getOrLoad('a', ctx(), source.load); // a is now most recent
  await cache.getOrLoad('c', ctx(), source.load); // evicts b
  assert.equal(cache.size, 2);
  assert.equal(source.calls(), 3);
  assert.ok(
    source.handed[1]?.every((x) => x === 0),
    'b wiped',
  );
  assert.equal(source.handed[0]?.toString(), 'secret-dek', 'a kept');
  cache.clear();
  assert.ok(
    source.handed.every((buffer) => buffer.every((x) => x === 0)),
    'clear() wipes everything',
  );
});

test('failures are not cached', async () => {
  const cache = new SecretCache({ ttlMs: 60_000, maxEntries: 10 });
  let calls = 0;
  const failing = async (): Promise<Buffer> => {
    calls++;
    throw new CdhError('KMS_UNAVAILABLE', 'down');
  };
  await assert.rejects(cache.getOrLoad('k', ctx(), failing), /down/);
  await assert.rejects(cache.getOrLoad('k', ctx(), failing), /down/);
  assert.equal(calls, 2);
  cache.clear();
});

test('one waiter giving up does not abort the shared call; the last one does', async () => {
  const cache = new SecretCache({ ttlMs: 0, maxEntries: 10 });
  let loadSignal: AbortSignal | undefined;
  const slow = (c: CallContext): Promise<Buffer> =>
    new Promise((resolve) => {
      loadSignal = c.signal;
      setTimeout(() => resolve(Buffer.from('x')), 50);
    });
  const quitter = new AbortController();
  const first = cache.getOrLoad('k', { signal: quitter.signal }, slow);
  const second = cache.getOrLoad('k', ctx(), slow);
  quitter.abort(new CdhError('DEADLINE_EXCEEDED', 'deadline'));
  await assert.rejects(first, /deadline/);
  assert.equal(loadSignal?.aborted, false);
  assert.equal((await second).toString(), 'x');

  const alone = new AbortController();
  const only = cache.getOrLoad('j', { signal: alone.signal }, slow);
  alone.abort(new CdhError('CANCELLED', 'gone'));
  await assert.rejects(only, /gone/);
  assert.equal(loadSignal?.aborted, true);
});
