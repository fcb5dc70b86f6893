import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import pino from 'pino';
import { LayerStore } from '../../../src/image/layer-store';
import { tempDir } from '../../../src/devtools/daemon';

const logger = pino({ level: 'silent' });
const work = tempDir('cdh-layer-store-');
after(() => work.cleanup());
const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;
let n = 0;
const never = new AbortController().signal;

describe('layer store', () => {
  test('a layer is unpacked once; concurrent requests share the one fill', async () => {
    const store = await LayerStore.open(join(work.path, `s${++n}`), logger);
    let fills = 0;
    const fill = async (dir: string): Promise<void> => {
      fills++;
      await new Promise((r) => setTimeout(r, 50));
      writeFileSync(join(dir, 'f'), 'x');
    };
    const [a, b] = await Promise.all([
      store.ensure(D1, D1, 1, fill, never),
      store.ensure(D1, D1, 1, fill, never),
    ]);
    assert.equal(fills, 1);
    assert.deepEqual(a, b);
    await store.ensure(D1, D1, 1, fill, never);
    assert.equal(fills, 1);
  });

  test('the meta store survives a restart; temp and unrecorded directories are removed at open', async () => {
    const dir = join(work.path, `s${++n}`);
    const store = await LayerStore.open(dir, logger);
    const record = await store.ensure(D1, D2, 5, async (d) => writeFileSync(join(d, 'f'), 'x'), never);
    mkdirSync(join(dir, 'layers', '.tmp-leftover'));
    mkdirSync(join(dir, 'layers', '99'));
    const again = await LayerStore.open(dir, logger);
    assert.deepEqual(again.get(D1), record);
    assert.deepEqual(readdirSync(join(dir, 'layers')), [String(record.id)]);
    const meta = JSON.parse(readFileSync(join(dir, 'meta_store.json'), 'utf8')) as {
      layers: Record<string, unknown>;
    };
    assert.deepEqual(Object.keys(meta.layers), [D1]);
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.endsWith('.tmp')),
      [],
    );
  });

  test('a failed fill leaves nothing; the next request tries again', async () => {
    const dir = join(work.path, `s${++n}`);
    const store = await LayerStore.open(dir, logger);
    await assert.rejects(
      store.ensure(
        D1,
        D1,
        1,
        async (d) => {
          writeFileSync(join(d, 'partial'), 'x');
          throw new Error('boom');
        },
        never,
      ),
      /boom/,
    );
    assert.deepEqual(readdirSync(join(dir, 'layers')), []);
    assert.equal(store.get(D1), undefined);
    await store.ensure(D1, D1, 1, async () => undefined, never);
    assert.ok(store.get(D1));
  });

  test('the shared fill stops only when every waiting puller has gone', async () => {
    const store = await LayerStore.open(join(work.path, `s${++n}`), logger);
    let fillSignal: AbortSignal | undefined;
    const fill = (_d: string, signal: AbortSignal): Promise<void> =>
      new Promise((_, reject) => {
        fillSignal = signal;
        signal.addEventListener('abort', () => reject(signal.reason));
      });
    const first = new AbortController();
    const second = new AbortController();
    const p1 = store.ensure(D2, D2, 1, fill, first.signal);
    const p2 = store.ensure(D2, D2, 1, fill, second.signal);
    first.abort(new Error('first gone'));
    await assert.rejects(p1, /first gone/);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(fillSignal?.aborted, false);
    second.abort(new Error('second gone'));
    await assert.rejects(p2, /second gone/);
    assert.equal(fillSignal?.aborted, true);
  });
});
