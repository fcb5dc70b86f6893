import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CdhError } from '../../../src/errors';
import { formatResourceUri, kbsRequestPath, parseResourceUri, resourceKey } from '../../../src/kbc/uri';

test('a resource URI with an empty host parses into repo, type and tag', () => {
  const uri = parseResourceUri('kbs:///default/aliyun/clientKey_KAAP.f4c8.json');
  assert.deepEqual(uri, {
    host: '',
    plugin: 'resource',
    segments: ['default', 'aliyun', 'clientKey_KAAP.f4c8.json'],
    repo: 'default',
    type: 'aliyun',
    tag: 'clientKey_KAAP.f4c8.json',
    query: '',
  });
  assert.equal(resourceKey(uri), 'default/aliyun/clientKey_KAAP.f4c8.json');
  assert.equal(formatResourceUri(uri), 'kbs:///default/aliyun/clientKey_KAAP.f4c8.json');
});

test('a host, host:port or [IPv6]:port is accepted and kept (the offline_fs KBC ignores it)', () => {
  assert.equal(parseResourceUri('kbs://kbs.example.org/a/b/c').host, 'kbs.example.org');
  assert.equal(
    parseResourceUri('kbs://example.cckbs.org:8081/alice/decryption-key/1').host,
    'example.cckbs.org:8081',
  );
  assert.equal(parseResourceUri('kbs://127.0.0.1:8080/a/b/c').host, '127.0.0.1:8080');
  assert.equal(parseResourceUri('kbs://[::1]:8080/a/b/c').host, '[::1]:8080');
});

test('upstream spellings of the scheme (upper case, kbs+resource) are the same URI', () => {
  assert.equal(resourceKey(parseResourceUri('KBS:///a/b/c')), 'a/b/c');
  assert.equal(resourceKey(parseResourceUri('kbs+resource:///a/b/c')), 'a/b/c');
});

test('segments may hold letters, digits, dots, underscores and dashes', () => {
  const uri = parseResourceUri('kbs:///my-repo_1/type.v2/tag-3_x.y');
  assert.deepEqual([uri.repo, uri.type, uri.tag], ['my-repo_1', 'type.v2', 'tag-3_x.y']);
});

const BAD_URIS: ReadonlyArray<readonly [string, string, RegExp]> = [
  ['empty string', '', /it is empty/],
  ['missing segments', 'kbs:///repo/type', /2 segments, exactly 3/],
  ['only a repo', 'kbs:///repo', /1 segment, exactly 3/],
  ['no path at all', 'kbs://host', /no path/],
  ['extra segment', 'kbs:///repo/type/tag/extra', /4 segments, exactly 3/],
  ['trailing slash', 'kbs:///repo/type/tag/', /4 segments/],
  ['empty repo segment', 'kbs:////type/tag', /repo segment is empty/],
  ['empty type segment', 'kbs:///repo//tag', /type segment is empty/],
  ['empty tag segment', 'kbs:///repo/type/', /tag segment is empty/],
  ['dot-dot segment', 'kbs:///repo/../tag', /type segment is "\.\."/],
  ['dot segment', 'kbs:///./type/tag', /repo segment is "\."/],
  ['hidden name', 'kbs:///repo/type/.hidden', /must not start with \./],
  ['percent-encoded dot-dot', 'kbs:///repo/%2e%2e/tag', /percent-encoding/],
  ['percent-encoded slash', 'kbs:///repo/type%2Ftag/x', /percent-encoding/],
  ['NUL byte', 'kbs:///repo/type/tag\u0000.json', /control character/],
  ['newline', 'kbs:///repo/type/tag\n', /control character/],
  ['empty query', 'kbs:///repo/type/tag?', /query is empty/],
  ['query with a space-like escape', 'kbs:///repo/type/tag?a=%zz', /query/],
  ['query with a quote', 'kbs:///repo/type/tag?a="b"', /query/],
  ['fragment', 'kbs:///repo/type/tag#frag', /fragment/],
  ['wrong scheme', 'http:///repo/type/tag', /scheme is "http", not kbs/],
  ['a bad plugin name', 'kbs+PK$11:///repo/type/tag', /plugin/],
  ['another scheme', 'kbsx:///repo/type/tag', /scheme is "kbsx"/],
  ['a plugin path with a dot-dot segment', 'kbs+pkcs11:///a/../b', /segment is "\.\."/],
  ['no scheme', '/repo/type/tag', /does not start with kbs:\/\//],
  ['single slash after scheme', 'kbs:/repo/type/tag', /does not start with kbs:\/\//],
  ['backslash separator', 'kbs:///repo\\type\\tag', /backslash/],
  ['unicode division slash look-alike', 'kbs:///repo\u2215type/tag/x', /non-ASCII/],
  ['fullwidth solidus look-alike', 'kbs:///repo\uff0ftype\uff0ftag', /non-ASCII/],
  ['cyrillic letter look-alike', 'kbs:///r\u0435po/type/tag', /non-ASCII/],
  ['cyrillic scheme look-alike', 'k\u0431s:///repo/type/tag', /non-ASCII/],
  ['space in segment', 'kbs:///repo/my type/tag', /space/],
  ['user info', 'kbs://user@host/repo/type/tag', /user information/],
  ['bad host characters', 'kbs://ho_st/repo/type/tag', /host "ho_st"/],
  ['port out of range', 'kbs://host:70000/repo/type/tag', /port 70000 is out of range/],
  ['shell characters', 'kbs:///repo/type/$(id)', /may only hold/],
  ['colon in segment', 'kbs:///repo/type/c:x', /may only hold/],
  ['too long', `kbs:///repo/type/${'a'.repeat(3000)}`, /longer than 2048/],
];

for (const [what, uri, reason] of BAD_URIS) {
  test(`a resource URI is refused: ${what}`, () => {
    assert.throws(
      () => parseResourceUri(uri),
      (error: unknown) => {
        assert.ok(error instanceof CdhError);
        assert.equal(error.code, 'RESOURCE_URI_INVALID');
        assert.equal(error.status, 'INVALID_ARGUMENT');
        assert.match(error.message, reason);
        assert.match(error.message, /expected kbs:\/\/<host>\/<repo>\/<type>\/<tag>/);
        return true;
      },
    );
  });
}

test('a non-string resource URI is refused', () => {
  assert.throws(() => parseResourceUri(undefined), /not a string/);
  assert.throws(() => parseResourceUri(42), /not a string/);
});

test('the refused URI is named with control and look-alike characters escaped', () => {
  assert.throws(
    () => parseResourceUri('kbs:///repo/type/tag\u0000x'),
    (error: Error) => error.message.includes('"kbs:///repo/type/tag\\u0000x"'),
  );
  assert.throws(
    () => parseResourceUri('kbs:///repo\u2215type/tag/x'),
    (error: Error) =>
      error.message.includes('"kbs:///repo\\u2215type/tag/x"') && !error.message.includes('\u2215'),
  );
});

test('kbs+<plugin>:// takes any number of path segments and keeps the plugin', () => {
  const uri = parseResourceUri('kbs+nebula-ca://kbs.example/credential/node?ip=10.0.0.1&name=n1');
  assert.equal(uri.plugin, 'nebula-ca');
  assert.deepEqual(uri.segments, ['credential', 'node']);
  assert.equal(uri.query, 'ip=10.0.0.1&name=n1');
  assert.equal(kbsRequestPath(uri), 'nebula-ca/credential/node?ip=10.0.0.1&name=n1');
  assert.equal(formatResourceUri(uri), 'kbs+nebula-ca://kbs.example/credential/node?ip=10.0.0.1&name=n1');
});

test('kbs+resource:// is kbs:// and a query is passed through as written', () => {
  const uri = parseResourceUri('KBS+Resource:///default/key/1?version=2&x=a%2Fb');
  assert.equal(uri.plugin, 'resource');
  assert.equal(resourceKey(uri), 'default/key/1');
  assert.equal(kbsRequestPath(uri), 'resource/default/key/1?version=2&x=a%2Fb');
  assert.equal(formatResourceUri(uri), 'kbs:///default/key/1?version=2&x=a%2Fb');
});
