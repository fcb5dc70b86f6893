import * as protobuf from 'protobufjs';
import { API_METHODS, type ApiMethod } from '../api';
import { PROTOS_DIR } from '../../package-info';
import { loadProtos } from './protos';

export {
  decodeRequestEnvelope,
  decodeResponseEnvelope,
  encodeRequestEnvelope,
  encodeResponseEnvelope,
  type TtrpcRequest,
  type TtrpcRequestInit,
  type TtrpcResponse,
  type TtrpcStatus,
} from './envelopes';

/** How one API method is decoded and encoded. */
export interface ApiRoute {
  readonly method: ApiMethod;
  readonly requestType: protobuf.Type;
  readonly responseType: protobuf.Type;
}

let loadedRoot: protobuf.Root | undefined;

/**
 * A bounds-checking reader. protobufjs's Buffer reader (what `decode(buffer)` picks for a Buffer)
 * silently truncates a string field whose length runs past the end; the plain reader throws.
 */
function strictReader(bytes: Uint8Array): protobuf.Reader {
  return new protobuf.Reader(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length));
}

/** A Buffer over the same memory (the plain reader yields Uint8Array views). */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

/** protos/api.proto and protos/keyprovider.proto in one root, loaded once. */
export function ttrpcProtoRoot(): protobuf.Root {
  if (!loadedRoot) {
    loadedRoot = loadProtos(['api.proto', 'keyprovider.proto'], [PROTOS_DIR]);
  }
  return loadedRoot;
}

/** `api.SealedSecretService/UnsealSecret` → its route, for every method of the API. */
export function apiRoutes(): ReadonlyMap<string, ApiRoute> {
  const root = ttrpcProtoRoot();
  const routes = new Map<string, ApiRoute>();
  for (const method of API_METHODS) {
    const [serviceName, methodName] = method.split('/') as [string, string];
    const definition = root.lookupService(serviceName).methods[methodName];
    if (!definition?.resolvedRequestType || !definition.resolvedResponseType) {
      throw new Error(`protos/api.proto has no method ${method}`);
    }
    routes.set(method, {
      method,
      requestType: definition.resolvedRequestType,
      responseType: definition.resolvedResponseType,
    });
  }
  return routes;
}

/**
 * Decodes a method's input into the plain object the dispatcher takes: only the fields present
 * on the wire (absent ones are left to the dispatcher's defaults), bytes as Buffers.
 */
export function decodeApiMessage(type: protobuf.Type, bytes: Uint8Array): Record<string, unknown> {
  const message = type.toObject(type.decode(strictReader(bytes)), { defaults: false }) as Record<
    string,
    unknown
  >;
  for (const [field, value] of Object.entries(message)) {
    if (value instanceof Uint8Array) message[field] = asBuffer(value);
  }
  return message;
}

export function encodeApiMessage(type: protobuf.Type, message: object): Uint8Array {
  const problem = type.verify(message);
  if (problem) throw new Error(`${type.fullName}: ${problem}`);
  return type.encode(message).finish();
}

/** Test and tool helper: an api.* message type by its name, e.g. `api.UnsealSecretInput`. */
export function apiMessageType(name: string): protobuf.Type {
  return ttrpcProtoRoot().lookupType(name);
}
