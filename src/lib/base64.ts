import { CdhError, type ErrorCode } from '../errors';
import { bufferView } from './bytes';

/**
 * Strict base64 decoding. Node's `Buffer.from(s, 'base64')` skips characters it does not
 * know and ignores padding, so it is only called after the text has been validated here:
 * right alphabet, right length, canonical padding and zero trailing bits (each byte string
 * has exactly one accepted encoding), no whitespace.
 */

const STANDARD_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** Char code → 6-bit value, or -1 for a character outside the alphabet. */
function lookupTable(alphabet: string): Int8Array {
  const table = new Int8Array(128).fill(-1);
  for (let i = 0; i < alphabet.length; i++) table[alphabet.charCodeAt(i)] = i;
  return table;
}

const STANDARD_TABLE = lookupTable(STANDARD_ALPHABET);
const URL_TABLE = lookupTable(URL_ALPHABET);

function sextet(table: Int8Array, text: string, index: number): number {
  const code = text.charCodeAt(index);
  return code < 128 ? (table[code] ?? -1) : -1;
}

/** Why `text` is not a canonical encoding of its data characters, or undefined when it is. */
function dataProblem(table: Int8Array, text: string, dataLength: number): string | undefined {
  for (let i = 0; i < dataLength; i++) {
    if (sextet(table, text, i) < 0) return `has a character outside the base64 alphabet at offset ${i}`;
  }
  const leftover = dataLength % 4;
  if (leftover === 1) return 'has a length that no byte string encodes to';
  // The last character carries bits past the end of the data: they must be zero.
  const unusedBits = leftover === 2 ? 0b1111 : leftover === 3 ? 0b11 : 0;
  if (unusedBits !== 0 && (sextet(table, text, dataLength - 1) & unusedBits) !== 0) {
    return 'is not canonical (non-zero trailing bits)';
  }
  return undefined;
}

/** Why `text` is not strict standard base64 with `=` padding, or undefined when it is. */
export function standardBase64Problem(text: string): string | undefined {
  if (text.length % 4 !== 0) return 'has a length that is not a multiple of 4 (padding missing or extra)';
  let dataLength = text.length;
  while (dataLength > 0 && text.charCodeAt(dataLength - 1) === 0x3d /* = */) dataLength--;
  const padding = text.length - dataLength;
  if (padding > 2) return 'has too much "=" padding';
  if (padding > 0 && (dataLength % 4) + padding !== 4) return 'has wrong "=" padding';
  return dataProblem(STANDARD_TABLE, text, dataLength);
}

/** Why `text` is not strict base64url without padding, or undefined when it is. */
export function base64UrlProblem(text: string): string | undefined {
  return dataProblem(URL_TABLE, text, text.length);
}

/**
 * Decodes strict standard base64 (`A-Z a-z 0-9 + /`, canonical `=` padding).
 * `what` names the field in the error, e.g. `encrypted_key`; the value is never echoed.
 */
export function decodeStandardBase64(
  text: string,
  what: string,
  errorCode: ErrorCode = 'PAYLOAD_INVALID',
): Buffer {
  const problem = standardBase64Problem(text);
  if (problem !== undefined) {
    throw new CdhError(errorCode, `${what} is not valid standard base64: it ${problem}`);
  }
  return Buffer.from(text, 'base64');
}

/** Decodes strict base64url without padding (JWS parts). */
export function decodeBase64Url(
  text: string,
  what: string,
  errorCode: ErrorCode = 'SEALED_SECRET_MALFORMED',
): Buffer {
  const problem = base64UrlProblem(text);
  if (problem !== undefined) {
    throw new CdhError(errorCode, `${what} is not valid base64url without padding: it ${problem}`);
  }
  return Buffer.from(text, 'base64url');
}

export function encodeBase64Url(data: Uint8Array): string {
  return bufferView(data).toString('base64url');
}

export function encodeStandardBase64(data: Uint8Array): string {
  return bufferView(data).toString('base64');
}
