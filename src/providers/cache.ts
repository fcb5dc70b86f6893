import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { SingleFlight } from '../lib/single-flight';
import { canonicalJson, type ProviderRegistry } from './registry';
import type { Annotations, CallContext, Decrypter, Encrypter, Getter, ProviderSettings } from './types';

/** What the sealed-secret layer needs from the providers. */
export interface ProviderLookup {
  decrypter(provider: string, settings: ProviderSettings): Promise<Decrypter>;
  encrypter(provider: string, settings: ProviderSettings): Promise<Encrypter>;
  getter(provider: string, settings: ProviderSettings): Promise<Getter>;
}

export interface SecretCacheOptions {
  /** 0 disables caching (single-flight of concurrent identical calls stays on). */
  readonly ttlMs: number;
  readonly maxEntries: number;
  readonly now?: () => number;
}

/**
 * A bounded LRU of secret material (data keys, vault values) with a TTL, plus single-flight:
 * concurrent loads of one key share one KMS call. Callers always get their own copy, so they
 * may wipe it; the cache wipes its copies on expiry, eviction and clear().
 */
export class SecretCache {
  private readonly entries: LRUCache<string, Buffer> | undefined;
  private readonly flights = new SingleFlight<Buffer>({
    // Not cached: once every caller has its copy, the provider's buffer is wiped.
    onAllTaken: (value, key) => {
      if (this.entries?.peek(key) !== value) value.fill(0);
    },
  });
  private sweeper: NodeJS.Timeout | undefined;

  constructor(options: SecretCacheOptions) {
    if (options.ttlMs <= 0) return;
    const now = options.now ?? Date.now;
    this.entries = new LRUCache<string, Buffer>({
      max: options.maxEntries,
      ttl: options.ttlMs,
      perf: { now },
      ttlResolution: 0,
      dispose: (value) => value.fill(0),
    });
    // Expired material should not linger until the next lookup of the same key.
    this.sweeper = setInterval(() => this.entries?.purgeStale(), Math.min(options.ttlMs, 60_000));
    this.sweeper.unref();
  }

  get size(): number {
    return this.entries?.size ?? 0;
  }

  async getOrLoad(
    key: string,
    ctx: CallContext,
    load: (ctx: CallContext) => Promise<Buffer>,
  ): Promise<Buffer> {
    const hit = this.entries?.get(key);
    if (hit !== undefined) return Buffer.from(hit);
    if (this.flights.has(key)) ctx.onSharedWork?.();
    return this.flights.run(
      key,
      ctx.signal,
      async (signal) => {
        const value = await load({ signal });
        if (!signal.aborted) this.entries?.set(key, value);
        return value;
      },
      (value) => Buffer.from(value),
    );
  }

  /** Wipes and drops everything (shutdown). */
  clear(): void {
    this.entries?.clear();
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }
}

/**
 * The provider registry seen through the cache: data keys of envelope secrets and values of
 * vault secrets are cached and single-flighted; encryption (sealing side) is not.
 */
export class CachedProviders implements ProviderLookup {
  constructor(
    private readonly registry: ProviderRegistry,
    private readonly cache: SecretCache,
  ) {}

  async decrypter(provider: string, settings: ProviderSettings): Promise<Decrypter> {
    const inner = await this.registry.decrypter(provider, settings);
    if (!this.registry.isCacheable(provider)) return inner;
    const scope = cacheScope(provider, settings);
    return {
      decrypt: (ciphertext: Uint8Array, keyId: string, annotations: Annotations, ctx: CallContext) => {
        const digest = createHash('sha256').update(ciphertext).digest('hex');
        const key = `dek\u0000${scope}\u0000${keyId}\u0000${digest}\u0000${canonicalJson(annotations)}`;
        return this.cache.getOrLoad(key, ctx, (loadCtx) =>
          inner.decrypt(ciphertext, keyId, annotations, loadCtx),
        );
      },
    };
  }

  encrypter(provider: string, settings: ProviderSettings): Promise<Encrypter> {
    return this.registry.encrypter(provider, settings);
  }

  async getter(provider: string, settings: ProviderSettings): Promise<Getter> {
    const inner = await this.registry.getter(provider, settings);
    if (!this.registry.isCacheable(provider)) return inner;
    const scope = cacheScope(provider, settings);
    return {
      getSecret: (name: string, annotations: Annotations, ctx: CallContext) => {
        const key = `vault\u0000${scope}\u0000${name}\u0000${canonicalJson(annotations)}`;
        return this.cache.getOrLoad(key, ctx, (loadCtx) => inner.getSecret(name, annotations, loadCtx));
      },
    };
  }
}

function cacheScope(provider: string, settings: ProviderSettings): string {
  return `${provider.toLowerCase()}\u0000${canonicalJson(settings)}`;
}
