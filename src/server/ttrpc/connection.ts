import type * as net from 'node:net';
import type { Logger } from 'pino';
import { CdhError } from '../../errors';
import type { ApiDispatcher } from '../api';
import {
  encodeFrameHeader,
  FrameDecoder,
  FrameError,
  MAX_FRAME_DATA_BYTES,
  MessageType,
  type Frame,
} from './frame';
import { encodeResponseEnvelope, type ApiRoute, type TtrpcResponse } from './messages';
import {
  decideRequest,
  describeError,
  EMPTY,
  failureStatus,
  frameDataLimit,
  printable,
  runCall,
} from './requests';

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
    const { routes, maxMessageBytes } = this.context;
    const decision = decideRequest(frame, this.calls.has(frame.streamId), routes, maxMessageBytes);
    if (decision.kind === 'protocol-error') return this.protocolError(decision.reason, decision.where);
    if (decision.kind === 'refuse') return this.refuse(frame.streamId, decision.name, decision.error);
    const { streamId } = frame;
    const controller = new AbortController();
    this.calls.set(streamId, controller);
    void runCall(this.context.dispatcher, decision, controller.signal, this.logger).then((response) => {
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
