import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeDkms, encodeDkms } from '../../../../../src/providers/aliyun/client-key/dkms-messages';

test('DecryptRequest uses the gateway field numbers (1 blob, 2 KeyId, 3 Algorithm, 4 Aad, 5 Iv, 6 PaddingMode)', () => {
  const bytes = encodeDkms('DecryptRequest', {
    CiphertextBlob: Buffer.from([0xaa]),
    KeyId: 'k',
    Algorithm: 'A',
    Aad: Buffer.from([0xbb]),
    Iv: Buffer.from([0xcc]),
    PaddingMode: 'P',
  });
  // tag = field << 3 | 2 (length-delimited), then length 1, then the byte.
  assert.equal(bytes.toString('hex'), '0a01aa12016b1a014122 01bb2a01cc320150'.replace(/ /g, ''));
});

test('EncryptRequest / GetSecretValueRequest field numbers', () => {
  assert.equal(
    encodeDkms('EncryptRequest', { KeyId: 'k', Plaintext: Buffer.from([1]), Algorithm: 'A' }).toString('hex'),
    '0a016b1201011a0141',
  );
  assert.equal(
    encodeDkms('GetSecretValueRequest', {
      SecretName: 's',
      VersionStage: 'S',
      VersionId: 'v',
      FetchExtendedConfig: true,
    }).toString('hex'),
    '0a0173120153 1a01762001'.replace(/ /g, ''),
  );
});

test('responses and Error decode by field number, absent fields get defaults, bytes are Buffers', () => {
  const encryptResponse = decodeDkms('EncryptResponse', Buffer.from('0a016b1202aabb1a01cc220172', 'hex'));
  assert.equal(encryptResponse.KeyId, 'k');
  assert.deepEqual(encryptResponse.CiphertextBlob, Buffer.from([0xaa, 0xbb]));
  assert.deepEqual(encryptResponse.Iv, Buffer.from([0xcc]));
  assert.ok(Buffer.isBuffer(encryptResponse.CiphertextBlob) && Buffer.isBuffer(encryptResponse.Iv));
  assert.equal(encryptResponse.RequestId, 'r');
  assert.equal(encryptResponse.Algorithm, '');

  const error = decodeDkms('Error', Buffer.from('089003120143 1a014d 220152'.replace(/ /g, ''), 'hex'));
  assert.deepEqual(
    [error.StatusCode, error.ErrorCode, error.ErrorMessage, error.RequestId],
    [400, 'C', 'M', 'R'],
  );

  const secret = decodeDkms('GetSecretValueResponse', Buffer.from('1a0278792a01412a0142', 'hex'));
  assert.equal(secret.SecretData, 'xy');
  assert.deepEqual(secret.VersionStages, ['A', 'B']);
  assert.equal(secret.VersionId, '');
});

test('a decoded Plaintext is a view of the answer: wiping the data key wipes the answer too', () => {
  // The unsealer wipes the data key it gets; no unwiped copy may stay in the gateway's answer.
  const dataKey = Buffer.alloc(32, 0xab);
  const answer = encodeDkms('DecryptResponse', { KeyId: 'k', Plaintext: dataKey, RequestId: 'r' });
  const decoded = decodeDkms('DecryptResponse', answer);
  assert.ok(decoded.Plaintext.equals(dataKey));
  decoded.Plaintext.fill(0);
  assert.equal(answer.indexOf(dataKey), -1);
});
