import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createCipheriv, randomBytes } from 'node:crypto';
import { decryptData, encryptData, IV_BYTES, WRAP_TYPES, wipe } from '../../../src/crypto/wrap';
import { cdhError } from '../../support/secret-helpers';

test('A256GCM and A256CTR round trip, for empty and larger plaintexts', () => {
  for (const wrapType of WRAP_TYPES) {
    for (const size of [0, 1, 15, 16, 17, 4096]) {
      const key = randomBytes(32);
      const iv = randomBytes(IV_BYTES[wrapType]);
      const plaintext = randomBytes(size);
      const sealed = encryptData(wrapType, key, iv, plaintext);
      assert.equal(sealed.length, size + (wrapType === 'A256GCM' ? 16 : 0));
      assert.deepEqual(decryptData(wrapType, key, iv, sealed), plaintext);
    }
  }
});

test('A256GCM data is ciphertext followed by the 16-byte tag, with no AAD', () => {
  const key = randomBytes(32);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const ciphertext = Buffer.concat([cipher.update('upstream layout'), cipher.final()]);
  const data = Buffer.concat([ciphertext, cipher.getAuthTag()]);
  assert.equal(decryptData('A256GCM', key, iv, data).toString(), 'upstream layout');
});

test('A256CTR is plain AES-256-CTR with the 16-byte IV as the counter block', () => {
  const key = randomBytes(32);
  const iv = randomBytes(16);
  const cipher = createCipheriv('aes-256-ctr', key, iv);
  const data = Buffer.concat([cipher.update('counter mode'), cipher.final()]);
  assert.equal(decryptData('A256CTR', key, iv, data).toString(), 'counter mode');
});

test('a data key of 16 or 33 bytes is DATA_KEY_INVALID naming its length and the wrap type', () => {
  for (const wrapType of WRAP_TYPES) {
    const iv = randomBytes(IV_BYTES[wrapType]);
    for (const length of [0, 16, 31, 33]) {
      assert.throws(
        () => decryptData(wrapType, randomBytes(length), iv, randomBytes(32)),
        cdhError('DATA_KEY_INVALID', `${length} bytes`, wrapType),
      );
      assert.throws(
        () => encryptData(wrapType, randomBytes(length), iv, randomBytes(4)),
        cdhError('DATA_KEY_INVALID'),
      );
    }
  }
});

test('a wrong IV length is PAYLOAD_INVALID naming iv, its length and the expected one', () => {
  const key = randomBytes(32);
  for (const length of [0, 11, 13, 16]) {
    assert.throws(
      () => decryptData('A256GCM', key, randomBytes(length), randomBytes(32)),
      cdhError('PAYLOAD_INVALID', 'iv', `${length} bytes`, '12-byte'),
    );
  }
  for (const length of [12, 15, 17]) {
    assert.throws(
      () => decryptData('A256CTR', key, randomBytes(length), randomBytes(32)),
      cdhError('PAYLOAD_INVALID', 'iv', `${length} bytes`, '16-byte'),
    );
  }
});

test('a tampered tag, ciphertext, key or IV is DECRYPTION_FAILED', () => {
  const key = randomBytes(32);
  const iv = randomBytes(12);
  const sealed = encryptData('A256GCM', key, iv, Buffer.from('top secret value'));
  const flipLast = Buffer.from(sealed);
  flipLast[flipLast.length - 1]! ^= 1;
  const flipFirst = Buffer.from(sealed);
  flipFirst[0]! ^= 0x80;
  const cases: Array<[Buffer, Buffer, Buffer]> = [
    [key, iv, flipLast],
    [key, iv, flipFirst],
    [randomBytes(32), iv, sealed],
    [key, randomBytes(12), sealed],
  ];
  for (const [k, i, d] of cases) {
    assert.throws(
      () => decryptData('A256GCM', k, i, d),
      (error: unknown) =>
        cdhError('DECRYPTION_FAILED')(error) && !(error as Error).message.includes('top secret'),
    );
  }
});

test('A256GCM data shorter than the tag is PAYLOAD_INVALID naming encrypted_data', () => {
  assert.throws(
    () => decryptData('A256GCM', randomBytes(32), randomBytes(12), randomBytes(15)),
    cdhError('PAYLOAD_INVALID', 'encrypted_data'),
  );
});

test('wipe zeroes the buffer in place', () => {
  const key = randomBytes(32);
  wipe(key);
  assert.ok(key.every((byte) => byte === 0));
});
