/**
 * ttrpc message frames (containerd/ttrpc PROTOCOL.md): a 10-byte header — data length (u32 BE),
 * stream id (u32 BE), message type (u8), flags (u8) — followed by the data.
 */

export const FRAME_HEADER_BYTES = 10;
/** Largest data length a frame may announce (4 MiB); so the first byte of a frame is always 0. */
export const MAX_FRAME_DATA_BYTES = 4 << 20;

export const MessageType = {
  Request: 1,
  Response: 2,
  Data: 3,
} as const;

export interface FrameHeader {
  readonly length: number;
  readonly streamId: number;
  readonly type: number;
  readonly flags: number;
}

export interface Frame extends FrameHeader {
  readonly data: Buffer;
}

/** The byte stream is not a sequence of valid frames; the connection cannot be trusted further. */
export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FrameError';
  }
}

export function encodeFrameHeader(header: Omit<FrameHeader, 'length'>, length: number): Buffer {
  if (length > MAX_FRAME_DATA_BYTES) {
    throw new FrameError(`frame data of ${length} bytes exceeds the ${MAX_FRAME_DATA_BYTES}-byte limit`);
  }
  const buffer = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  buffer.writeUInt32BE(length, 0);
  buffer.writeUInt32BE(header.streamId, 4);
  buffer.writeUInt8(header.type, 8);
  buffer.writeUInt8(header.flags, 9);
  return buffer;
}

/** One frame as a single buffer (tests, clients); the server writes header and data separately. */
export function encodeFrame(header: Omit<FrameHeader, 'length'>, data: Uint8Array): Buffer {
  return Buffer.concat([encodeFrameHeader(header, data.length), data]);
}

/**
 * Cuts a byte stream into frames. Chunks may split a frame anywhere or hold several frames.
 * A frame lying within one chunk is handed out as a view of that chunk; the pieces of a frame
 * spread over chunks are kept as they come and copied once when the last arrives, so a large
 * frame costs O(size), and memory follows the bytes received, not the length announced.
 */
export class FrameDecoder {
  private readonly headerBytes = Buffer.alloc(FRAME_HEADER_BYTES);
  private headerFilled = 0;
  private header: FrameHeader | undefined;
  private readonly bodyPieces: Buffer[] = [];
  private bodyFilled = 0;

  constructor(private readonly maxDataBytes: number = MAX_FRAME_DATA_BYTES) {}

  /** Bytes of an unfinished frame held back, waiting for more input. */
  get bufferedBytes(): number {
    return this.header ? FRAME_HEADER_BYTES + this.bodyFilled : this.headerFilled;
  }

  /**
   * Feeds one chunk; calls `onFrame` for each frame completed, in order. Throws FrameError on
   * a header announcing too much data (frames before it in the chunk have been delivered).
   */
  push(chunk: Buffer, onFrame: (frame: Frame) => void): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (!this.header) {
        if (this.headerFilled === 0 && chunk.length - offset >= FRAME_HEADER_BYTES) {
          this.header = this.parseHeader(chunk, offset);
          offset += FRAME_HEADER_BYTES;
        } else {
          const take = Math.min(FRAME_HEADER_BYTES - this.headerFilled, chunk.length - offset);
          chunk.copy(this.headerBytes, this.headerFilled, offset, offset + take);
          this.headerFilled += take;
          offset += take;
          if (this.headerFilled < FRAME_HEADER_BYTES) return;
          this.header = this.parseHeader(this.headerBytes, 0);
          this.headerFilled = 0;
        }
        if (chunk.length - offset >= this.header.length) {
          // The whole body is in this chunk: hand out a view, no copy.
          const header = this.header;
          this.header = undefined;
          onFrame({ ...header, data: chunk.subarray(offset, offset + header.length) });
          offset += header.length;
          continue;
        }
      }
      const header = this.header;
      const take = Math.min(header.length - this.bodyFilled, chunk.length - offset);
      this.bodyPieces.push(chunk.subarray(offset, offset + take));
      this.bodyFilled += take;
      offset += take;
      if (this.bodyFilled === header.length) {
        const data = Buffer.concat(this.bodyPieces, header.length);
        this.header = undefined;
        this.bodyPieces.length = 0;
        this.bodyFilled = 0;
        onFrame({ ...header, data });
      }
    }
  }

  private parseHeader(bytes: Buffer, at: number): FrameHeader {
    const length = bytes.readUInt32BE(at);
    if (length > this.maxDataBytes) {
      throw new FrameError(`frame announces ${length} bytes of data, more than ${this.maxDataBytes}`);
    }
    return {
      length,
      streamId: bytes.readUInt32BE(at + 4),
      type: bytes.readUInt8(at + 8),
      flags: bytes.readUInt8(at + 9),
    };
  }
}
