import type { Logger } from 'pino';
import type { CdhConfig } from '../../config/types';
import { CdhError } from '../../errors';
import type { ProviderContext, ProviderFactory, ProviderInstance, ProviderSettings } from '../types';
import { OfflineFsResourceStore, offlineFsFilesFromConfig } from './offline-fs';

export { OfflineFsResourceStore, offlineFsFilesFromConfig } from './offline-fs';
export { parseResourceUri, resourceKey, formatResourceUri, type ResourceUri } from './uri';
export { provisionCredentials } from './provision';

/**
 * The `kbs` provider: vault secrets whose `name` is a resource URI, read through the
 * configured KBC. provider_settings carry nothing for it (upstream ignores them too).
 */
export const kbsProvider: ProviderFactory = {
  name: 'kbs',
  // Resources are local files re-read on change; caching would only hide edits.
  cacheable: false,
  // provider_settings carry nothing for kbs: one instance serves them all.
  identity: () => ({}),
  create(_settings: ProviderSettings, ctx: ProviderContext): ProviderInstance {
    const resources = ctx.resources;
    if (resources === undefined) {
      throw new CdhError('PROVIDER_NOT_CONFIGURED', 'provider kbs: this daemon has no KBC resource store');
    }
    return {
      label: `kbs (${ctx.config.kbc.name})`,
      getter: { getSecret: (name, _annotations, callCtx) => resources.getResource(name, callCtx) },
      unsupportedReason: {
        decrypter: 'the kbs provider only serves vault secrets (resources by URI)',
        encrypter: 'the kbs provider only serves vault secrets (resources by URI)',
      },
    };
  },
};

/**
 * Builds and loads the KBC resource store named by `[kbc]` (offline_fs_kbc is the only one;
 * the config loader refuses others). Throws KBC_RESOURCES_INVALID naming a malformed file.
 */
export async function createResourceStore(
  config: Pick<CdhConfig, 'kbc'>,
  logger: Logger,
  env: NodeJS.ProcessEnv = process.env,
): Promise<OfflineFsResourceStore> {
  const store = new OfflineFsResourceStore(offlineFsFilesFromConfig(config, env), logger);
  await store.load();
  return store;
}
