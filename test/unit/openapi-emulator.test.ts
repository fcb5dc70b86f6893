import assert from 'node:assert/strict';
import { createHmac, randomUUID } from 'node:crypto';
import { request } from 'node:https';
import { after, before, test } from 'node:test';
import { OpenApiEmulator, rpcStringToSign } from '../../src/emulators/aliyun/openapi';

const KEY = { accessKeyId: 'STS.raw', accessKeySecret: 'raw-secret', securityToken: 'CAISraw' };
let emulator: OpenApiEmulator;

before(async () => {
  emulator = await OpenApiEmulator.start({ credentials: [KEY] });
  emulator.putSecret('raw', [{ versionId: 'v1', data: 'raw value' }]);
});

after(() => emulator.close());

test('the string to sign and signature match the documented RPC example', () => {
  const params = {
    Timestamp: '2016-02-23T12:46:24Z',
    Format: 'XML',
    AccessKeyId: 'testid',
    Action: 'DescribeRegions',
    SignatureMethod: 'HMAC-SHA1',
    SignatureNonce: '3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf',
    Version: '2014-05-26',
    SignatureVersion: '1.0',
  };
  const stringToSign = rpcStringToSign('GET', params);
  assert.equal(
    stringToSign,
    'GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1' +
      '%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0' +
      '%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26',
  );
  assert.equal(
    createHmac('sha1', 'testsecret&').update(stringToSign).digest('base64'),
    'OLeaidS1JvxuMvnyHOwuJ+uX5qY=',
  );
});

function signedQuery(
  overrides: Record<string, string | undefined> = {},
  secret = KEY.accessKeySecret,
): string {
  const params: Record<string, string> = {};
  const all: Record<string, string | undefined> = {
    Action: 'GetSecretValue',
    Version: '2016-01-20',
    Format: 'JSON',
    AccessKeyId: KEY.accessKeyId,
    SecurityToken: KEY.securityToken,
    SignatureMethod: 'HMAC-SHA1',
    SignatureVersion: '1.0',
    SignatureNonce: randomUUID(),
    Timestamp: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
    SecretName: 'raw',
    ...overrides,
  };
  for (const [key, value] of Object.entries(all)) if (value !== undefined) params[key] = value;
  params['Signature'] = createHmac('sha1', `${secret}&`)
    .update(rpcStringToSign('POST', params))
    .digest('base64');
  return new URLSearchParams(params).toString();
}

function post(query: string): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: emulator.port, path: `/?${query}`, method: 'POST', ca: emulator.caPem },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

test('a correctly signed request is answered; replaying it is refused (nonce reuse)', async () => {
  const query = signedQuery();
  const first = await post(query);
  assert.equal(first.status, 200);
  assert.equal(first.body['SecretData'], 'raw value');
  const replay = await post(query);
  assert.equal(replay.status, 400);
  assert.equal(replay.body['Code'], 'SignatureNonceUsed');
  assert.match(String(replay.body['RequestId']), /^[0-9A-F-]{36}$/);
});

test('skewed timestamps, wrong secrets, missing tokens and unknown keys are refused', async () => {
  const cases: Array<[string, number, string]> = [
    [signedQuery({ Timestamp: '2001-01-01T00:00:00Z' }), 400, 'InvalidTimeStamp.Expired'],
    [signedQuery({ Timestamp: 'yesterday' }), 400, 'InvalidTimeStamp.Format'],
    [signedQuery({}, 'wrong-secret'), 400, 'SignatureDoesNotMatch'],
    [signedQuery({ SecurityToken: undefined }), 400, 'InvalidSecurityToken.MissingParameter'],
    [signedQuery({ SecurityToken: 'CAISother' }), 400, 'InvalidSecurityToken.MismatchWithAccessKey'],
    [signedQuery({ AccessKeyId: 'STS.unknown' }), 404, 'InvalidAccessKeyId.NotFound'],
    [signedQuery({ SignatureNonce: undefined }), 400, 'MissingSignatureNonce'],
    [signedQuery({ SecretName: 'absent' }), 404, 'Forbidden.ResourceNotFound'],
  ];
  for (const [query, status, code] of cases) {
    const answer = await post(query);
    assert.equal(answer.status, status, code);
    assert.equal(answer.body['Code'], code);
  }
  // A parameter changed after signing.
  const tampered = signedQuery().replace('SecretName=raw', 'SecretName=other');
  assert.equal((await post(tampered)).body['Code'], 'SignatureDoesNotMatch');
});
