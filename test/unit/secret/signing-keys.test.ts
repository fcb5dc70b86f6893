import assert from 'node:assert/strict';
import { after, before, mock, test } from 'node:test';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, promises as fsPromises, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { CdhError } from '../../../src/errors';
import type { CallContext, ResourceReader } from '../../../src/providers/types';
import { KEY_FILE_RECHECK_MS, SigningKeyResolver } from '../../../src/secret/signing-keys';
import { upstreamJwk } from '../../support/sealed-fixtures';
import { callContext, cdhError, temporaryDirectory } from '../../support/secret-helpers';

const testKey = upstreamJwk('test-key.json');
const testKey2 = upstreamJwk('test-key-2.json');
const tmp = temporaryDirectory('cdh-kid-');
const keyDir = path.join(tmp.dir, 'keys');
const outsideDir = path.join(tmp.dir, 'outside');
const outsideKey = path.join(outsideDir, 'key.json');

before(() => {
  mkdirSync(keyDir);
  mkdirSync(path.join(keyDir, 'sub'));
  mkdirSync(outsideDir);
  writeFileSync(path.join(keyDir, 'key.json'), JSON.stringify(testKey));
  writeFileSync(path.join(keyDir, 'sub', 'nested.json'), JSON.stringify(testKey));
  writeFileSync(outsideKey, JSON.stringify(testKey));
  writeFileSync(path.join(keyDir, 'garbage.json'), 'SECRET-CONTENT not json');
  writeFileSync(path.join(keyDir, 'array.json'), '[]');
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ format: 'jwk' });
  writeFileSync(path.join(keyDir, 'p384.json'), JSON.stringify(p384));
  writeFileSync(path.join(keyDir, 'no-y.json'), JSON.stringify({ kty: 'EC', crv: 'P-256', x: testKey['x'] }));
  symlinkSync(outsideKey, path.join(keyDir, 'escape.json'));
  symlinkSync(outsideDir, path.join(keyDir, 'escape-dir'));
  symlinkSync(path.join(keyDir, 'key.json'), path.join(keyDir, 'alias.json'));
  symlinkSync(keyDir, path.join(tmp.dir, 'keys-link'));
});
after(() => tmp.remove());

/** Runs `body` while recording every path fs.promises.open / readFile is given. */
async function recordingFileReads(body: () => Promise<void>): Promise<string[]> {
  const opened: string[] = [];
  const { open: realOpen, readFile: realReadFile } = fsPromises;
  const open = mock.method(fsPromises, 'open', (...args: Parameters<typeof realOpen>) => {
    opened.push(String(args[0]));
    return realOpen(...args);
  });
  const readFile = mock.method(fsPromises, 'readFile', (...args: Parameters<typeof realReadFile>) => {
    opened.push(String(args[0]));
    return realReadFile(...args);
  });
  try {
    await body();
  } finally {
    open.mock.restore();
    readFile.mock.restore();
  }
  return opened;
}

test('a kid escaping signing_key_dir is PERMISSION_DENIED and no file outside is read', async () => {
  const resolver = new SigningKeyResolver(keyDir);
  const escaping = [
    '../outside/key.json',
    '../x',
    'sub/../../outside/key.json',
    'sub/../key.json',
    outsideKey,
    '/etc/passwd',
    'escape.json',
    'escape-dir/key.json',
    'key.json\0',
    '..\\outside\\key.json',
    '',
  ];
  const opened = await recordingFileReads(async () => {
    for (const kid of escaping) {
      await assert.rejects(resolver.resolve(kid, callContext()), (error: unknown) => {
        assert.ok(error instanceof CdhError, String(error));
        assert.equal(error.code, 'SIGNING_KEY_UNAVAILABLE', `${kid}: ${error.message}`);
        assert.equal(error.status, 'PERMISSION_DENIED');
        return true;
      });
    }
  });
  assert.deepEqual(opened, []);
});

test('kids naming files inside the dir resolve, through symlinks that stay inside too', async () => {
  const resolver = new SigningKeyResolver(keyDir);
  for (const kid of ['key.json', './key.json', 'sub/nested.json', 'alias.json']) {
    const key = await resolver.resolve(kid, callContext());
    assert.equal(key.asymmetricKeyType, 'ec');
    assert.equal(key.type, 'public');
  }
  // signing_key_dir itself may be a symlink (e.g. /run → /var/run).
  await new SigningKeyResolver(path.join(tmp.dir, 'keys-link')).resolve('key.json', callContext());
});

test('a missing, unreadable or unusable key file is SIGNING_KEY_UNAVAILABLE naming the kid, not the content', async () => {
  const resolver = new SigningKeyResolver(keyDir);
  const cases: Array<[string, string]> = [
    ['missing.json', 'no such key file'],
    ['sub', 'not a regular file'],
    ['garbage.json', 'not JSON'],
    ['array.json', 'not a JSON object'],
    ['p384.json', 'P-256'],
    ['no-y.json', '"y"'],
  ];
  for (const [kid, why] of cases) {
    await assert.rejects(resolver.resolve(kid, callContext()), (error: unknown) => {
      cdhError('SIGNING_KEY_UNAVAILABLE', JSON.stringify(kid), why)(error);
      assert.ok(!(error as Error).message.includes('SECRET-CONTENT'));
      return true;
    });
  }
  await assert.rejects(
    new SigningKeyResolver(path.join(tmp.dir, 'no-such-dir')).resolve('key.json', callContext()),
    cdhError('SIGNING_KEY_UNAVAILABLE', 'signing_key_dir'),
  );
});

test('a private JWK is accepted and its d ignored', async () => {
  const key = await new SigningKeyResolver(keyDir).resolve('key.json', callContext());
  assert.equal(key.type, 'public');
  assert.equal(key.export({ format: 'jwk' }).x, testKey['x']);
});

test('keys are cached per file until the file changes, which shows once the recheck window has passed', async () => {
  const dir = path.join(tmp.dir, 'cache');
  mkdirSync(dir);
  const file = path.join(dir, 'rotating.json');
  writeFileSync(file, JSON.stringify(testKey));
  let clock = 1_000_000;
  const resolver = new SigningKeyResolver(dir, undefined, { now: () => clock });
  let first: string | undefined;
  const reads = await recordingFileReads(async () => {
    first = (await resolver.resolve('rotating.json', callContext())).export({ format: 'jwk' }).x;
    await resolver.resolve('rotating.json', callContext());
  });
  assert.equal(reads.length, 1);
  assert.equal(first, testKey['x']);

  writeFileSync(file, JSON.stringify(testKey2));
  utimesSync(file, new Date(), new Date(Date.now() + 5000));
  clock += KEY_FILE_RECHECK_MS - 1;
  const stillOld = await resolver.resolve('rotating.json', callContext());
  assert.equal(stillOld.export({ format: 'jwk' }).x, testKey['x'], 'within the window: no file calls');
  clock += 2;
  const rotated = await resolver.resolve('rotating.json', callContext());
  assert.equal(rotated.export({ format: 'jwk' }).x, testKey2['x']);
});

class FakeResources implements ResourceReader {
  fetches = 0;
  constructor(private readonly resources: Record<string, string>) {}
  async getResource(uri: string, _ctx: CallContext): Promise<Buffer> {
    this.fetches++;
    const value = this.resources[uri];
    if (value === undefined) throw new CdhError('RESOURCE_NOT_FOUND', `resource ${uri} not found`);
    return Buffer.from(value);
  }
}

test('a kbs:// kid without a kbs provider is FAILED_PRECONDITION "kbs provider not configured"', async () => {
  await assert.rejects(
    new SigningKeyResolver(keyDir).resolve('kbs:///default/keys/one', callContext()),
    (error: unknown) => {
      cdhError('PROVIDER_NOT_CONFIGURED', 'kbs provider not configured')(error);
      assert.equal((error as CdhError).status, 'FAILED_PRECONDITION');
      return true;
    },
  );
});

test('a kbs:// kid is read through the resource reader and cached briefly', async () => {
  const { d: _d, ...publicJwk } = testKey;
  const resources = new FakeResources({ 'kbs:///default/keys/one': JSON.stringify(publicJwk) });
  let now = 1_000_000;
  const resolver = new SigningKeyResolver(keyDir, resources, { now: () => now });
  const key = await resolver.resolve('kbs:///default/keys/one', callContext());
  assert.equal(key.export({ format: 'jwk' }).x, testKey['x']);
  await resolver.resolve('kbs:///default/keys/one', callContext());
  assert.equal(resources.fetches, 1);
  now += 60_000;
  await resolver.resolve('kbs:///default/keys/one', callContext());
  assert.equal(resources.fetches, 2);
  await assert.rejects(
    resolver.resolve('kbs:///default/keys/missing', callContext()),
    cdhError('SIGNING_KEY_UNAVAILABLE', 'kbs:///default/keys/missing'),
  );
});
