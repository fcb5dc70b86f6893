import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { isCdhError } from '../../../src/errors';
import { unpackLayer } from '../../../src/image/unpack';
import { tempDir } from '../../../src/devtools/daemon';
import { makeTar, type TarEntry } from '../../support/oci-image';

const work = tempDir('cdh-unpack-');
after(() => work.cleanup());
let n = 0;

/** A fresh layer dir inside a parent that holds an `outside/` sibling (where escapes would land). */
function fresh(): { root: string; outside: string } {
  const parent = join(work.path, `case-${++n}`);
  const root = join(parent, 'layer');
  const outside = join(parent, 'outside');
  mkdirSync(root, { recursive: true });
  mkdirSync(outside, { recursive: true });
  return { root, outside };
}

async function unpack(entries: TarEntry[], root: string): ReturnType<typeof unpackLayer> {
  return unpackLayer(
    Readable.from([makeTar(entries)]),
    root,
    'layer sha256:test',
    new AbortController().signal,
  );
}

async function refused(entries: TarEntry[], pattern: RegExp): Promise<{ root: string; outside: string }> {
  const dirs = fresh();
  await assert.rejects(unpack(entries, dirs.root), (error: unknown) => {
    assert.ok(isCdhError(error), String(error));
    assert.equal(error.code, 'IMAGE_LAYER_INVALID');
    assert.match(error.message, pattern);
    return true;
  });
  assert.deepEqual(readdirSync(dirs.outside), [], 'nothing written outside the layer');
  return dirs;
}

describe('layer unpacking rules', () => {
  test('modes incl. setuid/setgid/sticky, numeric owners, mtimes, symlinks as stored, hard links inside', async () => {
    const { root } = fresh();
    await unpack(
      [
        { path: 'bin/', type: 'dir', mtime: 1_600_000_000 },
        { path: 'bin/su', content: 'x', mode: 0o4755, uid: 0, gid: 0, mtime: 1_600_000_001 },
        { path: 'bin/sg', content: 'y', mode: 0o2711, uid: 1000, gid: 1000 },
        { path: 'tmp/', type: 'dir', mode: 0o1777 },
        { path: 'bin/rel', type: 'symlink', linkname: '../etc/x', uid: 1000, gid: 1000 },
        { path: 'bin/abs', type: 'symlink', linkname: '/etc/shadow' },
        { path: 'bin/hard', type: 'link', linkname: 'bin/su' },
      ],
      root,
    );
    assert.equal(statSync(join(root, 'bin/su')).mode & 0o7777, 0o4755);
    assert.equal(statSync(join(root, 'bin/sg')).mode & 0o7777, 0o2711);
    assert.equal(statSync(join(root, 'bin/sg')).uid, 1000);
    assert.equal(statSync(join(root, 'tmp')).mode & 0o7777, 0o1777);
    assert.equal(statSync(join(root, 'bin/su')).mtimeMs, 1_600_000_001_000);
    assert.equal(statSync(join(root, 'bin')).mtimeMs, 1_600_000_000_000);
    assert.equal(readlinkSync(join(root, 'bin/rel')), '../etc/x');
    assert.equal(lstatSync(join(root, 'bin/rel')).uid, 1000);
    assert.equal(readlinkSync(join(root, 'bin/abs')), '/etc/shadow');
    assert.equal(statSync(join(root, 'bin/hard')).ino, statSync(join(root, 'bin/su')).ino);
  });

  test('an absolute path is unpacked inside the layer (leading / dropped, as tar does)', async () => {
    const { root, outside } = fresh();
    await unpack([{ path: `${outside}/abs-file`, content: 'inside' }], root);
    assert.deepEqual(readdirSync(outside), []);
    assert.equal(readFileSync(join(root, outside, 'abs-file'), 'utf8'), 'inside');
  });

  test('".." entries are refused, wherever the component is', async () => {
    await refused(
      [{ path: '../outside/escape', content: 'x' }],
      /"\.\.\/outside\/escape" refused: path has a "\.\." component/,
    );
    await refused([{ path: 'a/../../outside/escape', content: 'x' }], /"\.\." component/);
    await refused([{ path: '../outside/', type: 'dir' }], /"\.\." component/);
  });

  test('writing through a symlinked parent is refused (absolute, relative and replaced-directory forms)', async () => {
    const first = fresh();
    await assert.rejects(
      unpack(
        [
          { path: 'evil', type: 'symlink', linkname: first.outside },
          { path: 'evil/pwned', content: 'x' },
        ],
        first.root,
      ),
      /parent "evil" is a symlink in this layer/,
    );
    assert.deepEqual(readdirSync(first.outside), []);
    await refused(
      [
        { path: 'up', type: 'symlink', linkname: '../outside' },
        { path: 'up/pwned', content: 'x' },
      ],
      /parent "up" is a symlink/,
    );
    await refused(
      [
        { path: 'd/', type: 'dir' },
        { path: 'd', type: 'symlink', linkname: '../outside' },
        { path: 'd/pwned', content: 'x' },
      ],
      /parent "d" is a symlink/,
    );
  });

  test('hard links must name an earlier entry of the same layer', async () => {
    await refused(
      [{ path: 'shadow', type: 'link', linkname: '/etc/shadow' }],
      /"shadow" refused: hard link target "\/etc\/shadow": parent "etc" does not exist in this layer/,
    );
    await refused(
      [{ path: 'p', type: 'link', linkname: '../../etc/passwd' }],
      /hard link target has a "\.\." component/,
    );
    await refused(
      [
        { path: 'etc', type: 'symlink', linkname: '/etc' },
        { path: 'x', type: 'link', linkname: 'etc/passwd' },
      ],
      /"x" refused: hard link target "etc\/passwd": parent "etc" is a symlink/,
    );
    await refused(
      [
        { path: 'd/', type: 'dir' },
        { path: 'x', type: 'link', linkname: 'd' },
      ],
      /is not a non-directory/,
    );
    assert.equal(existsSync('/etc/shadow') ? statSync('/etc/shadow').nlink : 1, 1);
  });

  test('whiteouts become 0:0 character devices, opaque markers the overlay xattr; devices and FIFOs are skipped', async () => {
    const { root } = fresh();
    const stats = await unpack(
      [
        { path: 'etc/.wh.gone', content: '' },
        { path: 'opaque/', type: 'dir' },
        { path: 'opaque/.wh..wh..opq', content: '' },
        { path: 'opaque/kept', content: 'k' },
        { path: '.wh..wh.plnk', content: '' },
        { path: 'dev/', type: 'dir' },
        { path: 'dev/null', type: 'char' },
        { path: 'dev/fifo', type: 'fifo' },
      ],
      root,
    );
    const wh = lstatSync(join(root, 'etc/gone'));
    assert.ok(wh.isCharacterDevice());
    assert.equal(wh.rdev, 0);
    assert.equal(existsSync(join(root, 'etc/.wh.gone')), false);
    const xattr = execFileSync('getfattr', [
      '--only-values',
      '-n',
      'trusted.overlay.opaque',
      join(root, 'opaque'),
    ]).toString();
    assert.equal(xattr, 'y');
    assert.equal(existsSync(join(root, 'opaque/.wh..wh..opq')), false);
    assert.deepEqual(readdirSync(join(root, 'dev')), []);
    assert.deepEqual(stats, {
      entries: 8,
      skippedDevices: 2,
      whiteouts: 1,
      opaqueDirs: 1,
      xattrsApplied: 0,
      xattrsDropped: 0,
    });
  });

  test('a later entry replaces an earlier one of the same path (file over dir, dir over file)', async () => {
    const { root } = fresh();
    await unpack(
      [
        { path: 'x/', type: 'dir' },
        { path: 'x/inner', content: 'i' },
        { path: 'x', content: 'now a file' },
        { path: 'y', content: 'file' },
        { path: 'y/', type: 'dir' },
        { path: 'y/z', content: 'z' },
      ],
      root,
    );
    assert.equal(readFileSync(join(root, 'x'), 'utf8'), 'now a file');
    assert.equal(readFileSync(join(root, 'y/z'), 'utf8'), 'z');
  });

  test('a truncated tar is refused', async () => {
    const { root } = fresh();
    const tar = makeTar([{ path: 'big', content: Buffer.alloc(10_000, 1) }]);
    await assert.rejects(
      unpackLayer(
        Readable.from([tar.subarray(0, 3000)]),
        root,
        'layer sha256:test',
        new AbortController().signal,
      ),
      (error: unknown) => isCdhError(error) && error.code === 'IMAGE_LAYER_INVALID',
    );
  });
});
