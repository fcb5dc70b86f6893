import assert from 'node:assert/strict';
import { CdhError, type ErrorCode } from '../../src/errors';

/** A validator for assert.throws / assert.rejects: a CdhError with `code` whose message matches. */
export function cdhErrorWith(code: ErrorCode, ...patterns: RegExp[]): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.ok(error instanceof CdhError, `expected a CdhError, got ${String(error)}`);
    assert.equal(error.code, code, `code ${error.code}: ${error.message}`);
    for (const pattern of patterns) assert.match(error.message, pattern);
    return true;
  };
}
