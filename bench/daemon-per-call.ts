/**
 * The daemon with the upstream driver's strategy: a new provider instance per call (PKCS#12
 * parse, new TLS session), closed when the call completes. A benchmark entry point only: the
 * real daemon has no setting for this.
 *
 * Usage: node dist/bench/daemon-per-call.js --socket ADDR [-c FILE]
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config/load';
import { createLogger } from '../src/log';
import { builtinProviders } from '../src/providers';
import { startDaemon } from '../src/app/daemon';
import { perCallProviders } from './per-call-providers';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { config: { type: 'string', short: 'c' }, socket: { type: 'string' } },
    strict: true,
  });
  const { config } = loadConfig(values.config, process.env, values.socket ? { socket: values.socket } : {});
  const logger = createLogger(config.log.level);
  const daemon = await startDaemon(config, { logger, providers: perCallProviders(builtinProviders()) });
  const stop = (): void => {
    void daemon.stop().then(() => {
      logger.flush();
      process.exit(0);
    });
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`daemon-per-call failed: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
