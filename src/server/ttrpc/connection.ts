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
  /** Bound to this connection (carries its id). */
  readonly logger: Logger;
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
  private readonly decoder = new FrameDecoder();
  private readonly calls = new Map<number, AbortController>();
  private state: State = 'open';
  private waitingForDrain = false;
  private markClosed!: () => void;
  private readonly logger: Logger;

  constructor(
    private readonly socket: net.Socket,
    private readonly context: ConnectionContext,
  ) {
    this.logger = context.logger;
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

  private onData(chunk: Buffer): void {
    if (this.state !== 'open') return;
    try {
      this.decoder.push(chunk, (frame) => this.onFrame(frame));
    } catch (error) {
      if (!(error instanceof FrameError)) throw error;
      this.protocolError(error.message);
    }
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
    this.socket.end(() => this.socket.destroy());
  }

  private protocolError(reason: string, where: Record<string, number> = {}): void {
    this.logger.warn({ ...where, reason }, 'ttrpc protocol error: closing the connection');
    this.state = 'closed';
    this.destroy();
  }

  private onClose(): void {
    this.state = 'closed';
    const reason = new CdhError('CANCELLED', 'the ttrpc connection closed');
    for (const controller of this.calls.values()) controller.abort(reason);
    this.calls.clear();
    this.markClosed();
  }
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
