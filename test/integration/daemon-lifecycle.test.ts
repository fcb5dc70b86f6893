import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { API_PROTO } from '../../src/package-info';
import { childEnv, DAEMON_BIN, spawnDaemon, tempDir, type DaemonProcess } from '../../src/devtools/daemon';
import { pythonGrpcAvailable, pythonGrpcClient } from '../support/python-grpc';
import { ReflectionClient } from '../support/reflection-client';

const run = promisify(execFile);

describe('a running daemon', () => {
  let daemon: DaemonProcess;
  before(async () => {
    daemon = await spawnDaemon({ config: { max_message_bytes: 4096 } });
  });
  after(async () => {
    await daemon.stop();
    daemon.cleanup();
  });

  test('answers health SERVING for the server and each API service', async () => {
    const client = daemon.client();
    assert.equal(await client.check(''), 'SERVING');
    assert.equal(await client.check('api.SealedSecretService'), 'SERVING');
  });

  test('creates its socket file with mode 0600', () => {
    assert.equal(statSync(daemon.socketPath).mode & 0o777, 0o600);
  });

  for (const version of ['v1', 'v1alpha'] as const) {
    test(`lists the API, health and reflection through reflection ${version}`, async () => {
      const reflection = new ReflectionClient(daemon.target, version);
      try {
        const services = await reflection.listServices();
        for (const name of ['api.SealedSecretService', 'api.GetResourceService', 'grpc.health.v1.Health'])
          assert.ok(services.includes(name), `${name} in ${services.join(', ')}`);
      } finally {
        reflection.close();
      }
    });
  }

  test('describes api.UnsealSecretInput with all its dependencies, as grpcurl needs', async () => {
    const reflection = new ReflectionClient(daemon.target);
    try {
      const files = await reflection.fileContainingSymbol('api.UnsealSecretInput');
      const api = files.find((f) => f.package === 'api');
      assert.ok(api, 'the api file is served');
      const input = api.messageType?.find((m) => m.name === 'UnsealSecretInput');
      const field = input?.field?.[0];
      assert.equal(field?.name, 'secret');
      assert.equal(field?.number, 1);
      assert.ok(field?.type === 'TYPE_BYTES' || field?.type === 12, `bytes type, got ${String(field?.type)}`);
      const served = new Set(files.map((f) => f.name));
      for (const file of files)
        for (const dep of file.dependency ?? []) assert.ok(served.has(dep), `dependency ${dep} served`);
      assert.ok(api.service?.some((s) => s.name === 'SealedSecretService'));
    } finally {
      reflection.close();
    }
  });

  test('answers SecureMount with UNIMPLEMENTED saying it is not part of it', async () => {
    const definition = protoLoader.loadSync(API_PROTO, { keepCase: true, defaults: true });
    for (const [service, method, request] of [
      [
        'api.SecureMountService',
        'SecureMount',
        { volume_type: 'x', options: {}, flags: [], mount_point: '/m' },
      ],
    ] as const) {
      const Ctor = grpc.makeGenericClientConstructor(definition[service] as grpc.ServiceDefinition, service);
      const client = new Ctor(daemon.target, grpc.credentials.createInsecure()) as unknown as Record<
        string,
        (r: object, cb: (e: grpc.ServiceError | null) => void) => void
      > &
        grpc.Client;
      const error = await new Promise<grpc.ServiceError | null>((resolve) =>
        (client[method] as (r: object, cb: (e: grpc.ServiceError | null) => void) => void).call(
          client,
          request,
          resolve,
        ),
      );
      client.close();
      assert.equal(error?.code, grpc.status.UNIMPLEMENTED);
      assert.match(error?.details ?? '', /not part of this daemon/);
    }
  });

  test('refuses a request over max_message_bytes with RESOURCE_EXHAUSTED and keeps serving', async () => {
    const client = daemon.client();
    await assert.rejects(client.unsealSecret(Buffer.alloc(8192, 0x61)), (error: grpc.ServiceError) => {
      assert.equal(error.code, grpc.status.RESOURCE_EXHAUSTED);
      return true;
    });
    assert.equal(await client.check(''), 'SERVING');
  });

  test(':authority as clients send it: "localhost" and the %-encoded path work; a raw path is refused, the daemon serves on', async () => {
    const { protoPath } = await import('grpc-health-check');
    const definition = protoLoader.loadSync(protoPath, { keepCase: true, enums: String, defaults: true });
    const Health = grpc.makeGenericClientConstructor(
      definition['grpc.health.v1.Health'] as grpc.ServiceDefinition,
      'Health',
    );
    const check = (authority: string): Promise<string> =>
      new Promise((resolve) => {
        const client = new Health(daemon.target, grpc.credentials.createInsecure(), {
          'grpc.default_authority': authority,
        }) as unknown as grpc.Client & {
          Check(
            r: object,
            o: grpc.CallOptions,
            cb: (e: grpc.ServiceError | null, r?: { status: string }) => void,
          ): void;
        };
        client.Check({ service: '' }, { deadline: Date.now() + 5000 }, (error, response) => {
          client.close();
          resolve(error ? `error ${error.code}` : (response?.status ?? ''));
        });
      });
    // grpc-go >= 1.34, grpc-js, grpcurl 1.9: "localhost"; grpc C-core >= 1.57: the %-encoded path.
    assert.equal(await check('localhost'), 'SERVING');
    assert.equal(await check(encodeURIComponent(daemon.socketPath)), 'SERVING');
    // Old grpc-go / grpc-java send the raw path: Node's HTTP/2 layer (like Rust's h2) resets the
    // stream before the daemon sees it (README: use -authority localhost). Nothing else breaks.
    assert.equal(await check(daemon.socketPath), `error ${grpc.status.INTERNAL}`);
    assert.equal(await daemon.client().check(''), 'SERVING');
  });

  test('serves a client that is not ours: Debian python3-grpcio (health and reflection)', async (t) => {
    if (!pythonGrpcAvailable(t)) return;
    const answer = await pythonGrpcClient(daemon.socketPath);
    assert.equal(answer.health, 'SERVING');
    assert.equal(answer.check_unknown, 'NOT_FOUND');
    assert.deepEqual(answer.watch, { '': 'SERVING', 'no.such.Service': 'SERVICE_UNKNOWN' });
    assert.ok(answer.services.includes('api.SealedSecretService'));
    assert.ok(answer.services.includes('grpc.health.v1.Health'));
  });
});

describe('daemon start-up and shutdown', () => {
  test('SIGTERM: exit code 0 and the socket file is gone', async () => {
    const daemon = await spawnDaemon();
    try {
      assert.ok(existsSync(daemon.socketPath));
      assert.equal(await daemon.stop('SIGTERM'), 0);
      assert.equal(existsSync(daemon.socketPath), false);
    } finally {
      daemon.cleanup();
    }
  });

  test('SIGINT also stops it cleanly', async () => {
    const daemon = await spawnDaemon();
    try {
      assert.equal(await daemon.stop('SIGINT'), 0);
      assert.equal(existsSync(daemon.socketPath), false);
    } finally {
      daemon.cleanup();
    }
  });

  test('creates a missing parent directory of the socket', async () => {
    const dir = tempDir();
    const daemon = await spawnDaemon({ dir: dir.path, socketPath: join(dir.path, 'run/cc/cdh.sock') });
    try {
      assert.equal(await daemon.client().check(''), 'SERVING');
    } finally {
      await daemon.stop();
      dir.cleanup();
    }
  });

  test('replaces a stale socket file nobody listens on', async () => {
    const dir = tempDir();
    const socketPath = join(dir.path, 'cdh.sock');
    // A socket file left behind by a process that died (SIGKILL: no clean-up).
    const stale = spawn(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(socketPath)}, () => process.kill(process.pid, 'SIGKILL'))`,
    ]);
    await new Promise((resolve) => stale.once('exit', resolve));
    assert.ok(existsSync(socketPath), 'a stale socket file is in place');
    const daemon = await spawnDaemon({ dir: dir.path, socketPath });
    try {
      assert.equal(await daemon.client().check(''), 'SERVING');
    } finally {
      await daemon.stop();
      dir.cleanup();
    }
  });

  test('refuses to start when another daemon listens on the socket', async () => {
    const first = await spawnDaemon();
    const second = await spawnDaemon({ dir: first.dir, socketPath: first.socketPath, waitReady: false });
    try {
      const code = await second.exited();
      assert.notEqual(code, 0);
      assert.match(second.stderr(), /already listening on/);
      assert.equal(await first.client().check(''), 'SERVING', 'the first daemon is undisturbed');
    } finally {
      second.cleanup();
      await first.stop();
      first.cleanup();
    }
  });

  test('refuses to replace a path that is not a socket', async () => {
    const dir = tempDir();
    const socketPath = join(dir.path, 'cdh.sock');
    writeFileSync(socketPath, 'not a socket');
    const daemon = await spawnDaemon({ dir: dir.path, socketPath, waitReady: false });
    try {
      assert.notEqual(await daemon.exited(), 0);
      assert.match(daemon.stderr(), /is not a socket/);
    } finally {
      daemon.cleanup();
      dir.cleanup();
    }
  });

  const badConfigs: Array<[string, string, RegExp]> = [
    ['unknown key', 'sockett = "unix:///tmp/x.sock"\n', /config key "sockett": unknown key/],
    [
      'unknown nested key',
      '[aliyun]\ncredential_dri = "/x"\n',
      /config key "aliyun.credential_dri": unknown key/,
    ],
    ['wrong type', 'max_in_flight = "many"\n', /config key "max_in_flight"/],
    ['bad value', '[cache]\nttl_seconds = -5\n', /config key "cache.ttl_seconds"/],
    ['unsupported kbc', '[kbc]\nname = "sample_kbc"\nurl = ""\n', /config key "kbc.name".*cc_kbc/],
    ['bad socket mode', 'socket_mode = "0999"\n', /config key "socket_mode"/],
    ['not TOML', 'this is = = not toml\n', /not valid TOML/],
  ];
  for (const [what, toml, expected] of badConfigs) {
    test(`a config with a ${what} stops start-up naming the key, and no socket is created`, async () => {
      const dir = tempDir();
      const configPath = join(dir.path, 'cdh.toml');
      writeFileSync(configPath, toml);
      const socketPath = join(dir.path, 'cdh.sock');
      try {
        const result = await run(
          process.execPath,
          [DAEMON_BIN, '-c', configPath, '--socket', `unix://${socketPath}`],
          {
            env: childEnv(),
          },
        ).then(
          () => ({ code: 0, stderr: '' }),
          (error: { code: number; stderr: string }) => error,
        );
        assert.notEqual(result.code, 0);
        assert.match(result.stderr, expected);
        assert.equal(existsSync(socketPath), false);
      } finally {
        dir.cleanup();
      }
    });
  }

  test('a JSON config file works like TOML', async () => {
    const dir = tempDir();
    mkdirSync(join(dir.path, 'keys'));
    const daemon = await spawnDaemon({
      dir: dir.path,
      config: {
        log: { level: 'debug' },
        sealed_secret: { signing_key_dir: join(dir.path, 'keys') },
        socket_mode: '0640',
      },
    });
    try {
      assert.equal(statSync(daemon.socketPath).mode & 0o777, 0o640);
    } finally {
      await daemon.stop();
      dir.cleanup();
    }
  });

  test('--help and --version answer without starting', async () => {
    const help = await run(process.execPath, [DAEMON_BIN, '--help']);
    assert.match(help.stdout, /Usage: confidential-data-hub/);
    const version = await run(process.execPath, [DAEMON_BIN, '--version']);
    assert.match(version.stdout, /^confidential-data-hub \d+\.\d+\.\d+/);
  });
});
