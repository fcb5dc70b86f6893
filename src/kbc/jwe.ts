import { bufferView } from '../lib/bytes';
import {
  constants as cryptoConstants,
  createDecipheriv,
  createPrivateKey,
  privateDecrypt,
  randomBytes,
  webcrypto,
  type KeyObject,
} from 'node:crypto';

/**
 * The TEE key of a token and the JWE answers encrypted to it (kbs.md: flattened JSON,
 * A256GCM; ECDH-ES+A256KW on P-256/P-521, RSA-OAEP-256, legacy RSA1_5).
 *
 * ECDH-ES+A256KW and RSA-OAEP-256 are decrypted by `jose`. RSA1_5 is not in jose 6 (WebCrypto
 * has no RSAES-PKCS1-v1_5), and Node >= 20.11 refuses `privateDecrypt` with RSA_PKCS1_PADDING
 * (CVE-2023-46809, the Marvin timing attack) unless started with --security-revert, which we do
 * not do. So RSA1_5 is done here: a raw RSA private operation (RSA_NO_PADDING, which Node
 * allows), the PKCS#1 v1.5 block checked without branching on its content, and on any
 * failure a random CEK used instead (RFC 7516 section 11.5): a bad block then fails exactly as
 * a bad tag does, so no padding oracle is offered. The content is AES-256-GCM by node:crypto.
 */

export type TeeKeyKind = 'ec-p256' | 'ec-p521' | 'rsa';

/** A JOSE key management algorithm a KBS answer may use. */
export type JweAlg = 'ECDH-ES+A256KW' | 'RSA-OAEP-256' | 'RSA1_5';

export class TeeKey {
  private constructor(
    readonly kind: TeeKeyKind,
    /** Non-extractable WebCrypto key for jose (ECDH deriveBits or RSA-OAEP decrypt). */
    private readonly cryptoKey: webcrypto.CryptoKey,
    /** The RSA key for the RSA1_5 path (absent for EC keys). */
    private readonly rsaKey: KeyObject | undefined,
  ) {}

  /** Parses the AA's `tee_keypair` PEM (RSA PKCS#1 or PKCS#8, EC P-256/P-521 PKCS#8). */
  static async fromPem(pem: string): Promise<TeeKey> {
    const keyObject = createPrivateKey({ key: pem, format: 'pem' });
    const kind = keyKind(keyObject);
    const der = keyObject.export({ type: 'pkcs8', format: 'der' });
    try {
      const algorithm =
        kind === 'rsa'
          ? { name: 'RSA-OAEP', hash: 'SHA-256' }
          : { name: 'ECDH', namedCurve: kind === 'ec-p256' ? 'P-256' : 'P-521' };
      const usages: webcrypto.KeyUsage[] = kind === 'rsa' ? ['decrypt', 'unwrapKey'] : ['deriveBits'];
      const cryptoKey = await webcrypto.subtle.importKey('pkcs8', der, algorithm, false, usages);
      return new TeeKey(kind, cryptoKey, kind === 'rsa' ? keyObject : undefined);
    } finally {
      der.fill(0);
    }
  }

  /** The algorithms this key can decrypt. */
  get algorithms(): readonly JweAlg[] {
    return this.kind === 'rsa' ? ['RSA-OAEP-256', 'RSA1_5'] : ['ECDH-ES+A256KW'];
  }

  /**
   * Decrypts a flattened-JSON JWE. Throws JweError (never naming key or plaintext) when the
   * answer is malformed, uses an algorithm this key does not take, or does not authenticate.
   */
  async decrypt(answer: Buffer): Promise<Buffer> {
    const jwe = parseFlattened(answer);
    const protectedHeader = parseProtectedHeader(jwe.protected);
    for (const name of Object.keys({ ...jwe.header, ...jwe.unprotected }))
      if (name in protectedHeader) throw new JweError(`header parameter "${name}" appears twice`);
    const header = { ...jwe.unprotected, ...jwe.header, ...protectedHeader };
    if (header.enc !== 'A256GCM')
      throw new JweError(`content encryption "${String(header.enc)}" is not A256GCM`);
    const alg = header.alg;
    if (!this.algorithms.includes(alg as JweAlg)) {
      throw new JweError(
        `key management "${String(alg)}" does not fit the TEE key (${this.kind}: ${this.algorithms.join(', ')})`,
      );
    }
    if (alg === 'RSA1_5') return this.decryptRsa15(jwe);
    const jose = await loadJose();
    try {
      const result = await jose.flattenedDecrypt(jwe, this.cryptoKey, {
        keyManagementAlgorithms: [alg as string],
        contentEncryptionAlgorithms: ['A256GCM'],
      });
      return bufferView(result.plaintext);
    } catch (error) {
      throw new JweError(`it does not decrypt (${joseCode(error)})`);
    }
  }

  private decryptRsa15(jwe: FlattenedJwe): Buffer {
    const rsaKey = this.rsaKey as KeyObject;
    const cek = rsa15Cek(rsaKey, fromB64url(jwe.encrypted_key ?? '', 'encrypted_key'));
    try {
      const iv = fromB64url(jwe.iv, 'iv');
      const tag = fromB64url(jwe.tag, 'tag');
      if (iv.length !== 12) throw new JweError('iv is not 12 bytes');
      if (tag.length !== 16) throw new JweError('tag is not 16 bytes');
      const decipher = createDecipheriv('aes-256-gcm', cek, iv, { authTagLength: 16 });
      const aad = jwe.aad === undefined ? jwe.protected : `${jwe.protected}.${jwe.aad}`;
      decipher.setAAD(Buffer.from(aad, 'ascii'));
      decipher.setAuthTag(tag);
      const body = decipher.update(fromB64url(jwe.ciphertext, 'ciphertext'));
      try {
        return Buffer.concat([body, decipher.final()]);
      } catch {
        body.fill(0);
        throw new JweError('it does not decrypt (authentication failed)');
      } finally {
        body.fill(0);
      }
    } finally {
      cek.fill(0);
    }
  }
}

/** A KBS answer that is not a JWE this key decrypts; the message is safe to show. */
export class JweError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JweError';
  }
}

interface FlattenedJwe {
  protected: string;
  /** Unprotected headers (RFC 7516 7.2.2): some producers put `epk` in the recipient's `header`. */
  header?: Record<string, unknown>;
  unprotected?: Record<string, unknown>;
  encrypted_key?: string;
  iv: string;
  ciphertext: string;
  tag: string;
  aad?: string;
}

const B64URL = /^[A-Za-z0-9_-]*$/;

function parseFlattened(answer: Buffer): FlattenedJwe {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(answer));
  } catch {
    throw new JweError('it is not UTF-8 JSON (a flattened JWE was expected)');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new JweError('it is not a JSON object (a flattened JWE was expected)');
  const record = value as Record<string, unknown>;
  for (const field of ['protected', 'iv', 'ciphertext', 'tag'] as const) {
    const text = record[field];
    if (typeof text !== 'string' || !B64URL.test(text))
      throw new JweError(`its "${field}" is missing or not base64url`);
  }
  for (const field of ['encrypted_key', 'aad'] as const) {
    const text = record[field];
    if (text !== undefined && (typeof text !== 'string' || !B64URL.test(text)))
      throw new JweError(`its "${field}" is not base64url`);
  }
  const jwe: FlattenedJwe = {
    protected: record['protected'] as string,
    iv: record['iv'] as string,
    ciphertext: record['ciphertext'] as string,
    tag: record['tag'] as string,
  };
  if (typeof record['encrypted_key'] === 'string') jwe.encrypted_key = record['encrypted_key'];
  if (typeof record['aad'] === 'string') jwe.aad = record['aad'];
  for (const field of ['header', 'unprotected'] as const) {
    const value = record[field];
    if (value === undefined) continue;
    if (value === null || typeof value !== 'object' || Array.isArray(value))
      throw new JweError(`its "${field}" is not a JSON object`);
    jwe[field] = value as Record<string, unknown>;
  }
  return jwe;
}

function parseProtectedHeader(encoded: string): Record<string, unknown> {
  try {
    const header: unknown = JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8'));
    if (header !== null && typeof header === 'object' && !Array.isArray(header))
      return header as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new JweError('its protected header is not a base64url JSON object');
}

function fromB64url(text: string, field: string): Buffer {
  if (!B64URL.test(text)) throw new JweError(`its "${field}" is not base64url`);
  return Buffer.from(text, 'base64url');
}

const CEK_BYTES = 32;

/**
 * RSAES-PKCS1-v1_5 decryption of a 32-byte CEK: EM = 0x00 0x02 PS(>= 8 non-zero) 0x00 CEK.
 * Every byte is looked at whatever its value; the result is the CEK or, if anything is wrong,
 * random bytes (so the GCM tag check fails the same way as for a wrong key).
 */
function rsa15Cek(key: KeyObject, encryptedKey: Buffer): Buffer {
  const random = randomBytes(CEK_BYTES);
  const modulusBytes = Math.ceil((key.asymmetricKeyDetails?.modulusLength ?? 0) / 8);
  let em: Buffer;
  try {
    if (encryptedKey.length !== modulusBytes) return random;
    em = privateDecrypt({ key, padding: cryptoConstants.RSA_NO_PADDING }, encryptedKey);
  } catch {
    return random;
  }
  const k = em.length;
  let good = isZero(em[0] ?? 1) & isZero((em[1] ?? 0) ^ 2);
  let found = 0;
  let separator = 0;
  for (let i = 2; i < k; i++) {
    const zero = isZero(em[i] ?? 1);
    const first = zero & (found ^ 1);
    separator |= first * i;
    found |= zero;
  }
  good &= found;
  good &= isZero(separator - (k - CEK_BYTES - 1));
  // At least 8 padding bytes: the separator sits at index >= 10.
  good &= (separator - 10) >>> 31 ? 0 : 1;
  const mask = -good & 0xff;
  const cek = Buffer.alloc(CEK_BYTES);
  for (let j = 0; j < CEK_BYTES; j++) {
    const fromBlock = em[k - CEK_BYTES + j] ?? 0;
    cek[j] = (fromBlock & mask) | ((random[j] ?? 0) & ~mask & 0xff);
  }
  em.fill(0);
  random.fill(0);
  return cek;
}

/** 1 if x === 0 else 0, for small non-negative or negative integers, without a branch. */
function isZero(x: number): number {
  return ((x | -x) >>> 31) ^ 1;
}

function keyKind(key: KeyObject): TeeKeyKind {
  if (key.type !== 'private') throw new TypeError('not a private key');
  if (key.asymmetricKeyType === 'rsa') return 'rsa';
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1' || curve === 'P-256') return 'ec-p256';
    if (curve === 'secp521r1' || curve === 'P-521') return 'ec-p521';
    throw new TypeError(`EC curve ${String(curve)} is not P-256 or P-521`);
  }
  throw new TypeError(`key type ${String(key.asymmetricKeyType)} is not RSA or EC`);
}

function joseCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'decryption failed';
}

type Jose = typeof import('jose', { with: { 'resolution-mode': 'import' } });
let josePromise: Promise<Jose> | undefined;

/** jose is ESM-only; this CommonJS build loads it once with a dynamic import (works on all of Node 20). */
export function loadJose(): Promise<Jose> {
  josePromise ??= import('jose');
  return josePromise;
}
