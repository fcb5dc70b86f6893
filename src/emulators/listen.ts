import type { Server } from 'node:net';

/**
 * Listens on 127.0.0.1 (emulators never bind anything else), on an ephemeral port unless
 * `port` names one (coming back online where clients already dial).
 */
export function listenOnLoopback(server: Server, port = 0): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
}
