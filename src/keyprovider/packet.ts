import { decodeStandardBase64 } from '../lib/base64';
import { IV_BYTES, WRAP_TYPES, type WrapType } from '../crypto/wrap';
import { CdhError } from '../errors';
import type { Annotations, ProviderSettings } from '../providers/types';
import { isJsonObject, jsonTypeOf, parseBoundedJson, type JsonObject } from './json';

/**
 * The annotation packet ocicrypt stores under `org.opencontainers.image.enc.keys.provider.
 * attestation-agent`: v1 (`kid`, `wrapped_data`, `iv`, `wrap_type`, for a KEK from the KBS) or
 * v2 (adds `version`, `provider`, `provider_settings`, `annotations`, for any KMS). v1 is v2
 * with the defaults, as upstream parses it.
 */
export interface AnnotationPacket {
  readonly version: string;
  readonly kid: string;
  readonly wrappedData: Buffer;
  /** Lower case; `kbs` when absent. */
  readonly provider: string;
  readonly iv?: Buffer;
  readonly wrapType?: WrapType;
  readonly providerSettings: ProviderSettings;
  readonly annotations: Annotations;
}

export const PACKET_VERSION = '0.1.0';
/** A packet holds ~200 bytes of wrapped options: anything near this is not one. */
export const MAX_PACKET_BYTES = 64 * 1024;
const MAX_KID_LENGTH = 2048;
const MAX_PROVIDER_LENGTH = 64;
const MAX_ANNOTATIONS = 64;
const MAX_ANNOTATION_LENGTH = 4096;

function invalid(message: string): CdhError {
  return new CdhError('ANNOTATION_PACKET_INVALID', `annotation packet: ${message}`);
}

function optionalString(packet: JsonObject, field: string, maxLength: number): string | undefined {
  const value = packet[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw invalid(`field "${field}" is ${jsonTypeOf(value)}, not a string`);
  if (value.length > maxLength) throw invalid(`field "${field}" is longer than ${maxLength} characters`);
  return value;
}

function requiredString(packet: JsonObject, field: string, maxLength: number): string {
  const value = optionalString(packet, field, maxLength);
  if (value === undefined) throw invalid(`field "${field}" is missing`);
  if (value.length === 0) throw invalid(`field "${field}" is empty`);
  return value;
}

function optionalObject(packet: JsonObject, field: string): JsonObject {
  const value = packet[field];
  if (value === undefined) return {};
  if (!isJsonObject(value)) throw invalid(`field "${field}" is ${jsonTypeOf(value)}, not an object`);
  return value;
}

function stringMap(packet: JsonObject, field: string): Annotations {
  const value = optionalObject(packet, field);
  const entries = Object.entries(value);
  if (entries.length > MAX_ANNOTATIONS)
    throw invalid(`field "${field}" has more than ${MAX_ANNOTATIONS} entries`);
  const out: Record<string, string> = {};
  for (const [key, entry] of entries) {
    if (typeof entry !== 'string')
      throw invalid(`${field}.${JSON.stringify(key.slice(0, 64))} is ${jsonTypeOf(entry)}, not a string`);
    if (entry.length > MAX_ANNOTATION_LENGTH)
      throw invalid(
        `${field}.${JSON.stringify(key.slice(0, 64))} is longer than ${MAX_ANNOTATION_LENGTH} characters`,
      );
    out[key] = entry;
  }
  return out;
}

/** Parses a packet strictly; errors name the field, never a value. */
export function parseAnnotationPacket(bytes: Uint8Array): AnnotationPacket {
  const parsed = parseBoundedJson(bytes, 'annotation packet', MAX_PACKET_BYTES, 'ANNOTATION_PACKET_INVALID');
  if (!isJsonObject(parsed)) throw invalid(`it is ${jsonTypeOf(parsed)}, not a JSON object`);
  const version = optionalString(parsed, 'version', 32) ?? PACKET_VERSION;
  if (version !== PACKET_VERSION)
    throw invalid(`version ${JSON.stringify(version)} is not supported (only ${PACKET_VERSION})`);
  const kid = requiredString(parsed, 'kid', MAX_KID_LENGTH);
  const wrappedText = requiredString(parsed, 'wrapped_data', MAX_PACKET_BYTES);
  const wrappedData = decodeStandardBase64(
    wrappedText,
    'annotation packet: field "wrapped_data"',
    'ANNOTATION_PACKET_INVALID',
  );
  const provider = (optionalString(parsed, 'provider', MAX_PROVIDER_LENGTH) ?? 'kbs').toLowerCase();
  if (provider.length === 0) throw invalid('field "provider" is empty');
  const ivText = optionalString(parsed, 'iv', 64);
  const iv =
    ivText === undefined
      ? undefined
      : decodeStandardBase64(ivText, 'annotation packet: field "iv"', 'ANNOTATION_PACKET_INVALID');
  const wrapTypeText = optionalString(parsed, 'wrap_type', 32);
  let wrapType: WrapType | undefined;
  if (wrapTypeText !== undefined) {
    if (!(WRAP_TYPES as readonly string[]).includes(wrapTypeText))
      throw invalid(
        `wrap_type ${JSON.stringify(wrapTypeText)} is not supported (${WRAP_TYPES.join(' or ')})`,
      );
    wrapType = wrapTypeText as WrapType;
  }
  if (provider === 'kbs') {
    if (wrapType === undefined) throw invalid('field "wrap_type" is missing (required with provider kbs)');
    if (iv === undefined) throw invalid('field "iv" is missing (required with provider kbs)');
  }
  if (wrapType !== undefined && iv !== undefined && iv.length !== IV_BYTES[wrapType]) {
    throw invalid(`iv is ${iv.length} bytes; wrap_type ${wrapType} needs a ${IV_BYTES[wrapType]}-byte iv`);
  }
  return {
    version,
    kid,
    wrappedData,
    provider,
    ...(iv === undefined ? {} : { iv }),
    ...(wrapType === undefined ? {} : { wrapType }),
    providerSettings: optionalObject(parsed, 'provider_settings'),
    annotations: stringMap(parsed, 'annotations'),
  };
}
