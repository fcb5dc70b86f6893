import assert from 'node:assert/strict';
import { createHash, createPublicKey, verify } from 'node:crypto';
import { test } from 'node:test';
import forge from 'node-forge';
import { openPkcs12 } from '../../../../../src/providers/aliyun/client-key/pkcs12';
import { signedDkmsHeaders } from '../../../../../src/providers/aliyun/client-key/request-signing';
import { readVectorClientKey } from '../../../../support/aliyun-credentials';

const vector = readVectorClientKey();
const material = openPkcs12(vector.pkcs12, vector.password);
const body = Buffer.from('0a0b6b65792d746573742d3031', 'hex');
const now = new Date(Date.UTC(2026, 10, 28, 12, 0, 0));

const headers = signedDkmsHeaders(
  'Decrypt',
  body,
  { clientKeyId: 'KAAP.vector-0001', privateKey: material.privateKey },
  { host: 'kst-abc.cryptoservice.kms.aliyuncs.com', userAgent: 'confidential-data-hub/0.1.0', now },
);

test('the request carries every documented header, x-kms-acccesskeyid spelled with three c', () => {
  const sha = createHash('sha256').update(body).digest('hex').toUpperCase();
  const { Authorization: authorization, ...rest } = headers;
  assert.deepEqual(rest, {
    Accept: 'application/x-protobuf',
    Host: 'kst-abc.cryptoservice.kms.aliyuncs.com',
    date: 'Sat, 28 Nov 2026 12:00:00 GMT',
    'user-agent': 'confidential-data-hub/0.1.0',
    'x-kms-apiversion': 'dkms-gcs-0.2',
    'x-kms-apiname': 'Decrypt',
    'x-kms-signaturemethod': 'RSA_PKCS1_SHA_256',
    'x-kms-acccesskeyid': 'KAAP.vector-0001',
    'Content-Type': 'application/x-protobuf',
    'Content-Length': String(body.length),
    'Content-Sha256': sha,
  });
  assert.match(sha, /^[0-9A-F]{64}$/);
  assert.match(authorization ?? '', /^Bearer [A-Za-z0-9+/]+={0,2}$/);
});

test('the signature is RSASSA-PKCS1-v1_5/SHA-256 over the documented string, as an independent RSA computes it', () => {
  const sha = createHash('sha256').update(body).digest('hex').toUpperCase();
  const expectedStringToSign =
    'POST\n' +
    `${sha}\n` +
    'application/x-protobuf\n' +
    'Sat, 28 Nov 2026 12:00:00 GMT\n' +
    'x-kms-acccesskeyid:KAAP.vector-0001\n' +
    'x-kms-apiname:Decrypt\n' +
    'x-kms-apiversion:dkms-gcs-0.2\n' +
    'x-kms-signaturemethod:RSA_PKCS1_SHA_256\n' +
    '/';
  const signature = Buffer.from((headers.Authorization ?? '').slice('Bearer '.length), 'base64');
  assert.equal(
    verify('sha256', Buffer.from(expectedStringToSign), createPublicKey(vector.certificatePem), signature),
    true,
  );

  // PKCS#1 v1.5 is deterministic: node-forge's own RSA must produce the same bytes.
  const p12 = forge.pkcs12.pkcs12FromAsn1(
    forge.asn1.fromDer(vector.pkcs12.toString('binary')),
    vector.password,
  );
  const oid = forge.pki.oids['pkcs8ShroudedKeyBag'] as string;
  const forgeKey = p12.getBags({ bagType: oid })[oid]?.[0]?.key as forge.pki.rsa.PrivateKey;
  const digest = forge.md.sha256.create();
  digest.update(expectedStringToSign, 'utf8');
  assert.equal(Buffer.from(forgeKey.sign(digest), 'binary').toString('base64'), signature.toString('base64'));
});
