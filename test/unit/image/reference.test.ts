import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isCdhError } from '../../../src/errors';
import { AuthFile } from '../../../src/image/auth';
import { LookasideConfig } from '../../../src/image/lookaside';
import { choosePlatform, goArch, parseManifest } from '../../../src/image/manifest';
import { parseReference, referenceString } from '../../../src/image/reference';
import { parseRegistryConfig, parseRegistryConfigToml, pullTasks } from '../../../src/image/registry-config';
import { parseChallenge } from '../../../src/image/registry';
import { scopeCandidates } from '../../../src/image/scopes';

const D = `sha256:${'a'.repeat(64)}`;

describe('docker references', () => {
  for (const [input, expected] of [
    ['busybox', 'docker.io/library/busybox:latest'],
    ['index.docker.io/library/busybox', 'docker.io/library/busybox:latest'],
    ['user/app:1.2', 'docker.io/user/app:1.2'],
    ['test.com:5000', 'docker.io/library/test.com:5000'],
    ['127.0.0.1:5000/x', '127.0.0.1:5000/x:latest'],
    ['localhost/a/b/c:t', 'localhost/a/b/c:t'],
    [`quay.io/org/img@${D}`, `quay.io/org/img@${D}`],
    [`quay.io/org/img:tag@${D}`, `quay.io/org/img:tag@${D}`],
  ] as const) {
    test(`${input} → ${expected}`, () => assert.equal(referenceString(parseReference(input)), expected));
  }

  for (const bad of [
    '',
    'UPPER/case',
    'a//b',
    'img:',
    'img@sha256:abc',
    `img@md5:${'a'.repeat(32)}`,
    'img:bad tag',
    `${'a'.repeat(300)}`,
  ]) {
    test(`refused: ${JSON.stringify(bad.slice(0, 30))}`, () =>
      assert.throws(
        () => parseReference(bad),
        (e: unknown) => isCdhError(e) && e.code === 'IMAGE_REFERENCE_INVALID',
      ));
  }
});

describe('registry configuration (registries.conf subset)', () => {
  const config = parseRegistryConfigToml(
    `
unqualified-search-registries = ["docker.io", "mirror.example"]
[[registry]]
prefix = "example.com/foo"
location = "internal.example/bar"
insecure = true
[[registry.mirror]]
location = "m1.example/foo"
[[registry.mirror]]
location = "m2.example/foo"
insecure = true
[[registry]]
location = "blocked.example"
blocked = true
[[registry]]
prefix = "example.com"
location = "other.example"
`,
    'test',
  );

  const tasks = (ref: string): string[] =>
    pullTasks(parseReference(ref), config).map(
      (t) => `${t.plainHttp ? 'http' : 'https'} ${referenceString(t.ref)}`,
    );

  test('mirrors first, then the remapped location; the longest prefix wins; insecure means plain HTTP', () => {
    assert.deepEqual(tasks('example.com/foo/app:1'), [
      'https m1.example/foo/app:1',
      'http m2.example/foo/app:1',
      'http internal.example/bar/app:1',
    ]);
    assert.deepEqual(tasks('example.com/baz:1'), ['https other.example/baz:1']);
  });

  test('prefixes match from the start of the reference only, at a component boundary', () => {
    assert.deepEqual(tasks('evil.io/example.com/foo/x:1'), ['https evil.io/example.com/foo/x:1']);
    assert.deepEqual(tasks('example.com/foobar:1'), ['https other.example/foobar:1']);
  });

  test('unqualified names try each search registry (library/ dropped elsewhere)', () => {
    assert.deepEqual(tasks('busybox'), [
      'https docker.io/library/busybox:latest',
      'https mirror.example/busybox:latest',
    ]);
  });

  test('a blocked registry is refused naming the image', () => {
    assert.throws(
      () => tasks('blocked.example/x'),
      (e: unknown) => isCdhError(e) && e.code === 'IMAGE_REGISTRY_DENIED' && /blocked/.test(e.message),
    );
  });

  test('bad configuration is refused', () => {
    assert.throws(
      () => parseRegistryConfig({ registry: [{ insecure: true }] }, 't'),
      /neither prefix nor location/,
    );
    assert.throws(
      () => parseRegistryConfig({ registry: [{ prefix: 'a', mirror: [{ location: '' }] }] }, 't'),
      /mirror needs a location/,
    );
    assert.throws(() => parseRegistryConfigToml('[[registry', 't'), /not valid TOML/);
  });
});

describe('auth.json lookup', () => {
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  const auth = AuthFile.parse(
    JSON.stringify({
      auths: {
        'quay.io/org': { auth: b64('org:pw\n') },
        'quay.io': { auth: b64('any:pw2') },
        'https://index.docker.io/v1/': { auth: b64('hub:pw3') },
      },
    }),
    't',
  );
  test('most specific path first, then the registry, then keys naming the same host', () => {
    assert.deepEqual(auth.lookup(parseReference('quay.io/org/img')), { username: 'org', password: 'pw' });
    assert.deepEqual(auth.lookup(parseReference('quay.io/other/img')), { username: 'any', password: 'pw2' });
    assert.deepEqual(auth.lookup(parseReference('busybox')), { username: 'hub', password: 'pw3' });
    assert.equal(auth.lookup(parseReference('ghcr.io/x')), undefined);
  });
  test('an entry without "auth" makes the file invalid (as upstream)', () => {
    assert.throws(
      () => AuthFile.parse('{"auths":{"a.io":{"username":"u","password":"p"}}}', 't'),
      /has no "auth" string/,
    );
    assert.throws(() => AuthFile.parse('nope', 't'), /not JSON/);
  });
});

describe('WWW-Authenticate challenges', () => {
  test('Bearer with quoted and bare parameters', () => {
    assert.deepEqual(
      parseChallenge(
        'Bearer realm="https://auth.example/token",service="registry.example",scope=repository:a:pull',
      ),
      {
        scheme: 'bearer',
        params: {
          realm: 'https://auth.example/token',
          service: 'registry.example',
          scope: 'repository:a:pull',
        },
      },
    );
    assert.equal(parseChallenge('Basic realm="basic-realm"')?.scheme, 'basic');
  });
});

describe('manifests', () => {
  const label = 'image "x"';
  test('docker schema 1 and unknown media types are unsupported', () => {
    assert.throws(() => parseManifest(Buffer.from('{"schemaVersion":1}'), label), /schemaVersion "1"/);
    assert.throws(
      () =>
        parseManifest(
          Buffer.from(
            JSON.stringify({
              schemaVersion: 2,
              config: { digest: D, size: 1 },
              layers: [{ mediaType: 'application/x-foo', digest: D, size: 1 }],
            }),
          ),
          label,
        ),
      (e: unknown) => isCdhError(e) && e.code === 'IMAGE_UNSUPPORTED' && e.message.includes(D),
    );
  });
  test('an index: the first linux entry of this CPU, variant ignored; none → NOT_FOUND listing what there is', () => {
    const index = parseManifest(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          manifests: [
            {
              digest: `sha256:${'1'.repeat(64)}`,
              size: 1,
              platform: { os: 'windows', architecture: goArch() },
            },
            { digest: `sha256:${'2'.repeat(64)}`, size: 1 },
            {
              digest: `sha256:${'3'.repeat(64)}`,
              size: 1,
              platform: { os: 'linux', architecture: goArch(), variant: 'v9' },
            },
            {
              digest: `sha256:${'4'.repeat(64)}`,
              size: 1,
              platform: { os: 'linux', architecture: goArch() },
            },
          ],
        }),
      ),
      label,
    );
    assert.equal(index.kind, 'index');
    if (index.kind !== 'index') return;
    assert.equal(choosePlatform(index, label).digest, `sha256:${'3'.repeat(64)}`);
    assert.throws(
      () => choosePlatform(index, label, 's390x'),
      /no manifest for linux\/s390x \(has windows\//,
    );
  });
  test('goArch names CPUs as Go does', () => {
    assert.equal(goArch('x64'), 'amd64');
    assert.equal(goArch('arm64'), 'arm64');
  });
});

describe('policy and lookaside scopes', () => {
  test('scopes from the most specific to the wildcard hosts', () => {
    assert.deepEqual(scopeCandidates(parseReference('registry.example.com/ns/app:1')), [
      'registry.example.com/ns/app:1',
      'registry.example.com/ns/app',
      'registry.example.com/ns',
      'registry.example.com',
      '*.example.com',
      '*.com',
    ]);
  });
  test('registries.d: the most specific docker scope, else default-docker (lookaside or sigstore key)', () => {
    const config = LookasideConfig.parse([
      {
        text: `# comment\ndefault-docker:\n  sigstore: file:///default\ndocker:\n  quay.io/org:\n    lookaside: "https://sigs.example/org"\n  quay.io:\n    lookaside: https://sigs.example/all # trailing\n`,
        source: 't',
      },
    ]);
    assert.equal(config.baseFor(parseReference('quay.io/org/app:1')), 'https://sigs.example/org');
    assert.equal(config.baseFor(parseReference('quay.io/x/app:1')), 'https://sigs.example/all');
    assert.equal(config.baseFor(parseReference('busybox')), 'file:///default');
  });
});
