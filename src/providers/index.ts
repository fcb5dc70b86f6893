import { aliyunProvider } from './aliyun';
import { kbsProvider } from './kbs';
import type { ProviderFactory } from './types';

/** Every provider this daemon ships: adding one is one folder and one line here. */
export function builtinProviders(): ProviderFactory[] {
  return [aliyunProvider, kbsProvider];
}
