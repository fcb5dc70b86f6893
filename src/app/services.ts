import type { Logger } from 'pino';
import type { CdhConfig } from '../config/types';
import type { ImagePuller } from '../image/service';
import type { Kbc } from '../kbc';
import { KeyUnwrapper } from '../keyprovider/unwrap';
import { builtinProviders } from '../providers';
import { ProviderRegistry } from '../providers/registry';
import type { ProviderFactory } from '../providers/types';
import { CachedProviders, SecretCache } from '../providers/cache';
import { SecretUnsealer } from '../secret/unsealer';
import type { ApiBackend } from '../server/api';
import { startKbc } from './startup';

export interface ServiceOptions {
  readonly logger: Logger;
  /** Replaces the built-in providers (tests register a test provider; the bench wraps them). */
  readonly providers?: readonly ProviderFactory[];
  readonly env?: NodeJS.ProcessEnv;
}

/** The object graph of the daemon's work, without any transport: the daemon and cdh-oneshot share it. */
export interface Services {
  readonly kbc: Kbc;
  readonly registry: ProviderRegistry;
  readonly unsealer: SecretUnsealer;
  readonly keyUnwrapper: KeyUnwrapper;
  /** Built at the first call: the image code (tar, zstd, OpenPGP, registry client) is large. */
  imagePuller(): Promise<ImagePuller>;
  /** The API's four calls over these services. */
  readonly backend: ApiBackend;
  /** Closes providers, the image puller (if built), cached keys and the KBC. */
  close(): Promise<void>;
  /** The immediate stop: the KBC's connections and timers only. */
  closeNow(): void;
}

/** Runs the start-up steps (KBC, [[credentials]]) and builds every service from `config`. */
export async function buildServices(config: CdhConfig, options: ServiceOptions): Promise<Services> {
  const { logger } = options;
  const kbc = await startKbc(config, logger, options.env);
  const registry = new ProviderRegistry(options.providers ?? builtinProviders(), {
    config,
    logger,
    resources: kbc,
  });
  const cache = new SecretCache({
    ttlMs: config.cache.ttlSeconds * 1000,
    maxEntries: config.cache.maxEntries,
  });
  const unsealer = new SecretUnsealer({
    registry: new CachedProviders(registry, cache),
    skipVerification: config.skipSealedSecretVerification,
    signingKeyDir: config.sealedSecret.signingKeyDir,
    resources: kbc,
    logger,
  });
  const keyUnwrapper = new KeyUnwrapper({ kbc, registry, logger });
  let images: Promise<ImagePuller> | undefined;
  const imagePuller = (): Promise<ImagePuller> =>
    (images ??= loadImagePuller(config, kbc, keyUnwrapper, logger));
  return {
    kbc,
    registry,
    unsealer,
    keyUnwrapper,
    imagePuller,
    backend: {
      unsealSecret: (secret, ctx) => unsealer.unseal(secret, ctx),
      getResource: (uri, ctx) => kbc.getResource(uri, ctx),
      pullImage: async (imageUrl, bundlePath, ctx) => (await imagePuller()).pull(imageUrl, bundlePath, ctx),
      unwrapKey: (request, ctx) => keyUnwrapper.handleRequest(request, ctx),
    },
    async close() {
      await registry.close();
      if (images) await (await images).close();
      cache.clear();
      kbc.close?.();
    },
    closeNow: () => kbc.close?.(),
  };
}

async function loadImagePuller(
  config: CdhConfig,
  kbc: Kbc,
  unwrapper: KeyUnwrapper,
  logger: Logger,
): Promise<ImagePuller> {
  const [{ ImagePuller: Puller }, { AaPullMeasurer }] = await Promise.all([
    import('../image/service.js'),
    import('../image/measure.js'),
  ]);
  return new Puller(config.image, {
    logger,
    kbc,
    measurer: new AaPullMeasurer(config.aa.aaSocket, logger),
    unwrapper,
  });
}
