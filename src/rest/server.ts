import * as http from 'node:http';
import * as net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { isLoopbackHost } from '../net-guard';
import { closingAnswer, failure, FORBIDDEN_TEXT, oneLine, writeAnswer, type RestAnswer } from './answers';
import { hasBody, readBounded } from './body';
import { originForm, splitTarget, type RestRouter } from './router';

/**
 * The HTTP side of api-server-rest. It faces the pod's workloads, the least trusted callers in
 * the guest, so: a peer that is not on loopback is answered 403 before a byte of its request is
 * parsed; requests are bounded (header size, body size, header/body/keep-alive timeouts); the
 * number of connections is bounded, and at the bound the oldest connection with no request in
 * progress makes room for the new one.
 */

export interface RestServerLimits {
  readonly maxConnections: number;
  readonly maxHeaderBytes: number;
  readonly maxBodyBytes: number;
  /** From connect to the first request's last header (else 408 and close). */
  readonly headersTimeoutMs: number;
  /** For a body that is read (POST /aa/aael) to arrive whole (else 408). */
  readonly requestTimeoutMs: number;
  /** From an answer to the next request's last header (else the connection closes). */
  readonly keepAliveTimeoutMs: number;
}

export const DEFAULT_LIMITS: RestServerLimits = {
  maxConnections: 1024,
  maxHeaderBytes: 8 * 1024,
  maxBodyBytes: 64 * 1024,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 15_000,
  keepAliveTimeoutMs: 5_000,
};

/** A refused peer gets this long to read the answer before its socket is destroyed. */
const REFUSED_LINGER_MS = 1_000;
/** Bytes of a refused peer's request that are discarded (never parsed) before giving up on it. */
const REFUSED_DISCARD_BYTES = 64 * 1024;
/** Refused sockets lingering at once; past this a refused socket is dropped without an answer. */
const MAX_LINGERING_REFUSED = 256;
const MAX_LOGGED_PATH_CHARS = 256;

interface Tracked {
  /** Requests on this connection that have not been answered yet. */
  busy: number;
  /** Runs while no request is in progress: the next request's headers must arrive before it fires. */
  idleTimer: NodeJS.Timeout | undefined;
  /** Whether a request has been answered on it (an expiry then is a kept-alive connection going idle). */
  served: boolean;
}

export interface RestServerOptions {
  readonly router: RestRouter;
  readonly logger: Logger;
  readonly limits?: Partial<RestServerLimits>;
}

export class RestServer {
  private readonly limits: RestServerLimits;
  private readonly http: http.Server;
  private readonly front: net.Server;
  /** Insertion order is connection age: the first idle one is the oldest. */
  private readonly connections = new Map<net.Socket, Tracked>();
  private readonly logger: Logger;
  private readonly router: RestRouter;
  private closing = false;
  private lingering = 0;

  constructor(options: RestServerOptions) {
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.logger = options.logger;
    this.router = options.router;
    this.http = http.createServer(
      {
        maxHeaderSize: this.limits.maxHeaderBytes,
        keepAliveTimeout: this.limits.keepAliveTimeoutMs,
        noDelay: true,
      },
      (req, res) => this.onRequest(req, res),
    );
    // Header timeouts: armIdleTimer. Inactivity while a call to the daemon is in progress is
    // bounded by the call's deadline.
    this.http.timeout = 0;
    this.http.on('clientError', (error: NodeJS.ErrnoException, socket) => this.onClientError(error, socket));
    // Connections are accepted here, checked, then handed to the HTTP server.
    this.front = net.createServer({ pauseOnConnect: true }, (socket) => this.onConnection(socket));
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  listen(host: string, port: number): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      this.front.once('error', reject);
      this.front.listen({ host, port, exclusive: true }, () => {
        this.front.off('error', reject);
        resolve(this.front.address() as net.AddressInfo);
      });
    });
  }

  /**
   * Stops accepting, closes idle connections, lets answers in progress finish for up to
   * `graceMs`, then destroys what is left.
   */
  async close(graceMs = 5_000): Promise<void> {
    this.closing = true;
    const stopped = new Promise<void>((resolve) => this.front.close(() => resolve()));
    for (const [socket, tracked] of this.connections) if (tracked.busy === 0) socket.destroy();
    const drained = new Promise<void>((resolve) => {
      const check = (): void => {
        if (this.connections.size === 0) resolve();
        else setTimeout(check, 20).unref();
      };
      check();
    });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
    await Promise.race([drained, timedOut]);
    clearTimeout(timer);
    for (const socket of this.connections.keys()) socket.destroy();
    this.http.close();
    await stopped;
  }

  private onConnection(socket: net.Socket): void {
    socket.on('error', () => undefined); // a reset shows as 'close'
    const remote = socket.remoteAddress ?? '';
    if (!isLoopbackHost(remote)) {
      this.refuse(socket, failure(403, FORBIDDEN_TEXT));
      this.logger.info({ status: 403, remote, reason: 'the peer is not on a loopback address' }, 'request');
      return;
    }
    if (this.closing) {
      socket.destroy();
      return;
    }
    if (this.connections.size >= this.limits.maxConnections && !this.evictIdleConnection()) {
      this.refuse(
        socket,
        failure(503, 'Service Unavailable: too many connections with requests in progress'),
      );
      this.logger.warn({ status: 503, reason: 'connection limit reached' }, 'request');
      return;
    }
    const tracked: Tracked = { busy: 0, idleTimer: undefined, served: false };
    this.connections.set(socket, tracked);
    this.armIdleTimer(socket, tracked, this.limits.headersTimeoutMs);
    socket.once('close', () => {
      clearTimeout(tracked.idleTimer);
      this.connections.delete(socket);
    });
    this.http.emit('connection', socket);
    socket.resume();
  }

  /**
   * Node's own header and keep-alive timers only run for connections its server accepted
   * itself, so they are kept here: a connection with no request in progress must deliver the
   * next request's headers in time, or it is closed (with 408 if it never had a request).
   */
  private armIdleTimer(socket: net.Socket, tracked: Tracked, ms: number): void {
    clearTimeout(tracked.idleTimer);
    tracked.idleTimer = setTimeout(() => {
      if (tracked.busy > 0 || socket.destroyed) return;
      if (tracked.served) {
        socket.destroy();
        return;
      }
      this.logger.debug({ status: 408, reason: 'no request headers in time' }, 'request');
      this.refuse(socket, failure(408, 'Request Timeout: the request headers did not arrive in time'));
    }, ms);
    tracked.idleTimer.unref();
  }

  /** Destroys the oldest connection with no request in progress; false when every one is busy. */
  private evictIdleConnection(): boolean {
    for (const [socket, tracked] of this.connections) {
      if (tracked.busy === 0) {
        this.connections.delete(socket);
        socket.destroy();
        return true;
      }
    }
    return false;
  }

  /** Answers without reading the request; what the peer sent is discarded, never parsed. */
  private refuse(socket: net.Socket, answer: RestAnswer): void {
    if (this.lingering >= MAX_LINGERING_REFUSED) {
      socket.destroy();
      return;
    }
    this.lingering++;
    socket.once('close', () => this.lingering--);
    socket.end(closingAnswer(answer));
    // Reading (and dropping) what the peer sent lets the kernel close with FIN rather than RST,
    // which would lose the answer before the peer reads it.
    let discarded = 0;
    socket.on('data', (chunk: Buffer) => {
      discarded += chunk.length;
      if (discarded > REFUSED_DISCARD_BYTES) socket.destroy();
    });
    const timer = setTimeout(() => socket.destroy(), REFUSED_LINGER_MS);
    socket.once('close', () => clearTimeout(timer));
    socket.resume();
  }

  private onClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
    if (error.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const status =
      error.code === 'HPE_HEADER_OVERFLOW' ? 431 : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const reason =
      status === 431
        ? `the request line and headers exceed ${this.limits.maxHeaderBytes} bytes`
        : status === 408
          ? 'the request did not arrive in time'
          : `the request is not valid HTTP/1.1 (${error.code ?? 'parse error'})`;
    socket.end(closingAnswer(failure(status, reason)));
    // A connection that never sent a request timing out is routine, not worth a line at info.
    this.logger[status === 408 ? 'debug' : 'info']({ status, reason }, 'request');
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const started = performance.now();
    const tracked = this.connections.get(req.socket);
    if (tracked) {
      tracked.busy++;
      clearTimeout(tracked.idleTimer);
    }
    const caller = new AbortController();
    const target = req.url ?? '/';
    let bodyRead = false;
    let reason: string | undefined;

    res.once('close', () => {
      if (tracked) {
        tracked.busy--;
        tracked.served = true;
        if (tracked.busy === 0 && !req.socket.destroyed)
          this.armIdleTimer(req.socket, tracked, this.limits.keepAliveTimeoutMs);
      }
      if (!res.writableFinished) caller.abort();
      this.logRequest(req, res, target, performance.now() - started, reason);
    });

    const readBody = (): Promise<Buffer> => {
      bodyRead = true;
      return readBounded(req, this.limits.maxBodyBytes, this.limits.requestTimeoutMs);
    };

    this.router
      .route({ method: req.method ?? '', target, readBody, signal: caller.signal })
      .catch((error: unknown) => {
        this.logger.error({ err: oneLine((error as Error)?.stack ?? String(error)) }, 'unexpected failure');
        return failure(500, 'internal error in api-server-rest');
      })
      .then((answer) => {
        reason = answer.reason;
        // A body nobody read would have to be read to the end to keep the connection: close it instead.
        const close = (!bodyRead && hasBody(req)) || this.closing || answer.status === 413;
        if (!res.destroyed) writeAnswer(res, answer, close);
      });
  }

  /** One line per request: path (cut), query keys only, status (none when the caller left), time. */
  private logRequest(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    target: string,
    ms: number,
    reason: string | undefined,
  ): void {
    const { path, query } = splitTarget(originForm(target) ?? target);
    this.logger.info(
      {
        method: req.method,
        path: path.length > MAX_LOGGED_PATH_CHARS ? `${path.slice(0, MAX_LOGGED_PATH_CHARS)}…` : path,
        ...(query.size > 0 ? { query: [...query.keys()].slice(0, 16) } : {}),
        status: res.headersSent ? res.statusCode : null,
        ms: Math.round(ms * 100) / 100,
        ...(reason === undefined ? {} : { reason }),
        ...(res.writableFinished ? {} : { aborted: true }),
      },
      'request',
    );
  }
}
