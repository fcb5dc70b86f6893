import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultConfig } from '../../../src/config/types';
import { silentLogger } from '../../../src/log';
import { builtinProviders } from '../../../src/providers';
import { ProviderRegistry } from '../../../src/providers/registry';
import type { ProviderContext, ProviderFactory } from '../../../src/providers/types';

/** A factory that records the context it was built with. */
function recording<S>(name: string, configSection?: ProviderFactory<S>['configSection']) {
  const seen: Array<ProviderContext<S>> = [];
  const factory: ProviderFactory<S> = {
    name,
    ...(configSection ? { configSection } : {}),
    create(_settings, ctx) {
      seen.push(ctx);
      return { label: name, getter: { getSecret: async () => Buffer.from('x') } };
    },
  };
  return { factory, seen };
}

test('each provider is built with its own config section only, never the whole configuration', async () => {
  const config = defaultConfig();
  config.cache.ttlSeconds = 42;
  const picky = recording('picky', (c) => ({ ttl: c.cache.ttlSeconds }));
  const plain = recording('plain');
  const registry = new ProviderRegistry([picky.factory, plain.factory], { config, logger: silentLogger() });
  try {
    await registry.getter('picky', {});
    await registry.getter('plain', {});
    assert.deepEqual(picky.seen[0]?.config, { ttl: 42 });
    assert.deepEqual(plain.seen[0]?.config, {});
  } finally {
    await registry.close();
  }
});

test('the built-in providers pick their sections: aliyun its [aliyun], kbs the KBC name', () => {
  const config = defaultConfig();
  const sections = Object.fromEntries(builtinProviders().map((f) => [f.name, f.configSection?.(config)]));
  assert.deepEqual(sections, { aliyun: { aliyun: config.aliyun }, kbs: { kbc: { name: 'offline_fs_kbc' } } });
});
