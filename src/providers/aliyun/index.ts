import { atFirstUse } from '../../lib/first-use';
import { z } from '../../lib/zod';
import type { CdhConfig } from '../../config/types';
import type { ProviderFactory, ProviderInstance, ProviderSettings, ProviderContext } from '../types';
import { parseAliyunSettings } from './settings';

// The client-type modules are loaded on the first create() that needs them: client_key pulls
// in node-forge and the gateway messages, a large part of start-up (docs/performance.md, "Measured costs behind the code").
/* eslint-disable @typescript-eslint/no-require-imports */
const clientKeyModule = (): typeof import('./client-key') =>
  require('./client-key') as typeof import('./client-key');
const openApiModule = (): typeof import('./openapi') => require('./openapi') as typeof import('./openapi');
/* eslint-enable @typescript-eslint/no-require-imports */

/** All the aliyun provider is given of the configuration: `[aliyun]`. */
export type AliyunSection = Pick<CdhConfig, 'aliyun'>;

export const CLIENT_TYPES = ['client_key', 'ecs_ram_role', 'sts_token'] as const;
export type ClientType = (typeof CLIENT_TYPES)[number];

/** The provider_settings fields each client type reads (upstream's tables). */
const SETTINGS_FIELDS: Record<ClientType, readonly string[]> = {
  client_key: ['client_key_id', 'kms_instance_id'],
  sts_token: ['token_path', 'region_id'],
  ecs_ram_role: [],
};

/** Built at the first secret (start-up builds no provider). */
const clientTypeSchema = atFirstUse(() =>
  z.object({
    client_type: z.enum(CLIENT_TYPES, { error: `must be one of ${CLIENT_TYPES.join(', ')}` }),
  }),
);

/** The `aliyun` provider: one of three ways of reaching Alibaba Cloud KMS, chosen by client_type. */
export const aliyunProvider: ProviderFactory<AliyunSection> = {
  name: 'aliyun',
  configSection: (config) => ({ aliyun: config.aliyun }),
  identity(settings: ProviderSettings): ProviderSettings {
    const clientType = settings['client_type'];
    if (typeof clientType !== 'string' || !(CLIENT_TYPES as readonly string[]).includes(clientType))
      return settings;
    const identity: Record<string, unknown> = { client_type: clientType };
    for (const field of SETTINGS_FIELDS[clientType as ClientType])
      if (Object.hasOwn(settings, field)) identity[field] = settings[field];
    return identity;
  },
  create(settings: ProviderSettings, ctx: ProviderContext<AliyunSection>): Promise<ProviderInstance> {
    const { client_type: clientType } = parseAliyunSettings(
      clientTypeSchema(),
      settings,
      'provider_settings',
    );
    switch (clientType) {
      case 'client_key':
        return clientKeyModule().createClientKeyProvider(settings, ctx);
      case 'sts_token':
        return openApiModule().createStsTokenProvider(settings, ctx);
      case 'ecs_ram_role':
        return openApiModule().createEcsRamRoleProvider(settings, ctx);
    }
  },
};
