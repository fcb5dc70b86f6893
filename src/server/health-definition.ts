import type * as grpc from '@grpc/grpc-js';
import type { DescMessage, MessageShape } from '@bufbuild/protobuf';
import type * as HealthProto from '../gen/health/v1/health_pb';
import { atFirstUse } from '../lib/first-use';
import { bufferView } from '../lib/bytes';
import { decodeMessage, encodeMessage } from '../lib/protobuf';
import { methodLocalName } from './api-codec';
import { flatMessageCodec, type FlatLayout, type MessageCodec } from './flat-message';

/**
 * grpc.health.v1.Health as a grpc-js service definition, from the protoc-gen-es types of
 * grpc-health-check's own health.proto (src/gen/health/v1): what the bundles give
 * grpc-health-check when it asks `@grpc/proto-loader` for that file (scripts/bundle-health.ts),
 * so that neither proto-loader nor protobufjs is loaded at start-up. The tsc output (dist/src)
 * keeps the real proto-loader.
 *
 * Messages are in proto-loader's object form for grpc-health-check's options (keepCase, enums as
 * their names, defaults filled in): `{ service: '' }`, `{ status: 'SERVING' }`, `{ statuses: {} }`.
 * Serialising is as lenient as protobufjs's fromObject (an unknown status name is UNKNOWN, a
 * status number is taken as it is, a service that is not a string goes through String()).
 * Each method has what grpc-js reads (path, stream flags, (de)serialisers, originalName), not
 * proto-loader's requestType / responseType / options (descriptors for @grpc/reflection).
 *
 * Two differences from proto-loader, both on the wire only (test/unit/server/health-definition):
 *   - a field at its default ('' or UNKNOWN) is not written (as protoc's generated code does),
 *     where protobufjs writes it out (`0a 00`, `08 00`); each side reads the other's bytes alike;
 *   - malformed bytes always throw (grpc-js then answers INTERNAL "Error deserializing request",
 *     as it does when protobufjs throws): protobufjs reads some of them as whatever is there (a
 *     string running past the end, wire type 7, a string that is not UTF-8).
 */

/**
 * Check and Watch's messages are flat (src/server/flat-message.ts): serving them loads neither
 * the generated file nor @bufbuild/protobuf's main entry. List's map keeps the runtime: the
 * generated file is required at its first call (loading it builds its descriptors and boots
 * @bufbuild/protobuf's descriptor.proto); the definition itself is made from HEALTH_METHODS.
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const generated = atFirstUse(() => require('../gen/health/v1/health_pb') as typeof HealthProto);

/** Check and Watch's messages (test/unit/server/flat-message holds them to health_pb). */
export const FLAT_HEALTH_LAYOUTS: readonly FlatLayout[] = [
  {
    typeName: 'grpc.health.v1.HealthCheckRequest',
    fields: [{ number: 1, localName: 'service', kind: 'string' }],
  },
  {
    typeName: 'grpc.health.v1.HealthCheckResponse',
    fields: [{ number: 1, localName: 'status', kind: 'enum' }],
  },
];

/** HealthCheckResponse.ServingStatus, as health.proto numbers it (held to health_pb by its test). */
export const SERVING_STATUS_NUMBERS: Readonly<Record<string, number>> = {
  UNKNOWN: 0,
  SERVING: 1,
  NOT_SERVING: 2,
  SERVICE_UNKNOWN: 3,
};

/** The file grpc-health-check loads, relative to its includeDirs. */
export const HEALTH_PROTO_FILE = 'health/v1/health.proto';
export const HEALTH_SERVICE_NAME = 'grpc.health.v1.Health';

/** The proto-loader options this object form stands for (others are not imitated). */
export interface HealthLoadOptions {
  readonly keepCase?: boolean;
  readonly enums?: unknown;
  readonly defaults?: boolean;
  readonly [option: string]: unknown;
}

type ObjectForm = Record<string, unknown>;

/** The wire's bytes ↔ a message's fields (generated names), and those ↔ proto-loader's object form. */
interface ObjectCodec {
  readonly encode: (fields: object) => Uint8Array;
  readonly decode: (bytes: Uint8Array) => unknown;
  /** proto-loader's object form → the message's fields. */
  readonly fromObject: (object: ObjectForm) => object;
  /** The decoded message (what `decode` gives: each codec takes its own) → the object form. */
  readonly toObject: (message: never) => ObjectForm;
}

const statusByName = new Map(Object.entries(SERVING_STATUS_NUMBERS));
const statusByNumber = new Map(Object.entries(SERVING_STATUS_NUMBERS).map(([name, n]) => [n, name]));

/** An enum value as protobufjs's fromObject takes it: its name or a number (an int32). */
function statusNumber(value: unknown): number {
  if (typeof value === 'number') return value | 0;
  return (typeof value === 'string' ? statusByName.get(value) : undefined) ?? 0;
}

/** Its name, or the number itself for a value health.proto does not name (enums: String). */
function statusName(status: number): string | number {
  return statusByNumber.get(status) ?? status;
}

function checkResponseObject(message: { readonly status: number }): ObjectForm {
  return { status: statusName(message.status) };
}

function checkResponseFields(object: ObjectForm): { status: number } {
  return { status: statusNumber(object['status']) };
}

/** proto-loader's map form: a plain object whose values are message objects. */
function statusesFields(value: unknown): Record<string, { status: number }> {
  if (value === undefined || value === null) return {};
  const notObject = (v: unknown): boolean => typeof v !== 'object' || v === null;
  const error = (): TypeError =>
    new TypeError('.grpc.health.v1.HealthListResponse.statuses: object expected');
  if (notObject(value)) throw error();
  return Object.fromEntries(
    Object.entries(value as ObjectForm).map(([service, status]) => {
      if (notObject(status)) throw error();
      return [service, checkResponseFields(status as ObjectForm)];
    }),
  );
}

/** The wire through the runtime, for List's messages: `schema` required at the first call. */
function generatedCodec(schema: () => DescMessage): Pick<ObjectCodec, 'encode' | 'decode'> {
  return {
    encode: (fields) => encodeMessage(schema(), fields),
    decode: (bytes) => decodeMessage(schema(), bytes),
  };
}

const [checkRequest, checkResponse] = FLAT_HEALTH_LAYOUTS.map(flatMessageCodec) as [
  MessageCodec,
  MessageCodec,
];

const CODECS: ReadonlyMap<string, ObjectCodec> = new Map<string, ObjectCodec>([
  [
    'grpc.health.v1.HealthCheckRequest',
    {
      encode: checkRequest.encode,
      decode: checkRequest.decode,
      fromObject: (object) => ({ service: object['service'] == null ? '' : String(object['service']) }),
      toObject: (message: { readonly service: string }) => ({ service: message.service }),
    },
  ],
  [
    'grpc.health.v1.HealthCheckResponse',
    {
      encode: checkResponse.encode,
      decode: checkResponse.decode,
      fromObject: checkResponseFields,
      toObject: checkResponseObject,
    },
  ],
  [
    'grpc.health.v1.HealthListRequest',
    {
      ...generatedCodec(() => generated().HealthListRequestSchema),
      fromObject: () => ({}),
      toObject: () => ({}),
    },
  ],
  [
    'grpc.health.v1.HealthListResponse',
    {
      ...generatedCodec(() => generated().HealthListResponseSchema),
      fromObject: (object) => ({ statuses: statusesFields(object['statuses']) }),
      toObject: (message: MessageShape<typeof HealthProto.HealthListResponseSchema>) => ({
        statuses: Object.fromEntries(
          Object.entries(message.statuses).map(([service, status]) => [service, checkResponseObject(status)]),
        ),
      }),
    },
  ],
]);

/** health.proto's methods, in its order (test/unit/server/health-definition holds them to it). */
const HEALTH_METHODS = [
  {
    name: 'Check',
    request: 'grpc.health.v1.HealthCheckRequest',
    response: 'grpc.health.v1.HealthCheckResponse',
  },
  {
    name: 'Watch',
    request: 'grpc.health.v1.HealthCheckRequest',
    response: 'grpc.health.v1.HealthCheckResponse',
    responseStream: true,
  },
  {
    name: 'List',
    request: 'grpc.health.v1.HealthListRequest',
    response: 'grpc.health.v1.HealthListResponse',
  },
] as const;

function codecOf(typeName: string): ObjectCodec {
  const codec = CODECS.get(typeName);
  if (codec === undefined) throw new Error(`health-definition: no object form for ${typeName}`);
  return codec;
}

function serializer(typeName: string): (object: ObjectForm) => Buffer {
  const codec = codecOf(typeName);
  const name = typeName.slice(typeName.lastIndexOf('.') + 1);
  return (object: unknown) => {
    if (Array.isArray(object))
      throw new Error(
        `Failed to serialize message: expected object with ${name} structure, got array instead`,
      );
    if (typeof object !== 'object' || object === null) throw new TypeError(`.${typeName}: object expected`);
    return bufferView(codec.encode(codec.fromObject(object as ObjectForm)));
  };
}

/** Throws on bytes that are not a valid message (grpc-js answers INTERNAL). */
function deserializer(typeName: string): (bytes: Buffer) => ObjectForm {
  const codec = codecOf(typeName);
  return (bytes) => codec.toObject(codec.decode(bytes) as never);
}

/** Check (unary), Watch (server streaming) and List (unary), as proto-loader defines them. */
export function healthServiceDefinition(): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<ObjectForm, ObjectForm>> = {};
  for (const method of HEALTH_METHODS) {
    definition[method.name] = {
      path: `/${HEALTH_SERVICE_NAME}/${method.name}`,
      requestStream: false,
      responseStream: 'responseStream' in method,
      requestSerialize: serializer(method.request),
      requestDeserialize: deserializer(method.request),
      responseSerialize: serializer(method.response),
      responseDeserialize: deserializer(method.response),
      originalName: methodLocalName(method.name),
    };
  }
  return definition as grpc.ServiceDefinition;
}

/**
 * `@grpc/proto-loader`'s loadSync for the one call grpc-health-check makes: its health.proto
 * with keepCase, enums as String and defaults. Only the service is returned (grpc-health-check
 * reads nothing else); any other file or object form is refused.
 */
export function loadSync(
  file: string | string[],
  options: HealthLoadOptions = {},
): { [HEALTH_SERVICE_NAME]: grpc.ServiceDefinition } {
  if (file !== HEALTH_PROTO_FILE)
    throw new Error(
      `health-definition stands in for @grpc/proto-loader only for ${HEALTH_PROTO_FILE}, not ${JSON.stringify(file)}`,
    );
  if (options.keepCase !== true || options.enums !== String || options.defaults !== true)
    throw new Error(
      `health-definition gives ${HEALTH_PROTO_FILE} only in the object form of { keepCase: true, enums: String, defaults: true }`,
    );
  return { [HEALTH_SERVICE_NAME]: healthServiceDefinition() };
}
