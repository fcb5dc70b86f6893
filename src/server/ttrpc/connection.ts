import type * as net from 'node:net';
import type { Logger } from 'pino';
import { CdhError } from '../../errors';
import type { ApiDispatcher } from '../api';
import { toCallFailure } from '../status';
import {
  encodeFrameHeader,
  FrameDecoder,
  FrameError,
  MAX_FRAME_DATA_BYTES,
  MessageType,
  type Frame,
} from './frame';
import {
  decodeApiMessage,
  decodeRequestEnvelope,
  encodeApiMessage,
  encodeResponseEnvelope,
  type ApiRoute,
  type TtrpcRequest,
  type TtrpcResponse,
} from './messages';

export interface ConnectionContext {
  readonly dispatcher: ApiDispatcher;
  readonly routes: ReadonlyMap<string, ApiRoute>;
  readonly maxMessageBytes: number;
  /** A frame begun must be complete within this (the first one included). */
  readonly frameTimeoutMs: number;
  /** With no call in flight and no frame begun, the connection is closed after this (0 = never). */
  readonly idleTimeoutMs: number;
  /** Bound to this connection (carries its id). */
  readonly logger: Logger;
  /** Rate-limited warnings about limits being hit. */
  readonly refusals?: { note(message: string, fields?: Record<string, unknown>): void };
}

/** Node timers cannot wait longer than 2^31-1 ms (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;
const EMPTY = Buffer.alloc(0);

type State = 'open' | 'draining' | 'closed';

/**
 * One ttrpc connection: reads request frames, runs each call through the dispatcher
 * concurrently and writes each answer as one response frame on the request's stream, in
 * whatever order the calls finish. A frame that breaks the protocol closes this connection.
 */
export class TtrpcConnection {
  /** Resolves once the socket has closed and every in-flight call has been aborted. */
  readonly closed: Promise<void>;
  private readonly decoder: FrameDecoder;
  private readonly calls = new Map<number, AbortController>();
  /** Runs while a frame is partly received, or while the connection is idle. */
  private timer: NodeJS.Timeout | undefined;
  private timerKind: 'frame' | 'idle' | undefined;
  private state: State = 'open';
  private waitingForDrain = false;
  private markClosed!: () => void;
  private readonly logger: Logger;

  constructor(
    private readonly socket: net.Socket,
    private readonly context: ConnectionContext,
  ) {
    this.logger = context.logger;
    this.decoder = new FrameDecoder(frameDataLimit(context.maxMessageBytes));
    this.closed = new Promise((resolve) => (this.markClosed = resolve));
  }

  start(initialBytes?: Buffer): void {
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    // The client will send nothing more: answer what is in flight, then close.
    this.socket.on('end', () => this.drain());
    this.socket.on('error', (error: NodeJS.ErrnoException) =>
      this.logger.debug({ code: error.code }, 'ttrpc connection error'),
    );
    this.socket.on('close', () => this.onClose());
    if (this.socket.destroyed) {
      this.onClose();
      return;
    }
    if (initialBytes && initialBytes.length > 0) this.onData(initialBytes);
    this.updateReading();
    this.updateTimer();
  }

  /** Reads no more requests; closes the socket once the calls in flight are answered. */
  drain(): Promise<void> {
    if (this.state === 'open') {
      this.state = 'draining';
      this.updateReading();
      if (this.calls.size === 0) this.finish();
    }
    return this.closed;
  }

  destroy(): void {
    this.socket.destroy();
  }

  /**
   * After the shutdown grace: every call still in flight is answered SHUTTING_DOWN (callers
   * get a status, not a bare close), then the socket is closed.
   */
  abandon(): void {
    if (this.state !== 'closed' && this.calls.size > 0) {
      const error = new CdhError(
        'SHUTTING_DOWN',
        'the daemon is shutting down and the call did not finish within the grace period',
      );
      const status = failureStatus(error);
      const calls = [...this.calls];
      this.calls.clear();
      for (const [streamId] of calls) {
        try {
          this.send(streamId, { status, payload: EMPTY });
        } catch {
          break;
        }
      }
      for (const [, controller] of calls) controller.abort(error);
    }
    this.state = 'closed';
    this.clearTimer();
    if (this.socket.destroyed) return;
    this.socket.end();
    // A client that reads nothing must not hold the exit: the answers had their chance.
    setTimeout(() => this.socket.destroy(), 200).unref();
  }

  private onData(chunk: Buffer): void {
    if (this.state !== 'open') return;
    try {
      this.decoder.push(chunk, (frame) => this.onFrame(frame));
    } catch (error) {
      if (!(error instanceof FrameError)) throw error;
      this.protocolError(error.message);
      return;
    }
    this.updateTimer();
  }

  /** A partial frame must complete in time; an idle connection is closed after its timeout. */
  private updateTimer(): void {
    let kind: 'frame' | 'idle' | undefined;
    if (this.state === 'closed') kind = undefined;
    else if (this.decoder.bufferedBytes > 0) kind = 'frame';
    else if (this.calls.size === 0 && this.state === 'open' && this.context.idleTimeoutMs > 0) kind = 'idle';
    if (kind === undefined) return this.clearTimer();
    if (kind === this.timerKind && kind === 'frame') return; // the frame's deadline does not move
    this.clearTimer();
    this.timerKind = kind;
    const ms = kind === 'frame' ? this.context.frameTimeoutMs : this.context.idleTimeoutMs;
    this.timer = setTimeout(() => this.onTimer(kind), ms);
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerKind = undefined;
  }

  private onTimer(kind: 'frame' | 'idle'): void {
    this.timer = undefined;
    this.timerKind = undefined;
    if (kind === 'frame') {
      this.context.refusals?.note(
        'ttrpc connection closed: a frame was not completed within handshake_timeout_ms',
        { handshakeTimeoutMs: this.context.frameTimeoutMs, buffered: this.decoder.bufferedBytes },
      );
      this.state = 'closed';
      this.destroy();
      return;
    }
    this.logger.debug({ idleTimeoutMs: this.context.idleTimeoutMs }, 'ttrpc connection idle: closing it');
    this.state = 'draining';
    this.updateReading();
    this.finish();
  }

  private onFrame(frame: Frame): void {
    if (this.state !== 'open') return;
    const where = { streamId: frame.streamId, type: frame.type, length: frame.length };
    if (frame.streamId % 2 !== 1) return this.protocolError('stream id must be odd', where);
    switch (frame.type) {
      case MessageType.Request:
        break;
      case MessageType.Data:
        return this.protocolError('data frame on a unary stream', where);
      case MessageType.Response:
        return this.protocolError('response frame from the client', where);
      default:
        return this.protocolError('unknown message type', where);
    }
    if (this.calls.has(frame.streamId)) return this.protocolError('stream id already in use', where);
    let request: TtrpcRequest;
    try {
      request = decodeRequestEnvelope(frame.data);
    } catch {
      return this.protocolError('request frame is not a ttrpc Request message', where);
    }
    this.onRequest(frame.streamId, request);
  }

  private onRequest(streamId: number, request: TtrpcRequest): void {
    const name = `${request.service}/${request.method}`;
    if (request.payload.length > this.context.maxMessageBytes) {
      return this.refuse(
        streamId,
        name,
        new CdhError(
          'REQUEST_TOO_LARGE',
          `request of ${request.payload.length} bytes is larger than ${this.context.maxMessageBytes} bytes (max_message_bytes)`,
        ),
      );
    }
    const route = this.context.routes.get(name);
    if (!route) {
      return this.refuse(
        streamId,
        name,
        new CdhError('NOT_IMPLEMENTED', `unknown service or method "${printable(name)}"`),
      );
    }
    let apiRequest: Record<string, unknown>;
    try {
      apiRequest = decodeApiMessage(route.requestType, request.payload);
    } catch {
      return this.refuse(
        streamId,
        name,
        new CdhError(
          'REQUEST_MALFORMED',
          `the payload is not a valid ${route.requestType.fullName.slice(1)}`,
        ),
      );
    }
    const controller = new AbortController();
    this.calls.set(streamId, controller);
    void this.answer(route, apiRequest, request.timeoutNano, controller).then((response) => {
      if (this.calls.get(streamId) !== controller) return; // the connection closed meanwhile
      this.calls.delete(streamId);
      try {
        this.send(streamId, response);
      } catch (error) {
        this.logger.error({ err: describeError(error) }, 'ttrpc answer could not be written');
        this.destroy();
        return;
      }
      if (this.state === 'draining' && this.calls.size === 0) this.finish();
      else this.updateTimer();
    });
  }

  /** Runs one call; never rejects. */
  private async answer(
    route: ApiRoute,
    apiRequest: Record<string, unknown>,
    timeoutNano: number,
    controller: AbortController,
  ): Promise<TtrpcResponse> {
    try {
      const result = await this.context.dispatcher.invoke(route.method, apiRequest, {
        transport: 'ttrpc',
        deadline: deadlineFrom(timeoutNano),
        signal: controller.signal,
      });
      if (!result.ok) return { status: { code: result.code, message: result.message }, payload: EMPTY };
      return {
        status: { code: 0, message: '' },
        payload: encodeApiMessage(route.responseType, result.response),
      };
    } catch (error) {
      this.logger.error(
        { method: route.method, err: describeError(error) },
        'ttrpc call failed unexpectedly',
      );
      return { status: failureStatus(new CdhError('INTERNAL', 'internal error')), payload: EMPTY };
    }
  }

  /** Answers a request the dispatcher never sees (too large, unknown method, undecodable). */
  private refuse(streamId: number, name: string, error: CdhError): void {
    const status = failureStatus(error);
    this.logger.info(
      { method: printable(name), transport: 'ttrpc', status: error.status, error: status.message },
      'call refused',
    );
    this.send(streamId, { status, payload: EMPTY });
  }

  private send(streamId: number, response: TtrpcResponse): void {
    if (this.state === 'closed' || !this.socket.writable) return;
    let data = encodeResponseEnvelope(response);
    if (data.length > MAX_FRAME_DATA_BYTES) {
      const error = new CdhError(
        'RESPONSE_TOO_LARGE',
        `the answer of ${response.payload.length} bytes does not fit in a ttrpc frame (at most ${MAX_FRAME_DATA_BYTES} bytes)`,
      );
      this.logger.info({ transport: 'ttrpc', streamId, error: error.message }, 'answer too large');
      data = encodeResponseEnvelope({ status: failureStatus(error), payload: EMPTY });
    }
    const header = encodeFrameHeader({ streamId, type: MessageType.Response, flags: 0 }, data.length);
    // Each answer is written whole, header then data, before any other: frames never interleave.
    this.socket.cork();
    this.socket.write(header);
    this.socket.write(data);
    this.socket.uncork();
    if (this.socket.writableNeedDrain && !this.waitingForDrain) {
      // The client is not reading its answers: stop taking requests until it catches up.
      this.waitingForDrain = true;
      this.updateReading();
      this.socket.once('drain', () => {
        this.waitingForDrain = false;
        this.updateReading();
      });
    }
  }

  private updateReading(): void {
    if (this.state === 'open' && !this.waitingForDrain) this.socket.resume();
    else this.socket.pause();
  }

  private finish(): void {
    this.clearTimer();
    this.socket.end(() => this.socket.destroy());
    // A peer that never reads would keep the half-closed socket: bounded.
    setTimeout(() => this.socket.destroy(), this.context.frameTimeoutMs).unref();
  }

  private protocolError(reason: string, where: Record<string, number> = {}): void {
    this.logger.warn({ ...where, reason }, 'ttrpc protocol error: closing the connection');
    this.state = 'closed';
    this.destroy();
  }

  private onClose(): void {
    this.state = 'closed';
    this.clearTimer();
    const reason = new CdhError('CANCELLED', 'the ttrpc connection closed');
    for (const controller of this.calls.values()) controller.abort(reason);
    this.calls.clear();
    this.markClosed();
  }
}

/** Room for the Request envelope (service and method names, metadata) around the payload. */
const ENVELOPE_ALLOWANCE_BYTES = 64 * 1024;

/**
 * The largest request frame read: ttrpc's usual 4 MiB, or more when max_message_bytes is
 * larger, so the configured limit holds on both transports.
 */
export function frameDataLimit(maxMessageBytes: number): number {
  return Math.max(MAX_FRAME_DATA_BYTES, maxMessageBytes + ENVELOPE_ALLOWANCE_BYTES);
}

function deadlineFrom(timeoutNano: number): number | undefined {
  if (!(timeoutNano > 0)) return undefined;
  const ms = timeoutNano / 1e6;
  // Beyond what a timer can wait (weeks), a timeout is no limit in practice.
  if (ms > MAX_TIMER_MS) return undefined;
  return Date.now() + ms;
}

function failureStatus(error: CdhError): { code: number; message: string } {
  const failure = toCallFailure(error);
  return { code: failure.code, message: failure.message };
}

/** Client-chosen names go into messages and logs shortened and without control characters. */
function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\u0000-\u001f\u007f]/g, '?');
  return clean.length > 200 ? `${clean.slice(0, 200)}…` : clean;
}

function describeError(error: unknown): unknown {
  return error instanceof Error ? { type: error.name, stack: error.stack } : String(error);
}
