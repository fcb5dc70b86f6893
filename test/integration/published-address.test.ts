import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { DEFAULT_SOCKET } from '../../src/config/types';
import { ADDRESS_FILE_ENV } from '../../src/server/address-file';
import { runCli } from '../support/cli';
import { CDH_TOOL_BIN, spawnDaemon, tempDir } from '../../src/devtools/daemon';

// A health check that cannot see the daemon's flags or config (a container HEALTHCHECK, a unit's
// readiness loop) finds the daemon through the address it publishes in $CDH_ADDRESS_FILE.

function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

describe('published address (CDH_ADDRESS_FILE)', { timeout: 60_000 }, () => {
  const work = tempDir('cdh-address-');
  after(() => work.cleanup());

  test('the daemon publishes the socket it serves on; cdh-tool without --socket reaches it; SIGTERM withdraws it', async () => {
    const addressFile = join(work.path, 'unix', 'run', 'address');
    const daemon = await spawnDaemon({ env: { [ADDRESS_FILE_ENV]: addressFile } });
    try {
      assert.equal(readFileSync(addressFile, 'utf8'), `${daemon.target}\n`);
      const health = await runCli(CDH_TOOL_BIN, ['--timeout-ms', '5000', 'health'], {
        env: { [ADDRESS_FILE_ENV]: addressFile },
      });
      assert.deepEqual([health.code, health.stdout, health.stderr], [0, 'SERVING\n', '']);
      assert.equal(await daemon.stop('SIGTERM'), 0);
      assert.equal(existsSync(addressFile), false, 'address file removed on exit');
    } finally {
      daemon.cleanup();
    }
  });

  test('a TCP socket is published as host:port; cdh-tool reaches it there', async () => {
    const addressFile = join(work.path, 'tcp-address');
    const port = await freeLoopbackPort();
    const daemon = await spawnDaemon({
      env: { [ADDRESS_FILE_ENV]: addressFile },
      args: ['--socket', `127.0.0.1:${port}`],
      waitReady: false,
    });
    try {
      const deadline = Date.now() + 15_000;
      while (!existsSync(addressFile) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      assert.equal(readFileSync(addressFile, 'utf8'), `127.0.0.1:${port}\n`);
      const health = await runCli(CDH_TOOL_BIN, ['--timeout-ms', '5000', 'health'], {
        env: { [ADDRESS_FILE_ENV]: addressFile },
      });
      assert.deepEqual([health.code, health.stdout], [0, 'SERVING\n']);
    } finally {
      assert.equal(await daemon.stop('SIGTERM'), 0);
      daemon.cleanup();
    }
  });

  test('an address file that cannot be written stops start-up, naming it, and leaves no socket', async () => {
    const blocked = join(work.path, 'blocked');
    mkdirSync(blocked);
    writeFileSync(join(blocked, 'not-a-dir'), '');
    const addressFile = join(blocked, 'not-a-dir', 'address');
    const daemon = await spawnDaemon({ env: { [ADDRESS_FILE_ENV]: addressFile }, waitReady: false });
    try {
      assert.equal(await daemon.exited(), 2);
      assert.match(
        daemon.stderr(),
        new RegExp(`${ADDRESS_FILE_ENV}: cannot write ${addressFile}: E[A-Z]+\n`),
      );
      assert.equal(existsSync(daemon.socketPath), false, 'socket removed');
    } finally {
      daemon.cleanup();
    }
  });

  test('cdh-tool: no address file yet means the default socket; an unreadable or junk file is named', async () => {
    const missing = join(work.path, 'missing');
    const fallback = await runCli(CDH_TOOL_BIN, ['--timeout-ms', '2000', 'health'], {
      env: { [ADDRESS_FILE_ENV]: missing },
    });
    if (!existsSync(DEFAULT_SOCKET.slice('unix://'.length)))
      assert.match(fallback.stderr, new RegExp(`no daemon answers at ${DEFAULT_SOCKET}`));

    const junk = join(work.path, 'junk');
    writeFileSync(junk, 'two\nlines\n');
    const junkRun = await runCli(CDH_TOOL_BIN, ['health'], { env: { [ADDRESS_FILE_ENV]: junk } });
    assert.equal(junkRun.code, 1);
    assert.equal(junkRun.stderr, `cdh-tool: ${ADDRESS_FILE_ENV}: ${junk} does not hold an address\n`);

    const big = join(work.path, 'big');
    writeFileSync(big, 'x'.repeat(100_000));
    const bigRun = await runCli(CDH_TOOL_BIN, ['health'], { env: { [ADDRESS_FILE_ENV]: big } });
    assert.equal(bigRun.stderr, `cdh-tool: ${ADDRESS_FILE_ENV}: ${big} is larger than an address\n`);

    const dir = join(work.path, 'a-dir');
    mkdirSync(dir);
    chmodSync(dir, 0o755);
    const dirRun = await runCli(CDH_TOOL_BIN, ['health'], { env: { [ADDRESS_FILE_ENV]: dir } });
    assert.equal(dirRun.stderr, `cdh-tool: ${ADDRESS_FILE_ENV}: cannot read ${dir}: EISDIR\n`);
  });
});
