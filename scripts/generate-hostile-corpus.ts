/**
 * Writes test/fixtures/hostile/corpus.json from test/support/hostile-corpus.ts.
 * Deterministic (RFC 6979 signatures, derived bytes): running it again gives the same file.
 *
 *   npm run build && node dist/scripts/generate-hostile-corpus.js
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../src/package-info';
import { CORPUS_RELATIVE_PATH, generateHostileCorpus, serializeCorpus } from '../test/support/hostile-corpus';

const corpus = generateHostileCorpus();
const target = join(PACKAGE_ROOT, CORPUS_RELATIVE_PATH);
writeFileSync(target, serializeCorpus(corpus));
const byExpected = new Map<string, number>();
for (const c of corpus.cases) byExpected.set(c.expected, (byExpected.get(c.expected) ?? 0) + 1);
process.stdout.write(
  `${corpus.cases.length} cases written to ${CORPUS_RELATIVE_PATH}: ` +
    `${[...byExpected].map(([status, n]) => `${status} ${n}`).join(', ')}\n`,
);
