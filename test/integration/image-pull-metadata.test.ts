import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import { spawnDaemon, tempDir, type DaemonProcess } from '../../src/devtools/daemon';
import {
  buildLayer,
  makeTar,
  tagImage,
  writeImage,
  type BuiltLayer,
  type TarEntry,
} from '../support/oci-image';
import { pushImage, startRegistry, type TestRegistry } from '../support/registry';
import { Bundles, closeImagePullWorld, registryImageConfig } from '../support/image-bundles';
import { umociUnpack, xattrTree } from '../support/tree';

/** VFS_CAP_REVISION_2, effective, permitted = CAP_NET_BIND_SERVICE | CAP_NET_RAW (bits 10, 13). */
const FILE_CAP = Buffer.from('0100000200240000000000000000000000000000', 'hex');
const BINARY_VALUE = Buffer.from([0, 0xff, 0x80, 0x0a, 0x3d, 0x20, 0x0a]);

const ACCOUNTS: TarEntry[] = [
  { path: 'etc/', type: 'dir' },
  {
    path: 'etc/passwd',
    content:
      '# accounts\nroot:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nother:x:1001:1001::/:/bin/sh\n',
  },
  {
    path: 'etc/group',
    content: 'root:x:0:\nstaff:x:50:\nsudo:x:27:app\nusers:x:100:other,app\napp:x:1000:\n',
  },
];
const XATTR_LOWER: TarEntry[] = [
  ...ACCOUNTS,
  { path: 'bin/', type: 'dir', xattrs: { 'user.dir-note': 'binaries' } },
  { path: 'bin/ping', content: 'ping\n', mode: 0o755, xattrs: { 'security.capability': FILE_CAP } },
  {
    path: 'bin/tagged',
    content: 't\n',
    uid: 1000,
    xattrs: { 'user.mime_type': 'text/plain', 'user.raw': BINARY_VALUE },
  },
  {
    path: 'bin/suid-cap',
    content: 's\n',
    mode: 0o4755,
    uid: 1000,
    xattrs: { 'security.capability': FILE_CAP },
  },
];
const XATTR_UPPER: TarEntry[] = [
  // A forged overlay marker: honoured, it would hide the lower /etc (passwd, group).
  { path: 'etc/', type: 'dir', xattrs: { 'trusted.overlay.opaque': 'y' } },
  { path: 'etc/motd', content: 'hi\n', xattrs: { 'trusted.overlay.redirect': '/bin', 'user.kept': 'yes' } },
];

describe('PullImage metadata: xattrs as umoci applies them, User by name from the image, policy re-read', () => {
  let registry: TestRegistry;
  let daemon: DaemonProcess;
  const work = tempDir('cdh-image-meta-');
  const layout = join(work.path, 'layout');
  const policyFile = join(work.path, 'policy.json');
  const bundles = new Bundles(work.path);
  let seq = 0;

  function tag(name: string, layers: readonly BuiltLayer[], config: Record<string, unknown> = {}): void {
    const image = writeImage(layout, { layers, config: { Cmd: ['/bin/sh'], ...config } });
    tagImage(layout, name, image);
  }

  before(async () => {
    registry = await startRegistry();
    const lower = buildLayer(makeTar(XATTR_LOWER));
    const upper = buildLayer(makeTar(XATTR_UPPER));
    const accounts = buildLayer(makeTar(ACCOUNTS));
    tag('xattrs', [lower, upper]);
    const users = ['app', 'app:staff', '1000', '4242', '4242:4343', '1001:app', 'ghost', 'app:nogroup', ''];
    for (const [i, user] of users.entries()) tag(`user-${i}`, [accounts], { User: user });
    writeFileSync(join(work.path, 'host-passwd'), 'hostonly:x:4444:4444::/:/bin/sh\n');
    const escape = buildLayer(
      makeTar([
        { path: 'etc/', type: 'dir' },
        { path: 'etc/passwd', type: 'symlink', linkname: `../../../../../../../..${work.path}/host-passwd` },
      ]),
    );
    tag('escape', [escape], { User: 'hostonly' });
    const inside = buildLayer(
      makeTar([
        { path: 'lib/', type: 'dir' },
        { path: 'lib/accounts', content: 'svc:x:321:654::/:/bin/sh\n' },
        { path: 'etc/', type: 'dir' },
        { path: 'etc/passwd', type: 'symlink', linkname: '/../lib/accounts' },
      ]),
    );
    tag('inside-link', [inside], { User: 'svc' });
    for (const name of ['xattrs', 'escape', 'inside-link', ...users.map((_, i) => `user-${i}`)])
      await pushImage(layout, name, `${registry.host}/meta/${name}:v1`);
    writeFileSync(policyFile, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
    daemon = await spawnDaemon({
      config: {
        image: registryImageConfig(work.path, registry.host, {
          image_security_policy_uri: policyFile,
        }),
      },
    });
  });

  after(() => closeImagePullWorld({ bundles, work, daemon, registry }));

  async function pull(name: string): Promise<string> {
    const bundle = bundles.dir(`${name}-${seq++}`);
    await daemon.client().pullImage(`${registry.host}/meta/${name}:v1`, bundle, 60_000);
    return bundle;
  }

  function processUser(bundle: string): unknown {
    return (JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as { process: { user: unknown } })
      .process.user;
  }

  test('a file capability and user xattrs come out as umoci unpack applies them; forged overlay xattrs do not', async () => {
    const bundle = await pull('xattrs');
    const ours = await xattrTree(join(bundle, 'rootfs'));
    const theirs = await xattrTree(await umociUnpack(layout, 'xattrs', join(work.path, 'umoci-xattrs')));
    theirs.delete('');
    ours.delete('');
    assert.deepEqual(Object.fromEntries(ours), Object.fromEntries(theirs));
    assert.deepEqual(ours.get('bin/ping'), { 'security.capability': `0x${FILE_CAP.toString('hex')}` });
    assert.equal(ours.get('bin/tagged')?.['user.raw'], `0x${BINARY_VALUE.toString('hex')}`);
    assert.equal(ours.get('bin/suid-cap')?.['security.capability'], `0x${FILE_CAP.toString('hex')}`);
    assert.deepEqual(ours.get('etc/motd'), { 'user.kept': '0x796573' });
    // The lower /etc is still visible: the forged opaque marker was not honoured.
    assert.match(readFileSync(join(bundle, 'rootfs', 'etc', 'passwd'), 'utf8'), /^app:/m);
  });

  test('User by name, name:group, uid, uid:gid from the image passwd/group, with supplementary groups as runc', async () => {
    const expected = [
      { uid: 1000, gid: 1000, additionalGids: [27, 100] },
      { uid: 1000, gid: 50 },
      { uid: 1000, gid: 1000, additionalGids: [27, 100] },
      { uid: 4242, gid: 0 },
      { uid: 4242, gid: 4343 },
      { uid: 1001, gid: 1000 },
    ];
    for (const [i, want] of expected.entries())
      assert.deepEqual(processUser(await pull(`user-${i}`)), want, `user-${i}`);
    assert.deepEqual(processUser(await pull('user-8')), { uid: 0, gid: 0 });
    assert.deepEqual(processUser(await pull('inside-link')), { uid: 321, gid: 654 });
  });

  test('an unknown user or group is IMAGE_USER_UNKNOWN naming the image and the user, with no mount left', async () => {
    for (const [name, user, why] of [
      ['user-6', 'ghost', /no user "ghost"/],
      ['user-7', 'app:nogroup', /no group "nogroup"/],
      ['escape', 'hostonly', /no user "hostonly"/],
    ] as const) {
      const bundle = join(work.path, 'bundles', `${name}-refused`);
      await assert.rejects(
        daemon.client().pullImage(`${registry.host}/meta/${name}:v1`, bundle, 60_000),
        (error: grpc.ServiceError) => {
          assert.equal(error.code, 9, error.details);
          assert.match(error.details, /IMAGE_USER_UNKNOWN/);
          assert.ok(error.details.includes(`meta/${name}:v1`), error.details);
          assert.ok(error.details.includes(JSON.stringify(user)), error.details);
          assert.match(error.details, why);
          return true;
        },
      );
      const mountinfo = readFileSync('/proc/self/mountinfo', 'utf8');
      assert.equal(mountinfo.includes(join(bundle, 'rootfs')), false, `${name} left a mount`);
    }
  });

  test('a changed policy file is obeyed by the next pull (and changed back, accepted again)', async () => {
    await pull('user-0');
    writeFileSync(policyFile, JSON.stringify({ default: [{ type: 'reject' }] }));
    await assert.rejects(pull('user-0'), (error: grpc.ServiceError) => {
      assert.equal(error.code, 7);
      assert.match(error.details, /IMAGE_POLICY_REJECTED/);
      return true;
    });
    writeFileSync(policyFile, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
    await pull('user-0');
  });
});
