/**
 * A direct proto3 wire-format codec for "flat" messages: every field singular (implicit presence,
 * no oneof, no `optional`) and a string, bytes or open enum. It stands in for the reflective
 * @bufbuild/protobuf runtime on the hot calls (UnsealSecret, GetResource, PullImage, WrapKey /
 * UnWrapKey, Health/Check): no descriptor, no registry, no chunked writer, and neither
 * @bufbuild/protobuf's main entry nor a generated file is loaded to serve them.
 * test/unit/server/flat-message holds every layout to its generated descriptor and the codec to
 * protobuf-es (same values decoded, same bytes encoded).
 */

import { LENGTH_DELIMITED, Reader, VARINT } from './flat-reader';

/** One message type's decoding and encoding (what both transports call). */
export interface MessageCodec {
  /** Its full name, e.g. `api.UnsealSecretInput`. */
  readonly typeName: string;
  /** Absent fields get their defaults; throws on malformed bytes. */
  decode(bytes: Uint8Array): Record<string, unknown>;
  /** A plain object of the message's fields (generated names); others are ignored. */
  encode(message: object): Uint8Array;
}

export type FlatFieldKind = 'string' | 'bytes' | 'enum';

export interface FlatField {
  readonly number: number;
  /** protoc-gen-es's name of the field (`ResourcePath`, `imageUrl`). */
  readonly localName: string;
  readonly kind: FlatFieldKind;
}

export interface FlatLayout {
  readonly typeName: string;
  readonly fields: readonly FlatField[];
}

const MAX_FIELD_NUMBER = 0x1fffffff;
const INT32_MIN = -0x80000000;
const INT32_MAX = 0x7fffffff;

const WIRE_TYPE: { readonly [K in FlatFieldKind]: number } = {
  string: LENGTH_DELIMITED,
  bytes: LENGTH_DELIMITED,
  enum: VARINT,
};

function defaultOf(kind: FlatFieldKind): unknown {
  return kind === 'string' ? '' : kind === 'bytes' ? Buffer.alloc(0) : 0;
}

function fieldNumbered(fields: readonly FlatField[], number: number): FlatField | undefined {
  for (const field of fields) if (field.number === number) return field;
  return undefined;
}

function decodeFlat(layout: FlatLayout, bytes: Uint8Array): Record<string, unknown> {
  const { fields, typeName } = layout;
  const message: Record<string, unknown> = {};
  const reader = new Reader(bytes, typeName);
  while (reader.pos < reader.end) {
    const tag = reader.tag();
    const number = tag >>> 3;
    const wireType = tag & 7;
    const field = fieldNumbered(fields, number);
    if (field === undefined) {
      reader.skip(wireType, number, 0);
      continue;
    }
    // Stricter than protobuf-es, which reads a known scalar field whatever its wire type says.
    if (wireType !== WIRE_TYPE[field.kind])
      reader.fail(
        `field ${number} (${field.localName}) has wire type ${wireType}, not ${WIRE_TYPE[field.kind]}`,
      );
    // The last occurrence wins, as for any singular field.
    if (field.kind === 'string') message[field.localName] = reader.string();
    else if (field.kind === 'bytes') message[field.localName] = reader.bytesView();
    // An int32: a negative one arrives sign-extended to 10 bytes, its low 32 bits are the value.
    else message[field.localName] = reader.varint32() | 0;
  }
  // Defaults after reading, for the fields the bytes left out (no empty Buffer made per call).
  for (const field of fields)
    if (!(field.localName in message)) message[field.localName] = defaultOf(field.kind);
  return message;
}

/** The size of a uint32 as a varint; a negative int32 is written sign-extended, in 10 bytes. */
function varintSize(value: number): number {
  if (value < 0) return 10;
  return value < 0x80 ? 1 : value < 0x4000 ? 2 : value < 0x200000 ? 3 : value < 0x10000000 ? 4 : 5;
}

/** Writes a uint32, or a negative int32 sign-extended to 64 bits (10 bytes); returns the end. */
function writeVarint(out: Buffer, pos: number, value: number): number {
  if (value < 0) {
    for (let i = 0; i < 9; i++) {
      out[pos++] = (value & 0x7f) | 0x80;
      value >>= 7;
    }
    out[pos++] = 1;
    return pos;
  }
  while (value > 0x7f) {
    out[pos++] = (value & 0x7f) | 0x80;
    value >>>= 7;
  }
  out[pos++] = value;
  return pos;
}

interface EncodeField extends FlatField {
  readonly tag: number;
  readonly tagSize: number;
}

/** The field's value to write, or undefined at its default (not written, as proto3 does). */
function valueToWrite(
  typeName: string,
  field: FlatField,
  value: unknown,
): string | Uint8Array | number | undefined {
  if (value === undefined) return undefined;
  const wrong = (expected: string): never => {
    const got = value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
    throw new Error(`cannot encode ${typeName}: ${field.localName} must be ${expected}, not ${got}`);
  };
  if (field.kind === 'string') {
    if (typeof value !== 'string') return wrong('a string');
    return value === '' ? undefined : value;
  }
  if (field.kind === 'bytes') {
    if (!(value instanceof Uint8Array)) return wrong('a Uint8Array');
    return value.length === 0 ? undefined : value;
  }
  if (typeof value !== 'number' || !Number.isInteger(value) || value < INT32_MIN || value > INT32_MAX)
    return wrong('an int32 enum value');
  return value === 0 ? undefined : value;
}

function encodeFlat(typeName: string, fields: readonly EncodeField[], message: object): Buffer {
  const record = message as Record<string, unknown>;
  const values: Array<string | Uint8Array | number | undefined> = [];
  const lengths: number[] = [];
  let size = 0;
  for (const field of fields) {
    const value = valueToWrite(typeName, field, record[field.localName]);
    values.push(value);
    if (value === undefined) {
      lengths.push(0);
      continue;
    }
    const length =
      typeof value === 'number'
        ? 0
        : typeof value === 'string'
          ? Buffer.byteLength(value, 'utf8')
          : value.length;
    lengths.push(length);
    size += field.tagSize + (typeof value === 'number' ? varintSize(value) : varintSize(length) + length);
  }
  const out = Buffer.allocUnsafe(size);
  let pos = 0;
  for (let i = 0; i < fields.length; i++) {
    const value = values[i];
    if (value === undefined) continue;
    pos = writeVarint(out, pos, (fields[i] as EncodeField).tag);
    if (typeof value === 'number') {
      pos = writeVarint(out, pos, value);
      continue;
    }
    const length = lengths[i] as number;
    pos = writeVarint(out, pos, length);
    if (typeof value === 'string') out.write(value, pos, length, 'utf8');
    else out.set(value, pos);
    pos += length;
  }
  return out;
}

/** The codec of a flat message; throws at once on a layout that is not one. */
export function flatMessageCodec(layout: FlatLayout): MessageCodec {
  const { typeName } = layout;
  const numbers = new Set<number>();
  const names = new Set<string>();
  for (const { number, localName } of layout.fields) {
    if (!Number.isInteger(number) || number < 1 || number > MAX_FIELD_NUMBER || numbers.has(number))
      throw new Error(`flat layout ${typeName}: field number ${number} is invalid or repeated`);
    if (names.has(localName)) throw new Error(`flat layout ${typeName}: field ${localName} is repeated`);
    numbers.add(number);
    names.add(localName);
  }
  // Written in field-number order, as protobuf-es does.
  const encodeFields: EncodeField[] = [...layout.fields]
    .sort((a, b) => a.number - b.number)
    .map((field) => {
      const tag = (field.number * 8 + WIRE_TYPE[field.kind]) >>> 0;
      return { ...field, tag, tagSize: varintSize(tag) };
    });
  return {
    typeName,
    decode: (bytes) => decodeFlat(layout, bytes),
    encode: (message) => encodeFlat(typeName, encodeFields, message),
  };
}
