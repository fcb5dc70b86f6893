import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';
import { defaultConfig } from '../../../src/config/types';
import { CdhError } from '../../../src/errors';
import {
  OFFLINE_FS_KEYS_FILE,
  OFFLINE_FS_RESOURCES_FILE,
  OfflineFsResourceStore,
  offlineFsFilesFromConfig,
} from '../../../src/kbc/offline-fs';
import { silentLogger } from '../../../src/log';
import { callContext, captureLogger, makeTempDir, writeResourceFile } from '../../support/kbs';

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = makeTempDir('cdh-offline-fs-')));
afterEach(() => cleanup());

const file = (name: string): string => path.join(dir, name);

async function loadedStore(files: string[]): Promise<OfflineFsResourceStore> {
  const store = new OfflineFsResourceStore(files, silentLogger());
  await store.load();
  return store;
}

function assertKbcInvalid(naming: string, detail: RegExp): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.ok(error instanceof CdhError);
    assert.equal(error.code, 'KBC_RESOURCES_INVALID');
    assert.ok(error.message.includes(naming), error.message);
    assert.match(error.message, detail);
    return true;
  };
}

/** Rewrites a file so that its stat signature surely differs, even on a coarse-mtime file system. */
function rewrite(target: string, write: (file: string) => void): void {
  const temporary = `${target}.new`;
  write(temporary);
  const future = new Date(Date.now() + 5000);
  utimesSync(temporary, future, future);
  renameSync(temporary, target);
}

test('a resource present in a file is returned; a copy, so wiping it does not hurt the store', async () => {
  writeResourceFile(file('resources.json'), { 'default/aliyun/password': 'hunter2-not-real' });
  const store = await loadedStore([file('resources.json')]);
  const value = await store.getResource('kbs:///default/aliyun/password', callContext());
  assert.equal(value.toString(), 'hunter2-not-real');
  value.fill(0);
  const again = await store.getResource('kbs://any-host:8080/default/aliyun/password', callContext());
  assert.equal(again.toString(), 'hunter2-not-real');
});

test('an unknown resource is RESOURCE_NOT_FOUND naming the URI', async () => {
  writeResourceFile(file('resources.json'), { 'default/a/b': 'x' });
  const store = await loadedStore([file('resources.json')]);
  await assert.rejects(store.getResource('kbs:///default/a/missing', callContext()), (error: unknown) => {
    assert.ok(error instanceof CdhError);
    assert.equal(error.code, 'RESOURCE_NOT_FOUND');
    assert.equal(error.status, 'NOT_FOUND');
    assert.match(error.message, /kbs:\/\/\/default\/a\/missing/);
    return true;
  });
});

test('a malformed URI is refused before any lookup', async () => {
  const store = await loadedStore([]);
  await assert.rejects(store.getResource('kbs:///default/../x', callContext()), {
    code: 'RESOURCE_URI_INVALID',
  });
});

test('resources from several files are merged; a later file wins a duplicate, with a warning', async () => {
  writeResourceFile(file('keys.json'), { 'default/key/1': 'key-one', 'default/shared/x': 'from-keys' });
  writeResourceFile(file('resources.json'), {
    'default/policy/test': 'policy',
    'default/shared/x': 'from-resources',
  });
  const { logger, lines } = captureLogger();
  const store = new OfflineFsResourceStore([file('keys.json'), file('resources.json')], logger);
  await store.load();
  assert.equal(store.size, 3);
  assert.equal((await store.getResource('kbs:///default/key/1', callContext())).toString(), 'key-one');
  assert.equal((await store.getResource('kbs:///default/policy/test', callContext())).toString(), 'policy');
  assert.equal(
    (await store.getResource('kbs:///default/shared/x', callContext())).toString(),
    'from-resources',
  );
  const warning = lines.find((line) => line['resource'] === 'default/shared/x');
  assert.ok(warning, 'a duplicate is reported');
  assert.deepEqual(warning['files'], [file('keys.json'), file('resources.json')]);
});

test('a missing file is skipped with a warning naming it', async () => {
  writeResourceFile(file('present.json'), { 'default/a/b': 'here' });
  const { logger, lines } = captureLogger();
  const store = new OfflineFsResourceStore([file('absent.json'), file('present.json')], logger);
  await store.load();
  assert.equal((await store.getResource('kbs:///default/a/b', callContext())).toString(), 'here');
  assert.ok(lines.some((line) => line['level'] === 40 && line['file'] === file('absent.json')));
});

test('a file that is not JSON stops loading, naming the file and not quoting its content', async () => {
  writeFileSync(file('broken.json'), '{ "default/a/b": c2VjcmV0LXZhbHVl }');
  const store = new OfflineFsResourceStore([file('broken.json')], silentLogger());
  await assert.rejects(store.load(), (error: unknown) => {
    assertKbcInvalid(file('broken.json'), /not valid UTF-8 JSON/)(error);
    assert.ok(!(error as Error).message.includes('c2VjcmV0'), 'content is not quoted');
    return true;
  });
});

test('a file holding a JSON array, or a non-string value, stops loading naming the file', async () => {
  writeFileSync(file('array.json'), '["default/a/b"]');
  await assert.rejects(
    loadedStore([file('array.json')]),
    assertKbcInvalid(file('array.json'), /JSON object/),
  );
  writeFileSync(file('number.json'), '{"default/a/b": 42}');
  await assert.rejects(
    loadedStore([file('number.json')]),
    assertKbcInvalid(file('number.json'), /value of "default\/a\/b" is a number, not a base64 string/),
  );
});

test('bad base64 stops loading naming the file and the entry, never the value', async () => {
  for (const bad of ['not base64!', 'YWJj\nZGVm', 'YWJjZA', 'YWJjZB==', 'YW Jj']) {
    writeFileSync(file('bad64.json'), JSON.stringify({ 'default/a/b': bad }));
    await assert.rejects(loadedStore([file('bad64.json')]), (error: unknown) => {
      assertKbcInvalid(file('bad64.json'), /value of "default\/a\/b" is not standard base64/)(error);
      assert.ok(!(error as Error).message.includes(bad), `value ${JSON.stringify(bad)} not quoted`);
      return true;
    });
  }
});

test('an unreadable file stops loading naming the file', { skip: process.getuid?.() === 0 }, async () => {
  writeResourceFile(file('locked.json'), { 'default/a/b': 'x' });
  chmodSync(file('locked.json'), 0o000);
  await assert.rejects(loadedStore([file('locked.json')]), assertKbcInvalid(file('locked.json'), /EACCES/));
});

test('a directory where a file is expected stops loading naming it', async () => {
  mkdirSync(file('dir.json'));
  await assert.rejects(
    loadedStore([file('dir.json')]),
    assertKbcInvalid(file('dir.json'), /not a regular file/),
  );
});

test('a changed file is picked up without a restart', async () => {
  writeResourceFile(file('resources.json'), { 'default/a/b': 'first' });
  const store = await loadedStore([file('resources.json')]);
  assert.equal((await store.getResource('kbs:///default/a/b', callContext())).toString(), 'first');

  rewrite(file('resources.json'), (f) =>
    writeResourceFile(f, { 'default/a/b': 'second', 'default/a/c': 'new' }),
  );
  assert.equal((await store.getResource('kbs:///default/a/b', callContext())).toString(), 'second');
  assert.equal((await store.getResource('kbs:///default/a/c', callContext())).toString(), 'new');

  // An in-place edit (same inode) is seen too.
  writeResourceFile(file('resources.json'), { 'default/a/b': 'third, and longer' });
  assert.equal(
    (await store.getResource('kbs:///default/a/b', callContext())).toString(),
    'third, and longer',
  );
  await assert.rejects(store.getResource('kbs:///default/a/c', callContext()), {
    code: 'RESOURCE_NOT_FOUND',
  });
});

test('a file missing at start-up is served once it appears; a removed file stops being served', async () => {
  const store = await loadedStore([file('later.json')]);
  await assert.rejects(store.getResource('kbs:///default/a/b', callContext()), {
    code: 'RESOURCE_NOT_FOUND',
  });
  writeResourceFile(file('later.json'), { 'default/a/b': 'arrived' });
  assert.equal((await store.getResource('kbs:///default/a/b', callContext())).toString(), 'arrived');
  rmSync(file('later.json'));
  await assert.rejects(store.getResource('kbs:///default/a/b', callContext()), {
    code: 'RESOURCE_NOT_FOUND',
  });
});

test('a file turning malformed later keeps its last good content, with one warning', async () => {
  writeResourceFile(file('resources.json'), { 'default/a/b': 'good' });
  const { logger, lines } = captureLogger();
  const store = new OfflineFsResourceStore([file('resources.json')], logger);
  await store.load();
  rewrite(file('resources.json'), (f) => writeFileSync(f, '{ truncated'));
  for (let i = 0; i < 3; i++) {
    assert.equal((await store.getResource('kbs:///default/a/b', callContext())).toString(), 'good');
  }
  const warnings = lines.filter((line) => line['level'] === 40 && line['file'] === file('resources.json'));
  assert.equal(warnings.length, 1);
  assert.match(String(warnings[0]?.['error']), /not valid UTF-8 JSON/);

  rewrite(file('resources.json'), (f) => writeResourceFile(f, { 'default/a/b': 'fixed' }));
  assert.equal((await store.getResource('kbs:///default/a/b', callContext())).toString(), 'fixed');
});

test('concurrent reads share the refresh and all succeed', async () => {
  writeResourceFile(file('resources.json'), { 'default/a/b': 'v' });
  const store = await loadedStore([file('resources.json')]);
  const values = await Promise.all(
    Array.from({ length: 50 }, () => store.getResource('kbs:///default/a/b', callContext())),
  );
  assert.ok(values.every((value) => value.toString() === 'v'));
});

test('an aborted call is not served', async () => {
  const store = await loadedStore([]);
  const controller = new AbortController();
  controller.abort(new CdhError('CANCELLED', 'the caller cancelled the call'));
  await assert.rejects(store.getResource('kbs:///default/a/b', { signal: controller.signal }), {
    code: 'CANCELLED',
  });
});

test('the default file list: /etc keys and resources, [kbc.offline_fs] resource_files, then the env list', () => {
  const config = defaultConfig();
  assert.deepEqual(offlineFsFilesFromConfig(config, {}), [OFFLINE_FS_KEYS_FILE, OFFLINE_FS_RESOURCES_FILE]);
  config.kbc.offlineFs.resourceFiles = ['/cfg/a.json', '/cfg/b.json'];
  assert.deepEqual(
    offlineFsFilesFromConfig(config, {
      OFFLINE_FS_KBC_EXTRA_FILE_PATH: '/env/c.json, /env/d.json,,/cfg/a.json',
    }),
    [
      OFFLINE_FS_KEYS_FILE,
      OFFLINE_FS_RESOURCES_FILE,
      '/cfg/a.json',
      '/cfg/b.json',
      '/env/c.json',
      '/env/d.json',
    ],
  );
});
