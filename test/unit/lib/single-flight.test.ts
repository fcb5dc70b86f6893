import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CdhError } from '../../../src/errors';
import { SingleFlight } from '../../../src/lib/single-flight';

/** Work that resolves when told to, counting its starts and whether its signal fired. */
function gate() {
  const state = { starts: 0, aborted: false, release: (_value: string) => undefined as void };
  const start = (signal: AbortSignal) => {
    state.starts++;
    signal.addEventListener('abort', () => (state.aborted = true));
    return new Promise<string>((resolve) => (state.release = resolve));
  };
  return { state, start };
}

test('single flight: concurrent callers of one key share one piece of work, each taking its own share', async () => {
  const taken: string[] = [];
  const flights = new SingleFlight<string>({ onAllTaken: (value) => taken.push(`all took ${value}`) });
  const { state, start } = gate();
  const calls = [1, 2, 3].map(() =>
    flights.run('k', new AbortController().signal, start, (v) => `copy of ${v}`),
  );
  await new Promise((r) => setImmediate(r));
  assert.equal(state.starts, 1);
  state.release('answer');
  assert.deepEqual(await Promise.all(calls), ['copy of answer', 'copy of answer', 'copy of answer']);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(taken, ['all took answer']);
  assert.equal(flights.size, 0);
});

test('single flight: a caller that gives up leaves at once; the work is aborted only when the last one leaves', async () => {
  const flights = new SingleFlight<string>();
  const { state, start } = gate();
  const first = new AbortController();
  const second = new AbortController();
  const a = flights.run('k', first.signal, start);
  const b = flights.run('k', second.signal, start);
  first.abort(new CdhError('CANCELLED', 'first gave up'));
  await assert.rejects(a, /first gave up/);
  assert.equal(state.aborted, false);
  second.abort(new CdhError('DEADLINE_EXCEEDED', 'second ran out of time'));
  await assert.rejects(b, /second ran out of time/);
  await new Promise((r) => setImmediate(r));
  assert.equal(state.aborted, true);
  // The next caller starts afresh rather than joining abandoned work.
  const next = gate();
  const c = flights.run('k', undefined, next.start);
  await new Promise((r) => setImmediate(r));
  next.state.release('fresh');
  assert.equal(await c, 'fresh');
});

test('single flight: a failure reaches every caller and is not remembered', async () => {
  const flights = new SingleFlight<string>();
  let starts = 0;
  const failing = async () => {
    starts++;
    throw new Error('remote down');
  };
  await Promise.all([
    assert.rejects(flights.run('k', undefined, failing), /remote down/),
    assert.rejects(flights.run('k', undefined, failing), /remote down/),
  ]);
  assert.equal(starts, 1);
  await assert.rejects(flights.run('k', undefined, failing), /remote down/);
  assert.equal(starts, 2);
});
