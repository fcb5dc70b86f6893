import * as grpc from '@grpc/grpc-js';
import { spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { silentLogger } from '../../../src/log';
import { builtinProviders } from '../../../src/providers';
import { ApiDispatcher } from '../../../src/server/api';
import { startDaemon } from '../../../src/app/daemon';
import { GrpcFront } from '../../../src/server/grpc';
import { ReflectionClient } from '../../support/reflection-client';
import { serveFront, type ServedFront } from '../../support/served-front';

/** Whether a module whose resolved path contains `fragment` has been required in this process. */
function loaded(fragment: string): boolean {
  return Object.keys(require.cache).some((path) => path.includes(fragment));
}

test('start-up modules do not pull in the provider back ends, server reflection, protobuf codecs, generated descriptors or cc_kbc', () => {
  assert.equal(typeof startDaemon, 'function');
  assert.ok(builtinProviders().some((p) => p.name === 'aliyun'));
  const dispatcher = new ApiDispatcher(
    {
      unsealSecret: async () => new Uint8Array(0),
      getResource: async () => new Uint8Array(0),
    },
    { maxInFlight: 1, logger: silentLogger() },
  );
  const front = new GrpcFront(dispatcher, { maxMessageBytes: 1024 });
  try {
    for (const heavy of [
      '/node-forge/',
      '/server/reflection.js',
      '/@alicloud/',
      'providers/aliyun/client-key/',
      'providers/aliyun/openapi/',
      // The @bufbuild/protobuf main entry boots every well-known type (src/lib/protobuf.ts);
      // the AA and ttrpc envelope types are needed at the first call only.
      '/@bufbuild/protobuf/dist/cjs/index.js',
      '/gen/attestation-agent_pb',
      '/gen/ttrpc_pb',
      '/gen/google/rpc/status_pb',
      // Nor any generated API or health type: services are registered from the method tables.
      '/gen/api_pb',
      '/gen/keyprovider_pb',
      '/gen/health/',
      '/@bufbuild/protobuf/dist/cjs/codegenv2/',
      // cc_kbc's modules (the KBS client and https, the AA client) load only when it is configured.
      '/kbc/cc-kbc',
      '/kbc/kbs-http',
      '/kbc/aa-token',
      '/net/http-client',
      '/client/aa-client',
    ]) {
      assert.equal(loaded(heavy), false, `${heavy} is loaded at start-up`);
    }
  } finally {
    front.destroy();
  }
});

/** A GrpcFront over a backend that answers nothing, on a temp unix socket. */
function servedFront(): Promise<ServedFront> {
  return serveFront({
    unsealSecret: async () => new Uint8Array(0),
    getResource: async () => new Uint8Array(0),
  });
}

/** Opens a raw ServerReflectionInfo stream (bytes in, bytes out). */
function rawReflectionStream(target: string): {
  stream: grpc.ClientDuplexStream<Buffer, Buffer>;
  client: grpc.Client;
} {
  const client = new grpc.Client(target, grpc.credentials.createInsecure());
  const passThrough = (bytes: Buffer): Buffer => bytes;
  const stream = client.makeBidiStreamRequest(
    '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo',
    passThrough,
    passThrough,
    new grpc.Metadata(),
    { deadline: Date.now() + 5000 },
  );
  return { stream, client };
}

test('reflection is built on its first call and relays both versions; a malformed request is refused', async () => {
  const served = await servedFront();
  try {
    const { stream, client } = rawReflectionStream(served.target);
    const status = new Promise<grpc.StatusObject>((resolve) => stream.on('status', resolve));
    stream.on('error', () => undefined);
    stream.on('data', () => undefined);
    // Field 7 (list_services) with a wire type that cannot be read: not a ServerReflectionRequest.
    stream.write(Buffer.from([0x3f, 0xff, 0xff]));
    assert.equal((await status).code, grpc.status.INTERNAL);
    client.close();

    for (const version of ['v1', 'v1alpha'] as const) {
      const reflection = new ReflectionClient(served.target, version);
      try {
        assert.ok((await reflection.listServices()).includes('api.SealedSecretService'));
      } finally {
        reflection.close();
      }
    }
    assert.equal(loaded('/server/reflection.js'), true);

    // A client that goes away mid-stream leaves the server serving.
    const abandoned = rawReflectionStream(served.target);
    abandoned.stream.on('error', () => undefined);
    abandoned.stream.cancel();
    abandoned.client.close();
    const reflection = new ReflectionClient(served.target);
    try {
      const files = await reflection.fileContainingSymbol('api.UnsealSecretInput');
      assert.ok(files.some((file) => file.package === 'api'));
    } finally {
      reflection.close();
    }
  } finally {
    await served.close();
  }
});

test('calling UnsealSecret and Health/Check (GrpcFront, and the bundles’ health definition) loads no protobuf runtime or generated file', () => {
  // A child process: this file's imports (reflection-client) load the generated files here.
  const probe = join(__dirname, '..', '..', 'support', 'flat-calls-probe.js');
  const run = spawnSync(process.execPath, [probe, '--probe'], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(run.status, 0, run.stderr);
  const { answers, modules } = JSON.parse(run.stdout) as {
    answers: Record<string, string>;
    modules: string[];
  };
  assert.deepEqual(answers, {
    unseal: `0a07${Buffer.from('plain:s').toString('hex')}`, // UnsealSecretOutput { plaintext }
    check: '0801', // SERVING
    definitionCheck: '0801',
    definitionWatch: '0803', // SERVICE_UNKNOWN
  });
  const has = (fragment: string): boolean => modules.some((path) => path.includes(fragment));
  assert.ok(has('/server/flat-message.js'), 'the flat codec served the calls');
  assert.ok(has('/server/health-definition.js'));
  for (const heavy of [
    '/@bufbuild/protobuf/dist/cjs/index.js',
    '/gen/',
    '/@bufbuild/protobuf/dist/cjs/codegenv2/',
  ])
    assert.equal(has(heavy), false, `${heavy} is loaded after the calls`);
  // dist's GrpcFront serves Health through grpc-health-check's real proto-loader (protobufjs);
  // only the bundles put src/server/health-definition in its place (scripts/bundle-health.ts).
  assert.equal(has('/node_modules/protobufjs/'), true);
});
