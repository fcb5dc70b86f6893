import type { z } from 'zod';
import { CdhError } from '../errors';
import { quoteUntrusted } from '../lib/untrusted';

/** Whose settings a schema checks, as messages name them. */
export interface SettingsOwner {
  /** e.g. `aliyun` */
  readonly provider: string;
  /** `provider_settings` or `annotations` of the sealed secret. */
  readonly section: 'provider_settings' | 'annotations';
  /** e.g. `sts_token`, when the provider has client types. */
  readonly clientType?: string;
}

/**
 * Validates a sealed secret's provider_settings or annotations (untrusted input) with a zod
 * schema. The first problem is PROVIDER_SETTINGS_INVALID naming the provider, the field, what
 * it must be, the client type, and the value (quoted by quoteUntrusted) or that it is missing:
 * `aliyun provider_settings.region_id must be ... (client_type sts_token; got "CN")`.
 */
export function parseSettings<S extends z.ZodType>(
  schema: S,
  value: unknown,
  owner: SettingsOwner,
): z.output<S> {
  const parsed = schema.safeParse(value ?? {}, { reportInput: true });
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const field = issue?.path.map(String).join('.') ?? '';
  const input: unknown = issue !== undefined && 'input' in issue ? issue.input : undefined;
  const shown = input === undefined ? 'it is missing' : `got ${quoteUntrusted(input)}`;
  const context = owner.clientType === undefined ? shown : `client_type ${owner.clientType}; ${shown}`;
  const name = field === '' ? owner.section : `${owner.section}.${field}`;
  return raise(`${owner.provider} ${name} ${issue?.message ?? 'is invalid'} (${context})`);
}

function raise(message: string): never {
  throw new CdhError('PROVIDER_SETTINGS_INVALID', message);
}
