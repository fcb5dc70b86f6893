import type { CdhConfig } from '../../config/types';
import { CdhError } from '../../errors';
import type { ProviderContext, ProviderFactory, ProviderInstance, ProviderSettings } from '../types';

/**
 * The `kbs` provider: vault secrets whose `name` is a resource URI, read through the
 * configured KBC (offline_fs_kbc or cc_kbc). provider_settings carry nothing for it (upstream
 * ignores them too).
 */
/** All the kbs provider is given of the configuration: which KBC serves it (for its label). */
type KbsSection = { readonly kbc: Pick<CdhConfig['kbc'], 'name'> };

export const kbsProvider: ProviderFactory<KbsSection> = {
  name: 'kbs',
  configSection: (config) => ({ kbc: { name: config.kbc.name } }),
  // offline_fs re-reads edited files; cc_kbc's KBS authorises every request: nothing to cache.
  cacheable: false,
  // provider_settings carry nothing for kbs: one instance serves them all.
  identity: () => ({}),
  create(_settings: ProviderSettings, ctx: ProviderContext<KbsSection>): ProviderInstance {
    const resources = ctx.resources;
    if (resources === undefined) {
      throw new CdhError('PROVIDER_NOT_CONFIGURED', 'provider kbs: this daemon has no KBC');
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
