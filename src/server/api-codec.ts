import type { DescMessage, DescService, MessageInitShape, MessageShape } from '@bufbuild/protobuf';
import {
  file_api,
  GetResourceService,
  ImagePullService,
  SealedSecretService,
  SecureMountService,
} from '../gen/api_pb';
import { file_keyprovider, KeyProviderService } from '../gen/keyprovider_pb';
import { atFirstUse } from '../lib/first-use';
import { protobuf } from '../lib/protobuf';

/**
 * The API's messages on the wire, for both transports: the types protoc-gen-es generates from
 * protos/api.proto and protos/keyprovider.proto (src/gen), with the @bufbuild/protobuf runtime.
 * Field names are the generated ones (`ResourcePath`, `imageUrl`); decoded bytes fields are
 * Buffers over the request's memory.
 */

/** A generated message's fields, without the runtime's `$typeName` / `$unknown`. */
export type MessageFields<S extends DescMessage> = Omit<MessageShape<S>, '$typeName' | '$unknown'>;

/** Every service of the API, as generated. */
export const API_SERVICES: readonly DescService[] = [
  SealedSecretService,
  GetResourceService,
  SecureMountService,
  ImagePullService,
  KeyProviderService,
];

/** How one method (`api.SealedSecretService/UnsealSecret`) is decoded and encoded. */
export interface MethodCodec {
  readonly requestType: DescMessage;
  readonly responseType: DescMessage;
}

/** `service/method` → its request and response types, for every method of API_SERVICES. */
export function apiMethodCodecs(): ReadonlyMap<string, MethodCodec> {
  const codecs = new Map<string, MethodCodec>();
  for (const service of API_SERVICES) {
    for (const method of service.methods) {
      codecs.set(`${service.typeName}/${method.name}`, {
        requestType: method.input,
        responseType: method.output,
      });
    }
  }
  return codecs;
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

const registry = atFirstUse(() => protobuf().createRegistry(file_api, file_keyprovider));

/** Tool and test helper: an API message type by its full name, e.g. `api.UnsealSecretInput`. */
export function apiMessageType(name: string): DescMessage {
  const type = registry().getMessage(name);
  if (type === undefined) throw new Error(`no API message ${name}`);
  return type;
}
