import type { ErrorCode } from '../../../errors';
import type { ErrorMessage } from './dkms-messages';

/** What the gateway said when it refused a request (any field may be empty). */
export interface GatewayRefusal {
  readonly httpStatus: number;
  readonly errorCode: string;
  readonly errorMessage: string;
  readonly requestId: string;
}

/** Codes that mean "who you are or how you signed is not accepted". */
const ACCESS_DENIED_CODE =
  /^(InvalidAccessKeyId|InvalidSignature|SignatureDoesNotMatch|IncompleteSignature|Rejected\.Unauthorized|Unauthorized|AccessDenied|Forbidden\.(NoPermission|AccessDenied|Unauthorized))/i;
const NOT_FOUND_CODE = /NotFound|NotExist/i;

/** True for answers worth another attempt: the gateway is busy or failing, not refusing. */
export function isRetryableStatus(httpStatus: number): boolean {
  return httpStatus === 429 || (httpStatus >= 500 && httpStatus <= 599);
}

/** Maps a refusal (non-2xx that was not retried, or retries ran out) to a catalogue code. */
export function refusalErrorCode(refusal: GatewayRefusal): ErrorCode {
  const { httpStatus, errorCode } = refusal;
  if (isRetryableStatus(httpStatus)) return 'KMS_UNAVAILABLE';
  // An unknown client key id is an authentication failure even when its code says NotFound.
  if (ACCESS_DENIED_CODE.test(errorCode) || httpStatus === 401 || httpStatus === 403)
    return 'KMS_ACCESS_DENIED';
  if (httpStatus === 404 || NOT_FOUND_CODE.test(errorCode)) return 'KMS_NOT_FOUND';
  if (httpStatus === 400) return 'KMS_REQUEST_REJECTED';
  return 'KMS_FAILED';
}

/** `HTTP 400 InvalidParameter (RequestId …): message` — the parts the gateway gave. */
export function describeRefusal(refusal: GatewayRefusal): string {
  const parts = [`HTTP ${refusal.httpStatus}`];
  if (refusal.errorCode) parts.push(refusal.errorCode);
  if (refusal.requestId) parts.push(`(RequestId ${refusal.requestId})`);
  let text = parts.join(' ');
  const message = refusal.errorMessage.trim();
  if (message) text += `: ${message.length > 200 ? `${message.slice(0, 200)}…` : message}`;
  return text;
}

export function refusalFromErrorBody(httpStatus: number, decoded: ErrorMessage | undefined): GatewayRefusal {
  return {
    httpStatus,
    errorCode: printable(decoded?.ErrorCode),
    errorMessage: printable(decoded?.ErrorMessage),
    requestId: printable(decoded?.RequestId),
  };
}

/** Gateway strings go into status messages: keep them short and free of control characters. */
function printable(value: string | undefined): string {
  // eslint-disable-next-line no-control-regex
  return (value ?? '').replace(/[\u0000-\u001f\u007f]/g, ' ').slice(0, 256);
}

/** OpenSSL certificate verification codes as Node reports them in `error.code`. */
const CERTIFICATE_VERIFY_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_CRL',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECRYPT_CRL_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CRL_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'CRL_NOT_YET_VALID',
  'CRL_HAS_EXPIRED',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** Connection failures worth another attempt. */
const RETRYABLE_NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ENOTFOUND',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

export type NetworkFailureKind = 'tls' | 'retryable' | 'other';

export function classifyNetworkError(error: NodeJS.ErrnoException): NetworkFailureKind {
  const code = error.code ?? '';
  if (CERTIFICATE_VERIFY_CODES.has(code) || code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) {
    return 'tls';
  }
  if (RETRYABLE_NETWORK_CODES.has(code) || /socket hang up/i.test(error.message)) return 'retryable';
  return 'other';
}

/** A human explanation of a TLS failure; `caFile` is the file the certificate must chain to. */
export function describeTlsFailure(error: NodeJS.ErrnoException, hostName: string, caFile: string): string {
  const code = error.code ?? 'unknown';
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID' || code === 'HOSTNAME_MISMATCH') {
    return `the server certificate is not valid for host name ${hostName} (${code})`;
  }
  if (CERTIFICATE_VERIFY_CODES.has(code)) {
    return `the server certificate could not be verified against ${caFile} (${code})`;
  }
  return `the TLS handshake failed (${code})`;
}
