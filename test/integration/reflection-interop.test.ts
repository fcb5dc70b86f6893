import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { compileDescriptorSet, thirdPartyProtos } from '../../scripts/compile-protos';
import { API_PROTO, PACKAGE_ROOT } from '../../src/package-info';
import { generateSigningJwkPair, sealVault, signSealedSecret } from '../../src/secret';
import { API_METHODS } from '../../src/server/api';
import { LazyReflection } from '../../src/server/reflection-service';
import { spawnDaemon, tempDir, type DaemonProcess } from '../../src/devtools/daemon';
import { writeResourceFile } from '../support/kbs';

/**
 * What the daemon serves by reflection, loaded by clients that validate descriptors as
 * grpcurl does: Python's descriptor_pool (test/interop/reflection_check.py) and Go's protodesc
 * (test/interop/reflection-go), both fetching on their own over the socket, v1 and v1alpha.
 */

const run = promisify(execFile);
const PYTHON = '/usr/bin/python3';
const GO_SOURCES = [
  '/usr/share/gocode/src/google.golang.org/grpc',
  '/usr/share/gocode/src/google.golang.org/protobuf',
];

function missingPython(): string | undefined {
  for (const module of ['grpc', 'grpc_tools', 'google/protobuf'])
    if (!existsSync(`/usr/lib/python3/dist-packages/${module}`))
      return `Debian's python3 ${module} is not installed (apt-get install python3-grpcio python3-grpc-tools python3-protobuf)`;
  return undefined;
}

function missingGo(): string | undefined {
  if (spawnSync('go', ['version']).status !== 0) return 'Go is not installed (apt-get install golang-go)';
  for (const source of GO_SOURCES)
    if (!existsSync(source))
      return `${source} is missing (apt-get install golang-google-grpc-dev golang-google-protobuf-dev)`;
  return undefined;
}

interface Field {
  name: string;
  number: number;
  type: string;
  repeated: boolean;
  json_name: string;
  type_name?: string;
  map?: string[];
}

interface CheckAnswer {
  version: string;
  services: string[];
  files: string[];
  by_filename: string[];
  errors: Record<string, string>;
  messages?: Record<string, Field[]>;
  plaintext_base64?: string;
}

/** The three messages as protoc describes them (fields of interface.md's API). */
const EXPECTED_MESSAGES: Record<string, Field[]> = {
  'api.SecureMountRequest': [
    { name: 'volume_type', number: 1, type: 'TYPE_STRING', repeated: false, json_name: 'volumeType' },
    {
      name: 'options',
      number: 2,
      type: 'TYPE_MESSAGE',
      repeated: true,
      json_name: 'options',
      type_name: 'api.SecureMountRequest.OptionsEntry',
      map: ['TYPE_STRING', 'TYPE_STRING'],
    },
    { name: 'flags', number: 3, type: 'TYPE_STRING', repeated: true, json_name: 'flags' },
    { name: 'mount_point', number: 4, type: 'TYPE_STRING', repeated: false, json_name: 'mountPoint' },
  ],
  'api.UnsealSecretInput': [
    { name: 'secret', number: 1, type: 'TYPE_BYTES', repeated: false, json_name: 'secret' },
  ],
  'api.GetResourceRequest': [
    { name: 'ResourcePath', number: 1, type: 'TYPE_STRING', repeated: false, json_name: 'ResourcePath' },
  ],
};

/** Every service the daemon registers: the API's (a new one is checked with no edit here), health, reflection. */
const SERVED_SERVICES = [
  ...new Set(API_METHODS.map((method) => method.split('/')[0] as string)),
  'grpc.health.v1.Health',
  'grpc.reflection.v1.ServerReflection',
  'grpc.reflection.v1alpha.ServerReflection',
].sort();

const VAULT_VALUE = 'reflected-plaintext-7c1e';

/** A grpc-js server on a unix socket in `dir`; `setUp` adds its services. */
async function startServer(
  dir: string,
  name: string,
  setUp: (server: grpc.Server) => void,
): Promise<{ socket: string; close(): void }> {
  const server = new grpc.Server();
  setUp(server);
  const socket = join(dir, `${name}.sock`);
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (error) =>
      error ? reject(error) : resolve(),
    ),
  );
  return { socket, close: () => server.forceShutdown() };
}

/** Runs a checker; its JSON answer and exit code (0 or 1; anything else throws). */
async function check(command: string, args: string[]): Promise<{ code: number; answer: CheckAnswer }> {
  try {
    const { stdout } = await run(command, args, { timeout: 60_000 });
    return { code: 0, answer: JSON.parse(stdout) as CheckAnswer };
  } catch (error) {
    const failed = error as { code?: number | string; signal?: string; stdout?: string; stderr?: string };
    if (failed.code === 1 && failed.stdout)
      return { code: 1, answer: JSON.parse(failed.stdout) as CheckAnswer };
    // Everything the checker left, so that a failure can be read from the CI log alone.
    const exit = `exit ${String(failed.code)}${failed.signal ? `, signal ${failed.signal}` : ''}`;
    throw new Error(
      `${command} failed (${exit}): stderr ${JSON.stringify(failed.stderr ?? '')}, stdout ${JSON.stringify(failed.stdout ?? '')}, ${String(error)}`,
      { cause: error },
    );
  }
}

describe(
  'reflection loads into validating clients (Python descriptor_pool, Go protodesc)',
  { timeout: 300_000 },
  () => {
    const pythonSkip = missingPython();
    const goSkip = missingGo();
    // CI installs both (.ci/run): there a missing one is a failure, not a skip.
    if ((pythonSkip || goSkip) && process.env['CI'])
      throw new Error(`CI must install the reflection checkers' packages: ${pythonSkip ?? goSkip}`);

    let work: { path: string; cleanup(): void };
    let daemon: DaemonProcess;
    let secretFile: string;
    let goChecker: string;
    let buildSeconds = 0;

    const checkers = {
      python: (socket: string, version: string, ...rest: string[]) => {
        const scratch = join(work.path, `py-${Math.random().toString(36).slice(2)}`);
        mkdirSync(scratch);
        return check(PYTHON, [
          join(PACKAGE_ROOT, 'test/interop/reflection_check.py'),
          socket,
          scratch,
          PACKAGE_ROOT,
          version,
          ...rest,
        ]);
      },
      go: (socket: string, version: string, ...rest: string[]) =>
        check(goChecker, [socket, version, ...rest]),
    };
    const skipOf = { python: pythonSkip, go: goSkip };

    before(async () => {
      work = tempDir('cdh-reflection-it-');
      if (!goSkip) {
        goChecker = join(work.path, 'reflection-check');
        const started = Date.now();
        await run(join(PACKAGE_ROOT, 'test/interop/reflection-go/run.sh'), ['--build', goChecker], {
          timeout: 240_000,
        });
        buildSeconds = (Date.now() - started) / 1000;
      }
      const keys = generateSigningJwkPair('tenant');
      const resources = join(work.path, 'resources.json');
      writeResourceFile(resources, {
        'default/vault/reflected': VAULT_VALUE,
        'default/signing-key/tenant': JSON.stringify(keys.publicJwk),
      });
      secretFile = join(work.path, 'sealed-secret');
      writeFileSync(
        secretFile,
        signSealedSecret(
          sealVault({ provider: 'kbs', name: 'kbs:///default/vault/reflected' }),
          keys.privateJwk,
          'kbs:///default/signing-key/tenant',
        ),
      );
      daemon = await spawnDaemon({
        config: {
          sealed_secret: { signing_key_dir: work.path },
          kbc: { name: 'offline_fs_kbc', offline_fs: { resource_files: [resources] } },
        },
      });
    });

    after(async () => {
      await daemon?.stop();
      daemon?.cleanup();
      work?.cleanup();
    });

    for (const checker of ['python', 'go'] as const) {
      for (const version of ['v1', 'v1alpha'] as const) {
        test(`${checker} loads every file the daemon serves by reflection ${version}, describes the API and unseals with a dynamic message`, async (t) => {
          const skip = skipOf[checker];
          if (skip) return t.skip(skip);
          if (checker === 'go') t.diagnostic(`Go checker built in ${buildSeconds.toFixed(1)} s`);
          const { code, answer } = await checkers[checker](daemon.socketPath, version, secretFile);
          assert.equal(code, 0, JSON.stringify(answer.errors));
          assert.deepEqual(answer.errors, {});
          assert.deepEqual(answer.services, SERVED_SERVICES);
          for (const file of [
            'api.proto',
            'grpc/health/v1/health.proto',
            'grpc/reflection/v1/reflection.proto',
          ])
            assert.ok(answer.files.includes(file), `${file} in ${answer.files.join(', ')}`);
          assert.deepEqual(answer.messages, EXPECTED_MESSAGES);
          assert.equal(Buffer.from(answer.plaintext_base64 ?? '', 'base64').toString(), VAULT_VALUE);
        });
      }
    }

    test('the bundled daemon (npm run bundle) serves the same descriptors, embedded in the bundle', async (t) => {
      const bundled = join(PACKAGE_ROOT, 'dist/bundle/confidential-data-hub.js');
      if (pythonSkip) return t.skip(pythonSkip);
      if (!existsSync(bundled)) return t.skip('no bundle: run npm run bundle (npm test does)');
      const daemon = await spawnDaemon({ bin: bundled });
      try {
        const { code, answer } = await checkers.python(daemon.socketPath, 'v1alpha');
        assert.equal(code, 0, JSON.stringify(answer.errors));
        assert.deepEqual(answer.services, SERVED_SERVICES);
        assert.deepEqual(answer.messages, EXPECTED_MESSAGES);
      } finally {
        await daemon.stop();
        daemon.cleanup();
      }
    });

    test('both load a served file with imports, each import fetched by file name', async (t) => {
      if (pythonSkip || goSkip) return t.skip(pythonSkip ?? goSkip);
      // A service whose file imports a file that imports another (and a well-known type).
      const tree = join(work.path, 'probe-protos');
      mkdirSync(join(tree, 'probe'), { recursive: true });
      mkdirSync(join(tree, 'google/rpc'), { recursive: true });
      writeFileSync(
        join(tree, 'google/rpc/status.proto'),
        'syntax = "proto3";\npackage google.rpc;\nimport "google/protobuf/any.proto";\n' +
          'message Status { int32 code = 1; string message = 2; repeated google.protobuf.Any details = 3; }\n',
      );
      writeFileSync(
        join(tree, 'probe/types.proto'),
        'syntax = "proto3";\npackage probe;\nimport "google/rpc/status.proto";\n' +
          'message Question { map<string, google.rpc.Status> by_name = 1; }\n',
      );
      writeFileSync(
        join(tree, 'probe.proto'),
        'syntax = "proto3";\npackage probe;\nimport "probe/types.proto";\nimport "google/rpc/status.proto";\n' +
          'service Probe { rpc Ask(Question) returns (google.rpc.Status); }\n',
      );
      const setPath = join(work.path, 'probe.binpb');
      writeFileSync(setPath, compileDescriptorSet({ protosDir: tree, extra: thirdPartyProtos() }));
      const server = await startServer(work.path, 'probe', (s) =>
        new LazyReflection(['probe.Probe'], setPath).addToServer(s),
      );
      try {
        for (const checker of ['python', 'go'] as const) {
          const { code, answer } = await checkers[checker](server.socket, 'v1');
          assert.equal(code, 0, `${checker}: ${JSON.stringify(answer.errors)}`);
          assert.ok(answer.services.includes('probe.Probe'), checker);
          assert.deepEqual(
            answer.by_filename,
            ['google/protobuf/any.proto', 'google/rpc/status.proto', 'probe/types.proto'],
            checker,
          );
        }
      } finally {
        server.close();
      }
    });

    test('both refuse the descriptors @grpc/reflection builds from protobufjs (the test can fail)', async (t) => {
      if (pythonSkip || goSkip) return t.skip(pythonSkip ?? goSkip);
      const definition = protoLoader.loadSync([API_PROTO, healthProtoPath], {
        keepCase: true,
        longs: String,
        enums: String,
        defaults: true,
      });
      const server = await startServer(work.path, 'protobufjs', (s) =>
        new ReflectionService(definition).addToServer(s),
      );
      try {
        for (const [checker, refusal] of [
          ['python', /map_entry should not be set explicitly/],
          ['go', /is an invalid map: incorrect implicit map entry name/],
        ] as const) {
          const { code, answer } = await checkers[checker](server.socket, 'v1');
          assert.equal(code, 1, checker);
          assert.match(answer.errors['api.SealedSecretService'] ?? '', refusal);
          assert.match(answer.errors['api.SealedSecretService'] ?? '', /SecureMountRequest\.options/);
          assert.match(answer.errors['grpc.health.v1.Health'] ?? '', refusal);
          assert.match(answer.errors['grpc.health.v1.Health'] ?? '', /HealthListResponse\.statuses/);
        }
      } finally {
        server.close();
      }
    });
  },
);
