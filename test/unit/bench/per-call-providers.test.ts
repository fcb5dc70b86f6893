import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultConfig } from '../../../src/config/types';
import { CdhError } from '../../../src/errors';
import { silentLogger } from '../../../src/log';
import { ProviderRegistry } from '../../../src/providers/registry';
import type { CallContext, ProviderFactory, ProviderInstance } from '../../../src/providers/types';
import { perCallFactory } from '../../../bench/per-call-providers';

const ctx = (): CallContext => ({ signal: new AbortController().signal });

/** A provider whose instances count their construction and closing; `fail` makes calls throw. */
function countingFactory(options: { withGetter?: boolean } = {}) {
  const counts = { created: 0, closed: 0, open: 0 };
  const factory: ProviderFactory = {
    name: 'counting',
    create(): ProviderInstance {
      counts.created++;
      counts.open++;
      let closed = false;
      const instance: ProviderInstance = {
        label: 'counting',
        decrypter: {
          async decrypt(ciphertext) {
            if (closed) throw new Error('used after close');
            await new Promise((r) => setTimeout(r, 5));
            if (ciphertext.length === 0) throw new CdhError('KMS_FAILED', 'empty ciphertext');
            return Buffer.from(ciphertext);
          },
        },
        close() {
          closed = true;
          counts.closed++;
          counts.open--;
        },
      };
      return options.withGetter
        ? { ...instance, getter: { getSecret: async () => Buffer.from('value') } }
        : instance;
    },
  };
  return { factory, counts };
}

/** The registry over `factory` as the daemon has it (reuse) or as the per-call bench daemon has it. */
function registry(factory: ProviderFactory, reuseInstances: boolean): ProviderRegistry {
  return new ProviderRegistry([reuseInstances ? factory : perCallFactory(factory)], {
    config: defaultConfig(),
    logger: silentLogger(),
  });
}

test('per-call instances: each call builds one instance and closes it when the call completes', async () => {
  const { factory, counts } = countingFactory();
  const providers = registry(factory, false);
  const decrypter = await providers.decrypter('counting', {});
  const answers = await Promise.all(
    Array.from({ length: 5 }, (_, i) => decrypter.decrypt(Buffer.from([i + 1]), 'k', {}, ctx())),
  );
  assert.deepEqual(
    answers.map((b) => b[0]),
    [1, 2, 3, 4, 5],
  );
  assert.equal(counts.created, 5);
  assert.equal(counts.closed, 5);
  assert.equal(counts.open, 0);
});

test('per-call instances: a failing call still closes its instance', async () => {
  const { factory, counts } = countingFactory();
  const decrypter = await registry(factory, false).decrypter('counting', {});
  await assert.rejects(decrypter.decrypt(Buffer.alloc(0), 'k', {}, ctx()), /empty ciphertext/);
  assert.equal(counts.open, 0);
});

test('per-call instances: a capability looked up but never called builds nothing', async () => {
  const { factory, counts } = countingFactory();
  await registry(factory, false).decrypter('counting', {});
  assert.equal(counts.created, 0);
});

test('per-call instances: a missing capability is named at call time and the instance is closed', async () => {
  const { factory, counts } = countingFactory();
  const getter = await registry(factory, false).getter('counting', {});
  await assert.rejects(getter.getSecret('name', {}, ctx()), (error: unknown) => {
    assert.ok(error instanceof CdhError);
    assert.equal(error.code, 'PROVIDER_CAPABILITY_MISSING');
    return true;
  });
  assert.equal(counts.created, 1);
  assert.equal(counts.open, 0);
});

test('per-call factories still refuse an unknown provider at lookup', async () => {
  const { factory } = countingFactory();
  await assert.rejects(registry(factory, false).decrypter('nope', {}), /unknown provider "nope"/);
});

test('reused instances: one construction for every call, closed by close()', async () => {
  const { factory, counts } = countingFactory({ withGetter: true });
  const providers = registry(factory, true);
  for (let i = 0; i < 3; i++) {
    const decrypter = await providers.decrypter('COUNTING', {});
    await decrypter.decrypt(Buffer.from([1]), 'k', {}, ctx());
  }
  assert.equal(
    (await (await providers.getter('counting', {})).getSecret('x', {}, ctx())).toString(),
    'value',
  );
  assert.equal(counts.created, 1);
  assert.equal(counts.open, 1);
  await providers.close();
  assert.equal(counts.open, 0);
});
