import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';
import { defaultConfig } from '../../../../src/config/types';
import { CdhError } from '../../../../src/errors';
import { createKbc as createKbcWith } from '../../../../src/kbc';
import { kbsProvider } from '../../../../src/providers/kbs';
import { ProviderRegistry } from '../../../../src/providers/registry';
import { silentLogger } from '../../../../src/log';
import { callContext, makeTempDir, writeResourceFile } from '../../../support/kbs';

const noAa = {
  tokenSource: () => {
    throw new Error('offline_fs needs no attestation agent');
  },
};
const createResourceStore = (
  config: Parameters<typeof createKbcWith>[0]['kbc'] extends infer K ? { kbc: K } : never,
  logger: ReturnType<typeof silentLogger>,
  env: NodeJS.ProcessEnv,
) => createKbcWith({ ...config, aa: defaultConfig().aa }, logger, noAa, env);

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = makeTempDir('cdh-kbs-provider-')));
afterEach(() => cleanup());

test('vault secrets with provider kbs are read through the resource store', async () => {
  const config = defaultConfig();
  config.kbc.offlineFs.resourceFiles = [path.join(dir, 'from-config.json')];
  writeResourceFile(path.join(dir, 'from-config.json'), { 'default/vault/a': 'from config' });
  writeResourceFile(path.join(dir, 'from-env.json'), { 'default/vault/b': 'from env' });
  const resources = await createResourceStore(config, silentLogger(), {
    OFFLINE_FS_KBC_EXTRA_FILE_PATH: path.join(dir, 'from-env.json'),
  });
  const registry = new ProviderRegistry([kbsProvider], { config, logger: silentLogger(), resources });
  const getter = await registry.getter('KBS', {});
  assert.equal(
    (await getter.getSecret('kbs:///default/vault/a', {}, callContext())).toString(),
    'from config',
  );
  assert.equal((await getter.getSecret('kbs:///default/vault/b', {}, callContext())).toString(), 'from env');
  await assert.rejects(getter.getSecret('kbs:///default/vault/c', {}, callContext()), {
    code: 'RESOURCE_NOT_FOUND',
  });
  await assert.rejects(getter.getSecret('not-a-uri', {}, callContext()), { code: 'RESOURCE_URI_INVALID' });
});

test('the kbs provider has no decrypter or encrypter, and says why', async () => {
  const config = defaultConfig();
  const resources = await createResourceStore(
    { kbc: { ...config.kbc, offlineFs: { resourceFiles: [] } } },
    silentLogger(),
    {},
  );
  const registry = new ProviderRegistry([kbsProvider], { config, logger: silentLogger(), resources });
  await assert.rejects(registry.decrypter('kbs', {}), (error: unknown) => {
    assert.ok(error instanceof CdhError);
    assert.equal(error.code, 'PROVIDER_CAPABILITY_MISSING');
    assert.match(error.message, /only serves vault secrets/);
    return true;
  });
});

test('without a resource store the kbs provider is not configured', async () => {
  const registry = new ProviderRegistry([kbsProvider], { config: defaultConfig(), logger: silentLogger() });
  await assert.rejects(registry.getter('kbs', {}), { code: 'PROVIDER_NOT_CONFIGURED' });
});

test('createKbc (offline_fs) refuses a malformed file at start-up, naming it', async () => {
  const config = defaultConfig();
  const broken = path.join(dir, 'broken.json');
  config.kbc.offlineFs.resourceFiles = [broken];
  writeFileSync(broken, 'nope');
  await assert.rejects(createResourceStore(config, silentLogger(), {}), (error: unknown) => {
    assert.ok(error instanceof CdhError);
    assert.equal(error.code, 'KBC_RESOURCES_INVALID');
    assert.ok(error.message.includes(broken));
    return true;
  });
});
