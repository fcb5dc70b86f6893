import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../../../src/devtools/daemon';
import { fileFingerprint } from '../../../src/lib/file-fingerprint';

test('file fingerprints change when a file is replaced or rewritten and say missing when it is gone', async () => {
  const { path: dir } = tempDir('cdh-fingerprint-');
  try {
    const file = path.join(dir, 'f');
    assert.equal(await fileFingerprint(file), 'missing');
    await fs.writeFile(file, 'one');
    const first = await fileFingerprint(file);
    assert.equal(await fileFingerprint(file), first);
    await fs.writeFile(`${file}.new`, 'two');
    await fs.rename(`${file}.new`, file);
    const second = await fileFingerprint(file);
    assert.notEqual(second, first);
    await fs.writeFile(file, 'six');
    assert.notEqual(await fileFingerprint(file), second);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
