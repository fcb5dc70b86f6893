import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  describeRefusal,
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
