import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  statSync,
  unlinkSync,
} from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { ListenAddress } from '../config/load';

/** First byte of the HTTP/2 client preface ("PRI * HTTP/2.0..."). A ttrpc frame starts with 0. */
const HTTP2_PREFACE_FIRST_BYTE = 0x50;
/** A connection that says nothing for this long is dropped before it is routed. */
const FIRST_BYTE_TIMEOUT_MS = 30_000;

export interface ConnectionRoutes {
  grpc(socket: Socket): void;
  ttrpc(socket: Socket): void;
}

export class StartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StartupError';
  }
}

export interface SocketPermissions {
  readonly mode: number;
  readonly group: string;
}

/**
 * One listener for both protocols: the first byte of each connection tells gRPC (HTTP/2
 * preface) from ttrpc; the byte is pushed back and the socket handed to that server.
 */
export class ProtocolListener {
  private readonly server: Server;
  private readonly pending = new Set<Socket>();
  private socketPath: string | undefined;

  constructor(
    private readonly routes: ConnectionRoutes,
    private readonly logger: Logger,
  ) {
    this.server = createServer((socket) => this.route(socket));
    this.server.on('error', (error) => this.logger.error({ err: error.message }, 'listener error'));
  }

  /** Binds the address; for a Unix socket prepares the path and applies the permissions. */
  async listen(address: ListenAddress, permissions: SocketPermissions): Promise<string> {
    if (address.kind === 'tcp') {
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
    // The socket file is created by listen(); a tight umask closes the window before chmod.
    const previousUmask = process.umask(0o177);
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
      chmodSync(address.path, permissions.mode);
      if (permissions.group !== '') chownSync(address.path, -1, resolveGroup(permissions.group));
    } catch (error) {
      // Not serving after all: leave no socket file behind.
      this.server.close();
      this.removeSocketFile();
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

  private route(socket: Socket): void {
    this.pending.add(socket);
    socket.setTimeout(FIRST_BYTE_TIMEOUT_MS, () => socket.destroy());
    socket.on('error', () => socket.destroy());
    socket.once('data', (chunk: Buffer) => {
      socket.pause();
      socket.setTimeout(0);
      socket.removeAllListeners('error');
      this.pending.delete(socket);
      socket.unshift(chunk);
      if (chunk[0] === HTTP2_PREFACE_FIRST_BYTE) this.routes.grpc(socket);
      else this.routes.ttrpc(socket);
    });
    socket.once('close', () => this.pending.delete(socket));
  }
}

/**
 * Creates the parent directory, replaces a stale socket (nobody listening) and refuses to
 * start when another daemon is listening or the path is not a socket.
 */
async function prepareSocketPath(path: string, logger: Logger): Promise<void> {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const dirMode = statSync(dir).mode;
  if ((dirMode & 0o002) !== 0 && (dirMode & 0o1000) === 0) {
    logger.warn({ dir }, 'the socket directory is writable by others: anyone could replace the socket');
  }
  if (!existsSync(path)) return;
  const stat = lstatSync(path);
  if (!stat.isSocket()) throw new StartupError(`${path} exists and is not a socket; refusing to replace it`);
  if (await someoneListens(path)) {
    throw new StartupError(
      `another process is already listening on ${path}; stop it or choose another --socket`,
    );
  }
  logger.info({ socket: path }, 'replacing a stale socket file');
  unlinkSync(path);
}

function someoneListens(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createConnection(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

function resolveGroup(group: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  const line = readFileSync('/etc/group', 'utf8')
    .split('\n')
    .find((l) => l.split(':')[0] === group);
  const gid = line?.split(':')[2];
  if (gid === undefined) throw new StartupError(`config key "socket_group": unknown group "${group}"`);
  return Number(gid);
}
