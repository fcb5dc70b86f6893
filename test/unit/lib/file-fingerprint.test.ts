import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../../../src/devtools/daemon';
import { fileFingerprint, fileFingerprintNow } from '../../../src/lib/file-fingerprint';

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

test('the synchronous fingerprint is the same identity as the awaited one, missing included', async () => {
  const { path: dir } = tempDir('cdh-fingerprint-');
  try {
    const file = path.join(dir, 'f');
    assert.equal(fileFingerprintNow(file), 'missing');
    assert.equal(fileFingerprintNow(path.join(file, 'under-a-missing-dir')), 'missing');
    await fs.writeFile(file, 'one');
    assert.equal(fileFingerprintNow(file), await fileFingerprint(file));
    assert.equal(fileFingerprintNow(path.join(file, 'under-a-file')), 'missing');
    await fs.writeFile(`${file}.new`, 'two');
    const before = fileFingerprintNow(file);
    await fs.rename(`${file}.new`, file);
    assert.notEqual(fileFingerprintNow(file), before);
    assert.equal(fileFingerprintNow(file), await fileFingerprint(file));
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
