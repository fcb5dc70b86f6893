import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classifyNetworkError, isRetryableStatus, isTlsFailureCode } from '../../../src/net/errors';

test('only 429 and 5xx answers are retried', () => {
  assert.deepEqual([400, 401, 403, 404, 409, 429, 500, 503, 504].map(isRetryableStatus), [
    false,
    false,
    false,
    false,
    false,
    true,
    true,
    true,
    true,
  ]);
});

test('network errors: certificate and handshake problems are TLS failures (final)', () => {
  const error = (code: string) => Object.assign(new Error('x'), { code });
  for (const code of [
    'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    'SELF_SIGNED_CERT_IN_CHAIN',
    'ERR_TLS_CERT_ALTNAME_INVALID',
    'ERR_SSL_WRONG_VERSION_NUMBER',
    'CERT_HAS_EXPIRED',
    'EPROTO',
  ]) {
    assert.equal(classifyNetworkError(error(code)), 'tls', code);
    assert.equal(isTlsFailureCode(code), true, code);
  }
});

test('network errors: the one retryable set (down, reset, unreachable, name lookup) for every remote', () => {
  const error = (code: string, message = 'x') => Object.assign(new Error(message), { code });
  for (const code of [
    'ECONNRESET',
    'ECONNREFUSED',
    'ECONNABORTED',
    'EPIPE',
    'ETIMEDOUT',
    'EHOSTUNREACH',
    'ENETUNREACH',
    'ENETDOWN',
    'EAI_AGAIN',
    'ENOTFOUND',
    'ERR_STREAM_PREMATURE_CLOSE',
  ])
    assert.equal(classifyNetworkError(error(code)), 'retryable', code);
  assert.equal(classifyNetworkError(error('', 'socket hang up')), 'retryable');
  assert.equal(classifyNetworkError(error('ERR_SOMETHING')), 'other');
  assert.equal(classifyNetworkError({}), 'other');
});
