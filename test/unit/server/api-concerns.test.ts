import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { CdhError } from '../../../src/errors';
import { silentLogger } from '../../../src/log';
import {
  CallScope,
  deadline,
  Drain,
  errorToStatus,
  InFlightLimit,
  logging,
  type Next,
} from '../../../src/server/api-concerns';
import type { ApiCall } from '../../../src/server/api';

const UNSEAL = 'api.SealedSecretService/UnsealSecret' as const;

function scopeOf(call: Partial<ApiCall> = {}): CallScope {
  return new CallScope(UNSEAL, {}, { transport: 'grpc', ...call });
}

function waitFor(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

test('drain refuses new calls with SHUTTING_DOWN once started, and lets earlier ones through', async () => {
  const drain = new Drain();
  const run = drain.concern(async () => ({ answered: true }));
  assert.deepEqual(await run(scopeOf()), { answered: true });
  drain.startDraining();
  await assert.rejects(run(scopeOf()), (error: CdhError) => error.code === 'SHUTTING_DOWN');
});

test('the in-flight limit refuses beyond max_in_flight and counts the calls until they end', async () => {
  const limit = new InFlightLimit(1);
  let release: () => void = () => undefined;
  const run = limit.concern(() => new Promise((resolve) => (release = () => resolve({}))));
  const first = run(scopeOf());
  assert.equal(limit.callsInFlight, 1);
  await assert.rejects(run(scopeOf()), (error: CdhError) => error.code === 'TOO_MANY_IN_FLIGHT');
  const idle = limit.whenIdle();
  release();
  await first;
  await idle;
  assert.equal(limit.callsInFlight, 0);
});

test('a call waiting on shared work gives its slot back, once, and still counts in flight', async () => {
  const limit = new InFlightLimit(1);
  let release: () => void = () => undefined;
  const sharing: Next = (scope) => {
    scope.onSharedWork();
    scope.onSharedWork();
    return new Promise((resolve) => (release = () => resolve({})));
  };
  const first = limit.concern(sharing)(scopeOf());
  // Its slot is free again: a second call doing its own work gets in.
  assert.deepEqual(await limit.concern(async () => ({ own: true }))(scopeOf()), { own: true });
  assert.equal(limit.callsInFlight, 1);
  release();
  await first;
  assert.equal(limit.callsInFlight, 0);
});

test('the deadline answers DEADLINE_EXCEEDED at once and aborts the signal the domain asked for', async () => {
  const scope = scopeOf({ deadline: Date.now() + 20 });
  let seen: AbortSignal | undefined;
  const run = deadline(async (s) => {
    seen = s.signal;
    await waitFor(2_000);
    return {};
  });
  await assert.rejects(run(scope), (error: CdhError) => error.code === 'DEADLINE_EXCEEDED');
  assert.equal(seen?.aborted, true);
});

test('a call with neither deadline nor cancellation goes straight through and builds no signal', async () => {
  const scope = scopeOf();
  const answer = { plaintext: Buffer.from('p') };
  assert.equal(await deadline(async () => answer)(scope), answer);
  // Asked only now: made on first use, not aborted.
  assert.equal(scope.signal.aborted, false);
});

test("a cancellation emitter's 'cancelled' cancels the call; after the answer it is not listened to", async () => {
  const emitter = new EventEmitter();
  const run = deadline(() => new Promise(() => undefined));
  const outcome = run(scopeOf({ cancellation: emitter }));
  emitter.emit('cancelled');
  await assert.rejects(outcome, (error: CdhError) => error.code === 'CANCELLED');
  assert.equal(emitter.listenerCount('cancelled'), 0);
  await deadline(async () => ({}))(scopeOf({ cancellation: emitter }));
  assert.equal(emitter.listenerCount('cancelled'), 0);
});

test('a signal aborted before the domain asks for it is already aborted, with the reason', async () => {
  const caller = new AbortController();
  const scope = scopeOf({ signal: caller.signal, deadline: Date.now() + 60_000 });
  const outcome = deadline(() => new Promise(() => undefined))(scope);
  caller.abort();
  await assert.rejects(outcome, (error: CdhError) => error.code === 'CANCELLED');
  assert.equal((scope.signal.reason as CdhError).code, 'CANCELLED');
});

test('error → status maps a catalogued error to its status and anything else to a generic INTERNAL', async () => {
  const catalogued = await errorToStatus(() => Promise.reject(new CdhError('KMS_UNAVAILABLE', 'down')))(
    scopeOf(),
  );
  assert.deepEqual(catalogued.ok === false && [catalogued.status, catalogued.message], [
    'UNAVAILABLE',
    'KMS_UNAVAILABLE: down',
  ]);
  const scope = scopeOf();
  const unexpected = await errorToStatus(() => Promise.reject(new Error('detail hunter2')))(scope);
  assert.equal(unexpected.ok === false && unexpected.status, 'INTERNAL');
  assert.doesNotMatch(unexpected.ok === false ? unexpected.message : '', /hunter2/);
  assert.ok(scope.error instanceof Error);
});

test('logging writes one line per failed call, at info for catalogued errors and error otherwise', async () => {
  const lines: Array<{ level: string; fields: Record<string, unknown> }> = [];
  const logger = silentLogger();
  logger.level = 'debug';
  for (const level of ['debug', 'info', 'error'] as const)
    logger[level] = ((fields: Record<string, unknown>) => void lines.push({ level, fields })) as never;
  const run = logging(logger)(errorToStatus(() => Promise.reject(new CdhError('SIGNATURE_INVALID', 'x'))));
  await run(scopeOf());
  await logging(logger)(errorToStatus(() => Promise.reject(new Error('boom'))))(scopeOf());
  await logging(logger)(errorToStatus(async () => ({})))(scopeOf());
  assert.deepEqual(
    lines.map((l) => [l.level, l.fields['method'], l.fields['status']]),
    [
      ['info', UNSEAL, 'PERMISSION_DENIED'],
      ['error', UNSEAL, 'INTERNAL'],
      ['debug', UNSEAL, undefined],
    ],
  );
});
