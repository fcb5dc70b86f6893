import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultConfig } from '../../../src/config/types';
import { silentLogger } from '../../../src/log';
import { ProviderRegistry } from '../../../src/providers/registry';
import type { CallContext, ProviderFactory, ProviderSettings } from '../../../src/providers/types';

const ctx: CallContext = { signal: new AbortController().signal };

function countingFactory(): { factory: ProviderFactory; built: ProviderSettings[]; closed: string[] } {
  const built: ProviderSettings[] = [];
  const closed: string[] = [];
  const factory: ProviderFactory = {
    name: 'counting',
    identity: (settings) => ({ id: settings['id'] }),
    create(settings) {
      built.push(settings);
      const id = String(settings['id']);
      return {
        label: `counting ${id}`,
        getter: {
          getSecret: (name, _a, call) =>
            new Promise((resolve) =>
              setTimeout(() => resolve(Buffer.from(`${id}:${name}`)), call === ctx ? 0 : 30),
            ),
        },
        close: () => void closed.push(id),
      };
    },
  };
  return { factory, built, closed };
}

const registryOf = (factory: ProviderFactory, maxInstances?: number): ProviderRegistry =>
  new ProviderRegistry(
    [factory],
    { config: defaultConfig(), logger: silentLogger() },
    maxInstances === undefined ? {} : { maxInstances },
  );

test('fields outside the provider identity do not build new instances, and are not passed to create()', async () => {
  const { factory, built } = countingFactory();
  const registry = registryOf(factory);
  for (let i = 0; i < 20; i++)
    await (await registry.getter('counting', { id: 'a', junk: i })).getSecret('s', {}, ctx);
  assert.equal(built.length, 1);
  assert.deepEqual(built[0], { id: 'a' });
  assert.equal(registry.cachedInstances, 1);
});

test('the instance cache is a bounded LRU; an evicted instance is closed once its calls are done', async () => {
  const { factory, built, closed } = countingFactory();
  const registry = registryOf(factory, 2);
  const slow: CallContext = { signal: new AbortController().signal };
  const a = await registry.getter('counting', { id: 'a' });
  const running = a.getSecret('s', {}, slow); // 30 ms, still using instance a
  await registry.getter('counting', { id: 'b' });
  await registry.getter('counting', { id: 'c' }); // evicts a, which is busy
  assert.equal(registry.cachedInstances, 2);
  assert.deepEqual(closed, []);
  assert.equal((await running).toString(), 'a:s');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(closed, ['a']);
  await registry.getter('counting', { id: 'b' }); // b is now most recent
  await registry.getter('counting', { id: 'd' }); // evicts c, idle: closed at once
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(closed, ['a', 'c']);
  assert.equal(built.length, 4);
  await registry.close();
  assert.deepEqual(closed.sort(), ['a', 'b', 'c', 'd']);
});

test('an unknown provider name is quoted with its control characters escaped, and shortened', async () => {
  const registry = new ProviderRegistry([], { config: defaultConfig(), logger: silentLogger() });
  await assert.rejects(registry.decrypter('evil\u001b[31m\nname', {}), (error: Error) => {
    assert.match(error.message, /unknown provider "evil\\u001b\[31m\\nname"/);
    // eslint-disable-next-line no-control-regex
    assert.doesNotMatch(error.message, /[\u0000-\u001f]/);
    return true;
  });
  await assert.rejects(registry.decrypter('x'.repeat(500), {}), (error: Error) => {
    assert.ok(error.message.length < 200, error.message);
    return true;
  });
});
