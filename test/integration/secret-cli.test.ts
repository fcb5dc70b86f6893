import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import { packageVersion } from '../../src/package-info';
import { startAliyunScenario, type AliyunScenario } from '../../src/emulators/aliyun/scenario';
import { runCli, singleLineFailure, singleLineOutput, type CliResult } from '../support/cli';
import {
  CDH_TOOL_BIN,
  DAEMON_BIN,
  SECRET_BIN,
  spawnDaemon,
  tempDir,
  type DaemonProcess,
} from '../../src/devtools/daemon';

/*
 * The three programs as processes, as a user runs them: `secret` seals against the KMS gateway
 * emulator, the daemon (a child process on a temp socket) unseals, `cdh-tool` asks it.
 */

const PLAINTEXT = 'db-password: s3cr3t ✓ (sealed by the CLI test)';
const VAULT_VALUE = 'vault value from the gateway';
const VAULT_NAME = 'app-db-password';
const KID = 'cli-test-signer';

let work: { path: string; cleanup(): void };
let kms: AliyunScenario;
/** Verifies signatures; its signing_key_dir holds KID's public key. */
let verifying: DaemonProcess;
/** skip_sealed_secret_verification = true in its config. */
let skipByConfig: DaemonProcess;
/** SKIP_SEALED_SECRET_VERIFICATION=true in its environment. */
let skipByEnv: DaemonProcess;
let keygenResult: CliResult;
let plaintextFile: string;
let privateJwkPath: string;
let publicJwkPath: string;
/** Credential files and the signing key together: what `secret unseal --key-path` reads. */
let keyPathDir: string;

function secret(
  args: readonly string[],
  env: Record<string, string> = {},
  input?: string,
): Promise<CliResult> {
  return runCli(SECRET_BIN, args, { env: { ...kms.env, ...env }, ...(input === undefined ? {} : { input }) });
}

function cdhTool(daemon: DaemonProcess, args: readonly string[]): Promise<CliResult> {
  return runCli(CDH_TOOL_BIN, ['--socket', daemon.target, ...args]);
}

/** The `ali` part of `secret seal envelope`, with the emulator's files. */
function aliFlags(): string[] {
  const { paths, kmsInstanceId } = kms.credentials;
  return [
    'ali',
    '--password-file-path',
    paths.password,
    '--cert-path',
    paths.instanceCa,
    '--kms-instance-id',
    kmsInstanceId,
    '--client-key-file-path',
    paths.clientKey,
  ];
}

function signingFlags(jwkPath = privateJwkPath, kid = KID): string[] {
  return ['--signing-kid', kid, '--signing-jwk-path', jwkPath];
}

/** `secret seal [signing] envelope --key-id K --file-path F ali ...` (the contract's placement). */
async function sealEnvelope(signing: string[] = signingFlags(), file = plaintextFile): Promise<string> {
  const result = await secret([
    'seal',
    ...signing,
    'envelope',
    '--key-id',
    kms.keyId,
    '--file-path',
    file,
    ...aliFlags(),
  ]);
  return singleLineOutput(result, 'secret seal envelope');
}

function writeWorkFile(name: string, content: string): string {
  const path = join(work.path, name);
  writeFileSync(path, content);
  return path;
}

let fileCounter = 0;
function sealedFile(sealed: string): string {
  return writeWorkFile(`sealed-${++fileCounter}.txt`, `${sealed}\n`);
}

function grpcFailure(code: number): (error: unknown) => boolean {
  return (error: unknown) => {
    const failure = error as ServiceError;
    assert.equal(failure.code, code, `${GrpcStatus[failure.code]}: ${failure.details}`);
    assert.ok(!failure.details.includes(PLAINTEXT));
    return true;
  };
}

async function unsealViaCdhTool(daemon: DaemonProcess, sealed: string): Promise<string> {
  const base64 = singleLineOutput(
    await cdhTool(daemon, ['unseal-secret', '--secret-path', sealedFile(sealed)]),
    'cdh-tool unseal-secret',
  );
  assert.match(base64, /^[A-Za-z0-9+/]*={0,2}$/);
  return Buffer.from(base64, 'base64').toString('utf8');
}

async function unsealViaClient(daemon: DaemonProcess, sealed: string): Promise<string> {
  return (await daemon.client().unsealSecret(Buffer.from(sealed))).toString('utf8');
}

before(async () => {
  work = tempDir('cdh-cli-test-');
  kms = await startAliyunScenario({ credentialDir: mkdirIn('kms-credential') });
  kms.emulator.putSecretVersion(VAULT_NAME, 'v1', 'previous vault value');
  kms.emulator.putSecretVersion(VAULT_NAME, 'v2', VAULT_VALUE);
  plaintextFile = writeWorkFile('plaintext', PLAINTEXT);

  const sealerDir = join(work.path, 'sealer');
  keygenResult = await secret(['keygen', '--kid', KID, '--output-dir', sealerDir]);
  privateJwkPath = join(sealerDir, `${KID}-private.json`);
  publicJwkPath = join(sealerDir, `${KID}-public.json`);

  // The guest looks a kid up as a file of that name in signing_key_dir.
  const signingKeyDir = mkdirIn('guest-sealed-secret');
  if (keygenResult.code === 0) copyFileSync(publicJwkPath, join(signingKeyDir, KID));

  keyPathDir = mkdirIn('key-path');
  for (const file of Object.values(kms.credentials.paths))
    copyFileSync(file, join(keyPathDir, file.split('/').pop() as string));
  if (keygenResult.code === 0) copyFileSync(publicJwkPath, join(keyPathDir, KID));

  const base = { ...kms.daemonConfig, sealed_secret: { signing_key_dir: signingKeyDir } };
  [verifying, skipByConfig, skipByEnv] = await Promise.all([
    spawnDaemon({ dir: mkdirIn('daemon-verifying'), config: base }),
    spawnDaemon({
      dir: mkdirIn('daemon-skip-config'),
      config: { ...base, skip_sealed_secret_verification: true },
    }),
    spawnDaemon({
      dir: mkdirIn('daemon-skip-env'),
      config: base,
      env: { SKIP_SEALED_SECRET_VERIFICATION: 'true' },
    }),
  ]);
});

after(async () => {
  const daemons = [verifying, skipByConfig, skipByEnv].filter(Boolean);
  const codes = await Promise.all(daemons.map((daemon) => daemon.stop()));
  for (const daemon of daemons) {
    const logs = daemon.logLines.join('\n');
    assert.ok(!logs.includes(PLAINTEXT) && !logs.includes(VAULT_VALUE), 'plaintext in a daemon log');
    daemon.cleanup();
  }
  await kms?.close();
  work?.cleanup();
  assert.deepEqual(
    codes,
    daemons.map(() => 0),
  );
});

function mkdirIn(name: string): string {
  const path = join(work.path, name);
  mkdirSync(path, { recursive: true });
  return path;
}

describe('secret seal → daemon UnsealSecret', { concurrency: 3 }, () => {
  test('signed with a keygen pair: the daemon verifies with the public half and unseals', async () => {
    const sealed = await sealEnvelope();
    const [header, payload] = sealed.split('.').slice(1, 3) as [string, string];
    assert.match(sealed, /^sealed\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{86}$/);
    assert.deepEqual(JSON.parse(Buffer.from(header, 'base64url').toString('utf8')), {
      alg: 'ES256',
      kid: KID,
    });
    assert.equal(JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')).type, 'envelope');
    assert.equal(await unsealViaClient(verifying, sealed), PLAINTEXT);
    assert.equal(await unsealViaCdhTool(verifying, sealed), PLAINTEXT);
  });

  test('unsigned: the upstream fake-JWS form, unsealed only where verification is skipped', async () => {
    const sealed = await sealEnvelope([]);
    assert.match(sealed, /^sealed\.fakejwsheader\.[A-Za-z0-9_-]+\.fakesignature$/);
    assert.equal(await unsealViaClient(skipByConfig, sealed), PLAINTEXT);
    assert.equal(await unsealViaCdhTool(skipByConfig, sealed), PLAINTEXT);
    assert.equal(await unsealViaClient(skipByEnv, sealed), PLAINTEXT);
    assert.equal(await unsealViaCdhTool(skipByEnv, sealed), PLAINTEXT);
    await assert.rejects(unsealViaClient(verifying, sealed), grpcFailure(GrpcStatus.INVALID_ARGUMENT));
    const refused = singleLineFailure(
      await cdhTool(verifying, ['unseal-secret', '--secret-path', sealedFile(sealed)]),
      'cdh-tool',
      'cdh-tool on an unsigned secret with verification on',
    );
    assert.match(refused, /^cdh-tool: INVALID_ARGUMENT: SEALED_SECRET_MALFORMED: .*unsigned form/);
  });

  test('a secret signed by another keygen pair under the same kid is PERMISSION_DENIED', async () => {
    const otherDir = join(work.path, 'other-sealer');
    singleLineOutput(await secret(['keygen', '--kid', KID, '--output-dir', otherDir]), 'keygen (other pair)');
    const sealed = await sealEnvelope(signingFlags(join(otherDir, `${KID}-private.json`)));
    await assert.rejects(unsealViaClient(verifying, sealed), grpcFailure(GrpcStatus.PERMISSION_DENIED));
    const refused = singleLineFailure(
      await cdhTool(verifying, ['unseal-secret', '--secret-path', sealedFile(sealed)]),
      'cdh-tool',
      'cdh-tool on a secret signed by another key',
    );
    assert.match(refused, /^cdh-tool: PERMISSION_DENIED: SIGNATURE_INVALID: .*cli-test-signer/);
    // Verification skipped, the same secret opens: only the signature was wrong.
    assert.equal(await unsealViaClient(skipByConfig, sealed), PLAINTEXT);
  });

  test("upstream's documented seal command line, flag for flag, with the emulator's files", async () => {
    // The files of upstream's walkthrough, under its names; the command runs from a checkout
    // next to them (`--file-path ../plaintext`).
    const seedDir = mkdirIn('seed');
    const checkout = mkdirIn('seed/guest-components');
    writeFileSync(join(seedDir, 'kms-key-id.txt'), `${kms.keyId}\n`);
    writeFileSync(join(seedDir, 'kms-instance-id.txt'), `${kms.credentials.kmsInstanceId}\n`);
    copyFileSync(kms.credentials.paths.password, join(seedDir, 'ClientKeyPassword.json'));
    copyFileSync(kms.credentials.paths.clientKey, join(seedDir, 'ClientKeyContent.json'));
    copyFileSync(kms.credentials.paths.instanceCa, join(seedDir, 'ca.pem'));
    writeFileSync(join(seedDir, 'plaintext'), PLAINTEXT);
    const KEY_ID = readFileSync(join(seedDir, 'kms-key-id.txt'), 'utf8').trim();
    const KMS_INSTANCE_ID = readFileSync(join(seedDir, 'kms-instance-id.txt'), 'utf8').trim();
    const CLIENT_KEY_PASSWORD_FILE_PATH = join(seedDir, 'ClientKeyPassword.json');
    const CERT_PATH = join(seedDir, 'ca.pem');
    const CLIENT_KEY_FILE_PATH = join(seedDir, 'ClientKeyContent.json');

    const result = await runCli(
      SECRET_BIN,
      [
        'seal',
        '--file-path',
        '../plaintext',
        'envelope',
        '--key-id',
        KEY_ID,
        'ali',
        '--password-file-path',
        CLIENT_KEY_PASSWORD_FILE_PATH,
        '--cert-path',
        CERT_PATH,
        '--kms-instance-id',
        KMS_INSTANCE_ID,
        '--client-key-file-path',
        CLIENT_KEY_FILE_PATH,
      ],
      // Only the gateway address is redirected; no credential dir is configured.
      { cwd: checkout, env: { ALIYUN_DKMS_CONNECT_TO: kms.emulator.connectTo } },
    );
    const sealed = singleLineOutput(result, "upstream's seal command");
    writeFileSync(join(checkout, 'sealed_secret.json'), result.stdout);

    // The payload is the one upstream's walkthrough shows.
    const inspected = singleLinesJson(
      await runCli(SECRET_BIN, ['inspect', '--file-path', 'sealed_secret.json'], { cwd: checkout }),
    );
    assert.deepEqual(Object.keys(inspected).sort(), [
      'annotations',
      'encrypted_data',
      'encrypted_key',
      'iv',
      'key_id',
      'provider',
      'provider_settings',
      'type',
      'version',
      'wrap_type',
    ]);
    assert.equal(inspected['version'], '0.1.0');
    assert.equal(inspected['type'], 'envelope');
    assert.equal(inspected['key_id'], KEY_ID);
    assert.equal(inspected['wrap_type'], 'A256GCM');
    assert.equal(inspected['provider'], 'aliyun');
    assert.deepEqual(inspected['provider_settings'], {
      client_type: 'client_key',
      client_key_id: kms.credentials.clientKeyId,
      kms_instance_id: KMS_INSTANCE_ID,
    });
    assert.deepEqual(Object.keys(inspected['annotations'] as object), ['iv']);

    assert.equal(await unsealViaClient(skipByConfig, sealed), PLAINTEXT);
  });

  test('--file-path after envelope, or after seal with the signing flags around it', async () => {
    const afterSeal = await secret([
      'seal',
      '--file-path',
      plaintextFile,
      ...signingFlags(),
      'envelope',
      '--key-id',
      kms.keyId,
      ...aliFlags(),
    ]);
    assert.equal(
      await unsealViaClient(verifying, singleLineOutput(afterSeal, 'seal --file-path ... envelope')),
      PLAINTEXT,
    );
    const sealed = await sealEnvelope(signingFlags());
    assert.equal(await unsealViaClient(verifying, sealed), PLAINTEXT);
  });

  test('a plaintext from stdin (--file-path -)', async () => {
    const result = await secret(
      ['seal', 'envelope', '--key-id', kms.keyId, '--file-path', '-', ...aliFlags()],
      {},
      'from stdin',
    );
    assert.equal(
      await unsealViaClient(skipByConfig, singleLineOutput(result, 'seal from stdin')),
      'from stdin',
    );
  });

  test('seal vault, provider aliyun with provider settings: inspect shows the payload, the daemon fetches the value', async () => {
    const settings = JSON.stringify(kms.credentials.providerSettings);
    const signed = singleLineOutput(
      await secret([
        'seal',
        ...signingFlags(),
        'vault',
        '--resource-uri',
        VAULT_NAME,
        '--provider',
        'aliyun',
        '--provider-settings',
        settings,
      ]),
      'seal vault (aliyun)',
    );
    const inspected = singleLinesJson(await secret(['inspect', '--file-path', sealedFile(signed)]));
    assert.deepEqual(inspected, {
      version: '0.1.0',
      type: 'vault',
      provider: 'aliyun',
      provider_settings: kms.credentials.providerSettings,
      annotations: {},
      name: VAULT_NAME,
    });
    assert.equal(await unsealViaClient(verifying, signed), VAULT_VALUE);

    const previous = singleLineOutput(
      await secret([
        'seal',
        'vault',
        '--resource-uri',
        VAULT_NAME,
        '--provider',
        'aliyun',
        '--provider-settings',
        settings,
        '--annotations',
        '{"version_stage":"ACSPrevious"}',
      ]),
      'seal vault with annotations',
    );
    assert.equal(await unsealViaCdhTool(skipByEnv, previous), 'previous vault value');
  });

  test('seal vault, provider kbs: inspect prints the payload', async () => {
    const uri = 'kbs:///default/credentials/db';
    const sealed = singleLineOutput(
      await secret(['seal', 'vault', '--resource-uri', uri, '--provider', 'kbs']),
      'seal vault (kbs)',
    );
    assert.match(sealed, /^sealed\.fakejwsheader\.[A-Za-z0-9_-]+\.fakesignature$/);
    assert.deepEqual(singleLinesJson(await secret(['inspect', '--file-path', sealedFile(sealed)])), {
      version: '0.1.0',
      type: 'vault',
      provider: 'kbs',
      provider_settings: {},
      annotations: {},
      name: uri,
    });
  });

  test('inspect of an envelope prints the payload JSON and no secret material', async () => {
    const sealed = await sealEnvelope();
    const result = await secret(['inspect', '--file-path', sealedFile(sealed)]);
    const payload = singleLinesJson(result);
    for (const field of ['encrypted_key', 'encrypted_data', 'iv'])
      assert.match(payload[field] as string, /^[A-Za-z0-9+/]+={0,2}$/, field);
    assert.equal(payload['key_id'], kms.keyId);
    for (const form of [
      PLAINTEXT,
      Buffer.from(PLAINTEXT).toString('base64'),
      Buffer.from(PLAINTEXT).toString('hex'),
    ])
      assert.ok(!result.stdout.includes(form), 'inspect printed the plaintext');
    // The signing key's private part is not in the sealed secret either.
    const d = (JSON.parse(readFileSync(privateJwkPath, 'utf8')) as { d: string }).d;
    assert.ok(!sealed.includes(d) && !result.stdout.includes(d));
    // Nothing is decrypted: inspect works with no KMS to reach and no credentials.
    const offline = await runCli(SECRET_BIN, ['inspect', '--file-path', sealedFile(sealed)]);
    assert.equal(offline.code, 0, offline.stderr);
    assert.equal(offline.stdout, result.stdout);
  });
});

/** Success, nothing on stderr; stdout parsed as a JSON object. */
function singleLinesJson(result: CliResult): Record<string, unknown> {
  assert.equal(result.stderr, '');
  assert.equal(result.code, 0);
  const value = JSON.parse(result.stdout) as unknown;
  assert.ok(value !== null && typeof value === 'object' && !Array.isArray(value));
  return value as Record<string, unknown>;
}

describe('secret unseal (locally)', { concurrency: true }, () => {
  test('--key-path DIR: credentials and signing key from DIR, plaintext written to SEALED.unsealed, never overwritten', async () => {
    const file = sealedFile(await sealEnvelope());
    const unsealed = await secret(['unseal', '--file-path', file, '--key-path', keyPathDir]);
    assert.equal(unsealed.stderr, '');
    assert.equal(unsealed.code, 0);
    assert.equal(unsealed.stdout, '');
    assert.equal(readFileSync(`${file}.unsealed`, 'utf8'), PLAINTEXT);
    assert.equal(statSync(`${file}.unsealed`).mode & 0o777, 0o600);

    writeFileSync(`${file}.unsealed`, 'kept');
    const again = await secret(['unseal', '--file-path', file, '--key-path', keyPathDir]);
    assert.match(singleLineFailure(again, 'secret', 'unseal over an existing .unsealed'), /exists/);
    assert.equal(readFileSync(`${file}.unsealed`, 'utf8'), 'kept');
  });

  test('--file-path - reads the sealed secret from stdin and writes the plaintext to stdout', async () => {
    const sealed = await sealEnvelope();
    const result = await secret(['unseal', '--file-path', '-', '--key-path', keyPathDir], {}, `${sealed}\n`);
    assert.equal(result.stderr, '');
    assert.equal(result.code, 0);
    assert.equal(result.stdout, PLAINTEXT);
  });

  test('the unsigned form needs --skip-verification (or SKIP_SEALED_SECRET_VERIFICATION=true)', async () => {
    const file = sealedFile(await sealEnvelope([]));
    const refused = await secret(['unseal', '--file-path', file, '--key-path', keyPathDir]);
    assert.match(
      singleLineFailure(refused, 'secret', 'unsigned without --skip-verification'),
      /SEALED_SECRET_MALFORMED: .*unsigned form.*--skip-verification/,
    );
    const skipped = await secret(
      ['unseal', '--file-path', '-', '--key-path', keyPathDir, '--skip-verification'],
      {},
      readFileSync(file, 'utf8'),
    );
    assert.equal(skipped.code, 0, skipped.stderr);
    assert.equal(skipped.stdout, PLAINTEXT);
    const byEnv = await secret(
      ['unseal', '--file-path', '-', '--key-path', keyPathDir],
      { SKIP_SEALED_SECRET_VERIFICATION: 'true' },
      readFileSync(file, 'utf8'),
    );
    assert.equal(byEnv.code, 0, byEnv.stderr);
    assert.equal(byEnv.stdout, PLAINTEXT);
  });

  test('a vault secret, credentials from ALIYUN_IN_GUEST_KEY_PATH', async () => {
    const sealed = singleLineOutput(
      await secret([
        'seal',
        'vault',
        '--resource-uri',
        VAULT_NAME,
        '--provider',
        'aliyun',
        '--provider-settings',
        JSON.stringify(kms.credentials.providerSettings),
        '--annotations',
        '{"version_id":"v1"}',
      ]),
      'seal vault',
    );
    const result = await secret(['unseal', '--file-path', '-', '--skip-verification'], {}, sealed);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'previous vault value');
  });
});

describe('secret keygen', { concurrency: true }, () => {
  test('writes a P-256 pair: private file 0600 with d, public file without; prints the kid', () => {
    assert.equal(singleLineOutput(keygenResult, 'keygen'), KID);
    const privateJwk = JSON.parse(readFileSync(privateJwkPath, 'utf8')) as Record<string, unknown>;
    const publicJwk = JSON.parse(readFileSync(publicJwkPath, 'utf8')) as Record<string, unknown>;
    assert.equal(statSync(privateJwkPath).mode & 0o777, 0o600);
    assert.equal(privateJwk['kty'], 'EC');
    assert.equal(privateJwk['crv'], 'P-256');
    assert.equal(typeof privateJwk['d'], 'string');
    assert.equal(publicJwk['d'], undefined);
    assert.equal(publicJwk['x'], privateJwk['x']);
    assert.equal(publicJwk['y'], privateJwk['y']);
  });

  test('refuses to overwrite an existing pair', async () => {
    const before = readFileSync(privateJwkPath, 'utf8');
    const result = await secret(['keygen', '--kid', KID, '--output-dir', join(work.path, 'sealer')]);
    assert.match(singleLineFailure(result, 'secret', 'keygen over an existing pair'), /already exists/);
    assert.equal(readFileSync(privateJwkPath, 'utf8'), before);
  });

  test('a half pair left by hand blocks keygen without adding a private file', async () => {
    const dir = mkdirIn('keygen-half');
    writeFileSync(join(dir, 'half-public.json'), '{}');
    const result = await secret(['keygen', '--kid', 'half', '--output-dir', dir]);
    assert.match(singleLineFailure(result, 'secret', 'keygen over half a pair'), /already exists/);
    assert.deepEqual(readdirSync(dir), ['half-public.json']);
  });

  test('without --kid, a fresh kid is made up and printed', async () => {
    const dir = join(work.path, 'keygen-no-kid');
    const kid = singleLineOutput(await secret(['keygen', '--output-dir', dir]), 'keygen without --kid');
    assert.match(kid, /^[A-Za-z0-9._-]+$/);
    assert.ok(statSync(join(dir, `${kid}-private.json`)).isFile());
    assert.ok(statSync(join(dir, `${kid}-public.json`)).isFile());
  });
});

describe('bad flags and missing files: one stderr line, non-zero exit', { concurrency: 4 }, () => {
  const missing = '/nonexistent/cdh-cli-test/file';
  const cases: Array<[string, () => string[], RegExp]> = [
    ['no command', () => [], /command/],
    ['unknown command', () => ['frobnicate'], /unknown command "frobnicate"/],
    ['unknown option', () => ['seal', '--frobnicate', 'envelope'], /unknown option --frobnicate/],
    ['unknown top-level option', () => ['--frobnicate'], /unknown option --frobnicate/],
    ['seal without a type', () => ['seal'], /envelope or vault/],
    ['seal with an unknown type', () => ['seal', 'sideways'], /unknown secret type "sideways"/],
    ['missing --key-id', () => ['seal', 'envelope', '--file-path', plaintextFile, ...aliFlags()], /--key-id/],
    ['missing --file-path', () => ['seal', 'envelope', '--key-id', kms.keyId, ...aliFlags()], /--file-path/],
    [
      '--file-path given in both places',
      () => [
        'seal',
        '--file-path',
        plaintextFile,
        'envelope',
        '--key-id',
        kms.keyId,
        '--file-path',
        plaintextFile,
        ...aliFlags(),
      ],
      /--file-path/,
    ],
    [
      'seal envelope without ali',
      () => ['seal', 'envelope', '--key-id', kms.keyId, '--file-path', plaintextFile],
      /ali/,
    ],
    [
      'seal envelope with an unknown KMS',
      () => ['seal', 'envelope', '--key-id', kms.keyId, '--file-path', plaintextFile, 'aws'],
      /unknown KMS "aws"/,
    ],
    [
      'an option without its value',
      () => ['seal', 'envelope', '--key-id', kms.keyId, '--file-path', plaintextFile, 'ali', '--cert-path'],
      /--cert-path needs a value/,
    ],
    [
      'missing ali flag',
      () => [
        'seal',
        'envelope',
        '--key-id',
        kms.keyId,
        '--file-path',
        plaintextFile,
        ...aliFlags().slice(0, 7),
      ],
      /--client-key-file-path/,
    ],
    [
      'nonexistent plaintext file',
      () => ['seal', 'envelope', '--key-id', kms.keyId, '--file-path', missing, ...aliFlags()],
      /--file-path.*ENOENT/,
    ],
    [
      'nonexistent client key file',
      () => [
        'seal',
        'envelope',
        '--key-id',
        kms.keyId,
        '--file-path',
        plaintextFile,
        ...replaceFlag(aliFlags(), '--client-key-file-path', missing),
      ],
      /--client-key-file-path.*ENOENT/,
    ],
    [
      'nonexistent password file',
      () => [
        'seal',
        'envelope',
        '--key-id',
        kms.keyId,
        '--file-path',
        plaintextFile,
        ...replaceFlag(aliFlags(), '--password-file-path', missing),
      ],
      /CREDENTIAL_UNAVAILABLE: client key password file \/nonexistent\S* does not exist/,
    ],
    [
      'nonexistent CA file',
      () => [
        'seal',
        'envelope',
        '--key-id',
        kms.keyId,
        '--file-path',
        plaintextFile,
        ...replaceFlag(aliFlags(), '--cert-path', missing),
      ],
      /CREDENTIAL_UNAVAILABLE: KMS instance CA file \/nonexistent\S* does not exist/,
    ],
    [
      'client key file that is not JSON',
      () => [
        'seal',
        'envelope',
        '--key-id',
        kms.keyId,
        '--file-path',
        plaintextFile,
        ...replaceFlag(aliFlags(), '--client-key-file-path', plaintextFile),
      ],
      /--client-key-file-path.*not JSON/,
    ],
    [
      'an unknown KMS key',
      () => ['seal', 'envelope', '--key-id', 'key-unknown', '--file-path', plaintextFile, ...aliFlags()],
      /NOT_FOUND.*key-unknown/,
    ],
    [
      'bad JSON in --provider-settings',
      () => [
        'seal',
        'vault',
        '--resource-uri',
        'x',
        '--provider',
        'aliyun',
        '--provider-settings',
        '{"client_type":',
      ],
      /--provider-settings is not JSON/,
    ],
    [
      '--provider-settings not an object',
      () => ['seal', 'vault', '--resource-uri', 'x', '--provider', 'aliyun', '--provider-settings', '[1]'],
      /--provider-settings must be a JSON object/,
    ],
    [
      'an annotation that is not a string',
      () => [
        'seal',
        'vault',
        '--resource-uri',
        'x',
        '--provider',
        'aliyun',
        '--annotations',
        '{"version_id":1}',
      ],
      /--annotations/,
    ],
    ['seal vault without --provider', () => ['seal', 'vault', '--resource-uri', 'x'], /--provider/],
    ['seal vault without --resource-uri', () => ['seal', 'vault', '--provider', 'kbs'], /--resource-uri/],
    [
      '--signing-kid without --signing-jwk-path',
      () => ['seal', '--signing-kid', KID, 'vault', '--resource-uri', 'x', '--provider', 'kbs'],
      /--signing-kid and --signing-jwk-path/,
    ],
    [
      'a signing JWK file that does not exist',
      () => ['seal', ...signingFlags(missing), 'vault', '--resource-uri', 'x', '--provider', 'kbs'],
      /--signing-jwk-path.*ENOENT/,
    ],
    [
      'a public JWK as the signing key',
      () => ['seal', ...signingFlags(publicJwkPath), 'vault', '--resource-uri', 'x', '--provider', 'kbs'],
      /signing JWK/,
    ],
    [
      'extra argument',
      () => ['seal', 'vault', '--resource-uri', 'x', '--provider', 'kbs', 'extra'],
      /unexpected argument "extra"/,
    ],
    ['unseal without --file-path', () => ['unseal'], /--file-path/],
    ['unseal of a missing file', () => ['unseal', '--file-path', missing], /ENOENT/],
    [
      'unseal of something not sealed',
      () => ['unseal', '--file-path', plaintextFile, '--skip-verification'],
      /SEALED_SECRET_MALFORMED/,
    ],
    ['inspect without --file-path', () => ['inspect'], /--file-path/],
    ['inspect of a missing file', () => ['inspect', '--file-path', missing], /ENOENT/],
    [
      'inspect of something not sealed',
      () => ['inspect', '--file-path', plaintextFile],
      /SEALED_SECRET_MALFORMED/,
    ],
    [
      'keygen with a kid that is a path',
      () => ['keygen', '--kid', '../escape', '--output-dir', work.path],
      /--kid/,
    ],
    [
      'a boolean flag given a value',
      () => ['unseal', '--file-path', missing, '--skip-verification=yes'],
      /takes no value/,
    ],
  ];
  for (const [name, args, message] of cases) {
    test(name, async () => {
      const line = singleLineFailure(await secret(args()), 'secret', name);
      assert.match(line, message);
      assert.ok(!line.includes(PLAINTEXT));
    });
  }

  const toolCases: Array<[string, () => string[], RegExp]> = [
    ['cdh-tool: no command', () => [], /command/],
    ['cdh-tool: unknown command', () => ['frobnicate'], /unknown command "frobnicate"/],
    ['cdh-tool: unknown option', () => ['--frobnicate', 'health'], /frobnicate/],
    ['cdh-tool: unseal-secret without --secret-path', () => ['unseal-secret'], /--secret-path/],
    ['cdh-tool: get-resource without --resource-uri', () => ['get-resource'], /--resource-uri/],
    [
      'cdh-tool: a secret file that does not exist',
      () => ['unseal-secret', '--secret-path', missing],
      /ENOENT/,
    ],
    ['cdh-tool: bad --timeout-ms', () => ['--timeout-ms', 'soon', 'health'], /--timeout-ms/],
    [
      'cdh-tool: daemon not running (no socket)',
      () => [
        '--socket',
        `unix://${join(work.path, 'no-daemon.sock')}`,
        'unseal-secret',
        '--secret-path',
        plaintextFile,
      ],
      /^cdh-tool: UNAVAILABLE: no daemon answers at unix:\/\/\/\S*no-daemon\.sock \(connect ENOENT /,
    ],
    [
      'cdh-tool: get-resource of a resource the daemon cannot serve',
      () => ['--socket', verifying.target, 'get-resource', '--resource-uri', 'kbs:///default/none/here'],
      /^cdh-tool: [A-Z_]+: /,
    ],
    [
      'cdh-tool: health with no daemon',
      () => ['--socket', `unix://${join(work.path, 'no-daemon.sock')}`, 'health'],
      /UNAVAILABLE: no daemon answers/,
    ],
  ];
  for (const [name, args, message] of toolCases) {
    test(name, async () => {
      const line = singleLineFailure(await runCli(CDH_TOOL_BIN, args()), 'cdh-tool', name);
      assert.match(line, message);
    });
  }
});

function replaceFlag(flags: string[], name: string, value: string): string[] {
  const copy = [...flags];
  copy[copy.indexOf(name) + 1] = value;
  return copy;
}

describe('--help and --version', { concurrency: 3 }, () => {
  const bins: Array<[string, string]> = [
    ['confidential-data-hub', DAEMON_BIN],
    ['secret', SECRET_BIN],
    ['cdh-tool', CDH_TOOL_BIN],
  ];
  for (const [name, bin] of bins) {
    test(`${name} --help prints the usage and exits 0`, async () => {
      for (const flag of ['--help', '-h']) {
        const result = await runCli(bin, [flag]);
        assert.equal(result.stderr, '');
        assert.equal(result.code, 0);
        assert.match(result.stdout, new RegExp(`^Usage: ${name}`));
      }
    });
    test(`${name} --version prints the package version and exits 0`, async () => {
      const result = await runCli(bin, ['--version']);
      assert.equal(singleLineOutput(result, `${name} --version`), `${name} ${packageVersion()}`);
    });
  }
  test('secret --help after a command prints the usage too', async () => {
    for (const args of [
      ['seal', '--help'],
      ['seal', 'envelope', '--key-id', 'k', '--help'],
      ['unseal', '--help'],
    ]) {
      const result = await runCli(SECRET_BIN, args);
      assert.equal(result.stderr, '');
      assert.equal(result.code, 0);
      assert.match(result.stdout, /^Usage: secret/);
    }
  });

  test('cdh-tool health against a running daemon prints SERVING', async () => {
    assert.equal(singleLineOutput(await cdhTool(verifying, ['health']), 'cdh-tool health'), 'SERVING');
  });
});
