import assert from 'node:assert/strict';
import { Agent } from 'node:https';
import { test } from 'node:test';
import { CdhError } from '../../../../../src/errors';
import { OpenApiKmsClient, type RetryPolicy } from '../../../../../src/providers/aliyun/openapi/kms-client';
import {
  describeSdkFailure,
  kmsFailureError,
  type KmsFailure,
} from '../../../../../src/providers/aliyun/openapi/kms-errors';
import type { OpenApiSdk, SdkSecretAnswer } from '../../../../../src/providers/aliyun/openapi/kms-sdk';

process.env['CDH_LOOPBACK_ONLY'] = '1';

const CREDENTIALS = { accessKeyId: 'STS.id', accessKeySecret: 'sk-value', securityToken: 'CAIStoken' };
const CONTEXT = {
  label: 'aliyun (client_type sts_token)',
  operation: 'GetSecretValue of secret "s"',
  endpoint: 'kms.cn-beijing.aliyuncs.com',
  timeoutMs: 1000,
  attempts: 1,
  secrets: [CREDENTIALS.accessKeySecret, CREDENTIALS.securityToken],
};

/** What rpc-client throws for a JSON error body. */
function sdkResponseError(body: Record<string, string>): Error {
  return Object.assign(new Error(`${body['Code']}Error: whatever`), {
    code: `${body['Code']}Error`,
    data: body,
  });
}

test('KMS error codes map to the catalogue', () => {
  const cases: Array<[KmsFailure, string]> = [
    [{ kind: 'answer', httpStatus: 404, code: 'Forbidden.ResourceNotFound' }, 'KMS_NOT_FOUND'],
    [{ kind: 'answer', httpStatus: 404, code: 'Forbidden.KeyNotFound' }, 'KMS_NOT_FOUND'],
    [{ kind: 'answer', httpStatus: 404, code: 'InvalidAccessKeyId.NotFound' }, 'KMS_ACCESS_DENIED'],
    [{ kind: 'answer', httpStatus: 400, code: 'InvalidAccessKeyId.Inactive' }, 'KMS_ACCESS_DENIED'],
    [{ kind: 'answer', httpStatus: 400, code: 'SignatureDoesNotMatch' }, 'KMS_ACCESS_DENIED'],
    [{ kind: 'answer', httpStatus: 400, code: 'InvalidSecurityToken.Expired' }, 'KMS_ACCESS_DENIED'],
    [{ kind: 'answer', httpStatus: 403, code: 'Forbidden.NoPermission' }, 'KMS_ACCESS_DENIED'],
    [{ kind: 'answer', httpStatus: 403, code: 'Forbidden.RAM' }, 'KMS_ACCESS_DENIED'],
    [{ kind: 'answer', httpStatus: 429, code: 'Throttling' }, 'KMS_UNAVAILABLE'],
    [{ kind: 'answer', httpStatus: 503, code: 'ServiceUnavailable' }, 'KMS_UNAVAILABLE'],
    [{ kind: 'answer', httpStatus: 502 }, 'KMS_UNAVAILABLE'],
    [{ kind: 'answer', httpStatus: 400, code: 'InvalidParameter' }, 'KMS_REQUEST_REJECTED'],
    [{ kind: 'answer', httpStatus: 400, code: 'Rejected.Unexpected' }, 'KMS_FAILED'],
    [{ kind: 'transport', reason: 'ECONNREFUSED', timeout: false, tls: false }, 'KMS_UNAVAILABLE'],
    [{ kind: 'transport', reason: 'RequestTimeoutError', timeout: true, tls: false }, 'KMS_UNAVAILABLE'],
    [
      { kind: 'transport', reason: 'ERR_TLS_CERT_ALTNAME_INVALID', timeout: false, tls: true },
      'KMS_TLS_FAILED',
    ],
  ];
  for (const [failure, code] of cases) {
    assert.equal(kmsFailureError(failure, CONTEXT).code, code, JSON.stringify(failure));
  }
});

test('messages carry code, HTTP status and RequestId, but never credentials or the signed string', () => {
  const error = kmsFailureError(
    {
      kind: 'answer',
      httpStatus: 400,
      code: 'SignatureDoesNotMatch',
      requestId: 'REQ-1',
      message: 'server string to sign is:POST&%2F&SecurityToken%3DCAIStoken',
    },
    CONTEXT,
  );
  assert.match(error.message, /SignatureDoesNotMatch, HTTP 400, RequestId REQ-1/);
  assert.ok(!error.message.includes('CAIStoken'));
  const notFound = kmsFailureError(
    { kind: 'answer', httpStatus: 404, code: 'Forbidden.ResourceNotFound', message: 'echo CAIStoken' },
    CONTEXT,
  );
  assert.ok(!notFound.message.includes('CAIStoken'));
  const plain = kmsFailureError(
    {
      kind: 'answer',
      httpStatus: 404,
      code: 'Forbidden.ResourceNotFound',
      message: 'The resource not exists.',
    },
    CONTEXT,
  );
  assert.match(plain.message, /"The resource not exists\."/);
});

test('SDK errors are described from their JSON body and the transport status, nothing else kept', () => {
  assert.deepEqual(
    describeSdkFailure(sdkResponseError({ Code: 'Throttling', RequestId: 'R', Message: 'slow down' }), 429),
    { kind: 'answer', httpStatus: 429, code: 'Throttling', requestId: 'R', message: 'slow down' },
  );
  assert.deepEqual(describeSdkFailure(new SyntaxError('Unexpected token <'), 502), {
    kind: 'answer',
    httpStatus: 502,
  });
  const refused = Object.assign(new Error('connect ECONNREFUSED POST https://h/?SecurityToken=x failed.'), {
    code: 'ECONNREFUSED',
  });
  assert.deepEqual(describeSdkFailure(refused, undefined), {
    kind: 'transport',
    reason: 'ECONNREFUSED',
    timeout: false,
    tls: false,
  });
  const timeout = Object.assign(new Error('ReadTimeout(10)'), { name: 'RequestTimeoutError' });
  assert.equal((describeSdkFailure(timeout, undefined) as { timeout: boolean }).timeout, true);
  const tls = Object.assign(new Error('self-signed'), { code: 'SELF_SIGNED_CERT_IN_CHAIN' });
  assert.equal((describeSdkFailure(tls, undefined) as { tls: boolean }).tls, true);
});

/** A stand-in for the SDK that answers from a script. */
function scriptedSdk(script: Array<SdkSecretAnswer | { fail: unknown; status?: number }>): {
  sdk: OpenApiSdk;
  calls: number;
} {
  const state = { sdk: undefined as unknown as OpenApiSdk, calls: 0 };
  state.sdk = {
    newClient: () => ({
      async getSecretValue(_request, scope) {
        const step = script[Math.min(state.calls, script.length - 1)];
        state.calls++;
        scope.dialled = true;
        if (step !== undefined && 'fail' in step) {
          if (step.status !== undefined) scope.httpStatus = step.status;
          throw step.fail;
        }
        return step as SdkSecretAnswer;
      },
    }),
  };
  return state;
}

function kmsClient(sdk: OpenApiSdk, retry: RetryPolicy = { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 2 }) {
  return new OpenApiKmsClient({
    label: 'aliyun (client_type sts_token)',
    endpoint: { host: '127.0.0.1', port: 1, authority: '127.0.0.1:1' },
    regionId: 'cn-beijing',
    timeoutMs: 1000,
    agent: new Agent(),
    retry,
    sdk,
  });
}

test('the client retries throttling up to maxAttempts, then reports KMS_UNAVAILABLE', async () => {
  const throttled = { fail: sdkResponseError({ Code: 'Throttling', RequestId: 'R' }), status: 429 };
  const scripted = scriptedSdk([throttled, throttled, { secretData: 'v', requestId: 'R2' }]);
  const value = await kmsClient(scripted.sdk).getSecretValue(
    CREDENTIALS,
    's',
    {},
    new AbortController().signal,
  );
  assert.equal(value.toString(), 'v');
  assert.equal(scripted.calls, 3);

  const always = scriptedSdk([throttled]);
  await assert.rejects(
    kmsClient(always.sdk).getSecretValue(CREDENTIALS, 's', {}, new AbortController().signal),
    { code: 'KMS_UNAVAILABLE', message: /Throttling, HTTP 429, RequestId R\) after 3 attempts/ },
  );
  assert.equal(always.calls, 3);
});

test('an answer without SecretData is KMS_FAILED', async () => {
  const scripted = scriptedSdk([{ secretData: undefined, requestId: 'R9' }]);
  await assert.rejects(
    kmsClient(scripted.sdk).getSecretValue(CREDENTIALS, 's', {}, new AbortController().signal),
    { code: 'KMS_FAILED', message: /no SecretData \(RequestId R9\)/ },
  );
});

test("an abort during the backoff ends the call at once with the caller's reason", async () => {
  const throttled = { fail: sdkResponseError({ Code: 'Throttling' }), status: 429 };
  const scripted = scriptedSdk([throttled]);
  const controller = new AbortController();
  const client = kmsClient(scripted.sdk, { maxAttempts: 5, baseDelayMs: 10_000, maxDelayMs: 10_000 });
  const started = Date.now();
  setTimeout(() => controller.abort(new CdhError('DEADLINE_EXCEEDED', 'deadline')), 30);
  await assert.rejects(client.getSecretValue(CREDENTIALS, 's', {}, controller.signal), {
    code: 'DEADLINE_EXCEEDED',
  });
  assert.ok(Date.now() - started < 2000);
  assert.equal(scripted.calls, 1);
});
