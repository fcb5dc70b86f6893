import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CdhError } from '../../../src/errors';
import { MAX_STATUS_MESSAGE_CHARS, toCallFailure } from '../../../src/server/status';

test('a status message is one line of at most MAX_STATUS_MESSAGE_CHARS, whatever it echoes', () => {
  for (const length of [10, MAX_STATUS_MESSAGE_CHARS - 30, MAX_STATUS_MESSAGE_CHARS, 5000, 200_000]) {
    const failure = toCallFailure(new CdhError('KMS_NOT_FOUND', `secret "${'n'.repeat(length)}"\nnot found`));
    assert.ok(failure.message.length <= MAX_STATUS_MESSAGE_CHARS, `${length}: ${failure.message.length}`);
    assert.ok(failure.message.startsWith('KMS_NOT_FOUND: '));
    assert.doesNotMatch(failure.message, /[\r\n]/);
  }
});
