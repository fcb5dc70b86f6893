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
  /** Instance keys of settings that cannot change (remembered payloads are deep-frozen). */
  private readonly frozenKeys = new WeakMap<
    ProviderSettings,
    { readonly factory: ProviderFactory; readonly identity: ProviderSettings; readonly key: string }
  >();

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
    const known = this.frozenKeys.get(settings);
    if (known !== undefined && known.factory === factory)
      return this.sharedCapability(factory, known.identity, known.key, capability);
    const identity = factory.identity ? factory.identity(settings) : settings;
    const key = `${factory.name.toLowerCase()}\u0000${canonicalJson(identity)}`;
    if (isDeepFrozen(settings)) this.frozenKeys.set(settings, { factory, identity, key });
    return this.sharedCapability(factory, identity, key, capability);
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
    key: string,
    capability: C,
  ): Promise<NonNullable<ProviderInstance[C]>> {
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

/** True when `value` is frozen all the way down (so its cache keys can be kept). */
export function isDeepFrozen(value: object): boolean {
  canonicalJson(value);
  return frozenJson.has(value);
}

/** Canonical JSON of deeply frozen values (remembered payloads' settings and annotations). */
const frozenJson = new WeakMap<object, string>();

/**
 * JSON with object keys sorted, so equal settings give equal cache keys. A value frozen all
 * the way down cannot change, so its text is kept (weakly) and a cached unseal, whose payload
 * the payload memo holds deep-frozen, does not serialise its settings again on every call.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  const known = frozenJson.get(value);
  if (known !== undefined) return known;
  let deepFrozen = Object.isFrozen(value);
  const child = (v: unknown): string => {
    const json = canonicalJson(v);
    if (deepFrozen && v !== null && typeof v === 'object' && !frozenJson.has(v)) deepFrozen = false;
    return json;
  };
  const json = Array.isArray(value)
    ? `[${value.map(child).join(',')}]`
    : `{${Object.keys(value)
        .sort()
        .map((k) => `${JSON.stringify(k)}:${child((value as Record<string, unknown>)[k])}`)
        .join(',')}}`;
  if (deepFrozen) frozenJson.set(value, json);
  return json;
}
