// Placeholder until the sts_token / ecs_ram_role issue lands (owned by that work).
import { CdhError } from '../../../errors';
import type { ProviderContext, ProviderInstance, ProviderSettings } from '../../types';

export async function createStsTokenProvider(
  _s: ProviderSettings,
  _c: ProviderContext,
): Promise<ProviderInstance> {
  throw new CdhError('PROVIDER_NOT_CONFIGURED', 'aliyun sts_token is not available in this build');
}

export async function createEcsRamRoleProvider(
  _s: ProviderSettings,
  _c: ProviderContext,
): Promise<ProviderInstance> {
  throw new CdhError('PROVIDER_NOT_CONFIGURED', 'aliyun ecs_ram_role is not available in this build');
}
