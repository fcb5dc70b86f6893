import { CdhError } from '../errors';
import { base64UrlProblem, standardBase64Problem } from '../lib/base64';

/** The four parts of `sealed.<header>.<payload>.<signature>`, still encoded. */
export interface SealedParts {
  readonly header: string;
  readonly payload: string;
  readonly signature: string;
}

export const SEALED_PREFIX = 'sealed';

// ignoreBOM keeps a leading U+FEFF in the text (the default would drop it silently).
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Decodes UTF-8 strictly: invalid sequences are an error, not U+FFFD; a byte order mark stays. */
export function decodeUtf8(bytes: Uint8Array, what: string): string {
  try {
    return utf8.decode(bytes);
  } catch (cause) {
    throw new CdhError('SEALED_SECRET_MALFORMED', `${what} is not valid UTF-8`, { cause });
  }
}

/**
 * Splits a sealed secret into its parts. Leading and trailing whitespace (a newline at the
 * end of a file) is ignored; nothing else is.
 */
export function splitSealedSecret(input: Uint8Array | string): SealedParts {
  const text = trimWhitespace(typeof input === 'string' ? input : decodeUtf8(input, 'the sealed secret'));
  const parts = text.split('.');
  if (parts.length !== 4 || parts[0] !== SEALED_PREFIX) {
    throw new CdhError(
      'SEALED_SECRET_MALFORMED',
      `a sealed secret is "sealed.<header>.<payload>.<signature>" (4 parts separated by "."); ` +
        `the input ${parts[0] === SEALED_PREFIX ? `has ${parts.length} parts` : 'does not start with "sealed."'}`,
    );
  }
  const [, header = '', payload = '', signature = ''] = parts;
  return { header, payload, signature };
}

/** String.prototype.trim strips U+FEFF too; a byte order mark is not whitespace (as upstream's Rust trim). */
function isTrimmed(char: string): boolean {
  return char !== '\uFEFF' && /\s/.test(char);
}

function trimWhitespace(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && isTrimmed(text.charAt(start))) start++;
  while (end > start && isTrimmed(text.charAt(end - 1))) end--;
  return text.slice(start, end);
}

/**
 * Decodes the payload part without a signature check (verification skipped, `inspect`).
 * Published unsigned secrets use base64url without padding and also standard base64 with
 * `=` padding; both are accepted, each strictly.
 */
export function decodeUnverifiedPayload(encoded: string): Buffer {
  if (base64UrlProblem(encoded) === undefined) return Buffer.from(encoded, 'base64url');
  const standardProblem = standardBase64Problem(encoded);
  if (standardProblem === undefined) return Buffer.from(encoded, 'base64');
  throw new CdhError(
    'SEALED_SECRET_MALFORMED',
    `the sealed secret payload is neither base64url without padding nor standard base64: it ${standardProblem}`,
  );
}
