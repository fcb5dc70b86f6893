import type * as net from 'node:net';
import type { Logger } from 'pino';
import type { ApiDispatcher } from '../api';
import { TtrpcConnection } from './connection';
import { apiRoutes, type ApiRoute } from './messages';

export interface TtrpcServerOptions {
  /** Larger request payloads are answered RESOURCE_EXHAUSTED (the connection stays usable). */
  maxMessageBytes: number;
  logger: Logger;
  /** A frame begun must be complete within this (default 10 s). */
  frameTimeoutMs?: number;
  /** Connections with no call in flight are closed after this (default 0 = never). */
  idleTimeoutMs?: number;
  refusals?: { note(message: string, fields?: Record<string, unknown>): void };
}

/**
 * containerd's ttrpc (protocol 1.0, unary calls) over sockets someone else accepted: the
 * daemon's listener hands over every connection that does not start with the HTTP/2 preface.
 */
export class TtrpcServer {
  private readonly connections = new Set<TtrpcConnection>();
  private readonly routes: ReadonlyMap<string, ApiRoute>;
  private readonly logger: Logger;
  private closing = false;
  private nextConnectionId = 1;

  constructor(
    private readonly dispatcher: ApiDispatcher,
    private readonly options: TtrpcServerOptions,
  ) {
    this.routes = apiRoutes();
    this.logger = options.logger.child({ component: 'ttrpc' });
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /**
   * Takes over a connected socket. `initialBytes` are bytes already read from it (the
   * listener's sniffing), processed before anything else the socket delivers; bytes put back
   * with `socket.unshift` need not be passed here.
   */
  handleConnection(socket: net.Socket, initialBytes?: Buffer): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const logger = this.logger.child({ conn: this.nextConnectionId++ });
    const connection = new TtrpcConnection(socket, {
      dispatcher: this.dispatcher,
      routes: this.routes,
      maxMessageBytes: this.options.maxMessageBytes,
      frameTimeoutMs: this.options.frameTimeoutMs ?? 10_000,
      idleTimeoutMs: this.options.idleTimeoutMs ?? 0,
      logger,
      ...(this.options.refusals === undefined ? {} : { refusals: this.options.refusals }),
    });
    this.connections.add(connection);
    void connection.closed.then(() => {
      this.connections.delete(connection);
      logger.debug('ttrpc connection closed');
    });
    logger.debug('ttrpc connection');
    connection.start(initialBytes);
  }

  /**
   * Graceful stop: no new connections, no new requests; calls in flight are answered, then
   * each socket closes. Bounding the wait is the caller's job (call destroy() when it is over).
   */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.connections].map((connection) => connection.drain()));
  }

  /**
   * Ends every connection now: calls still in flight are answered SHUTTING_DOWN first (then
   * aborted as their sockets close).
   */
  destroy(): void {
    this.closing = true;
    for (const connection of this.connections) connection.abandon();
  }
}
