import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { spawnDaemon, type DaemonProcess } from '../../src/devtools/daemon';
import { startKbsWorld, type KbsWorld } from '../support/kbs-world';
import { buildGoAttestationAgent, spawnGoAttestationAgent, type LinedProcess } from '../support/rest';

/**
 * cc_kbc's attestation-agent client against an AA built with containerd's Go ttrpc library
 * (Debian: golang-go, golang-github-containerd-ttrpc-dev): test/interop/ttrpc-go-aa/main.go
 * with -token-file answers GetToken with a token the AA emulator really obtained from the KBS
 * emulator.
 */

const UNAVAILABLE = 14;

describe('cc_kbc with an attestation agent served by containerd/ttrpc (Go)', { timeout: 180_000 }, () => {
  let world: KbsWorld;
  let server: LinedProcess;
  let daemon: DaemonProcess;
  let tokenFile: string;
  let socket: string;
  let skipReason: string | undefined;
  const calls = (): string[] => server.lines.filter((line) => line.startsWith('GetToken '));

  before(async () => {
    world = await startKbsWorld({ resources: { 'default/test/file': 'from-go-aa' } });
    const built = buildGoAttestationAgent(world.dir);
    if ('skip' in built) {
      if (process.env['CI']) throw new Error(`CI must install the Go ttrpc toolchain: ${built.skip}`);
      skipReason = built.skip;
      return;
    }
    tokenFile = join(world.dir, 'token.json');
    writeFileSync(tokenFile, await world.aa.attest('ec-p256'), { mode: 0o600 });
    socket = join(world.dir, 'go-aa.sock');
    server = await spawnGoAttestationAgent(built.binary, socket, ['-token-file', tokenFile]);
    daemon = await spawnDaemon({
      config: { aa: { aa_socket: `unix://${socket}` }, kbc: { name: 'cc_kbc', url: world.url } },
    });
  });
  after(async () => {
    await daemon?.stop();
    await server?.stop();
    await world?.close();
  });

  test('GetToken("kbs") from the Go server gives the token and TEE key the KBS answer decrypts with', async (t) => {
    if (skipReason) return t.skip(skipReason);
    assert.equal((await daemon.client().getResource('kbs:///default/test/file')).toString(), 'from-go-aa');
    assert.deepEqual(calls(), ['GetToken kbs']);
  });

  test("the Go server's error status is UNAVAILABLE naming the AA socket", async (t) => {
    if (skipReason) return t.skip(skipReason);
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
  });
});
