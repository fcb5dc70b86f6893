import { X509Certificate } from 'node:crypto';
import * as path from 'node:path';
import { fileFingerprintNow } from '../../../lib/file-fingerprint';
import { credentialError, readCredentialFile } from '../credentials';
import { openPkcs12, Pkcs12Error, type ClientKeyMaterial } from './pkcs12';
import type { ClientKeyFilePaths } from './settings';
import { standardBase64Problem } from '../../../lib/base64';

/** A client key loaded from its three files, with the files' fingerprints when read. */
export interface LoadedClientKey {
  /** `KeyId` of the clientKey file: sent as x-kms-acccesskeyid. */
  readonly clientKeyId: string;
  readonly material: ClientKeyMaterial;
  /** PEM of the instance CA chain (only trust anchor for the gateway). */
  readonly caPem: string;
  /** Fingerprints taken before reading; a differing fingerprint later means "reload". */
  readonly fingerprint: string;
}

/**
 * Fingerprint of the three files together: stat only, taken on every call (so a replaced file
 * takes effect at the next one), hence synchronous (see fileFingerprintNow).
 */
export function clientKeyFilesFingerprint(paths: ClientKeyFilePaths): string {
  return [
    fileFingerprintNow(paths.clientKey),
    fileFingerprintNow(paths.password),
    fileFingerprintNow(paths.instanceCa),
  ].join('|');
}

/** Reads and opens the client key, its password and the instance CA. Never puts content in errors. */
export async function loadClientKey(paths: ClientKeyFilePaths): Promise<LoadedClientKey> {
  const fingerprint = clientKeyFilesFingerprint(paths);
  const read = (filePath: string, what: string): Promise<Buffer> =>
    readCredentialFile(filePath, what, paths.confined === true ? path.dirname(filePath) : undefined);
  const reads = await Promise.allSettled([
    read(paths.clientKey, 'client key file'),
    read(paths.password, 'client key password file'),
    read(paths.instanceCa, 'KMS instance CA file'),
  ]);
  const failed = reads.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    // One file failed: what the others read (a key, a password) is wiped before the error.
    for (const r of reads) if (r.status === 'fulfilled') r.value.fill(0);
    throw failed.reason;
  }
  const [clientKeyBytes, passwordBytes, caBytes] = reads.map(
    (r) => (r as PromiseFulfilledResult<Buffer>).value,
  ) as [Buffer, Buffer, Buffer];
  try {
    const caPem = parseCaFile(caBytes, paths.instanceCa);
    const { keyId, pkcs12 } = parseClientKeyFile(clientKeyBytes, paths.clientKey);
    const password = parsePasswordFile(passwordBytes, paths.password);
    let material: ClientKeyMaterial;
    try {
      material = openPkcs12(pkcs12, password);
    } catch (error) {
      if (!(error instanceof Pkcs12Error)) throw error;
      if (error.reason === 'wrong-password') {
        throw credentialError(
          paths.clientKey,
          'client key file',
          `holds a PKCS#12 that could not be decrypted with the password file ${path.basename(paths.password)} ` +
            '(wrong password, or a damaged key)',
        );
      }
      throw credentialError(paths.clientKey, 'client key file', `holds a PKCS#12 that ${error.message}`);
    } finally {
      pkcs12.fill(0);
    }
    return { clientKeyId: keyId, material, caPem, fingerprint };
  } finally {
    clientKeyBytes.fill(0);
    passwordBytes.fill(0);
  }
}

/** `{"KeyId": "...", "PrivateKeyData": "<base64 PKCS#12>"}`. */
function parseClientKeyFile(bytes: Buffer, filePath: string): { keyId: string; pkcs12: Buffer } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stripBom(bytes.toString('utf8')));
  } catch {
    throw credentialError(filePath, 'client key file', 'is not valid JSON');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw credentialError(filePath, 'client key file', 'is not a JSON object');
  }
  const { KeyId: keyId, PrivateKeyData: privateKeyData } = parsed as Record<string, unknown>;
  if (typeof keyId !== 'string' || keyId.length === 0) {
    throw credentialError(filePath, 'client key file', 'has no string field "KeyId"');
  }
  if (typeof privateKeyData !== 'string') {
    throw credentialError(filePath, 'client key file', 'has no string field "PrivateKeyData"');
  }
  const base64 = privateKeyData.replace(/\s+/g, '');
  if (base64.length === 0 || standardBase64Problem(base64) !== undefined) {
    throw credentialError(filePath, 'client key file', 'has a "PrivateKeyData" that is not base64');
  }
  return { keyId, pkcs12: Buffer.from(base64, 'base64') };
}

/**
 * Two forms exist: the console's JSON `{"ClientKeyPassword": "..."}` and bare text (what the
 * upstream driver reads; trailing whitespace trimmed).
 */
export function parsePasswordFile(bytes: Buffer, filePath: string): string {
  const text = stripBom(bytes.toString('utf8'));
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  let password: string;
  if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) {
    const value = (parsed as Record<string, unknown>)['ClientKeyPassword'];
    if (typeof value !== 'string') {
      throw credentialError(
        filePath,
        'client key password file',
        'is JSON without a string "ClientKeyPassword"',
      );
    }
    password = value;
  } else {
    password = text.trimEnd();
  }
  if (password.length === 0) throw credentialError(filePath, 'client key password file', 'is empty');
  return password;
}

/** One or more PEM certificates; each must parse. */
function parseCaFile(bytes: Buffer, filePath: string): string {
  const text = bytes.toString('utf8');
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) {
    throw credentialError(filePath, 'KMS instance CA file', 'holds no PEM certificate');
  }
  for (const block of blocks) {
    try {
      new X509Certificate(block);
    } catch {
      throw credentialError(filePath, 'KMS instance CA file', 'holds a PEM certificate that does not parse');
    }
  }
  return blocks.join('\n') + '\n';
}

function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}
