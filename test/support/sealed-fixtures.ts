import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { encodeBase64Url, encodeStandardBase64 } from '../../src/lib/base64';
import { encryptData, IV_BYTES, type WrapType } from '../../src/crypto/wrap';
import type { EnvelopeSecret, VaultSecret } from '../../src/secret/payload';
import { PACKAGE_ROOT } from '../../src/package-info';
import { TEST_ANNOTATIONS, type TestKms } from './test-provider';

/** Builders of sealed secrets for tests, including deliberately broken ones. */

/** The repository's test/fixtures directory. */
export const FIXTURES_DIR = path.join(PACKAGE_ROOT, 'test', 'fixtures');

/** Upstream CDH test data: payload samples and the two P-256 signing JWKs (with `d`). */
export function upstreamVector(name: string): string {
  return readFileSync(path.join(FIXTURES_DIR, 'upstream-secrets', name), 'utf8');
}

export function upstreamJwk(name: 'test-key.json' | 'test-key-2.json'): Record<string, string> {
  return JSON.parse(upstreamVector(name)) as Record<string, string>;
}

export interface EnvelopeFixtureOptions {
  readonly keyId?: string;
  readonly wrapType?: WrapType;
  /** The data key wrapped by the KMS (default: random 32 bytes). */
  readonly dataKey?: Uint8Array;
  /** The data key `encrypted_data` is encrypted under (default: `dataKey`, padded to 32 bytes). */
  readonly encryptionKey?: Uint8Array;
  readonly iv?: Uint8Array;
  readonly provider?: string;
}

/**
 * An envelope payload for `kms`'s provider, with control over every piece, e.g. a 16-byte
 * data key (the data is then encrypted under a valid 32-byte key so only the length is wrong).
 */
export function envelopeFixture(
  kms: TestKms,
  plaintext: string | Uint8Array,
  options: EnvelopeFixtureOptions = {},
): EnvelopeSecret {
  const keyId = options.keyId ?? 'key-1';
  const wrapType = options.wrapType ?? 'A256GCM';
  const dataKey = options.dataKey ?? randomBytes(32);
  const encryptionKey = options.encryptionKey ?? (dataKey.length === 32 ? dataKey : randomBytes(32));
  const iv = options.iv ?? randomBytes(IV_BYTES[wrapType]);
  const ivForEncryption = iv.length === IV_BYTES[wrapType] ? iv : randomBytes(IV_BYTES[wrapType]);
  const encryptedData = encryptData(wrapType, encryptionKey, ivForEncryption, Buffer.from(plaintext));
  return {
    version: '0.1.0',
    type: 'envelope',
    provider: options.provider ?? kms.name,
    provider_settings: {},
    annotations: { ...TEST_ANNOTATIONS },
    key_id: keyId,
    encrypted_key: encodeStandardBase64(kms.wrap(keyId, dataKey)),
    encrypted_data: encodeStandardBase64(encryptedData),
    wrap_type: wrapType,
    iv: encodeStandardBase64(iv),
  };
}

export function vaultFixture(name: string, provider = 'test'): VaultSecret {
  return { version: '0.1.0', type: 'vault', provider, provider_settings: {}, annotations: {}, name };
}

/** Upstream's unsigned form around any JSON (or raw text), valid or not. */
export function unsignedSecret(payload: unknown): string {
  const text = typeof payload === 'string' ? payload : JSON.stringify(payload);
  return `sealed.fakejwsheader.${encodeBase64Url(Buffer.from(text, 'utf8'))}.fakesignature`;
}

/** The same, with the payload in standard base64 with padding (older published form). */
export function unsignedSecretStandardBase64(payload: unknown): string {
  const text = typeof payload === 'string' ? payload : JSON.stringify(payload, null, 2);
  return `sealed.fakejwsheader.${encodeStandardBase64(Buffer.from(text, 'utf8'))}.fakesignature`;
}
