import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { defaultConfig } from '../../src/config/types';
import { tempDir } from '../../src/devtools/daemon';
import { EMULATOR_BIN, EmulatorProcess } from '../../src/devtools/emulator-process';
import { silentLogger } from '../../src/log';
import { createClientKeyProvider } from '../../src/providers/aliyun/client-key';
import { runCli } from '../support/cli';

/* `cdh-emulator aliyun` as a user runs it: a process printing what a daemon needs, serving until SIGTERM. */

interface Description {
  endpoints: Record<string, string>;
  key_id: string;
  credential_dir: string;
  provider_settings: { client_key: Record<string, string>; ecs_ram_role?: Record<string, string> };
  daemon_config: { aliyun: Record<string, string | number> };
  env: Record<string, string>;
}

const work = tempDir('cdh-emulator-test-');
let emulator: EmulatorProcess;
let description: Description;

before(async () => {
  emulator = await EmulatorProcess.start('aliyun', [
    '--credential-dir',
    join(work.path, 'creds'),
    '--openapi',
  ]);
  description = emulator.description as unknown as Description;
});
after(async () => {
  await emulator.close();
  work.cleanup();
});

test('cdh-emulator aliyun prints its endpoints, the daemon config and env as one JSON line', () => {
  const { endpoints, daemon_config: config } = description;
  assert.match(endpoints['dkms_gateway'] ?? '', /^127\.0\.0\.1:\d+$/);
  assert.match(endpoints['openapi'] ?? '', /^127\.0\.0\.1:\d+$/);
  assert.match(endpoints['metadata'] ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(description.credential_dir, join(work.path, 'creds'));
  assert.equal(config.aliyun['credential_dir'], description.credential_dir);
  assert.equal(config.aliyun['dkms_connect_to'], endpoints['dkms_gateway']);
  assert.equal(config.aliyun['openapi_endpoint'], endpoints['openapi']);
  assert.equal(description.env['ALIYUN_DKMS_CONNECT_TO'], endpoints['dkms_gateway']);
  const files = readdirSync(description.credential_dir).sort();
  assert.ok(
    files.some((f) => /^clientKey_KAAP\..+\.json$/.test(f)),
    files.join(' '),
  );
  assert.ok(
    files.some((f) => /^PrivateKmsCA_kst-.+\.pem$/.test(f)),
    files.join(' '),
  );
  assert.ok(files.includes('ecsRamRole.json'), files.join(' '));
});

test('cdh-emulator aliyun serves real Encrypt/Decrypt and counts them on SIGUSR2', async () => {
  const config = defaultConfig();
  config.aliyun.credentialDir = description.credential_dir;
  config.aliyun.dkmsConnectTo = description.endpoints['dkms_gateway'] as string;
  const provider = await createClientKeyProvider(description.provider_settings.client_key, {
    config,
    logger: silentLogger(),
  });
  try {
    const ctx = { signal: new AbortController().signal };
    const sealed = await provider.encrypter?.encrypt(Buffer.from('data key'), description.key_id, ctx);
    assert.ok(sealed);
    const opened = await provider.decrypter?.decrypt(
      sealed.ciphertext,
      description.key_id,
      sealed.annotations,
      ctx,
    );
    assert.equal(opened?.toString(), 'data key');
  } finally {
    await provider.close?.();
  }
  const stats = (await emulator.stats()) as { dkms_gateway: { succeeded: Record<string, number> } };
  assert.deepEqual(stats.dkms_gateway.succeeded, { Encrypt: 1, Decrypt: 1 });
  assert.ok('openapi' in stats && 'metadata' in stats);
});

test('cdh-emulator stops on SIGTERM with exit code 0; a temp credential dir goes with it', async () => {
  const own = await EmulatorProcess.start('aliyun');
  const dir = (own.description as unknown as Description).credential_dir;
  assert.equal(existsSync(dir), true);
  assert.equal(await own.close(), 0);
  assert.equal(existsSync(dir), false);
});

test('cdh-emulator: --help lists the commands and SIGUSR2; bad usage exits 2 naming the problem', async () => {
  const help = await runCli(EMULATOR_BIN, ['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^ {2}aliyun +Alibaba Cloud KMS/m);
  assert.match(help.stdout, /kill -USR2/);
  const aliyunHelp = await runCli(EMULATOR_BIN, ['aliyun', '--help']);
  assert.match(aliyunHelp.stdout, /--credential-dir DIR/);
  const unknown = await runCli(EMULATOR_BIN, ['nope']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command "nope"/);
  const half = await runCli(EMULATOR_BIN, ['aliyun', '--client-key-file', '/x']);
  assert.equal(half.code, 2);
  assert.match(half.stderr, /--client-key-file and --password-file go together/);
});
