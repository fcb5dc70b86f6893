import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { isCdhError } from '../../../src/errors';
import { unpackLayer } from '../../../src/image/unpack';
import { parseGroup, parsePasswd, readRootfsFile } from '../../../src/image/users';
import { xattrApplied } from '../../../src/image/xattr';
import { tempDir } from '../../../src/devtools/daemon';
import { makeTar, type TarEntry } from '../../support/oci-image';
import { xattrTree } from '../../support/tree';

const work = tempDir('cdh-xattr-');
after(() => work.cleanup());
let n = 0;

function fresh(): { root: string; outside: string } {
  const parent = join(work.path, `case-${++n}`);
  const root = join(parent, 'layer');
  const outside = join(parent, 'outside');
  mkdirSync(root, { recursive: true });
  mkdirSync(outside, { recursive: true });
  return { root, outside };
}

/** Unpacks `entries`, the tar cut into pieces of `piece` bytes (0 = one chunk). */
async function unpack(entries: TarEntry[], root: string, piece = 0): ReturnType<typeof unpackLayer> {
  const tar = makeTar(entries);
  const chunks: Buffer[] = [];
  if (piece === 0) chunks.push(tar);
  else for (let at = 0; at < tar.length; at += piece) chunks.push(tar.subarray(at, at + piece));
  return unpackLayer(Readable.from(chunks), root, 'layer sha256:test', new AbortController().signal);
}

const CAP = Buffer.from('0100000200040000000000000000000000000000', 'hex');

describe('extended attributes from PAX records', () => {
  test('user.* and security.capability are written; trusted.*, user.overlay.*, security.selinux and symlink xattrs dropped', async () => {
    const { root } = fresh();
    const stats = await unpack(
      [
        { path: 'd/', type: 'dir', xattrs: { 'user.a': 'dir', 'trusted.overlay.opaque': 'y' } },
        { path: 'd/f', content: 'x', xattrs: { 'security.capability': CAP, 'user.overlay.origin': 'x' } },
        { path: 'd/s', type: 'symlink', linkname: 'f', xattrs: { 'user.s': 'no' } },
        { path: 'd/h', type: 'link', linkname: 'd/f', xattrs: { 'user.h': 'via-link' } },
        {
          path: 'e',
          content: 'y',
          xattrs: { 'security.selinux': 'system_u:object_r:bin_t:s0', 'trusted.x': 'z' },
        },
      ],
      root,
    );
    const tree = await xattrTree(root);
    assert.deepEqual(tree.get('d'), { 'user.a': '0x646972' });
    assert.deepEqual(tree.get('d/f'), {
      'security.capability': `0x${CAP.toString('hex')}`,
      'user.h': '0x7669612d6c696e6b',
    });
    assert.equal(tree.has('d/s'), false);
    assert.equal(tree.has('e'), false);
    assert.equal(stats.xattrsApplied, 3);
    assert.equal(stats.xattrsDropped, 5);
  });

  test('the same xattrs whatever the chunking (records split across writes)', async () => {
    const entries: TarEntry[] = [
      { path: `long/${'n'.repeat(120)}`, content: 'x', xattrs: { 'user.v': Buffer.alloc(3000, 0x0a) } },
      { path: 'b', content: 'y'.repeat(700), xattrs: { 'user.w': 'w' } },
    ];
    const whole = fresh();
    await unpack(entries, whole.root);
    for (const piece of [1, 7, 511, 513]) {
      const { root } = fresh();
      await unpack(entries, root, piece);
      assert.deepEqual(
        Object.fromEntries(await xattrTree(root)),
        Object.fromEntries(await xattrTree(whole.root)),
      );
    }
    assert.equal((await xattrTree(whole.root)).get('b')?.['user.w'], '0x77');
  });

  test('a later entry replacing a path drops its xattrs; a dir replaced by a symlink writes nothing through it', async () => {
    const { root, outside } = fresh();
    writeFileSync(join(outside, 'g'), 'host file');
    await unpack(
      [
        { path: 'f', content: 'old', xattrs: { 'user.old': '1' } },
        { path: 'f', content: 'new' },
        { path: 'dir/', type: 'dir' },
        { path: 'dir/g', content: 'g', xattrs: { 'user.g': '1' } },
        { path: 'dir', type: 'symlink', linkname: outside },
      ],
      root,
    );
    const tree = await xattrTree(root);
    assert.equal(tree.has('f'), false);
    assert.equal((await xattrTree(outside)).size, 0);
  });

  test('an xattr value a PAX line splitter would read as a size record does not shift the framing', async () => {
    const { root } = fresh();
    const forged = Buffer.from('\n13 size=1024\n');
    await unpack(
      [
        { path: 'a', content: 'aaa', xattrs: { 'user.trick': forged } },
        { path: 'b', content: 'bbb', xattrs: { 'user.next': 'ok' } },
      ],
      root,
    ).catch((error: unknown) => {
      // Either tar and the scanner agree on the entries, or the layer is refused: never mismatched xattrs.
      assert.ok(isCdhError(error) && error.code === 'IMAGE_LAYER_INVALID', String(error));
    });
    const tree = await xattrTree(root);
    if (tree.has('a')) assert.equal(tree.get('a')?.['user.trick'], `0x${forged.toString('hex')}`);
    if (tree.has('b')) assert.deepEqual(tree.get('b'), { 'user.next': '0x6f6b' });
  });

  for (const [what, entry, pattern] of [
    ['a value over 64 KiB', { path: 'f', xattrs: { 'user.big': Buffer.alloc(65537) } }, /holds 65537 bytes/],
    [
      'more than 64 xattrs',
      { path: 'f', xattrs: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`user.x${i}`, 'v'])) },
      /more than 64 extended attributes/,
    ],
    [
      'a PAX header over 1 MiB',
      { path: 'f', xattrs: { 'user.pad': Buffer.alloc(1024 * 1024 + 1) } },
      /larger than 1048576/,
    ],
  ] as const)
    test(`${what} refuses the layer`, async () => {
      const { root, outside } = fresh();
      await assert.rejects(unpack([entry as TarEntry], root), (error: unknown) => {
        assert.ok(isCdhError(error) && error.code === 'IMAGE_LAYER_INVALID', String(error));
        assert.match(error.message, pattern);
        return true;
      });
      assert.deepEqual(readdirSync(outside), []);
    });

  test('which namespaces are applied', () => {
    for (const name of ['user.a', 'user.mime_type', 'security.capability'])
      assert.equal(xattrApplied(name), true, name);
    for (const name of [
      'trusted.overlay.opaque',
      'trusted.overlay.redirect',
      'trusted.x',
      'user.overlay.opaque',
      'security.selinux',
      'security.ima',
      'system.posix_acl_access',
    ])
      assert.equal(xattrApplied(name), false, name);
  });
});

describe('accounts of the image', () => {
  test('passwd and group lines: comments, NIS markers and malformed ids skipped', () => {
    assert.deepEqual(
      parsePasswd('#c\n+nis\nroot:x:0:0::/:/bin/sh\nbad:x:u:0::/:\nshort:x\napp:x:1000:1000:::\n'),
      [
        { name: 'root', uid: 0, gid: 0 },
        { name: 'app', uid: 1000, gid: 1000 },
      ],
    );
    assert.deepEqual(parseGroup('g:x:5:a,b\nempty:x:6:\nbig:x:99999999999:\n'), [
      { name: 'g', gid: 5, members: ['a', 'b'] },
      { name: 'empty', gid: 6, members: [] },
    ]);
  });

  test('files are read inside the rootfs: symlinks resolved there, loops and escapes end inside', async () => {
    const { root, outside } = fresh();
    writeFileSync(join(outside, 'secret'), 'host\n');
    mkdirSync(join(root, 'etc'));
    mkdirSync(join(root, 'lib'));
    writeFileSync(join(root, 'lib', 'passwd'), 'inside\n');
    symlinkSync('../../../../lib/passwd', join(root, 'etc', 'passwd'));
    symlinkSync(join(outside, 'secret'), join(root, 'etc', 'abs'));
    symlinkSync('loop', join(root, 'etc', 'loop'));
    symlinkSync('../outside/secret', join(root, 'etc', 'rel-out'));
    assert.equal(await readRootfsFile(root, '/etc/passwd', 'img'), 'inside\n');
    assert.equal(await readRootfsFile(root, '/etc/abs', 'img'), undefined);
    assert.equal(await readRootfsFile(root, '/etc/loop', 'img'), undefined);
    assert.equal(await readRootfsFile(root, '/etc/rel-out', 'img'), undefined);
    assert.equal(await readRootfsFile(root, '/etc/missing', 'img'), undefined);
    writeFileSync(join(root, 'etc', 'huge'), Buffer.alloc(1024 * 1024 + 1));
    await assert.rejects(readRootfsFile(root, '/etc/huge', 'img'), /IMAGE_USER_UNKNOWN|larger than/);
    await assert.rejects(readRootfsFile(root, '/lib', 'img'), /not a regular file/);
  });
});
