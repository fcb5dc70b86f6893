import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  create,
  createRegistry,
  fromBinary,
  ScalarType,
  toBinary,
  type DescField,
  type DescFile,
  type DescMessage,
  type MessageInitShape,
} from '@bufbuild/protobuf';
import { file_api } from '../../../src/gen/api_pb';
import { file_keyprovider } from '../../../src/gen/keyprovider_pb';
import {
  file_health_v1_health,
  HealthCheckResponse_ServingStatusSchema,
} from '../../../src/gen/health/v1/health_pb';
import { apiMessageCodec, FLAT_API_LAYOUTS } from '../../../src/server/api-codec';
import { FLAT_HEALTH_LAYOUTS, SERVING_STATUS_NUMBERS } from '../../../src/server/health-definition';
import {
  flatMessageCodec,
  type FlatFieldKind,
  type FlatLayout,
  type MessageCodec,
} from '../../../src/server/flat-message';

/**
 * src/server/flat-message against the generated descriptors and the @bufbuild/protobuf runtime it
 * replaces on the hot calls: the layouts cannot drift from the protos, and on random messages and
 * random / mutated bytes the flat codec decodes and encodes as protobuf-es does (or throws where
 * protobuf-es reads malformed bytes anyway: only the documented stricter cases).
 */

const registry = createRegistry(file_api, file_keyprovider, file_health_v1_health);
const ALL_LAYOUTS: readonly FlatLayout[] = [...FLAT_API_LAYOUTS, ...FLAT_HEALTH_LAYOUTS];

function descriptorOf(typeName: string): DescMessage {
  const desc = registry.getMessage(typeName);
  assert.ok(desc, `no generated message ${typeName}`);
  return desc;
}

/** The flat kind of a generated field, or undefined when it cannot be a flat message's. */
function flatKindOf(field: DescField): FlatFieldKind | undefined {
  // Implicit presence (proto3 without `optional`), no oneof.
  if (field.oneof !== undefined || field.presence !== 2) return undefined;
  if (field.fieldKind === 'enum') return field.enum.open ? 'enum' : undefined;
  if (field.fieldKind !== 'scalar') return undefined;
  if (field.scalar === ScalarType.STRING) return 'string';
  if (field.scalar === ScalarType.BYTES) return 'bytes';
  return undefined;
}

function allMessages(file: DescFile): DescMessage[] {
  const nested = (m: DescMessage): DescMessage[] => [m, ...m.nestedMessages.flatMap(nested)];
  return file.messages.flatMap(nested);
}

describe('the layouts match the generated descriptors', () => {
  test('every layout has exactly its generated message’s fields (numbers, local names, kinds)', () => {
    for (const layout of ALL_LAYOUTS) {
      const desc = descriptorOf(layout.typeName);
      const generated = desc.fields
        .map((f) => ({ number: f.number, localName: f.localName, kind: flatKindOf(f) }))
        .sort((a, b) => a.number - b.number);
      const ours = [...layout.fields].sort((a, b) => a.number - b.number);
      assert.deepEqual(ours, generated, layout.typeName);
    }
  });

  test('every flat-eligible message of api_pb and keyprovider_pb is in the API table, and only those', () => {
    const eligible = [file_api, file_keyprovider]
      .flatMap(allMessages)
      .filter((m) => m.fields.every((f) => flatKindOf(f) !== undefined))
      .map((m) => m.typeName)
      .sort();
    assert.deepEqual(FLAT_API_LAYOUTS.map((l) => l.typeName).sort(), eligible);
    assert.ok(!eligible.includes('api.SecureMountRequest'), 'its map and repeated fields are not flat');
  });

  test('the health codec’s ServingStatus table is the generated enum', () => {
    const generated = Object.fromEntries(
      HealthCheckResponse_ServingStatusSchema.values.map((v) => [v.name, v.number]),
    );
    assert.deepEqual({ ...SERVING_STATUS_NUMBERS }, generated);
  });

  test('apiMessageCodec gives the flat codec for a table type, the runtime for SecureMountRequest', () => {
    const flat = apiMessageCodec('api.UnsealSecretInput');
    const input = Buffer.from([0x0a, 0x02, 0x68, 0x69]);
    const decoded = flat.decode(input);
    const secret = decoded['secret'] as Buffer;
    assert.ok(Buffer.isBuffer(secret));
    assert.equal(secret.buffer, input.buffer, 'a bytes field is a view over the input, not a copy');
    assert.equal(secret.toString(), 'hi');
    const mount = apiMessageCodec('api.SecureMountRequest');
    const bytes = mount.encode({ volumeType: 'v', flags: ['a', 'b'], options: { k: 'x' } });
    assert.deepEqual(mount.decode(bytes)['flags'], ['a', 'b']);
  });
});

/** mulberry32: a seeded PRNG, so a failure reproduces (the seed is in every assertion message). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Random = ReturnType<typeof prng>;
const int = (random: Random, n: number): number => Math.floor(random() * n);
const pick = <T>(random: Random, items: readonly T[]): T => items[int(random, items.length)] as T;

const TEXT_PIECES = ['a', 'Z', '0', ' ', 'ü', '服', '😀', '\uFEFF', '\u0000', 'é', 'abcdefghij'];

function randomString(random: Random): string {
  const length = pick(random, [0, 1, 5, 31, 32, 33, 100, 200]);
  let text = '';
  while (text.length < length) text += pick(random, TEXT_PIECES);
  return text;
}

function randomBytes(random: Random, length = pick(random, [0, 1, 2, 16, 127, 128, 300])): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = int(random, 256);
  return bytes;
}

function randomEnum(random: Random): number {
  return pick(random, [
    0,
    1,
    2,
    3,
    127,
    128,
    16384,
    0x7fffffff,
    -1,
    -2,
    -0x80000000,
    int(random, 2 ** 32) - 2 ** 31,
  ]);
}

function randomFields(random: Random, layout: FlatLayout): Record<string, unknown> {
  const message: Record<string, unknown> = {};
  for (const { localName, kind } of layout.fields) {
    if (random() < 0.1) continue; // absent: the default
    message[localName] =
      kind === 'string' ? randomString(random) : kind === 'bytes' ? randomBytes(random) : randomEnum(random);
  }
  return message;
}

/** A decoded message's fields in a comparable form (bytes as hex). */
function comparable(layout: FlatLayout, message: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    layout.fields.map(({ localName }) => {
      const value = message[localName];
      return [localName, value instanceof Uint8Array ? `bytes:${Buffer.from(value).toString('hex')}` : value];
    }),
  );
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

function protobufEsEncode(desc: DescMessage, fields: Record<string, unknown>): Uint8Array {
  return toBinary(desc, create(desc, fields as MessageInitShape<DescMessage>));
}

describe('differential against protobuf-es', () => {
  test('random messages: same bytes encoded, same values decoded, and a round trip', () => {
    const random = prng(0x5eed);
    for (const layout of ALL_LAYOUTS) {
      const desc = descriptorOf(layout.typeName);
      const codec = flatMessageCodec(layout);
      for (let i = 0; i < 300; i++) {
        const fields = randomFields(random, layout);
        const ours = codec.encode(fields);
        const theirs = protobufEsEncode(desc, fields);
        const at = `${layout.typeName} #${i} ${JSON.stringify(comparable(layout, fields))}`;
        assert.equal(hex(ours), hex(theirs), at);
        const expected = comparable(layout, fromBinary(desc, theirs) as unknown as Record<string, unknown>);
        assert.deepEqual(comparable(layout, codec.decode(theirs)), expected, at);
        const withDefaults = { ...codec.decode(new Uint8Array(0)), ...fields };
        assert.deepEqual(comparable(layout, codec.decode(ours)), comparable(layout, withDefaults), at);
      }
    }
  });

  test('strings with lone surrogates encode as protobuf-es does (U+FFFD)', () => {
    const layout = FLAT_API_LAYOUTS.find((l) => l.typeName === 'api.GetResourceRequest') as FlatLayout;
    const desc = descriptorOf(layout.typeName);
    for (const text of ['\uD800', 'a\uDC00b', '\uD83D', 'x'.repeat(40) + '\uDFFF']) {
      const fields = { ResourcePath: text };
      assert.equal(hex(flatMessageCodec(layout).encode(fields)), hex(protobufEsEncode(desc, fields)));
    }
  });

  test('random and mutated bytes: flat accepts only what protobuf-es accepts, with the same values', () => {
    const stats = { inputs: 0, bothAccept: 0, bothThrow: 0, stricter: 0 };
    const random = prng(0xc0dec);
    for (const layout of ALL_LAYOUTS) {
      const desc = descriptorOf(layout.typeName);
      const codec = flatMessageCodec(layout);
      for (let i = 0; i < 700; i++) {
        const bytes = mutatedInput(random, layout, desc);
        compareDecoders(layout, desc, codec, bytes, `${layout.typeName} #${i} ${hex(bytes)}`, stats);
      }
    }
    // The generator reaches every outcome (not only one kind of input).
    assert.ok(
      stats.bothAccept > 1000 && stats.bothThrow > 1000 && stats.stricter > 50,
      JSON.stringify(stats),
    );
  });
});

/** What protobuf-es reads that the flat codec refuses (src/server/flat-message.ts, flat-reader.ts). */
const STRICTER = [/has wire type \d, not \d/, /a varint is longer than 10 bytes/];

function compareDecoders(
  layout: FlatLayout,
  desc: DescMessage,
  codec: MessageCodec,
  bytes: Uint8Array,
  at: string,
  stats: Record<'inputs' | 'bothAccept' | 'bothThrow' | 'stricter', number>,
): void {
  stats.inputs++;
  const attempt = <T>(read: () => T): { value: T } | { error: Error } => {
    try {
      return { value: read() };
    } catch (error) {
      return { error: error as Error };
    }
  };
  const ours = attempt(() => codec.decode(bytes));
  const theirs = attempt(() => fromBinary(desc, bytes) as unknown as Record<string, unknown>);
  if ('value' in ours) {
    assert.ok('value' in theirs, `flat accepts what protobuf-es refuses: ${at}`);
    assert.deepEqual(comparable(layout, ours.value), comparable(layout, theirs.value), at);
    stats.bothAccept++;
  } else if ('error' in theirs) {
    stats.bothThrow++;
  } else {
    const reason = ours.error.message;
    assert.ok(
      STRICTER.some((r) => r.test(reason)),
      `flat throws where protobuf-es reads (${reason}): ${at}`,
    );
    stats.stricter++;
  }
}

/** Appends a varint (up to 64 bits, as two halves) to `out`. */
function pushVarint(out: number[], value: number | bigint): void {
  let v = BigInt.asUintN(64, BigInt(value));
  do {
    const byte = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v > 0n ? byte | 0x80 : byte);
  } while (v > 0n);
}

function pushTag(out: number[], fieldNumber: number, wireType: number): void {
  pushVarint(out, fieldNumber * 8 + wireType);
}

/** A random field record, known or unknown, of any wire type (groups nested a little). */
function randomRecord(random: Random, layout: FlatLayout, out: number[], depth = 0): void {
  const known = layout.fields.length > 0 && random() < 0.5;
  const fieldNumber = known
    ? pick(random, layout.fields).number
    : pick(random, [1, 2, 3, 4, 15, 16, 2047, 2048, 0x1fffffff]);
  const field = layout.fields.find((f) => f.number === fieldNumber);
  const rightWireType = field === undefined ? undefined : field.kind === 'enum' ? 0 : 2;
  const wireType =
    rightWireType !== undefined && random() < 0.8 ? rightWireType : pick(random, [0, 1, 2, 3, 5]);
  pushTag(out, fieldNumber, wireType);
  switch (wireType) {
    case 0:
      return pushVarint(out, random() < 0.3 ? randomEnum(random) : int(random, 2 ** 20));
    case 1:
      return void out.push(...randomBytes(random, 8));
    case 5:
      return void out.push(...randomBytes(random, 4));
    case 2: {
      const content =
        field?.kind === 'string' || random() < 0.3
          ? random() < 0.8
            ? [...Buffer.from(randomString(random))]
            : pick(random, [[0xc3, 0x28], [0xff], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xef, 0xbb, 0xbf]])
          : [...randomBytes(random)];
      pushVarint(out, content.length);
      return void out.push(...content);
    }
    default: {
      const records = depth > 2 ? 0 : int(random, 3);
      for (let i = 0; i < records; i++) randomRecord(random, layout, out, depth + 1);
      // Mostly the matching end group, sometimes another one.
      pushTag(out, random() < 0.9 ? fieldNumber : fieldNumber + 1, 4);
    }
  }
}

/** Special records that reach each edge of the wire format. */
const EDGE_RECORDS: readonly (readonly number[])[] = [
  [0x00], // field number 0
  [0x0e],
  [0x0f], // wire types 6 and 7
  [0x14], // an end group (field 2) with no start
  [0x80, 0x80, 0x80, 0x80, 0x10], // a tag that overflows uint32
  [0xfa, 0xff, 0xff, 0xff, 0x0f, 0x00], // field 2^29 - 1, wire type 2, empty
  [0x80, 0x80, 0x80, 0x80, 0x80, 0x01], // a 6-byte tag
  [0x28, ...Array<number>(10).fill(0xff), 0x01], // an 11-byte unknown varint (field 5)
  [0x28, ...Array<number>(9).fill(0xff), 0x7f], // a 10-byte unknown varint, its 10th byte > 1
  [0x2a, 0x80, 0x80, 0x80, 0x80, 0x10], // a length of 2^32 (its low 32 bits are 0)
  [0x2a, 0xff, 0xff, 0xff, 0xff, 0x0f], // a length of 2^32 - 1
  [0x08, ...Array<number>(9).fill(0xff), 0x01], // field 1: -1 as a varint
  [0x08, ...Array<number>(10).fill(0x80), 0x00], // field 1: an 11-byte varint
];

function mutatedInput(random: Random, layout: FlatLayout, desc: DescMessage): Uint8Array {
  const out: number[] = [];
  if (random() < 0.4) out.push(...protobufEsEncode(desc, randomFields(random, layout)));
  const records = int(random, 4);
  for (let i = 0; i < records; i++) {
    if (random() < 0.15) out.push(...pick(random, EDGE_RECORDS));
    else randomRecord(random, layout, out);
  }
  if (random() < 0.05) {
    // Groups nested around the protobuf-es limit (99 levels are read, 100 are not).
    const depth = pick(random, [98, 99, 100]);
    for (let i = 0; i < depth; i++) pushTag(out, 7, 3);
    for (let i = 0; i < depth; i++) pushTag(out, 7, 4);
  }
  const mutation = random();
  if (mutation < 0.2 && out.length > 0)
    out.length = int(random, out.length); // truncated
  else if (mutation < 0.45 && out.length > 0) {
    for (let flips = 1 + int(random, 3); flips > 0; flips--) {
      const at = int(random, out.length);
      out[at] = (out[at] as number) ^ (1 << int(random, 8));
    }
  } else if (mutation < 0.55) out.splice(int(random, out.length + 1), 0, int(random, 256)); // a byte inserted
  return Uint8Array.from(out);
}

describe('each malformation throws its own message, naming the type and never the contents', () => {
  const unseal = flatMessageCodec(FLAT_API_LAYOUTS[0] as FlatLayout);
  const resource = apiMessageCodec('api.GetResourceRequest');
  const status = flatMessageCodec(FLAT_HEALTH_LAYOUTS[1] as FlatLayout);
  const refused = (codec: MessageCodec, bytes: readonly number[], message: RegExp): void => {
    assert.throws(
      () => codec.decode(Uint8Array.from(bytes)),
      (error: Error) =>
        error instanceof Error &&
        error.message.startsWith(`cannot decode ${codec.typeName}: `) &&
        message.test(error.message),
      `${hex(Uint8Array.from(bytes))} → ${message}`,
    );
  };

  test('truncated input', () => {
    refused(unseal, [0x0a], /truncated input \(a varint runs past the end\)/);
    refused(status, [0x08, 0x80], /truncated input/);
    refused(unseal, [0x8a], /truncated input/); // a tag cut short
    refused(unseal, [0x15, 0x01, 0x02], /truncated input \(a fixed-size value runs past the end\)/);
    refused(unseal, [0x11, 0x01], /truncated input \(a fixed-size value runs past the end\)/);
    refused(unseal, [0x13, 0x10, 0x01], /truncated input \(group 2 is not ended\)/);
  });
  test('a length running past the end', () => {
    refused(unseal, [0x0a, 0x05, 0x01], /a length runs past the end/);
    refused(unseal, [0x12, 0x7f], /a length runs past the end/);
  });
  test('a varint longer than 10 bytes', () => {
    refused(status, [0x08, ...Array<number>(10).fill(0xff), 0x01], /a varint is longer than 10 bytes/);
    refused(unseal, [0x10, ...Array<number>(10).fill(0x80), 0x00], /a varint is longer than 10 bytes/);
  });
  test('a tag that overflows uint32', () => {
    refused(unseal, [0x80, 0x80, 0x80, 0x80, 0x10], /a tag overflows uint32/);
    refused(unseal, [0x8a, 0x80, 0x80, 0x80, 0x80, 0x00], /a tag overflows uint32/);
  });
  test('field number 0', () => refused(unseal, [0x02, 0x00], /field number 0 at byte 0/));
  test('wire types 6 and 7', () => {
    refused(unseal, [0x16], /wire type 6 at byte 0/);
    refused(unseal, [0x0a, 0x00, 0x1f], /wire type 7 at byte 2/);
  });
  test('an unmatched end group', () => {
    refused(unseal, [0x14], /an end group for field 2 without its start group/);
    refused(unseal, [0x13, 0x1c], /an end group for field 3 ends the group of field 2/);
  });
  test('groups nested too deep (as protobuf-es: 99 levels are read, 100 are not)', () => {
    const nested = (depth: number): number[] => [
      ...Array<number>(depth).fill(0x13),
      ...Array<number>(depth).fill(0x14),
    ];
    assert.equal((unseal.decode(Uint8Array.from(nested(99)))['secret'] as Buffer).length, 0);
    refused(unseal, nested(100), /groups nested deeper than 99/);
  });
  test('a known field with the wrong wire type (protobuf-es reads it anyway)', () => {
    refused(unseal, [0x08, 0x01], /field 1 \(secret\) has wire type 0, not 2/);
    refused(status, [0x0a, 0x01, 0x01], /field 1 \(status\) has wire type 2, not 0/);
    refused(unseal, [0x0b, 0x0c], /field 1 \(secret\) has wire type 3, not 2/);
  });
  test('a string that is not UTF-8, its bytes not in the message', () => {
    const text = [...Buffer.from('hunter2-')];
    refused(resource, [0x0a, text.length + 2, ...text, 0xc3, 0x28], /a string field is not valid UTF-8/);
    assert.throws(
      () => resource.decode(Uint8Array.from([0x0a, text.length + 1, ...text, 0xff])),
      (error: Error) => !error.message.includes('hunter2'),
    );
    // A lone surrogate's encoding (ED A0 80) and an overlong one (C0 AF) are not UTF-8 either.
    refused(resource, [0x0a, 0x03, 0xed, 0xa0, 0x80], /not valid UTF-8/);
    refused(resource, [0x0a, 0x02, 0xc0, 0xaf], /not valid UTF-8/);
  });
});

describe('decoding', () => {
  const pull = apiMessageCodec('api.ImagePullRequest');
  const status = flatMessageCodec(FLAT_HEALTH_LAYOUTS[1] as FlatLayout);
  test('absent fields get their defaults; the last occurrence wins; unknown fields are skipped', () => {
    assert.deepEqual(pull.decode(new Uint8Array(0)), { imageUrl: '', bundlePath: '' });
    const bytes = Buffer.from(
      '0a01611203627020' + '0a0162' + '1a0178' + '2896012001' + '2b0801120178' + '2c',
      'hex',
    );
    assert.deepEqual(pull.decode(bytes), { imageUrl: 'b', bundlePath: 'bp ' });
    const empty = apiMessageCodec('api.UnsealSecretInput').decode(new Uint8Array(0))['secret'];
    assert.ok(Buffer.isBuffer(empty) && empty.length === 0);
  });
  test('a leading U+FEFF is kept; non-ASCII and long strings decode as UTF-8', () => {
    const text = '\uFEFFü服😀' + 'x'.repeat(40);
    const bytes = Buffer.concat([Buffer.from([0x0a, Buffer.byteLength(text)]), Buffer.from(text)]);
    assert.equal(pull.decode(bytes)['imageUrl'], text);
  });
  test('an enum is an int32: a negative one from its 10-byte varint, the low 32 bits of a wider one', () => {
    assert.equal(status.decode(Buffer.from('08ffffffffffffffffff01', 'hex'))['status'], -1);
    assert.equal(status.decode(Buffer.from('0880808080f8ffffffff01', 'hex'))['status'], -0x80000000);
    assert.equal(status.decode(Buffer.from('0880808080f0ffffffff01', 'hex'))['status'], 0);
    assert.equal(status.decode(Buffer.from('08ffffffff07', 'hex'))['status'], 0x7fffffff);
    assert.equal(status.decode(Buffer.from('08ffffffff0f', 'hex'))['status'], -1);
  });
});

describe('encoding', () => {
  const pull = apiMessageCodec('api.ImagePullRequest');
  const unseal = apiMessageCodec('api.UnsealSecretInput');
  const status = flatMessageCodec(FLAT_HEALTH_LAYOUTS[1] as FlatLayout);
  test('defaults are not written; fields in number order; unknown properties ignored', () => {
    assert.equal(hex(pull.encode({})), '');
    assert.equal(hex(pull.encode({ imageUrl: '', bundlePath: undefined, other: 'x' })), '');
    assert.equal(hex(pull.encode({ bundlePath: 'b', imageUrl: 'a' })), '0a01611201 62'.replace(' ', ''));
    assert.equal(hex(unseal.encode({ secret: new Uint8Array(0) })), '');
    assert.equal(hex(status.encode({ status: 0 })), '');
    assert.equal(hex(status.encode({ status: -0 })), '');
  });
  test('any Uint8Array is a bytes value; a string is UTF-8; lengths past 127 take two bytes', () => {
    const view = new Uint8Array([9, 1, 2, 3, 9]).subarray(1, 4);
    assert.equal(hex(unseal.encode({ secret: view })), '0a03010203');
    const long = 'é'.repeat(100);
    assert.equal(hex(pull.encode({ imageUrl: long })), `0ac801${Buffer.from(long).toString('hex')}`);
  });
  test('a negative enum value is a 10-byte sign-extended varint', () => {
    assert.equal(hex(status.encode({ status: -1 })), '08ffffffffffffffffff01');
    assert.equal(hex(status.encode({ status: -0x80000000 })), '0880808080f8ffffffff01');
    assert.equal(hex(status.encode({ status: 0x7fffffff })), '08ffffffff07');
  });
  test('a value of the wrong type throws, naming the field and the type, never the value', () => {
    const wrong = (codec: MessageCodec, message: object, expected: RegExp): void => {
      assert.throws(
        () => codec.encode(message),
        (error: Error) =>
          error.message.startsWith(`cannot encode ${codec.typeName}: `) &&
          expected.test(error.message) &&
          !error.message.includes('hunter2'),
      );
    };
    wrong(unseal, { secret: 'hunter2' }, /secret must be a Uint8Array, not string/);
    wrong(unseal, { secret: [104] }, /secret must be a Uint8Array, not an array/);
    wrong(unseal, { secret: null }, /not null/);
    wrong(pull, { imageUrl: 42 }, /imageUrl must be a string, not number/);
    wrong(pull, { bundlePath: Buffer.from('hunter2') }, /bundlePath must be a string, not object/);
    for (const bad of [1.5, 2 ** 31, -(2 ** 31) - 1, NaN, Infinity, '1', 1n])
      wrong(status, { status: bad }, /status must be an int32 enum value/);
  });
  test('a layout that is not a flat message is refused at once', () => {
    const layout = (numbers: number[], names = numbers.map((n) => `f${n}`)): FlatLayout => ({
      typeName: 't.T',
      fields: numbers.map((number, i) => ({
        number,
        localName: names[i] as string,
        kind: 'string' as const,
      })),
    });
    assert.throws(() => flatMessageCodec(layout([0])), /field number 0 is invalid or repeated/);
    assert.throws(() => flatMessageCodec(layout([1, 1])), /field number 1 is invalid or repeated/);
    assert.throws(() => flatMessageCodec(layout([2 ** 29])), /invalid/);
    assert.throws(() => flatMessageCodec(layout([1, 2], ['a', 'a'])), /field a is repeated/);
  });
});
