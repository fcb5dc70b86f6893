/** How a failed connection or exchange is treated by every remote's client. */
export type NetworkFailureKind = 'tls' | 'retryable' | 'other';

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

/** Connection failures worth another attempt: the peer is down, busy or unreachable for now. */
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

/** True for a Node/OpenSSL code that means the TLS handshake or the certificate failed. */
export function isTlsFailureCode(code: string): boolean {
  return (
    CERTIFICATE_VERIFY_CODES.has(code) ||
    code === 'EPROTO' ||
    code.startsWith('ERR_SSL_') ||
    code.startsWith('ERR_TLS_') ||
    code.includes('CERT')
  );
}

/** The one classification of network errors: TLS (final), retryable, or other (final). */
export function classifyNetworkError(error: {
  readonly code?: string;
  readonly message?: string;
}): NetworkFailureKind {
  const code = error.code ?? '';
  if (isTlsFailureCode(code)) return 'tls';
  if (RETRYABLE_NETWORK_CODES.has(code) || /socket hang up/i.test(error.message ?? '')) return 'retryable';
  return 'other';
}

/** True for HTTP answers worth another attempt: the server is busy or failing, not refusing. */
export function isRetryableStatus(httpStatus: number): boolean {
  return httpStatus === 429 || (httpStatus >= 500 && httpStatus <= 599);
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
