import assert from 'node:assert/strict';
import { test } from 'node:test';
import { canonicalJson, isDeepFrozen } from '../../../src/providers/registry';

test('canonical JSON sorts keys at every level', () => {
  assert.equal(
    canonicalJson({ b: 1, a: { d: [2, { f: 1, e: 0 }], c: null } }),
    '{"a":{"c":null,"d":[2,{"e":0,"f":1}]},"b":1}',
  );
});

test('a value that can still change is serialised afresh: a change shows in its key', () => {
  const settings: Record<string, unknown> = { region: 'a' };
  assert.equal(canonicalJson(settings), '{"region":"a"}');
  settings['region'] = 'b';
  assert.equal(canonicalJson(settings), '{"region":"b"}');
  assert.equal(isDeepFrozen(settings), false);
});

test('only a value frozen all the way down counts as unchangeable', () => {
  const inner: Record<string, unknown> = { x: 1 };
  const shallow = Object.freeze({ inner });
  assert.equal(isDeepFrozen(shallow), false);
  inner['x'] = 2;
  assert.equal(canonicalJson(shallow), '{"inner":{"x":2}}');
  const deep = Object.freeze({
    inner: Object.freeze({ x: 1 }),
    list: Object.freeze([Object.freeze({ y: 2 })]),
  });
  assert.equal(isDeepFrozen(deep), true);
  assert.equal(canonicalJson(deep), '{"inner":{"x":1},"list":[{"y":2}]}');
});
