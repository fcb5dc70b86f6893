import type { Logger } from 'pino';
import type { CdhConfig } from '../config/types';
import { builtinProviders } from '../providers';
import { ProviderRegistry } from '../providers/registry';
import { SecretUnsealer } from '../secret/unsealer';

/**
 * The user-side unseal (`secret unseal`): the daemon's unsealer over the built-in providers,
 * with no KBC (no [[credentials]] written) and no answer cache (one call).
 */
export function buildLocalUnsealer(
  config: CdhConfig,
  options: { readonly logger: Logger; readonly skipVerification: boolean },
): { unsealer: SecretUnsealer; close(): Promise<void> } {
  const registry = new ProviderRegistry(builtinProviders(), { config, logger: options.logger });
  const unsealer = new SecretUnsealer({
    registry,
    skipVerification: options.skipVerification,
    signingKeyDir: config.sealedSecret.signingKeyDir,
    logger: options.logger,
  });
  return { unsealer, close: () => registry.close() };
}
