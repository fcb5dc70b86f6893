import { CdhError } from '../../errors';
import type { ProviderFactory, ProviderInstance, ProviderSettings, ProviderContext } from '../types';
import { createClientKeyProvider } from './client-key';
import { createEcsRamRoleProvider, createStsTokenProvider } from './openapi';

export const CLIENT_TYPES = ['client_key', 'ecs_ram_role', 'sts_token'] as const;
export type ClientType = (typeof CLIENT_TYPES)[number];

/** The `aliyun` provider: one of three ways of reaching Alibaba Cloud KMS, chosen by client_type. */
export const aliyunProvider: ProviderFactory = {
  name: 'aliyun',
  create(settings: ProviderSettings, ctx: ProviderContext): Promise<ProviderInstance> {
    const clientType = settings['client_type'];
    switch (clientType) {
      case 'client_key':
        return createClientKeyProvider(settings, ctx);
      case 'sts_token':
        return createStsTokenProvider(settings, ctx);
      case 'ecs_ram_role':
        return createEcsRamRoleProvider(settings, ctx);
      default:
        throw new CdhError(
          'PROVIDER_SETTINGS_INVALID',
          `aliyun provider_settings.client_type must be one of ${CLIENT_TYPES.join(', ')}` +
            (clientType === undefined ? ' (it is missing)' : ` (got ${describe(clientType)})`),
        );
    }
  },
};

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.slice(0, 64));
  return value === null ? 'null' : typeof value;
}
