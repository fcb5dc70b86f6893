import { createCipheriv, createDecipheriv } from 'node:crypto';
import { CdhError } from '../errors';

/**
 * The wrap types of envelope secrets: how `encrypted_data` is encrypted under the data
 * encryption key (DEK). The caller owns the DEK buffer and wipes it; nothing here keeps it.
 */

export const WRAP_TYPES = ['A256GCM', 'A256CTR'] as const;
export type WrapType = (typeof WRAP_TYPES)[number];

export const DATA_KEY_BYTES = 32;
export const GCM_TAG_BYTES = 16;

export const IV_BYTES: Readonly<Record<WrapType, number>> = { A256GCM: 12, A256CTR: 16 };

/** PAYLOAD_INVALID unless `iv` has the length `wrapType` needs. Cheap: check before any KMS call. */
export function checkIvLength(wrapType: WrapType, iv: Uint8Array): void {
  const expected = IV_BYTES[wrapType];
  if (iv.length !== expected) {
    throw new CdhError(
      'PAYLOAD_INVALID',
      `iv is ${iv.length} bytes; wrap_type ${wrapType} needs a ${expected}-byte iv`,
    );
  }
}

function checkDataKey(wrapType: WrapType, dataKey: Uint8Array): void {
  if (dataKey.length !== DATA_KEY_BYTES) {
    throw new CdhError(
      'DATA_KEY_INVALID',
      `the data key is ${dataKey.length} bytes; wrap_type ${wrapType} needs a ${DATA_KEY_BYTES}-byte key`,
    );
  }
}

/** Decrypts `encrypted_data`: for A256GCM it is ciphertext ‖ 16-byte tag, no AAD. */
export function decryptData(
  wrapType: WrapType,
  dataKey: Uint8Array,
  iv: Uint8Array,
  encryptedData: Uint8Array,
): Buffer {
  checkDataKey(wrapType, dataKey);
  checkIvLength(wrapType, iv);
  if (wrapType === 'A256CTR') {
    const decipher = createDecipheriv('aes-256-ctr', dataKey, iv);
    return Buffer.concat([decipher.update(encryptedData), decipher.final()]);
  }
  if (encryptedData.length < GCM_TAG_BYTES) {
    throw new CdhError(
      'PAYLOAD_INVALID',
      `encrypted_data is ${encryptedData.length} bytes, shorter than the ${GCM_TAG_BYTES}-byte A256GCM tag`,
    );
  }
  const tagStart = encryptedData.length - GCM_TAG_BYTES;
  const decipher = createDecipheriv('aes-256-gcm', dataKey, iv, { authTagLength: GCM_TAG_BYTES });
  decipher.setAuthTag(encryptedData.subarray(tagStart));
  const plaintext = decipher.update(encryptedData.subarray(0, tagStart));
  try {
    return Buffer.concat([plaintext, decipher.final()]);
  } catch (cause) {
    // Without a valid tag the decrypted bytes are untrusted: do not leave them lying around.
    plaintext.fill(0);
    throw new CdhError(
      'DECRYPTION_FAILED',
      'A256GCM authentication of encrypted_data failed (tampered data, wrong data key or wrong iv)',
      { cause },
    );
  }
}

/** Encrypts data for an envelope secret; the inverse of `decryptData`. */
export function encryptData(
  wrapType: WrapType,
  dataKey: Uint8Array,
  iv: Uint8Array,
  plaintext: Uint8Array,
): Buffer {
  checkDataKey(wrapType, dataKey);
  checkIvLength(wrapType, iv);
  if (wrapType === 'A256CTR') {
    const cipher = createCipheriv('aes-256-ctr', dataKey, iv);
    return Buffer.concat([cipher.update(plaintext), cipher.final()]);
  }
  const cipher = createCipheriv('aes-256-gcm', dataKey, iv, { authTagLength: GCM_TAG_BYTES });
  return Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
}

/** Overwrites key material in place. */
export function wipe(buffer: Uint8Array): void {
  buffer.fill(0);
}
