import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { credentialFilePath, readCredentialFile } from '../../../../src/providers/aliyun/credentials';
import { makeTempDir } from '../../../support/aliyun-credentials';
import { cdhErrorWith as assertCdhError } from '../../../support/cdh-error-assert';

test('credential file paths stay directly inside the dir', () => {
  assert.equal(credentialFilePath('/creds/', 'clientKey_a.json'), '/creds/clientKey_a.json');
  assert.throws(() => credentialFilePath('/creds', '../x.json'), assertCdhError('PROVIDER_SETTINGS_INVALID'));
  assert.throws(
    () => credentialFilePath('/creds', 'sub/x.json'),
    assertCdhError('PROVIDER_SETTINGS_INVALID'),
  );
});

test('reading a missing or non-regular credential file names it', async () => {
  const dir = await makeTempDir();
  try {
    const missing = path.join(dir, 'clientKey_gone.json');
    await assert.rejects(
      readCredentialFile(missing, 'client key file'),
      assertCdhError('CREDENTIAL_UNAVAILABLE', new RegExp(`client key file ${missing} does not exist`)),
    );
    await fs.mkdir(path.join(dir, 'adir'));
    await assert.rejects(
      readCredentialFile(path.join(dir, 'adir'), 'client key file'),
      assertCdhError('CREDENTIAL_UNAVAILABLE', /is not a regular file/),
    );
    await fs.writeFile(path.join(dir, 'ok'), 'content');
    assert.equal((await readCredentialFile(path.join(dir, 'ok'), 'x')).toString(), 'content');
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('a device or a FIFO is refused at once: never read to the end, never waited on', async () => {
  const started = Date.now();
  for (const device of ['/dev/zero', '/dev/null']) {
    await assert.rejects(
      readCredentialFile(device, 'token file'),
      assertCdhError('CREDENTIAL_UNAVAILABLE', new RegExp(`token file ${device} is not a regular file`)),
    );
  }
  const dir = await makeTempDir();
  try {
    const fifo = path.join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    // Without O_NONBLOCK the open would wait for a writer, holding a libuv thread for ever.
    await assert.rejects(
      readCredentialFile(fifo, 'token file'),
      assertCdhError('CREDENTIAL_UNAVAILABLE', /is not a regular file/),
    );
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
  assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`);
});
