import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import type { CdhClient } from '../../src/client/cdh-client';
import { spawnDaemon, type DaemonProcess } from '../../src/devtools/daemon';
import { OpenApiFixture } from '../../src/emulators/aliyun/openapi-scenario';
import { until } from '../support/wait';

/*
 * Faults of the KMS OpenAPI and of a flapping ECS metadata service (sts_token, ecs_ram_role),
 * against the daemon process: catalogued statuses within the caller's deadline, requests
 * aborted when the caller is gone, recovery as soon as the service answers again.
 */

const REQUEST_TIMEOUT_MS = 1500;
const VALUE = 'openapi-fault-value-8e21';

function vaultSecret(providerSettings: Record<string, unknown>): Buffer {
  const payload = {
    version: '0.1.0',
    type: 'vault',
    name: 'app-secret',
    provider: 'aliyun',
    provider_settings: providerSettings,
    annotations: {},
  };
  return Buffer.from(
    `sealed.fakejwsheader.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.fakesignature`,
  );
}

interface Outcome {
  readonly status: string;
  readonly details: string;
  readonly ms: number;
}

async function unseal(client: CdhClient, secret: Buffer, deadlineMs = 10_000): Promise<Outcome> {
  const started = Date.now();
  try {
    const value = await client.unsealSecret(secret, deadlineMs);
    assert.equal(value.toString(), VALUE, 'the right value');
    return { status: 'OK', details: '', ms: Date.now() - started };
  } catch (error) {
    const failure = error as ServiceError;
    return {
      status: GrpcStatus[failure.code] ?? String(failure.code),
      details: failure.details,
      ms: Date.now() - started,
    };
  }
}

describe('KMS OpenAPI and metadata faults through the daemon process', { concurrency: 1 }, () => {
  let fixture: OpenApiFixture;
  let daemon: DaemonProcess;
  let client: CdhClient;
  const role = vaultSecret({ client_type: 'ecs_ram_role' });
  let sts: Buffer;

  before(async () => {
    // Role credentials that are always inside the refresh margin: every unseal asks the metadata service.
    fixture = await OpenApiFixture.start({ metadataMode: 'hardened', credentialLifetimeMs: 1000 });
    fixture.openapi.putSecret('app-secret', [{ versionId: 'v1', data: VALUE }]);
    sts = vaultSecret(fixture.stsSettings());
    daemon = await spawnDaemon({
      config: {
        skip_sealed_secret_verification: true,
        cache: { ttl_seconds: 0 },
        ...fixture.daemonConfig(REQUEST_TIMEOUT_MS),
      },
    });
    client = daemon.client();
  });
  after(async () => {
    const code = await daemon.stop();
    const logs = daemon.logLines.join('\n');
    daemon.cleanup();
    await fixture.close();
    assert.equal(code, 0);
    assert.doesNotMatch(logs, /"level":"(error|fatal)"/);
  });

  test("sts_token: the caller's deadline before request_timeout_ms is DEADLINE_EXCEEDED and the OpenAPI request is dropped", async () => {
    // Load the SDK and build the provider first: on a loaded machine that alone can outlast the
    // 600 ms deadline, and then no request reaches the OpenAPI to be dropped.
    assert.equal((await unseal(client, sts)).status, 'OK');
    fixture.openapi.resetCounters();
    fixture.openapi.answerDelayMs = 5000;
    try {
      const outcome = await unseal(client, sts, 600);
      assert.equal(outcome.status, 'DEADLINE_EXCEEDED', outcome.details);
      assert.ok(outcome.ms < 900, `${outcome.ms} ms`);
      assert.ok(await until(() => fixture.openapi.counters.abandoned === 1, 3000), 'request dropped');
    } finally {
      fixture.openapi.answerDelayMs = 0;
    }
    assert.equal((await unseal(client, sts)).status, 'OK');
  });

  test('sts_token: an OpenAPI slower than request_timeout_ms is UNAVAILABLE at request_timeout_ms', async () => {
    fixture.openapi.answerDelayMs = 5000;
    try {
      const outcome = await unseal(client, sts);
      assert.equal(outcome.status, 'UNAVAILABLE', outcome.details);
      assert.match(outcome.details, /^KMS_UNAVAILABLE:/);
      assert.ok(outcome.ms < REQUEST_TIMEOUT_MS + 700, `${outcome.ms} ms`);
    } finally {
      fixture.openapi.answerDelayMs = 0;
    }
    assert.equal((await unseal(client, sts)).status, 'OK');
  });

  test('ecs_ram_role: a flapping metadata service gives UNAVAILABLE while it fails and OK as soon as it answers', async () => {
    const { metadata } = fixture;
    const steps: Array<[string, () => Promise<void> | void, string]> = [
      ['healthy', () => undefined, 'OK'],
      ['HTTP 500', () => metadata.failNext(1, 500), 'UNAVAILABLE'],
      ['healthy again', () => undefined, 'OK'],
      ['HTTP 503', () => metadata.failNext(1, 503), 'UNAVAILABLE'],
      ['down (connection refused)', () => metadata.goOffline(), 'UNAVAILABLE'],
      ['up', () => metadata.goOnline(), 'OK'],
      ['HTTP 429', () => metadata.failNext(1, 429), 'UNAVAILABLE'],
      ['healthy', () => undefined, 'OK'],
      ['hanging', () => metadata.hangNext(1), 'UNAVAILABLE'],
      ['healthy', () => undefined, 'OK'],
    ];
    for (const [what, setUp, expected] of steps) {
      await setUp();
      const outcome = await unseal(client, role);
      assert.equal(outcome.status, expected, `${what}: ${outcome.details}`);
      if (expected === 'UNAVAILABLE') assert.match(outcome.details, /^KMS_UNAVAILABLE: .*metadata/);
      assert.ok(outcome.ms < REQUEST_TIMEOUT_MS + 700, `${what}: answered after ${outcome.ms} ms`);
    }
  });

  test("ecs_ram_role: a hung metadata request is dropped at the caller's deadline and does not hold up the next call", async () => {
    fixture.metadata.hangNext(1);
    const outcome = await unseal(client, role, 500);
    assert.equal(outcome.status, 'DEADLINE_EXCEEDED', outcome.details);
    // The metadata service answers again: the next caller must not wait for the abandoned request.
    const next = await unseal(client, role);
    assert.equal(next.status, 'OK', next.details);
    assert.ok(next.ms < 500, `the next call waited ${next.ms} ms`);
  });

  test('the daemon still serves', async () => {
    assert.equal(await client.check(''), 'SERVING');
    assert.equal(daemon.child.exitCode, null);
  });
});
