import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import * as descriptor from 'protobufjs/ext/descriptor';
import { compileDescriptorSet, servedProtoFiles, thirdPartyProtos } from '../../../scripts/compile-protos';
import { DESCRIPTOR_SET, PROTOS_DIR } from '../../../src/package-info';
import {
  DescriptorSetReflection,
  ReflectionCodec,
  splitDescriptorSet,
  type ReflectionAnswer,
  type ReflectionRequest,
} from '../../../src/server/reflection';
import { tempDir } from '../../../src/devtools/daemon';

const run = promisify(execFile);
/** Debian's protobuf-compiler. */
const PROTOC = '/usr/bin/protoc';
const API_SERVICES = [
  'api.SealedSecretService',
  'api.GetResourceService',
  'api.SecureMountService',
  'api.ImagePullService',
];

interface FileShape {
  name: string;
  dependency?: string[];
  messageType?: Array<{
    name: string;
    field?: Array<{ name: string; typeName?: string; jsonName?: string }>;
    nestedType?: Array<{ name: string; field?: unknown[]; options?: { mapEntry?: boolean } }>;
  }>;
}

function decodeFile(bytes: Uint8Array): FileShape {
  return descriptor.FileDescriptorProto.toObject(descriptor.FileDescriptorProto.decode(bytes)) as FileShape;
}

function filesOf(answer: ReflectionAnswer | undefined): Uint8Array[] {
  assert.ok(answer?.case === 'fileDescriptorResponse', JSON.stringify(answer));
  return answer.value.fileDescriptorProto ?? [];
}

function errorOf(answer: ReflectionAnswer | undefined): { errorCode: number; errorMessage: string } {
  assert.ok(answer?.case === 'errorResponse', JSON.stringify(answer));
  return { errorCode: answer.value.errorCode ?? 0, errorMessage: answer.value.errorMessage ?? '' };
}

/** The set's files by name, each with the bytes the compiler wrote. */
function byName(set: Uint8Array): Map<string, Buffer> {
  return new Map(splitDescriptorSet(set).map((bytes) => [decodeFile(bytes).name, Buffer.from(bytes)]));
}

describe('the descriptor set compiled at build time', () => {
  const set = readFileSync(DESCRIPTOR_SET);

  test('holds every protos/*.proto and the health and reflection protos, map entries as protoc names them', () => {
    const files = byName(set);
    for (const name of [
      ...servedProtoFiles(),
      'grpc/health/v1/health.proto',
      'grpc/reflection/v1/reflection.proto',
      'grpc/reflection/v1alpha/reflection.proto',
    ])
      assert.ok(files.has(name), `${name} in ${[...files.keys()].join(', ')}`);
    const api = decodeFile(files.get('api.proto') as Buffer);
    const mount = api.messageType?.find((m) => m.name === 'SecureMountRequest');
    const options = mount?.field?.find((f) => f.name === 'options');
    assert.equal(options?.typeName, '.api.SecureMountRequest.OptionsEntry');
    assert.deepEqual(mount?.nestedType, [
      { name: 'OptionsEntry', field: mount?.nestedType?.[0]?.field, options: { mapEntry: true } },
    ]);
    assert.equal(mount?.field?.find((f) => f.name === 'mount_point')?.jsonName, 'mountPoint');
    const health = decodeFile(files.get('grpc/health/v1/health.proto') as Buffer);
    const list = health.messageType?.find((m) => m.name === 'HealthListResponse');
    assert.equal(list?.field?.[0]?.typeName, '.grpc.health.v1.HealthListResponse.StatusesEntry');
  });

  test("is, file by file, byte for byte what Debian's protoc writes from the same files", async (t) => {
    if (!existsSync(PROTOC)) {
      if (process.env['CI']) assert.fail('protobuf-compiler must be installed in CI (.ci/run)');
      return t.skip('protoc is not installed (apt-get install protobuf-compiler)');
    }
    const work = tempDir('cdh-protoc-');
    try {
      const tree = join(work.path, 'tree');
      cpSync(PROTOS_DIR, tree, { recursive: true });
      const extra = thirdPartyProtos();
      for (const input of extra) {
        mkdirSync(dirname(join(tree, input.path)), { recursive: true });
        writeFileSync(join(tree, input.path), readFileSync(input.source));
      }
      const output = join(work.path, 'protoc.binpb');
      await run(PROTOC, [
        `-I${tree}`,
        '--include_imports',
        `--descriptor_set_out=${output}`,
        ...servedProtoFiles(),
        ...extra.map((input) => input.path),
      ]);
      assert.deepEqual(byName(set), byName(readFileSync(output)));
    } finally {
      work.cleanup();
    }
  });
});

describe('reflection over the compiled set', () => {
  const set = readFileSync(DESCRIPTOR_SET);
  const files = byName(set);
  const reflection = new DescriptorSetReflection(set, [...API_SERVICES, 'grpc.health.v1.Health']);
  const ask = (request: ReflectionRequest): ReflectionAnswer | undefined =>
    reflection.answer(request, new Set()).messageResponse;

  test('lists the services it was given, sorted', () => {
    assert.deepEqual(ask({ messageRequest: { case: 'listServices', value: '*' } }), {
      case: 'listServicesResponse',
      value: { service: [...API_SERVICES, 'grpc.health.v1.Health'].sort().map((name) => ({ name })) },
    });
  });

  for (const symbol of [
    'api.SealedSecretService',
    'api.SealedSecretService.UnsealSecret',
    'api.SecureMountRequest',
    '.api.SecureMountRequest.OptionsEntry',
    'api.SecureMountRequest.options',
  ]) {
    test(`file_containing_symbol ${symbol} answers api.proto with the compiler's bytes`, () => {
      const [api, ...rest] = filesOf(
        ask({ messageRequest: { case: 'fileContainingSymbol', value: symbol } }),
      );
      assert.deepEqual(Buffer.from(api as Uint8Array), files.get('api.proto'));
      assert.deepEqual(rest, []);
    });
  }

  test('enum values are found in the scope of their enum, as protoc scopes them', () => {
    const [health] = filesOf(
      ask({
        messageRequest: { case: 'fileContainingSymbol', value: 'grpc.health.v1.HealthCheckResponse.SERVING' },
      }),
    );
    assert.deepEqual(Buffer.from(health as Uint8Array), files.get('grpc/health/v1/health.proto'));
  });

  test('an unknown symbol, file or type is NOT_FOUND naming it', () => {
    assert.deepEqual(errorOf(ask({ messageRequest: { case: 'fileContainingSymbol', value: 'api.Nope' } })), {
      errorCode: 5,
      errorMessage: 'symbol not found: "api.Nope"',
    });
    assert.deepEqual(errorOf(ask({ messageRequest: { case: 'fileByFilename', value: 'nope.proto' } })), {
      errorCode: 5,
      errorMessage: 'file not found: "nope.proto"',
    });
    assert.equal(
      errorOf(ask({ messageRequest: { case: 'allExtensionNumbersOfType', value: 'api.Nope' } })).errorCode,
      5,
    );
    assert.equal(
      errorOf(
        ask({
          messageRequest: {
            case: 'fileContainingExtension',
            value: { containingType: 'api.SecureMountRequest', extensionNumber: 99 },
          },
        }),
      ).errorCode,
      5,
    );
  });

  test('a long unknown name is cut short in the message', () => {
    const { errorMessage } = errorOf(
      ask({ messageRequest: { case: 'fileContainingSymbol', value: 'x'.repeat(100_000) } }),
    );
    assert.ok(errorMessage.length < 250, `${errorMessage.length} characters`);
  });

  test('a request that asks for nothing is INVALID_ARGUMENT', () => {
    assert.equal(errorOf(ask({ host: 'x' })).errorCode, 3);
  });

  test('a file of the set that declares no listed service is not served', () => {
    const healthOnly = new DescriptorSetReflection(set, ['grpc.health.v1.Health']);
    assert.deepEqual(healthOnly.fileNames(), ['grpc/health/v1/health.proto']);
    const answer = healthOnly.answer(
      { messageRequest: { case: 'fileByFilename', value: 'api.proto' } },
      new Set(),
    );
    assert.equal(errorOf(answer.messageResponse).errorCode, 5);
  });

  test('a service missing from the set is refused when the reflection is built', () => {
    assert.throws(
      () => new DescriptorSetReflection(set, ['absent.MissingService']),
      /absent\.MissingService is not in the compiled descriptor set/,
    );
  });

  test('the codec reads a request and writes an answer with the reflection types of the set', () => {
    const codec = new ReflectionCodec();
    const symbol = Buffer.from('api.UnsealSecretInput');
    // host = "h" (field 1), file_containing_symbol (field 4), as protoc-generated clients write them.
    const request = codec.decodeRequest(
      Buffer.concat([Buffer.from([0x0a, 1]), Buffer.from('h'), Buffer.from([0x22, symbol.length]), symbol]),
    );
    assert.equal(request.host, 'h');
    assert.deepEqual(request.messageRequest, {
      case: 'fileContainingSymbol',
      value: 'api.UnsealSecretInput',
    });
    const bytes = codec.encodeResponse(reflection.answer(request, new Set()));
    assert.deepEqual(bytes.subarray(0, 3), Buffer.from([0x0a, 1, 0x68]), 'valid_host first');
    assert.ok(bytes.includes(files.get('api.proto') as Buffer), 'the file bytes as compiled');
    assert.throws(() => codec.decodeRequest(Buffer.from([0x3f, 0xff, 0xff])));
  });
});

describe('reflection of files with imports and extensions', () => {
  const work = tempDir('cdh-reflection-deps-');
  let set: Buffer;
  let reflection: DescriptorSetReflection;

  before(() => {
    const tree = join(work.path, 'tree');
    mkdirSync(join(tree, 'probe'), { recursive: true });
    writeFileSync(
      join(tree, 'probe/types.proto'),
      'syntax = "proto3";\npackage probe;\nimport "google/protobuf/descriptor.proto";\n' +
        'message Question { map<string, int32> by_name = 1; }\n' +
        'extend google.protobuf.MessageOptions { string tag = 50001; }\n',
    );
    writeFileSync(
      join(tree, 'probe.proto'),
      'syntax = "proto3";\npackage probe;\nimport "probe/types.proto";\nimport "google/protobuf/empty.proto";\n' +
        'service Probe { rpc Ask(Question) returns (google.protobuf.Empty); }\n',
    );
    set = compileDescriptorSet({ protosDir: tree, extra: [] });
    reflection = new DescriptorSetReflection(set, ['probe.Probe']);
  });
  after(() => work.cleanup());

  test('a file comes with its imports, transitively, each sent once per stream', () => {
    const sent = new Set<string>();
    const first = reflection.answer(
      { messageRequest: { case: 'fileContainingSymbol', value: 'probe.Probe' } },
      sent,
    );
    assert.deepEqual(
      filesOf(first.messageResponse).map((bytes) => decodeFile(bytes).name),
      ['probe.proto', 'probe/types.proto', 'google/protobuf/empty.proto', 'google/protobuf/descriptor.proto'],
    );
    const again = reflection.answer(
      { messageRequest: { case: 'fileContainingSymbol', value: 'probe.Question' } },
      sent,
    );
    assert.deepEqual(
      filesOf(again.messageResponse).map((bytes) => decodeFile(bytes).name),
      ['probe/types.proto'],
    );
    const dependency = reflection.answer(
      { messageRequest: { case: 'fileByFilename', value: 'google/protobuf/empty.proto' } },
      new Set(),
    );
    assert.deepEqual(
      filesOf(dependency.messageResponse).map((bytes) => Buffer.from(bytes)),
      [byName(set).get('google/protobuf/empty.proto')],
    );
  });

  test('extensions are found by extended type and number', () => {
    const numbers = reflection.answer(
      { messageRequest: { case: 'allExtensionNumbersOfType', value: 'google.protobuf.MessageOptions' } },
      new Set(),
    );
    assert.deepEqual(numbers.messageResponse, {
      case: 'allExtensionNumbersResponse',
      value: { baseTypeName: 'google.protobuf.MessageOptions', extensionNumber: [50001] },
    });
    const file = reflection.answer(
      {
        messageRequest: {
          case: 'fileContainingExtension',
          value: {
            containingType: '.google.protobuf.MessageOptions',
            extensionNumber: 50001,
          },
        },
      },
      new Set(),
    );
    assert.equal(decodeFile(filesOf(file.messageResponse)[0] as Uint8Array).name, 'probe/types.proto');
  });
});
