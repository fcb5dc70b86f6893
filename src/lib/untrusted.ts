/**
 * How a value from outside (a sealed secret, a request, a remote's answer) appears in an
 * error message or a log line: one rule for every message, so none can smuggle control
 * characters, look-alike characters or megabytes into a log.
 */

/** Most characters of an untrusted string shown; longer ones are cut and marked with `…`. */
export const UNTRUSTED_SHOWN_CHARS = 100;

/** `null`, `an array`, `an object`, `a string`, `a number`, … */
export function describeJsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/**
 * A string JSON-quoted with everything outside printable ASCII escaped, cut at
 * UNTRUSTED_SHOWN_CHARS; any other value by its JSON type (never its content).
 */
export function quoteUntrusted(value: unknown): string {
  if (typeof value !== 'string') return describeJsonType(value);
  const shown = JSON.stringify(value.slice(0, UNTRUSTED_SHOWN_CHARS)).replace(
    /[^\u0020-\u007e]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  return value.length > UNTRUSTED_SHOWN_CHARS ? `${shown}…` : shown;
}

/**
 * Text from a remote that is shown unquoted (a KMS error message): control characters
 * replaced by spaces, cut at UNTRUSTED_SHOWN_CHARS with `…`.
 */
export function printableUntrusted(text: string | undefined): string {
  // eslint-disable-next-line no-control-regex
  const clean = (text ?? '').replace(/[\u0000-\u001f\u007f]/g, ' ');
  return clean.length > UNTRUSTED_SHOWN_CHARS ? `${clean.slice(0, UNTRUSTED_SHOWN_CHARS)}…` : clean;
}
