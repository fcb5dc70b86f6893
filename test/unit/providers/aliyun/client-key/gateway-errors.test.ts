import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  classifyNetworkError,
  describeRefusal,
  isRetryableStatus,
  refusalErrorCode,
} from '../../../../../src/providers/aliyun/client-key/gateway-errors';

function refusal(httpStatus: number, errorCode = '') {
  return { httpStatus, errorCode, errorMessage: '', requestId: '' };
}

test('gateway refusals map to catalogue codes by HTTP status and ErrorCode', () => {
  const cases: Array<[number, string, string]> = [
    [400, 'InvalidParameter', 'KMS_REQUEST_REJECTED'],
    [400, 'RequestTimeTooSkewed', 'KMS_REQUEST_REJECTED'],
    [400, 'InvalidAccessKeyId.NotFound', 'KMS_ACCESS_DENIED'],
    [400, 'Forbidden.KeyNotFound', 'KMS_NOT_FOUND'],
    [401, 'InvalidSignature', 'KMS_ACCESS_DENIED'],
    [401, 'Rejected.Unauthorized', 'KMS_ACCESS_DENIED'],
    [403, 'Forbidden.NoPermission', 'KMS_ACCESS_DENIED'],
    [404, 'Forbidden.KeyNotFound', 'KMS_NOT_FOUND'],
    [404, 'Forbidden.ResourceNotFound', 'KMS_NOT_FOUND'],
    [404, '', 'KMS_NOT_FOUND'],
    [409, 'Rejected.Disabled', 'KMS_FAILED'],
    [429, 'Throttling', 'KMS_UNAVAILABLE'],
    [503, 'InternalFailure', 'KMS_UNAVAILABLE'],
  ];
  for (const [status, code, expected] of cases) {
    assert.equal(refusalErrorCode(refusal(status, code)), expected, `${status} ${code}`);
  }
});

test('only 429 and 5xx are retried', () => {
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

test('a refusal is described with status, ErrorCode, RequestId and message', () => {
  assert.equal(
    describeRefusal({
      httpStatus: 400,
      errorCode: 'InvalidParameter',
      requestId: 'r-1',
      errorMessage: 'bad',
    }),
    'HTTP 400 InvalidParameter (RequestId r-1): bad',
  );
  assert.equal(describeRefusal(refusal(502)), 'HTTP 502');
});

test('network errors: certificate problems are TLS failures, resets and refusals are retried', () => {
  const error = (code: string, message = 'x') => Object.assign(new Error(message), { code });
  assert.equal(classifyNetworkError(error('UNABLE_TO_VERIFY_LEAF_SIGNATURE')), 'tls');
  assert.equal(classifyNetworkError(error('SELF_SIGNED_CERT_IN_CHAIN')), 'tls');
  assert.equal(classifyNetworkError(error('ERR_TLS_CERT_ALTNAME_INVALID')), 'tls');
  assert.equal(classifyNetworkError(error('ERR_SSL_WRONG_VERSION_NUMBER')), 'tls');
  assert.equal(classifyNetworkError(error('ECONNRESET')), 'retryable');
  assert.equal(classifyNetworkError(error('ECONNREFUSED')), 'retryable');
  assert.equal(classifyNetworkError(error('', 'socket hang up')), 'retryable');
  assert.equal(classifyNetworkError(error('ERR_SOMETHING')), 'other');
});
