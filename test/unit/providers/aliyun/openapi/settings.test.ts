import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultConfig } from '../../../../../src/config/types';
import { CdhError } from '../../../../../src/errors';
import {
  parseEcsRamRoleFile,
  parseStsTokenFile,
} from '../../../../../src/providers/aliyun/openapi/credential-files';
import {
  parseStsTokenSettings,
  resolveOpenApiEndpoint,
  secretVersionSelector,
} from '../../../../../src/providers/aliyun/openapi/settings';

const PATH = '/run/secrets/sts-token';

test('a token file holds AK:SK:STS, surrounding whitespace trimmed', () => {
  assert.deepEqual(parseStsTokenFile('  STS.ak:sk/with+chars=:CAIStoken==\n', PATH), {
    accessKeyId: 'STS.ak',
    accessKeySecret: 'sk/with+chars=',
    securityToken: 'CAIStoken==',
  });
});

test('a token file without exactly three non-empty parts is refused without echoing it', () => {
  for (const content of ['onlyone', 'LTAIleak:SecretLeak', 'a:b:c:d', 'a::c', ':b:c', 'a:b:', '', '\n']) {
    assert.throws(
      () => parseStsTokenFile(content, PATH),
      (error: unknown) => {
        assert.ok(error instanceof CdhError);
        assert.equal(error.code, 'CREDENTIAL_UNAVAILABLE');
        assert.ok(error.message.includes(PATH));
        assert.ok(error.message.includes('AK:SK:STS'));
        if (content.trim() !== '') {
          for (const part of content.split(':').filter((p) => p.length > 1)) {
            assert.ok(!error.message.includes(part), `message echoes ${part}`);
          }
        }
        return true;
      },
      JSON.stringify(content),
    );
  }
});

test('sts_token settings need an absolute token_path and a region id', () => {
  assert.deepEqual(
    parseStsTokenSettings({ client_type: 'sts_token', token_path: PATH, region_id: 'ap-southeast-1' }),
    {
      tokenPath: PATH,
      regionId: 'ap-southeast-1',
    },
  );
  for (const [settings, field] of [
    [{ region_id: 'cn-beijing' }, /token_path.*it is missing/],
    [{ token_path: '', region_id: 'cn-beijing' }, /token_path/],
    [{ token_path: 'rel/path', region_id: 'cn-beijing' }, /absolute/],
    [{ token_path: PATH }, /region_id.*it is missing/],
    [{ token_path: PATH, region_id: 'cn-beijing.evil.com' }, /region_id/],
    [{ token_path: PATH, region_id: 'CN-BEIJING' }, /region_id/],
    [{ token_path: PATH, region_id: ['cn-beijing'] }, /region_id.*got an array/],
  ] as const) {
    assert.throws(() => parseStsTokenSettings(settings), {
      code: 'PROVIDER_SETTINGS_INVALID',
      message: field,
    });
  }
});

test('the OpenAPI endpoint is kms.<region>.aliyuncs.com unless openapi_endpoint overrides it', () => {
  const config = defaultConfig().aliyun;
  assert.deepEqual(resolveOpenApiEndpoint(config, 'cn-hangzhou'), {
    host: 'kms.cn-hangzhou.aliyuncs.com',
    port: 443,
    authority: 'kms.cn-hangzhou.aliyuncs.com',
  });
  assert.deepEqual(resolveOpenApiEndpoint({ ...config, openapiEndpoint: '127.0.0.1:8443' }, 'cn-hangzhou'), {
    host: '127.0.0.1',
    port: 8443,
    authority: '127.0.0.1:8443',
  });
  assert.deepEqual(resolveOpenApiEndpoint({ ...config, openapiEndpoint: 'https://localhost:9443/' }, 'x'), {
    host: 'localhost',
    port: 9443,
    authority: 'localhost:9443',
  });
  assert.equal(resolveOpenApiEndpoint({ ...config, openapiEndpoint: '[::1]:8443' }, 'x').host, '[::1]');
  for (const bad of ['127.0.0.1:8443/path', 'user@host:1', 'host:notaport']) {
    assert.throws(() => resolveOpenApiEndpoint({ ...config, openapiEndpoint: bad }, 'x'), {
      code: 'PROVIDER_NOT_CONFIGURED',
    });
  }
});

test('version_stage and version_id annotations are optional; empty means newest', () => {
  assert.deepEqual(secretVersionSelector({}), {});
  assert.deepEqual(secretVersionSelector({ version_stage: '', version_id: '' }), {});
  assert.deepEqual(secretVersionSelector({ version_stage: 'ACSPrevious', other: 'ignored' }), {
    versionStage: 'ACSPrevious',
  });
  assert.deepEqual(secretVersionSelector({ version_id: 'v7' }), { versionId: 'v7' });
  assert.throws(() => secretVersionSelector({ version_id: 7 } as unknown as Record<string, string>), {
    code: 'PROVIDER_SETTINGS_INVALID',
  });
});

test('ecsRamRole.json names the role and the region', () => {
  const file = '/creds/ecsRamRole.json';
  assert.deepEqual(
    parseEcsRamRoleFile('{"ecs_ram_role_name": "EcsRamRoleTest", "region_id": "cn-beijing"}', file),
    { roleName: 'EcsRamRoleTest', regionId: 'cn-beijing' },
  );
  for (const content of [
    '',
    'null',
    '"text"',
    '{"region_id": "cn-beijing"}',
    '{"ecs_ram_role_name": "a/b", "region_id": "cn-beijing"}',
    '{"ecs_ram_role_name": "Role", "region_id": "cn beijing"}',
    '{"ecs_ram_role_name": "Role"}',
  ]) {
    assert.throws(
      () => parseEcsRamRoleFile(content, file),
      (error: unknown) => {
        assert.ok(error instanceof CdhError);
        assert.equal(error.code, 'CREDENTIAL_UNAVAILABLE', content);
        assert.ok(error.message.includes(file), error.message);
        return true;
      },
    );
  }
});
