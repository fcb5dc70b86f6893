import type * as Protobuf from '@bufbuild/protobuf';
import { bufferView } from './bytes';
import { atFirstUse } from './first-use';

/**
 * @bufbuild/protobuf's main entry (create, fromBinary, toBinary, …), required at its first use.
 * Its index boots the descriptor of every well-known type (equals.js imports wkt/: timestamp,
 * any, struct, api, type, …) at load, which start-up never needs: the generated files that are
 * loaded before SERVING (api_pb, keyprovider_pb) need only @bufbuild/protobuf/codegenv2, and
 * nothing is encoded or decoded before the first call. Measured on the bundle: 21 ms less CPU
 * to SERVING (paired median of 20 alternating starts, with the lazy AA and ttrpc envelope
 * types); the first call pays ~16 ms more instead (its require), later calls nothing.
 */
export const protobuf = atFirstUse(
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  () => require('@bufbuild/protobuf') as typeof Protobuf,
);

/**
 * Decodes a generated message through the runtime (absent fields get their defaults), its bytes
 * fields as Buffers over the input's memory; throws on malformed bytes.
 */
export function decodeMessage(type: Protobuf.DescMessage, bytes: Uint8Array): Record<string, unknown> {
  const { fromBinary, ScalarType } = protobuf();
  const message = fromBinary(type, bytes) as unknown as Record<string, unknown>;
  for (const field of type.fields) {
    const value = message[field.localName];
    if (field.fieldKind === 'scalar' && field.scalar === ScalarType.BYTES && value instanceof Uint8Array)
      message[field.localName] = bufferView(value);
  }
  return message;
}

/** Encodes a plain object of a generated message's fields (others are ignored). */
export function encodeMessage(type: Protobuf.DescMessage, fields: object): Buffer {
  const { create, toBinary } = protobuf();
  return bufferView(toBinary(type, create(type, fields as Protobuf.MessageInitShape<Protobuf.DescMessage>)));
}
