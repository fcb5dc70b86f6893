import assert from 'node:assert/strict';
import { test } from 'node:test';
import { abandonStart, shutDown, stopNow, type ShutdownParts } from '../../../src/app/shutdown';
import { captureLogger } from '../../support/kbs';

/** Parts that record each step; `idle` settles when the test says the last call finished. */
function recordingParts(): {
  parts: ShutdownParts;
  steps: string[];
  finishCalls(): void;
  lines: Array<Record<string, unknown>>;
} {
  const steps: string[] = [];
  let finishCalls: () => void = () => undefined;
  const idle = new Promise<void>((resolve) => (finishCalls = resolve));
  const { logger, lines } = captureLogger();
  const parts: ShutdownParts = {
    logger,
    dispatcher: {
      callsInFlight: 1,
      startDraining: () => steps.push('dispatcher draining'),
      whenIdle: () => idle.then(() => void steps.push('calls finished')),
    },
    grpc: {
      setServing: (serving) => steps.push(`grpc serving ${serving}`),
      drain: () => steps.push('grpc goaway'),
      whenClosed: async () => void steps.push('grpc connections closed'),
      destroy: () => steps.push('grpc destroyed'),
    },
    ttrpc: {
      close: async () => void steps.push('ttrpc closing'),
      destroy: () => steps.push('ttrpc destroyed'),
    },
    listener: {
      close: async () => void steps.push('listener closed'),
      removeSocketFile: () => steps.push('socket file removed'),
    },
    unlisted: () => steps.push('address withdrawn'),
    services: {
      close: async () => void steps.push('services closed'),
      closeNow: () => steps.push('kbc closed'),
    },
  };
  return { parts, steps, finishCalls: () => finishCalls(), lines };
}

test('graceful stop: refuse new calls, close the socket, wait for calls in flight, then close the services', async () => {
  const { parts, steps, finishCalls } = recordingParts();
  const stopping = shutDown(parts, 30_000);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(steps.includes('services closed'), false, 'services closed while a call is in flight');
  finishCalls();
  await stopping;
  assert.deepEqual(steps, [
    'grpc serving false',
    'dispatcher draining',
    'listener closed',
    'address withdrawn',
    'grpc goaway',
    'ttrpc closing',
    'calls finished',
    'grpc connections closed',
    'grpc destroyed',
    'ttrpc destroyed',
    'services closed',
  ]);
});

test('graceful stop: a call still in flight when the grace period ends is cut off and logged', async () => {
  const { parts, steps, lines } = recordingParts();
  // The grace timer is unref'd (it must not keep a stopping daemon alive); in this test nothing
  // else holds the event loop open, so a ref'd timer does until the stop settles.
  const keepAlive = setInterval(() => undefined, 1000);
  try {
    await shutDown(parts, 1);
  } finally {
    clearInterval(keepAlive);
  }
  assert.ok(lines.some((line) => String(line['msg']).includes('grace period over')));
  assert.equal(steps.includes('calls finished'), false);
  assert.deepEqual(steps.slice(-3), ['grpc destroyed', 'ttrpc destroyed', 'services closed']);
});

test('immediate stop removes the socket file and destroys every connection without waiting', () => {
  const { parts, steps } = recordingParts();
  stopNow(parts);
  assert.deepEqual(steps, [
    'kbc closed',
    'socket file removed',
    'address withdrawn',
    'grpc destroyed',
    'ttrpc destroyed',
  ]);
});

test('a start-up that fails after the services were built closes them and withdraws nothing', async () => {
  const { parts, steps } = recordingParts();
  await abandonStart(parts);
  assert.deepEqual(steps, ['listener closed', 'grpc destroyed', 'ttrpc destroyed', 'services closed']);
});
