import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation, service as protoLoaderService } from 'grpc-health-check';
import { HEALTH_PROTO_FILE, HEALTH_SERVICE_NAME, loadSync } from '../../../src/server/health-definition';

/**
 * src/server/health-definition (what the bundles give grpc-health-check for `@grpc/proto-loader`)
 * against proto-loader's own definition, as grpc-health-check loads it (this process runs dist/,
 * where grpc-health-check still uses the real proto-loader).
 */

type Definition = grpc.ServiceDefinition;
type AnyMethod = grpc.MethodDefinition<object, object>;

const OPTIONS = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };
const ours: Definition = loadSync(HEALTH_PROTO_FILE, { ...OPTIONS, includeDirs: ['/nowhere'] })[
  HEALTH_SERVICE_NAME
];
const real = protoLoaderService as unknown as Definition;
const method = (definition: Definition, name: string): AnyMethod => definition[name] as AnyMethod;
const hex = (bytes: Buffer): string => bytes.toString('hex');
const STATUSES = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];
const CHECK_AND_WATCH = ['Check', 'Watch'];

test('the same methods, paths, stream flags and names as proto-loader', () => {
  assert.deepEqual(Object.keys(ours), Object.keys(real));
  assert.deepEqual(Object.keys(ours), ['Check', 'Watch', 'List']);
  for (const name of Object.keys(real)) {
    const [a, b] = [method(ours, name), method(real, name)];
    assert.equal(a.path, b.path);
    assert.equal(a.path, `/grpc.health.v1.Health/${name}`);
    assert.equal(a.requestStream, b.requestStream);
    assert.equal(a.responseStream, b.responseStream);
    assert.equal(a.originalName, b.originalName);
  }
  assert.equal(method(ours, 'Watch').responseStream, true);
  assert.equal(method(ours, 'Check').responseStream, false);
});

for (const name of CHECK_AND_WATCH) {
  describe(`${name}: serialised as proto-loader does`, () => {
    const [a, b] = [method(ours, name), method(real, name)];
    const requests = [
      { service: 'api.SealedSecretService' },
      { service: 'x'.repeat(300) },
      { service: 'ü/服务'.repeat(20_000) },
      { service: 42 },
    ];
    test('requests: identical bytes', () => {
      for (const request of requests)
        assert.equal(hex(a.requestSerialize(request)), hex(b.requestSerialize(request)));
    });
    test('responses: identical bytes for every status but UNKNOWN, by name and by number', () => {
      const objects = [...STATUSES.slice(1), 1, 2, 3, 7, -1, 'BOGUS'].map((status) => ({ status }));
      for (const response of objects)
        assert.equal(
          hex(a.responseSerialize(response)),
          hex(b.responseSerialize(response)),
          JSON.stringify(response),
        );
    });
    test('a default value is not written (protobufjs writes it): each reads the other alike', () => {
      const cases: Array<[object, string, 'request' | 'response']> = [
        [{ service: '' }, '0a00', 'request'],
        [{ status: 'UNKNOWN' }, '0800', 'response'],
        [{ status: 0 }, '0800', 'response'],
      ];
      for (const [object, protobufjs, kind] of cases) {
        const [serialize, deserialize] =
          kind === 'request'
            ? (['requestSerialize', 'requestDeserialize'] as const)
            : (['responseSerialize', 'responseDeserialize'] as const);
        assert.equal(hex(a[serialize](object)), '');
        assert.equal(hex(b[serialize](object)), protobufjs);
        for (const bytes of [a[serialize](object), b[serialize](object)])
          assert.deepEqual(a[deserialize](bytes), b[deserialize](bytes));
      }
    });
    test('absent fields are UNKNOWN / empty in both', () => {
      assert.equal(hex(a.requestSerialize({})), hex(b.requestSerialize({})));
      assert.deepEqual(a.requestDeserialize(Buffer.alloc(0)), { service: '' });
      assert.deepEqual(a.responseDeserialize(Buffer.alloc(0)), { status: 'UNKNOWN' });
    });
    test('what is not an object is refused by both', () => {
      for (const bad of [null, [], 'x'] as unknown as object[]) {
        assert.throws(() => a.requestSerialize(bad));
        assert.throws(() => b.requestSerialize(bad));
      }
    });
  });

  describe(`${name}: deserialised as proto-loader does`, () => {
    const [a, b] = [method(ours, name), method(real, name)];
    const same = (kind: 'requestDeserialize' | 'responseDeserialize', bytes: string): void => {
      const buffer = Buffer.from(bytes, 'hex');
      const decoded = a[kind](buffer);
      assert.deepEqual(decoded, b[kind](buffer), bytes);
      assert.equal(Object.getPrototypeOf(decoded), Object.prototype);
    };
    test('requests: defaults omitted, unknown fields, the last of a repeated field', () => {
      const long = Buffer.from('y'.repeat(200)).toString('hex');
      const unknown = ['1a03616263', '2896012001', '1501020304', '190102030405060708'];
      for (const bytes of [
        '',
        '0a0161',
        `0ac801${long}`,
        '0a01610a0162',
        ...unknown.map((u) => `${u}0a0162`),
      ])
        same('requestDeserialize', bytes);
    });
    test('responses: every status, an unnamed number, unknown fields', () => {
      for (const bytes of [
        '',
        '0800',
        '0801',
        '0802',
        '0803',
        '0807',
        '08ffffffffffffffffff01',
        '08011a03616263',
      ])
        same('responseDeserialize', bytes);
    });
    test('malformed bytes: both throw (grpc-js answers INTERNAL)', () => {
      for (const bytes of ['08', 'ff', '0b', '0a']) {
        const buffer = Buffer.from(bytes, 'hex');
        assert.throws(() => a.requestDeserialize(buffer), bytes);
        assert.throws(() => b.requestDeserialize(buffer), bytes);
      }
    });
    test('malformed bytes protobufjs reads anyway (documented): ours throws', () => {
      // A string running past the end, wire type 7, a string that is not UTF-8.
      for (const bytes of ['0a05ab', '0f01', '0a02c328']) {
        const buffer = Buffer.from(bytes, 'hex');
        assert.throws(() => a.requestDeserialize(buffer), bytes);
        assert.equal(typeof (b.requestDeserialize(buffer) as { service: unknown }).service, 'string');
      }
    });
  });
}

test('List: the map of statuses both ways', () => {
  const [a, b] = [method(ours, 'List'), method(real, 'List')];
  const statuses = {
    '': { status: 'SERVING' },
    'api.SealedSecretService': { status: 'NOT_SERVING' },
    z: { status: 3 },
  };
  assert.equal(hex(a.responseSerialize({ statuses })), hex(b.responseSerialize({ statuses })));
  const bytes = b.responseSerialize({ statuses });
  assert.deepEqual(a.responseDeserialize(bytes), b.responseDeserialize(bytes));
  assert.deepEqual(a.responseDeserialize(Buffer.alloc(0)), { statuses: {} });
  assert.deepEqual(b.responseDeserialize(Buffer.alloc(0)), { statuses: {} });
  assert.equal(hex(a.requestSerialize({})), hex(b.requestSerialize({})));
  assert.throws(() => a.responseSerialize({ statuses: { x: 3 } }), /object expected/);
});

test('loadSync refuses any other file or object form', () => {
  assert.throws(() => loadSync('grpc/health/v1/health.proto', OPTIONS), /only for health\/v1\/health\.proto/);
  assert.throws(() => loadSync(['health/v1/health.proto'], OPTIONS), /only for/);
  assert.throws(() => loadSync(HEALTH_PROTO_FILE, { ...OPTIONS, enums: Number }), /object form/);
  assert.throws(() => loadSync(HEALTH_PROTO_FILE, { ...OPTIONS, keepCase: false }), /object form/);
  assert.throws(() => loadSync(HEALTH_PROTO_FILE, { ...OPTIONS, defaults: false }), /object form/);
});

describe("grpc-health-check's HealthImplementation served through each definition", () => {
  const servers: grpc.Server[] = [];
  const targets = new Map<Definition, string>();
  before(async () => {
    for (const definition of [ours, real]) {
      const server = new grpc.Server();
      const health = new HealthImplementation({ '': 'SERVING', 'api.SealedSecretService': 'NOT_SERVING' });
      // addToServer hands its handlers to `definition` instead of its own module's.
      health.addToServer({
        addService: (_own: unknown, handlers: grpc.UntypedServiceImplementation) =>
          server.addService(definition, handlers),
      } as unknown as grpc.Server);
      const port = await new Promise<number>((resolve, reject) =>
        server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
          e ? reject(e) : resolve(p),
        ),
      );
      servers.push(server);
      targets.set(definition, `127.0.0.1:${port}`);
    }
  });
  after(() => {
    for (const server of servers) server.forceShutdown();
  });

  /** One call with raw bytes both ways: [status code, response bytes as hex]. */
  const raw = (definition: Definition, path: string, request: Buffer): Promise<[number, string]> => {
    const client = new grpc.Client(targets.get(definition) as string, grpc.credentials.createInsecure());
    const pass = (bytes: Buffer): Buffer => bytes;
    return new Promise((resolve) => {
      const stream = path.endsWith('Watch');
      if (stream) {
        const call = client.makeServerStreamRequest(path, pass, pass, request);
        call.on('data', (bytes: Buffer) => {
          call.cancel();
          client.close();
          resolve([0, hex(bytes)]);
        });
        call.on('error', (e: grpc.ServiceError) =>
          e.code === grpc.status.CANCELLED ? undefined : resolve([e.code, '']),
        );
        return;
      }
      client.makeUnaryRequest(path, pass, pass, request, (e, bytes) => {
        client.close();
        resolve(e ? [e.code, ''] : [0, hex(bytes as Buffer)]);
      });
    });
  };

  test('Check and Watch answer alike, a malformed request INTERNAL from both', async () => {
    const cases: Array<[string, string]> = [
      ['Check', ''],
      ['Check', Buffer.from('\n\x17api.SealedSecretService').toString('hex')],
      ['Check', '0a0178'],
      ['Watch', ''],
      ['Watch', '0a0178'],
      ['Check', '08'],
      ['Watch', 'ff'],
    ];
    for (const [name, request] of cases) {
      const path = `/grpc.health.v1.Health/${name}`;
      const answers = await Promise.all([ours, real].map((d) => raw(d, path, Buffer.from(request, 'hex'))));
      assert.deepEqual(answers[0], answers[1], `${name} ${request}`);
    }
    assert.deepEqual(await raw(ours, '/grpc.health.v1.Health/Check', Buffer.alloc(0)), [0, '0801']);
    assert.deepEqual(await raw(ours, '/grpc.health.v1.Health/Watch', Buffer.from('0a0178', 'hex')), [
      0,
      '0803',
    ]);
    assert.deepEqual(await raw(ours, '/grpc.health.v1.Health/Check', Buffer.from('08', 'hex')), [
      grpc.status.INTERNAL,
      '',
    ]);
  });
});
