import { mkdtemp, rm } from 'node:fs/promises';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { CdhError, type ErrorCode } from '../../src/errors';
import { silentLogger } from '../../src/log';
import type { CallContext } from '../../src/providers/types';
import { ApiDispatcher, type ApiBackend } from '../../src/server/api';
import { TtrpcServer } from '../../src/server/ttrpc/server';

/**
 * A deterministic ApiBackend for transport tests. UnsealSecret reads its input as a command:
 *   `echo:<text>`                  → plaintext <text>
 *   `slow:<ms>:<text>`             → plaintext <text> after <ms> (stops early when aborted)
 *   `fail:<ERROR_CODE>:<message>`  → throws CdhError(ERROR_CODE, message)
 *   `crash`                        → throws a plain Error (INTERNAL)
 * GetResource: `kbs:///missing/...` → RESOURCE_NOT_FOUND; `size:<n>` → n bytes of 0x61;
 * anything else → `resource of <uri>`.
 */
export class FakeBackend implements ApiBackend {
  /** Number of calls whose signal was aborted while they ran. */
  aborted = 0;
  started = 0;

  async unsealSecret(secret: Uint8Array, ctx: CallContext): Promise<Uint8Array> {
    this.started++;
    const text = Buffer.from(secret).toString('utf8');
    if (text.startsWith('echo:')) return Buffer.from(text.slice('echo:'.length));
    if (text.startsWith('slow:')) {
      const [, ms, rest] = /^slow:(\d+):(.*)$/s.exec(text) ?? [];
      await this.sleep(Number(ms), ctx.signal);
      return Buffer.from(rest ?? '');
    }
    if (text.startsWith('fail:')) {
      const [, code, message] = /^fail:([A-Z_]+):(.*)$/s.exec(text) ?? [];
      throw new CdhError(code as ErrorCode, message ?? '');
    }
    if (text === 'crash') throw new Error('unexpected failure with details that must not leak');
    throw new CdhError('SEALED_SECRET_MALFORMED', 'the secret does not start with "sealed."');
  }

  async getResource(uri: string, _ctx: CallContext): Promise<Uint8Array> {
    this.started++;
    if (uri.startsWith('kbs:///missing/')) throw new CdhError('RESOURCE_NOT_FOUND', `no resource ${uri}`);
    const size = /^size:(\d+)$/.exec(uri);
    if (size) return Buffer.alloc(Number(size[1]), 0x61);
    return Buffer.from(`resource of ${uri}`);
  }

  private sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      const onAbort = (): void => {
        clearTimeout(timer);
        this.aborted++;
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}

export interface TtrpcFixture {
  readonly socketPath: string;
  readonly backend: FakeBackend;
  readonly dispatcher: ApiDispatcher;
  readonly ttrpc: TtrpcServer;
  readonly listener: net.Server;
  /** Destroys every connection, stops listening, removes the temp dir. */
  close(): Promise<void>;
}

export interface TtrpcFixtureOptions {
  readonly maxMessageBytes?: number;
  readonly maxInFlight?: number;
  readonly logger?: Logger;
  /** Replaces the plain hand-over (tests of the listener's sniffing hand-over). */
  readonly onConnection?: (socket: net.Socket, ttrpc: TtrpcServer) => void;
}

/** A TtrpcServer behind a net.Server on a temp unix socket, over a FakeBackend. */
export async function startTtrpcFixture(options: TtrpcFixtureOptions = {}): Promise<TtrpcFixture> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cdh-ttrpc-'));
  const socketPath = path.join(dir, 'cdh.sock');
  const logger = options.logger ?? silentLogger();
  const backend = new FakeBackend();
  const dispatcher = new ApiDispatcher(backend, { maxInFlight: options.maxInFlight ?? 64, logger });
  const ttrpc = new TtrpcServer(dispatcher, { maxMessageBytes: options.maxMessageBytes ?? 1 << 20, logger });
  const listener = net.createServer((socket) =>
    options.onConnection ? options.onConnection(socket, ttrpc) : ttrpc.handleConnection(socket),
  );
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(socketPath, () => resolve());
  });
  return {
    socketPath,
    backend,
    dispatcher,
    ttrpc,
    listener,
    async close() {
      ttrpc.destroy();
      await new Promise<void>((resolve) => listener.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
