import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CdhError } from '../../../../../src/errors';
import { silentLogger } from '../../../../../src/log';
import { aliyunProvider } from '../../../../../src/providers/aliyun';
import {
  createStsTokenProvider,
  type OpenApiProviderOptions,
} from '../../../../../src/providers/aliyun/openapi';
import { ProviderRegistry } from '../../../../../src/providers/registry';
import type { ProviderInstance } from '../../../../../src/providers/types';
import { OpenApiFixture, STS_CREDENTIAL } from '../../../../../src/emulators/aliyun/openapi-scenario';

process.env['CDH_LOOPBACK_ONLY'] = '1';

const FAST_RETRY: OpenApiProviderOptions = { retry: { maxAttempts: 3, baseDelayMs: 5, maxDelayMs: 20 } };
let fixture: OpenApiFixture;
let provider: ProviderInstance;

function call(signal = new AbortController().signal): { signal: AbortSignal } {
  return { signal };
}

async function getSecret(name: string, annotations: Record<string, string> = {}): Promise<string> {
  assert.ok(provider.getter);
  return (await provider.getter.getSecret(name, annotations, call())).toString('utf8');
}

function assertNoCredentials(message: string): void {
  for (const secret of [STS_CREDENTIAL.accessKeySecret, STS_CREDENTIAL.securityToken]) {
    assert.ok(!message.includes(secret), `message leaks a credential: ${message}`);
  }
  assert.ok(!/string to sign/i.test(message), `message echoes the string to sign: ${message}`);
}

before(async () => {
  fixture = await OpenApiFixture.start();
  fixture.openapi.putSecret('db-password', [
    { versionId: 'v1', data: 'first value', stages: ['ACSPrevious'] },
    { versionId: 'v2', data: 'second välue ✓', stages: ['ACSCurrent'] },
    { versionId: 'v3', data: 'pending value', stages: ['ACSPending'] },
  ]);
  provider = await createStsTokenProvider(
    fixture.stsSettings(),
    { config: fixture.config(), logger: silentLogger() },
    FAST_RETRY,
  );
});

after(async () => {
  await provider.close?.();
  await fixture.close();
});

beforeEach(() => fixture.openapi.resetCounters());

test('a vault secret is fetched with GetSecretValue through the official SDK', async () => {
  assert.equal(await getSecret('db-password'), 'second välue ✓');
  const [recorded] = fixture.openapi.calls;
  assert.ok(recorded);
  assert.equal(recorded.status, 200);
  assert.equal(recorded.action, 'GetSecretValue');
  assert.equal(recorded.accessKeyId, STS_CREDENTIAL.accessKeyId);
  assert.equal(recorded.params['SecretName'], 'db-password');
  assert.equal(recorded.params['FetchExtendedConfig'], 'true');
  assert.equal(recorded.params['SignatureMethod'], 'HMAC-SHA1');
  assert.equal(recorded.host, fixture.openapi.endpoint);
});

test('version_stage and version_id annotations select the version', async () => {
  assert.equal(await getSecret('db-password', { version_stage: 'ACSPrevious' }), 'first value');
  assert.equal(await getSecret('db-password', { version_id: 'v3' }), 'pending value');
  assert.equal(
    await getSecret('db-password', { version_id: 'v1', version_stage: 'ACSPrevious' }),
    'first value',
  );
  assert.equal(fixture.openapi.calls[0]?.params['VersionStage'], 'ACSPrevious');
  assert.equal(fixture.openapi.calls[1]?.params['VersionId'], 'v3');
});

test('an unknown secret or version is KMS_NOT_FOUND with the KMS code and request id', async () => {
  for (const [name, annotations] of [
    ['no-such-secret', {}],
    ['db-password', { version_id: 'v9' }],
  ] as const) {
    await assert.rejects(getSecret(name, annotations), (error: unknown) => {
      assert.ok(error instanceof CdhError);
      assert.equal(error.code, 'KMS_NOT_FOUND');
      assert.equal(error.status, 'NOT_FOUND');
      assert.match(error.message, /Forbidden\.ResourceNotFound/);
      assert.match(error.message, /RequestId [0-9A-F-]{36}/);
      assert.match(error.message, new RegExp(name));
      return true;
    });
  }
});

test('a bad signature (wrong AccessKeySecret) is KMS_ACCESS_DENIED and leaks nothing', async () => {
  const { accessKeyId, securityToken } = STS_CREDENTIAL;
  const tokenPath = await fixture.writeFile('bad-sk', `${accessKeyId}:not-the-secret:${securityToken}`);
  const wrong = await createStsTokenProvider(
    fixture.stsSettings(tokenPath),
    { config: fixture.config(), logger: silentLogger() },
    FAST_RETRY,
  );
  try {
    await assert.rejects(wrong.getter!.getSecret('db-password', {}, call()), (error: unknown) => {
      assert.ok(error instanceof CdhError);
      assert.equal(error.code, 'KMS_ACCESS_DENIED');
      assert.equal(error.status, 'PERMISSION_DENIED');
      assert.match(error.message, /SignatureDoesNotMatch/);
      assertNoCredentials(error.message);
      assert.equal(error.cause, undefined);
      return true;
    });
    assert.equal(fixture.openapi.counters.requests, 1, 'credential errors are not retried');
  } finally {
    await wrong.close?.();
  }
});

test('an unknown AccessKeyId or a wrong SecurityToken is KMS_ACCESS_DENIED', async () => {
  const cases = [
    [
      'bad-ak',
      `STS.unknown:${STS_CREDENTIAL.accessKeySecret}:${STS_CREDENTIAL.securityToken}`,
      /InvalidAccessKeyId\.NotFound/,
    ],
    [
      'bad-token',
      `${STS_CREDENTIAL.accessKeyId}:${STS_CREDENTIAL.accessKeySecret}:CAISforged`,
      /InvalidSecurityToken/,
    ],
  ] as const;
  for (const [file, content, code] of cases) {
    const tokenPath = await fixture.writeFile(file, content);
    const wrong = await createStsTokenProvider(
      fixture.stsSettings(tokenPath),
      { config: fixture.config(), logger: silentLogger() },
      FAST_RETRY,
    );
    try {
      await assert.rejects(wrong.getter!.getSecret('db-password', {}, call()), (error: unknown) => {
        assert.ok(error instanceof CdhError);
        assert.equal(error.code, 'KMS_ACCESS_DENIED');
        assert.match(error.message, code);
        assertNoCredentials(error.message);
        return true;
      });
    } finally {
      await wrong.close?.();
    }
  }
});

test('429 and 503 answers are retried, then the call succeeds', async () => {
  for (const status of [429, 503] as const) {
    fixture.openapi.resetCounters();
    fixture.openapi.injectFaults(2, status);
    assert.equal(await getSecret('db-password'), 'second välue ✓');
    assert.equal(fixture.openapi.counters.injectedFaults, 2);
    assert.equal(fixture.openapi.counters.requests, 3);
  }
});

test('persistent throttling or 503 is KMS_UNAVAILABLE after the bounded retries', async () => {
  for (const [status, code] of [
    [503, /ServiceUnavailable, HTTP 503/],
    [429, /Throttling, HTTP 429/],
  ] as const) {
    fixture.openapi.resetCounters();
    fixture.openapi.injectFaults(100, status);
    await assert.rejects(getSecret('db-password'), (error: unknown) => {
      assert.ok(error instanceof CdhError);
      assert.equal(error.code, 'KMS_UNAVAILABLE');
      assert.equal(error.status, 'UNAVAILABLE');
      assert.match(error.message, code);
      assert.match(error.message, /after 3 attempts/);
      return true;
    });
    assert.equal(fixture.openapi.counters.requests, 3);
    fixture.openapi.injectFaults(0, 503);
  }
});

test('a token file with two parts is CREDENTIAL_UNAVAILABLE naming the format, never the content', async () => {
  const tokenPath = await fixture.writeFile('two-parts', 'LTAIsecretlooking:VerySecretValue42\n');
  await assert.rejects(
    createStsTokenProvider(fixture.stsSettings(tokenPath), {
      config: fixture.config(),
      logger: silentLogger(),
    }),
    (error: unknown) => {
      assert.ok(error instanceof CdhError);
      assert.equal(error.code, 'CREDENTIAL_UNAVAILABLE');
      assert.equal(error.status, 'FAILED_PRECONDITION');
      assert.ok(error.message.includes(tokenPath), error.message);
      assert.ok(error.message.includes('AK:SK:STS'), error.message);
      assert.ok(!error.message.includes('LTAIsecretlooking'));
      assert.ok(!error.message.includes('VerySecretValue42'));
      return true;
    },
  );
  assert.equal(fixture.openapi.counters.requests, 0);
});

test('a missing token file is CREDENTIAL_UNAVAILABLE naming the file', async () => {
  const tokenPath = `${fixture.dir}/no-such-token`;
  await assert.rejects(
    createStsTokenProvider(fixture.stsSettings(tokenPath), {
      config: fixture.config(),
      logger: silentLogger(),
    }),
    { code: 'CREDENTIAL_UNAVAILABLE', message: new RegExp(`${tokenPath}.*does not exist`) },
  );
});

test('a rotated token file is picked up without rebuilding the provider', async () => {
  const tokenPath = await fixture.writeFile('rotating', 'STS.old:oldsecret:CAISold');
  fixture.openapi.addCredential({
    accessKeyId: 'STS.old',
    accessKeySecret: 'oldsecret',
    securityToken: 'CAISold',
  });
  fixture.openapi.addCredential({
    accessKeyId: 'STS.new',
    accessKeySecret: 'newsecret',
    securityToken: 'CAISnewer',
  });
  const rotating = await createStsTokenProvider(
    fixture.stsSettings(tokenPath),
    { config: fixture.config(), logger: silentLogger() },
    FAST_RETRY,
  );
  try {
    await rotating.getter!.getSecret('db-password', {}, call());
    await fixture.writeFile('rotating', 'STS.new:newsecret:CAISnewer\n');
    await rotating.getter!.getSecret('db-password', {}, call());
    assert.deepEqual(
      fixture.openapi.calls.map((c) => c.accessKeyId),
      ['STS.old', 'STS.new'],
    );
  } finally {
    await rotating.close?.();
  }
});

test('bad provider_settings are PROVIDER_SETTINGS_INVALID', async () => {
  const ctx = { config: fixture.config(), logger: silentLogger() };
  for (const settings of [
    { client_type: 'sts_token', region_id: 'cn-beijing' },
    { client_type: 'sts_token', token_path: 'relative/path', region_id: 'cn-beijing' },
    { client_type: 'sts_token', token_path: fixture.tokenPath },
    { client_type: 'sts_token', token_path: fixture.tokenPath, region_id: 'evil.com/x' },
    { client_type: 'sts_token', token_path: fixture.tokenPath, region_id: 7 },
  ]) {
    await assert.rejects(createStsTokenProvider(settings, ctx), { code: 'PROVIDER_SETTINGS_INVALID' });
  }
});

test('without openapi_ca_file the emulator certificate is not trusted: KMS_TLS_FAILED', async () => {
  const config = fixture.config();
  config.aliyun.openapiCaFile = '';
  const untrusting = await createStsTokenProvider(
    fixture.stsSettings(),
    { config, logger: silentLogger() },
    FAST_RETRY,
  );
  try {
    await assert.rejects(untrusting.getter!.getSecret('db-password', {}, call()), (error: unknown) => {
      assert.ok(error instanceof CdhError);
      assert.equal(error.code, 'KMS_TLS_FAILED');
      assert.match(error.message, /TLS handshake/);
      return true;
    });
    assert.equal(fixture.openapi.counters.requests, 0);
  } finally {
    await untrusting.close?.();
  }
});

test('an unreachable endpoint is KMS_UNAVAILABLE', async () => {
  const { createServer } = await import('node:net');
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as { port: number }).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const config = fixture.config();
  config.aliyun.openapiEndpoint = `127.0.0.1:${port}`;
  const unreachable = await createStsTokenProvider(
    fixture.stsSettings(),
    { config, logger: silentLogger() },
    FAST_RETRY,
  );
  try {
    await assert.rejects(unreachable.getter!.getSecret('db-password', {}, call()), {
      code: 'KMS_UNAVAILABLE',
      message: /unreachable \(ECONNREFUSED\).*after 3 attempts/,
    });
  } finally {
    await unreachable.close?.();
  }
});

test('a timed-out request is KMS_UNAVAILABLE and not retried', async () => {
  const config = fixture.config();
  config.aliyun.requestTimeoutMs = 200;
  const impatient = await createStsTokenProvider(
    fixture.stsSettings(),
    { config, logger: silentLogger() },
    FAST_RETRY,
  );
  fixture.openapi.answerDelayMs = 1000;
  try {
    await assert.rejects(impatient.getter!.getSecret('db-password', {}, call()), {
      code: 'KMS_UNAVAILABLE',
      message: /within 200 ms/,
    });
    assert.equal(fixture.openapi.counters.requests, 1);
  } finally {
    fixture.openapi.answerDelayMs = 0;
    await impatient.close?.();
  }
});

test('the caller abandoning the call stops the wait at once', async () => {
  fixture.openapi.answerDelayMs = 2000;
  const controller = new AbortController();
  const started = Date.now();
  setTimeout(() => controller.abort(new CdhError('DEADLINE_EXCEEDED', "the caller's deadline passed")), 50);
  try {
    await assert.rejects(provider.getter!.getSecret('db-password', {}, call(controller.signal)), {
      code: 'DEADLINE_EXCEEDED',
    });
    assert.ok(Date.now() - started < 1000, 'did not wait for the answer');
    // The signal reached the SDK's transport: the request was torn down, not left running.
    for (let i = 0; i < 50 && fixture.openapi.counters.abandoned === 0; i++) await sleep(10);
    assert.equal(fixture.openapi.counters.abandoned, 1);
  } finally {
    fixture.openapi.answerDelayMs = 0;
  }
});

test('sts_token cannot unwrap envelope secrets: INVALID_ARGUMENT saying vault secrets only', async () => {
  assert.equal(provider.decrypter, undefined);
  assert.equal(provider.encrypter, undefined);
  const registry = new ProviderRegistry([aliyunProvider], {
    config: fixture.config(),
    logger: silentLogger(),
  });
  try {
    for (const use of [
      () => registry.decrypter('aliyun', fixture.stsSettings()),
      () => registry.encrypter('aliyun', fixture.stsSettings()),
    ]) {
      await assert.rejects(use(), (error: unknown) => {
        assert.ok(error instanceof CdhError);
        assert.equal(error.code, 'PROVIDER_CAPABILITY_MISSING');
        assert.equal(error.status, 'INVALID_ARGUMENT');
        assert.match(error.message, /client_type sts_token serves vault secrets only/);
        assert.match(error.message, /envelope secrets need client_type client_key/);
        return true;
      });
    }
  } finally {
    await registry.close();
  }
});
