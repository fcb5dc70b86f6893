import assert from 'node:assert/strict';
import { test } from 'node:test';
import { z } from 'zod';
import { parseClientKeySettings } from '../../../src/providers/aliyun/client-key/settings';
import { aliyunProvider } from '../../../src/providers/aliyun';
import { parseSettings } from '../../../src/providers/settings';
import { defaultConfig } from '../../../src/config/types';
import { silentLogger } from '../../../src/log';

const schema = z.object({
  name: z.string({ error: 'must be a string' }).regex(/^[a-z]+$/, 'must be lower-case letters'),
});

test('a settings problem names the provider, the field, the rule, the client type and the value', () => {
  assert.deepEqual(
    parseSettings(schema, { name: 'ok', other: 1 }, { provider: 'p', section: 'provider_settings' }),
    {
      name: 'ok',
    },
  );
  assert.throws(
    () => parseSettings(schema, {}, { provider: 'p', section: 'provider_settings', clientType: 'c' }),
    {
      code: 'PROVIDER_SETTINGS_INVALID',
      message: 'p provider_settings.name must be a string (client_type c; it is missing)',
    },
  );
  assert.throws(() => parseSettings(schema, { name: 7 }, { provider: 'p', section: 'annotations' }), {
    message: 'p annotations.name must be a string (got a number)',
  });
});

test('an untrusted value in a settings message is quoted: control characters escaped, length bounded', () => {
  const hostile = `Evil\u001b[31m\n${'x'.repeat(5000)}`;
  assert.throws(
    () => parseSettings(schema, { name: hostile }, { provider: 'p', section: 'provider_settings' }),
    (error: Error) => {
      assert.match(
        error.message,
        /^p provider_settings\.name must be lower-case letters \(got "Evil\\u001b\[31m\\n/,
      );
      // eslint-disable-next-line no-control-regex
      assert.equal(/[\u0000-\u001f]/.test(error.message), false);
      assert.ok(error.message.length < 400);
      return true;
    },
  );
});

test('aliyun settings: a client key id that could leave the credential dir is refused, naming the field', () => {
  assert.throws(
    () => parseClientKeySettings({ client_key_id: '../../etc/passwd', kms_instance_id: 'kst-1' }),
    {
      code: 'PROVIDER_SETTINGS_INVALID',
      message:
        /^aliyun provider_settings\.client_key_id is not a valid id: .*\(client_type client_key; got "\.\.\/\.\.\/etc\/passwd"\)$/,
    },
  );
});

test('aliyun: an unknown client_type is refused with the accepted ones', async () => {
  await assert.rejects(
    Promise.resolve().then(() =>
      aliyunProvider.create({ client_type: 'magic' }, { config: defaultConfig(), logger: silentLogger() }),
    ),
    {
      code: 'PROVIDER_SETTINGS_INVALID',
      message:
        'aliyun provider_settings.client_type must be one of client_key, ecs_ram_role, sts_token (got "magic")',
    },
  );
});
