import type { MessageInitShape, MessageShape } from '@bufbuild/protobuf';
import { decodeMessage, encodeMessage } from '../../../lib/protobuf';
import {
  DecryptRequestSchema,
  DecryptResponseSchema,
  EncryptRequestSchema,
  EncryptResponseSchema,
  ErrorSchema,
  GetSecretValueRequestSchema,
  GetSecretValueResponseSchema,
} from '../../../gen/aliyun/dkms_api_pb';

/**
 * The gateway's protobuf messages (protos/aliyun/dkms_api.proto), as generated into src/gen by
 * protoc-gen-es at build time. Field names are the proto's (PascalCase); decoded bytes fields are
 * Buffers over the answer's memory (wiping one wipes the answer), encoding takes any Uint8Array.
 */
const SCHEMAS = {
  EncryptRequest: EncryptRequestSchema,
  EncryptResponse: EncryptResponseSchema,
  DecryptRequest: DecryptRequestSchema,
  DecryptResponse: DecryptResponseSchema,
  GetSecretValueRequest: GetSecretValueRequestSchema,
  GetSecretValueResponse: GetSecretValueResponseSchema,
  Error: ErrorSchema,
} as const;

type Schemas = typeof SCHEMAS;

/** Message name (without the `dkms_api.` package). */
export type DkmsMessageName = keyof Schemas;

/** A generated message with its bytes fields typed as the Buffers decoding yields. */
type WithBuffers<T> = { readonly [F in keyof T]: T[F] extends Uint8Array ? Buffer : T[F] };

/** Message name → the decoded message. */
export type DkmsMessages = { [N in DkmsMessageName]: WithBuffers<MessageShape<Schemas[N]>> };

/** What encoding accepts: any field may be left out (proto3 default); bytes as any Uint8Array. */
export type DkmsMessageInput<N extends DkmsMessageName> = MessageInitShape<Schemas[N]>;

export function encodeDkms<N extends DkmsMessageName>(name: N, value: DkmsMessageInput<N>): Buffer {
  return encodeMessage(SCHEMAS[name], value);
}

/** Decodes a message; absent fields get their proto3 defaults. Throws on malformed bytes. */
export function decodeDkms<N extends DkmsMessageName>(name: N, bytes: Uint8Array): DkmsMessages[N] {
  const message = decodeMessage(SCHEMAS[name], bytes);
  return message as unknown as DkmsMessages[N];
}

export type EncryptRequest = DkmsMessages['EncryptRequest'];
export type DecryptRequest = DkmsMessages['DecryptRequest'];
export type GetSecretValueRequest = DkmsMessages['GetSecretValueRequest'];
export type ErrorMessage = DkmsMessages['Error'];
