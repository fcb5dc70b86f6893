import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ERROR_CATALOGUE } from '../../../src/errors';
import { ERRORS_DOC_PATH, renderErrorsDoc } from '../../../scripts/errors-doc';

test('docs/errors.md is what the catalogue generates (run `npm run docs:errors` after changing src/errors.ts)', () => {
  assert.equal(readFileSync(ERRORS_DOC_PATH, 'utf8'), renderErrorsDoc());
});

test('docs/errors.md lists every catalogue code once', () => {
  const doc = readFileSync(ERRORS_DOC_PATH, 'utf8');
  for (const code of Object.keys(ERROR_CATALOGUE))
    assert.equal(doc.split(`| \`${code}\` |`).length, 2, `${code} listed once`);
});
