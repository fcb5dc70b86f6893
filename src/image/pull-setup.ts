import type { Logger } from 'pino';
import type { ImageSettings } from '../config/image';
import type { CallContext, ResourceReader } from '../providers/types';
import { AuthFile } from './auth';
import { LayerStore } from './layer-store';
import { ImagePolicy } from './policy';
import { quote } from './reference';
import {
  DEFAULT_REGISTRY_CONFIG,
  parseRegistryConfig,
  parseRegistryConfigToml,
  type RegistryConfig,
} from './registry-config';
import { RegistryTransport } from './registry-transport';
import { readImageResource } from './resources';

/** What every pull uses, read from the [image] resources at the first pull and kept. */
export interface PullSetup {
  readonly registryConfig: RegistryConfig;
  readonly auth: AuthFile;
  readonly policy: ImagePolicy;
  readonly transport: RegistryTransport;
  readonly store: LayerStore;
}

export async function loadPullSetup(
  s: ImageSettings,
  kbc: ResourceReader | undefined,
  logger: Logger,
  ctx: CallContext,
): Promise<PullSetup> {
  let registryConfig = DEFAULT_REGISTRY_CONFIG;
  if (s.registryConfig !== undefined)
    registryConfig = parseRegistryConfig(s.registryConfig, '[image.registry_config]');
  else if (s.registryConfigurationUri !== '') {
    const text = await readImageResource(s.registryConfigurationUri, 'registry_configuration_uri', kbc, ctx);
    registryConfig = parseRegistryConfigToml(text.toString('utf8'), quote(s.registryConfigurationUri));
  }
  let auth = AuthFile.empty();
  if (s.authenticatedRegistryCredentialsUri !== '') {
    const text = await readImageResource(
      s.authenticatedRegistryCredentialsUri,
      'authenticated_registry_credentials_uri',
      kbc,
      ctx,
    );
    auth = AuthFile.parse(text.toString('utf8'), quote(s.authenticatedRegistryCredentialsUri));
  }
  const policy = await ImagePolicy.load(s, kbc, logger, ctx);
  const store = await LayerStore.open(s.workDir, logger);
  const transport = new RegistryTransport({
    extraRootCertificates: s.extraRootCertificates,
    proxy: s.imagePullProxy,
  });
  return { registryConfig, auth, policy, transport, store };
}
