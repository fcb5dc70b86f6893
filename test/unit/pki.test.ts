import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { test } from 'node:test';
import { createTestCa } from '../../src/emulators/pki';

test('test CA issues a server certificate that chains to it and names the host', () => {
  const ca = createTestCa();
  const server = ca.issueServerCert(['kst-test.cryptoservice.kms.aliyuncs.com'], {
    ipAddresses: ['127.0.0.1'],
  });
  const leaf = new X509Certificate(server.certPem);
  const root = new X509Certificate(ca.certPem);
  assert.equal(leaf.verify(root.publicKey), true);
  assert.equal(
    leaf.checkHost('kst-test.cryptoservice.kms.aliyuncs.com'),
    'kst-test.cryptoservice.kms.aliyuncs.com',
  );
  assert.equal(leaf.checkHost('other.example'), undefined);
  assert.equal(leaf.checkIP('127.0.0.1'), '127.0.0.1');
});
