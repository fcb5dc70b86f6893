import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, beforeEach, test } from 'node:test';
import { CdhError } from '../../../../../src/errors';
import { silentLogger } from '../../../../../src/log';
import {
  createEcsRamRoleProvider,
  type OpenApiProviderOptions,
} from '../../../../../src/providers/aliyun/openapi';
import type { ProviderInstance } from '../../../../../src/providers/types';
import type { MetadataMode } from '../../../../../src/emulators/aliyun/metadata';
import { OpenApiFixture, ROLE_NAME } from '../../../../../src/emulators/aliyun/openapi-scenario';

process.env['CDH_LOOPBACK_ONLY'] = '1';

const FAST_RETRY: OpenApiProviderOptions = { retry: { maxAttempts: 3, baseDelayMs: 5, maxDelayMs: 20 } };
const SETTINGS = { client_type: 'ecs_ram_role' };
let fixture: OpenApiFixture;
/** Role credentials whose OpenAPI registration should be already expired (revocation tests). */
let revokeNextIssued = false;

function call(): { signal: AbortSignal } {
  return { signal: new AbortController().signal };
}

before(async () => {
  fixture = await OpenApiFixture.start({
    onIssue: (_credential, register) => {
      register(revokeNextIssued ? Date.now() - 1000 : _credential.expiresAt);
      revokeNextIssued = false;
    },
  });
  fixture.openapi.putSecret('api-key', [{ versionId: 'v1', data: 'role secret value' }]);
});

after(() => fixture.close());

beforeEach(() => {
  fixture.openapi.resetCounters();
  fixture.metadata.resetCounters();
  fixture.metadata.mode = 'hardened';
  fixture.metadata.credentialLifetimeMs = 60 * 60 * 1000;
});

async function withProvider(
  run: (provider: ProviderInstance) => Promise<void>,
  options: OpenApiProviderOptions = {},
  config = fixture.config(),
): Promise<void> {
  const provider = await createEcsRamRoleProvider(
    SETTINGS,
    { config, logger: silentLogger() },
    {
      ...FAST_RETRY,
      ...options,
    },
  );
  try {
    await run(provider);
  } finally {
    await provider.close?.();
  }
}

for (const mode of ['hardened', 'plain'] as MetadataMode[]) {
  test(`vault get with the RAM role's credentials (${mode} metadata mode), reused across calls`, async () => {
    fixture.metadata.mode = mode;
    await withProvider(async (provider) => {
      for (let i = 0; i < 3; i++) {
        const value = await provider.getter!.getSecret('api-key', {}, call());
        assert.equal(value.toString('utf8'), 'role secret value');
      }
      assert.equal(fixture.metadata.counters.credentialRequests, 1);
      assert.equal(fixture.metadata.counters.tokenRequests, 1);
      assert.equal(fixture.openapi.counters.succeeded, 3);
      const issued = fixture.metadata.issued.at(-1);
      assert.ok(fixture.openapi.calls.every((c) => c.accessKeyId === issued?.accessKeyId));
    });
  });
}

test('role credentials are refreshed once they come within the margin of Expiration', async () => {
  let offset = 0;
  await withProvider(
    async (provider) => {
      await provider.getter!.getSecret('api-key', {}, call());
      await provider.getter!.getSecret('api-key', {}, call());
      assert.equal(fixture.metadata.counters.credentialRequests, 1);
      offset = 56 * 60 * 1000; // the credentials live 60 min; the margin is 5 min
      fixture.metadata.credentialLifetimeMs = 2 * 60 * 60 * 1000; // the next ones outlive the jump
      await provider.getter!.getSecret('api-key', {}, call());
      await provider.getter!.getSecret('api-key', {}, call());
      assert.equal(fixture.metadata.counters.credentialRequests, 2);
      const [first, second] = fixture.metadata.issued.slice(-2);
      assert.deepEqual(
        fixture.openapi.calls.map((c) => c.accessKeyId),
        [first?.accessKeyId, first?.accessKeyId, second?.accessKeyId, second?.accessKeyId],
      );
    },
    { now: () => Date.now() + offset },
  );
});

test('concurrent first calls share one metadata refresh', async () => {
  fixture.metadata.answerDelayMs = 100;
  try {
    await withProvider(async (provider) => {
      await Promise.all(Array.from({ length: 6 }, () => provider.getter!.getSecret('api-key', {}, call())));
      assert.equal(fixture.metadata.counters.credentialRequests, 1);
      assert.equal(fixture.openapi.counters.succeeded, 6);
    });
  } finally {
    fixture.metadata.answerDelayMs = 0;
  }
});

test('credentials the KMS calls expired are replaced once and the call succeeds', async () => {
  revokeNextIssued = true;
  await withProvider(async (provider) => {
    const value = await provider.getter!.getSecret('api-key', {}, call());
    assert.equal(value.toString('utf8'), 'role secret value');
    assert.equal(fixture.metadata.counters.credentialRequests, 2);
    assert.deepEqual(
      fixture.openapi.calls.map((c) => c.code ?? 'ok'),
      ['InvalidSecurityToken.Expired', 'ok'],
    );
  });
});

test('an unknown secret is KMS_NOT_FOUND', async () => {
  await withProvider(async (provider) => {
    await assert.rejects(provider.getter!.getSecret('missing', {}, call()), {
      code: 'KMS_NOT_FOUND',
      message: /client_type ecs_ram_role.*"missing".*Forbidden\.ResourceNotFound/,
    });
  });
});

test('503s are retried, then UNAVAILABLE', async () => {
  await withProvider(async (provider) => {
    fixture.openapi.injectFaults(1, 503);
    await provider.getter!.getSecret('api-key', {}, call());
    fixture.openapi.injectFaults(100, 503);
    await assert.rejects(provider.getter!.getSecret('api-key', {}, call()), { code: 'KMS_UNAVAILABLE' });
    fixture.openapi.injectFaults(0, 503);
  });
});

test('a role the metadata service does not know is KMS_ACCESS_DENIED', async () => {
  const config = fixture.config();
  config.aliyun.credentialDir = join(fixture.dir, 'other-role');
  await mkdir(config.aliyun.credentialDir, { recursive: true });
  await writeFile(
    join(config.aliyun.credentialDir, 'ecsRamRole.json'),
    JSON.stringify({ ecs_ram_role_name: 'NotAttached', region_id: 'cn-beijing' }),
  );
  await withProvider(
    async (provider) => {
      await assert.rejects(provider.getter!.getSecret('api-key', {}, call()), (error: unknown) => {
        assert.ok(error instanceof CdhError);
        assert.equal(error.code, 'KMS_ACCESS_DENIED');
        assert.match(error.message, /no RAM role "NotAttached"/);
        return true;
      });
    },
    {},
    config,
  );
});

test('a missing or malformed ecsRamRole.json is CREDENTIAL_UNAVAILABLE naming the file', async () => {
  const config = fixture.config();
  config.aliyun.credentialDir = join(fixture.dir, 'empty-credential-dir');
  const file = join(config.aliyun.credentialDir, 'ecsRamRole.json');
  const ctx = { config, logger: silentLogger() };
  await assert.rejects(createEcsRamRoleProvider(SETTINGS, ctx), (error: unknown) => {
    assert.ok(error instanceof CdhError);
    assert.equal(error.code, 'CREDENTIAL_UNAVAILABLE');
    assert.ok(error.message.includes(file), error.message);
    return true;
  });
  await mkdir(config.aliyun.credentialDir, { recursive: true });
  for (const content of [
    '{not json',
    '[]',
    JSON.stringify({ region_id: 'cn-beijing' }),
    JSON.stringify({ ecs_ram_role_name: '../../etc', region_id: 'cn-beijing' }),
    JSON.stringify({ ecs_ram_role_name: ROLE_NAME, region_id: 'Not A Region' }),
  ]) {
    await writeFile(file, content);
    await assert.rejects(createEcsRamRoleProvider(SETTINGS, ctx), (error: unknown) => {
      assert.ok(error instanceof CdhError);
      assert.equal(error.code, 'CREDENTIAL_UNAVAILABLE', content);
      assert.ok(error.message.includes(file), error.message);
      return true;
    });
  }
});

test('ecs_ram_role cannot unwrap envelope secrets and says why', async () => {
  await withProvider(async (provider) => {
    assert.equal(provider.decrypter, undefined);
    assert.match(
      provider.unsupportedReason?.decrypter ?? '',
      /client_type ecs_ram_role serves vault secrets only/,
    );
  });
});
