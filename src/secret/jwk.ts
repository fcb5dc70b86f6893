import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { CdhError } from '../errors';
import { base64UrlProblem } from '../lib/base64';
import { decodeUtf8 } from './compact';

/** A P-256 JWK as `secret keygen` writes it; `d` only in the private one. */
export interface P256Jwk {
  kty: 'EC';
  crv: 'P-256';
  x: string;
  y: string;
  d?: string;
  kid?: string;
  alg?: 'ES256';
  use?: 'sig';
}

const COORDINATE_BYTES = 32;

function unusable(source: string, why: string): CdhError {
  return new CdhError('SIGNING_KEY_UNAVAILABLE', `${source}: ${why}`);
}

function coordinate(jwk: Record<string, unknown>, name: 'x' | 'y' | 'd', source: string): string {
  const value = jwk[name];
  // Never echo the value: for `d` it is the private key.
  if (typeof value !== 'string') throw unusable(source, `the JWK has no string "${name}"`);
  if (base64UrlProblem(value) !== undefined || Buffer.from(value, 'base64url').length !== COORDINATE_BYTES) {
    throw unusable(source, `the JWK's "${name}" is not ${COORDINATE_BYTES} bytes of base64url`);
  }
  return value;
}

/** Checks the JWK is an EC P-256 key and returns its x, y (and d when wanted). */
function p256Fields(value: unknown, source: string, withPrivate: boolean): P256Jwk {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw unusable(source, 'the key is not a JSON object (JWK)');
  }
  const jwk = value as Record<string, unknown>;
  if (jwk['kty'] !== 'EC' || jwk['crv'] !== 'P-256') {
    throw unusable(source, 'the JWK is not an EC P-256 key (kty "EC", crv "P-256" needed for ES256)');
  }
  const fields: P256Jwk = {
    kty: 'EC',
    crv: 'P-256',
    x: coordinate(jwk, 'x', source),
    y: coordinate(jwk, 'y', source),
  };
  if (withPrivate) fields.d = coordinate(jwk, 'd', source);
  return fields;
}

/** Parses key file / resource bytes as JSON (the content is never echoed). */
export function parseJwkBytes(bytes: Uint8Array, source: string): unknown {
  try {
    // Key files are the operator's: a byte order mark from an editor is tolerated there.
    return JSON.parse(decodeUtf8(bytes, source).replace(/^\uFEFF/, ''));
  } catch (cause) {
    throw new CdhError('SIGNING_KEY_UNAVAILABLE', `${source}: the key is not JSON (a JWK is expected)`, {
      cause,
    });
  }
}

/**
 * The public verification key of a P-256 JWK. A private JWK is accepted: its `d` is
 * ignored, the key is built from x and y only. `source` names where the JWK came from.
 */
export function publicKeyFromJwk(value: unknown, source: string): KeyObject {
  const jwk = p256Fields(value, source, false);
  try {
    return createPublicKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y }, format: 'jwk' });
  } catch (cause) {
    throw new CdhError('SIGNING_KEY_UNAVAILABLE', `${source}: the JWK is not a valid P-256 point`, { cause });
  }
}

/** The signing key of a private P-256 JWK (sealing side). */
export function privateKeyFromJwk(value: unknown, source: string): KeyObject {
  const jwk = p256Fields(value, source, true);
  try {
    return createPrivateKey({ key: { ...jwk }, format: 'jwk' });
  } catch (cause) {
    throw new CdhError('SIGNING_KEY_UNAVAILABLE', `${source}: the JWK is not a valid P-256 private key`, {
      cause,
    });
  }
}

export interface SigningJwkPair {
  readonly privateJwk: P256Jwk;
  readonly publicJwk: P256Jwk;
}

/** A fresh P-256 key pair as JWKs (`secret keygen`). */
export function generateSigningJwkPair(kid?: string): SigningJwkPair {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const exported = privateKey.export({ format: 'jwk' });
  const { x, y, d } = exported;
  if (x === undefined || y === undefined || d === undefined) {
    throw new CdhError('INTERNAL', 'the generated P-256 key did not export as a JWK');
  }
  const extra = { ...(kid === undefined ? {} : { kid }), alg: 'ES256' as const, use: 'sig' as const };
  return {
    privateJwk: { kty: 'EC', crv: 'P-256', x, y, d, ...extra },
    publicJwk: { kty: 'EC', crv: 'P-256', x, y, ...extra },
  };
}
