import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CdhError } from '../../../src/errors';
import { backoffDelay, withRetry, type AttemptOutcome, type RetryPolicy } from '../../../src/lib/retry';

test('backoff grows exponentially with jitter, capped, and waits at least what Retry-After asks', () => {
  const policy: RetryPolicy = { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 300 };
  assert.equal(
    backoffDelay(policy, 1, () => 0),
    50,
  );
  assert.equal(
    backoffDelay(policy, 1, () => 1),
    100,
  );
  assert.equal(
    backoffDelay(policy, 2, () => 1),
    200,
  );
  assert.equal(
    backoffDelay(policy, 5, () => 1),
    300,
  );
  assert.equal(
    backoffDelay(policy, 5, () => 0),
    150,
  );
  assert.equal(
    backoffDelay(policy, 1, () => 0, 2000),
    2000,
  );
});

const fast: RetryPolicy = { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 2 };
const signal = (): AbortSignal => new AbortController().signal;

function script(outcomes: Array<AttemptOutcome<string, string>>) {
  const seen: number[] = [];
  return {
    seen,
    attempt: async (attempt: number) => {
      seen.push(attempt);
      return outcomes[attempt - 1] as AttemptOutcome<string, string>;
    },
  };
}

test('withRetry: retries retryable failures until one succeeds', async () => {
  const { seen, attempt } = script([
    { ok: false, failure: 'busy', retryable: true },
    { ok: true, value: 'done' },
  ]);
  const retried: string[] = [];
  const value = await withRetry({
    policy: fast,
    signal: signal(),
    attempt,
    giveUp: (f) => new Error(f),
    onRetry: (f) => retried.push(f),
  });
  assert.equal(value, 'done');
  assert.deepEqual(seen, [1, 2]);
  assert.deepEqual(retried, ['busy']);
});

test('withRetry: a final failure ends at once; used-up attempts are told apart', async () => {
  const final = script([{ ok: false, failure: 'refused', retryable: false }]);
  await assert.rejects(
    withRetry({
      policy: fast,
      signal: signal(),
      attempt: final.attempt,
      giveUp: (f, n, r) => new Error(`${f} ${n} ${r}`),
    }),
    /^Error: refused 1 false$/,
  );
  const busy = script(Array(3).fill({ ok: false, failure: 'busy', retryable: true }));
  await assert.rejects(
    withRetry({
      policy: fast,
      signal: signal(),
      attempt: busy.attempt,
      giveUp: (f, n, r) => new Error(`${f} ${n} ${r}`),
    }),
    /^Error: busy 3 true$/,
  );
  assert.deepEqual(busy.seen, [1, 2, 3]);
});

test('withRetry: no backoff past the deadline, and an abort during the backoff ends it with its reason', async () => {
  const busy = script(Array(3).fill({ ok: false, failure: 'busy', retryable: true, retryAfterMs: 10_000 }));
  await assert.rejects(
    withRetry({
      policy: fast,
      signal: signal(),
      deadline: Date.now() + 1000,
      attempt: busy.attempt,
      giveUp: (f, n) => new Error(`${f} after ${n}`),
    }),
    /busy after 1/,
  );
  const controller = new AbortController();
  const slow = script(Array(3).fill({ ok: false, failure: 'busy', retryable: true, retryAfterMs: 5000 }));
  const pending = withRetry({
    policy: { ...fast, maxDelayMs: 10_000 },
    signal: controller.signal,
    attempt: slow.attempt,
    giveUp: (f) => new Error(f),
  });
  setImmediate(() => controller.abort(new CdhError('CANCELLED', 'gone')));
  await assert.rejects(pending, (error: unknown) => error instanceof CdhError && error.code === 'CANCELLED');
});

test('withRetry: an attempt that starts past the deadline gets the expired error', async () => {
  await assert.rejects(
    withRetry({
      policy: fast,
      signal: signal(),
      deadline: Date.now() - 1,
      attempt: async () => ({ ok: true, value: 'never' }),
      giveUp: () => new Error('no'),
      expired: (n) => new Error(`expired after ${n}`),
    }),
    /expired after 0/,
  );
});
