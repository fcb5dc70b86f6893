import type { Server } from 'node:net';

/** Listens on 127.0.0.1 with an ephemeral port (emulators never bind anything else). */
export function listenOnLoopback(server: Server): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
}
