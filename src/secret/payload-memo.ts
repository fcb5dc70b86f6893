import { createHash, type KeyObject } from 'node:crypto';
import type { CallContext } from '../providers/types';
import type { SealedParts } from './compact';
import type { SealedSecretPayload } from './payload';
import type { VerificationKeyResolver } from './signing-keys';
import { LRUCache } from 'lru-cache';

/** Inputs larger than this are not remembered (bounds the memory the memo can hold). */
const MAX_REMEMBERED_INPUT_CHARS = 64 * 1024;
const MAX_ENTRIES = 512;

interface Remembered {
  readonly payload: SealedSecretPayload;
  /** The kid and the exact key object that verified it (absent when verification is skipped). */
  readonly verifiedBy?: { readonly kid: string; readonly key: KeyObject };
}

/**
 * Sealed secrets already verified and parsed, by SHA-256 of their JWS parts. Verification
 * (an ES256 check, see docs/performance.md) and parsing are pure functions of those
 * bytes and the key, so a repeat of the same bytes reuses the result — but only while the kid
 * still resolves to the very key object that verified it: a replaced or removed key file
 * gives a new object (or an error) and the secret is verified afresh.
 */
export class PayloadMemo {
  private readonly entries = new LRUCache<string, Remembered>({ max: MAX_ENTRIES });

  static digestOf(parts: SealedParts): string | undefined {
    const size = parts.header.length + parts.payload.length + parts.signature.length;
    if (size > MAX_REMEMBERED_INPUT_CHARS) return undefined;
    return createHash('sha256')
      .update(`${parts.header}.${parts.payload}.${parts.signature}`)
      .digest('base64');
  }

  /** The remembered payload, if the same key still verifies it. */
  async recall(
    digest: string,
    keys: VerificationKeyResolver | undefined,
    ctx: CallContext,
  ): Promise<SealedSecretPayload | undefined> {
    const entry = this.entries.get(digest);
    if (entry === undefined) return undefined;
    if (entry.verifiedBy === undefined) return keys === undefined ? entry.payload : undefined;
    if (keys === undefined) return undefined;
    const key = await keys.resolve(entry.verifiedBy.kid, ctx);
    return key === entry.verifiedBy.key ? entry.payload : undefined;
  }

  remember(digest: string, payload: SealedSecretPayload, verifiedBy?: Remembered['verifiedBy']): void {
    this.entries.set(digest, { payload: deepFreeze(payload), ...(verifiedBy ? { verifiedBy } : {}) });
  }
}

/** Remembered payloads are shared between calls: nothing may change them. */
function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
