import { CdhError, type ErrorCode } from '../errors';

/** Plain JSON object (not null, not an array). */
export type JsonObject = Record<string, unknown>;

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** JSON type of a value for messages: never the value itself (it may be key material). */
export function jsonTypeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/**
 * Parses UTF-8 JSON of at most `maxBytes`. JSON.parse's own message quotes the input, so it is
 * dropped: the text may hold key material.
 */
export function parseBoundedJson(
  bytes: Uint8Array,
  what: string,
  maxBytes: number,
  code: ErrorCode,
): unknown {
  if (bytes.length > maxBytes) {
    throw new CdhError(code, `${what} is ${bytes.length} bytes, more than the ${maxBytes} accepted`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new CdhError(code, `${what} is not valid UTF-8`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new CdhError(code, `${what} is not valid JSON`);
  }
}
