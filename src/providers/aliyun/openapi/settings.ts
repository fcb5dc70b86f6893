import { isAbsolute } from 'node:path';
import { z } from '../../../lib/zod';
import { parseAliyunSettings } from '../settings';
import { CdhError } from '../../../errors';
import type { AliyunConfig } from '../../../config/types';
import type { ProviderSettings } from '../../types';
import { quoteUntrusted } from '../../../lib/untrusted';

/** Region ids as Alibaba Cloud spells them (`cn-beijing`, `ap-southeast-1`); they become a host name. */
const REGION_ID = /^[a-z0-9-]{1,64}$/;

export interface StsTokenSettings {
  /** File holding `AK:SK:STS`. */
  readonly tokenPath: string;
  readonly regionId: string;
}

const REGION_RULE = 'must be a region id such as "cn-beijing" (lower-case letters, digits and "-")';

const stsTokenSchema = z
  .object({
    token_path: z
      .string({ error: 'must be a non-empty string' })
      .min(1, 'must be a non-empty string')
      .refine((path) => isAbsolute(path) && !path.includes('\0'), 'must be an absolute file path'),
    region_id: z.string({ error: REGION_RULE }).regex(REGION_ID, REGION_RULE),
  })
  .transform((s): StsTokenSettings => ({ tokenPath: s.token_path, regionId: s.region_id }));

/** Validates the `provider_settings` of an `aliyun` sealed secret with `client_type` `sts_token`. */
export function parseStsTokenSettings(settings: ProviderSettings): StsTokenSettings {
  return parseAliyunSettings(stsTokenSchema, settings, 'provider_settings', 'sts_token');
}

/** Throws PROVIDER_SETTINGS_INVALID unless `value` is a plausible region id; `where` names the field. */
export function checkRegionId(value: unknown, where: string): string {
  if (typeof value !== 'string' || !REGION_ID.test(value)) {
    throw new CdhError(
      'PROVIDER_SETTINGS_INVALID',
      `aliyun ${where} ${REGION_RULE.slice(0, -1)}; ${describeValue(value)})`,
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

export { secretVersionSelector, type SecretVersionSelector } from '../settings';

/** A short description of a bad value for an error message (settings are not secret). */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'it is missing';
  return `got ${quoteUntrusted(value)}`;
}
