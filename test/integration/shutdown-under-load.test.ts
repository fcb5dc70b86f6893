import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import { CdhClient } from '../../src/client/cdh-client';
import { startClientKeyWorld, type ClientKeyWorld } from '../support/client-key-world';
import { spawnDaemon } from '../../src/devtools/daemon';

/*
 * Shutdown under load and bounded in-flight calls, against the daemon process with a slow KMS.
 */

interface Sealed {
  readonly input: Buffer;
  readonly plaintext: string;
}

interface CallRecord {
  readonly startedAt: number;
  readonly endedAt: number;
  readonly status: string;
  readonly details: string;
  readonly rightPlaintext: boolean;
}

async function call(client: CdhClient, secret: Sealed, deadlineMs: number): Promise<CallRecord> {
  const startedAt = Date.now();
  try {
    const plaintext = await client.unsealSecret(secret.input, deadlineMs);
    return {
      startedAt,
      endedAt: Date.now(),
      status: 'OK',
      details: '',
      rightPlaintext: plaintext.toString() === secret.plaintext,
    };
  } catch (error) {
    const failure = error as ServiceError;
    return {
      startedAt,
      endedAt: Date.now(),
      status: GrpcStatus[failure.code] ?? String(failure.code),
      details: failure.details ?? '',
      rightPlaintext: false,
    };
  }
}

describe('shutdown under load and bounded in-flight calls', { concurrency: 1 }, () => {
  let world: ClientKeyWorld;
  const secrets: Sealed[] = [];

  before(async () => {
    world = await startClientKeyWorld();
    for (let i = 0; i < 16; i++) {
      const plaintext = `shutdown-plaintext-${i}`;
      secrets.push({ input: Buffer.from((await world.sealEnvelope(plaintext)).sealed), plaintext });
    }
  });
  after(() => world.close());

  test('SIGTERM during a load run: in-flight calls finish or get UNAVAILABLE, none hangs, exit 0, socket removed', async () => {
    const daemon = await spawnDaemon({ config: { ...world.daemonConfig(5000), cache: { ttl_seconds: 0 } } });
    const client = new CdhClient(daemon.target);
    try {
      world.emulator.clearFaults();
      world.emulator.slowNext(250, 5000);
      const records: CallRecord[] = [];
      let stopping = false;
      let next = 0;
      const worker = async (): Promise<void> => {
        while (!stopping) {
          const secret = secrets[next++ % secrets.length] as Sealed;
          const record = await call(client, secret, 20_000);
          records.push(record);
          // Refused calls come back at once: do not spin.
          if (record.status !== 'OK') await sleep(10);
        }
      };
      const workers = Array.from({ length: 64 }, worker);
      // Under load means: calls have been succeeding for a while (not a fixed time: CI is slow).
      const loadedBy = Date.now() + 20_000;
      while (records.filter((r) => r.status === 'OK').length <= 64 && Date.now() < loadedBy) await sleep(50);
      const sigtermAt = Date.now();
      daemon.child.kill('SIGTERM');
      const code = await Promise.race([daemon.exited(), sleep(15_000, 'still running', { ref: false })]);
      const exitedAt = Date.now();
      stopping = true;
      await Promise.all(workers);

      assert.equal(code, 0, daemon.stderr());
      assert.equal(existsSync(daemon.socketPath), false, 'the socket file is removed');
      assert.ok(exitedAt - sigtermAt < 10_000, `exited ${exitedAt - sigtermAt} ms after SIGTERM`);
      const statuses = new Set(records.map((r) => r.status));
      for (const status of statuses) assert.ok(['OK', 'UNAVAILABLE'].includes(status), `status ${status}`);
      for (const r of records) {
        if (r.status === 'OK') assert.ok(r.rightPlaintext, 'a wrong plaintext');
        assert.ok(r.endedAt - r.startedAt < 10_000, `a call took ${r.endedAt - r.startedAt} ms`);
      }
      const inFlightAtSigterm = records.filter((r) => r.startedAt < sigtermAt && r.endedAt >= sigtermAt);
      const drained = inFlightAtSigterm.filter((r) => r.status === 'OK');
      // `<=`: the loop above may see its 65th answer in the very millisecond SIGTERM is sent.
      assert.ok(
        records.filter((r) => r.endedAt <= sigtermAt && r.status === 'OK').length > 64,
        'load before',
      );
      assert.ok(
        drained.length > 0,
        `calls in flight at SIGTERM finished (${inFlightAtSigterm.length} in flight)`,
      );
      assert.ok(
        records.some((r) => r.startedAt > sigtermAt && r.status === 'UNAVAILABLE'),
        'calls after SIGTERM are UNAVAILABLE',
      );
      const log = daemon.logLines.join('\n');
      assert.match(log, /"msg":"stopped"/);
      assert.doesNotMatch(log, /grace period over/);
    } finally {
      client.close();
      world.emulator.clearFaults();
      daemon.cleanup();
    }
  });

  test('beyond max_in_flight, RESOURCE_EXHAUSTED at once instead of a queue (max_in_flight 4, 10 slow calls)', async () => {
    const daemon = await spawnDaemon({
      config: { ...world.daemonConfig(5000), cache: { ttl_seconds: 0 }, max_in_flight: 4 },
    });
    const client = new CdhClient(daemon.target);
    try {
      // Warm up (client key loaded, connections open), then make the KMS slow.
      assert.equal((await call(client, secrets[0] as Sealed, 10_000)).status, 'OK');
      world.emulator.clearFaults();
      world.emulator.slowNext(1500, 4);
      const records = await Promise.all(secrets.slice(0, 10).map((secret) => call(client, secret, 10_000)));
      const refused = records.filter((r) => r.status === 'RESOURCE_EXHAUSTED');
      const served = records.filter((r) => r.status === 'OK');
      assert.equal(refused.length, 6, JSON.stringify(records));
      assert.equal(served.length, 4, JSON.stringify(records));
      for (const r of refused) {
        assert.match(r.details, /^TOO_MANY_IN_FLIGHT: .*max_in_flight/);
        assert.ok(r.endedAt - r.startedAt < 500, `refused after ${r.endedAt - r.startedAt} ms`);
      }
      for (const r of served) {
        assert.ok(r.rightPlaintext);
        assert.ok(r.endedAt - r.startedAt >= 1400, `served after ${r.endedAt - r.startedAt} ms`);
      }
      // The slots are free again.
      assert.equal((await call(client, secrets[11] as Sealed, 10_000)).status, 'OK');
    } finally {
      client.close();
      world.emulator.clearFaults();
      await daemon.stop();
      daemon.cleanup();
    }
  });
});
