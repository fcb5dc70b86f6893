import assert from 'node:assert/strict';
import { test } from 'node:test';
import { randomBytes } from 'node:crypto';
import {
  base64UrlProblem,
  decodeBase64Url,
  decodeStandardBase64,
  encodeBase64Url,
  encodeStandardBase64,
  standardBase64Problem,
} from '../../../src/lib/base64';
import { CdhError } from '../../../src/errors';

test('canonical standard base64 decodes, including empty and both paddings', () => {
  assert.deepEqual(decodeStandardBase64('', 'f'), Buffer.alloc(0));
  assert.equal(decodeStandardBase64('Zg==', 'f').toString(), 'f');
  assert.equal(decodeStandardBase64('Zm8=', 'f').toString(), 'fo');
  assert.equal(decodeStandardBase64('Zm9v', 'f').toString(), 'foo');
  assert.deepEqual(decodeStandardBase64('+/+/', 'f'), Buffer.from([0xfb, 0xff, 0xbf]));
});

test('standard base64 round-trips random bytes of every length', () => {
  for (let length = 0; length < 70; length++) {
    const data = randomBytes(length);
    assert.deepEqual(decodeStandardBase64(encodeStandardBase64(data), 'f'), data);
  }
});

test('lenient forms that Buffer.from accepts are refused as standard base64', () => {
  const refused = [
    'Zg', // padding missing
    'Zg=', // padding short
    'Zg===', // padding extra
    'Zh==', // non-zero trailing bits (Buffer.from gives "f" too)
    'Zm9=', // non-zero trailing bits
    'Zm 9v', // whitespace inside
    ' Zm9v', // leading whitespace
    'Zm9v\n', // trailing newline
    'Zm9v-_==', // base64url alphabet
    'Zm=v', // padding in the middle
    '====',
    'Zm9v*A==',
    'Zm9vÿA==', // non-ASCII
    'Z', // impossible length
  ];
  for (const text of refused) {
    assert.notEqual(standardBase64Problem(text), undefined, JSON.stringify(text));
    assert.throws(
      () => decodeStandardBase64(text, 'encrypted_key'),
      (error: unknown) =>
        error instanceof CdhError &&
        error.code === 'PAYLOAD_INVALID' &&
        error.message.startsWith('encrypted_key is not valid standard base64'),
      JSON.stringify(text),
    );
  }
});

test('the error names the field and never echoes the value', () => {
  const secretLooking = 'c2VjcmV0LXZhbHVl!';
  assert.throws(
    () => decodeStandardBase64(secretLooking, 'encrypted_data'),
    (error: unknown) => error instanceof CdhError && !error.message.includes(secretLooking),
  );
});

test('base64url without padding decodes strictly', () => {
  assert.equal(decodeBase64Url('', 'p').length, 0);
  assert.equal(decodeBase64Url('Zg', 'p').toString(), 'f');
  assert.equal(decodeBase64Url('Zm8', 'p').toString(), 'fo');
  assert.deepEqual(decodeBase64Url('-_-_', 'p'), Buffer.from([0xfb, 0xff, 0xbf]));
  for (let length = 0; length < 70; length++) {
    const data = randomBytes(length);
    assert.deepEqual(decodeBase64Url(encodeBase64Url(data), 'p'), data);
  }
  for (const text of ['Zg==', 'Zh', 'Zm9', 'Z', '+/+/', 'Zm 9v', 'Zm9v\n', 'Zm9v.']) {
    assert.notEqual(base64UrlProblem(text), undefined, JSON.stringify(text));
    assert.throws(
      () => decodeBase64Url(text, 'the JWS payload'),
      (error: unknown) => error instanceof CdhError && error.code === 'SEALED_SECRET_MALFORMED',
      JSON.stringify(text),
    );
  }
});

test('the caller chooses the error code', () => {
  assert.throws(
    () => decodeBase64Url('Zh', 'the JWS signature', 'SIGNATURE_INVALID'),
    (error: unknown) => error instanceof CdhError && error.code === 'SIGNATURE_INVALID',
  );
});
