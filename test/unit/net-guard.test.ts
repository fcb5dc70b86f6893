import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertDialAllowed, isLoopbackHost, LOOPBACK_ONLY_ENV } from '../../src/net-guard';

test('loopback hosts are recognised and others are not', () => {
  for (const host of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost'])
    assert.equal(isLoopbackHost(host), true, host);
  for (const host of ['100.100.100.200', 'kms.cn-beijing.aliyuncs.com', '10.0.0.1', '::2'])
    assert.equal(isLoopbackHost(host), false, host);
});

test('in loopback-only mode, dialling a production host fails fast', () => {
  const previous = process.env[LOOPBACK_ONLY_ENV];
  process.env[LOOPBACK_ONLY_ENV] = '1';
  try {
    assert.throws(
      () => assertDialAllowed('100.100.100.200', 'ECS metadata'),
      /refusing to contact 100\.100\.100\.200/,
    );
    assert.doesNotThrow(() => assertDialAllowed('127.0.0.1', 'emulator'));
  } finally {
    if (previous === undefined) delete process.env[LOOPBACK_ONLY_ENV];
    else process.env[LOOPBACK_ONLY_ENV] = previous;
  }
});
