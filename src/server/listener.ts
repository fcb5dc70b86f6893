import { lchownSync, unlinkSync } from 'node:fs';
import { createServer, isIP, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import type { ListenAddress } from '../config/load';
import { fitToDescriptorLimit, RefusalLog } from './connection-limits';
import {
  checkOwnSocket,
  prepareSocketPath,
  resolveGroup,
  SocketReplacedError,
  StartupError,
} from './socket-file';

export { RefusalLog } from './connection-limits';
export { StartupError } from './socket-file';

/** The HTTP/2 client preface (RFC 9113 section 3.4). A ttrpc frame starts with 0, never 'P'. */
const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const HTTP2_PREFACE_FIRST_BYTE = 0x50;

export interface ConnectionRoutes {
  grpc(socket: Socket): void;
  ttrpc(socket: Socket): void;
}

export interface SocketPermissions {
  readonly mode: number;
  readonly group: string;
}

export interface ListenerLimits {
  /** Connections open at once (both protocols); more are closed at accept. */
  readonly maxConnections: number;
  /** From accept until the protocol is known (the whole HTTP/2 preface, or a ttrpc byte). */
  readonly handshakeTimeoutMs: number;
}

/**
 * One listener for both protocols: the first byte of each connection tells gRPC (HTTP/2
 * preface) from ttrpc; the byte is pushed back and the socket handed to that server.
 */
export class ProtocolListener {
  private readonly server: Server;
  private readonly pending = new Set<Socket>();
  private readonly refusals: RefusalLog;
  private readonly limits: ListenerLimits;
  private socketPath: string | undefined;

  constructor(
    private readonly routes: ConnectionRoutes,
    private readonly logger: Logger,
    limits: ListenerLimits = { maxConnections: 512, handshakeTimeoutMs: 10_000 },
    refusals?: RefusalLog,
  ) {
    this.refusals = refusals ?? new RefusalLog(logger);
    this.limits = { ...limits, maxConnections: fitToDescriptorLimit(limits.maxConnections, logger) };
    this.server = createServer((socket) => this.route(socket));
    this.server.maxConnections = this.limits.maxConnections;
    this.server.on('drop', () =>
      this.refusals.note('connection refused: max_connections reached', {
        maxConnections: this.limits.maxConnections,
      }),
    );
    this.server.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EMFILE' || error.code === 'ENFILE')
        this.refusals.note('connection refused: out of file descriptors', { code: error.code });
      else this.logger.error({ err: error.message }, 'listener error');
    });
  }

  get maxConnections(): number {
    return this.limits.maxConnections;
  }

  /** Binds the address; for a Unix socket prepares the path and applies the permissions. */
  async listen(address: ListenAddress, permissions: SocketPermissions): Promise<string> {
    if (address.kind === 'tcp') {
      if (!isLoopbackHost(address.host))
        this.logger.warn(
          { socket: `${address.host}:${address.port}` },
          'listening on a non-loopback TCP address without TLS: anyone who can reach it may call the daemon',
        );
      await new Promise<void>((resolve, reject) => {
        this.server.once('error', reject);
        this.server.listen(address.port, address.host.replace(/^\[|\]$/g, ''), () => {
          this.server.off('error', reject);
          resolve();
        });
      });
      const bound = this.server.address();
      return typeof bound === 'object' && bound !== null ? `${address.host}:${bound.port}` : String(bound);
    }

    await prepareSocketPath(address.path, this.logger);
    // The socket inode is created by bind() with 0777 & ~umask: the mode is right from the
    // start and is never applied later through a path someone could swap for a symlink.
    const previousUmask = process.umask(0o777 & ~permissions.mode);
    try {
      await new Promise<void>((resolve, reject) => {
        this.server.once('error', reject);
        this.server.listen(address.path, () => {
          this.server.off('error', reject);
          resolve();
        });
      });
    } catch (error) {
      throw new StartupError(
        `cannot listen on ${address.path}: ${(error as NodeJS.ErrnoException).code ?? error}`,
      );
    } finally {
      process.umask(previousUmask);
    }
    this.socketPath = address.path;
    try {
      checkOwnSocket(address.path, permissions.mode);
      // lchown never follows a symlink: a path swapped meanwhile changes nothing else.
      if (permissions.group !== '') lchownSync(address.path, -1, resolveGroup(permissions.group));
      checkOwnSocket(address.path, permissions.mode);
    } catch (error) {
      // Not serving after all: leave no socket file behind (unless it is no longer ours).
      this.server.close();
      if (!(error instanceof SocketReplacedError)) this.removeSocketFile();
      this.socketPath = undefined;
      if (error instanceof StartupError) throw error;
      throw new StartupError(
        `config key "socket_group"/"socket_mode": cannot set the permissions of ${address.path}: ` +
          `${(error as NodeJS.ErrnoException).code ?? String(error)}`,
      );
    }
    return `unix://${address.path}`;
  }

  /**
   * Stops accepting and removes the socket file. Connections already routed are the protocol
   * servers' to close (after draining): server.close()'s callback waits for every one of them,
   * so it is not awaited; a client that keeps its channel open would hold shutdown for ever.
   */
  async close(): Promise<void> {
    for (const socket of this.pending) socket.destroy();
    this.pending.clear();
    if (this.server.listening) this.server.close();
    this.removeSocketFile();
  }

  removeSocketFile(): void {
    if (this.socketPath === undefined) return;
    try {
      unlinkSync(this.socketPath);
    } catch {
      // Already gone.
    }
    this.socketPath = undefined;
  }

  /**
   * Holds a new connection until its protocol is known: a ttrpc frame's first byte, or the
   * whole HTTP/2 client preface (a half-sent one would otherwise sit in the HTTP/2 server
   * with no deadline). What was read is pushed back before the socket is handed over.
   */
  private route(socket: Socket): void {
    this.pending.add(socket);
    const chunks: Buffer[] = [];
    let received = 0;
    const timer = setTimeout(() => {
      this.refusals.note('connection closed: no protocol handshake within handshake_timeout_ms', {
        handshakeTimeoutMs: this.limits.handshakeTimeoutMs,
        received,
      });
      socket.destroy();
    }, this.limits.handshakeTimeoutMs);
    const onError = (): void => {
      socket.destroy();
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      received += chunk.length;
      const head = chunks.length === 1 ? chunk : Buffer.concat(chunks);
      const grpc = head[0] === HTTP2_PREFACE_FIRST_BYTE;
      if (grpc) {
        const preface = clientPreface(head);
        if (preface === 'invalid') {
          this.logger.debug('connection closed: neither an HTTP/2 preface nor a ttrpc frame');
          socket.destroy();
          return;
        }
        if (preface === 'partial') return;
      }
      socket.pause();
      socket.off('data', onData);
      socket.off('error', onError);
      clearTimeout(timer);
      this.pending.delete(socket);
      socket.unshift(head);
      if (grpc) this.routes.grpc(socket);
      else this.routes.ttrpc(socket);
    };
    socket.on('error', onError);
    socket.on('data', onData);
    socket.once('close', () => {
      clearTimeout(timer);
      this.pending.delete(socket);
    });
  }
}

/** The SETTINGS frame that must follow the preface magic: small (6 bytes per setting). */
const MAX_PREFACE_SETTINGS_BYTES = 16 * 6;
const H2_FRAME_HEADER_BYTES = 9;
const H2_SETTINGS = 0x4;

/**
 * The HTTP/2 client connection preface: the magic string, then a SETTINGS frame (RFC 9113
 * section 3.4). Until it is whole the peer has not even said what it wants; a peer that
 * stops in the middle must not get to the HTTP/2 server, which would wait for it for ever.
 */
function clientPreface(head: Buffer): 'partial' | 'complete' | 'invalid' {
  const seen = Math.min(head.length, HTTP2_PREFACE.length);
  if (!head.subarray(0, seen).equals(HTTP2_PREFACE.subarray(0, seen))) return 'invalid';
  const frame = HTTP2_PREFACE.length;
  if (head.length < frame + H2_FRAME_HEADER_BYTES) return 'partial';
  const length = head.readUIntBE(frame, 3);
  if (head[frame + 3] !== H2_SETTINGS || length % 6 !== 0 || length > MAX_PREFACE_SETTINGS_BYTES)
    return 'invalid';
  return head.length >= frame + H2_FRAME_HEADER_BYTES + length ? 'complete' : 'partial';
}

function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '');
  if (bare === 'localhost') return true;
  if (isIP(bare) === 4) return bare.startsWith('127.');
  return bare === '::1' || bare.toLowerCase() === '::ffff:127.0.0.1';
}
