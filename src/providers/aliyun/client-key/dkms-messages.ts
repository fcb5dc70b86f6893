import * as path from 'node:path';
import protobuf from 'protobufjs';
import { PACKAGE_ROOT } from '../../../package-info';

/**
 * The gateway's protobuf messages (protos/aliyun/dkms_api.proto), loaded once at first use.
 * Field names are the proto's (PascalCase); bytes fields decode to Buffer, encode from any Uint8Array.
 */

export interface EncryptRequest {
  KeyId: string;
  Plaintext: Buffer;
  Algorithm: string;
  Aad: Buffer;
  Iv: Buffer;
  PaddingMode: string;
}
export interface EncryptResponse {
  KeyId: string;
  CiphertextBlob: Buffer;
  Iv: Buffer;
  RequestId: string;
  Algorithm: string;
  PaddingMode: string;
}
export interface DecryptRequest {
  CiphertextBlob: Buffer;
  KeyId: string;
  Algorithm: string;
  Aad: Buffer;
  Iv: Buffer;
  PaddingMode: string;
}
export interface DecryptResponse {
  KeyId: string;
  Plaintext: Buffer;
  RequestId: string;
  Algorithm: string;
  PaddingMode: string;
}
export interface GetSecretValueRequest {
  SecretName: string;
  VersionStage: string;
  VersionId: string;
  FetchExtendedConfig: boolean;
}
export interface GetSecretValueResponse {
  SecretName: string;
  SecretType: string;
  SecretData: string;
  SecretDataType: string;
  VersionStages: string[];
  VersionId: string;
  CreateTime: string;
  RequestId: string;
  LastRotationDate: string;
  NextRotationDate: string;
  ExtendedConfig: string;
  AutomaticRotation: string;
  RotationInterval: string;
}
export interface ErrorMessage {
  StatusCode: number;
  ErrorCode: string;
  ErrorMessage: string;
  RequestId: string;
}

/** Message name (without the `dkms_api.` package) → its plain-object shape. */
export interface DkmsMessages {
  EncryptRequest: EncryptRequest;
  EncryptResponse: EncryptResponse;
  DecryptRequest: DecryptRequest;
  DecryptResponse: DecryptResponse;
  GetSecretValueRequest: GetSecretValueRequest;
  GetSecretValueResponse: GetSecretValueResponse;
  Error: ErrorMessage;
}

export type DkmsMessageName = keyof DkmsMessages;

/** What encoding accepts: any field may be left out (proto3 default); bytes as any Uint8Array. */
export type DkmsMessageInput<N extends DkmsMessageName> = {
  [F in keyof DkmsMessages[N]]?: DkmsMessages[N][F] extends Buffer ? Uint8Array : DkmsMessages[N][F];
};

const PROTO_RELATIVE_PATH = path.join('protos', 'aliyun', 'dkms_api.proto');

let loadedRoot: protobuf.Root | undefined;
function messageType(name: DkmsMessageName): protobuf.Type {
  if (loadedRoot === undefined) {
    loadedRoot = new protobuf.Root().loadSync(path.join(PACKAGE_ROOT, PROTO_RELATIVE_PATH), {
      keepCase: true,
    });
  }
  return loadedRoot.lookupType(`dkms_api.${name}`);
}

export function encodeDkms<N extends DkmsMessageName>(name: N, value: DkmsMessageInput<N>): Buffer {
  const type = messageType(name);
  const bytes = type.encode(type.fromObject(value as Record<string, unknown>)).finish();
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes);
}

/** Decodes a message; absent fields get their proto3 defaults. Throws on malformed bytes. */
export function decodeDkms<N extends DkmsMessageName>(name: N, bytes: Uint8Array): DkmsMessages[N] {
  const type = messageType(name);
  const message = type.decode(bytes);
  const plain = type.toObject(message, { defaults: true, arrays: true, longs: Number });
  for (const field of type.fieldsArray) {
    if (field.type === 'bytes' && !field.repeated) {
      const fieldValue = plain[field.name] as Uint8Array | number[];
      plain[field.name] = Buffer.isBuffer(fieldValue) ? fieldValue : Buffer.from(fieldValue);
    }
  }
  return plain as DkmsMessages[N];
}
