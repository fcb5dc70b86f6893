/**
 * The proto3 wire format as src/server/flat-message.ts reads it: tags, varints, length-delimited
 * values, and unknown fields skipped (groups included), each malformation an Error naming the
 * message type and what is wrong, never the bytes themselves.
 */

export const VARINT = 0;
const BIT64 = 1;
export const LENGTH_DELIMITED = 2;
const START_GROUP = 3;
const END_GROUP = 4;
const BIT32 = 5;

/** Groups nested this deep are refused (protobuf-es's recursion limit of 100, its top message included). */
const MAX_GROUP_DEPTH = 100;
/** Strings up to this length that are all ASCII skip the TextDecoder call. */
const ASCII_FAST_PATH_MAX = 32;

// One decoder for every call: fatal (invalid UTF-8 throws, as protobuf-es's proto3 strings), and a
// leading U+FEFF is text, not a byte-order mark to strip.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Bytes as they are read: `end` is the input's length (messages are read whole). */
export class Reader {
  pos = 0;
  readonly end: number;
  constructor(
    readonly bytes: Uint8Array,
    readonly typeName: string,
  ) {
    this.end = bytes.length;
  }

  fail(reason: string): never {
    throw new Error(`cannot decode ${this.typeName}: ${reason}`);
  }

  /** A varint of at most 10 bytes; its low 32 bits, unsigned (as protobuf-es's uint32 reads it). */
  varint32(): number {
    const { bytes, end } = this;
    let result = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= end) this.fail('truncated input (a varint runs past the end)');
      const byte = bytes[this.pos++] as number;
      // Bits beyond the 32nd are dropped: byte 4 brings bits 28-31 (and 3 dropped bits).
      if (i < 4) result |= (byte & 0x7f) << (7 * i);
      else if (i === 4) result |= (byte & 0x0f) << 28;
      if (byte < 0x80) return result >>> 0;
    }
    return this.fail('a varint is longer than 10 bytes');
  }

  /** A tag: a uint32 varint (5 bytes at most), its field number not 0 and its wire type 0 to 5. */
  tag(): number {
    const start = this.pos;
    const tag = this.varint32();
    const length = this.pos - start;
    if (length > 5 || (length === 5 && (this.bytes[this.pos - 1] as number) > 0x0f))
      this.fail('a tag overflows uint32');
    if (tag >>> 3 === 0) this.fail(`field number 0 at byte ${start}`);
    if ((tag & 7) > 5) this.fail(`wire type ${tag & 7} at byte ${start}`);
    return tag;
  }

  /** The start of a length-delimited value's content (its length checked against the input). */
  delimited(): number {
    const length = this.varint32();
    if (length > this.end - this.pos) this.fail('a length runs past the end');
    const start = this.pos;
    this.pos += length;
    return start;
  }

  advance(count: number): void {
    if (count > this.end - this.pos) this.fail('truncated input (a fixed-size value runs past the end)');
    this.pos += count;
  }

  /** Skips an unknown field's value; `depth` is the nesting of the group it is in (0: none). */
  skip(wireType: number, fieldNumber: number, depth: number): void {
    switch (wireType) {
      case VARINT:
        // At most 10 bytes, as every varint here: protobuf-es skips an unknown one of any length.
        this.varint32();
        return;
      case BIT64:
        return this.advance(8);
      case LENGTH_DELIMITED:
        this.delimited();
        return;
      case START_GROUP:
        return this.skipGroup(fieldNumber, depth + 1);
      case BIT32:
        return this.advance(4);
      default:
        this.fail(`an end group for field ${fieldNumber} without its start group`);
    }
  }

  private skipGroup(fieldNumber: number, depth: number): void {
    if (depth >= MAX_GROUP_DEPTH) this.fail(`groups nested deeper than ${MAX_GROUP_DEPTH - 1}`);
    for (;;) {
      if (this.pos >= this.end) this.fail(`truncated input (group ${fieldNumber} is not ended)`);
      const tag = this.tag();
      if ((tag & 7) === END_GROUP) {
        if (tag >>> 3 !== fieldNumber)
          this.fail(`an end group for field ${tag >>> 3} ends the group of field ${fieldNumber}`);
        return;
      }
      this.skip(tag & 7, tag >>> 3, depth);
    }
  }

  string(): string {
    const start = this.delimited();
    const { bytes, pos } = this;
    if (pos - start <= ASCII_FAST_PATH_MAX) {
      let i = start;
      while (i < pos && (bytes[i] as number) < 0x80) i++;
      if (i === pos)
        return String.fromCharCode.apply(null, bytes.subarray(start, pos) as unknown as number[]);
    }
    try {
      return utf8.decode(bytes.subarray(start, pos));
    } catch {
      return this.fail('a string field is not valid UTF-8');
    }
  }

  /** A view over the input, not a copy (the request's memory, as the generated path gave). */
  bytesView(): Buffer {
    const start = this.delimited();
    const { bytes } = this;
    return Buffer.from(bytes.buffer, bytes.byteOffset + start, this.pos - start);
  }
}
