import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CdhError, type ErrorCode } from '../../src/errors';
import type { CallContext } from '../../src/providers/types';

/** A call context that is never aborted. */
export function callContext(): CallContext {
  return { signal: new AbortController().signal };
}

/** An assert.throws / assert.rejects predicate: a CdhError of `code` whose message has `mentions`. */
export function cdhError(code: ErrorCode, ...mentions: string[]): (error: unknown) => boolean {
  return (error: unknown): boolean => {
    assert.ok(error instanceof CdhError, `expected a CdhError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    for (const text of mentions)
      assert.ok(error.message.includes(text), `"${error.message}" lacks "${text}"`);
    return true;
  };
}

/** A fresh temporary directory and its removal. */
export function temporaryDirectory(prefix: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
