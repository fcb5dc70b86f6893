import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { sealVault, unsignedSealedSecret } from '../../src/secret';
import { runCli } from '../support/cli';
import { CDH_TOOL_BIN, spawnDaemon, tempDir, type DaemonProcess } from '../../src/devtools/daemon';
import { writeResourceFile } from '../support/kbs';

const RESOURCE = 'resource-bytes-over-ttrpc-5c1d';

describe('cdh-tool --ttrpc against the daemon', () => {
  let dir: { path: string; cleanup(): void };
  let daemon: DaemonProcess;

  before(async () => {
    dir = tempDir('cdh-tool-ttrpc-');
    const resources = join(dir.path, 'resources.json');
    writeResourceFile(resources, { 'default/key/1': RESOURCE, 'default/vault/v': 'vault-plain' });
    daemon = await spawnDaemon({
      dir: dir.path,
      config: {
        skip_sealed_secret_verification: true,
        kbc: { name: 'offline_fs_kbc', offline_fs: { resource_files: [resources] } },
      },
    });
  });
  after(async () => {
    await daemon.stop();
    dir.cleanup();
  });

  test('get-resource over ttrpc prints the resource base64', async () => {
    const result = await runCli(CDH_TOOL_BIN, [
      '--socket',
      daemon.target,
      '--ttrpc',
      'get-resource',
      '--resource-uri',
      'kbs:///default/key/1',
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(Buffer.from(result.stdout.trim(), 'base64').toString(), RESOURCE);
  });

  test('unseal-secret over ttrpc prints the plaintext base64', async () => {
    const file = join(dir.path, 'sealed.txt');
    writeFileSync(file, unsignedSealedSecret(sealVault({ provider: 'kbs', name: 'kbs:///default/vault/v' })));
    const result = await runCli(CDH_TOOL_BIN, [
      '--socket',
      daemon.target,
      '--ttrpc',
      'unseal-secret',
      '--secret-path',
      file,
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(Buffer.from(result.stdout.trim(), 'base64').toString(), 'vault-plain');
  });

  test('a daemon failure over ttrpc is one line with the status name and the daemon message', async () => {
    const result = await runCli(CDH_TOOL_BIN, [
      '--socket',
      daemon.target,
      '--ttrpc',
      'get-resource',
      '--resource-uri',
      'kbs:///default/key/absent',
    ]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^cdh-tool: NOT_FOUND: .*kbs:\/\/\/default\/key\/absent/);
    assert.equal(result.stderr.trim().split('\n').length, 1);
  });

  test('no daemon at the socket is UNAVAILABLE naming the socket', async () => {
    const absent = `unix://${join(dir.path, 'absent.sock')}`;
    const result = await runCli(CDH_TOOL_BIN, [
      '--socket',
      absent,
      '--ttrpc',
      'get-resource',
      '--resource-uri',
      'kbs:///default/key/1',
    ]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^cdh-tool: UNAVAILABLE: cannot connect to unix:\/\/.*absent\.sock: ENOENT/);
  });

  test('health refuses --ttrpc with a usage error', async () => {
    const result = await runCli(CDH_TOOL_BIN, ['--socket', daemon.target, '--ttrpc', 'health']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /health is a gRPC service/);
  });
});
