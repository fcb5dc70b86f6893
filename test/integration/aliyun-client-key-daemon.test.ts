import assert from 'node:assert/strict';
import { renameSync, writeFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import type { CdhClient } from '../../src/client/cdh-client';
import type { WrapType } from '../../src/crypto/wrap';
import { createClientKeyProvider } from '../../src/providers/aliyun/client-key';
import type { Encrypter, ProviderInstance } from '../../src/providers/types';
import { sealEnvelope, sealVault, unsignedSealedSecret } from '../../src/secret';
import type { EnvelopeSecret, SealedSecretPayload } from '../../src/secret/payload';
import { clientKeyConfig, providerContext } from '../support/aliyun-credentials';
import { startAliyunScenario, type AliyunScenario } from '../../src/emulators/aliyun/scenario';
import { spawnDaemon, type DaemonProcess } from '../../src/devtools/daemon';
import { createTestCa } from '../../src/emulators/pki';

/*
 * Client-key secrets through the daemon PROCESS: aliyun client_key secrets sealed with the
 * domain's sealing code against the gateway emulator, unsealed with UnsealSecret over a temp
 * socket. The daemon skips signature checks (these are the unsigned form) and caches nothing,
 * so every unseal reaches the KMS.
 */

const PLAINTEXT = 'client-key plaintext: 0p3n-s3same ✓';
const VAULT_NAME = 'rds-password';
const VAULT_VALUES = { v1: 'vault value one', v2: 'vault value two', v3: 'vault value pending' };
/** Every plaintext this file ever hands the daemon: none may appear in a status message or log. */
const SECRETS = [PLAINTEXT, ...Object.values(VAULT_VALUES)];

let kms: AliyunScenario;
let daemon: DaemonProcess;
let client: CdhClient;
let sealing: ProviderInstance;
let encrypter: Encrypter;
let sealedEnvelope: EnvelopeSecret;
/** Every status message seen, checked for plaintext at the end. */
const statusMessages: string[] = [];

function unsealBytes(payload: SealedSecretPayload): Buffer {
  return Buffer.from(unsignedSealedSecret(payload));
}

async function unseal(payload: SealedSecretPayload): Promise<string> {
  return (await client.unsealSecret(unsealBytes(payload))).toString('utf8');
}

async function unsealFailure(payload: SealedSecretPayload): Promise<ServiceError> {
  try {
    await client.unsealSecret(unsealBytes(payload));
  } catch (error) {
    const failure = error as ServiceError;
    statusMessages.push(failure.details);
    return failure;
  }
  assert.fail('the unseal succeeded');
}

function assertStatus(failure: ServiceError, code: GrpcStatus, ...mentions: Array<string | RegExp>): void {
  assert.equal(failure.code, code, `${GrpcStatus[failure.code]}: ${failure.details}`);
  for (const mention of mentions) {
    if (typeof mention === 'string')
      assert.ok(failure.details.includes(mention), `"${failure.details}" lacks "${mention}"`);
    else assert.match(failure.details, mention);
  }
}

async function seal(plaintext: string, wrapType?: WrapType): Promise<EnvelopeSecret> {
  return sealEnvelope({
    encrypter,
    provider: 'aliyun',
    providerSettings: kms.credentials.providerSettings,
    keyId: kms.keyId,
    plaintext: Buffer.from(plaintext),
    ...(wrapType === undefined ? {} : { wrapType }),
  });
}

function vault(annotations: Record<string, string> = {}, name = VAULT_NAME): SealedSecretPayload {
  return sealVault({
    provider: 'aliyun',
    name,
    providerSettings: kms.credentials.providerSettings,
    annotations,
  });
}

/** Replaces a credential file at once (write beside, rename over), as an updated mount does. */
function replaceFile(path: string, content: string | Buffer): void {
  writeFileSync(`${path}.new`, content);
  renameSync(`${path}.new`, path);
}

before(async () => {
  kms = await startAliyunScenario();
  kms.emulator.putSecretVersion(VAULT_NAME, 'v1', VAULT_VALUES.v1);
  kms.emulator.putSecretVersion(VAULT_NAME, 'v2', VAULT_VALUES.v2);
  kms.emulator.putSecretVersion(VAULT_NAME, 'v3', VAULT_VALUES.v3, ['ACSPending']);
  daemon = await spawnDaemon({
    config: { skip_sealed_secret_verification: true, cache: { ttl_seconds: 0 }, ...kms.daemonConfig },
  });
  client = daemon.client();
  // The sealing side: the same provider code, in this process, with the same credential dir.
  sealing = await createClientKeyProvider(
    kms.credentials.providerSettings,
    providerContext(clientKeyConfig(kms.emulator, kms.credentials.dir)),
  );
  assert.ok(sealing.encrypter);
  encrypter = sealing.encrypter;
  sealedEnvelope = await seal(PLAINTEXT);
});

after(async () => {
  const code = await daemon?.stop();
  const logs = daemon?.logLines.join('\n') ?? '';
  daemon?.cleanup();
  await sealing?.close?.();
  await kms?.close();
  assert.equal(code, 0);
  for (const secret of SECRETS) {
    assert.ok(!logs.includes(secret), 'a plaintext in the daemon log');
    for (const message of statusMessages) assert.ok(!message.includes(secret), `a plaintext in "${message}"`);
  }
});

test('sealed with the domain sealing code (client_key Encrypter), unsealed by the daemon: A256GCM and A256CTR', async () => {
  assert.equal(sealedEnvelope.provider, 'aliyun');
  assert.deepEqual(sealedEnvelope.provider_settings, kms.credentials.providerSettings);
  assert.match(sealedEnvelope.annotations['iv'] ?? '', /^[A-Za-z0-9+/]{16}$/);
  assert.equal(await unseal(sealedEnvelope), PLAINTEXT);
  assert.equal(await unseal(await seal(PLAINTEXT, 'A256CTR')), PLAINTEXT);
  const large = 'x'.repeat(200_000);
  assert.equal(await unseal(await seal(large)), large);
});

test('vault GetSecretValue by stage and by version id', async () => {
  assert.equal(await unseal(vault()), VAULT_VALUES.v2);
  assert.equal(await unseal(vault({ version_stage: 'ACSCurrent' })), VAULT_VALUES.v2);
  assert.equal(await unseal(vault({ version_stage: 'ACSPrevious' })), VAULT_VALUES.v1);
  assert.equal(await unseal(vault({ version_stage: 'ACSPending' })), VAULT_VALUES.v3);
  assert.equal(await unseal(vault({ version_id: 'v1' })), VAULT_VALUES.v1);
  assert.equal(await unseal(vault({ version_id: 'v3' })), VAULT_VALUES.v3);
  assertStatus(await unsealFailure(vault({ version_id: 'v9' })), GrpcStatus.NOT_FOUND, 'RequestId');
  assertStatus(await unsealFailure(vault({}, 'no-such-secret')), GrpcStatus.NOT_FOUND, 'no-such-secret');
});

test('an unknown KMS key is NOT_FOUND, naming the key and carrying the KMS RequestId', async () => {
  const failure = await unsealFailure({ ...sealedEnvelope, key_id: 'key-does-not-exist' });
  assertStatus(failure, GrpcStatus.NOT_FOUND, 'key-does-not-exist', /Forbidden\.KeyNotFound/);
  assert.ok(failure.details.includes(kms.emulator.lastAnswer?.requestId ?? '?'), failure.details);
});

test('a tampered encrypted_key is the KMS 400 as INVALID_ARGUMENT, with its RequestId', async () => {
  const wrapped = Buffer.from(sealedEnvelope.encrypted_key, 'base64');
  wrapped[0] = (wrapped[0] as number) ^ 0x01;
  const failure = await unsealFailure({ ...sealedEnvelope, encrypted_key: wrapped.toString('base64') });
  const answer = kms.emulator.lastAnswer;
  assert.equal(answer?.status, 400);
  assertStatus(failure, GrpcStatus.INVALID_ARGUMENT, answer.errorCode, answer.requestId);
});

test('client_key_id ../../etc/passwd is INVALID_ARGUMENT, and the KMS is not asked', async () => {
  const before = { ...kms.emulator.stats.requests };
  const failure = await unsealFailure({
    ...sealedEnvelope,
    provider_settings: { ...kms.credentials.providerSettings, client_key_id: '../../etc/passwd' },
  });
  assertStatus(failure, GrpcStatus.INVALID_ARGUMENT, 'client_key_id');
  assert.deepEqual(kms.emulator.stats.requests, before);
});

test('a missing credential file is FAILED_PRECONDITION naming it; once back, unsealing works again', async () => {
  const passwordFile = kms.credentials.paths.password;
  const name = passwordFile.split('/').pop() as string;
  renameSync(passwordFile, `${passwordFile}.away`);
  try {
    assertStatus(await unsealFailure(sealedEnvelope), GrpcStatus.FAILED_PRECONDITION, name);
  } finally {
    renameSync(`${passwordFile}.away`, passwordFile);
  }
  assert.equal(await unseal(sealedEnvelope), PLAINTEXT);
});

test('a wrong CA file is UNAVAILABLE with a TLS message, never a success', async () => {
  const caFile = kms.credentials.paths.instanceCa;
  const decrypts = kms.emulator.stats.requests['Decrypt'] ?? 0;
  const tlsFailures = kms.emulator.stats.tlsFailures;
  replaceFile(caFile, createTestCa('Some Other Root CA').certPem);
  try {
    assertStatus(
      await unsealFailure(sealedEnvelope),
      GrpcStatus.UNAVAILABLE,
      /TLS/,
      caFile.split('/').pop() as string,
    );
  } finally {
    replaceFile(caFile, kms.emulator.caPem);
  }
  assert.equal(
    kms.emulator.stats.requests['Decrypt'] ?? 0,
    decrypts,
    'a request reached an untrusted server',
  );
  // The emulator hears of the refused handshake on its own socket, maybe after the status arrived.
  for (let waited = 0; kms.emulator.stats.tlsFailures === tlsFailures && waited < 2000; waited += 20)
    await sleep(20);
  assert.ok(kms.emulator.stats.tlsFailures > tlsFailures, 'the emulator saw no refused handshake');
  assert.equal(await unseal(sealedEnvelope), PLAINTEXT);
});

test('two 503s then OK is a success', async () => {
  kms.emulator.failNext(2, 503);
  assert.equal(await unseal(sealedEnvelope), PLAINTEXT);
  assert.equal(kms.emulator.lastAnswer?.status, 200);
});

test('100 sequential unseals over the socket use at most 2 TLS connections', async () => {
  kms.emulator.resetStats();
  for (let i = 0; i < 100; i++) assert.equal(await unseal(sealedEnvelope), PLAINTEXT);
  assert.equal(kms.emulator.stats.requests['Decrypt'], 100, 'the cache is off: each unseal asks the KMS');
  assert.ok(kms.emulator.stats.tlsConnections <= 2, `${kms.emulator.stats.tlsConnections} TLS connections`);
});
