import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { generateSigningJwkPair, sealVault, signSealedSecret } from '../../src/secret';
import { spawnDaemon, tempDir, type DaemonProcess } from '../../src/devtools/daemon';
import { writeResourceFile } from '../support/kbs';

const CLIENT_KEY = '{"KeyId":"KAAP.it-test","PrivateKeyData":"not-a-real-key"}';
const PASSWORD = '{"ClientKeyPassword":"not-a-real-password"}';

interface GrpcFailure {
  code: number;
  details: string;
}
const INVALID_ARGUMENT = 3;
const NOT_FOUND = 5;
const PERMISSION_DENIED = 7;

const VAULT_VALUE = 'vault-value-marker-3be1';
const signingKeys = generateSigningJwkPair('tenant');
const SIGNING_KID = 'kbs:///default/signing-key/tenant';

function signedVault(name: string, kid = SIGNING_KID): Buffer {
  return Buffer.from(signSealedSecret(sealVault({ provider: 'kbs', name }), signingKeys.privateJwk, kid));
}

const RESOURCES = {
  'default/aliyun/clientKey_KAAP.it-test.json': CLIENT_KEY,
  'default/aliyun/password_KAAP.it-test.json': PASSWORD,
  'default/vault/db-password': VAULT_VALUE,
  'default/signing-key/tenant': JSON.stringify(signingKeys.publicJwk),
};

describe('a daemon with offline_fs resources and [[credentials]]', () => {
  let dir: { path: string; cleanup(): void };
  let daemon: DaemonProcess;
  let credentialsRoot: string;
  let configFile: string;

  before(async () => {
    dir = tempDir('cdh-kbs-it-');
    credentialsRoot = join(dir.path, 'cdh');
    configFile = join(dir.path, 'resources-config.json');
    const envFile = join(dir.path, 'resources-env.json');
    writeResourceFile(configFile, { ...RESOURCES, 'default/config/changing': 'version 1' });
    writeResourceFile(envFile, { 'default/env/only': 'from the env list' });
    daemon = await spawnDaemon({
      dir: dir.path,
      socketPath: join(dir.path, 'cdh.sock'),
      config: {
        credentials_root: credentialsRoot,
        sealed_secret: { signing_key_dir: dir.path },
        kbc: { name: 'offline_fs_kbc', offline_fs: { resource_files: [configFile] } },
        credentials: [
          {
            resource_uri: 'kbs:///default/aliyun/clientKey_KAAP.it-test.json',
            path: join(credentialsRoot, 'kms-credential/aliyun/clientKey_KAAP.it-test.json'),
          },
          {
            resource_uri: 'kbs:///default/aliyun/password_KAAP.it-test.json',
            path: join(credentialsRoot, 'kms-credential/aliyun/password_KAAP.it-test.json'),
          },
        ],
      },
      env: { OFFLINE_FS_KBC_EXTRA_FILE_PATH: envFile },
    });
  });
  after(async () => {
    await daemon.stop();
    dir.cleanup();
  });

  test('GetResource returns a resource from the config-listed file and from the env-listed file', async () => {
    const client = daemon.client();
    assert.equal(
      (await client.getResource('kbs:///default/aliyun/password_KAAP.it-test.json')).toString(),
      PASSWORD,
    );
    assert.equal(
      (await client.getResource('kbs://kbs.example:8080/default/env/only')).toString(),
      'from the env list',
    );
  });

  test('GetResource of an unknown resource is NOT_FOUND naming the URI', async () => {
    await assert.rejects(
      daemon.client().getResource('kbs:///default/aliyun/absent'),
      (error: GrpcFailure) => {
        assert.equal(error.code, NOT_FOUND);
        assert.match(error.details, /RESOURCE_NOT_FOUND: .*kbs:\/\/\/default\/aliyun\/absent/);
        return true;
      },
    );
  });

  for (const uri of [
    'kbs:///default/../absent',
    'kbs:///default/aliyun',
    'http:///a/b/c',
    'kbs:///a/b/c?x="1"',
    '',
  ]) {
    test(`GetResource of the malformed URI ${JSON.stringify(uri)} is INVALID_ARGUMENT`, async () => {
      await assert.rejects(daemon.client().getResource(uri), (error: GrpcFailure) => {
        assert.equal(error.code, INVALID_ARGUMENT);
        assert.match(error.details, /RESOURCE_URI_INVALID: .*expected kbs:\/\/<host>\/<repo>\/<type>\/<tag>/);
        return true;
      });
    });
  }

  test('a changed resource file is served without a restart', async () => {
    const client = daemon.client();
    assert.equal((await client.getResource('kbs:///default/config/changing')).toString(), 'version 1');
    const next = `${configFile}.next`;
    writeResourceFile(next, { ...RESOURCES, 'default/config/changing': 'version 2' });
    renameSync(next, configFile);
    assert.equal((await client.getResource('kbs:///default/config/changing')).toString(), 'version 2');
  });

  test('a vault secret with provider kbs, signed under a kid that is a kbs URI, unseals to the resource', async () => {
    const plaintext = await daemon.client().unsealSecret(signedVault('kbs:///default/vault/db-password'));
    assert.equal(plaintext.toString(), VAULT_VALUE);
  });

  test('a vault secret with provider kbs shows a resource edit at once (kbs answers are not cached)', async () => {
    const client = daemon.client();
    const sealed = signedVault('kbs:///default/config/edited');
    writeResourceFile(configFile, { ...RESOURCES, 'default/config/edited': 'before' });
    assert.equal((await client.unsealSecret(sealed)).toString(), 'before');
    const next = `${configFile}.next`;
    writeResourceFile(next, { ...RESOURCES, 'default/config/edited': 'after' });
    renameSync(next, configFile);
    assert.equal((await client.unsealSecret(sealed)).toString(), 'after');
  });

  test('a vault secret with provider kbs naming an absent resource is NOT_FOUND', async () => {
    await assert.rejects(
      daemon.client().unsealSecret(signedVault('kbs:///default/vault/absent')),
      (error: GrpcFailure) => {
        assert.equal(error.code, NOT_FOUND);
        assert.match(error.details, /kbs:\/\/\/default\/vault\/absent/);
        return true;
      },
    );
  });

  test('a kid naming an absent kbs resource is PERMISSION_DENIED', async () => {
    await assert.rejects(
      daemon
        .client()
        .unsealSecret(signedVault('kbs:///default/vault/db-password', 'kbs:///default/signing-key/absent')),
      (error: GrpcFailure) => {
        assert.equal(error.code, PERMISSION_DENIED);
        return true;
      },
    );
  });

  test('[[credentials]] were written under credentials_root at start-up, mode 0600', () => {
    const dirPath = join(credentialsRoot, 'kms-credential/aliyun');
    const clientKey = join(dirPath, 'clientKey_KAAP.it-test.json');
    const password = join(dirPath, 'password_KAAP.it-test.json');
    assert.equal(readFileSync(clientKey, 'utf8'), CLIENT_KEY);
    assert.equal(readFileSync(password, 'utf8'), PASSWORD);
    assert.equal(statSync(clientKey).mode & 0o777, 0o600);
    assert.equal(statSync(dirPath).mode & 0o777, 0o700);
  });

  test('provisioning is logged (URI and path) before serving, never with the content', () => {
    const lines = daemon.logLines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const provisioned = lines.findIndex((line) => line['msg'] === 'credential provisioned');
    const serving = lines.findIndex((line) => line['msg'] === 'serving');
    assert.ok(provisioned >= 0 && serving > provisioned, 'provisioned, then serving');
    const all = daemon.logLines.join('\n');
    assert.ok(!all.includes('not-a-real-password') && !all.includes('not-a-real-key'));
  });
});

describe('start-up refusals of the kbs set-up', () => {
  async function refusedStart(
    makeConfig: (dir: string) => Record<string, unknown>,
    prepare?: (dir: string) => void,
  ): Promise<{ stderr: string; socketCreated: boolean }> {
    const dir = tempDir('cdh-kbs-refuse-');
    try {
      prepare?.(dir.path);
      const socketPath = join(dir.path, 'cdh.sock');
      const daemon = await spawnDaemon({
        dir: dir.path,
        socketPath,
        config: makeConfig(dir.path),
        waitReady: false,
      });
      try {
        assert.notEqual(await daemon.exited(), 0);
        return { stderr: daemon.stderr(), socketCreated: existsSync(socketPath) };
      } finally {
        daemon.cleanup();
      }
    } finally {
      dir.cleanup();
    }
  }

  test('a malformed resource file stops start-up naming the file', async () => {
    const result = await refusedStart(
      (dir) => ({ kbc: { name: 'offline_fs_kbc', offline_fs: { resource_files: [join(dir, 'bad.json')] } } }),
      (dir) => writeFileSync(join(dir, 'bad.json'), '{"default/a/b": "!!not base64!!"}'),
    );
    assert.match(result.stderr, /offline_fs KBC resource file .*bad\.json.*not standard base64/);
    assert.ok(!result.stderr.includes('!!not base64!!'));
    assert.equal(result.socketCreated, false);
  });

  test('a credential path outside credentials_root stops start-up naming the entry', async () => {
    const result = await refusedStart(
      (dir) => ({
        credentials_root: join(dir, 'cdh'),
        kbc: { name: 'offline_fs_kbc', offline_fs: { resource_files: [join(dir, 'r.json')] } },
        credentials: [{ resource_uri: 'kbs:///default/a/b', path: join(dir, 'elsewhere/b') }],
      }),
      (dir) => writeResourceFile(join(dir, 'r.json'), { 'default/a/b': 'x' }),
    );
    assert.match(result.stderr, /\[\[credentials\]\] entry 1 .*must lie under credentials_root/);
    assert.equal(result.socketCreated, false);
  });

  test('a credential directory symlinked outside credentials_root stops start-up', async () => {
    const result = await refusedStart(
      (dir) => ({
        credentials_root: join(dir, 'cdh'),
        kbc: { name: 'offline_fs_kbc', offline_fs: { resource_files: [join(dir, 'r.json')] } },
        credentials: [{ resource_uri: 'kbs:///default/a/b', path: join(dir, 'cdh/link/b') }],
      }),
      (dir) => {
        writeResourceFile(join(dir, 'r.json'), { 'default/a/b': 'x' });
        mkdirSync(join(dir, 'cdh'));
        mkdirSync(join(dir, 'outside'));
        symlinkSync(join(dir, 'outside'), join(dir, 'cdh/link'));
      },
    );
    assert.match(result.stderr, /\[\[credentials\]\] entry 1 .*outside credentials_root/);
    assert.equal(result.socketCreated, false);
  });

  test('a [[credentials]] resource that does not exist stops start-up naming the entry', async () => {
    const result = await refusedStart((dir) => ({
      credentials_root: join(dir, 'cdh'),
      kbc: { name: 'offline_fs_kbc', offline_fs: { resource_files: [] } },
      credentials: [{ resource_uri: 'kbs:///default/a/missing', path: join(dir, 'cdh/b') }],
    }));
    assert.match(result.stderr, /\[\[credentials\]\] entry 1 .*kbs:\/\/\/default\/a\/missing.* not found/);
    assert.equal(result.socketCreated, false);
  });
});
