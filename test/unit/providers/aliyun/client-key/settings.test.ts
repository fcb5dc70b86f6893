import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseClientKeySettings } from '../../../../../src/providers/aliyun/client-key/settings';
import { cdhErrorWith as assertCdhError } from '../../../../support/cdh-error-assert';

const KMS_INSTANCE_ID = 'kst-shh64702cf2jvc_____';

test('client key settings: ids as Alibaba issues them are accepted', () => {
  for (const id of ['KAAP.f4c8____', 'KAAP.e9692b7c-1234', 'kst-shh64702cf2jvc_____', 'kst-bjj652*', 'a']) {
    assert.deepEqual(parseClientKeySettings({ client_key_id: id, kms_instance_id: id }), {
      clientKeyId: id,
      kmsInstanceId: id,
    });
  }
});

test('client key settings: ids that could leave the credential dir or are not plain are refused', () => {
  const bad = [
    '../../etc/passwd',
    '..',
    'a..b',
    'a/b',
    'a\\b',
    '/abs',
    'a\u0000b',
    'a b',
    'ключ',
    'x'.repeat(257),
  ];
  for (const field of ['client_key_id', 'kms_instance_id']) {
    for (const id of bad) {
      const settings = { client_key_id: 'KAAP.1', kms_instance_id: KMS_INSTANCE_ID, [field]: id };
      assert.throws(
        () => parseClientKeySettings(settings),
        assertCdhError(
          'PROVIDER_SETTINGS_INVALID',
          new RegExp(
            `^aliyun provider_settings\\.${field} is not a valid id: .*\\(client_type client_key; got "`,
          ),
        ),
        `${field} = ${JSON.stringify(id)}`,
      );
    }
  }
});

test('client key settings: a missing, non-string or empty id is named with what it must be', () => {
  assert.throws(
    () => parseClientKeySettings({ client_key_id: 'KAAP.1' }),
    assertCdhError(
      'PROVIDER_SETTINGS_INVALID',
      /^aliyun provider_settings\.kms_instance_id is required and must be a non-empty string \(client_type client_key; it is missing\)$/,
    ),
  );
  assert.throws(
    () => parseClientKeySettings({ client_key_id: 'KAAP.1', kms_instance_id: 7 }),
    assertCdhError(
      'PROVIDER_SETTINGS_INVALID',
      /kms_instance_id is required .*\(client_type client_key; got a number\)$/,
    ),
  );
  assert.throws(
    () => parseClientKeySettings({ client_key_id: '', kms_instance_id: KMS_INSTANCE_ID }),
    assertCdhError(
      'PROVIDER_SETTINGS_INVALID',
      /^aliyun provider_settings\.client_key_id is required and must be a non-empty string \(client_type client_key; got ""\)$/,
    ),
  );
});
