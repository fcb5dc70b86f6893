import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, verify } from 'node:crypto';
import { test } from 'node:test';
import { privateScalarOfJwk, rfc6979Nonce, signEs256Deterministic } from '../../support/deterministic-es256';
import { upstreamJwk } from '../../support/sealed-fixtures';
import { createHash } from 'node:crypto';

// RFC 6979 appendix A.2.5: P-256 with SHA-256, message "sample".
const RFC_KEY = 0xc9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721n;
const RFC_K = 0xa6e3c57dd01abe90086538398355dd4c3b17aa873382b0f24d6129493d8aad60n;
const RFC_R = 'efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716';
const RFC_S = 'f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8';

test('RFC 6979 A.2.5 vector: nonce and signature of "sample"', () => {
  const message = Buffer.from('sample');
  assert.equal(rfc6979Nonce(RFC_KEY, createHash('sha256').update(message).digest()), RFC_K);
  const signature = signEs256Deterministic(message, RFC_KEY);
  assert.equal(signature.toString('hex'), RFC_R + RFC_S);
});

test('signatures with the upstream test key verify with node:crypto and repeat exactly', () => {
  const jwk = upstreamJwk('test-key.json');
  const publicKey = createPublicKey(createPrivateKey({ key: jwk, format: 'jwk' }));
  for (const text of ['', 'a', 'eyJhbGciOiJFUzI1NiJ9.e30', 'x'.repeat(5000)]) {
    const message = Buffer.from(text);
    const signature = signEs256Deterministic(message, privateScalarOfJwk(jwk));
    assert.ok(verify('sha256', message, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature));
    assert.deepEqual(signEs256Deterministic(message, privateScalarOfJwk(jwk)), signature);
  }
});
