import type * as grpc from '@grpc/grpc-js';
import { bufferView } from '../lib/bytes';
import type { ServiceMethod } from './api-codec';

/** What an undecodable request becomes, so the handler answers INVALID_ARGUMENT (as ttrpc does). */
export const UNDECODABLE = Symbol('undecodable request');
export interface UndecodableRequest {
  readonly [UNDECODABLE]: string;
}

/**
 * A grpc-js service definition of one service's unary methods (src/server/api-codec.ts: the
 * API's, or a generated service's). With `tolerant`, request decoding does not throw (grpc-js
 * would answer INTERNAL "Error deserializing request"): a request that is not a valid message
 * is the caller's error.
 */
export function grpcServiceDefinition(
  methods: readonly ServiceMethod[],
  tolerant: boolean,
): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<object, object>> = {};
  for (const { service, name, localName, request, response } of methods) {
    const decodeRequest = (bytes: Buffer): object => request.decode(bytes);
    definition[name] = {
      path: `/${service}/${name}`,
      requestStream: false,
      responseStream: false,
      originalName: localName,
      requestSerialize: (message: object) => bufferView(request.encode(message)),
      requestDeserialize: tolerant
        ? (bytes: Buffer): object => {
            try {
              return decodeRequest(bytes);
            } catch {
              const reason = `the payload is not a valid ${request.typeName}`;
              return { [UNDECODABLE]: reason } satisfies UndecodableRequest;
            }
          }
        : decodeRequest,
      responseSerialize: (message: object) => bufferView(response.encode(message)),
      responseDeserialize: (bytes: Buffer) => response.decode(bytes),
    };
  }
  return definition as grpc.ServiceDefinition;
}
