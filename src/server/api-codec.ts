import type { DescMessage, DescService, MessageShape } from '@bufbuild/protobuf';
import type * as ApiProto from '../gen/api_pb';
import type * as KeyProviderProto from '../gen/keyprovider_pb';
import { atFirstUse } from '../lib/first-use';
import { decodeMessage, encodeMessage, protobuf } from '../lib/protobuf';
import type { ApiMethod } from './api';
import { flatMessageCodec, type FlatLayout, type MessageCodec } from './flat-message';

export type { MessageCodec } from './flat-message';

/**
 * The API's messages on the wire, for both transports: the types protoc-gen-es generates from
 * protos/api.proto and protos/keyprovider.proto (src/gen). Field names are the generated ones
 * (`ResourcePath`, `imageUrl`); decoded bytes fields are Buffers over the request's memory.
 *
 * The flat messages (FLAT_API_LAYOUTS: every method's but SecureMount's request, whose map and
 * repeated fields stay with the runtime) are read and written by src/server/flat-message.ts, which
 * needs neither the generated files nor @bufbuild/protobuf's main entry (its reflective runtime
 * costs microseconds per call, and loading it 1.5-2 MB of RSS). For the others, the generated
 * files are required at their first call, not at start-up: loading them builds every descriptor
 * of the two files (and @bufbuild/protobuf's boot of descriptor.proto), which registering the
 * services with grpc-js and ttrpc does not need. That is what API_METHOD_MESSAGES is for;
 * test/unit/server/api-codec.test.ts holds it to the generated services, and
 * test/unit/server/flat-message.test.ts the layouts to the generated messages.
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

/** The API's flat messages (singular string / bytes / enum fields), with protoc-gen-es's field names. */
export const FLAT_API_LAYOUTS: readonly FlatLayout[] = [
  { typeName: 'api.UnsealSecretInput', fields: [{ number: 1, localName: 'secret', kind: 'bytes' }] },
  { typeName: 'api.UnsealSecretOutput', fields: [{ number: 1, localName: 'plaintext', kind: 'bytes' }] },
  {
    typeName: 'api.GetResourceRequest',
    fields: [{ number: 1, localName: 'ResourcePath', kind: 'string' }],
  },
  { typeName: 'api.GetResourceResponse', fields: [{ number: 1, localName: 'Resource', kind: 'bytes' }] },
  { typeName: 'api.SecureMountResponse', fields: [] },
  {
    typeName: 'api.ImagePullRequest',
    fields: [
      { number: 1, localName: 'imageUrl', kind: 'string' },
      { number: 2, localName: 'bundlePath', kind: 'string' },
    ],
  },
  {
    typeName: 'api.ImagePullResponse',
    fields: [{ number: 1, localName: 'manifestDigest', kind: 'string' }],
  },
  {
    typeName: 'keyprovider.KeyProviderKeyWrapProtocolInput',
    fields: [{ number: 1, localName: 'KeyProviderKeyWrapProtocolInput', kind: 'bytes' }],
  },
  {
    typeName: 'keyprovider.KeyProviderKeyWrapProtocolOutput',
    fields: [{ number: 1, localName: 'KeyProviderKeyWrapProtocolOutput', kind: 'bytes' }],
  },
];

const flatLayouts = new Map(FLAT_API_LAYOUTS.map((layout) => [layout.typeName, layout]));

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

/** Decodes an API message through the runtime (src/lib/protobuf.ts: bytes fields as Buffer views). */
export const decodeApiMessage: (type: DescMessage, bytes: Uint8Array) => Record<string, unknown> =
  decodeMessage;

/** Encodes a plain object of an API message's fields (generated names); others are ignored. */
export const encodeApiMessage: (type: DescMessage, message: object) => Uint8Array = encodeMessage;

/** The codec of a type at hand. */
export function messageCodec(type: DescMessage): MessageCodec {
  return {
    typeName: type.typeName,
    decode: (bytes) => decodeApiMessage(type, bytes),
    encode: (message) => encodeApiMessage(type, message),
  };
}

/**
 * The codec of an API message by its full name: the flat codec for a flat message, else the
 * runtime's, its descriptor looked up at the first call.
 */
export function apiMessageCodec(typeName: string): MessageCodec {
  const layout = flatLayouts.get(typeName);
  if (layout !== undefined) return flatMessageCodec(layout);
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
