import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import * as https from 'node:https';
import { after, before, test } from 'node:test';
import { decodeDkms, encodeDkms } from '../../src/providers/aliyun/client-key/dkms-messages';
import { signedDkmsHeaders, type DkmsApiName } from '../../src/providers/aliyun/client-key/request-signing';
import { DkmsEmulator } from '../../src/emulators/aliyun/dkms-gateway';

// The emulator must refuse what the real gateway refuses, or the provider tests prove nothing.

const INSTANCE_ID = 'kst-emulatortest0001';
const CLIENT_KEY_ID = 'KAAP.emulator-test';
let emulator: DkmsEmulator;
let privateKey: KeyObject;
let keyId: string;

before(async () => {
  emulator = await DkmsEmulator.start({ instanceId: INSTANCE_ID });
  const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
  privateKey = pair.privateKey;
  emulator.addClientKey(CLIENT_KEY_ID, pair.publicKey.export({ type: 'spki', format: 'pem' }) as string);
  keyId = emulator.addKey();
});

after(async () => {
  await emulator.close();
});

interface RawAnswer {
  status: number;
  body: Buffer;
}

function post(headers: Record<string, string>, body: Buffer): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const [host, port] = emulator.connectTo.split(':');
    const request = https.request(
      {
        host,
        port: Number(port),
        method: 'POST',
        path: '/',
        headers,
        ca: emulator.caPem,
        servername: emulator.hostName,
        agent: false,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks) }));
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

function signed(
  apiName: DkmsApiName,
  body: Buffer,
  options: { now?: Date; key?: KeyObject; clientKeyId?: string } = {},
): Record<string, string> {
  return signedDkmsHeaders(
    apiName,
    body,
    { clientKeyId: options.clientKeyId ?? CLIENT_KEY_ID, privateKey: options.key ?? privateKey },
    { host: emulator.hostName, userAgent: 'test/1', ...(options.now ? { now: options.now } : {}) },
  );
}

function encryptBody(): Buffer {
  return encodeDkms('EncryptRequest', { KeyId: keyId, Plaintext: Buffer.alloc(32, 9), Algorithm: 'AES_GCM' });
}

async function assertRefused(answer: RawAnswer, status: number, errorCode: string): Promise<void> {
  const error = decodeDkms('Error', answer.body);
  assert.equal(answer.status, status, `${error.ErrorCode}: ${error.ErrorMessage}`);
  assert.equal(error.ErrorCode, errorCode);
  assert.equal(error.StatusCode, status);
  assert.match(error.RequestId, /^[0-9a-f-]{36}$/);
}

test('a correctly signed request is served', async () => {
  const body = encryptBody();
  const answer = await post(signed('Encrypt', body), body);
  assert.equal(answer.status, 200);
  const response = decodeDkms('EncryptResponse', answer.body);
  assert.equal(response.KeyId, keyId);
  assert.equal(response.Iv.length, 12);
  assert.equal(response.CiphertextBlob.length, 32 + 16);
});

test('a signature by another key is 401 InvalidSignature', async () => {
  const body = encryptBody();
  const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  await assertRefused(await post(signed('Encrypt', body, { key: other }), body), 401, 'InvalidSignature');
});

test('a signed x-kms header changed afterwards is 401 InvalidSignature', async () => {
  const body = encodeDkms('GetSecretValueRequest', { SecretName: 'x' });
  const headers = { ...signed('Decrypt', body), 'x-kms-apiname': 'GetSecretValue' };
  await assertRefused(await post(headers, body), 401, 'InvalidSignature');
});

test('a body that does not match Content-Sha256 is refused', async () => {
  const body = encryptBody();
  const headers = signed('Encrypt', body);
  const altered = Buffer.from(body);
  altered[altered.length - 1] = (altered[altered.length - 1] ?? 0) ^ 1;
  await assertRefused(await post(headers, altered), 400, 'InvalidParam');
  const lowerCase = { ...headers, 'Content-Sha256': (headers['Content-Sha256'] ?? '').toLowerCase() };
  await assertRefused(await post(lowerCase, body), 400, 'InvalidParam');
});

test('a date more than 15 minutes off is RequestTimeTooSkewed; a malformed date is InvalidParam', async () => {
  const body = encryptBody();
  const old = new Date(Date.now() - 20 * 60 * 1000);
  await assertRefused(await post(signed('Encrypt', body, { now: old }), body), 400, 'RequestTimeTooSkewed');
  const headers = { ...signed('Encrypt', body), date: new Date().toISOString() };
  await assertRefused(await post(headers, body), 400, 'InvalidParam');
});

test('wrong API version, signature method or API name are refused', async () => {
  const body = encryptBody();
  await assertRefused(
    await post({ ...signed('Encrypt', body), 'x-kms-apiversion': 'dkms-gcs-0.1' }, body),
    400,
    'InvalidApiVersion',
  );
  await assertRefused(
    await post({ ...signed('Encrypt', body), 'x-kms-signaturemethod': 'HMAC-SHA1' }, body),
    400,
    'InvalidParam',
  );
  await assertRefused(
    await post({ ...signed('Encrypt', body), 'x-kms-apiname': 'ScheduleKeyDeletion' }, body),
    400,
    'InvalidApiName',
  );
});

test('an unknown client key id is 401; a missing one is 400 MissingParameter', async () => {
  const body = encryptBody();
  await assertRefused(
    await post(signed('Encrypt', body, { clientKeyId: 'KAAP.unknown' }), body),
    401,
    'InvalidAccessKeyId.NotFound',
  );
  const { 'x-kms-acccesskeyid': _dropped, ...withoutId } = signed('Encrypt', body);
  await assertRefused(await post(withoutId, body), 400, 'MissingParameter');
});

test('a wrong Host header is refused', async () => {
  const body = encryptBody();
  await assertRefused(
    await post({ ...signed('Encrypt', body), Host: 'kms.cn-beijing.aliyuncs.com' }, body),
    400,
    'InvalidParam',
  );
});

test('decrypt round-trips and a tampered blob is 400 InvalidParameter; unknown key is 404 Forbidden.KeyNotFound', async () => {
  const body = encryptBody();
  const sealed = decodeDkms('EncryptResponse', (await post(signed('Encrypt', body), body)).body);
  const decryptBody = (blob: Buffer, id = keyId) =>
    encodeDkms('DecryptRequest', { CiphertextBlob: blob, KeyId: id, Algorithm: 'AES_GCM', Iv: sealed.Iv });

  const ok = decryptBody(sealed.CiphertextBlob);
  const answer = await post(signed('Decrypt', ok), ok);
  assert.equal(answer.status, 200);
  assert.deepEqual(decodeDkms('DecryptResponse', answer.body).Plaintext, Buffer.alloc(32, 9));

  const tamperedBlob = Buffer.from(sealed.CiphertextBlob);
  tamperedBlob[0] = (tamperedBlob[0] ?? 0) ^ 1;
  const tampered = decryptBody(tamperedBlob);
  await assertRefused(await post(signed('Decrypt', tampered), tampered), 400, 'InvalidParameter');

  const unknown = decryptBody(sealed.CiphertextBlob, 'key-unknown');
  await assertRefused(await post(signed('Decrypt', unknown), unknown), 404, 'Forbidden.KeyNotFound');
});

test('a client key policy limits the keys it may use (403 Forbidden.NoPermission)', async () => {
  const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
  emulator.addClientKey('KAAP.limited', pair.publicKey.export({ type: 'spki', format: 'pem' }) as string, {
    allowedKeyIds: ['key-other'],
  });
  const body = encryptBody();
  await assertRefused(
    await post(signed('Encrypt', body, { clientKeyId: 'KAAP.limited', key: pair.privateKey }), body),
    403,
    'Forbidden.NoPermission',
  );
});

test('TLS connections and requests are counted; a one-shot client opens one connection per request', async () => {
  const before = { ...emulator.stats, requests: { ...emulator.stats.requests } };
  const body = encryptBody();
  await post(signed('Encrypt', body), body);
  await post(signed('Encrypt', body), body);
  assert.equal(emulator.stats.tlsConnections - before.tlsConnections, 2);
  assert.equal((emulator.stats.requests['Encrypt'] ?? 0) - (before.requests['Encrypt'] ?? 0), 2);
});
