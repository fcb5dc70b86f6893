import { capabilityOf } from '../src/providers/registry';
import type {
  Capability,
  Decrypter,
  Encrypter,
  Getter,
  ProviderContext,
  ProviderFactory,
  ProviderInstance,
  ProviderSettings,
} from '../src/providers/types';

/**
 * The upstream driver's strategy as a provider factory wrapper: every call builds its own
 * instance of the wrapped provider (new client, new TLS session, PKCS#12 parse), uses it once
 * and closes it when the call completes (otherwise its keep-alive sockets would linger). The
 * instance is built when a capability's method is called, not when it is looked up, so a
 * looked-up capability that is never called (a cache hit) costs and leaks nothing.
 * Benchmark only: the daemon has no setting for this.
 */
export function perCallFactory(factory: ProviderFactory): ProviderFactory {
  return {
    ...factory,
    create(settings: ProviderSettings, context: ProviderContext): ProviderInstance {
      const once = async <C extends Capability, T>(
        capability: C,
        use: (found: NonNullable<ProviderInstance[C]>) => Promise<T>,
      ): Promise<T> => {
        const instance = await factory.create(settings, context);
        try {
          return await use(capabilityOf(instance, capability));
        } finally {
          await Promise.resolve()
            .then(() => instance.close?.())
            .catch((error: unknown) =>
              context.logger.warn(
                { provider: factory.name, err: error instanceof Error ? error.message : String(error) },
                'closing a per-call provider instance failed',
              ),
            );
        }
      };
      const decrypter: Decrypter = { decrypt: (...args) => once('decrypter', (d) => d.decrypt(...args)) };
      const encrypter: Encrypter = { encrypt: (...args) => once('encrypter', (e) => e.encrypt(...args)) };
      const getter: Getter = { getSecret: (...args) => once('getter', (g) => g.getSecret(...args)) };
      return { label: `${factory.name} (per call)`, decrypter, encrypter, getter };
    },
  };
}

export function perCallProviders(factories: readonly ProviderFactory[]): ProviderFactory[] {
  return factories.map(perCallFactory);
}
