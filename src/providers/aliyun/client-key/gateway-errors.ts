import type { ErrorCode } from '../../../errors';
import { isRetryableStatus } from '../../../net/errors';
import type { ErrorMessage } from './dkms-messages';
import { printableUntrusted } from '../../../lib/untrusted';

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
  if (message) text += `: ${message}`;
  return text;
}

export function refusalFromErrorBody(httpStatus: number, decoded: ErrorMessage | undefined): GatewayRefusal {
  return {
    httpStatus,
    errorCode: printableUntrusted(decoded?.ErrorCode),
    errorMessage: printableUntrusted(decoded?.ErrorMessage),
    requestId: printableUntrusted(decoded?.RequestId),
  };
}
