// Placeholder until the client_key issue lands (owned by the client_key work).
import { CdhError } from '../../errors';
import type { ProviderContext, ProviderInstance, ProviderSettings } from '../types';

export async function createClientKeyProvider(
  _s: ProviderSettings,
  _c: ProviderContext,
): Promise<ProviderInstance> {
  throw new CdhError('PROVIDER_NOT_CONFIGURED', 'aliyun client_key is not available in this build');
}
