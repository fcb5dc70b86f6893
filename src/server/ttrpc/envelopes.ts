import type * as StatusProto from '../../gen/google/rpc/status_pb';
import type * as TtrpcProto from '../../gen/ttrpc_pb';
import { atFirstUse } from '../../lib/first-use';
import { bufferView } from '../../lib/bytes';
import { protobuf } from '../../lib/protobuf';

/**
 * The ttrpc framing messages (protos/ttrpc/ttrpc.proto: Request and Response), encoded and
 * decoded with the types generated into src/gen. Decoding is bounds-checked: a length that runs
 * past the end throws.
 */

/** A ttrpc Request envelope, decoded: the generated Request, payload as a Buffer view, timeout as a number. */
export type TtrpcRequest = Readonly<Pick<TtrpcProto.Request, 'service' | 'method'>> & {
  readonly payload: Buffer;
  readonly metadata: ReadonlyArray<{ readonly key: string; readonly value: string }>;
  /** Nanoseconds; 0 when the caller set no deadline. */
  readonly timeoutNano: number;
};

/** What encoding a Request takes: the same fields, any left out (proto3 default). */
export interface TtrpcRequestInit {
  readonly service?: string;
  readonly method?: string;
  readonly payload?: Uint8Array;
  readonly timeoutNano?: number;
  readonly metadata?: ReadonlyArray<{ readonly key: string; readonly value: string }>;
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

interface EnvelopeTypes {
  readonly request: typeof TtrpcProto.RequestSchema;
  readonly response: typeof TtrpcProto.ResponseSchema;
  readonly status: typeof StatusProto.StatusSchema;
}
/**
 * The generated envelope types, required at the first ttrpc message: none is sent or received
 * before SERVING, and google/rpc/status_pb imports @bufbuild/protobuf/wkt, which boots every
 * well-known type's descriptor (see ../../lib/protobuf.ts).
 */
const types = atFirstUse((): EnvelopeTypes => {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const ttrpc = require('../../gen/ttrpc_pb') as typeof TtrpcProto;
  const { StatusSchema } = require('../../gen/google/rpc/status_pb') as typeof StatusProto;
  /* eslint-enable @typescript-eslint/no-require-imports */
  return { request: ttrpc.RequestSchema, response: ttrpc.ResponseSchema, status: StatusSchema };
});

/** Throws when `data` is not a Request message. */
export function decodeRequestEnvelope(data: Uint8Array): TtrpcRequest {
  const request = protobuf().fromBinary(types().request, data);
  return {
    service: request.service,
    method: request.method,
    payload: bufferView(request.payload),
    timeoutNano: Number(request.timeoutNano),
    metadata: request.metadata.map(({ key, value }) => ({ key, value })),
  };
}

export function encodeRequestEnvelope(request: TtrpcRequestInit): Uint8Array {
  const { create, toBinary } = protobuf();
  const { request: RequestSchema } = types();
  return toBinary(
    RequestSchema,
    create(RequestSchema, {
      service: request.service ?? '',
      method: request.method ?? '',
      payload: request.payload ?? new Uint8Array(),
      timeoutNano: BigInt(request.timeoutNano ?? 0),
      metadata: (request.metadata ?? []).map(({ key, value }) => ({ key, value })),
    }),
  );
}

/** The status is always written (an empty one on success), as ttrpc peers expect. */
export function encodeResponseEnvelope(response: TtrpcResponse): Uint8Array {
  const { create, toBinary } = protobuf();
  const { response: ResponseSchema, status: StatusSchema } = types();
  const status =
    response.status.code === 0
      ? create(StatusSchema)
      : create(StatusSchema, { code: response.status.code, message: response.status.message });
  return toBinary(ResponseSchema, create(ResponseSchema, { status, payload: response.payload }));
}

export function decodeResponseEnvelope(data: Uint8Array): TtrpcResponse {
  const response = protobuf().fromBinary(types().response, data);
  return {
    status: { code: response.status?.code ?? 0, message: response.status?.message ?? '' },
    payload: bufferView(response.payload),
  };
}
