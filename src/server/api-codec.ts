import type { DescMessage, DescService, MessageInitShape, MessageShape } from '@bufbuild/protobuf';
import type * as ApiProto from '../gen/api_pb';
import type * as KeyProviderProto from '../gen/keyprovider_pb';
import { atFirstUse } from '../lib/first-use';
import { protobuf } from '../lib/protobuf';
import type { ApiMethod } from './api';

/**
 * The API's messages on the wire, for both transports: the types protoc-gen-es generates from
 * protos/api.proto and protos/keyprovider.proto (src/gen), with the @bufbuild/protobuf runtime.
 * Field names are the generated ones (`ResourcePath`, `imageUrl`); decoded bytes fields are
 * Buffers over the request's memory.
 *
 * The generated files are required at the first call, not at start-up: loading them builds
 * every descriptor of the two files (and @bufbuild/protobuf's boot of descriptor.proto), which
 * registering the services with grpc-js and ttrpc does not need. That is what API_METHOD_MESSAGES
 * is for; test/unit/server/api-codec.test.ts holds it to the generated services.
 */

/** A generated message's fields, without the runtime's `$typeName` / `$unknown`. */
export type MessageFields<S extends DescMessage> = Omit<MessageShape<S>, '$typeName' | '$unknown'>;

/** Each method of the API's services (served or refused), in the protos' order: its messages' full names. */
export const API_METHOD_MESSAGES: {
  readonly [M in ApiMethod]: { readonly request: string; readonly response: string };
} = {
  'api.SealedSecretService/UnsealSecret': {
    request: 'api.UnsealSecretInput',
    response: 'api.UnsealSecretOutput',
  },
  'api.GetResourceService/GetResource': {
    request: 'api.GetResourceRequest',
    response: 'api.GetResourceResponse',
  },
  'api.SecureMountService/SecureMount': {
    request: 'api.SecureMountRequest',
    response: 'api.SecureMountResponse',
  },
  'api.ImagePullService/PullImage': { request: 'api.ImagePullRequest', response: 'api.ImagePullResponse' },
  'keyprovider.KeyProviderService/WrapKey': {
    request: 'keyprovider.KeyProviderKeyWrapProtocolInput',
    response: 'keyprovider.KeyProviderKeyWrapProtocolOutput',
  },
  'keyprovider.KeyProviderService/UnWrapKey': {
    request: 'keyprovider.KeyProviderKeyWrapProtocolInput',
    response: 'keyprovider.KeyProviderKeyWrapProtocolOutput',
  },
};

/** One message type's decoding and encoding. */
export interface MessageCodec {
  /** Its full name, e.g. `api.UnsealSecretInput`. */
  readonly typeName: string;
  /** Absent fields get their defaults; throws on malformed bytes. */
  decode(bytes: Uint8Array): Record<string, unknown>;
  /** A plain object of the message's fields (generated names); others are ignored. */
  encode(message: object): Uint8Array;
}

/** How one method (`api.SealedSecretService/UnsealSecret`) is decoded and encoded. */
export interface MethodCodec {
  readonly request: MessageCodec;
  readonly response: MessageCodec;
}

/** One unary method of a service, as the transports register it. */
export interface ServiceMethod extends MethodCodec {
  readonly service: string;
  /** As in the proto: `UnsealSecret`. */
  readonly name: string;
  /** As protoc-gen-es names it: `unsealSecret`. */
  readonly localName: string;
}

/** A method's name as protoc-gen-es and proto-loader give it (`UnsealSecret` → `unsealSecret`). */
export function methodLocalName(name: string): string {
  return name.charAt(0).toLowerCase() + name.slice(1);
}

/** Decodes a message (absent fields get their defaults); throws on malformed bytes. */
export function decodeApiMessage(type: DescMessage, bytes: Uint8Array): Record<string, unknown> {
  const { fromBinary, ScalarType } = protobuf();
  const message = fromBinary(type, bytes) as unknown as Record<string, unknown>;
  for (const field of type.fields) {
    const value = message[field.localName];
    if (field.fieldKind === 'scalar' && field.scalar === ScalarType.BYTES && value instanceof Uint8Array) {
      message[field.localName] = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    }
  }
  return message;
}

/** Encodes a plain object of the message's fields (generated names); others are ignored. */
export function encodeApiMessage(type: DescMessage, message: object): Uint8Array {
  const { create, toBinary } = protobuf();
  return toBinary(type, create(type, message as MessageInitShape<DescMessage>));
}

/** The codec of a type at hand. */
export function messageCodec(type: DescMessage): MessageCodec {
  return {
    typeName: type.typeName,
    decode: (bytes) => decodeApiMessage(type, bytes),
    encode: (message) => encodeApiMessage(type, message),
  };
}

/** The codec of an API message by its full name, its descriptor looked up at the first call. */
function apiMessageCodec(typeName: string): MessageCodec {
  const type = atFirstUse(() => apiMessageType(typeName));
  return {
    typeName,
    decode: (bytes) => decodeApiMessage(type(), bytes),
    encode: (message) => encodeApiMessage(type(), message),
  };
}

/** `service/method` → its codec, for every method of the API (no descriptor is loaded yet). */
export function apiMethodCodecs(): ReadonlyMap<ApiMethod, MethodCodec> {
  const codecs = new Map<ApiMethod, MethodCodec>();
  for (const [method, { request, response }] of Object.entries(API_METHOD_MESSAGES)) {
    codecs.set(method as ApiMethod, {
      request: apiMessageCodec(request),
      response: apiMessageCodec(response),
    });
  }
  return codecs;
}

/** The methods of the API's services, by service (`api.SealedSecretService` → its methods). */
export function apiServiceMethods(): ReadonlyMap<string, readonly ServiceMethod[]> {
  const services = new Map<string, ServiceMethod[]>();
  for (const [method, codec] of apiMethodCodecs()) {
    const [service, name] = method.split('/') as [string, string];
    const methods = services.get(service) ?? [];
    methods.push({ service, name, localName: methodLocalName(name), ...codec });
    services.set(service, methods);
  }
  return services;
}

/** A generated service's methods (what the clients and the keyprovider program register). */
export function generatedServiceMethods(service: DescService): ServiceMethod[] {
  return service.methods.map((method) => ({
    service: service.typeName,
    name: method.name,
    localName: method.localName,
    request: messageCodec(method.input),
    response: messageCodec(method.output),
  }));
}

const registry = atFirstUse(() => {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { file_api } = require('../gen/api_pb') as typeof ApiProto;
  const { file_keyprovider } = require('../gen/keyprovider_pb') as typeof KeyProviderProto;
  /* eslint-enable @typescript-eslint/no-require-imports */
  return protobuf().createRegistry(file_api, file_keyprovider);
});

/** An API message type by its full name, e.g. `api.UnsealSecretInput`. */
export function apiMessageType(name: string): DescMessage {
  const type = registry().getMessage(name);
  if (type === undefined) throw new Error(`no API message ${name}`);
  return type;
}
