import assert from 'node:assert/strict';
import { constants, createCipheriv, createPublicKey, publicEncrypt, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { teeKeyPair, TEE_KEY_TYPES } from '../../../src/emulators/aa/server';
import { encryptResource } from '../../../src/emulators/kbs/jwe-producer';
import { JweError, TeeKey } from '../../../src/kbc/jwe';

const PLAINTEXT = Buffer.from('jwe-unit-plaintext');

for (const keyType of TEE_KEY_TYPES) {
  test(`a ${keyType} TEE key decrypts what jose and python3-jwcrypto encrypt to it`, async () => {
    const { jwk, pem } = teeKeyPair(keyType);
    const key = await TeeKey.fromPem(pem);
    for (const producer of ['jose', 'jwcrypto'] as const) {
      const jwe = await encryptResource(PLAINTEXT, jwk, producer);
      assert.deepEqual(await key.decrypt(Buffer.from(JSON.stringify(jwe))), PLAINTEXT, producer);
    }
  });
}

test('an answer for another TEE key does not decrypt (JweError, no detail of the key)', async () => {
  for (const keyType of TEE_KEY_TYPES) {
    const other = teeKeyPair(keyType);
    const mine = await TeeKey.fromPem(teeKeyPair(keyType).pem);
    const jwe = await encryptResource(PLAINTEXT, other.jwk, 'jose');
    await assert.rejects(mine.decrypt(Buffer.from(JSON.stringify(jwe))), JweError, keyType);
  }
});

/** An RSA1_5 JWE whose key block is given (to test the padding checks). */
function rsa15WithBlock(jwk: Record<string, string>, block: Buffer, cek: Buffer): Buffer {
  const publicKey = createPublicKey({ key: { kty: 'RSA', n: jwk['n'], e: jwk['e'] }, format: 'jwk' });
  const encryptedKey = publicEncrypt({ key: publicKey, padding: constants.RSA_NO_PADDING }, block);
  const protectedB64 = Buffer.from('{"alg":"RSA1_5","enc":"A256GCM"}').toString('base64url');
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', cek, iv);
  cipher.setAAD(Buffer.from(protectedB64));
  const ciphertext = Buffer.concat([cipher.update(PLAINTEXT), cipher.final()]);
  return Buffer.from(
    JSON.stringify({
      protected: protectedB64,
      encrypted_key: encryptedKey.toString('base64url'),
      iv: iv.toString('base64url'),
      ciphertext: ciphertext.toString('base64url'),
      tag: cipher.getAuthTag().toString('base64url'),
    }),
  );
}

test('RSA1_5: a correct PKCS#1 v1.5 block decrypts; every malformed block fails like a wrong key', async () => {
  const { jwk, pem } = teeKeyPair('rsa1_5');
  const key = await TeeKey.fromPem(pem);
  const cek = randomBytes(32);
  const block = (mutate: (b: Buffer) => void, cekLength = 32): Buffer => {
    const b = Buffer.alloc(256);
    b[0] = 0;
    b[1] = 2;
    const ps = 256 - 3 - cekLength;
    for (let i = 2; i < 2 + ps; i++) b[i] = 1 + (i % 250);
    b[2 + ps] = 0;
    cek.copy(b, 3 + ps, 0, Math.min(32, cekLength));
    mutate(b);
    return b;
  };
  assert.deepEqual(
    await key.decrypt(
      rsa15WithBlock(
        jwk,
        block(() => undefined),
        cek,
      ),
    ),
    PLAINTEXT,
  );
  const bad: Array<[string, Buffer]> = [
    ['first byte not 0', block((b) => (b[0] = 1))],
    ['second byte not 2', block((b) => (b[1] = 1))],
    ['no zero separator', block((b) => b.fill(7, 2, 256 - 32))],
    ['padding shorter than 8 bytes', block((b) => (b[5] = 0))],
    ['a 16-byte key', block(() => undefined, 16)],
  ];
  for (const [what, malformed] of bad) {
    await assert.rejects(key.decrypt(rsa15WithBlock(jwk, malformed, cek)), /does not decrypt/, what);
  }
});

test('malformed answers and unfitting algorithms are refused before any key operation', async () => {
  const ec = await TeeKey.fromPem(teeKeyPair('ec-p256').pem);
  const rsa = teeKeyPair('rsa');
  const oaep = await encryptResource(PLAINTEXT, rsa.jwk, 'jose');
  await assert.rejects(ec.decrypt(Buffer.from(JSON.stringify(oaep))), /does not fit the TEE key/);
  await assert.rejects(ec.decrypt(Buffer.from('not json')), /not UTF-8 JSON/);
  await assert.rejects(ec.decrypt(Buffer.from('[1]')), /not a JSON object/);
  await assert.rejects(
    ec.decrypt(Buffer.from('{"protected":"e30","iv":"!","ciphertext":"","tag":""}')),
    /"iv"/,
  );
  const a128 = Buffer.from('{"alg":"ECDH-ES+A256KW","enc":"A128GCM"}').toString('base64url');
  await assert.rejects(
    ec.decrypt(Buffer.from(JSON.stringify({ protected: a128, iv: '', ciphertext: '', tag: '' }))),
    /not A256GCM/,
  );
});

test('a tee_keypair that is not RSA or EC P-256/P-521 is refused', async () => {
  const { generateKeyPairSync } = await import('node:crypto');
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({
    type: 'pkcs8',
    format: 'pem',
  });
  await assert.rejects(TeeKey.fromPem(p384.toString()), /P-256 or P-521/);
  const ed = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' });
  await assert.rejects(TeeKey.fromPem(ed.toString()), /not RSA or EC/);
});
