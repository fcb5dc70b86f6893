import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  encodeFrame,
  encodeFrameHeader,
  FrameDecoder,
  FrameError,
  MAX_FRAME_DATA_BYTES,
  MessageType,
  type Frame,
} from '../../../src/server/ttrpc/frame';

interface PlainFrame {
  streamId: number;
  type: number;
  flags: number;
  data: Buffer;
}

function plain(frame: Frame): PlainFrame {
  return { streamId: frame.streamId, type: frame.type, flags: frame.flags, data: Buffer.from(frame.data) };
}

function decodeChunks(chunks: Buffer[], decoder = new FrameDecoder()): PlainFrame[] {
  const frames: PlainFrame[] = [];
  for (const chunk of chunks) decoder.push(chunk, (frame) => frames.push(plain(frame)));
  return frames;
}

const sample: PlainFrame[] = [
  { streamId: 1, type: MessageType.Request, flags: 0, data: Buffer.from('first request') },
  { streamId: 3, type: MessageType.Request, flags: 0, data: Buffer.alloc(0) },
  { streamId: 5, type: MessageType.Data, flags: 5, data: Buffer.from('x'.repeat(300)) },
];
const sampleBytes = Buffer.concat(sample.map((frame) => encodeFrame(frame, frame.data)));

describe('ttrpc frame codec', () => {
  it('writes the 10-byte header: length, stream id (big-endian), type, flags', () => {
    const header = encodeFrameHeader({ streamId: 0x01020305, type: 2, flags: 0x04 }, 0x0a0b0c);
    assert.deepEqual([...header], [0, 0x0a, 0x0b, 0x0c, 1, 2, 3, 5, 2, 4]);
  });

  it('refuses to write a frame larger than 4 MiB', () => {
    assert.throws(
      () => encodeFrameHeader({ streamId: 1, type: 2, flags: 0 }, MAX_FRAME_DATA_BYTES + 1),
      FrameError,
    );
  });

  it('reads several frames from one chunk', () => {
    assert.deepEqual(decodeChunks([sampleBytes]), sample);
  });

  it('reads frames split at every possible position', () => {
    for (let cut = 1; cut < sampleBytes.length; cut++) {
      assert.deepEqual(
        decodeChunks([sampleBytes.subarray(0, cut), sampleBytes.subarray(cut)]),
        sample,
        `cut at ${cut}`,
      );
    }
  });

  it('reads frames fed one byte at a time', () => {
    const chunks = [...sampleBytes].map((byte) => Buffer.from([byte]));
    assert.deepEqual(decodeChunks(chunks), sample);
  });

  it('reads any frames cut into any chunks (property)', () => {
    const frameArbitrary = fc.record({
      streamId: fc.integer({ min: 0, max: 0xffffffff }),
      type: fc.integer({ min: 0, max: 255 }),
      flags: fc.integer({ min: 0, max: 255 }),
      data: fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes)),
    });
    fc.assert(
      fc.property(fc.array(frameArbitrary, { maxLength: 8 }), fc.array(fc.nat()), (frames, cuts) => {
        const bytes = Buffer.concat(frames.map((frame) => encodeFrame(frame, frame.data)));
        const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
        const chunks: Buffer[] = [];
        let previous = 0;
        for (const point of [...points, bytes.length]) {
          chunks.push(bytes.subarray(previous, point));
          previous = point;
        }
        assert.deepEqual(
          decodeChunks(chunks),
          frames.map((frame) => ({ ...frame })),
        );
      }),
      { numRuns: 200 },
    );
  });

  it('hands out a frame that lies within one chunk without copying it', () => {
    const chunk = encodeFrame({ streamId: 1, type: 1, flags: 0 }, Buffer.from('payload'));
    let data: Buffer | undefined;
    new FrameDecoder().push(chunk, (frame) => (data = frame.data));
    assert.equal(data?.buffer, chunk.buffer);
  });

  it('assembles a 4 MiB frame from 64 KiB chunks into one buffer of its size', () => {
    const body = Buffer.alloc(MAX_FRAME_DATA_BYTES, 7);
    const bytes = encodeFrame({ streamId: 9, type: 1, flags: 0 }, body);
    const decoder = new FrameDecoder();
    const frames: Frame[] = [];
    for (let at = 0; at < bytes.length; at += 65536) {
      decoder.push(bytes.subarray(at, at + 65536), (frame) => frames.push(frame));
      if (frames.length === 0) assert.equal(decoder.bufferedBytes, Math.min(at + 65536, bytes.length));
    }
    assert.equal(frames.length, 1);
    assert.equal(frames[0]?.data.length, MAX_FRAME_DATA_BYTES);
    assert.ok(frames[0]?.data.equals(body));
    assert.equal(decoder.bufferedBytes, 0);
  });

  it('accepts exactly 4 MiB and refuses one byte more, even before the data arrives', () => {
    const header = (length: number): Buffer => {
      const bytes = Buffer.alloc(10);
      bytes.writeUInt32BE(length, 0);
      bytes.writeUInt32BE(1, 4);
      bytes[8] = 1;
      return bytes;
    };
    assert.doesNotThrow(() => new FrameDecoder().push(header(MAX_FRAME_DATA_BYTES), () => undefined));
    assert.throws(
      () => new FrameDecoder().push(header(MAX_FRAME_DATA_BYTES + 1), () => undefined),
      FrameError,
    );
    // An HTTP/1 request line read as a header announces ~1.2 GB.
    assert.throws(
      () => new FrameDecoder().push(Buffer.from('GET / HTTP/1.1\r\n'), () => undefined),
      FrameError,
    );
  });

  it('refuses an oversized header split across chunks too', () => {
    const decoder = new FrameDecoder();
    decoder.push(Buffer.from([0, 0x40]), () => undefined);
    assert.throws(() => decoder.push(Buffer.from([0, 1, 0, 0, 0, 1, 1, 0]), () => undefined), FrameError);
  });

  it('delivers the frames before a bad header in the same chunk', () => {
    const good = encodeFrame({ streamId: 1, type: 1, flags: 0 }, Buffer.from('ok'));
    const bad = Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 1, 0]);
    const frames: Frame[] = [];
    assert.throws(() => new FrameDecoder().push(Buffer.concat([good, bad]), (frame) => frames.push(frame)));
    assert.equal(frames.length, 1);
  });

  it('honours a smaller limit given to the decoder', () => {
    const decoder = new FrameDecoder(16);
    assert.throws(
      () => decoder.push(encodeFrame({ streamId: 1, type: 1, flags: 0 }, Buffer.alloc(17)), () => undefined),
      /17 bytes/,
    );
  });
});
