import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ESLint } from 'eslint';
import { PACKAGE_ROOT } from '../../../src/package-info';

/** The size rules' reports for `source` linted with the project's config as the file at `filePath`. */
async function sizeReports(filePath: string, source: string): Promise<string[]> {
  const eslint = new ESLint({ cwd: PACKAGE_ROOT });
  const [result] = await eslint.lintText(source, { filePath });
  return (result?.messages ?? [])
    .filter((m) => m.ruleId === 'max-lines' || m.ruleId === 'size/max-lines-per-function')
    .map((m) => `${m.ruleId}: ${m.message}`);
}

/** A function declaration `name` whose body is `lines` statements long. */
function longFunction(name: string, lines: number): string {
  const body = Array.from({ length: lines }, (_, i) => `  void ${i};`).join('\n');
  return `export function ${name}(): void {\n${body}\n}\n`;
}

test('size limits: a function over 60 lines in src/ is an error', async () => {
  const reports = await sizeReports('src/secret/size-probe.ts', longFunction('unseal', 61));
  assert.equal(reports.length, 1, JSON.stringify(reports));
  assert.match(reports[0] as string, /^size\/max-lines-per-function: .*'unseal' has too many lines \(63\)/);
});

test('size limits: a CLI main in src/bin is exempt, any other function there is not', async () => {
  const source = `${longFunction('main', 80)}${longFunction('helper', 61)}`;
  const reports = await sizeReports('src/bin/size-probe.ts', source);
  assert.equal(reports.length, 1, JSON.stringify(reports));
  assert.match(reports[0] as string, /'helper'/);
  assert.equal((await sizeReports('src/kbc/size-probe.ts', longFunction('main', 61))).length, 1);
});

test('size limits: a src/ file over 300 lines is an error; tests are not held to it', async () => {
  const source = Array.from({ length: 301 }, (_, i) => `export const v${i} = ${i};`).join('\n');
  const reports = await sizeReports('src/net/size-probe.ts', source);
  assert.equal(reports.length, 1, JSON.stringify(reports));
  assert.match(reports[0] as string, /^max-lines: File has too many lines \(301\)/);
  assert.deepEqual(await sizeReports('test/unit/size-probe.test.ts', source), []);
});
