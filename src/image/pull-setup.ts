import type { Logger } from 'pino';
import type { ImageSettings } from '../config/types';
import { LayerStore } from './layer-store';
import type { PullResources } from './pull-resources';
import { RegistryTransport } from './registry-transport';

/** What every pull uses: the [image] resources as they are now (pull-resources.ts), the store and transport (opened once). */
export interface PullSetup extends PullResources {
  readonly transport: RegistryTransport;
  readonly store: LayerStore;
}

/** The parts opened once per process. */
export async function loadPullSetup(
  s: ImageSettings,
  logger: Logger,
): Promise<Pick<PullSetup, 'transport' | 'store'>> {
  const store = await LayerStore.open(s.workDir, logger);
  const transport = new RegistryTransport({
    extraRootCertificates: s.extraRootCertificates,
    proxy: s.imagePullProxy,
  });
  return { transport, store };
}
