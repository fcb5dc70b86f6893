import { CdhError } from '../errors';
import type {
  Capability,
  Decrypter,
  Encrypter,
  Getter,
  RegistryContext,
  ProviderFactory,
  ProviderInstance,
  ProviderSettings,
} from './types';
import { contextFor } from './types';
import { LRUCache } from 'lru-cache';

const CAPABILITY_PURPOSE: Record<Capability, string> = {
  decrypter: 'decrypt data keys (envelope secrets)',
  encrypter: 'encrypt data keys (sealing envelope secrets)',
  getter: 'get secrets (vault secrets)',
};

export interface RegistryOptions {
  /** Most provider instances kept (least recently used are closed once idle). Default 64. */
  readonly maxInstances?: number;
}

interface CachedInstance {
  readonly pending: Promise<ProviderInstance>;
  /** Calls currently using the instance: an evicted one is closed when this drops to 0. */
  inUse: number;
  evicted: boolean;
  /** Capabilities wrapped once per instance, counting their calls. */
  readonly wrapped: Partial<{ [K in Capability]: NonNullable<ProviderInstance[K]> }>;
}

/**
 * Maps a provider name and its settings to a provider instance with the wanted capability.
 * Instances are expensive (credential files, PKCS#12, TLS set-up) so they are cached by
 * provider name + the provider's identity of the settings (only the fields it uses: junk
 * fields from an untrusted sealed secret must not mint instances), concurrent first uses
 * share one construction, and the cache is a bounded LRU whose evicted instances are closed
 * once no call uses them.
 */
export class ProviderRegistry {
  private readonly factories = new Map<string, ProviderFactory>();
  private readonly instances: LRUCache<string, CachedInstance>;

  constructor(
    factories: readonly ProviderFactory[],
    private readonly context: RegistryContext,
    options: RegistryOptions = {},
  ) {
    for (const factory of factories) this.factories.set(factory.name.toLowerCase(), factory);
    this.instances = new LRUCache<string, CachedInstance>({
      max: options.maxInstances ?? 64,
      dispose: (entry, _key, reason) => {
        if (reason !== 'evict') return;
        entry.evicted = true;
        if (entry.inUse === 0) this.closeQuietly(entry);
      },
    });
  }

  /** Instances currently cached (tests). */
  get cachedInstances(): number {
    return this.instances.size;
  }

  /** False for providers whose answers must not be cached (unknown providers: true; they fail anyway). */
  isCacheable(provider: string): boolean {
    return this.factories.get(provider.toLowerCase())?.cacheable ?? true;
  }

  get providerNames(): string[] {
    return [...this.factories.keys()];
  }

  async decrypter(provider: string, settings: ProviderSettings): Promise<Decrypter> {
    return this.capability(provider, settings, 'decrypter');
  }

  async encrypter(provider: string, settings: ProviderSettings): Promise<Encrypter> {
    return this.capability(provider, settings, 'encrypter');
  }

  async getter(provider: string, settings: ProviderSettings): Promise<Getter> {
    return this.capability(provider, settings, 'getter');
  }

  /** Closes every cached instance (shutdown). */
  async close(): Promise<void> {
    const all = [...this.instances.values()];
    this.instances.clear();
    await Promise.allSettled(all.map(async (entry) => (await entry.pending).close?.()));
  }

  private async capability<C extends Capability>(
    provider: string,
    settings: ProviderSettings,
    capability: C,
  ): Promise<NonNullable<ProviderInstance[C]>> {
    const factory = this.factory(provider);
    const identity = factory.identity ? factory.identity(settings) : settings;
    return this.sharedCapability(factory, identity, capability);
  }

  private factory(provider: string): ProviderFactory {
    const factory = this.factories.get(provider.toLowerCase());
    if (factory === undefined) {
      throw new CdhError(
        'PROVIDER_UNKNOWN',
        // JSON-escaped and shortened: the name comes from the sealed secret.
        `unknown provider ${JSON.stringify(provider.slice(0, 64))}${provider.length > 64 ? '…' : ''} ` +
          `(supported: ${this.providerNames.join(', ')})`,
      );
    }
    return factory;
  }

  private async sharedCapability<C extends Capability>(
    factory: ProviderFactory,
    identity: ProviderSettings,
    capability: C,
  ): Promise<NonNullable<ProviderInstance[C]>> {
    const key = `${factory.name.toLowerCase()}\u0000${canonicalJson(identity)}`;
    const entry = this.instances.get(key) ?? this.build(key, factory, identity);
    const instance = await entry.pending;
    const known = entry.wrapped[capability];
    if (known !== undefined) return known;
    const wrapped = this.counted(entry, capabilityOf(instance, capability), capability);
    entry.wrapped[capability] = wrapped;
    return wrapped;
  }

  private build(key: string, factory: ProviderFactory, identity: ProviderSettings): CachedInstance {
    const entry: CachedInstance = {
      pending: Promise.resolve().then(() => factory.create(identity, contextFor(factory, this.context))),
      inUse: 0,
      evicted: false,
      wrapped: {},
    };
    this.instances.set(key, entry);
    // A failed construction (missing file, bad settings) must not be cached.
    entry.pending.catch(() => {
      if (this.instances.peek(key) === entry) this.instances.delete(key);
    });
    return entry;
  }

  /** The capability with its methods counting calls in flight, so eviction waits for them. */
  private counted<C extends Capability>(
    entry: CachedInstance,
    found: NonNullable<ProviderInstance[C]>,
    capability: C,
  ): NonNullable<ProviderInstance[C]> {
    const track = async <T>(call: () => Promise<T>): Promise<T> => {
      entry.inUse++;
      try {
        return await call();
      } finally {
        if (--entry.inUse === 0 && entry.evicted) this.closeQuietly(entry);
      }
    };
    const wrappers: { [K in Capability]: () => NonNullable<ProviderInstance[K]> } = {
      decrypter: () => ({ decrypt: (...args) => track(() => (found as Decrypter).decrypt(...args)) }),
      encrypter: () => ({ encrypt: (...args) => track(() => (found as Encrypter).encrypt(...args)) }),
      getter: () => ({ getSecret: (...args) => track(() => (found as Getter).getSecret(...args)) }),
    };
    return wrappers[capability]() as NonNullable<ProviderInstance[C]>;
  }

  private closeQuietly(entry: CachedInstance): void {
    void entry.pending
      .then((instance) => instance.close?.())
      .catch((error: unknown) =>
        this.context.logger.warn(
          { err: error instanceof Error ? error.message : String(error) },
          'closing an evicted provider instance failed',
        ),
      );
  }
}

/** The instance's `capability`, or PROVIDER_CAPABILITY_MISSING naming why it has none. */
export function capabilityOf<C extends Capability>(
  instance: ProviderInstance,
  capability: C,
): NonNullable<ProviderInstance[C]> {
  const found = instance[capability];
  if (found === undefined) {
    const reason = instance.unsupportedReason?.[capability];
    throw new CdhError(
      'PROVIDER_CAPABILITY_MISSING',
      `provider ${instance.label} cannot ${CAPABILITY_PURPOSE[capability]}${reason ? `: ${reason}` : ''}`,
    );
  }
  return found as NonNullable<ProviderInstance[C]>;
}

/** JSON with object keys sorted, so equal settings give equal cache keys. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
