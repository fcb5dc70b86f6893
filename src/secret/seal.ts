import { randomBytes } from 'node:crypto';
import { encodeBase64Url, encodeStandardBase64 } from '../lib/base64';
import { DATA_KEY_BYTES, encryptData, IV_BYTES, wipe, type WrapType } from '../crypto/wrap';
import type { Annotations, CallContext, Encrypter, ProviderSettings } from '../providers/types';
import { decodeUnverifiedPayload, SEALED_PREFIX, splitSealedSecret } from './compact';
import { signCompact } from './jws';
import { privateKeyFromJwk } from './jwk';
import {
  parsePayload,
  PAYLOAD_VERSION,
  validatePayload,
  type EnvelopeSecret,
  type SealedSecretPayload,
  type VaultSecret,
} from './payload';

/** The sealing side (`secret seal`): build payloads, then sign them or emit the unsigned form. */

export interface EnvelopeSealRequest {
  /** Wraps the data key: the provider's Encrypter (`registry.encrypter(provider, settings)`). */
  readonly encrypter: Encrypter;
  readonly provider: string;
  readonly providerSettings: ProviderSettings;
  readonly keyId: string;
  readonly plaintext: Uint8Array;
  /** A256GCM (default, authenticated) or A256CTR. */
  readonly wrapType?: WrapType;
  readonly ctx?: CallContext;
}

function neverAborted(): CallContext {
  return { signal: new AbortController().signal };
}

/**
 * Encrypts `plaintext` under a fresh random 32-byte data key and IV, and has the provider
 * wrap the data key. The data key is wiped before this returns, whatever happens.
 */
export async function sealEnvelope(request: EnvelopeSealRequest): Promise<EnvelopeSecret> {
  const wrapType = request.wrapType ?? 'A256GCM';
  const dataKey = randomBytes(DATA_KEY_BYTES);
  try {
    const iv = randomBytes(IV_BYTES[wrapType]);
    const encryptedData = encryptData(wrapType, dataKey, iv, request.plaintext);
    const wrapped = await request.encrypter.encrypt(dataKey, request.keyId, request.ctx ?? neverAborted());
    return validatePayload({
      version: PAYLOAD_VERSION,
      type: 'envelope',
      provider: request.provider,
      provider_settings: { ...request.providerSettings },
      annotations: { ...wrapped.annotations },
      key_id: request.keyId,
      encrypted_key: encodeStandardBase64(wrapped.ciphertext),
      encrypted_data: encodeStandardBase64(encryptedData),
      wrap_type: wrapType,
      iv: encodeStandardBase64(iv),
    }) as EnvelopeSecret;
  } finally {
    wipe(dataKey);
  }
}

export interface VaultSealRequest {
  readonly provider: string;
  /** The secret's name at the provider (for kbs, its resource URI). */
  readonly name: string;
  readonly providerSettings?: ProviderSettings;
  readonly annotations?: Annotations;
}

export function sealVault(request: VaultSealRequest): VaultSecret {
  return validatePayload({
    version: PAYLOAD_VERSION,
    type: 'vault',
    provider: request.provider,
    provider_settings: { ...request.providerSettings },
    annotations: { ...request.annotations },
    name: request.name,
  }) as VaultSecret;
}

/** `sealed.<b64url header {alg: ES256, kid}>.<b64url payload>.<b64url signature>`. */
export function signSealedSecret(payload: SealedSecretPayload, privateJwk: unknown, kid: string): string {
  const key = privateKeyFromJwk(privateJwk, 'the signing JWK');
  return signCompact(JSON.stringify(payload), key, kid);
}

/** Upstream's unsigned form, accepted only by a daemon that skips verification. */
export function unsignedSealedSecret(payload: SealedSecretPayload): string {
  const encoded = encodeBase64Url(Buffer.from(JSON.stringify(payload), 'utf8'));
  return `${SEALED_PREFIX}.fakejwsheader.${encoded}.fakesignature`;
}

/**
 * The payload of a sealed secret, validated, without checking the signature or decrypting
 * anything (`secret inspect`).
 */
export function inspectSealedSecret(text: string | Uint8Array): SealedSecretPayload {
  const parts = splitSealedSecret(text);
  return parsePayload(decodeUnverifiedPayload(parts.payload));
}
