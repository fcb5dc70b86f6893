import { createHmac, timingSafeEqual } from 'node:crypto';

/** What the KMS OpenAPI emulator checks of a request before answering it, as the real service does. */

export interface EmulatorCredential {
  readonly accessKeyId: string;
  readonly accessKeySecret: string;
  /** Required on every request signed with this key when set (STS credentials). */
  readonly securityToken?: string;
  /** ms since epoch; later requests get InvalidSecurityToken.Expired. */
  readonly expiresAt?: number;
}

export interface ApiError {
  readonly status: number;
  readonly code: string;
  readonly message: string;
}

const API_VERSION = '2016-01-20';
const COMMON_PARAMETERS = [
  'Action',
  'Version',
  'Format',
  'AccessKeyId',
  'SignatureMethod',
  'SignatureVersion',
  'SignatureNonce',
  'Timestamp',
  'Signature',
] as const;

export class RpcAuthenticator {
  private readonly usedNonces = new Map<string, number>();

  constructor(
    private readonly credentials: ReadonlyMap<string, EmulatorCredential>,
    private readonly maxClockSkewMs: number,
    private readonly now: () => number,
  ) {}

  /**
   * Common parameters, version, HMAC-SHA1 signature 1.0 over the known key's secret, the STS
   * token of an STS key (and its expiry), the timestamp's skew and the nonce's first use; an
   * ApiError as the service would answer otherwise.
   */
  authenticate(method: string, params: Record<string, string>): void {
    this.checkParameters(params);
    const credential = this.credentials.get(params['AccessKeyId'] ?? '');
    if (credential === undefined) {
      throw apiError(404, 'InvalidAccessKeyId.NotFound', 'Specified access key is not found.');
    }
    this.checkSignature(method, params, credential);
    this.checkSecurityToken(params, credential);
    this.checkNonce(params['SignatureNonce'] ?? '');
  }

  private checkParameters(params: Record<string, string>): void {
    for (const name of COMMON_PARAMETERS) {
      if (params[name] === undefined || params[name] === '') {
        throw apiError(400, `Missing${name}`, `${name} is mandatory for this action.`);
      }
    }
    if (params['Version'] !== API_VERSION) {
      throw apiError(400, 'InvalidVersion', 'Specified parameter Version is not valid.');
    }
    if (params['SignatureMethod'] !== 'HMAC-SHA1' || params['SignatureVersion'] !== '1.0') {
      throw apiError(
        400,
        'InvalidSignatureMethod',
        'Specified signature method or version is not supported.',
      );
    }
    this.checkTimestamp(params['Timestamp'] ?? '');
  }

  private checkSignature(
    method: string,
    params: Record<string, string>,
    credential: EmulatorCredential,
  ): void {
    const stringToSign = rpcStringToSign(method, params);
    const expected = createHmac('sha1', `${credential.accessKeySecret}&`).update(stringToSign).digest();
    const given = Buffer.from(params['Signature'] ?? '', 'base64');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      // The real service echoes its string to sign; clients must not pass this on verbatim.
      throw apiError(
        400,
        'SignatureDoesNotMatch',
        `Specified signature is not matched with our calculation. server string to sign is:${stringToSign}`,
      );
    }
  }

  private checkSecurityToken(params: Record<string, string>, credential: EmulatorCredential): void {
    if (credential.securityToken === undefined) return;
    const token = params['SecurityToken'];
    if (token === undefined || token === '') {
      throw apiError(
        400,
        'InvalidSecurityToken.MissingParameter',
        'SecurityToken is mandatory for STS keys.',
      );
    }
    if (token !== credential.securityToken) {
      throw apiError(400, 'InvalidSecurityToken.MismatchWithAccessKey', 'The security token does not match.');
    }
    if (credential.expiresAt !== undefined && this.now() >= credential.expiresAt) {
      throw apiError(400, 'InvalidSecurityToken.Expired', 'Specified SecurityToken is expired.');
    }
  }

  private checkTimestamp(timestamp: string): void {
    if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/.test(timestamp)) {
      throw apiError(
        400,
        'InvalidTimeStamp.Format',
        'Specified time stamp or date value is not well formatted.',
      );
    }
    if (Math.abs(this.now() - Date.parse(timestamp)) > this.maxClockSkewMs) {
      throw apiError(400, 'InvalidTimeStamp.Expired', 'Specified time stamp or date value is expired.');
    }
  }

  private checkNonce(nonce: string): void {
    const now = this.now();
    for (const [seen, expiresAt] of this.usedNonces) if (expiresAt < now) this.usedNonces.delete(seen);
    if (this.usedNonces.has(nonce)) {
      throw apiError(400, 'SignatureNonceUsed', 'Specified signature nonce was used already.');
    }
    this.usedNonces.set(nonce, now + 2 * this.maxClockSkewMs);
  }
}

/** RFC 3986 percent-encoding as the RPC signature wants it (unreserved A-Za-z0-9-_.~ kept). */
export function percentEncode(value: string): string {
  return encodeURIComponent(value).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** `METHOD&%2F&enc(sorted k=v pairs)`, every parameter but Signature. */
export function rpcStringToSign(method: string, params: Readonly<Record<string, string>>): string {
  const canonical = Object.keys(params)
    .filter((key) => key !== 'Signature')
    .sort()
    .map((key) => `${percentEncode(key)}=${percentEncode(params[key] ?? '')}`)
    .join('&');
  return `${method.toUpperCase()}&${percentEncode('/')}&${percentEncode(canonical)}`;
}

export function apiError(status: number, code: string, message: string): ApiError & Error {
  return Object.assign(new Error(message), { status, code });
}

export function isApiError(value: unknown): value is ApiError {
  return value instanceof Error && typeof (value as Partial<ApiError>).code === 'string';
}
