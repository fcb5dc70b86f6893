import { atFirstUse } from '../lib/first-use';
import { z } from '../lib/zod';
import { CdhError } from '../errors';
import { WRAP_TYPES } from '../crypto/wrap';
import { decodeUtf8 } from './compact';
import { findDuplicateMemberName } from './json';
import { describeJsonType, quoteUntrusted } from '../lib/untrusted';

/**
 * The JSON payload of a sealed secret, validated field by field. Messages name the field
 * and what was expected, never the value found (encrypted_* and annotations may be secret).
 */

export const PAYLOAD_VERSION = '0.1.0';
export const SECRET_TYPES = ['envelope', 'vault'] as const;

/** Deeper JSON is refused: nothing legitimate nests that far and recursive code must not overflow. */
export const MAX_PAYLOAD_DEPTH = 32;
/** Keys that could reach an object's prototype if some code later merged the payload. */
const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Generous bounds on strings that providers and the registry echo in error messages
 * (provider names are identifiers; KMS key ids and secret names are short), so a crafted
 * payload cannot turn one status message into megabytes.
 */
export const MAX_PROVIDER_LENGTH = 128;
export const MAX_KEY_ID_LENGTH = 1024;
export const MAX_NAME_LENGTH = 4096;

/**
 * The schemas, built at the first payload: nothing parses one before the first UnsealSecret,
 * and building them at module load cost start-up 5-7 ms (the bundle, median of 9 starts).
 */
function buildSchemas() {
  const header = z.object({
    version: z.literal(PAYLOAD_VERSION),
    type: z.enum(SECRET_TYPES),
  });
  const commonFields = {
    version: z.literal(PAYLOAD_VERSION),
    provider: z.string().max(MAX_PROVIDER_LENGTH),
    provider_settings: z.record(z.string(), z.unknown()),
    annotations: z.record(z.string(), z.string()).optional().default({}),
  };
  const envelope = z.object({
    ...commonFields,
    type: z.literal('envelope'),
    key_id: z.string().max(MAX_KEY_ID_LENGTH),
    encrypted_key: z.string(),
    encrypted_data: z.string(),
    wrap_type: z.enum(WRAP_TYPES),
    iv: z.string(),
  });
  const vault = z.object({
    ...commonFields,
    type: z.literal('vault'),
    name: z.string().max(MAX_NAME_LENGTH),
  });
  return { header, envelope, vault };
}

type PayloadSchemas = ReturnType<typeof buildSchemas>;
const payloadSchemas = atFirstUse(buildSchemas);

export type EnvelopeSecret = z.infer<PayloadSchemas['envelope']>;
export type VaultSecret = z.infer<PayloadSchemas['vault']>;
export type SealedSecretPayload = EnvelopeSecret | VaultSecret;

/** Parses payload bytes (UTF-8 JSON) and validates them. */
export function parsePayload(bytes: Uint8Array): SealedSecretPayload {
  const text = decodeUtf8(bytes, 'the sealed secret payload');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new CdhError('SEALED_SECRET_MALFORMED', 'the sealed secret payload is not valid JSON', { cause });
  }
  const duplicate = findDuplicateMemberName(text);
  if (duplicate !== undefined) {
    throw new CdhError(
      'PAYLOAD_INVALID',
      `sealed secret payload: member name ${describeSegment(duplicate)} appears twice in one object`,
    );
  }
  return validatePayload(value);
}

/** Validates a parsed payload: shape first, then the fields of its type. */
export function validatePayload(value: unknown): SealedSecretPayload {
  checkDepthAndKeys(value);
  const schemas = payloadSchemas();
  const header = schemas.header.safeParse(value);
  if (!header.success) throw payloadInvalid(value, header.error);
  const schema = header.data.type === 'envelope' ? schemas.envelope : schemas.vault;
  const result = schema.safeParse(value);
  if (!result.success) throw payloadInvalid(value, result.error);
  return result.data;
}

interface PendingNode {
  readonly value: unknown;
  readonly depth: number;
  readonly path: string;
}

/** Iterative walk: refuses nesting beyond MAX_PAYLOAD_DEPTH and prototype-reaching keys. */
function checkDepthAndKeys(root: unknown): void {
  const pending: PendingNode[] = [{ value: root, depth: 0, path: '' }];
  for (let node = pending.pop(); node !== undefined; node = pending.pop()) {
    const { value, depth, path } = node;
    if (value === null || typeof value !== 'object') continue;
    if (depth >= MAX_PAYLOAD_DEPTH) {
      throw new CdhError(
        'SEALED_SECRET_MALFORMED',
        `the sealed secret payload nests deeper than ${MAX_PAYLOAD_DEPTH} levels`,
      );
    }
    for (const key of Object.keys(value)) {
      const childPath = Array.isArray(value) ? `${path}[${key}]` : joinPath(path, key);
      if (!Array.isArray(value) && FORBIDDEN_KEYS.has(key)) {
        throw new CdhError('PAYLOAD_INVALID', `sealed secret payload: key ${childPath} is not allowed`);
      }
      pending.push({ value: (value as Record<string, unknown>)[key], depth: depth + 1, path: childPath });
    }
  }
}

function describeSegment(segment: PropertyKey): string {
  const text = String(segment);
  if (/^[A-Za-z0-9_-]{1,64}$/.test(text)) return text;
  return quoteUntrusted(text);
}

function joinPath(path: string, segment: PropertyKey): string {
  return path === '' ? describeSegment(segment) : `${path}.${describeSegment(segment)}`;
}

const EXPECTED_NAMES: Readonly<Record<string, string>> = {
  string: 'a string',
  object: 'an object',
  record: 'an object',
};

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let current: unknown = root;
  for (const segment of path) {
    if (current === null || typeof current !== 'object') return undefined;
    if (!Object.prototype.hasOwnProperty.call(current, segment)) return undefined;
    current = (current as Record<PropertyKey, unknown>)[segment];
  }
  return current;
}

function describeIssue(root: unknown, issue: z.core.$ZodIssue): string {
  const field = issue.path.length === 0 ? 'the payload' : issue.path.reduce<string>(joinPath, '');
  switch (issue.code) {
    case 'invalid_type': {
      const found = valueAt(root, issue.path);
      const expected = EXPECTED_NAMES[issue.expected] ?? issue.expected;
      if (found === undefined) return `${field} is missing (${expected} is required)`;
      return `${field} must be ${expected}, not ${describeJsonType(found)}`;
    }
    case 'invalid_value': {
      // The allowed values are ours; the value found is not echoed.
      const allowed = issue.values.map((v) => JSON.stringify(v)).join(' or ');
      if (valueAt(root, issue.path) === undefined) return `${field} is missing (it must be ${allowed})`;
      return `${field} must be ${allowed}`;
    }
    case 'too_big':
      return `${field} is longer than ${issue.maximum} characters`;
    default:
      return `${field} is invalid (${issue.code})`;
  }
}

const MAX_REPORTED_ISSUES = 5;

function payloadInvalid(root: unknown, error: z.ZodError): CdhError {
  const messages = error.issues.slice(0, MAX_REPORTED_ISSUES).map((issue) => describeIssue(root, issue));
  const more = error.issues.length - messages.length;
  const suffix = more > 0 ? `; and ${more} more` : '';
  return new CdhError('PAYLOAD_INVALID', `sealed secret payload: ${messages.join('; ')}${suffix}`);
}
