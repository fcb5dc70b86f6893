import * as net from 'node:net';
import { encodeFrame, FrameDecoder, MessageType } from '../../src/server/ttrpc/frame';
import {
  apiMessageType,
  decodeApiMessage,
  decodeResponseEnvelope,
  encodeApiMessage,
  encodeRequestEnvelope,
} from '../../src/server/ttrpc/messages';

/** A small ttrpc (protocol 1.0, unary) client for tests. */

export interface TtrpcCallResult {
  readonly status: { readonly code: number; readonly message: string };
  readonly payload: Buffer;
}

export interface TtrpcCallOptions {
  /** Sent as the request's timeout_nano. */
  readonly timeoutNs?: number;
  readonly metadata?: ReadonlyArray<{ key: string; value: string }>;
  /** Use this stream id instead of the next odd one (protocol tests). */
  readonly streamId?: number;
}

export interface TtrpcClient {
  /** One unary call; rejects only when the connection closes before the answer. */
  call(
    service: string,
    method: string,
    requestBytes: Uint8Array,
    options?: TtrpcCallOptions,
  ): Promise<TtrpcCallResult>;
  /** Writes bytes as they are (malformed-frame tests). */
  writeRaw(bytes: Uint8Array): void;
  /** Resolves when the connection has closed, whoever closed it. */
  readonly closed: Promise<void>;
  readonly isClosed: boolean;
  close(): Promise<void>;
}

export class TtrpcConnectionClosedError extends Error {
  constructor() {
    super('the ttrpc connection closed before the answer');
    this.name = 'TtrpcConnectionClosedError';
  }
}

export function connectTtrpc(socketPath: string): Promise<TtrpcClient> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(new Client(socket));
    });
  });
}

class Client implements TtrpcClient {
  readonly closed: Promise<void>;
  isClosed = false;
  private nextStreamId = 1;
  private readonly decoder = new FrameDecoder();
  private readonly pending = new Map<
    number,
    { resolve: (result: TtrpcCallResult) => void; reject: (error: Error) => void }
  >();

  constructor(private readonly socket: net.Socket) {
    socket.on('error', () => undefined); // a reset shows as 'close'
    socket.on('data', (chunk: Buffer) =>
      this.decoder.push(chunk, (frame) => {
        const waiter = this.pending.get(frame.streamId);
        if (frame.type !== MessageType.Response || !waiter) return;
        this.pending.delete(frame.streamId);
        waiter.resolve(decodeResponseEnvelope(frame.data) as TtrpcCallResult);
      }),
    );
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.isClosed = true;
        for (const waiter of this.pending.values()) waiter.reject(new TtrpcConnectionClosedError());
        this.pending.clear();
        resolve();
      }),
    );
  }

  call(
    service: string,
    method: string,
    requestBytes: Uint8Array,
    options: TtrpcCallOptions = {},
  ): Promise<TtrpcCallResult> {
    if (this.isClosed) return Promise.reject(new TtrpcConnectionClosedError());
    const streamId = options.streamId ?? this.nextStreamId;
    if (options.streamId === undefined) this.nextStreamId += 2;
    const envelope = encodeRequestEnvelope({
      service,
      method,
      payload: Buffer.from(requestBytes),
      timeoutNano: options.timeoutNs ?? 0,
      metadata: options.metadata ?? [],
    });
    return new Promise((resolve, reject) => {
      this.pending.set(streamId, { resolve, reject });
      this.socket.write(encodeFrame({ streamId, type: MessageType.Request, flags: 0 }, envelope));
    });
  }

  writeRaw(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  close(): Promise<void> {
    this.socket.end();
    return this.closed;
  }
}

/** Encodes an api.* message, e.g. `encodeApi('api.UnsealSecretInput', { secret })`. */
export function encodeApi(typeName: string, message: object): Buffer {
  return Buffer.from(encodeApiMessage(apiMessageType(typeName), message));
}

/** Decodes an api.* message (generated field names, bytes as Buffers). */
export function decodeApi(typeName: string, bytes: Uint8Array): Record<string, unknown> {
  return decodeApiMessage(apiMessageType(typeName), bytes);
}

/** UnsealSecret over ttrpc: the plaintext, or the failure status. */
export async function ttrpcUnsealSecret(
  client: TtrpcClient,
  secret: Uint8Array,
  options?: TtrpcCallOptions,
): Promise<TtrpcCallResult & { plaintext?: Buffer }> {
  const result = await client.call(
    'api.SealedSecretService',
    'UnsealSecret',
    encodeApi('api.UnsealSecretInput', { secret }),
    options,
  );
  if (result.status.code !== 0) return result;
  const output = decodeApi('api.UnsealSecretOutput', result.payload);
  return { ...result, plaintext: (output.plaintext as Buffer | undefined) ?? Buffer.alloc(0) };
}

/** GetResource over ttrpc: the resource, or the failure status. */
export async function ttrpcGetResource(
  client: TtrpcClient,
  resourcePath: string,
  options?: TtrpcCallOptions,
): Promise<TtrpcCallResult & { resource?: Buffer }> {
  const result = await client.call(
    'api.GetResourceService',
    'GetResource',
    encodeApi('api.GetResourceRequest', { ResourcePath: resourcePath }),
    options,
  );
  if (result.status.code !== 0) return result;
  const output = decodeApi('api.GetResourceResponse', result.payload);
  return { ...result, resource: (output.Resource as Buffer | undefined) ?? Buffer.alloc(0) };
}
