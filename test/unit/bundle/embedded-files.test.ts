import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { brotliCompressSync } from 'node:zlib';
import { installEmbeddedFiles, loadBundlePart } from '../../../src/bundle/embedded-files';

// A path under a regular file never exists on disk, as under a real bundle.
const bundle = join(__dirname, 'embedded-files.test.js');
const part = Buffer.from('module.exports = { answer: 6 * 7, dir: __dirname };');
installEmbeddedFiles(bundle, {
  'protos/a.proto': () => ({ utf8: 'syntax = "proto3";' }),
  'data/blob.bin': () => Buffer.from([0, 255, 1]).toString('base64'),
  'parts/big.txt': () => ({ brotli: brotliCompressSync(Buffer.from('x'.repeat(10_000))).toString('base64') }),
  'parts/code.js': () => ({ brotli: brotliCompressSync(part).toString('base64') }),
});

test('embedded files read back as text, bytes and brotli-compressed bytes, under the bundle path', () => {
  assert.equal(fs.readFileSync(join(bundle, 'protos/a.proto'), 'utf8'), 'syntax = "proto3";');
  assert.deepEqual([...fs.readFileSync(join(bundle, 'data/blob.bin'))], [0, 255, 1]);
  assert.equal(fs.readFileSync(join(bundle, 'parts/big.txt'), 'utf8'), 'x'.repeat(10_000));
  assert.equal(fs.statSync(join(bundle, 'parts/big.txt')).size, 10_000);
  assert.equal(fs.existsSync(join(bundle, 'parts')), true);
  assert.throws(() => fs.readFileSync(join(bundle, 'missing.txt')), { code: 'ENOENT' });
});

test('a compressed part is evaluated once as a module at its path inside the bundle', () => {
  const loaded = loadBundlePart('parts/code.js') as { answer: number; dir: string };
  assert.equal(loaded.answer, 42);
  assert.equal(loaded.dir, join(bundle, 'parts'));
  assert.equal(loadBundlePart('parts/code.js'), loaded);
});
