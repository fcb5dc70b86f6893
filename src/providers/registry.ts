import { CdhError } from '../errors';
import type {
  Capability,
  Decrypter,
  Encrypter,
  Getter,
  ProviderContext,
  ProviderFactory,
  ProviderInstance,
  ProviderSettings,
} from './types';

const CAPABILITY_PURPOSE: Record<Capability, string> = {
  decrypter: 'decrypt data keys (envelope secrets)',
  encrypter: 'encrypt data keys (sealing envelope secrets)',
  getter: 'get secrets (vault secrets)',
};

export interface RegistryOptions {
  /**
   * Reuse provider instances across calls (default). `false` builds a fresh instance per
   * call, which is what the upstream driver does; only the benchmark uses it.
   */
  readonly reuseInstances?: boolean;
}

/**
 * Maps a provider name and its settings to a provider instance with the wanted capability.
 * Instances are expensive (credential files, PKCS#12, TLS set-up) so they are cached by
 * provider name + normalised settings, and concurrent first uses share one construction.
 */
export class ProviderRegistry {
  private readonly factories = new Map<string, ProviderFactory>();
  private readonly instances = new Map<string, Promise<ProviderInstance>>();
  private readonly reuseInstances: boolean;

  constructor(
    factories: readonly ProviderFactory[],
    private readonly context: ProviderContext,
    options: RegistryOptions = {},
  ) {
    for (const factory of factories) this.factories.set(factory.name.toLowerCase(), factory);
    this.reuseInstances = options.reuseInstances ?? true;
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
    await Promise.allSettled(all.map(async (pending) => (await pending).close?.()));
  }

  private async capability<C extends Capability>(
    provider: string,
    settings: ProviderSettings,
    capability: C,
  ): Promise<NonNullable<ProviderInstance[C]>> {
    const instance = await this.instance(provider, settings);
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

  private instance(provider: string, settings: ProviderSettings): Promise<ProviderInstance> {
    const name = provider.toLowerCase();
    const factory = this.factories.get(name);
    if (factory === undefined) {
      throw new CdhError(
        'PROVIDER_UNKNOWN',
        `unknown provider "${provider}" (supported: ${this.providerNames.join(', ')})`,
      );
    }
    if (!this.reuseInstances) return Promise.resolve(factory.create(settings, this.context));

    const key = `${name}\u0000${canonicalJson(settings)}`;
    const cached = this.instances.get(key);
    if (cached !== undefined) return cached;
    const pending = Promise.resolve().then(() => factory.create(settings, this.context));
    this.instances.set(key, pending);
    // A failed construction (missing file, bad settings) must not be cached.
    pending.catch(() => {
      if (this.instances.get(key) === pending) this.instances.delete(key);
    });
    return pending;
  }
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
