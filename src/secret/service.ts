import type { Logger } from 'pino';
import type { CdhConfig } from '../config/types';
import { CachedProviders, SecretCache } from '../providers/cache';
import type { ProviderRegistry } from '../providers/registry';
import type { ResourceReader } from '../providers/types';
import { SecretUnsealer } from './unsealer';

/** The unsealer as the daemon runs it: over the cached, single-flighted providers of `config`. */
export function createUnsealService(
  config: CdhConfig,
  registry: ProviderRegistry,
  logger: Logger,
  resources?: ResourceReader,
): { unsealer: SecretUnsealer; cache: SecretCache } {
  const cache = new SecretCache({
    ttlMs: config.cache.ttlSeconds * 1000,
    maxEntries: config.cache.maxEntries,
  });
  const unsealer = new SecretUnsealer({
    registry: new CachedProviders(registry, cache),
    skipVerification: config.skipSealedSecretVerification,
    signingKeyDir: config.sealedSecret.signingKeyDir,
    ...(resources === undefined ? {} : { resources }),
    logger,
  });
  return { unsealer, cache };
}
