import type { KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import { decodeStandardBase64 } from '../lib/base64';
import { checkIvLength, decryptData, wipe } from '../crypto/wrap';
import type { ProviderLookup } from '../providers/cache';
import type { CallContext, ResourceReader } from '../providers/types';
import { decodeUnverifiedPayload, splitSealedSecret } from './compact';
import { verifySealedParts } from './jws';
import { PayloadMemo } from './payload-memo';
import { parsePayload, type EnvelopeSecret, type SealedSecretPayload, type VaultSecret } from './payload';
import { SigningKeyResolver, type VerificationKeyResolver } from './signing-keys';

export interface SecretUnsealerDeps {
  /** A ProviderRegistry, or CachedProviders around one (data keys and vault values cached). */
  readonly registry: ProviderLookup;
  /** Upstream's `skip_sealed_secret_verification`: read the unsigned form, check no signature. */
  readonly skipVerification: boolean;
  readonly signingKeyDir: string;
  /** Reads `kbs://` kids; without it such kids fail with "kbs provider not configured". */
  readonly resources?: ResourceReader;
  readonly logger: Logger;
}

/** `UnsealSecret`: sealed secret bytes in, plaintext out. */
export class SecretUnsealer {
  private readonly keys: VerificationKeyResolver;
  private readonly memo = new PayloadMemo();

  constructor(private readonly deps: SecretUnsealerDeps) {
    this.keys = new SigningKeyResolver(deps.signingKeyDir, deps.resources);
  }

  async unseal(secret: Uint8Array, ctx: CallContext): Promise<Buffer> {
    const payload = await this.readPayload(secret, ctx);
    this.deps.logger.debug({ type: payload.type, provider: payload.provider }, 'unsealing sealed secret');
    return payload.type === 'envelope' ? this.unsealEnvelope(payload, ctx) : this.unsealVault(payload, ctx);
  }

  private async readPayload(secret: Uint8Array, ctx: CallContext): Promise<SealedSecretPayload> {
    const parts = splitSealedSecret(secret);
    const verifying = !this.deps.skipVerification;
    const digest = PayloadMemo.digestOf(parts);
    if (digest !== undefined) {
      const known = await this.memo.recall(digest, verifying ? this.keys : undefined, ctx);
      if (known !== undefined) return known;
    }
    if (!verifying) {
      const payload = parsePayload(decodeUnverifiedPayload(parts.payload));
      if (digest !== undefined) this.memo.remember(digest, payload);
      return payload;
    }
    let verifiedBy: { kid: string; key: KeyObject } | undefined;
    const recordingKeys: VerificationKeyResolver = {
      resolve: async (kid, resolveCtx) => {
        const key = await this.keys.resolve(kid, resolveCtx);
        verifiedBy = { kid, key };
        return key;
      },
    };
    const payload = parsePayload(await verifySealedParts(parts, recordingKeys, ctx));
    if (digest !== undefined && verifiedBy !== undefined) this.memo.remember(digest, payload, verifiedBy);
    return payload;
  }

  private async unsealEnvelope(secret: EnvelopeSecret, ctx: CallContext): Promise<Buffer> {
    // Everything checkable locally is checked before the KMS is asked for the data key.
    const encryptedKey = decodeStandardBase64(secret.encrypted_key, 'encrypted_key');
    const iv = decodeStandardBase64(secret.iv, 'iv');
    const encryptedData = decodeStandardBase64(secret.encrypted_data, 'encrypted_data');
    checkIvLength(secret.wrap_type, iv);

    const decrypter = await this.deps.registry.decrypter(secret.provider, secret.provider_settings);
    const dataKey = await decrypter.decrypt(encryptedKey, secret.key_id, secret.annotations, ctx);
    try {
      return decryptData(secret.wrap_type, dataKey, iv, encryptedData);
    } finally {
      wipe(dataKey);
    }
  }

  private async unsealVault(secret: VaultSecret, ctx: CallContext): Promise<Buffer> {
    const getter = await this.deps.registry.getter(secret.provider, secret.provider_settings);
    return getter.getSecret(secret.name, secret.annotations, ctx);
  }
}
