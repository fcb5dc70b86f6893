import { assertDialAllowed } from '../../../net-guard';
import type {
  Annotations,
  CallContext,
  Getter,
  ProviderContext,
  ProviderInstance,
  ProviderSettings,
} from '../../types';
import type { AliyunSection } from '..';
import { EcsMetadataClient } from '../metadata/client';
import { readEcsRamRoleFile, StsTokenFile, stsTokenDirectory } from './credential-files';
import { KmsCallError } from './kms-errors';
import { OpenApiKmsClient, type RetryPolicy } from './kms-client';
import type { OpenApiSdk } from './kms-sdk';
import { parseStsTokenSettings, resolveOpenApiEndpoint, secretVersionSelector } from './settings';
import { createOpenApiAgent } from './tls-agent';

/** Knobs for tests and benchmarks; the registry calls the factories without them. */
export interface OpenApiProviderOptions {
  readonly retry?: RetryPolicy;
  /** ecs_ram_role: refresh role credentials this long before they expire (default 5 minutes). */
  readonly refreshMarginMs?: number;
  readonly now?: () => number;
  readonly sdk?: OpenApiSdk;
}

/** `client_type` `sts_token`: vault secrets with the `AK:SK:STS` held in `provider_settings.token_path`. */
export async function createStsTokenProvider(
  settings: ProviderSettings,
  ctx: ProviderContext<AliyunSection>,
  options: OpenApiProviderOptions = {},
): Promise<ProviderInstance> {
  const label = 'aliyun (client_type sts_token)';
  const { tokenPath, regionId } = parseStsTokenSettings(settings);
  const endpoint = resolveOpenApiEndpoint(ctx.config.aliyun, regionId);
  assertDialAllowed(endpoint.host, `${label} KMS OpenAPI`);
  const tokenFile = new StsTokenFile(tokenPath, stsTokenDirectory(ctx.config.aliyun, tokenPath));
  await tokenFile.current(); // a missing or malformed token file fails the first use, not every call
  const kms = await openKmsClient(label, endpoint, regionId, ctx, options);
  const getter: Getter = {
    async getSecret(name: string, annotations: Annotations, call: CallContext): Promise<Buffer> {
      const selector = secretVersionSelector(annotations, 'sts_token');
      return kms.getSecretValue(await tokenFile.current(), name, selector, call.signal);
    },
  };
  return vaultOnlyInstance(label, 'sts_token', getter, () => kms.close());
}

/**
 * `client_type` `ecs_ram_role`: vault secrets with the STS credentials of the instance's RAM role
 * (`ecsRamRole.json` in the credential dir names the role and the region).
 */
export async function createEcsRamRoleProvider(
  _settings: ProviderSettings,
  ctx: ProviderContext<AliyunSection>,
  options: OpenApiProviderOptions = {},
): Promise<ProviderInstance> {
  const label = 'aliyun (client_type ecs_ram_role)';
  const role = await readEcsRamRoleFile(ctx.config.aliyun.credentialDir);
  const endpoint = resolveOpenApiEndpoint(ctx.config.aliyun, role.regionId);
  assertDialAllowed(endpoint.host, `${label} KMS OpenAPI`);
  const metadata = new EcsMetadataClient({
    endpoint: ctx.config.aliyun.metadataEndpoint,
    roleName: role.roleName,
    timeoutMs: ctx.config.aliyun.requestTimeoutMs,
    ...(options.refreshMarginMs === undefined ? {} : { refreshMarginMs: options.refreshMarginMs }),
    ...(options.now ? { now: options.now } : {}),
  });
  const kms = await openKmsClient(label, endpoint, role.regionId, ctx, options);
  const getter: Getter = {
    async getSecret(name: string, annotations: Annotations, call: CallContext): Promise<Buffer> {
      const selector = secretVersionSelector(annotations, 'ecs_ram_role');
      const credentials = await metadata.credentials(call.signal);
      try {
        return await kms.getSecretValue(credentials, name, selector, call.signal);
      } catch (error) {
        // Role credentials can be revoked before their Expiration: fetch new ones, once.
        if (!(error instanceof KmsCallError) || !error.kmsCode?.startsWith('InvalidSecurityToken'))
          throw error;
        metadata.invalidate(credentials);
        return kms.getSecretValue(await metadata.credentials(call.signal), name, selector, call.signal);
      }
    },
  };
  return vaultOnlyInstance(label, 'ecs_ram_role', getter, () => kms.close());
}

function vaultOnlyInstance(
  label: string,
  clientType: string,
  getter: Getter,
  close: () => void,
): ProviderInstance {
  const reason =
    `client_type ${clientType} serves vault secrets only (KMS OpenAPI GetSecretValue); ` +
    'envelope secrets need client_type client_key';
  return { label, getter, unsupportedReason: { decrypter: reason, encrypter: reason }, close };
}

/** The OpenAPI client both client types use: config timeouts, CA bundle, test knobs. */
async function openKmsClient(
  label: string,
  endpoint: ReturnType<typeof resolveOpenApiEndpoint>,
  regionId: string,
  ctx: ProviderContext<AliyunSection>,
  options: OpenApiProviderOptions,
): Promise<OpenApiKmsClient> {
  return new OpenApiKmsClient({
    label,
    endpoint,
    regionId,
    timeoutMs: ctx.config.aliyun.requestTimeoutMs,
    agent: await createOpenApiAgent(ctx.config.aliyun.openapiCaFile),
    logger: ctx.logger,
    ...(options.retry ? { retry: options.retry } : {}),
    ...(options.sdk ? { sdk: options.sdk } : {}),
  });
}
