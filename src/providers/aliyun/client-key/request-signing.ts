import { createHash, sign, type KeyObject } from 'node:crypto';

/** Wire constants of the gateway API. */
export const DKMS_API_VERSION = 'dkms-gcs-0.2';
export const DKMS_SIGNATURE_METHOD = 'RSA_PKCS1_SHA_256';
export const DKMS_CONTENT_TYPE = 'application/x-protobuf';

export type DkmsApiName = 'Encrypt' | 'Decrypt' | 'GetSecretValue';

export interface SigningIdentity {
  /** Sent as `x-kms-acccesskeyid`. */
  readonly clientKeyId: string;
  readonly privateKey: KeyObject;
}

/** RFC 1123 date as the gateway wants it: `Sat, 28 Nov 2026 12:00:00 GMT`. */
export function rfc1123Date(now: Date): string {
  return now.toUTCString();
}

/**
 * The headers of one gateway request, signed. The string to sign is
 * `POST\n<Content-Sha256>\n<content type>\n<date>\n<x-kms-* headers, sorted, name:value\n>/`,
 * signed with RSASSA-PKCS1-v1_5 / SHA-256 by the client key.
 */
export function signedDkmsHeaders(
  apiName: DkmsApiName,
  body: Uint8Array,
  identity: SigningIdentity,
  options: { host: string; userAgent: string; now?: Date },
): Record<string, string> {
  const date = rfc1123Date(options.now ?? new Date());
  const contentSha256 = createHash('sha256').update(body).digest('hex').toUpperCase();
  const kmsHeaders: Record<string, string> = {
    'x-kms-apiversion': DKMS_API_VERSION,
    'x-kms-apiname': apiName,
    'x-kms-signaturemethod': DKMS_SIGNATURE_METHOD,
    // Three c's: that is the gateway's header name.
    'x-kms-acccesskeyid': identity.clientKeyId,
  };
  const stringToSign = dkmsStringToSign(contentSha256, date, kmsHeaders);
  const signature = sign('sha256', Buffer.from(stringToSign, 'utf8'), identity.privateKey).toString('base64');
  return {
    Accept: DKMS_CONTENT_TYPE,
    Host: options.host,
    date,
    'user-agent': options.userAgent,
    ...kmsHeaders,
    'Content-Type': DKMS_CONTENT_TYPE,
    'Content-Length': String(body.byteLength),
    'Content-Sha256': contentSha256,
    Authorization: `Bearer ${signature}`,
  };
}

export function dkmsStringToSign(
  contentSha256: string,
  date: string,
  headers: Record<string, string>,
): string {
  const canonical = Object.keys(headers)
    .map((name) => [name.toLowerCase(), headers[name] ?? ''] as const)
    .filter(([name]) => name.startsWith('x-kms-'))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, value]) => `${name}:${value.trim()}\n`)
    .join('');
  return `POST\n${contentSha256}\n${DKMS_CONTENT_TYPE}\n${date}\n${canonical}/`;
}
