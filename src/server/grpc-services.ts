import type * as grpc from '@grpc/grpc-js';
import type { DescService } from '@bufbuild/protobuf';
import { decodeApiMessage, encodeApiMessage } from './api-codec';

/** What an undecodable request becomes, so the handler answers INVALID_ARGUMENT (as ttrpc does). */
export const UNDECODABLE = Symbol('undecodable request');
export interface UndecodableRequest {
  readonly [UNDECODABLE]: string;
}

/**
 * A grpc-js service definition from a generated service: messages serialised with the generated
 * types. With `tolerant`, request decoding does not throw (grpc-js would answer INTERNAL "Error
 * deserializing request"): a request that is not a valid message is the caller's error.
 */
export function grpcServiceDefinition(service: DescService, tolerant: boolean): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<object, object>> = {};
  for (const method of service.methods) {
    const encode = (type: typeof method.input) => (message: object) =>
      Buffer.from(encodeApiMessage(type, message));
    const decode = (type: typeof method.input) => (bytes: Buffer) => decodeApiMessage(type, bytes);
    const strictRequest = decode(method.input);
    definition[method.name] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: false,
      responseStream: false,
      originalName: method.localName,
      requestSerialize: encode(method.input),
      requestDeserialize: tolerant
        ? (bytes: Buffer): object => {
            try {
              return strictRequest(bytes);
            } catch {
              const reason = `the payload is not a valid ${method.input.typeName}`;
              return { [UNDECODABLE]: reason } satisfies UndecodableRequest;
            }
          }
        : strictRequest,
      responseSerialize: encode(method.output),
      responseDeserialize: decode(method.output),
    };
  }
  return definition as grpc.ServiceDefinition;
}
