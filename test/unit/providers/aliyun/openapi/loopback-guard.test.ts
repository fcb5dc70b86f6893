import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { defaultConfig } from '../../../../../src/config/types';
import { silentLogger } from '../../../../../src/log';
import { LOOPBACK_ONLY_ENV } from '../../../../../src/net-guard';
import {
  createEcsRamRoleProvider,
  createStsTokenProvider,
} from '../../../../../src/providers/aliyun/openapi';

let dir: string;
let tokenPath: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cdh-guard-'));
  tokenPath = join(dir, 'token');
  await writeFile(tokenPath, 'AK:SK:STS');
  await mkdir(join(dir, 'aliyun'));
  await writeFile(
    join(dir, 'aliyun', 'ecsRamRole.json'),
    JSON.stringify({ ecs_ram_role_name: 'EcsRamRoleTest', region_id: 'cn-beijing' }),
  );
});

after(() => rm(dir, { recursive: true, force: true }));

function withLoopbackOnly<T>(value: '1' | undefined, run: () => Promise<T>): Promise<T> {
  const previous = process.env[LOOPBACK_ONLY_ENV];
  if (value === undefined) delete process.env[LOOPBACK_ONLY_ENV];
  else process.env[LOOPBACK_ONLY_ENV] = value;
  return run().finally(() => {
    if (previous === undefined) delete process.env[LOOPBACK_ONLY_ENV];
    else process.env[LOOPBACK_ONLY_ENV] = previous;
  });
}

const STS_SETTINGS = () => ({ client_type: 'sts_token', token_path: tokenPath, region_id: 'cn-beijing' });

test('under CDH_LOOPBACK_ONLY=1, sts_token with production defaults fails fast without dialling', async () => {
  await withLoopbackOnly('1', async () => {
    const started = Date.now();
    await assert.rejects(
      createStsTokenProvider(STS_SETTINGS(), { config: defaultConfig(), logger: silentLogger() }),
      { code: 'PROVIDER_NOT_CONFIGURED', message: /refusing to contact kms\.cn-beijing\.aliyuncs\.com/ },
    );
    assert.ok(Date.now() - started < 500);
  });
});

test('under CDH_LOOPBACK_ONLY=1, ecs_ram_role with production defaults fails fast without dialling', async () => {
  await withLoopbackOnly('1', async () => {
    const config = defaultConfig();
    config.aliyun.credentialDir = join(dir, 'aliyun');
    await assert.rejects(
      createEcsRamRoleProvider({ client_type: 'ecs_ram_role' }, { config, logger: silentLogger() }),
      {
        code: 'PROVIDER_NOT_CONFIGURED',
        message: /refusing to contact kms\.cn-beijing\.aliyuncs\.com/,
      },
    );
    // With the OpenAPI on loopback, the metadata default (100.100.100.200) is refused as well.
    config.aliyun.openapiEndpoint = '127.0.0.1:9';
    await assert.rejects(
      createEcsRamRoleProvider({ client_type: 'ecs_ram_role' }, { config, logger: silentLogger() }),
      {
        code: 'PROVIDER_NOT_CONFIGURED',
        message: /refusing to contact 100\.100\.100\.200/,
      },
    );
  });
});

test('building a provider never dials: production defaults build fine when the guard is off', async () => {
  await withLoopbackOnly(undefined, async () => {
    const config = defaultConfig();
    config.aliyun.stsTokenDir = dir;
    const provider = await createStsTokenProvider(STS_SETTINGS(), { config, logger: silentLogger() });
    assert.ok(provider.getter);
    await provider.close?.();
  });
});
