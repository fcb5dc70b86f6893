import { spawn } from 'node:child_process';
import {
  constants as cryptoConstants,
  createCipheriv,
  createPublicKey,
  publicEncrypt,
  randomBytes,
} from 'node:crypto';
import { loadJose } from '../../kbc/jwe';
import type { PublicJwk } from './protocol';

/**
 * Encrypts a resource to the TEE public key of a token, as a flattened-JSON JWE (A256GCM).
 * The key management algorithm follows the JWK's `alg` (ECDH-ES+A256KW, RSA-OAEP-256, RSA1_5).
 *
 * Two producers: `jose` (RSA1_5 by hand, jose 6 has none) and Debian's python3-jwcrypto (a
 * second, independent JOSE implementation, so that client and emulator do not share one
 * library's mistakes).
 */
export type JweProducer = 'jose' | 'jwcrypto';

export const JWE_ALGS = ['ECDH-ES+A256KW', 'RSA-OAEP-256', 'RSA1_5'] as const;
export type EmulatorJweAlg = (typeof JWE_ALGS)[number];

export function algOf(jwk: PublicJwk): EmulatorJweAlg {
  const alg = jwk['alg'];
  if (alg !== undefined && (JWE_ALGS as readonly string[]).includes(alg)) return alg as EmulatorJweAlg;
  if (alg === undefined) return jwk['kty'] === 'RSA' ? 'RSA-OAEP-256' : 'ECDH-ES+A256KW';
  throw new Error(`unsupported tee-pubkey alg ${alg}`);
}

export async function encryptResource(
  plaintext: Buffer,
  jwk: PublicJwk,
  producer: JweProducer,
  python = '/usr/bin/python3',
): Promise<Record<string, unknown>> {
  const alg = algOf(jwk);
  if (producer === 'jwcrypto') return jwcryptoEncrypt(plaintext, jwk, alg, python);
  if (alg === 'RSA1_5') return rsa15Encrypt(plaintext, jwk);
  const jose = await loadJose();
  const key = await jose.importJWK({ ...jwk, alg }, alg);
  const jwe = await new jose.FlattenedEncrypt(plaintext)
    .setProtectedHeader({ alg, enc: 'A256GCM' })
    .encrypt(key);
  return jwe as unknown as Record<string, unknown>;
}

/** RSAES-PKCS1-v1_5 key wrap (encryption is still allowed in Node) + AES-256-GCM content. */
function rsa15Encrypt(plaintext: Buffer, jwk: PublicJwk): Record<string, unknown> {
  const publicKey = createPublicKey({ key: { kty: 'RSA', n: jwk['n'], e: jwk['e'] }, format: 'jwk' });
  const cek = randomBytes(32);
  const iv = randomBytes(12);
  const protectedB64 = Buffer.from(JSON.stringify({ alg: 'RSA1_5', enc: 'A256GCM' })).toString('base64url');
  const encryptedKey = publicEncrypt({ key: publicKey, padding: cryptoConstants.RSA_PKCS1_PADDING }, cek);
  const cipher = createCipheriv('aes-256-gcm', cek, iv);
  cipher.setAAD(Buffer.from(protectedB64, 'ascii'));
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  cek.fill(0);
  return {
    protected: protectedB64,
    encrypted_key: encryptedKey.toString('base64url'),
    iv: iv.toString('base64url'),
    ciphertext: ciphertext.toString('base64url'),
    tag: cipher.getAuthTag().toString('base64url'),
  };
}

const JWCRYPTO_SCRIPT = `
import base64, json, sys
from jwcrypto import jwe, jwk
request = json.load(sys.stdin)
alg = request["alg"]
key = jwk.JWK(**request["jwk"])
token = jwe.JWE(base64.b64decode(request["plaintext"]), json.dumps({"alg": alg, "enc": "A256GCM"}),
                algs=[alg, "A256GCM"])
token.add_recipient(key)
sys.stdout.write(token.serialize(compact=False))
`;

function jwcryptoEncrypt(
  plaintext: Buffer,
  jwk: PublicJwk,
  alg: EmulatorJweAlg,
  python: string,
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn(python, ['-c', JWCRYPTO_SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) {
        reject(new Error(`python3-jwcrypto failed (exit ${code}): ${err.trim().split('\n').pop() ?? ''}`));
        return;
      }
      try {
        resolve(JSON.parse(out) as Record<string, unknown>);
      } catch (error) {
        reject(error as Error);
      }
    });
    child.stdin.end(JSON.stringify({ alg, jwk: { ...jwk, alg }, plaintext: plaintext.toString('base64') }));
  });
}
