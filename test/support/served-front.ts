import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/log';
import { ApiDispatcher, type ApiBackend } from '../../src/server/api';
import { GrpcFront } from '../../src/server/grpc';

export interface ServedFront {
  /** `unix://…` of its socket. */
  readonly target: string;
  close(): Promise<void>;
}

/**
 * A GrpcFront over `backend`, serving, on a unix socket in a temp dir of its own (connections
 * handed in as the listener does). It loads only the front's modules, so tests that look at
 * require.cache can use it.
 */
export async function serveFront(backend: ApiBackend): Promise<ServedFront> {
  const dir = mkdtempSync(join(tmpdir(), 'cdh-front-'));
  const dispatcher = new ApiDispatcher(backend, { maxInFlight: 4, logger: silentLogger() });
  const front = new GrpcFront(dispatcher, { maxMessageBytes: 1024 });
  front.setServing(true);
  const server = createServer((socket) => front.injectConnection(socket));
  const socketPath = join(dir, 's.sock');
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return {
    target: `unix://${socketPath}`,
    async close() {
      front.destroy();
      await new Promise((resolve) => server.close(resolve));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
