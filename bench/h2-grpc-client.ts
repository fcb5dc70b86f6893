import * as http2 from 'node:http2';
import * as net from 'node:net';

/**
 * A minimal gRPC client of UnsealSecret for the load generator: unary calls written straight
 * onto one HTTP/2 connection with node:http2 (length-prefixed protobuf, grpc-timeout, status
 * from the trailers), as lean load tools (h2load, ghz) are. grpc-js's client costs CPU per call
 * (docs/performance.md) which on 2 shared cores would be taken from the daemon being measured;
 * this one costs a fraction of that. Its wire format is checked
 * against the daemon by the load run itself (every answer is decoded, every failure counted).
 */
export class RawGrpcClient {
  private readonly session: http2.ClientHttp2Session;

  /** target: `unix:///abs/path` or `host:port`. */
  constructor(target: string) {
    const unixPath = /^unix:(?:\/\/)?(\/.*)$/.exec(target)?.[1];
    this.session = unixPath
      ? http2.connect('http://localhost', { createConnection: () => net.connect(unixPath) })
      : http2.connect(`http://${target}`);
    this.session.on('error', () => undefined);
  }

  async unsealSecret(secret: Uint8Array, timeoutMs = 30_000): Promise<Buffer> {
    const frame = await this.call(
      '/api.SealedSecretService/UnsealSecret',
      encodeUnsealInput(secret),
      timeoutMs,
    );
    return decodeUnsealOutput(frame);
  }

  /** grpc.health.v1.Health/Check for service "" (an empty request): resolves once it answers OK. */
  async healthCheck(timeoutMs = 30_000): Promise<void> {
    await this.call('/grpc.health.v1.Health/Check', EMPTY_MESSAGE, timeoutMs);
  }

  /** One unary call: the answer's bytes (still framed), or a rejection with the grpc-status. */
  private call(path: string, body: Buffer, timeoutMs: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const stream = this.session.request({
        ':method': 'POST',
        ':path': path,
        'content-type': 'application/grpc',
        te: 'trailers',
        'grpc-timeout': `${timeoutMs}m`,
      });
      const chunks: Buffer[] = [];
      let status: string | undefined;
      let message = '';
      const readStatus = (headers: http2.IncomingHttpHeaders): void => {
        const code = headers['grpc-status'];
        if (typeof code === 'string') {
          status = code;
          message = decodeURIComponent(String(headers['grpc-message'] ?? ''));
        }
      };
      stream.on('response', readStatus);
      stream.on('trailers', readStatus);
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('error', reject);
      stream.on('close', () => {
        if (status !== '0') {
          reject(Object.assign(new Error(`grpc-status ${status ?? 'missing'}`), { details: message }));
          return;
        }
        resolve(Buffer.concat(chunks));
      });
      stream.end(body);
    });
  }

  close(): void {
    this.session.close();
  }
}

/** A gRPC frame holding an empty message. */
const EMPTY_MESSAGE = Buffer.alloc(5);

/** gRPC frame (uncompressed flag, 4-byte length) of UnsealSecretInput{bytes secret = 1}. */
export function encodeUnsealInput(secret: Uint8Array): Buffer {
  const length = varint(secret.length);
  const messageLength = 1 + length.length + secret.length;
  const frame = Buffer.allocUnsafe(5 + messageLength);
  frame[0] = 0;
  frame.writeUInt32BE(messageLength, 1);
  frame[5] = 0x0a; // field 1, wire type 2
  length.copy(frame, 6);
  frame.set(secret, 6 + length.length);
  return frame;
}

/** The plaintext of one framed UnsealSecretOutput{bytes plaintext = 1}. */
export function decodeUnsealOutput(frame: Buffer): Buffer {
  if (frame.length < 5 || frame[0] !== 0) throw new Error('not one uncompressed gRPC message');
  const messageLength = frame.readUInt32BE(1);
  if (frame.length !== 5 + messageLength) throw new Error('gRPC message length mismatch');
  if (messageLength === 0) return Buffer.alloc(0);
  if (frame[5] !== 0x0a) throw new Error('UnsealSecretOutput without field 1');
  let offset = 6;
  let length = 0;
  for (let shift = 0; ; shift += 7) {
    const byte = frame[offset++];
    if (byte === undefined || shift > 28) throw new Error('bad varint');
    length |= (byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) break;
  }
  if (offset + length !== frame.length) throw new Error('UnsealSecretOutput with trailing fields');
  return frame.subarray(offset);
}

function varint(value: number): Buffer {
  const bytes: number[] = [];
  while (value > 0x7f) {
    bytes.push((value & 0x7f) | 0x80);
    value >>>= 7;
  }
  bytes.push(value);
  return Buffer.from(bytes);
}
