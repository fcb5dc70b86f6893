import assert from 'node:assert/strict';
import { createPublicKey, randomBytes, sign, verify } from 'node:crypto';
import { test } from 'node:test';
import { openPkcs12, Pkcs12Error } from '../../../../../src/providers/aliyun/client-key/pkcs12';
import { readVectorClientKey } from '../../../../support/aliyun-credentials';
import { hasOpenssl, opensslPkcs12 } from '../../../../../src/emulators/aliyun/client-key-files';
import { createTestCa } from '../../../../../src/emulators/pki';

function assertSignsForCertificate(material: ReturnType<typeof openPkcs12>, certificatePem: string): void {
  assert.equal(material.privateKey.type, 'private');
  assert.equal(material.privateKey.asymmetricKeyType, 'rsa');
  const message = Buffer.from('POST\nABC\napplication/x-protobuf\n');
  const signature = sign('sha256', message, material.privateKey);
  assert.equal(verify('sha256', message, createPublicKey(certificatePem), signature), true);
}

test('the Alibaba-issued vector (RC2-40 / 3DES / SHA-1 MAC) opens and its key signs for its certificate', () => {
  const vector = readVectorClientKey();
  const material = openPkcs12(vector.pkcs12, vector.password);
  assert.ok(material.certificatePem?.includes('BEGIN CERTIFICATE'));
  assertSignsForCertificate(material, vector.certificatePem);
});

test('a wrong password is reported as such', () => {
  const vector = readVectorClientKey();
  assert.throws(
    () => openPkcs12(vector.pkcs12, 'not-the-password'),
    (error: unknown) => error instanceof Pkcs12Error && error.reason === 'wrong-password',
  );
});

test('bytes that are not PKCS#12 are reported as such', () => {
  for (const garbage of [randomBytes(64), Buffer.from('30030201', 'hex')]) {
    assert.throws(
      () => openPkcs12(garbage, 'pw'),
      (error: unknown) => error instanceof Pkcs12Error && error.reason === 'not-pkcs12',
    );
  }
});

test('a PKCS#12 made by openssl pkcs12 -export with OpenSSL 3 defaults (PBES2, AES-256, SHA-256 MAC) opens', (t) => {
  if (!hasOpenssl()) {
    t.skip('no openssl binary on PATH');
    return;
  }
  const ca = createTestCa('client key issuer');
  const issued = ca.issueServerCert(['client.example']);
  const password = randomBytes(12).toString('hex');
  const p12 = opensslPkcs12(issued.keyPem, issued.certPem, password);
  const material = openPkcs12(p12, password);
  assertSignsForCertificate(material, issued.certPem);
  assert.throws(
    () => openPkcs12(p12, `${password}x`),
    (error: unknown) => error instanceof Pkcs12Error && error.reason === 'wrong-password',
  );
});
