import { connect, type Socket } from 'node:net';

/**
 * A hand-rolled HTTP/2 client for abuse tests: it writes frames as told (ignoring the
 * server's limits, as an attacker would) and counts what the server sends back.
 */

export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

const FRAME_DATA = 0x0;
const FRAME_HEADERS = 0x1;
const FRAME_RST_STREAM = 0x3;
const FRAME_SETTINGS = 0x4;
const FRAME_GOAWAY = 0x7;
const FLAG_END_HEADERS = 0x4;
const FLAG_ACK = 0x1;
const SETTINGS_MAX_CONCURRENT_STREAMS = 0x3;

export function h2Frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header.writeUInt8(type, 3);
  header.writeUInt8(flags, 4);
  header.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([header, payload]);
}

function literal(nameIndex: number, value: string): Buffer {
  // Literal header field without indexing, indexed name (RFC 7541 section 6.2.2), 4-bit prefix.
  const parts: number[] = [];
  if (nameIndex < 15) parts.push(nameIndex);
  else parts.push(15, nameIndex - 15);
  const bytes = Buffer.from(value, 'latin1');
  return Buffer.concat([Buffer.from(parts), Buffer.from([bytes.length]), bytes]);
}

function newName(name: string, value: string): Buffer {
  const n = Buffer.from(name, 'latin1');
  const v = Buffer.from(value, 'latin1');
  return Buffer.concat([Buffer.from([0x00, n.length]), n, Buffer.from([v.length]), v]);
}

/** HEADERS of a gRPC call to `path` (HPACK static-table names, no Huffman, no dynamic table). */
export function grpcHeadersBlock(path: string): Buffer {
  return Buffer.concat([
    Buffer.from([0x83, 0x86]), // :method POST, :scheme http
    literal(4, path), // :path
    literal(1, 'localhost'), // :authority
    literal(31, 'application/grpc'), // content-type
    newName('te', 'trailers'),
  ]);
}

export interface RawH2Connection {
  readonly socket: Socket;
  /** SETTINGS_MAX_CONCURRENT_STREAMS from the server's first SETTINGS (undefined: not sent). */
  maxConcurrentStreams(): number | undefined;
  readonly counts: { rstStream: number; goaway: number; settings: number };
  readonly closed: Promise<void>;
  /** Opens `count` streams, each with its headers and the first bytes of a message, never ended. */
  openHalfSentStreams(count: number, path: string): void;
}

export function rawH2Connect(socketPath: string): Promise<RawH2Connection> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    let settingsValue: number | undefined;
    const counts = { rstStream: 0, goaway: 0, settings: 0 };
    let rest = Buffer.alloc(0);
    let nextStream = 1;
    const closed = new Promise<void>((done) => socket.once('close', () => done()));
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      rest = Buffer.concat([rest, chunk]);
      while (rest.length >= 9) {
        const length = rest.readUIntBE(0, 3);
        if (rest.length < 9 + length) break;
        const type = rest.readUInt8(3);
        const flags = rest.readUInt8(4);
        const payload = rest.subarray(9, 9 + length);
        rest = rest.subarray(9 + length);
        if (type === FRAME_SETTINGS && (flags & FLAG_ACK) === 0) {
          counts.settings++;
          for (let at = 0; at + 6 <= payload.length; at += 6) {
            if (payload.readUInt16BE(at) === SETTINGS_MAX_CONCURRENT_STREAMS && counts.settings === 1)
              settingsValue = payload.readUInt32BE(at + 2);
          }
          socket.write(h2Frame(FRAME_SETTINGS, FLAG_ACK, 0, Buffer.alloc(0)));
        } else if (type === FRAME_RST_STREAM) counts.rstStream++;
        else if (type === FRAME_GOAWAY) counts.goaway++;
      }
    });
    socket.once('connect', () => {
      socket.write(Buffer.concat([H2_PREFACE, h2Frame(FRAME_SETTINGS, 0, 0, Buffer.alloc(0))]));
      resolve({
        socket,
        counts,
        closed,
        maxConcurrentStreams: () => settingsValue,
        openHalfSentStreams(count, path) {
          const block = grpcHeadersBlock(path);
          // A gRPC message announcing 100 bytes, of which 10 are sent.
          const partial = Buffer.concat([Buffer.from([0, 0, 0, 0, 100]), Buffer.alloc(10, 0x0a)]);
          const frames: Buffer[] = [];
          for (let i = 0; i < count; i++) {
            const id = nextStream;
            nextStream += 2;
            frames.push(h2Frame(FRAME_HEADERS, FLAG_END_HEADERS, id, block));
            frames.push(h2Frame(FRAME_DATA, 0, id, partial));
          }
          if (!socket.destroyed) socket.write(Buffer.concat(frames));
        },
      });
    });
    socket.once('error', reject);
  });
}
