import type { Logger } from 'pino';
import type { ImageSettings } from '../config/types';
import type { CallContext, ResourceReader } from '../providers/types';
import { AuthFile } from './auth';
import { ImagePolicy } from './policy';
import { quote } from './reference';
import {
  DEFAULT_REGISTRY_CONFIG,
  parseRegistryConfig,
  parseRegistryConfigToml,
  type RegistryConfig,
} from './registry-config';
import { ResourceReads } from './resources';

/** What a pull reads from the [image] resources. */
export interface PullResources {
  readonly registryConfig: RegistryConfig;
  readonly auth: AuthFile;
  readonly policy: ImagePolicy;
}

/**
 * The [image] resources as they are now, for each pull: parsed again when any file they came
 * from (policy, its key files, registry config, auth.json, sigstore config) has another
 * fingerprint, and whenever one of them is a `kbs://` resource (read through the KBC per pull).
 */
export class PullResourceCache {
  private last?: { value: PullResources; reads: ResourceReads };

  constructor(
    private readonly settings: ImageSettings,
    private readonly kbc: ResourceReader | undefined,
    private readonly logger: Logger,
  ) {}

  async current(ctx: CallContext): Promise<PullResources> {
    if (this.last !== undefined && (await this.last.reads.unchanged())) return this.last.value;
    const reads = new ResourceReads(this.kbc, ctx);
    const value = await this.read(reads);
    this.last = { value, reads };
    return value;
  }

  private async read(reads: ResourceReads): Promise<PullResources> {
    const s = this.settings;
    let registryConfig = DEFAULT_REGISTRY_CONFIG;
    if (s.registryConfig !== undefined)
      registryConfig = parseRegistryConfig(s.registryConfig, '[image.registry_config]');
    else if (s.registryConfigurationUri !== '') {
      const text = await reads.read(s.registryConfigurationUri, 'registry_configuration_uri');
      registryConfig = parseRegistryConfigToml(text.toString('utf8'), quote(s.registryConfigurationUri));
    }
    let auth = AuthFile.empty();
    if (s.authenticatedRegistryCredentialsUri !== '') {
      const uri = s.authenticatedRegistryCredentialsUri;
      const text = await reads.read(uri, 'authenticated_registry_credentials_uri');
      auth = AuthFile.parse(text.toString('utf8'), quote(uri));
    }
    const policy = await ImagePolicy.load(s, reads, this.logger);
    return { registryConfig, auth, policy };
  }
}
