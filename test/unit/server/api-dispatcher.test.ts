import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CdhError } from '../../../src/errors';
import { silentLogger } from '../../../src/log';
import { ApiDispatcher, type ApiBackend } from '../../../src/server/api';
import type { CallContext } from '../../../src/providers/types';

function slowBackend(ms: number, seen: CallContext[] = []): ApiBackend {
  return {
    unsealSecret: (secret, ctx) => {
      seen.push(ctx);
      return new Promise((resolve) => setTimeout(() => resolve(Buffer.from(secret)), ms));
    },
    getResource: async (uri) => Buffer.from(uri),
  };
}

const call = { transport: 'grpc' as const };

test('beyond max_in_flight, a call is refused at once with RESOURCE_EXHAUSTED', async () => {
  const dispatcher = new ApiDispatcher(slowBackend(50), { maxInFlight: 2, logger: silentLogger() });
  const request = { secret: Buffer.from('x') };
  const results = await Promise.all(
    [1, 2, 3].map(() => dispatcher.invoke('api.SealedSecretService/UnsealSecret', request, call)),
  );
  const refused = results.filter((r) => !r.ok);
  assert.equal(refused.length, 1);
  assert.equal(refused[0]?.ok === false && refused[0].status, 'RESOURCE_EXHAUSTED');
  assert.match(refused[0]?.ok === false ? refused[0].message : '', /TOO_MANY_IN_FLIGHT/);
  assert.equal(dispatcher.callsInFlight, 0);
});

test("the caller's deadline answers DEADLINE_EXCEEDED and aborts the domain's signal", async () => {
  const seen: CallContext[] = [];
  const dispatcher = new ApiDispatcher(slowBackend(500, seen), { maxInFlight: 8, logger: silentLogger() });
  const started = Date.now();
  const result = await dispatcher.invoke(
    'api.SealedSecretService/UnsealSecret',
    { secret: Buffer.from('x') },
    { ...call, deadline: Date.now() + 30 },
  );
  assert.ok(Date.now() - started < 400);
  assert.equal(result.ok, false);
  assert.equal(result.ok === false && result.status, 'DEADLINE_EXCEEDED');
  assert.equal(seen[0]?.signal.aborted, true);
});

test('a caller that goes away at its deadline is DEADLINE_EXCEEDED, earlier it is CANCELLED', async () => {
  // grpc-js answers the deadline itself and reports the call as cancelled, maybe before our timer.
  for (const [deadlineInMs, expected] of [
    [-1, 'DEADLINE_EXCEEDED'],
    [5_000, 'CANCELLED'],
  ] as const) {
    const seen: CallContext[] = [];
    const dispatcher = new ApiDispatcher(slowBackend(500, seen), { maxInFlight: 8, logger: silentLogger() });
    const caller = new AbortController();
    const outcome = dispatcher.invoke(
      'api.SealedSecretService/UnsealSecret',
      { secret: Buffer.from('x') },
      { ...call, deadline: Date.now() + deadlineInMs, signal: caller.signal },
    );
    // Before the dispatcher's own deadline timer can fire.
    caller.abort();
    const result = await outcome;
    assert.equal(result.ok === false && result.status, expected);
    assert.equal((seen[0]?.signal.reason as CdhError).code, expected);
  }
});

test('a catalogued error keeps its status and message; an unexpected one becomes a generic INTERNAL', async () => {
  const backend: ApiBackend = {
    unsealSecret: async () => {
      throw new CdhError('SIGNATURE_INVALID', 'signature does not verify with key "k"');
    },
    getResource: async () => {
      throw new Error('surprise with secret-looking detail hunter2');
    },
  };
  const dispatcher = new ApiDispatcher(backend, { maxInFlight: 8, logger: silentLogger() });
  const a = await dispatcher.invoke(
    'api.SealedSecretService/UnsealSecret',
    { secret: Buffer.from('s') },
    call,
  );
  assert.deepEqual(a.ok === false && [a.status, a.code, a.message], [
    'PERMISSION_DENIED',
    7,
    'SIGNATURE_INVALID: signature does not verify with key "k"',
  ]);
  const b = await dispatcher.invoke(
    'api.GetResourceService/GetResource',
    { ResourcePath: 'kbs:///a/b/c' },
    call,
  );
  assert.equal(b.ok === false && b.status, 'INTERNAL');
  assert.doesNotMatch(b.ok === false ? b.message : '', /hunter2/);
});

test('while draining, new calls get UNAVAILABLE and whenIdle waits for the running ones', async () => {
  const dispatcher = new ApiDispatcher(slowBackend(40), { maxInFlight: 8, logger: silentLogger() });
  const running = dispatcher.invoke(
    'api.SealedSecretService/UnsealSecret',
    { secret: Buffer.from('a') },
    call,
  );
  dispatcher.startDraining();
  const refused = await dispatcher.invoke(
    'api.SealedSecretService/UnsealSecret',
    { secret: Buffer.from('b') },
    call,
  );
  assert.equal(refused.ok === false && refused.status, 'UNAVAILABLE');
  await dispatcher.whenIdle();
  assert.equal((await running).ok, true);
});
