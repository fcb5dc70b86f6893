import * as path from 'node:path';
import * as protobuf from 'protobufjs';
import { API_METHODS, type ApiMethod } from '../api';
import { PROTOS_DIR } from '../../package-info';
import { loadProtos } from './protos';

/** A ttrpc Request envelope, decoded. */
export interface TtrpcRequest {
  readonly service: string;
  readonly method: string;
  readonly payload: Buffer;
  /** Nanoseconds; 0 when the caller set no deadline. */
  readonly timeoutNano: number;
  readonly metadata: ReadonlyArray<{ readonly key: string; readonly value: string }>;
}

export interface TtrpcStatus {
  readonly code: number;
  readonly message: string;
}

/** A ttrpc Response envelope. */
export interface TtrpcResponse {
  readonly status: TtrpcStatus;
  readonly payload: Uint8Array;
}

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

/** protos/api.proto, protos/keyprovider.proto and protos/ttrpc/ttrpc.proto in one root, loaded once. */
export function ttrpcProtoRoot(): protobuf.Root {
  if (!loadedRoot) {
    loadedRoot = loadProtos(
      ['api.proto', 'keyprovider.proto', 'ttrpc.proto'],
      [PROTOS_DIR, path.join(PROTOS_DIR, 'ttrpc')],
    );
  }
  return loadedRoot;
}

function envelopeType(name: 'Request' | 'Response'): protobuf.Type {
  return ttrpcProtoRoot().lookupType(`ttrpc.${name}`);
}

/** Throws (a protobufjs error) when `data` is not a Request message. */
export function decodeRequestEnvelope(data: Uint8Array): TtrpcRequest {
  const type = envelopeType('Request');
  const fields = type.toObject(type.decode(strictReader(data)), { longs: Number, defaults: true }) as {
    service: string;
    method: string;
    payload: Uint8Array;
    timeout_nano: number;
    metadata: Array<{ key: string; value: string }>;
  };
  return {
    service: fields.service,
    method: fields.method,
    // Absent bytes default to a plain array in protobufjs.
    payload: fields.payload instanceof Uint8Array ? asBuffer(fields.payload) : Buffer.alloc(0),
    timeoutNano: fields.timeout_nano,
    metadata: fields.metadata,
  };
}

export function encodeRequestEnvelope(request: Partial<TtrpcRequest>): Uint8Array {
  return envelopeType('Request')
    .encode({
      service: request.service ?? '',
      method: request.method ?? '',
      payload: request.payload ?? Buffer.alloc(0),
      timeout_nano: request.timeoutNano ?? 0,
      metadata: request.metadata ?? [],
    })
    .finish();
}

export function encodeResponseEnvelope(response: TtrpcResponse): Uint8Array {
  const message: Record<string, unknown> = {
    status:
      response.status.code === 0 ? {} : { code: response.status.code, message: response.status.message },
  };
  if (response.payload.length > 0) message.payload = response.payload;
  return envelopeType('Response').encode(message).finish();
}

export function decodeResponseEnvelope(data: Uint8Array): TtrpcResponse {
  const type = envelopeType('Response');
  const fields = type.toObject(type.decode(strictReader(data)), { defaults: true }) as {
    status: { code?: number; message?: string } | null;
    payload: Uint8Array;
  };
  return {
    status: { code: fields.status?.code ?? 0, message: fields.status?.message ?? '' },
    payload: fields.payload instanceof Uint8Array ? asBuffer(fields.payload) : Buffer.alloc(0),
  };
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
