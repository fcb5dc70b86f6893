import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import {
  startClientKeyWorld,
  WRONG_CA_INSTANCE_ID,
  WRONG_HOST_INSTANCE_ID,
  type ClientKeyWorld,
} from '../support/client-key-world';
import type { CdhClient } from '../../src/client/cdh-client';
import { spawnDaemon, type DaemonProcess } from '../../src/devtools/daemon';
import { until } from '../support/wait';

/*
 * KMS faults through the gateway emulator, against the daemon process: the KMS down at
 * start-up, slow, hanging, 5xx bursts, connections reset before and in the middle of an
 * answer, TLS failures. Each call is answered with its catalogued status within the caller's
 * deadline, the daemon never dies and it recovers as soon as the KMS does.
 */

const REQUEST_TIMEOUT_MS = 1500;
const PLAINTEXT = 'fault-plaintext-3c9e1a';

interface Outcome {
  readonly status: string;
  readonly details: string;
  readonly ms: number;
  readonly plaintext?: string;
}

const clients = new WeakMap<DaemonProcess, CdhClient>();

async function unseal(daemon: DaemonProcess, secret: string, deadlineMs = 10_000): Promise<Outcome> {
  let client = clients.get(daemon);
  if (client === undefined) {
    client = daemon.client();
    clients.set(daemon, client);
  }
  const started = Date.now();
  try {
    const plaintext = await client.unsealSecret(Buffer.from(secret), deadlineMs);
    return { status: 'OK', details: '', ms: Date.now() - started, plaintext: plaintext.toString() };
  } catch (error) {
    const failure = error as ServiceError;
    return {
      status: GrpcStatus[failure.code] ?? String(failure.code),
      details: failure.details,
      ms: Date.now() - started,
    };
  }
}

function assertOk(outcome: Outcome): void {
  assert.equal(outcome.status, 'OK', outcome.details);
  assert.equal(outcome.plaintext, PLAINTEXT);
}

function assertFailed(outcome: Outcome, status: string, code: string, maxMs: number): void {
  assert.equal(outcome.status, status, outcome.details);
  assert.ok(outcome.details.startsWith(`${code}:`), outcome.details);
  assert.ok(outcome.ms <= maxMs, `answered after ${outcome.ms} ms (bound ${maxMs} ms)`);
  assert.ok(!outcome.details.includes(PLAINTEXT));
}

describe('KMS faults through the daemon process (aliyun client_key)', { concurrency: 1 }, () => {
  let world: ClientKeyWorld;
  let daemon: DaemonProcess;
  let sealed: string;
  /** Distinct secrets, so concurrent calls are not merged into one KMS call. */
  const distinct: string[] = [];

  before(async () => {
    world = await startClientKeyWorld();
    sealed = (await world.sealEnvelope(PLAINTEXT)).sealed;
    for (let i = 0; i < 12; i++) distinct.push((await world.sealEnvelope(PLAINTEXT)).sealed);
    // The KMS is down when the daemon starts.
    await world.emulator.goOffline();
    daemon = await spawnDaemon({
      config: { ...world.daemonConfig(REQUEST_TIMEOUT_MS), cache: { ttl_seconds: 0 } },
    });
  });
  after(async () => {
    const code = await daemon.stop();
    const logs = daemon.logLines.join('\n');
    daemon.cleanup();
    await world.close();
    assert.equal(code, 0, 'the daemon exits cleanly after every fault');
    assert.doesNotMatch(logs, /"level":"(error|fatal)"/, 'no unexpected failure was logged');
  });

  async function stillServes(): Promise<void> {
    world.emulator.clearFaults();
    assert.equal(daemon.child.exitCode, null, 'the daemon is alive');
    assert.equal(await daemon.client().check(''), 'SERVING');
    assertOk(await unseal(daemon, sealed));
  }

  test('KMS down at start-up: the daemon serves, unseal is UNAVAILABLE, then succeeds once the KMS is up', async () => {
    assert.equal(await daemon.client().check(''), 'SERVING');
    const down = await unseal(daemon, sealed);
    assertFailed(down, 'UNAVAILABLE', 'KMS_UNAVAILABLE', REQUEST_TIMEOUT_MS + 500);
    assert.match(down.details, /ECONNREFUSED/);
    await world.emulator.goOnline();
    assertOk(await unseal(daemon, sealed));
  });

  test('the KMS going away and coming back while the daemon runs', async () => {
    await world.emulator.goOffline();
    assertFailed(await unseal(daemon, sealed), 'UNAVAILABLE', 'KMS_UNAVAILABLE', REQUEST_TIMEOUT_MS + 500);
    await world.emulator.goOnline();
    assertOk(await unseal(daemon, sealed));
  });

  test('a slow KMS inside request_timeout_ms: the answer comes', async () => {
    world.emulator.slowNext(600);
    const outcome = await unseal(daemon, sealed);
    assertOk(outcome);
    assert.ok(outcome.ms >= 550, `${outcome.ms} ms`);
  });

  test('a KMS slower than request_timeout_ms: UNAVAILABLE at request_timeout_ms, the request aborted', async () => {
    world.emulator.resetStats();
    world.emulator.hangNext(1);
    const outcome = await unseal(daemon, sealed);
    assertFailed(outcome, 'UNAVAILABLE', 'KMS_UNAVAILABLE', REQUEST_TIMEOUT_MS + 500);
    assert.ok(outcome.ms >= REQUEST_TIMEOUT_MS - 50, `${outcome.ms} ms`);
    assert.match(outcome.details, /within 1500 ms/);
    assert.ok(
      await until(() => world.emulator.stats.abandoned === 1, 1000),
      'the emulator saw the request dropped',
    );
    await stillServes();
  });

  test("the caller's deadline before request_timeout_ms: DEADLINE_EXCEEDED at the deadline, the KMS request aborted", async () => {
    world.emulator.resetStats();
    world.emulator.hangNext(1);
    const deadlineMs = 600;
    const logsBefore = daemon.logLines.length;
    const outcome = await unseal(daemon, sealed, deadlineMs);
    assert.equal(outcome.status, 'DEADLINE_EXCEEDED', outcome.details);
    assert.ok(outcome.ms < deadlineMs + 300, `${outcome.ms} ms`);
    // The daemon stops waiting too: it aborts its gateway request right at the deadline.
    const abortedAt = Date.now();
    assert.ok(
      await until(() => world.emulator.stats.abandoned === 1, 1000),
      'the emulator saw the request dropped',
    );
    assert.ok(Date.now() - abortedAt < 500);
    assert.ok(
      await until(
        () =>
          daemon.logLines
            .slice(logsBefore)
            .some((line) => /"status":"DEADLINE_EXCEEDED"/.test(line) && /call failed/.test(line)),
        1000,
      ),
      `the daemon logged the call as DEADLINE_EXCEEDED: ${daemon.logLines.slice(logsBefore).join('\n')}`,
    );
    const logged = daemon.logLines
      .slice(logsBefore)
      .map((line) => JSON.parse(line) as { status?: string; ms?: number })
      .find((entry) => entry.status === 'DEADLINE_EXCEEDED');
    assert.ok((logged?.ms ?? Infinity) < deadlineMs + 200, `the daemon answered after ${logged?.ms} ms`);
    await stillServes();
  });

  test('a burst of 503s shorter than the retries: the unseal succeeds', async () => {
    world.emulator.resetStats();
    world.emulator.failNext(2, 503);
    assertOk(await unseal(daemon, sealed));
    assert.equal(world.emulator.stats.requests['Decrypt'], 3);
  });

  test('500s and 429s beyond the retries: UNAVAILABLE naming the KMS answer, then recovery', async () => {
    for (const status of [500, 503, 429]) {
      world.emulator.resetStats();
      world.emulator.failNext(20, status);
      const outcome = await unseal(daemon, sealed);
      assertFailed(outcome, 'UNAVAILABLE', 'KMS_UNAVAILABLE', REQUEST_TIMEOUT_MS + 500);
      assert.match(outcome.details, new RegExp(`HTTP ${status}`));
      assert.ok((world.emulator.stats.requests['Decrypt'] ?? 0) <= 4, 'bounded retries');
      await stillServes();
    }
  });

  test('connections reset before the answer: retried, and UNAVAILABLE when it persists', async () => {
    world.emulator.resetNext(1);
    assertOk(await unseal(daemon, sealed));
    world.emulator.resetNext(20);
    assertFailed(await unseal(daemon, sealed), 'UNAVAILABLE', 'KMS_UNAVAILABLE', REQUEST_TIMEOUT_MS + 500);
    await stillServes();
  });

  test('connections reset in the middle of an answer: retried, and UNAVAILABLE when it persists', async () => {
    world.emulator.truncateNext(1);
    assertOk(await unseal(daemon, sealed));
    world.emulator.truncateNext(20);
    const outcome = await unseal(daemon, sealed);
    assertFailed(outcome, 'UNAVAILABLE', 'KMS_UNAVAILABLE', REQUEST_TIMEOUT_MS + 500);
    assert.match(outcome.details, /ECONNRESET/);
    await stillServes();
  });

  test('TLS: a gateway certificate from another CA is UNAVAILABLE (KMS_TLS_FAILED), not retried', async () => {
    world.emulator.resetStats();
    const outcome = await unseal(daemon, world.sealVault('any', {}, WRONG_CA_INSTANCE_ID));
    assertFailed(outcome, 'UNAVAILABLE', 'KMS_TLS_FAILED', REQUEST_TIMEOUT_MS);
    assert.match(outcome.details, /could not be verified against .*PrivateKmsCA_kst-wrongca/);
    assert.equal(world.emulator.stats.tlsConnections, 0);
    assert.equal(world.emulator.stats.requests['GetSecretValue'] ?? 0, 0);
    await stillServes();
  });

  test('TLS: a gateway certificate for another host name is UNAVAILABLE (KMS_TLS_FAILED)', async () => {
    world.emulator.resetStats();
    const outcome = await unseal(daemon, world.sealVault('any', {}, WRONG_HOST_INSTANCE_ID));
    assertFailed(outcome, 'UNAVAILABLE', 'KMS_TLS_FAILED', REQUEST_TIMEOUT_MS);
    assert.match(outcome.details, /not valid for host name kst-wronghost/);
    assert.equal(world.emulator.stats.requests['GetSecretValue'] ?? 0, 0);
    await stillServes();
  });

  test('concurrent calls during a fault storm all get an answer, and the daemon recovers', async () => {
    world.emulator.failNext(6, 503);
    world.emulator.resetNext(3);
    world.emulator.truncateNext(3);
    world.emulator.hangNext(2);
    const outcomes = await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        unseal(daemon, distinct[i % distinct.length] as string, i % 3 === 0 ? 800 : 10_000),
      ),
    );
    for (const outcome of outcomes) {
      assert.ok(['OK', 'UNAVAILABLE', 'DEADLINE_EXCEEDED'].includes(outcome.status), outcome.details);
      if (outcome.status === 'OK') assert.equal(outcome.plaintext, PLAINTEXT);
      if (outcome.status === 'UNAVAILABLE') assert.match(outcome.details, /^KMS_UNAVAILABLE:/);
      assert.ok(outcome.ms <= REQUEST_TIMEOUT_MS + 500, `answered after ${outcome.ms} ms`);
    }
    await stillServes();
  });
});
