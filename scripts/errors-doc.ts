/**
 * docs/errors.md from the error catalogue (src/errors.ts): every code with its status and
 * meaning. A test checks the committed file matches; regenerate with `npm run docs:errors`.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ERROR_CATALOGUE, STATUS_NUMBER } from '../src/errors';
import { PACKAGE_ROOT } from '../src/package-info';

export const ERRORS_DOC_PATH = join(PACKAGE_ROOT, 'docs', 'errors.md');

export function renderErrorsDoc(): string {
  const rows = Object.entries(ERROR_CATALOGUE).map(
    ([code, { status, meaning }]) =>
      `| \`${code}\` | ${status} (${STATUS_NUMBER[status]}) | ${meaning.replace(/\|/g, '\\|').replace(/</g, '&lt;').replace(/>/g, '&gt;')} |`,
  );
  return [
    '# Errors',
    '',
    '<!-- Generated from src/errors.ts by `npm run docs:errors`; test/unit/docs/errors-doc.test.ts checks it. -->',
    '',
    'Every failure the daemon reports is one of these codes. The status is the gRPC (and ttrpc)',
    'status the caller receives; the status message starts with the code, then says what failed',
    'and where (provider, key id, field, KMS request id), never a secret.',
    '',
    '| Code | Status | Meaning |',
    '| --- | --- | --- |',
    ...rows,
    '',
  ].join('\n');
}

if (require.main === module) {
  writeFileSync(ERRORS_DOC_PATH, renderErrorsDoc());
  process.stdout.write(`${ERRORS_DOC_PATH}: ${Object.keys(ERROR_CATALOGUE).length} codes\n`);
}
