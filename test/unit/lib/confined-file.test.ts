import assert from 'node:assert/strict';
import { constants, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { openInsideDirectory, OutsideDirectoryError, pathIsInside } from '../../../src/lib/confined-file';

const root = mkdtempSync(join(tmpdir(), 'cdh-confined-'));
const dir = join(root, 'dir');
const outside = join(root, 'outside');
mkdirSync(join(dir, '..2026_01_01', 'sub'), { recursive: true });
mkdirSync(outside);
writeFileSync(join(dir, 'plain'), 'plain');
writeFileSync(join(dir, '..2026_01_01', 'key'), 'key');
writeFileSync(join(outside, 'secret'), 'outside');
symlinkSync('..2026_01_01', join(dir, '..data'));
symlinkSync('..data/key', join(dir, 'key'));
symlinkSync('../outside/secret', join(dir, 'relative-escape'));
symlinkSync(join(outside, 'secret'), join(dir, 'absolute-escape'));
symlinkSync(dir, join(root, 'dir-link'));

after(() => rmSync(root, { recursive: true, force: true }));

async function read(directory: string, file: string): Promise<string> {
  const { handle } = await openInsideDirectory(directory, file, constants.O_RDONLY);
  try {
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

test('a plain file and a Kubernetes-style ..data link chain inside the directory open', async () => {
  assert.equal(await read(dir, join(dir, 'plain')), 'plain');
  assert.equal(await read(dir, join(dir, 'key')), 'key');
  // The directory may itself be reached through a link.
  assert.equal(await read(join(root, 'dir-link'), join(root, 'dir-link', 'key')), 'key');
});

test('links that leave the directory, relative or absolute, are refused', async () => {
  for (const name of ['relative-escape', 'absolute-escape']) {
    await assert.rejects(read(dir, join(dir, name)), OutsideDirectoryError, name);
  }
  await assert.rejects(read(join(dir, 'sub-missing'), join(dir, 'plain')), { code: 'ENOENT' });
});

test('the directory itself is not a file inside it', async () => {
  await assert.rejects(read(dir, dir), OutsideDirectoryError);
});

test('pathIsInside is lexical: ".." climbs, names starting with ".." do not', () => {
  assert.equal(pathIsInside('/a/b', '/a/b/..data/x'), true);
  assert.equal(pathIsInside('/a/b', '/a/b/c'), true);
  assert.equal(pathIsInside('/a/b', '/a/b/../c'), false);
  assert.equal(pathIsInside('/a/b', '/a/bc'), false);
  assert.equal(pathIsInside('/a/b', '/etc/passwd'), false);
});
