import * as net from 'node:net';
import { encodeFrame, FrameDecoder, FrameError, MessageType } from '../server/ttrpc/frame';
import { decodeResponseEnvelope, encodeRequestEnvelope } from '../server/ttrpc/messages';
import { MAX_TIMER_MS } from '../lib/abort';

/**
 * A ttrpc (containerd protocol 1.0, unary) client of a Unix socket: the daemon's own socket
 * (cdh-tool --ttrpc, api-server-rest) and the attestation agent's (GetToken, measurements).
 * One connection, opened at the first call and again after it closes; calls are multiplexed on
 * it by stream id. Every call is bounded: by its timeout (also sent as timeout_nano) and by its
 * abort signal, which both fail the call at once, whatever the peer does.
 */

export type TtrpcFailureKind =
  /** connect failed (no socket, refused, not a socket, …) */
  | 'unreachable'
  /** the connection closed (or broke) before the answer */
  | 'closed'
  /** the call's timeout passed */
  | 'deadline'
  /** the caller's signal aborted the call */
  | 'aborted'
  /** the peer answered with a non-zero status (`code`, `message` are the peer's) */
  | 'status'
  /** the peer sent bytes that are not ttrpc */
  | 'protocol';

export class TtrpcCallError extends Error {
  constructor(
    readonly kind: TtrpcFailureKind,
    message: string,
    /** The gRPC status code the peer answered (kind 'status'); 14 UNAVAILABLE / 4 DEADLINE_EXCEEDED / 1 CANCELLED otherwise. */
    readonly code: number,
    /** The peer's own status message (kind 'status'), else ''. */
    readonly peerMessage = '',
  ) {
    super(message);
    this.name = 'TtrpcCallError';
  }
}

export interface TtrpcCallOptions {
  /** Fails the call after this long (and tells the peer through timeout_nano). */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
  readonly metadata?: ReadonlyArray<{ key: string; value: string }>;
}

const STATUS_CANCELLED = 1;
const STATUS_DEADLINE_EXCEEDED = 4;
const STATUS_UNAVAILABLE = 14;
const MAX_STREAM_ID = 2 ** 31 - 1;

/** `unix:///abs/path`, `unix:/abs/path` or `/abs/path` → the socket path. */
export function ttrpcSocketPath(address: string): string {
  const path = address.startsWith('unix://')
    ? address.slice('unix://'.length)
    : address.startsWith('unix:')
      ? address.slice('unix:'.length)
      : address;
  if (!path.startsWith('/')) {
    throw new Error(`ttrpc address "${address}" is not unix:///absolute/path or an absolute path`);
  }
  return path;
}

interface PendingCall {
  resolve(payload: Buffer): void;
  reject(error: TtrpcCallError): void;
}

/** One socket and the calls waiting on it (a later socket never sees an older one's calls). */
interface Connection {
  readonly socket: net.Socket;
  readonly pending: Map<number, PendingCall>;
}

export class TtrpcClient {
  private readonly socketPath: string;
  private connection: Promise<Connection> | undefined;
  private nextStreamId = 1;
  private closedByUser = false;

  /** `address`: see ttrpcSocketPath. Nothing is dialled until the first call. */
  constructor(readonly address: string) {
    this.socketPath = ttrpcSocketPath(address);
  }

  /** One unary call: the response payload, or a TtrpcCallError. */
  async call(
    service: string,
    method: string,
    request: Uint8Array,
    options: TtrpcCallOptions = {},
  ): Promise<Buffer> {
    if (this.closedByUser) throw this.failure('closed', 'the client was closed');
    const timeoutMs = options.timeoutMs;
    const name = `${service}/${method}`;
    return new Promise<Buffer>((resolve, reject) => {
      let settled = false;
      let streamId: number | undefined;
      let connection: Connection | undefined;
      const finish = (outcome: () => void): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        if (streamId !== undefined) connection?.pending.delete(streamId);
        outcome();
      };
      const fail = (error: TtrpcCallError): void => finish(() => reject(error));
      const onAbort = (): void => fail(this.failure('aborted', `${name}: the caller gave up`));
      const timer =
        timeoutMs === undefined
          ? undefined
          : setTimeout(
              () => fail(this.failure('deadline', `${name}: no answer within ${timeoutMs} ms`)),
              Math.min(Math.max(timeoutMs, 0), MAX_TIMER_MS),
            );
      if (options.signal?.aborted) return onAbort();
      options.signal?.addEventListener('abort', onAbort, { once: true });

      this.connect().then(
        (opened) => {
          if (settled) return;
          connection = opened;
          streamId = this.allocateStreamId();
          opened.pending.set(streamId, {
            resolve: (payload) => finish(() => resolve(payload)),
            reject: fail,
          });
          const envelope = encodeRequestEnvelope({
            service,
            method,
            payload: Buffer.from(request.buffer, request.byteOffset, request.length),
            timeoutNano: timeoutMs === undefined ? 0 : Math.max(1, Math.round(timeoutMs)) * 1_000_000,
            metadata: options.metadata ?? [],
          });
          try {
            opened.socket.write(encodeFrame({ streamId, type: MessageType.Request, flags: 0 }, envelope));
          } catch (error) {
            // The only synchronous failure: a request larger than a frame may carry.
            fail(this.failure('protocol', `${name}: ${(error as Error).message}`));
          }
        },
        (error: TtrpcCallError) => fail(error),
      );
    });
  }

  /** Closes the connection; calls in flight fail with kind 'closed'. */
  close(): void {
    this.closedByUser = true;
    void this.connection?.then(
      ({ socket }) => socket.destroy(),
      () => undefined,
    );
    this.connection = undefined;
  }

  private allocateStreamId(): number {
    const id = this.nextStreamId;
    this.nextStreamId = id + 2 > MAX_STREAM_ID ? 1 : id + 2;
    return id;
  }

  private connect(): Promise<Connection> {
    if (this.connection) return this.connection;
    const opened = new Promise<Connection>((resolve, reject) => {
      const socket = net.connect(this.socketPath);
      socket.once('error', (error: NodeJS.ErrnoException) => {
        if (this.connection === opened) this.connection = undefined;
        reject(
          this.failure('unreachable', `cannot connect to ${this.address}: ${error.code ?? error.message}`),
        );
      });
      socket.once('connect', () => {
        socket.removeAllListeners('error');
        const connection: Connection = { socket, pending: new Map() };
        this.attach(connection, opened);
        resolve(connection);
      });
    });
    this.connection = opened;
    return opened;
  }

  private attach(connection: Connection, opened: Promise<Connection>): void {
    const { socket, pending } = connection;
    const decoder = new FrameDecoder();
    socket.on('error', () => undefined); // a reset shows as 'close'
    socket.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk, (frame) => {
          if (frame.type !== MessageType.Response) return;
          const waiter = pending.get(frame.streamId);
          if (!waiter) return; // an answer to a call that already gave up
          const response = decodeResponseEnvelope(frame.data);
          if (response.status.code === 0) {
            waiter.resolve(Buffer.from(response.payload));
          } else {
            waiter.reject(
              new TtrpcCallError(
                'status',
                `${this.address} answered status ${response.status.code}: ${response.status.message}`,
                response.status.code,
                response.status.message,
              ),
            );
          }
        });
      } catch (error) {
        const reason = error instanceof FrameError ? error.message : 'an undecodable response';
        this.breakConnection(connection, opened, this.failure('protocol', `${this.address} sent ${reason}`));
      }
    });
    socket.once('close', () =>
      this.breakConnection(
        connection,
        opened,
        this.failure('closed', `${this.address} closed the connection before answering`),
      ),
    );
  }

  private breakConnection(connection: Connection, opened: Promise<Connection>, error: TtrpcCallError): void {
    connection.socket.destroy();
    if (this.connection === opened) this.connection = undefined;
    const waiters = [...connection.pending.values()];
    connection.pending.clear();
    for (const waiter of waiters) waiter.reject(error);
  }

  private failure(kind: Exclude<TtrpcFailureKind, 'status'>, message: string): TtrpcCallError {
    const code =
      kind === 'deadline'
        ? STATUS_DEADLINE_EXCEEDED
        : kind === 'aborted'
          ? STATUS_CANCELLED
          : STATUS_UNAVAILABLE;
    return new TtrpcCallError(kind, message, code);
  }
}
