import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import {
  loadClientKey,
  parsePasswordFile,
} from '../../../../../src/providers/aliyun/client-key/credential-files';
import { clientKeyFilePaths } from '../../../../../src/providers/aliyun/client-key/settings';
import {
  makeTempDir,
  readVectorClientKey,
  vectorsDir,
  VECTOR_SOURCE,
} from '../../../../support/aliyun-credentials';
import {
  writeClientKeyCredentials,
  writePasswordFile,
  type ClientKeyCredentials,
} from '../../../../../src/emulators/aliyun/client-key-files';
import { cdhErrorWith } from '../../../../support/cdh-error-assert';
import { createTestCa } from '../../../../../src/emulators/pki';

const caPem = createTestCa().certPem;
const vector = readVectorClientKey();
let root: string;

before(async () => {
  root = await makeTempDir();
});
after(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

async function freshVectorDir(passwordForm: 'json' | 'text' = 'json'): Promise<ClientKeyCredentials> {
  const dir = await fs.mkdtemp(path.join(root, 'creds-'));
  return writeClientKeyCredentials({ dir, caPem, source: VECTOR_SOURCE, passwordForm });
}

function pathsOf(creds: ClientKeyCredentials): ReturnType<typeof clientKeyFilePaths> {
  return clientKeyFilePaths(creds.dir, {
    clientKeyId: creds.clientKeyId,
    kmsInstanceId: creds.kmsInstanceId,
  });
}

test('password files: the console JSON form and the bare text form (trailing newline trimmed)', () => {
  assert.equal(parsePasswordFile(Buffer.from('{"ClientKeyPassword": "abc123"}\n'), '/p'), 'abc123');
  assert.equal(parsePasswordFile(Buffer.from('\ufeff{"ClientKeyPassword":"abc"}'), '/p'), 'abc');
  assert.equal(parsePasswordFile(Buffer.from('abc123\n'), '/p'), 'abc123');
  assert.equal(parsePasswordFile(Buffer.from('abc123  \r\n'), '/p'), 'abc123');
  assert.throws(
    () => parsePasswordFile(Buffer.from('{"Password": "x"}'), '/p'),
    cdhErrorWith('CREDENTIAL_UNAVAILABLE', /\/p .*ClientKeyPassword/),
  );
  assert.throws(
    () => parsePasswordFile(Buffer.from('\n\n'), '/p'),
    cdhErrorWith('CREDENTIAL_UNAVAILABLE', /\/p is empty/),
  );
});

for (const form of ['json', 'text'] as const) {
  test(`the vector loads with its password file in ${form} form`, async () => {
    const creds = await freshVectorDir(form);
    const loaded = await loadClientKey(pathsOf(creds));
    assert.equal(loaded.clientKeyId, 'KAAP.vector-0001');
    assert.equal(loaded.material.privateKey.asymmetricKeyType, 'rsa');
    assert.match(loaded.caPem, /BEGIN CERTIFICATE/);
  });
}

test('each missing file is CREDENTIAL_UNAVAILABLE naming that file', async () => {
  for (const which of ['clientKey', 'password', 'instanceCa'] as const) {
    const creds = await freshVectorDir();
    await fs.rm(creds.paths[which]);
    await assert.rejects(
      loadClientKey(pathsOf(creds)),
      cdhErrorWith('CREDENTIAL_UNAVAILABLE', new RegExp(`${escape(creds.paths[which])} does not exist`)),
    );
  }
});

test('a wrong password says the PKCS#12 could not be decrypted with the password file, and shows neither', async () => {
  const creds = await freshVectorDir('text');
  await writePasswordFile(creds.paths.password, 'wrong-password-value', 'text');
  await assert.rejects(loadClientKey(pathsOf(creds)), (error: unknown) => {
    cdhErrorWith(
      'CREDENTIAL_UNAVAILABLE',
      /could not be decrypted with the password file password_KAAP\.vector-0001\.json/,
    )(error);
    const message = (error as Error).message;
    assert.ok(!message.includes('wrong-password-value'));
    assert.ok(!message.includes(vector.password));
    return true;
  });
});

test('malformed files are named without their content', async () => {
  const cases: Array<[keyof ClientKeyCredentials['paths'], string, RegExp]> = [
    ['clientKey', '{"KeyId": "KAAP.vector-0001", "PrivateKeyData": "SECRETSTUFF"', /is not valid JSON/],
    ['clientKey', '{"KeyId": "KAAP.vector-0001"}', /no string field "PrivateKeyData"/],
    ['clientKey', '{"KeyId": "KAAP.vector-0001", "PrivateKeyData": "SECRET!STUFF"}', /not base64/],
    ['clientKey', '{"KeyId": "KAAP.vector-0001", "PrivateKeyData": "U0VDUkVUU1RVRkY="}', /PKCS#12/],
    ['instanceCa', 'SECRETSTUFF', /holds no PEM certificate/],
    [
      'instanceCa',
      '-----BEGIN CERTIFICATE-----\nU0VDUkVUU1RVRkY=\n-----END CERTIFICATE-----\n',
      /does not parse/,
    ],
  ];
  for (const [which, content, pattern] of cases) {
    const creds = await freshVectorDir();
    await fs.writeFile(creds.paths[which], content);
    await assert.rejects(loadClientKey(pathsOf(creds)), (error: unknown) => {
      cdhErrorWith('CREDENTIAL_UNAVAILABLE', new RegExp(escape(creds.paths[which])), pattern)(error);
      assert.ok(!(error as Error).message.includes('SECRET'), (error as Error).message);
      return true;
    });
  }
});

test('the real Alibaba CA chain file (two certificates) is accepted as the instance CA', async () => {
  const creds = await freshVectorDir();
  const example = await fs.readFile(path.join(vectorsDir(), 'PrivateKmsCA_example.pem'));
  await fs.writeFile(creds.paths.instanceCa, example);
  const loaded = await loadClientKey(pathsOf(creds));
  assert.equal(loaded.caPem.match(/BEGIN CERTIFICATE/g)?.length, 2);
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
