import { sign, verify, type KeyObject } from 'node:crypto';
import { CdhError } from '../errors';
import { decodeBase64Url, encodeBase64Url } from '../lib/base64';
import type { CallContext } from '../providers/types';
import { decodeUtf8, SEALED_PREFIX, type SealedParts } from './compact';
import { findDuplicateMemberName } from './json';
import { describeKid, type VerificationKeyResolver } from './signing-keys';

/** ES256 only: P-256, SHA-256, signature r‖s as 64 raw bytes (IEEE P1363). */
export const JWS_ALG = 'ES256';
const ES256_SIGNATURE_BYTES = 64;
/**
 * Longest encoded JWS header accepted (about 3 KiB decoded). An ES256 header is tens of
 * bytes; the header is parsed before the signature is checked, so its size is bounded first.
 */
export const MAX_JWS_HEADER_CHARS = 4096;

export interface JwsHeader {
  readonly alg: typeof JWS_ALG;
  readonly kid: string;
}

function signatureInvalid(why: string): CdhError {
  return new CdhError('SIGNATURE_INVALID', `sealed secret signature: ${why}`);
}

function describeAlg(alg: unknown): string {
  if (typeof alg !== 'string') return alg === undefined ? 'no alg' : `a non-string alg`;
  return `alg ${JSON.stringify(alg.length > 20 ? `${alg.slice(0, 20)}…` : alg)}`;
}

/** Decodes the JWS header: a JSON object with alg "ES256" and a string kid; other fields ignored. */
export function parseJwsHeader(encoded: string): JwsHeader {
  // Upstream's unsigned form: say so, rather than "the header is not base64url".
  if (encoded === 'fakejwsheader') {
    throw new CdhError(
      'SEALED_SECRET_MALFORMED',
      'the sealed secret is the unsigned form (sealed.fakejwsheader.<payload>.fakesignature), ' +
        'accepted only with verification skipped (skip_sealed_secret_verification)',
    );
  }
  if (encoded.length > MAX_JWS_HEADER_CHARS) {
    throw new CdhError(
      'SEALED_SECRET_MALFORMED',
      `the JWS header is ${encoded.length} characters long, more than the ${MAX_JWS_HEADER_CHARS} accepted`,
    );
  }
  const bytes = decodeBase64Url(encoded, 'the JWS header');
  const text = decodeUtf8(bytes, 'the JWS header');
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (cause) {
    throw new CdhError('SEALED_SECRET_MALFORMED', 'the JWS header is not JSON', { cause });
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    throw new CdhError('SEALED_SECRET_MALFORMED', 'the JWS header is not a JSON object');
  }
  // RFC 7515 section 4: duplicate names must be rejected or resolved as the last; rejected here.
  if (findDuplicateMemberName(text) !== undefined) {
    throw new CdhError('SEALED_SECRET_MALFORMED', 'the JWS header has a member name twice');
  }
  const fields = header as Record<string, unknown>;
  const { alg, kid } = fields;
  if (alg !== JWS_ALG) throw signatureInvalid(`${describeAlg(alg)} is refused; only ${JWS_ALG} is accepted`);
  // RFC 7515 section 4.1.11: critical extensions not understood must be refused; none are.
  if (Object.prototype.hasOwnProperty.call(fields, 'crit')) {
    throw signatureInvalid('the JWS header lists critical extensions (crit); none are supported');
  }
  if (typeof kid !== 'string') throw signatureInvalid('the JWS header has no string kid');
  return { alg, kid };
}

function signingInput(header: string, payload: string): Buffer {
  return Buffer.from(`${header}.${payload}`, 'utf8');
}

/**
 * Verifies the ES256 signature over the raw `<header>.<payload>` and returns the decoded
 * payload bytes. Fails with SIGNATURE_INVALID / SIGNING_KEY_UNAVAILABLE otherwise.
 */
export async function verifySealedParts(
  parts: SealedParts,
  keys: VerificationKeyResolver,
  ctx: CallContext,
): Promise<Buffer> {
  const header = parseJwsHeader(parts.header);
  const signature = decodeBase64Url(parts.signature, 'the JWS signature', 'SIGNATURE_INVALID');
  if (signature.length !== ES256_SIGNATURE_BYTES) {
    throw signatureInvalid(`an ES256 signature is ${ES256_SIGNATURE_BYTES} bytes, not ${signature.length}`);
  }
  const key = await keys.resolve(header.kid, ctx);
  const valid = verify(
    'sha256',
    signingInput(parts.header, parts.payload),
    { key, dsaEncoding: 'ieee-p1363' },
    signature,
  );
  if (!valid) throw signatureInvalid(`it does not verify with the key of kid ${describeKid(header.kid)}`);
  return decodeBase64Url(parts.payload, 'the JWS payload');
}

/** `sealed.<header>.<payload>.<signature>` signed with ES256 under `privateKey`. */
export function signCompact(
  payloadJson: string,
  privateKey: KeyObject,
  kid: string,
  extraHeader: Record<string, string> = {},
): string {
  const header = encodeBase64Url(Buffer.from(JSON.stringify({ ...extraHeader, alg: JWS_ALG, kid }), 'utf8'));
  const payload = encodeBase64Url(Buffer.from(payloadJson, 'utf8'));
  const signature = sign('sha256', signingInput(header, payload), {
    key: privateKey,
    dsaEncoding: 'ieee-p1363',
  });
  return `${SEALED_PREFIX}.${header}.${payload}.${encodeBase64Url(signature)}`;
}
