import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { after, before, test } from 'node:test';
import { CdhError } from '../../src/errors';
import { LOOPBACK_ONLY_ENV } from '../../src/net-guard';
import { aliyunProvider } from '../../src/providers/aliyun';
import { createClientKeyProvider } from '../../src/providers/aliyun/client-key';
import type { CallContext, ProviderInstance, ProviderSettings } from '../../src/providers/types';
import { clientKeyConfig, makeTempDir, providerContext, VECTOR_SOURCE } from '../support/aliyun-credentials';
import {
  hasOpenssl,
  writeClientKeyCredentials,
  type ClientKeyCredentials,
} from '../../src/emulators/aliyun/client-key-files';
import { cdhErrorWith } from '../support/cdh-error-assert';
import { DkmsEmulator } from '../../src/emulators/aliyun/dkms-gateway';
import { createTestCa } from '../../src/emulators/pki';

const INSTANCE_ID = 'kst-bjj652f0d1a3b4c5d6e7';
const DATA_KEY = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex');

let emulator: DkmsEmulator;
let root: string;
let vectorCreds: ClientKeyCredentials;
let keyId: string;
const opened: ProviderInstance[] = [];
const extraEmulators: DkmsEmulator[] = [];

function call(): CallContext {
  return { signal: new AbortController().signal };
}

async function dirUnderRoot(): Promise<string> {
  return fs.mkdtemp(`${root}/creds-`);
}

async function openProvider(
  creds: Pick<ClientKeyCredentials, 'dir' | 'providerSettings'>,
  options: { requestTimeoutMs?: number; target?: DkmsEmulator } = {},
): Promise<ProviderInstance> {
  const config = clientKeyConfig(options.target ?? emulator, creds.dir, options);
  const instance = await createClientKeyProvider(creds.providerSettings, providerContext(config));
  opened.push(instance);
  return instance;
}

function capabilities(instance: ProviderInstance) {
  assert.ok(instance.decrypter && instance.encrypter && instance.getter);
  return { decrypter: instance.decrypter, encrypter: instance.encrypter, getter: instance.getter };
}

before(async () => {
  process.env[LOOPBACK_ONLY_ENV] = '1';
  root = await makeTempDir();
  emulator = await DkmsEmulator.start({ instanceId: INSTANCE_ID });
  vectorCreds = await writeClientKeyCredentials({
    dir: await dirUnderRoot(),
    caPem: emulator.caPem,
    source: VECTOR_SOURCE,
    passwordForm: 'text',
    kmsInstanceId: INSTANCE_ID,
  });
  emulator.addClientKey(vectorCreds.clientKeyId, vectorCreds.certificatePem);
  keyId = emulator.addKey('key-bjj652-0001');
});

after(async () => {
  await Promise.allSettled(opened.map(async (instance) => instance.close?.()));
  await Promise.allSettled([emulator.close(), ...extraEmulators.map((extra) => extra.close())]);
  await fs.rm(root, { recursive: true, force: true });
});

test('the Alibaba-issued vector key is accepted by a gateway holding its certificate: encrypt, decrypt, get', async () => {
  const { decrypter, encrypter, getter } = capabilities(await openProvider(vectorCreds));
  const sealed = await encrypter.encrypt(DATA_KEY, keyId, call());
  assert.match(sealed.annotations['iv'] ?? '', /^[A-Za-z0-9+/]{16}$/);
  assert.ok(!sealed.ciphertext.equals(DATA_KEY));
  assert.deepEqual(await decrypter.decrypt(sealed.ciphertext, keyId, sealed.annotations, call()), DATA_KEY);

  emulator.putSecretVersion('db-password', 'v1', 'hunter2');
  assert.equal((await getter.getSecret('db-password', {}, call())).toString('utf8'), 'hunter2');
  assert.equal(emulator.lastRequestHeaders['x-kms-acccesskeyid'], 'KAAP.vector-0001');
  assert.equal(emulator.lastRequestHeaders['host'], `${INSTANCE_ID}.cryptoservice.kms.aliyuncs.com`);
});

test('a client key made by OpenSSL 3 defaults, with the console JSON password file, works', async (t) => {
  if (!hasOpenssl()) {
    t.skip('no openssl binary on PATH');
    return;
  }
  const creds = await writeClientKeyCredentials({
    dir: await dirUnderRoot(),
    caPem: emulator.caPem,
    source: 'openssl-default',
    passwordForm: 'json',
    kmsInstanceId: INSTANCE_ID,
  });
  emulator.addClientKey(creds.clientKeyId, creds.certificatePem);
  const { decrypter, encrypter } = capabilities(await openProvider(creds));
  const sealed = await encrypter.encrypt(DATA_KEY, keyId, call());
  assert.deepEqual(await decrypter.decrypt(sealed.ciphertext, keyId, sealed.annotations, call()), DATA_KEY);
});

test('vault secrets by stage and by version id', async () => {
  const { getter } = capabilities(await openProvider(vectorCreds));
  emulator.putSecretVersion('api-token', 'v1', 'first');
  emulator.putSecretVersion('api-token', 'v2', 'second');
  emulator.putSecretVersion('api-token', 'v3', 'pending', ['ACSPending']);
  const get = async (annotations: Record<string, string>) =>
    (await getter.getSecret('api-token', annotations, call())).toString('utf8');
  assert.equal(await get({}), 'second');
  assert.equal(await get({ version_stage: 'ACSCurrent' }), 'second');
  assert.equal(await get({ version_stage: 'ACSPrevious' }), 'first');
  assert.equal(await get({ version_stage: 'ACSPending' }), 'pending');
  assert.equal(await get({ version_id: 'v1' }), 'first');
  assert.equal(await get({ version_id: 'v3' }), 'pending');
  await assert.rejects(
    getter.getSecret('api-token', { version_id: 'v9' }, call()),
    cdhErrorWith('KMS_NOT_FOUND', /Forbidden\.ResourceNotFound/, /RequestId/),
  );
  await assert.rejects(
    getter.getSecret('no-such-secret', {}, call()),
    cdhErrorWith('KMS_NOT_FOUND', /no-such-secret/),
  );
});

test('a wrong CA file is refused with a TLS failure, never a success', async () => {
  const creds = await writeClientKeyCredentials({
    dir: await dirUnderRoot(),
    caPem: createTestCa('Some Other Root CA').certPem,
    source: VECTOR_SOURCE,
    kmsInstanceId: INSTANCE_ID,
  });
  const { decrypter } = capabilities(await openProvider(creds));
  const before = emulator.stats.requests['Decrypt'] ?? 0;
  await assert.rejects(
    decrypter.decrypt(Buffer.alloc(48, 1), keyId, { iv: 'AAAAAAAAAAAAAAAA' }, call()),
    cdhErrorWith('KMS_TLS_FAILED', /TLS failure/, /could not be verified against .*PrivateKmsCA_/),
  );
  assert.equal(emulator.stats.requests['Decrypt'] ?? 0, before, 'no request may reach an untrusted server');
});

test('a server certificate for another host name is refused', async () => {
  const ca = createTestCa('Private KMS Root CA (other)');
  const impostor = await DkmsEmulator.start({
    instanceId: INSTANCE_ID,
    ca,
    serverHostNames: ['kst-someoneelse.cryptoservice.kms.aliyuncs.com'],
  });
  extraEmulators.push(impostor);
  impostor.addClientKey(vectorCreds.clientKeyId, vectorCreds.certificatePem);
  const creds = await writeClientKeyCredentials({
    dir: await dirUnderRoot(),
    caPem: ca.certPem,
    source: VECTOR_SOURCE,
    kmsInstanceId: INSTANCE_ID,
  });
  const { encrypter } = capabilities(await openProvider(creds, { target: impostor }));
  await assert.rejects(
    encrypter.encrypt(DATA_KEY, keyId, call()),
    cdhErrorWith('KMS_TLS_FAILED', /TLS failure/, new RegExp(`not valid for host name ${INSTANCE_ID}\\.`)),
  );
  assert.deepEqual(impostor.stats.requests, {});
});

test('each missing credential file is CREDENTIAL_UNAVAILABLE naming it', async () => {
  for (const which of ['clientKey', 'password', 'instanceCa'] as const) {
    const creds = await writeClientKeyCredentials({
      dir: await dirUnderRoot(),
      caPem: emulator.caPem,
      source: VECTOR_SOURCE,
      kmsInstanceId: INSTANCE_ID,
    });
    await fs.rm(creds.paths[which]);
    await assert.rejects(
      openProvider(creds),
      cdhErrorWith(
        'CREDENTIAL_UNAVAILABLE',
        new RegExp(`${creds.paths[which].replace(/\./g, '\\.')} does not exist`),
      ),
    );
  }
});

test('client_key_id ../../etc/passwd is PROVIDER_SETTINGS_INVALID before any file is opened', async () => {
  // Every file access of the provider goes through fs.promises: make each one fail loudly.
  const touched: string[] = [];
  const originals = { open: fs.open, stat: fs.stat, readFile: fs.readFile };
  const record =
    (name: string) =>
    (...args: unknown[]): never => {
      touched.push(`${name} ${String(args[0])}`);
      throw new Error('no file may be touched');
    };
  fs.open = record('open') as typeof fs.open;
  fs.stat = record('stat') as typeof fs.stat;
  fs.readFile = record('readFile') as typeof fs.readFile;
  try {
    const bad: ProviderSettings[] = [
      { client_type: 'client_key', client_key_id: '../../etc/passwd', kms_instance_id: INSTANCE_ID },
      { client_type: 'client_key', client_key_id: 'KAAP.x', kms_instance_id: '../../../etc/shadow' },
      { client_type: 'client_key', client_key_id: 'KAAP/x', kms_instance_id: INSTANCE_ID },
    ];
    for (const settings of bad) {
      const config = clientKeyConfig(emulator, vectorCreds.dir);
      await assert.rejects(
        Promise.resolve().then(() => aliyunProvider.create(settings, providerContext(config))),
        cdhErrorWith('PROVIDER_SETTINGS_INVALID', /is not a valid id/),
      );
    }
  } finally {
    Object.assign(fs, originals);
  }
  assert.deepEqual(touched, []);
});

test('settings: missing or non-string client_key_id / kms_instance_id are named', async () => {
  const config = clientKeyConfig(emulator, vectorCreds.dir);
  await assert.rejects(
    createClientKeyProvider(
      { client_type: 'client_key', kms_instance_id: INSTANCE_ID },
      providerContext(config),
    ),
    cdhErrorWith('PROVIDER_SETTINGS_INVALID', /provider_settings\.client_key_id is required/, /missing/),
  );
  await assert.rejects(
    createClientKeyProvider(
      { client_type: 'client_key', client_key_id: 'KAAP.x', kms_instance_id: 42 },
      providerContext(config),
    ),
    cdhErrorWith('PROVIDER_SETTINGS_INVALID', /provider_settings\.kms_instance_id/, /got a number/),
  );
});

test('a tampered encrypted_key is the KMS 400, with its RequestId and ErrorCode in the message', async () => {
  const { decrypter, encrypter } = capabilities(await openProvider(vectorCreds));
  const sealed = await encrypter.encrypt(DATA_KEY, keyId, call());
  const tampered = Buffer.from(sealed.ciphertext);
  tampered[3] = (tampered[3] ?? 0) ^ 0x01;
  const before = emulator.stats.requests['Decrypt'] ?? 0;
  await assert.rejects(decrypter.decrypt(tampered, keyId, sealed.annotations, call()), (error: unknown) => {
    const requestId = emulator.lastAnswer?.requestId ?? 'missing';
    assert.equal(emulator.lastAnswer?.status, 400);
    return cdhErrorWith(
      'KMS_REQUEST_REJECTED',
      /HTTP 400 InvalidParameter/,
      new RegExp(`RequestId ${requestId}`),
      new RegExp(keyId),
      new RegExp(INSTANCE_ID),
    )(error);
  });
  assert.equal(emulator.stats.requests['Decrypt'], before + 1, 'a 400 is not retried');
});

test('two 503s then OK is a success', async () => {
  const { encrypter } = capabilities(await openProvider(vectorCreds));
  const before = emulator.stats.requests['Encrypt'] ?? 0;
  emulator.failNext(2, 503);
  const sealed = await encrypter.encrypt(DATA_KEY, keyId, call());
  assert.ok(sealed.ciphertext.length > 0);
  assert.equal(emulator.stats.requests['Encrypt'], before + 3);
});

test('a 429 and a reset connection are retried too', async () => {
  const { encrypter } = capabilities(await openProvider(vectorCreds));
  emulator.failNext(1, 429);
  emulator.resetNext(1);
  const sealed = await encrypter.encrypt(DATA_KEY, keyId, call());
  assert.ok(sealed.ciphertext.length > 0);
});

test('5xx on every attempt ends as KMS_UNAVAILABLE with the last ErrorCode', async () => {
  const { encrypter } = capabilities(await openProvider(vectorCreds));
  emulator.failNext(10, 502, 'InternalFailure');
  try {
    await assert.rejects(
      encrypter.encrypt(DATA_KEY, keyId, call()),
      cdhErrorWith(
        'KMS_UNAVAILABLE',
        /HTTP 502 InternalFailure \(RequestId [0-9a-f-]+\)/,
        /gave up after 4 attempts/,
      ),
    );
  } finally {
    emulator.clearFaults();
  }
});

test('a hanging KMS is KMS_UNAVAILABLE within request_timeout_ms', async () => {
  const requestTimeoutMs = 400;
  const { encrypter } = capabilities(await openProvider(vectorCreds, { requestTimeoutMs }));
  emulator.hangNext(1);
  const started = Date.now();
  await assert.rejects(
    encrypter.encrypt(DATA_KEY, keyId, call()),
    cdhErrorWith('KMS_UNAVAILABLE', /no answer from the KMS .* within 400 ms/),
  );
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= requestTimeoutMs - 20 && elapsed < requestTimeoutMs + 400, `took ${elapsed} ms`);
});

test('a slow answer inside the budget is a success', async () => {
  const { encrypter } = capabilities(await openProvider(vectorCreds, { requestTimeoutMs: 2000 }));
  emulator.slowNext(150);
  assert.ok((await encrypter.encrypt(DATA_KEY, keyId, call())).ciphertext.length > 0);
});

test("the caller's cancellation stops the wait at once", async () => {
  const { encrypter } = capabilities(await openProvider(vectorCreds, { requestTimeoutMs: 5000 }));
  emulator.hangNext(2);
  const cancelled = new AbortController();
  setTimeout(() => cancelled.abort(), 100);
  let started = Date.now();
  await assert.rejects(
    encrypter.encrypt(DATA_KEY, keyId, { signal: cancelled.signal }),
    cdhErrorWith('CANCELLED'),
  );
  assert.ok(Date.now() - started < 1000);

  const deadline = new AbortController();
  setTimeout(() => deadline.abort(new CdhError('DEADLINE_EXCEEDED', 'deadline passed')), 100);
  started = Date.now();
  await assert.rejects(
    encrypter.encrypt(DATA_KEY, keyId, { signal: deadline.signal }),
    cdhErrorWith('DEADLINE_EXCEEDED'),
  );
  assert.ok(Date.now() - started < 1000);
  emulator.clearFaults();
});

test('an unknown key is KMS_NOT_FOUND and is not retried', async () => {
  const { decrypter } = capabilities(await openProvider(vectorCreds));
  const before = emulator.stats.requests['Decrypt'] ?? 0;
  await assert.rejects(
    decrypter.decrypt(Buffer.alloc(48, 7), 'key-does-not-exist', { iv: 'AAAAAAAAAAAAAAAA' }, call()),
    cdhErrorWith('KMS_NOT_FOUND', /Forbidden\.KeyNotFound/, /key-does-not-exist/, /RequestId/),
  );
  assert.equal(emulator.stats.requests['Decrypt'], before + 1);
});

test('a client key the gateway does not know is KMS_ACCESS_DENIED', async () => {
  const creds = await writeClientKeyCredentials({
    dir: await dirUnderRoot(),
    caPem: emulator.caPem,
    kmsInstanceId: INSTANCE_ID,
  });
  const { encrypter } = capabilities(await openProvider(creds));
  await assert.rejects(
    encrypter.encrypt(DATA_KEY, keyId, call()),
    cdhErrorWith('KMS_ACCESS_DENIED', /HTTP 401 InvalidAccessKeyId\.NotFound/),
  );
});

test('annotations.iv missing or not strict base64 is PROVIDER_SETTINGS_INVALID naming annotations.iv', async () => {
  const { decrypter } = capabilities(await openProvider(vectorCreds));
  const bad: Array<Record<string, string>> = [
    {},
    { iv: '' },
    { iv: 'not base64!' },
    { iv: 'AAAAAAAAAAAAAAA' },
    { iv: 'AAAAAAAAAAAAAAB=' },
    { iv: 'AAAAAAAA-_AAAAAA' },
    // Canonical base64, but not the 12 bytes AES_GCM takes: refused before the gateway is called.
    { iv: Buffer.alloc(11).toString('base64') },
    { iv: Buffer.alloc(13).toString('base64') },
    { iv: Buffer.alloc(16).toString('base64') },
  ];
  for (const annotations of bad) {
    await assert.rejects(
      decrypter.decrypt(Buffer.alloc(48), keyId, annotations, call()),
      cdhErrorWith('PROVIDER_SETTINGS_INVALID', /annotations\.iv/),
      JSON.stringify(annotations),
    );
  }
});

test('100 sequential decrypts use at most 2 TLS connections', async () => {
  const { decrypter, encrypter } = capabilities(await openProvider(vectorCreds));
  const sealed = await encrypter.encrypt(DATA_KEY, keyId, call());
  const tlsBefore = emulator.stats.tlsConnections;
  for (let i = 0; i < 100; i++) {
    assert.deepEqual(await decrypter.decrypt(sealed.ciphertext, keyId, sealed.annotations, call()), DATA_KEY);
  }
  assert.ok(
    emulator.stats.tlsConnections - tlsBefore <= 2,
    `${emulator.stats.tlsConnections - tlsBefore} TLS connections`,
  );
});

test('a replaced credential file is noticed: the next call uses the new key', async () => {
  const dir = await dirUnderRoot();
  const clientKeyId = 'KAAP.rotating-0001';
  const first = await writeClientKeyCredentials({
    dir,
    caPem: emulator.caPem,
    clientKeyId,
    kmsInstanceId: INSTANCE_ID,
  });
  emulator.addClientKey(clientKeyId, first.certificatePem);
  const { encrypter } = capabilities(await openProvider(first));
  await encrypter.encrypt(DATA_KEY, keyId, call());

  // The gateway now knows only the new key: the old one is refused...
  const secondDir = await dirUnderRoot();
  const second = await writeClientKeyCredentials({
    dir: secondDir,
    caPem: emulator.caPem,
    clientKeyId,
    kmsInstanceId: INSTANCE_ID,
  });
  emulator.addClientKey(clientKeyId, second.certificatePem);
  await assert.rejects(
    encrypter.encrypt(DATA_KEY, keyId, call()),
    cdhErrorWith('KMS_ACCESS_DENIED', /InvalidSignature/),
  );

  // ...until the files are replaced (atomically, as a deployment does), then the same instance signs with the new one.
  for (const which of ['clientKey', 'password'] as const) {
    await fs.copyFile(second.paths[which], `${first.paths[which]}.tmp`);
    await fs.rename(`${first.paths[which]}.tmp`, first.paths[which]);
  }
  const sealed = await encrypter.encrypt(DATA_KEY, keyId, call());
  assert.ok(sealed.ciphertext.length > 0);

  // A file that disappears makes calls fail naming it, rather than silently using stale credentials.
  await fs.rm(first.paths.password);
  await assert.rejects(
    encrypter.encrypt(DATA_KEY, keyId, call()),
    cdhErrorWith('CREDENTIAL_UNAVAILABLE', /password_KAAP\.rotating-0001\.json does not exist/),
  );
});

test('without dkms_connect_to, loopback-only mode refuses to dial the production gateway', async () => {
  const config = clientKeyConfig(emulator, vectorCreds.dir);
  config.aliyun.dkmsConnectTo = '';
  const instance = await createClientKeyProvider(vectorCreds.providerSettings, providerContext(config));
  opened.push(instance);
  await assert.rejects(
    capabilities(instance).encrypter.encrypt(DATA_KEY, keyId, call()),
    cdhErrorWith('PROVIDER_NOT_CONFIGURED', new RegExp(`refusing to contact ${INSTANCE_ID}\\.cryptoservice`)),
  );
});
