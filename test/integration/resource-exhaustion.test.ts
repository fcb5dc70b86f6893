import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import * as http2 from 'node:http2';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import { CdhClient } from '../../src/client/cdh-client';
import { encodeBase64Url } from '../../src/lib/base64';
import { startClientKeyWorld, type ClientKeyWorld } from '../support/client-key-world';
import { childEnv, DAEMON_BIN, spawnDaemon, tempDir } from '../../src/devtools/daemon';
import { rawH2Connect, H2_PREFACE } from '../support/raw-h2';

/*
 * What an attacker with access to the socket (or an unusual deployment) could do to exhaust
 * the daemon: a symlink swapped in for the socket, huge unsigned JWS headers, half-open
 * connections, HTTP/2 stream floods, a stdout nobody reads, many identical slow calls.
 * Each drives the daemon process through its real socket.
 */

function statusOf(error: unknown): { code: number; details: string } {
  const failure = error as ServiceError;
  return { code: failure.code, details: failure.details };
}

describe('socket permissions and a symlink swapped in for the socket', () => {
  test('the socket mode is never applied through a symlink raced in after listen (bounded loop)', async () => {
    const dir = tempDir();
    try {
      const shared = join(dir.path, 'shared');
      mkdirSync(shared);
      chmodSync(shared, 0o775);
      // Group-writable by a group that is not root's (root's own group counts as root).
      if (process.getuid?.() === 0) chownSync(shared, 0, 65534);
      const victim = join(dir.path, 'victim');
      writeFileSync(victim, 'not for others\n', { mode: 0o600 });
      chmodSync(victim, 0o600);
      const socketPath = join(shared, 'cdh.sock');
      // The racer: as soon as the socket appears, a symlink to the victim takes its place.
      const racerCode = `
        const fs = require('fs');
        const [sock, victim, tmp] = process.argv.slice(1);
        const giveUp = Date.now() + 8000;
        while (Date.now() < giveUp) {
          let st; try { st = fs.lstatSync(sock); } catch { continue; }
          if (!st.isSocket()) continue;
          try { fs.symlinkSync(victim, tmp); fs.renameSync(tmp, sock); } catch {}
          break;
        }`;
      const rounds = 20;
      let warned = 0;
      for (let round = 0; round < rounds; round++) {
        const racer = spawn(process.execPath, ['-e', racerCode, socketPath, victim, `${socketPath}.swap`], {
          stdio: 'ignore',
        });
        const racerDone = new Promise((resolve) => racer.once('exit', resolve));
        await sleep(50);
        const daemon = await spawnDaemon({
          dir: dir.path,
          socketPath,
          config: { socket_mode: '0666' },
          waitReady: false,
        });
        try {
          const giveUp = Date.now() + 8000;
          while (
            Date.now() < giveUp &&
            daemon.child.exitCode === null &&
            !daemon.logLines.some((l) => l.includes('"serving"'))
          )
            await sleep(20);
          if (daemon.logLines.some((l) => /writable by others.*group/.test(l) && l.includes(shared)))
            warned++;
        } finally {
          daemon.cleanup();
          racer.kill('SIGKILL');
          await racerDone;
        }
        assert.equal(statSync(victim).mode & 0o777, 0o600, `round ${round}: the victim's mode changed`);
        // Whatever the racer left (its symlink, or the stale socket) goes before the next round.
        for (const p of [socketPath, `${socketPath}.swap`]) rmSync(p, { force: true });
      }
      assert.equal(warned, rounds, 'the group-writable socket directory is named in a warning every time');
    } finally {
      dir.cleanup();
    }
  });
});

describe('unsigned input is bounded before its signature is checked', () => {
  test('16 parallel 1 MiB JWS headers are refused by size, and health answers meanwhile', async () => {
    const daemon = await spawnDaemon({ config: { max_message_bytes: 4 * 1024 * 1024 } });
    const client = daemon.client();
    try {
      const members = Array.from({ length: 90_000 }, (_, i) => `"k${i}":[{}]`).join(',');
      const header = encodeBase64Url(Buffer.from(`{${members}}`));
      assert.ok(header.length > 1024 * 1024);
      const secret = Buffer.from(`sealed.${header}.${encodeBase64Url(Buffer.from('{}'))}.${'A'.repeat(86)}`);
      let worstHealthMs = 0;
      let healthChecks = 0;
      let flooding = true;
      const health = (async () => {
        while (flooding) {
          const started = performance.now();
          assert.equal(await client.check(''), 'SERVING');
          worstHealthMs = Math.max(worstHealthMs, performance.now() - started);
          healthChecks++;
          await sleep(5);
        }
      })();
      const answers = await Promise.all(
        Array.from({ length: 16 }, () =>
          client.unsealSecret(secret, 20_000).then(() => ({ code: 0, details: '' }), statusOf),
        ),
      );
      flooding = false;
      await health;
      for (const answer of answers) {
        assert.equal(answer.code, GrpcStatus.INVALID_ARGUMENT, answer.details);
        assert.match(
          answer.details,
          /^SEALED_SECRET_MALFORMED: the JWS header is \d+ characters long, more than the 4096 accepted/,
        );
      }
      assert.ok(healthChecks > 0);
      console.log(`# worst health-check latency during 16 x 1 MiB headers: ${worstHealthMs.toFixed(1)} ms`);
    } finally {
      await daemon.stop();
      daemon.cleanup();
    }
  });
});

/** Open file descriptors of a process. */
function fdsOf(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

async function waitUntil(condition: () => boolean, ms: number): Promise<boolean> {
  const giveUp = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > giveUp) return false;
    await sleep(50);
  }
  return true;
}

/** A client socket that never reads (a reading one would let the server close it politely). */
function connectSilently(path: string, first?: Buffer): Promise<Socket> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.on('error', () => undefined);
    socket.once('connect', () => {
      if (first) socket.write(first);
      resolve(socket);
    });
    socket.once('close', () => resolve(socket));
  });
}

describe('connections: handshake deadline, idle timeout, connection limit', () => {
  test('half-open connections of both protocols are closed by the server; beyond max_connections, refused and logged', async () => {
    const daemon = await spawnDaemon({
      config: {
        handshake_timeout_ms: 400,
        idle_timeout_ms: 1500,
        ttrpc_idle_timeout_ms: 1500,
        max_connections: 40,
      },
    });
    const pid = daemon.child.pid as number;
    const open: Socket[] = [];
    try {
      const baseline = fdsOf(pid);
      const settings = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);
      const kinds = [
        H2_PREFACE.subarray(0, 10), // half a preface
        H2_PREFACE, // the magic without its SETTINGS
        Buffer.concat([H2_PREFACE, settings]), // a whole preface, then silence
        Buffer.from([0]), // one ttrpc byte
        undefined, // nothing at all
      ];
      for (let i = 0; i < 30; i++)
        open.push(await connectSilently(daemon.socketPath, kinds[i % kinds.length]));
      assert.ok(await waitUntil(() => fdsOf(pid) >= baseline + 25, 2000), 'the daemon accepted them');
      const closed = await waitUntil(() => fdsOf(pid) <= baseline + 1, 8000);
      assert.ok(closed, `${fdsOf(pid) - baseline} descriptors still held`);

      // The connection limit: 60 at once, at most 40 kept, and the refusal logged.
      for (let i = 0; i < 60; i++) open.push(await connectSilently(daemon.socketPath));
      await sleep(200);
      assert.ok(fdsOf(pid) <= baseline + 40 + 1, `${fdsOf(pid) - baseline} connections kept`);
      assert.ok(
        await waitUntil(() => daemon.logLines.some((l) => l.includes('max_connections reached')), 2000),
        'the refusal is logged',
      );
      for (const s of open) s.destroy();
      await waitUntil(() => fdsOf(pid) <= baseline + 1, 3000);
      assert.equal(await daemon.client().check(''), 'SERVING');
    } finally {
      for (const s of open) s.destroy();
      await daemon.stop();
      daemon.cleanup();
    }
  });
});

describe('gRPC stream floods are bounded per connection', () => {
  test('the server advertises max_concurrent_streams and refuses the streams beyond it', async () => {
    const daemon = await spawnDaemon({ config: { max_concurrent_streams: 8 } });
    try {
      const conn = await rawH2Connect(daemon.socketPath);
      await sleep(100);
      assert.equal(conn.maxConcurrentStreams(), 8);
      conn.openHalfSentStreams(2000, '/api.SealedSecretService/UnsealSecret');
      await Promise.race([conn.closed, sleep(3000)]);
      assert.ok(
        conn.socket.destroyed || conn.counts.rstStream >= 1000,
        `refused ${conn.counts.rstStream} streams, goaway ${conn.counts.goaway}`,
      );
      conn.socket.destroy();
      assert.equal(await daemon.client().check(''), 'SERVING');
    } finally {
      await daemon.stop();
      daemon.cleanup();
    }
  });
});

describe('half-received gRPC requests have a receive deadline', () => {
  test('streams whose message never completes are answered DEADLINE_EXCEEDED and reset after handshake_timeout_ms, freeing their slots', async () => {
    const daemon = await spawnDaemon({ config: { handshake_timeout_ms: 600, max_concurrent_streams: 8 } });
    const session = http2.connect('http://localhost', {
      createConnection: () => connect(daemon.socketPath),
    });
    try {
      session.on('error', () => undefined);
      // Two rounds of as many streams as the connection may hold: the second gets slots
      // only if the first round's were given back.
      for (let round = 0; round < 2; round++) {
        const outcomes = Array.from({ length: 8 }, () => halfSentRequest(session));
        const results = await Promise.race([
          Promise.all(outcomes),
          sleep(15_000).then(() => 'still open after 15 s' as const),
        ]);
        assert.notEqual(
          results,
          'still open after 15 s',
          `round ${round}: the half-sent streams stayed open`,
        );
        for (const result of results as HalfSentOutcome[]) {
          assert.equal(result.grpcStatus, String(GrpcStatus.DEADLINE_EXCEEDED), result.grpcMessage);
          assert.match(
            decodeURIComponent(result.grpcMessage),
            /not received in full within handshake_timeout_ms/,
          );
          assert.equal(result.rstCode, http2.constants.NGHTTP2_NO_ERROR);
        }
      }
      assert.equal(session.closed || session.destroyed, false, 'the connection stays open');
      assert.equal(await daemon.client().check(''), 'SERVING');
    } finally {
      session.destroy();
      await daemon.stop();
      daemon.cleanup();
    }
  });
});

interface HalfSentOutcome {
  readonly grpcStatus: string;
  readonly grpcMessage: string;
  readonly rstCode: number;
}

/** An UnsealSecret stream with its headers and 4 KiB of a message announced as 64 KiB, never ended. */
function halfSentRequest(session: http2.ClientHttp2Session): Promise<HalfSentOutcome> {
  return new Promise((resolve, reject) => {
    const stream = session.request({
      ':method': 'POST',
      ':path': '/api.SealedSecretService/UnsealSecret',
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    let headers: http2.IncomingHttpHeaders = {};
    stream.on('response', (received) => (headers = { ...headers, ...received }));
    stream.on('trailers', (received) => (headers = { ...headers, ...received }));
    stream.on('error', () => undefined);
    stream.resume();
    stream.once('close', () =>
      headers['grpc-status'] === undefined
        ? reject(new Error(`stream closed without a status (rst ${stream.rstCode})`))
        : resolve({
            grpcStatus: String(headers['grpc-status']),
            grpcMessage: String(headers['grpc-message'] ?? ''),
            rstCode: stream.rstCode ?? -1,
          }),
    );
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(64 * 1024, 1);
    stream.write(Buffer.concat([prefix, Buffer.alloc(4096, 0x0a)]));
  });
}

describe('a stdout nobody reads', () => {
  test('SIGTERM still exits within the grace period, and logging stays bounded', async () => {
    const dir = tempDir();
    const socketPath = join(dir.path, 'cdh.sock');
    const child = spawn(
      process.execPath,
      [DAEMON_BIN, '--socket', `unix://${socketPath}`, '--log-level', 'debug'],
      {
        env: childEnv(),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    // Never read: the pipe fills and stays full.
    child.stdout.pause();
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const client = new CdhClient(`unix://${socketPath}`, { timeoutMs: 10_000 });
    try {
      const giveUp = Date.now() + 15_000;
      for (;;) {
        try {
          if ((await client.check('', 500)) === 'SERVING') break;
        } catch {
          // Not yet.
        }
        if (Date.now() > giveUp) throw new Error('the daemon did not start');
        await sleep(50);
      }
      const bad = Buffer.from('sealed.not-a-secret');
      for (let i = 0; i < 60; i++) {
        await Promise.all(
          Array.from({ length: 50 }, () => client.unsealSecret(bad, 5000).catch(() => undefined)),
        );
      }
      const rssKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1]);
      const signalled = Date.now();
      child.kill('SIGTERM');
      const code = await Promise.race([exited, sleep(12_000).then(() => 'still alive' as const)]);
      const tookMs = Date.now() - signalled;
      assert.equal(code, 0, `after SIGTERM with a blocked stdout: ${code}`);
      console.log(
        `# SIGTERM -> exit with a blocked stdout: ${tookMs} ms; RSS after 3,000 logged calls ${rssKb} kB`,
      );
      assert.ok(rssKb < 200_000, `RSS ${rssKb} kB`);
    } finally {
      client.close();
      child.kill('SIGKILL');
      dir.cleanup();
    }
  });
});

describe('identical calls sharing one KMS request', () => {
  let world: ClientKeyWorld;
  before(async () => {
    world = await startClientKeyWorld();
  });
  after(() => world.close());

  test('400 concurrent identical unseals against a slow KMS all succeed with max_in_flight 256', async () => {
    const daemon = await spawnDaemon({
      config: { ...world.daemonConfig(10_000), cache: { ttl_seconds: 0 } },
    });
    const client = new CdhClient(daemon.target, { timeoutMs: 20_000 });
    try {
      const sealed = await world.sealEnvelope('shared plaintext');
      const input = Buffer.from(sealed.sealed);
      assert.equal((await client.unsealSecret(input, 10_000)).toString(), 'shared plaintext');
      world.emulator.slowNext(1500, 1);
      const answers = await Promise.all(
        Array.from({ length: 400 }, () =>
          client.unsealSecret(input, 15_000).then(
            (plaintext) => plaintext.toString(),
            (error: unknown) => statusOf(error).details,
          ),
        ),
      );
      const refused = answers.filter((a) => a !== 'shared plaintext');
      assert.deepEqual(refused.slice(0, 3), [], `${refused.length} of 400 not answered`);
    } finally {
      client.close();
      world.emulator.clearFaults();
      await daemon.stop();
      daemon.cleanup();
    }
  });
});
