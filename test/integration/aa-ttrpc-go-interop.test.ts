import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { createInterface } from 'node:readline';
import { PACKAGE_ROOT } from '../../src/package-info';
import { spawnDaemon, type DaemonProcess } from '../../src/devtools/daemon';
import { startKbsWorld, type KbsWorld } from '../support/kbs-world';

/**
 * cc_kbc's attestation-agent client against an AA built with containerd's Go ttrpc library
 * (Debian: golang-go, golang-github-containerd-ttrpc-dev): test/interop/aa-ttrpc-go/main.go
 * answers GetToken with a token the AA emulator really obtained from the KBS emulator.
 */

const run = promisify(execFile);
const GO_TTRPC_SOURCE = '/usr/share/gocode/src/github.com/containerd/ttrpc';
const UNAVAILABLE = 14;

function missingToolchain(): string | undefined {
  if (spawnSync('go', ['version']).status !== 0) return 'Go is not installed (golang-go)';
  if (!existsSync(GO_TTRPC_SOURCE)) return `containerd's Go ttrpc library is not at ${GO_TTRPC_SOURCE}`;
  return undefined;
}

describe('cc_kbc with an attestation agent served by containerd/ttrpc (Go)', { timeout: 180_000 }, () => {
  const skipReason = missingToolchain();
  if (skipReason && process.env['CI'])
    throw new Error(`CI must install the Go ttrpc toolchain: ${skipReason}`);
  let world: KbsWorld;
  let server: ChildProcess;
  let daemon: DaemonProcess;
  const calls: string[] = [];
  let tokenFile: string;
  let socket: string;

  before(async () => {
    if (skipReason) return;
    world = await startKbsWorld({ resources: { 'default/test/file': 'from-go-aa' } });
    const binary = join(world.dir, 'aa-ttrpc-server');
    await run(join(PACKAGE_ROOT, 'test/interop/aa-ttrpc-go/run.sh'), ['--build', binary], {
      timeout: 170_000,
    });
    tokenFile = join(world.dir, 'token.json');
    writeFileSync(tokenFile, await world.aa.attest('ec-p256'), { mode: 0o600 });
    socket = join(world.dir, 'go-aa.sock');
    server = spawn(binary, [socket, tokenFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    await new Promise<void>((resolve, reject) => {
      const lines = createInterface({ input: server.stdout as NodeJS.ReadableStream });
      lines.on('line', (line) => (line === 'listening' ? resolve() : calls.push(line)));
      server.once('exit', (code) => reject(new Error(`Go AA exited ${code}`)));
    });
    daemon = await spawnDaemon({
      config: { aa: { aa_socket: `unix://${socket}` }, kbc: { name: 'cc_kbc', url: world.url } },
    });
  });
  after(async () => {
    if (skipReason) return;
    await daemon?.stop();
    server?.kill();
    await world?.close();
  });

  test(
    'GetToken("kbs") from the Go server gives the token and TEE key the KBS answer decrypts with',
    { skip: skipReason ?? false },
    async () => {
      assert.equal((await daemon.client().getResource('kbs:///default/test/file')).toString(), 'from-go-aa');
      assert.deepEqual(calls, ['GetToken kbs']);
    },
  );

  test(
    "the Go server's error status is UNAVAILABLE naming the AA socket",
    { skip: skipReason ?? false },
    async () => {
      rmSync(tokenFile);
      world.kbs.revokeTokens();
      await assert.rejects(daemon.client().getResource('kbs:///default/test/file'), (error: unknown) => {
        const failure = error as { code: number; details: string };
        assert.equal(failure.code, UNAVAILABLE, failure.details);
        assert.match(
          failure.details,
          new RegExp(`attestation agent at unix://${socket.replace(/[/.]/g, '\\$&')}`),
        );
        assert.match(failure.details, /status 14/);
        return true;
      });
    },
  );
});
