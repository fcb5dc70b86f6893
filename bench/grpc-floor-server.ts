/**
 * The gRPC floor: the daemon's own front (createTransports: the protocol-sniffing listener,
 * GrpcFront with its receive deadline, ApiDispatcher) with a backend that answers every
 * UnsealSecret with a fixed plaintext at once: no JWS, no cache, no KMS. What it sustains bounds any unseal through the socket,
 * cached or not. Logs "serving" on stdout like the daemon, so spawnDaemon can run it.
 *
 * Usage: node dist/bench/grpc-floor-server.js --socket ADDR [-c FILE]
 */
import { parseArgs } from 'node:util';
import { loadConfig, parseListenAddress } from '../src/config/load';
import { createLogger } from '../src/log';
import { createTransports } from '../src/app/transports';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { config: { type: 'string', short: 'c' }, socket: { type: 'string' } },
    strict: true,
  });
  const { config } = loadConfig(values.config, process.env, values.socket ? { socket: values.socket } : {});
  const logger = createLogger(config.log.level);
  const plaintext = Buffer.from('benchmark secret #0: the gRPC floor answers at once');
  // The daemon's own composition of the transports (src/app/transports.ts: limits, timeouts, the
  // receive deadline's interceptor), over a backend that answers at once.
  const { grpc: front, listener } = createTransports(
    config,
    {
      unsealSecret: async () => Buffer.from(plaintext),
      getResource: async () => Buffer.alloc(0),
    },
    logger,
  );
  const address = parseListenAddress(config.socket);
  if (address === undefined) throw new Error(`bad socket address ${config.socket}`);
  const bound = await listener.listen(address, { mode: config.socketMode, group: config.socketGroup });
  front.setServing(true);
  logger.info({ socket: bound }, 'serving');
  const stop = (): void => {
    void listener.close().then(() => {
      front.destroy();
      logger.flush();
      process.exit(0);
    });
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`grpc-floor-server failed: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
