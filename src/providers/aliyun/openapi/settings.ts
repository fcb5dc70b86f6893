import { isAbsolute } from 'node:path';
import { CdhError } from '../../../errors';
import type { AliyunConfig } from '../../../config/types';
import type { Annotations, ProviderSettings } from '../../types';
import { quoteUntrusted } from '../../../lib/untrusted';

/** Region ids as Alibaba Cloud spells them (`cn-beijing`, `ap-southeast-1`); they become a host name. */
const REGION_ID = /^[a-z0-9-]{1,64}$/;

export interface StsTokenSettings {
  /** File holding `AK:SK:STS`. */
  readonly tokenPath: string;
  readonly regionId: string;
}

/** Validates the `provider_settings` of an `aliyun` sealed secret with `client_type` `sts_token`. */
export function parseStsTokenSettings(settings: ProviderSettings): StsTokenSettings {
  const tokenPath = settings['token_path'];
  if (typeof tokenPath !== 'string' || tokenPath === '') {
    throw new CdhError(
      'PROVIDER_SETTINGS_INVALID',
      'aliyun provider_settings.token_path (client_type sts_token) must be a non-empty string ' +
        `(${describeValue(tokenPath)})`,
    );
  }
  if (!isAbsolute(tokenPath) || tokenPath.includes('\0')) {
    throw new CdhError(
      'PROVIDER_SETTINGS_INVALID',
      'aliyun provider_settings.token_path (client_type sts_token) must be an absolute file path',
    );
  }
  const regionId = checkRegionId(
    settings['region_id'],
    'provider_settings.region_id (client_type sts_token)',
  );
  return { tokenPath, regionId };
}

/** Throws PROVIDER_SETTINGS_INVALID unless `value` is a plausible region id; `where` names the field. */
export function checkRegionId(value: unknown, where: string): string {
  if (typeof value !== 'string' || !REGION_ID.test(value)) {
    throw new CdhError(
      'PROVIDER_SETTINGS_INVALID',
      `aliyun ${where} must be a region id such as "cn-beijing" (lower-case letters, digits and "-"; ` +
        `${describeValue(value)})`,
    );
  }
  return value;
}

/** Where the KMS OpenAPI is reached: `host` is dialled, `authority` goes into the URL and Host header. */
export interface OpenApiEndpoint {
  readonly host: string;
  readonly port: number;
  /** `host[:port]` as given to the SDK (it becomes the Host header and the TLS server name's source). */
  readonly authority: string;
}

/** `kms.<region_id>.aliyuncs.com`, or `openapi_endpoint` ("host:port") when the configuration sets it. */
export function resolveOpenApiEndpoint(config: AliyunConfig, regionId: string): OpenApiEndpoint {
  const override = config.openapiEndpoint.trim();
  if (override === '') {
    const host = `kms.${regionId}.aliyuncs.com`;
    return { host, port: 443, authority: host };
  }
  const authority = override.replace(/^https:\/\//i, '').replace(/\/+$/, '');
  let parsed: URL;
  try {
    parsed = new URL(`https://${authority}`);
  } catch {
    throw new CdhError(
      'PROVIDER_NOT_CONFIGURED',
      `aliyun openapi_endpoint must be "host:port" (got ${quoteUntrusted(override)})`,
    );
  }
  if (parsed.hostname === '' || parsed.pathname !== '/' || parsed.search !== '' || parsed.username !== '') {
    throw new CdhError(
      'PROVIDER_NOT_CONFIGURED',
      `aliyun openapi_endpoint must be "host:port" (got ${quoteUntrusted(override)})`,
    );
  }
  const port = parsed.port === '' ? 443 : Number(parsed.port);
  return { host: parsed.hostname, port, authority: parsed.host };
}

/** Which version of a secret to fetch: `annotations.version_stage` / `version_id` (empty = newest). */
export interface SecretVersionSelector {
  readonly versionStage?: string;
  readonly versionId?: string;
}

export function secretVersionSelector(annotations: Annotations): SecretVersionSelector {
  const selector: { versionStage?: string; versionId?: string } = {};
  const stage = annotationString(annotations, 'version_stage');
  const id = annotationString(annotations, 'version_id');
  if (stage !== '') selector.versionStage = stage;
  if (id !== '') selector.versionId = id;
  return selector;
}

function annotationString(annotations: Annotations, name: string): string {
  const value: unknown = annotations[name];
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') {
    throw new CdhError('PROVIDER_SETTINGS_INVALID', `aliyun annotations.${name} must be a string`);
  }
  return value;
}

/** A short description of a bad value for an error message (settings are not secret). */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'it is missing';
  return `got ${quoteUntrusted(value)}`;
}
