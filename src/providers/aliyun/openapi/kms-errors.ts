import { CdhError, type ErrorCode } from '../../../errors';
import { classifyNetworkError, isRetryableStatus, isTlsFailureCode } from '../../../net/errors';
import { quoteUntrusted } from '../../../lib/untrusted';

/** The KMS answered with an HTTP error (JSON `Code`, `Message`, `RequestId`, or an unreadable body). */
export interface KmsAnswerFailure {
  readonly kind: 'answer';
  readonly httpStatus?: number;
  readonly code?: string;
  readonly requestId?: string;
  readonly message?: string;
}

/** No answer: connection refused/reset, timeout, TLS. */
export interface KmsTransportFailure {
  readonly kind: 'transport';
  /** Node's error code (`ECONNREFUSED`, `ERR_TLS_CERT_ALTNAME_INVALID`, …) or the error's name. */
  readonly reason: string;
  readonly timeout: boolean;
  readonly tls: boolean;
}

export type KmsFailure = KmsAnswerFailure | KmsTransportFailure;

/** A catalogued error that remembers the KMS error code (the ecs_ram_role client reacts to some). */
export class KmsCallError extends CdhError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly kmsCode: string | undefined,
  ) {
    super(code, message);
  }
}

const RETRYABLE_CODES = new Set([
  'ServiceUnavailable',
  'ServiceUnavailableTemporary',
  'InternalError',
  'InternalFailure',
  'UnknownError',
]);

const CREDENTIAL_CODES =
  /^(InvalidAccessKeyId|InvalidSecurityToken|SignatureDoesNotMatch|IncompleteSignature|InvalidTimeStamp|SignatureNonceUsed)/;

/**
 * Turns whatever the SDK threw into a failure description. `httpStatus` is what the transport
 * saw (the SDK itself only puts it into a message string). Never keeps the SDK's error object:
 * its message holds the full request URL, SecurityToken and signature included.
 */
export function describeSdkFailure(error: unknown, httpStatus: number | undefined): KmsFailure {
  const fields = (error ?? {}) as { name?: unknown; code?: unknown; data?: unknown };
  const body = fields.data as Record<string, unknown> | undefined;
  if (body !== null && typeof body === 'object' && typeof body['Code'] === 'string') {
    return {
      kind: 'answer',
      ...(httpStatus === undefined ? {} : { httpStatus }),
      code: body['Code'],
      ...(typeof body['RequestId'] === 'string' ? { requestId: body['RequestId'] } : {}),
      ...(typeof body['Message'] === 'string' ? { message: body['Message'] } : {}),
    };
  }
  if (httpStatus !== undefined) {
    // An answer arrived but its body was not the JSON error the SDK expects (a proxy's 502 page).
    return { kind: 'answer', httpStatus };
  }
  const code = typeof fields.code === 'string' ? fields.code : undefined;
  const name = typeof fields.name === 'string' ? fields.name : 'Error';
  const reason = code ?? name;
  return {
    kind: 'transport',
    reason,
    timeout: name.startsWith('RequestTimeout'),
    tls: code !== undefined && isTlsFailureCode(code),
  };
}

/** Throttling, 429, 5xx and transient connection failures are worth another attempt. */
export function isRetryable(failure: KmsFailure): boolean {
  if (failure.kind === 'transport')
    return !failure.timeout && classifyNetworkError({ code: failure.reason }) === 'retryable';
  if (isRetryableStatus(failure.httpStatus ?? 0)) return true;
  return (
    failure.code !== undefined && (failure.code.startsWith('Throttling') || RETRYABLE_CODES.has(failure.code))
  );
}

export interface FailureContext {
  /** e.g. `aliyun (client_type sts_token)` */
  readonly label: string;
  /** e.g. `GetSecretValue of secret "db-password"` */
  readonly operation: string;
  readonly endpoint: string;
  readonly timeoutMs: number;
  readonly attempts: number;
  /** Strings that must never appear in a message (AK, SK, token). */
  readonly secrets: readonly string[];
}

/** The catalogued error for a failure that will not be retried (any more). */
export function kmsFailureError(failure: KmsFailure, context: FailureContext): KmsCallError {
  const prefix = `${context.label}: ${context.operation}`;
  if (failure.kind === 'transport') return transportFailureError(failure, context, prefix);
  return answerFailureError(failure, context, prefix);
}

function transportFailureError(
  failure: KmsTransportFailure,
  context: FailureContext,
  prefix: string,
): KmsCallError {
  if (failure.tls) {
    return new KmsCallError(
      'KMS_TLS_FAILED',
      `${prefix}: TLS handshake with the KMS OpenAPI at ${context.endpoint} failed (${failure.reason}); ` +
        'is openapi_ca_file right?',
      undefined,
    );
  }
  const what = failure.timeout
    ? `no answer from the KMS OpenAPI at ${context.endpoint} within ${context.timeoutMs} ms`
    : `the KMS OpenAPI at ${context.endpoint} is unreachable (${failure.reason})`;
  return new KmsCallError('KMS_UNAVAILABLE', `${prefix}: ${what}${attemptsNote(context)}`, undefined);
}

/** An answer with an error: the KMS's code decides the catalogued error; the message names code, status and request id. */
function answerFailureError(
  failure: KmsAnswerFailure,
  context: FailureContext,
  prefix: string,
): KmsCallError {
  const code = failure.code;
  const status = failure.httpStatus;
  const details = [
    code ?? 'no error code',
    ...(status === undefined ? [] : [`HTTP ${status}`]),
    ...(failure.requestId === undefined ? [] : [`RequestId ${failure.requestId}`]),
  ].join(', ');
  const kmsMessage = safeKmsMessage(failure, context.secrets);
  const error = (catalogued: KmsCallError['code'], what: string, suffix: string): KmsCallError =>
    new KmsCallError(catalogued, `${prefix}: ${what} (${details})${suffix}`, code);

  if (code !== undefined && CREDENTIAL_CODES.test(code))
    return error('KMS_ACCESS_DENIED', 'the KMS refused the credentials', '');
  if (code !== undefined && (code === 'Forbidden.ResourceNotFound' || code.endsWith('NotFound')))
    return error('KMS_NOT_FOUND', 'the secret or secret version does not exist', kmsMessage);
  if ((code !== undefined && code.startsWith('Forbidden')) || status === 401 || status === 403)
    return error('KMS_ACCESS_DENIED', 'the KMS denied access', kmsMessage);
  if (isRetryable(failure))
    return error('KMS_UNAVAILABLE', 'the KMS is unavailable or throttling', attemptsNote(context));
  if (code !== undefined && /^(Invalid|Missing)/.test(code))
    return error('KMS_REQUEST_REJECTED', 'the KMS rejected the request', kmsMessage);
  return error('KMS_FAILED', 'the KMS answered with an error', kmsMessage);
}

function attemptsNote(context: FailureContext): string {
  return context.attempts > 1 ? ` after ${context.attempts} attempts` : '';
}

/** The KMS's own message, when it cannot leak anything (signature errors echo the signed string). */
function safeKmsMessage(failure: KmsAnswerFailure, secrets: readonly string[]): string {
  const message = failure.message;
  if (message === undefined || message === '') return '';
  if (/sign/i.test(message) || secrets.some((secret) => secret !== '' && message.includes(secret))) return '';
  const oneLine = message.replace(/\s+/g, ' ').trim();
  return `: ${quoteUntrusted(oneLine)}`;
}
