import { createHash } from 'node:crypto';
import { CdhError } from '../errors';
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

interface Entry {
  readonly value: Buffer;
  readonly expiresAt: number;
}

interface Flight {
  readonly result: Promise<Buffer>;
  readonly controller: AbortController;
  /** Waiters still interested; the call is aborted when it drops to 0 before an answer. */
  waiters: number;
  /** Waiters that have not yet taken (or given up) their copy. */
  untaken: number;
  /** The cache took ownership of the answer (it wipes it on expiry/eviction). */
  stored: boolean;
}

/**
 * A bounded LRU of secret material (data keys, vault values) with a TTL, plus single-flight:
 * concurrent loads of one key share one KMS call. Callers always get their own copy, so they
 * may wipe it; the cache wipes its copies on expiry, eviction and clear().
 */
export class SecretCache {
  private readonly entries = new Map<string, Entry>();
  private readonly flights = new Map<string, Flight>();
  private readonly now: () => number;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(private readonly options: SecretCacheOptions) {
    this.now = options.now ?? Date.now;
    if (options.ttlMs > 0) {
      // Expired material should not linger until the next lookup of the same key.
      this.sweeper = setInterval(() => this.sweep(), Math.min(options.ttlMs, 60_000));
      this.sweeper.unref();
    }
  }

  get size(): number {
    return this.entries.size;
  }

  async getOrLoad(
    key: string,
    ctx: CallContext,
    load: (ctx: CallContext) => Promise<Buffer>,
  ): Promise<Buffer> {
    const hit = this.lookup(key);
    if (hit !== undefined) return Buffer.from(hit);

    let flight = this.flights.get(key);
    if (flight === undefined) flight = this.startFlight(key, load);
    else ctx.onSharedWork?.();
    return this.await(flight, ctx);
  }

  /** Wipes and drops everything (shutdown). */
  clear(): void {
    for (const entry of this.entries.values()) entry.value.fill(0);
    this.entries.clear();
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  private lookup(key: string): Buffer | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.drop(key, entry);
      return undefined;
    }
    // Refresh its place in the LRU order.
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.value;
  }

  private startFlight(key: string, load: (ctx: CallContext) => Promise<Buffer>): Flight {
    const controller = new AbortController();
    const flight: Flight = {
      result: load({ signal: controller.signal }).then((value) => {
        if (this.options.ttlMs > 0 && !controller.signal.aborted) {
          this.store(key, value);
          flight.stored = true;
        }
        return value;
      }),
      controller,
      waiters: 0,
      untaken: 0,
      stored: false,
    };
    const result = flight.result;
    this.flights.set(key, flight);
    const land = (): void => {
      if (this.flights.get(key) === flight) this.flights.delete(key);
    };
    result.then(land, land);
    return flight;
  }

  /** Each waiter gets a copy; the shared call is aborted only when every waiter has gone. */
  private async await(flight: Flight, ctx: CallContext): Promise<Buffer> {
    flight.waiters++;
    flight.untaken++;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      // Not cached: the last waiter out wipes the provider's buffer (every holder has a copy).
      if (--flight.untaken === 0 && !flight.stored)
        void flight.result.then(
          (value) => value.fill(0),
          () => undefined,
        );
    };
    const gaveUp = new Promise<never>((_, reject) => {
      const onAbort = (): void => {
        if (!done && --flight.waiters === 0) flight.controller.abort(ctx.signal.reason);
        finish();
        reject(ctx.signal.reason ?? new CdhError('CANCELLED', 'the caller cancelled the call'));
      };
      if (ctx.signal.aborted) onAbort();
      else ctx.signal.addEventListener('abort', onAbort, { once: true });
      flight.result.then(
        () => ctx.signal.removeEventListener('abort', onAbort),
        () => ctx.signal.removeEventListener('abort', onAbort),
      );
    });
    gaveUp.catch(() => undefined);
    try {
      const value = await Promise.race([flight.result, gaveUp]);
      return Buffer.from(value);
    } finally {
      finish();
    }
  }

  private store(key: string, value: Buffer): void {
    const previous = this.entries.get(key);
    if (previous !== undefined) this.drop(key, previous);
    this.entries.set(key, { value, expiresAt: this.now() + this.options.ttlMs });
    while (this.entries.size > this.options.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.drop(oldest, this.entries.get(oldest) as Entry);
    }
  }

  private drop(key: string, entry: Entry): void {
    entry.value.fill(0);
    this.entries.delete(key);
  }

  private sweep(): void {
    const now = this.now();
    for (const [key, entry] of this.entries) if (entry.expiresAt <= now) this.drop(key, entry);
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
