import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { CdhClient } from '../../src/client/cdh-client';
import { startAliyunScenario, type AliyunScenario } from '../../src/emulators/aliyun/scenario';
import { buildKeyUnwrapRequest, parseKeyUnwrapResults } from '../../src/keyprovider/protocol';
import { PROTOS_DIR } from '../../src/package-info';
import { runCli, singleLineFailure } from '../support/cli';
import { childEnv, SECRET_BIN, tempDir, type DaemonProcess } from '../support/daemon';
import { keyproviderAliFlags, startKekDaemon } from '../support/keyprovider-world';

/*
 * `secret keyprovider --listen ADDR`: ocicrypt's `grpc` key provider. The servers run as
 * processes (a unix socket for kbs, TCP on 127.0.0.1 for ali); WrapKey is called by Python's
 * grpcio (stubs generated from protos/keyprovider.proto: a gRPC stack that is not ours) and by
 * our client; the daemon process unwraps what they answer.
 */

const run = promisify(execFile);
const PYTHON = '/usr/bin/python3';
const SYMKEY = randomBytes(32).toString('base64');
const OPTIONS = JSON.stringify({
  symkey: SYMKEY,
  digest: `sha256:${randomBytes(32).toString('hex')}`,
  cipheroptions: { nonce: randomBytes(16).toString('base64') },
});
const KEK = randomBytes(32);
const KID = 'kbs:///default/image-kek/grpc';

/** Calls WrapKey then UnWrapKey as a third-party ocicrypt gRPC client would; prints one JSON line. */
const PYTHON_CLIENT = `
import base64, json, sys
import grpc
from grpc_tools import protoc
target, work, protos, request_file = sys.argv[1:5]
if protoc.main(["protoc", "-I" + protos, "--python_out=" + work, "--grpc_python_out=" + work, "keyprovider.proto"]) != 0:
    sys.exit("protoc failed")
sys.path.insert(0, work)
import keyprovider_pb2, keyprovider_pb2_grpc
stub = keyprovider_pb2_grpc.KeyProviderServiceStub(grpc.insecure_channel(target))
request = open(request_file, "rb").read()
answer = stub.WrapKey(keyprovider_pb2.KeyProviderKeyWrapProtocolInput(KeyProviderKeyWrapProtocolInput=request), timeout=20)
packet = bytes(json.loads(answer.KeyProviderKeyWrapProtocolOutput)["keywrapresults"]["annotation"])
try:
    stub.UnWrapKey(keyprovider_pb2.KeyProviderKeyWrapProtocolInput(KeyProviderKeyWrapProtocolInput=b"{}"), timeout=20)
    unwrap = "OK"
except grpc.RpcError as error:
    unwrap = error.code().name
print(json.dumps({"packet": base64.b64encode(packet).decode(), "unwrap": unwrap}))
`;

interface Server {
  readonly child: ChildProcess;
  readonly address: string;
  stdout: string;
  stderr: string;
  readonly exited: Promise<number | null>;
}

let work: { path: string; cleanup(): void };
let kms: AliyunScenario;
let daemon: DaemonProcess;
let kekFile: string;
let kbsServer: Server;
let aliServer: Server;

function goRequest(options = OPTIONS): Buffer {
  return Buffer.from(
    JSON.stringify({
      op: 'keywrap',
      keywrapparams: {
        ec: { Parameters: { 'attestation-agent': [] } },
        optsdata: Buffer.from(options).toString('base64'),
      },
      keyunwrapparams: { dc: null, annotation: null },
    }),
  );
}

function rustRequest(options = OPTIONS): Buffer {
  return Buffer.from(
    JSON.stringify({
      op: 'keywrap',
      keywrapparams: { ec: { Parameters: { 'attestation-agent': [] } }, optsdata: options },
      keyunwrapparams: { dc: null, annotation: null },
    }),
  );
}

function aliFlags(): string[] {
  return keyproviderAliFlags(kms);
}

/** A free TCP port on 127.0.0.1 (closed again: the server binds it next). */
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as { port: number }).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

async function startServer(address: string, flags: readonly string[]): Promise<Server> {
  const child = spawn(process.execPath, [SECRET_BIN, 'keyprovider', '--listen', address, ...flags], {
    env: childEnv(kms.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const server: Server = {
    child,
    address,
    stdout: '',
    stderr: '',
    exited: new Promise((resolve) => child.on('exit', (code) => resolve(code))),
  };
  child.stdout?.on('data', (chunk: Buffer) => (server.stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (server.stderr += chunk.toString()));
  // Ready once it answers: UnWrapKey's UNIMPLEMENTED proves the service is up.
  const client = new CdhClient(address, { timeoutMs: 2000 });
  try {
    const giveUp = Date.now() + 60_000;
    for (;;) {
      if (server.child.exitCode !== null) throw new Error(`keyprovider exited: ${server.stderr}`);
      const code = await client.keyProviderCall('UnWrapKey', Buffer.from('{}')).then(
        () => 0,
        (error: { code?: number }) => error.code,
      );
      if (code === 12) break;
      if (Date.now() > giveUp) throw new Error(`secret keyprovider on ${address} did not come up`);
      await sleep(100);
    }
  } finally {
    client.close();
  }
  return server;
}

async function stopServer(server: Server): Promise<number | null> {
  if (server.child.exitCode === null) server.child.kill('SIGTERM');
  return server.exited;
}

async function wrapWith(address: string, request: Buffer): Promise<Buffer> {
  const client = new CdhClient(address, { timeoutMs: 20_000 });
  try {
    const answer = await client.keyProviderCall('WrapKey', request);
    return Buffer.from(
      (JSON.parse(answer.toString()) as { keywrapresults: { annotation: number[] } }).keywrapresults
        .annotation,
    );
  } finally {
    client.close();
  }
}

async function unwrap(packet: Buffer): Promise<string> {
  return parseKeyUnwrapResults(
    await daemon.client().keyProviderCall('UnWrapKey', buildKeyUnwrapRequest(packet)),
  ).toString();
}

before(async () => {
  work = tempDir('cdh-keyprovider-grpc-');
  const credentialDir = join(work.path, 'kms-credential');
  mkdirSync(credentialDir);
  kms = await startAliyunScenario({ credentialDir });
  let started: { daemon: DaemonProcess; kekFile: string };
  [started, kbsServer, aliServer] = await Promise.all([
    startKekDaemon(work.path, kms, 'default/image-kek/grpc', KEK),
    startServer(`unix://${join(work.path, 'kp.sock')}`, [
      'kbs',
      '--kid',
      KID,
      '--kek-file',
      join(work.path, 'kek.bin'),
    ]),
    freePort().then((port) => startServer(`127.0.0.1:${port}`, aliFlags())),
  ]);
  ({ daemon, kekFile } = started);
});

after(async () => {
  const servers = [kbsServer, aliServer].filter(Boolean);
  const exits = await Promise.all(servers.map(stopServer));
  const code = await daemon?.stop();
  const logs = daemon?.logLines.join('\n') ?? '';
  daemon?.cleanup();
  await kms?.close();
  work?.cleanup();
  assert.ok(!logs.includes(SYMKEY), 'the layer key in a daemon log line');
  assert.equal(code, 0);
  // Served every test above without a word on stdout or stderr, and stopped cleanly.
  assert.deepEqual(
    servers.map((server) => [server.stdout, server.stderr]),
    servers.map(() => ['', '']),
  );
  assert.deepEqual(
    exits,
    servers.map(() => 0),
  );
});

describe('secret keyprovider --listen: WrapKey over gRPC', { concurrency: 2 }, () => {
  const python = existsSync(PYTHON) && existsSync('/usr/lib/python3/dist-packages/grpc_tools');
  for (const which of ['kbs', 'ali'] as const) {
    test(`${which}: Python grpcio's WrapKey answer unwraps through the daemon; its UnWrapKey is UNIMPLEMENTED`, async (t) => {
      if (!python) {
        if (process.env['CI']) assert.fail('python3-grpcio and python3-grpc-tools must be installed in CI');
        return t.skip('python3-grpcio / python3-grpc-tools not installed');
      }
      const server = which === 'kbs' ? kbsServer : aliServer;
      const dir = join(work.path, `python-${which}`);
      mkdirSync(dir);
      writeFileSync(join(dir, 'client.py'), PYTHON_CLIENT);
      writeFileSync(join(dir, 'request.json'), goRequest());
      const { stdout } = await run(
        PYTHON,
        [join(dir, 'client.py'), server.address, dir, PROTOS_DIR, join(dir, 'request.json')],
        { timeout: 60_000 },
      );
      const answer = JSON.parse(stdout) as { packet: string; unwrap: string };
      assert.equal(answer.unwrap, 'UNIMPLEMENTED');
      const packet = Buffer.from(answer.packet, 'base64');
      assert.equal(JSON.parse(packet.toString()).provider ?? 'kbs', which === 'kbs' ? 'kbs' : 'aliyun');
      assert.equal(await unwrap(packet), OPTIONS);
    });

    test(`${which}: our gRPC client, Go- and Rust-style requests, unwrap to the same options`, async () => {
      const server = which === 'kbs' ? kbsServer : aliServer;
      for (const request of [goRequest(), rustRequest()])
        assert.equal(await unwrap(await wrapWith(server.address, request)), OPTIONS);
    });
  }

  test('a malformed request is INVALID_ARGUMENT naming the field; the server keeps serving', async () => {
    const bad = Buffer.from(
      goRequest()
        .toString()
        .replace(/"optsdata":"[^"]*"/, '"optsdata":"%%"'),
    );
    await assert.rejects(wrapWith(kbsServer.address, bad), (error: { code: number; details: string }) => {
      assert.equal(error.code, 3, error.details);
      assert.match(
        error.details,
        /KEYPROVIDER_REQUEST_INVALID: .*"keywrapparams.optsdata" is not valid standard base64/,
      );
      return true;
    });
    await assert.rejects(wrapWith(kbsServer.address, Buffer.from('not json')), { code: 3 });
    assert.equal(await unwrap(await wrapWith(kbsServer.address, goRequest())), OPTIONS);
  });

  test('a request over the size bound is refused by the transport (RESOURCE_EXHAUSTED)', async () => {
    await assert.rejects(wrapWith(kbsServer.address, Buffer.alloc(1024 * 1024 + 64, 0x20)), { code: 8 });
    assert.equal(await unwrap(await wrapWith(kbsServer.address, rustRequest())), OPTIONS);
  });
});

describe('secret keyprovider --listen: start-up and shutdown', () => {
  test('SIGTERM: exit 0, a 0600 socket file that is removed, nothing ever written to stdout or stderr', async () => {
    const path = join(work.path, 'short-lived.sock');
    const server = await startServer(`unix://${path}`, ['kbs', '--kid', KID, '--kek-file', kekFile]);
    assert.equal(statSync(path).mode & 0o777, 0o600, 'the socket is open to other users');
    assert.equal(await unwrap(await wrapWith(server.address, goRequest())), OPTIONS);
    assert.equal(await stopServer(server), 0);
    assert.ok(!existsSync(path), 'the socket file is left behind');
    assert.equal(server.stdout, '');
    assert.equal(server.stderr, '');
  });

  test('a socket left by a killed server is taken over; one that is in use is not', async () => {
    const path = join(work.path, 'stale.sock');
    const flags = ['kbs', '--kid', KID, '--kek-file', kekFile];
    const killed = await startServer(`unix://${path}`, flags);
    killed.child.kill('SIGKILL');
    await killed.exited;
    assert.ok(existsSync(path), 'SIGKILL left no socket file behind');
    const next = await startServer(`unix://${path}`, flags);
    try {
      const busy = await runCli(SECRET_BIN, ['keyprovider', '--listen', `unix://${path}`, ...flags]);
      assert.match(singleLineFailure(busy, 'secret', 'socket in use'), /stale\.sock is in use/);
      assert.equal(busy.code, 1);
      assert.equal(await unwrap(await wrapWith(next.address, goRequest())), OPTIONS);
    } finally {
      assert.equal(await stopServer(next), 0);
    }
  });

  test('a bad address, an existing file that is no socket: one line on stderr, non-zero exit', async () => {
    const flags = ['kbs', '--kid', KID, '--kek-file', kekFile];
    const bad = await runCli(SECRET_BIN, ['keyprovider', '--listen', 'nowhere', ...flags]);
    assert.match(singleLineFailure(bad, 'secret', 'bad --listen'), /--listen must be/);
    assert.equal(bad.code, 2);
    const taken = join(work.path, 'taken.sock');
    writeFileSync(taken, '');
    const busy = await runCli(SECRET_BIN, ['keyprovider', '--listen', `unix://${taken}`, ...flags]);
    assert.match(
      singleLineFailure(busy, 'secret', 'existing file'),
      /cannot listen on .*taken\.sock exists and is not a socket/,
    );
    assert.equal(busy.code, 1);
  });
});
