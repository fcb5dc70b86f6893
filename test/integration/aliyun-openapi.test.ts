import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import { spawnDaemon, type DaemonProcess } from '../../src/devtools/daemon';
import type { MetadataMode } from '../../src/emulators/aliyun/metadata';
import { OpenApiFixture, STS_CREDENTIAL } from '../../src/emulators/aliyun/openapi-scenario';

/*
 * The daemon as a process, driven through gRPC UnsealSecret with unsigned vault secrets
 * (verification skipped), against the OpenAPI and metadata emulators.
 */

const VALUE = 'integration välue ✓';
/** The daemon's default refresh margin for role credentials. */
const REFRESH_MARGIN_MS = 5 * 60 * 1000;

function unsignedSealed(payload: Record<string, unknown>): Buffer {
  const encoded = Buffer.from(JSON.stringify(payload)).toString('base64url');
  return Buffer.from(`sealed.fakejwsheader.${encoded}.fakesignature`);
}

function vaultSecret(
  name: string,
  providerSettings: Record<string, unknown>,
  annotations: Record<string, string> = {},
): Buffer {
  return unsignedSealed({
    version: '0.1.0',
    type: 'vault',
    name,
    provider: 'aliyun',
    provider_settings: providerSettings,
    annotations,
  });
}

function daemonConfig(fixture: OpenApiFixture): Record<string, unknown> {
  return {
    skip_sealed_secret_verification: true,
    cache: { ttl_seconds: 0 }, // every unseal reaches the provider, so calls can be counted
    ...fixture.daemonConfig(),
  };
}

function grpcFailure(code: number, details: RegExp): (error: unknown) => boolean {
  return (error: unknown) => {
    const failure = error as ServiceError;
    assert.equal(failure.code, code, `${GrpcStatus[failure.code]}: ${failure.details}`);
    assert.match(failure.details, details);
    return true;
  };
}

function assertNoCredentialsIn(text: string): void {
  for (const secret of [STS_CREDENTIAL.accessKeySecret, STS_CREDENTIAL.securityToken])
    assert.ok(!text.includes(secret), 'a credential leaked');
}

interface Setup {
  fixture: OpenApiFixture;
  daemon: DaemonProcess;
  /** Why the tests are skipped (the daemon on this branch does not unseal yet), if they are. */
  skipReason?: string;
}

async function startSetup(metadataMode: MetadataMode, credentialLifetimeMs?: number): Promise<Setup> {
  const fixture = await OpenApiFixture.start({
    metadataMode,
    ...(credentialLifetimeMs === undefined ? {} : { credentialLifetimeMs }),
  });
  fixture.openapi.putSecret('app-secret', [
    { versionId: 'v1', data: 'old value', stages: ['ACSPrevious'] },
    { versionId: 'v2', data: VALUE, stages: ['ACSCurrent'] },
  ]);
  const daemon = await spawnDaemon({ config: daemonConfig(fixture) });
  const setup: Setup = { fixture, daemon };
  // Unsealing lands separately from the daemon: until it does, these tests skip.
  try {
    await daemon.client().unsealSecret(vaultSecret('app-secret', fixture.stsSettings()));
  } catch (error) {
    const details = (error as ServiceError).details ?? '';
    if (/not wired/.test(details)) setup.skipReason = `the daemon does not unseal yet: ${details}`;
  }
  fixture.openapi.resetCounters();
  fixture.metadata.resetCounters();
  return setup;
}

async function stopSetup(setup: Setup): Promise<void> {
  const code = await setup.daemon.stop();
  const logs = setup.daemon.logLines.join('\n');
  setup.daemon.cleanup();
  await setup.fixture.close();
  assert.equal(code, 0);
  assertNoCredentialsIn(logs);
}

function skipped(t: TestContext, setup: Setup): boolean {
  if (setup.skipReason === undefined) return false;
  t.skip(setup.skipReason);
  return true;
}

// Three daemons with their own emulators: independent, so they run side by side.
describe('aliyun OpenAPI client types through the daemon process', { concurrency: true }, () => {
  describe('sts_token through the daemon', { concurrency: 1 }, () => {
    let setup: Setup;
    before(async () => {
      setup = await startSetup('hardened');
    });
    after(() => stopSetup(setup));

    test('unseals a vault secret, honouring version_stage', async (t) => {
      if (skipped(t, setup)) return;
      const client = setup.daemon.client();
      const settings = setup.fixture.stsSettings();
      assert.equal((await client.unsealSecret(vaultSecret('app-secret', settings))).toString('utf8'), VALUE);
      const previous = await client.unsealSecret(
        vaultSecret('app-secret', settings, { version_stage: 'ACSPrevious' }),
      );
      assert.equal(previous.toString('utf8'), 'old value');
    });

    test('an unknown secret is NOT_FOUND with the KMS code and request id', async (t) => {
      if (skipped(t, setup)) return;
      await assert.rejects(
        setup.daemon.client().unsealSecret(vaultSecret('no-such-secret', setup.fixture.stsSettings())),
        grpcFailure(GrpcStatus.NOT_FOUND, /Forbidden\.ResourceNotFound.*RequestId/),
      );
    });

    test('a bad AccessKeyId or a bad signature is PERMISSION_DENIED', async (t) => {
      if (skipped(t, setup)) return;
      const { accessKeyId, accessKeySecret, securityToken } = STS_CREDENTIAL;
      const badAk = await setup.fixture.writeFile(
        'bad-ak',
        `STS.unknown:${accessKeySecret}:${securityToken}`,
      );
      const badSk = await setup.fixture.writeFile('bad-sk', `${accessKeyId}:wrong-secret:${securityToken}`);
      const client = setup.daemon.client();
      await assert.rejects(
        client.unsealSecret(vaultSecret('app-secret', setup.fixture.stsSettings(badAk))),
        grpcFailure(GrpcStatus.PERMISSION_DENIED, /InvalidAccessKeyId\.NotFound/),
      );
      await assert.rejects(
        client.unsealSecret(vaultSecret('app-secret', setup.fixture.stsSettings(badSk))),
        (error: unknown) => {
          grpcFailure(GrpcStatus.PERMISSION_DENIED, /SignatureDoesNotMatch/)(error);
          assertNoCredentialsIn((error as ServiceError).details);
          return true;
        },
      );
    });

    test('429 and 503 are retried, then the unseal succeeds', async (t) => {
      if (skipped(t, setup)) return;
      for (const status of [429, 503] as const) {
        setup.fixture.openapi.resetCounters();
        setup.fixture.openapi.injectFaults(2, status);
        const value = await setup.daemon
          .client()
          .unsealSecret(vaultSecret('app-secret', setup.fixture.stsSettings()));
        assert.equal(value.toString('utf8'), VALUE);
        assert.equal(setup.fixture.openapi.counters.requests, 3);
      }
    });

    test('persistent 503 is UNAVAILABLE after bounded retries', async (t) => {
      if (skipped(t, setup)) return;
      setup.fixture.openapi.resetCounters();
      setup.fixture.openapi.injectFaults(1000, 503);
      try {
        await assert.rejects(
          setup.daemon.client().unsealSecret(vaultSecret('app-secret', setup.fixture.stsSettings())),
          grpcFailure(GrpcStatus.UNAVAILABLE, /ServiceUnavailable.*after \d+ attempts/),
        );
        assert.ok(setup.fixture.openapi.counters.requests > 1);
        assert.ok(setup.fixture.openapi.counters.requests <= 5);
      } finally {
        setup.fixture.openapi.injectFaults(0, 503);
      }
    });

    test('a token file with two parts is FAILED_PRECONDITION naming AK:SK:STS, not the content', async (t) => {
      if (skipped(t, setup)) return;
      const path = await setup.fixture.writeFile('two-parts', 'LTAIvisibleId:TopSecretPart\n');
      await assert.rejects(
        setup.daemon.client().unsealSecret(vaultSecret('app-secret', setup.fixture.stsSettings(path))),
        (error: unknown) => {
          grpcFailure(GrpcStatus.FAILED_PRECONDITION, /AK:SK:STS/)(error);
          const details = (error as ServiceError).details;
          assert.ok(details.includes(path));
          assert.ok(!details.includes('LTAIvisibleId') && !details.includes('TopSecretPart'));
          return true;
        },
      );
    });

    test('an envelope secret with client_type sts_token is INVALID_ARGUMENT: vault secrets only', async (t) => {
      if (skipped(t, setup)) return;
      const envelope = unsignedSealed({
        version: '0.1.0',
        type: 'envelope',
        key_id: 'key-1',
        encrypted_key: randomBytes(64).toString('base64'),
        encrypted_data: randomBytes(48).toString('base64'),
        wrap_type: 'A256GCM',
        iv: randomBytes(12).toString('base64'),
        provider: 'aliyun',
        provider_settings: setup.fixture.stsSettings(),
        annotations: { iv: randomBytes(12).toString('base64') },
      });
      await assert.rejects(
        setup.daemon.client().unsealSecret(envelope),
        grpcFailure(GrpcStatus.INVALID_ARGUMENT, /vault secrets only.*client_key/),
      );
    });
  });

  for (const mode of ['hardened', 'plain'] as MetadataMode[]) {
    describe(`ecs_ram_role through the daemon (${mode} metadata mode)`, { concurrency: 1 }, () => {
      let setup: Setup;
      // Role credentials leave the refresh margin 2-3 s after they are fetched.
      const lifetimeMs = REFRESH_MARGIN_MS + 3000;
      before(async () => {
        setup = await startSetup(mode, lifetimeMs);
      });
      after(() => stopSetup(setup));

      test('unseals with the role credentials, reused across unseals, refreshed after expiry', async (t) => {
        if (skipped(t, setup)) return;
        const { fixture } = setup;
        const client = setup.daemon.client();
        const secret = vaultSecret('app-secret', { client_type: 'ecs_ram_role' });
        for (let i = 0; i < 3; i++) assert.equal((await client.unsealSecret(secret)).toString('utf8'), VALUE);
        assert.equal(fixture.metadata.counters.credentialRequests, 1, 'credentials reused');
        assert.equal(fixture.metadata.counters.tokenRequests, 1, 'one token probe (404 in plain mode)');
        const first = fixture.metadata.issued.at(-1);
        assert.ok(fixture.openapi.calls.every((c) => c.accessKeyId === first?.accessKeyId));
        assert.ok(first);
        // Wait until the credentials are within the margin of their Expiration.
        await sleep(Math.max(0, first.expiresAt - REFRESH_MARGIN_MS - Date.now()) + 200);
        assert.equal((await client.unsealSecret(secret)).toString('utf8'), VALUE);
        assert.equal(fixture.metadata.counters.credentialRequests, 2, 'credentials refreshed');
        assert.equal(fixture.openapi.calls.at(-1)?.accessKeyId, fixture.metadata.issued.at(-1)?.accessKeyId);
      });

      test('an unknown secret is NOT_FOUND', async (t) => {
        if (skipped(t, setup)) return;
        await assert.rejects(
          setup.daemon.client().unsealSecret(vaultSecret('missing', { client_type: 'ecs_ram_role' })),
          grpcFailure(GrpcStatus.NOT_FOUND, /client_type ecs_ram_role.*Forbidden\.ResourceNotFound/),
        );
      });
    });
  }
});
