import assert from 'node:assert/strict';
import { test } from 'node:test';
import { findDuplicateMemberName } from '../../../src/secret/json';

test('no duplicates: undefined, whatever strings and nesting hold', () => {
  for (const text of [
    '{}',
    '[]',
    '"a"',
    '{"a":1,"b":{"a":2},"c":[{"a":3},{"a":4}]}',
    '{"a":"{\\"a\\":1,\\"a\\":2}","b":"\\\\"}',
    '{"a":[1,2,{"b":"}"}],"c":null,"d":true,"e":-1.5e3}',
    ' { "a" : 1 , "b" : 2 } ',
  ]) {
    assert.equal(findDuplicateMemberName(text), undefined, text);
  }
});

test('a name twice in one object is found, at any depth, however it is spelled', () => {
  assert.equal(findDuplicateMemberName('{"a":1,"a":2}'), 'a');
  assert.equal(findDuplicateMemberName('{"type":"vault","x":{},"type":"envelope"}'), 'type');
  assert.equal(findDuplicateMemberName('{"x":{"y":[{"k":1,"k":1}]}}'), 'k');
  assert.equal(findDuplicateMemberName('{"type":1,"\\u0074ype":2}'), 'type');
  assert.equal(findDuplicateMemberName('{"a\\"b":1,"a\\u0022b":2}'), 'a"b');
  assert.equal(findDuplicateMemberName('{"__proto__":1,"__proto__":2}'), '__proto__');
});

test('deep nesting costs no stack', () => {
  const depth = 200_000;
  assert.equal(findDuplicateMemberName('['.repeat(depth) + ']'.repeat(depth)), undefined);
  assert.equal(findDuplicateMemberName('{"a":'.repeat(depth) + '{"b":1,"b":2}' + '}'.repeat(depth)), 'b');
});
