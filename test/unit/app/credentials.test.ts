import assert from 'node:assert/strict';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';
import { CdhError } from '../../../src/errors';
import { OfflineFsResourceStore } from '../../../src/kbc/offline-fs';
import { provisionCredentials } from '../../../src/app/credentials';
import type { CallContext, ResourceReader } from '../../../src/providers/types';
import { silentLogger } from '../../../src/log';
import { captureLogger, makeTempDir, writeResourceFile } from '../../support/kbs';

let dir: string;
let cleanup: () => void;
let root: string;
let store: OfflineFsResourceStore;

const CLIENT_KEY = '{"KeyId":"KAAP.test","PrivateKeyData":"not-a-real-key"}';
const PASSWORD = 'not-a-real-password';

beforeEach(async () => {
  ({ dir, cleanup } = makeTempDir('cdh-provision-'));
  root = path.join(dir, 'cdh');
  writeResourceFile(path.join(dir, 'resources.json'), {
    'default/aliyun/clientKey_KAAP.test.json': CLIENT_KEY,
    'default/aliyun/password_KAAP.test.json': PASSWORD,
  });
  store = new OfflineFsResourceStore([path.join(dir, 'resources.json')], silentLogger());
  await store.load();
});
afterEach(() => cleanup());

function config(credentials: Array<{ resourceUri: string; path: string }>) {
  return { credentialsRoot: root, credentials };
}

function assertRefused(entryNumber: number, reason: RegExp): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.ok(error instanceof CdhError);
    assert.equal(error.code, 'CREDENTIAL_PROVISIONING_FAILED');
    assert.match(error.message, new RegExp(`\\[\\[credentials\\]\\] entry ${entryNumber} `));
    assert.match(error.message, reason);
    return true;
  };
}

test('credentials are written under the root with mode 0600, parent dirs created with mode 0700', async () => {
  const clientKeyPath = path.join(root, 'kms-credential/aliyun/clientKey_KAAP.test.json');
  const passwordPath = path.join(root, 'kms-credential/aliyun/password_KAAP.test.json');
  const { logger, lines } = captureLogger();
  await provisionCredentials(
    config([
      { resourceUri: 'kbs:///default/aliyun/clientKey_KAAP.test.json', path: clientKeyPath },
      { resourceUri: 'kbs:///default/aliyun/password_KAAP.test.json', path: passwordPath },
    ]),
    store,
    logger,
  );
  assert.equal(readFileSync(clientKeyPath, 'utf8'), CLIENT_KEY);
  assert.equal(readFileSync(passwordPath, 'utf8'), PASSWORD);
  assert.equal(statSync(clientKeyPath).mode & 0o777, 0o600);
  assert.equal(statSync(path.join(root, 'kms-credential')).mode & 0o777, 0o700);
  assert.equal(statSync(path.join(root, 'kms-credential/aliyun')).mode & 0o777, 0o700);
  // Nothing but the two files: no temporary file left behind.
  assert.deepEqual(readdirSync(path.join(root, 'kms-credential/aliyun')).sort(), [
    'clientKey_KAAP.test.json',
    'password_KAAP.test.json',
  ]);
  const logged = lines.filter((line) => line['msg'] === 'credential provisioned');
  assert.deepEqual(
    logged.map((line) => line['path']),
    [clientKeyPath, passwordPath],
  );
  const allLogs = JSON.stringify(lines);
  assert.ok(!allLogs.includes(PASSWORD) && !allLogs.includes('not-a-real-key'), 'content is never logged');
});

test('an existing file is replaced by rename (a reader holding the old one keeps it whole)', async () => {
  const target = path.join(root, 'aliyun/password');
  mkdirSync(path.dirname(target), { recursive: true });
  writeFileSync(target, 'old content', { mode: 0o644 });
  const before = lstatSync(target).ino;
  await provisionCredentials(
    config([{ resourceUri: 'kbs:///default/aliyun/password_KAAP.test.json', path: target }]),
    store,
    silentLogger(),
  );
  assert.equal(readFileSync(target, 'utf8'), PASSWORD);
  assert.notEqual(lstatSync(target).ino, before, 'a new inode: written elsewhere, then renamed over');
  assert.equal(statSync(target).mode & 0o777, 0o600);
});

test('a symlink at the target is replaced, not written through', async () => {
  const outside = path.join(dir, 'outside.txt');
  writeFileSync(outside, 'untouched');
  mkdirSync(root, { recursive: true });
  const target = path.join(root, 'password');
  symlinkSync(outside, target);
  await provisionCredentials(
    config([{ resourceUri: 'kbs:///default/aliyun/password_KAAP.test.json', path: target }]),
    store,
    silentLogger(),
  );
  assert.equal(readFileSync(outside, 'utf8'), 'untouched');
  assert.ok(lstatSync(target).isFile());
});

const OUTSIDE_PATHS: ReadonlyArray<readonly [string, (root: string) => string, RegExp]> = [
  ['outside the root', () => '/etc/passwd', /must lie under credentials_root/],
  ['escaping through ..', (r) => `${r}/kms/../../etc/passwd`, /must be normalised/],
  ['a .. segment that normalises inside', (r) => `${r}/a/../b`, /must be normalised/],
  ['a . segment', (r) => `${r}/./b`, /must be normalised/],
  ['a double slash', (r) => `${r}//b`, /must be normalised/],
  ['a trailing slash', (r) => `${r}/b/`, /must be normalised/],
  ['relative', () => 'cdh/kms/file', /must be absolute/],
  ['the root itself', (r) => r, /must lie under credentials_root/],
  ['a sibling sharing the prefix', (r) => `${r}-evil/file`, /must lie under credentials_root/],
  ['a NUL byte', (r) => `${r}/file\u0000.json`, /NUL/],
];

for (const [what, makePath, reason] of OUTSIDE_PATHS) {
  test(`a credential path is refused: ${what}`, async () => {
    await assert.rejects(
      provisionCredentials(
        config([{ resourceUri: 'kbs:///default/aliyun/password_KAAP.test.json', path: makePath(root) }]),
        store,
        silentLogger(),
      ),
      assertRefused(1, reason),
    );
  });
}

test('a symlinked parent directory pointing outside the root is refused and nothing is written there', async () => {
  const elsewhere = path.join(dir, 'elsewhere');
  mkdirSync(elsewhere);
  mkdirSync(root, { recursive: true });
  symlinkSync(elsewhere, path.join(root, 'kms-credential'));
  await assert.rejects(
    provisionCredentials(
      config([
        {
          resourceUri: 'kbs:///default/aliyun/password_KAAP.test.json',
          path: path.join(root, 'kms-credential/aliyun/password'),
        },
      ]),
      store,
      silentLogger(),
    ),
    assertRefused(1, /resolves to .*elsewhere, outside credentials_root/),
  );
  assert.deepEqual(readdirSync(elsewhere), []);
});

test('a symlinked parent directory that stays inside the root is followed', async () => {
  mkdirSync(path.join(root, 'real'), { recursive: true });
  symlinkSync(path.join(root, 'real'), path.join(root, 'alias'));
  await provisionCredentials(
    config([
      { resourceUri: 'kbs:///default/aliyun/password_KAAP.test.json', path: path.join(root, 'alias/pw') },
    ]),
    store,
    silentLogger(),
  );
  assert.equal(readFileSync(path.join(root, 'real/pw'), 'utf8'), PASSWORD);
});

test('every entry is checked before anything is written', async () => {
  const good = path.join(root, 'good');
  await assert.rejects(
    provisionCredentials(
      config([
        { resourceUri: 'kbs:///default/aliyun/password_KAAP.test.json', path: good },
        { resourceUri: 'kbs:///default/aliyun/password_KAAP.test.json', path: '/tmp/../etc/shadow' },
      ]),
      store,
      silentLogger(),
    ),
    assertRefused(2, /"\/tmp\/\.\.\/etc\/shadow"/),
  );
  assert.equal(existsSync(good), false);
});

test('an unknown resource stops provisioning naming the entry and the URI', async () => {
  await assert.rejects(
    provisionCredentials(
      config([{ resourceUri: 'kbs:///default/aliyun/absent', path: path.join(root, 'x') }]),
      store,
      silentLogger(),
    ),
    assertRefused(
      1,
      /not found.*kbs:\/\/\/default\/aliyun\/absent|kbs:\/\/\/default\/aliyun\/absent.*not found/,
    ),
  );
});

test('a malformed resource_uri stops provisioning before any fetch', async () => {
  let fetched = 0;
  const counting: ResourceReader = {
    getResource: (uri: string, ctx: CallContext) => {
      fetched++;
      return store.getResource(uri, ctx);
    },
  };
  await assert.rejects(
    provisionCredentials(
      config([{ resourceUri: 'kbs:///default/%2e%2e/x', path: path.join(root, 'x') }]),
      counting,
      silentLogger(),
    ),
    assertRefused(1, /percent-encoding/),
  );
  assert.equal(fetched, 0);
});

test('a path component that is a file, not a directory, stops provisioning', async () => {
  mkdirSync(root, { recursive: true });
  writeFileSync(path.join(root, 'file'), 'x');
  await assert.rejects(
    provisionCredentials(
      config([
        { resourceUri: 'kbs:///default/aliyun/password_KAAP.test.json', path: path.join(root, 'file/pw') },
      ]),
      store,
      silentLogger(),
    ),
    assertRefused(1, /not a directory|ENOTDIR/),
  );
});

test('no [[credentials]] entries: nothing is created', async () => {
  await provisionCredentials(config([]), store, silentLogger());
  assert.equal(existsSync(root), false);
});
