import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, test } from 'node:test';
import { status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import type { CdhClient } from '../../src/client/cdh-client';
import { spawnDaemon, type DaemonProcess } from '../../src/devtools/daemon';
import { startAliyunScenario, type AliyunScenario } from '../../src/emulators/aliyun/scenario';
import { OpenApiFixture, STS_CREDENTIAL } from '../../src/emulators/aliyun/openapi-scenario';

/*
 * Credential files stay inside their directory, with the daemon as a process on its socket:
 * a Kubernetes secret volume (every file a link through `..data/` into a timestamped dir of
 * the same volume) works; a credential file that is a link to a file elsewhere, a sealed
 * secret whose sts_token `token_path` lies outside `sts_token_dir`, or a token file that is a
 * link leaving that dir, are refused naming the file, and the daemon keeps serving.
 */

const GATEWAY_SECRET = 'vault value through a secret volume';
const OPENAPI_SECRET = 'openapi value';

let kms: AliyunScenario;
let openapi: OpenApiFixture;
let daemon: DaemonProcess;
let client: CdhClient;
let root: string;
let outsideToken: string;
let outsideClientKeyId: string;

function vault(name: string, providerSettings: Record<string, unknown>): Buffer {
  const payload = {
    version: '0.1.0',
    type: 'vault',
    name,
    provider: 'aliyun',
    provider_settings: providerSettings,
  };
  const encoded = Buffer.from(JSON.stringify(payload)).toString('base64url');
  return Buffer.from(`sealed.fakejwsheader.${encoded}.fakesignature`);
}

async function failure(secret: Buffer): Promise<ServiceError> {
  try {
    await client.unsealSecret(secret);
  } catch (error) {
    return error as ServiceError;
  }
  assert.fail('the unseal succeeded');
}

function assertRefused(error: ServiceError, ...mentions: string[]): void {
  assert.equal(error.code, GrpcStatus.FAILED_PRECONDITION, `${GrpcStatus[error.code]}: ${error.details}`);
  for (const mention of mentions)
    assert.ok(error.details.includes(mention), `"${error.details}" lacks ${mention}`);
}

/** The layout kubelet writes for a secret volume: `name -> ..data/name`, `..data -> ..<timestamp>`. */
function secretVolume(dir: string, files: Record<string, string>): void {
  const stamp = '..2026_12_02_03_00_00.000000001';
  mkdirSync(join(dir, stamp), { recursive: true });
  for (const [name, source] of Object.entries(files)) {
    copyFileSync(source, join(dir, stamp, name));
    symlinkSync(join('..data', name), join(dir, name));
  }
  symlinkSync(stamp, join(dir, '..data'));
}

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'cdh-confinement-'));
  const volume = join(root, 'kms-credential');
  const outside = join(root, 'outside');
  mkdirSync(outside);
  kms = await startAliyunScenario();
  kms.emulator.putSecretVersion('db-password', 'v1', GATEWAY_SECRET);
  const { paths, clientKeyId } = kms.credentials;
  const files = Object.fromEntries(
    [paths.clientKey, paths.password, paths.instanceCa].map((p) => [basename(p), p]),
  );
  // A second client key id whose key file is a link to a copy outside the volume.
  outsideClientKeyId = `${clientKeyId}-outside`;
  files[`password_${outsideClientKeyId}.json`] = paths.password;
  secretVolume(volume, files);
  copyFileSync(paths.clientKey, join(outside, 'clientKey.json'));
  symlinkSync(join(outside, 'clientKey.json'), join(volume, `clientKey_${outsideClientKeyId}.json`));

  openapi = await OpenApiFixture.start({ credentialDir: join(root, 'unused') });
  openapi.openapi.putSecret('app-secret', [
    { versionId: 'v1', data: OPENAPI_SECRET, stages: ['ACSCurrent'] },
  ]);
  const { accessKeyId, accessKeySecret, securityToken } = STS_CREDENTIAL;
  outsideToken = join(outside, 'sts-token');
  writeFileSync(outsideToken, `${accessKeyId}:${accessKeySecret}:${securityToken}\n`);
  symlinkSync(outsideToken, join(openapi.dir, 'linked-token'));

  daemon = await spawnDaemon({
    config: {
      skip_sealed_secret_verification: true,
      cache: { ttl_seconds: 0 },
      aliyun: {
        ...openapi.daemonConfig().aliyun,
        ...kms.daemonConfig.aliyun,
        credential_dir: volume,
        sts_token_dir: openapi.dir,
      },
    },
  });
  client = daemon.client();
});

after(async () => {
  const code = await daemon?.stop();
  daemon?.cleanup();
  await kms?.close();
  await openapi?.close();
  rmSync(root, { recursive: true, force: true });
  assert.equal(code, 0);
});

test('client key files that are links through ..data inside the credential dir are read', async () => {
  const plaintext = await client.unsealSecret(vault('db-password', kms.credentials.providerSettings));
  assert.equal(plaintext.toString(), GATEWAY_SECRET);
});

test('a client key file that is a link to a file outside the credential dir is refused by name', async () => {
  const settings = { ...kms.credentials.providerSettings, client_key_id: outsideClientKeyId };
  const error = await failure(vault('db-password', settings));
  assertRefused(error, `clientKey_${outsideClientKeyId}.json`, 'leaves');
  assert.equal(await client.check(''), 'SERVING');
});

test('a sealed sts_token secret whose token_path lies outside sts_token_dir is refused by name', async () => {
  const error = await failure(vault('app-secret', openapi.stsSettings(outsideToken)));
  assertRefused(error, outsideToken, 'token_path', 'outside');
  const climbing = `${openapi.dir}/../outside/sts-token`;
  assertRefused(await failure(vault('app-secret', openapi.stsSettings(climbing))), 'outside');
  assert.equal(openapi.openapi.counters.requests, 0, 'no OpenAPI request was made');
});

test('a token file inside sts_token_dir that is a link leaving it is refused by name', async () => {
  const linked = join(openapi.dir, 'linked-token');
  const error = await failure(vault('app-secret', openapi.stsSettings(linked)));
  assertRefused(error, linked, 'leaves');
});

test('after the refusals the daemon still serves sts_token and client_key secrets', async () => {
  assert.equal(await client.check(''), 'SERVING');
  const value = await client.unsealSecret(vault('app-secret', openapi.stsSettings()));
  assert.equal(value.toString(), OPENAPI_SECRET);
  const again = await client.unsealSecret(vault('db-password', kms.credentials.providerSettings));
  assert.equal(again.toString(), GATEWAY_SECRET);
});
