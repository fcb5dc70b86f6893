import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, resolveConfig } from '../../../src/config/load';
import { DEFAULT_AA_SOCKET } from '../../../src/config/types';
import { credentialDirs, locateCredentialFile } from '../../../src/providers/aliyun/credentials';
import { makeTempDir } from '../../support/kbs';

test('[aa] and [kbc] as upstream writes them; AA_SOCKET and KBS_CERT override the file', () => {
  const raw = {
    aa: { aa_socket: 'unix:///run/aa.sock' },
    kbc: { name: 'cc_kbc', url: 'https://kbs:8080', kbs_cert: '' },
  };
  const { config } = resolveConfig(raw, {});
  assert.equal(config.aa.aaSocket, 'unix:///run/aa.sock');
  assert.equal(config.kbc.name, 'cc_kbc');
  const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
  const overridden = resolveConfig(raw, { AA_SOCKET: 'unix:///other/aa.sock', KBS_CERT: pem }).config;
  assert.equal(overridden.aa.aaSocket, 'unix:///other/aa.sock');
  assert.equal(overridden.kbc.kbsCert, pem);
  assert.equal(resolveConfig({}, {}).config.aa.aaSocket, DEFAULT_AA_SOCKET);
});

test('without a file: AA_KBC_PARAMS, else agent.aa_kbc_params, else offline_fs_kbc; cdh.kbs_resources add credentials', () => {
  const cmdline =
    'quiet agent.aa_kbc_params=cc_kbc::http://cmdline:8080 cdh.kbs_resources=kbs:///a/b/c::/run/x,kbs:///d/e/f::/run/y';
  const fromCmdline = resolveConfig({}, {}, {}, { kernelCmdline: cmdline }).config;
  assert.deepEqual([fromCmdline.kbc.name, fromCmdline.kbc.url], ['cc_kbc', 'http://cmdline:8080']);
  assert.deepEqual(fromCmdline.credentials, [
    { resourceUri: 'kbs:///a/b/c', path: '/run/x' },
    { resourceUri: 'kbs:///d/e/f', path: '/run/y' },
  ]);
  const fromEnv = resolveConfig(
    {},
    { AA_KBC_PARAMS: 'cc_kbc::http://env:1' },
    {},
    { kernelCmdline: cmdline },
  ).config;
  assert.equal(fromEnv.kbc.url, 'http://env:1');
  assert.equal(resolveConfig({}, {}, {}, { kernelCmdline: 'quiet' }).config.kbc.name, 'offline_fs_kbc');
  // With a file, AA_KBC_PARAMS does not replace its [kbc] (upstream: the file is authoritative).
  assert.equal(
    resolveConfig({}, { AA_KBC_PARAMS: 'cc_kbc::http://env:1' }).config.kbc.name,
    'offline_fs_kbc',
  );
});

test('bad kernel command line or KBC values are refused naming where they came from', () => {
  const refuses = (fn: () => unknown, key: RegExp): void =>
    assert.throws(fn, (error: unknown) => error instanceof ConfigError && key.test(error.message));
  refuses(
    () => resolveConfig({}, {}, {}, { kernelCmdline: 'agent.aa_kbc_params=eaa_kbc::x' }),
    /agent\.aa_kbc_params/,
  );
  refuses(
    () => resolveConfig({}, { AA_KBC_PARAMS: 'sample::x' }, {}, { kernelCmdline: '' }),
    /AA_KBC_PARAMS/,
  );
  refuses(
    () => resolveConfig({}, {}, {}, { kernelCmdline: 'cdh.kbs_resources=kbs:///a/b/c::relative' }),
    /cdh\.kbs_resources/,
  );
  refuses(() => resolveConfig({ kbc: { name: 'cc_kbc', url: 'ftp://x' } }, {}), /kbc\.url/);
  refuses(
    () => resolveConfig({ kbc: { name: 'cc_kbc', url: 'http://x', kbs_cert: 'junk' } }, {}),
    /kbc\.kbs_cert/,
  );
  refuses(() => resolveConfig({ aa: { aa_socket: '127.0.0.1:5' } }, {}), /aa\.aa_socket/);
  refuses(() => resolveConfig({}, { AA_SOCKET: 'relative.sock' }), /AA_SOCKET/);
});

test("aliyun credential files: upstream's current dir first, then the seed document's; a set dir alone", () => {
  assert.deepEqual(credentialDirs(''), [
    '/run/confidential-containers/cdh/kbs/kms-credential/aliyun',
    '/run/confidential-containers/cdh/kms-credential/aliyun',
  ]);
  const { dir, cleanup } = makeTempDir('cdh-cred-lookup-');
  try {
    mkdirSync(join(dir, 'a'));
    writeFileSync(join(dir, 'a', 'clientKey_X.json'), '{}');
    assert.equal(
      locateCredentialFile(join(dir, 'a'), 'clientKey_X.json'),
      join(dir, 'a', 'clientKey_X.json'),
    );
    assert.equal(
      locateCredentialFile(join(dir, 'b'), 'clientKey_X.json'),
      join(dir, 'b', 'clientKey_X.json'),
    );
  } finally {
    cleanup();
  }
});
