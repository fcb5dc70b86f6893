import { createHash } from 'node:crypto';

/**
 * The KBS attestation protocol (RCAR, version 0.4.0) as the emulators speak it (kbs.md):
 * the runtime data binding the TEE key to the nonce, its RFC 8785 (JCS) digest, and the
 * `sample` TEE's evidence.
 */

export const KBS_PROTOCOL_VERSION = '0.4.0';
export const SAMPLE_TEE = 'sample';

export type PublicJwk = Record<string, string>;

/** RFC 8785 JSON Canonicalization for JSON values (objects, arrays, strings, finite numbers, booleans, null). */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError('JCS: a number is not finite');
    return JSON.stringify(value);
  }
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object') {
    const record = value as Record<string, unknown>;
    // Sorted by UTF-16 code units, which is what Array.prototype.sort does with strings.
    const keys = Object.keys(record)
      .filter((k) => record[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(record[k])}`).join(',')}}`;
  }
  throw new TypeError(`JCS: ${typeof value} is not a JSON value`);
}

/** The runtime data the report data commits to. */
export function runtimeData(
  teePubkey: PublicJwk,
  nonce: string,
  additionalEvidence = '',
): Record<string, unknown> {
  return { 'tee-pubkey': teePubkey, nonce, 'additional-evidence': additionalEvidence };
}

/** SHA-384 of the JCS form of the runtime data. */
export function reportData(runtime: Record<string, unknown>): Buffer {
  return createHash('sha384').update(canonicalJson(runtime), 'utf8').digest();
}

/** The `sample` TEE's evidence for a report data. */
export function sampleEvidence(report: Buffer): { svn: string; report_data: string } {
  return { svn: '1', report_data: report.toString('base64') };
}
