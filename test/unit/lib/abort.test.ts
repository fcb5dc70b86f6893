import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CdhError } from '../../../src/errors';
import { abortError, raceSignal, sleep } from '../../../src/lib/abort';

test('abortError: a catalogued reason as is, a timeout as DEADLINE_EXCEEDED, anything else CANCELLED', () => {
  const reason = new CdhError('DEADLINE_EXCEEDED', 'the deadline passed');
  const fired = new AbortController();
  fired.abort(reason);
  assert.equal(abortError(fired.signal), reason);
  const timeout = new AbortController();
  timeout.abort(new DOMException('timed out', 'TimeoutError'));
  assert.equal(abortError(timeout.signal, 'aliyun').code, 'DEADLINE_EXCEEDED');
  assert.match(abortError(timeout.signal, 'aliyun').message, /^aliyun: the caller's deadline passed$/);
  const plain = new AbortController();
  plain.abort();
  assert.equal(abortError(plain.signal).code, 'CANCELLED');
});

test('sleep waits, and ends early with the abort reason', async () => {
  await sleep(1);
  const controller = new AbortController();
  const pending = sleep(10_000, controller.signal);
  controller.abort(new CdhError('CANCELLED', 'gone'));
  await assert.rejects(pending, /gone/);
  await assert.rejects(sleep(1, controller.signal), /gone/);
});

test('raceSignal settles like the work, or rejects when the signal fires first', async () => {
  assert.equal(await raceSignal(Promise.resolve(1), new AbortController().signal), 1);
  const controller = new AbortController();
  const pending = raceSignal(new Promise(() => undefined), controller.signal);
  controller.abort(new CdhError('CANCELLED', 'stop'));
  await assert.rejects(pending, /stop/);
});
