import { codeCacheState } from '../bundle/code-cache-state';
import type { Logger } from 'pino';
import { parseListenAddress } from '../config/load';
import type { CdhConfig } from '../config/types';
import { isCdhError } from '../errors';
import { createLogger } from '../log';
import type { ProviderFactory } from '../providers/types';
import { publishAddress, withdrawAddress } from '../server/address-file';
import { StartupError } from '../server/listener';
import { buildServices, type Services } from './services';
import { abandonStart, SHUTDOWN_GRACE_MS, shutDown, stopNow, type ShutdownParts } from './shutdown';
import { createTransports } from './transports';

export { SHUTDOWN_GRACE_MS } from './shutdown';

export interface DaemonOptions {
  readonly logger?: Logger;
  /** Replaces the built-in providers (tests register a test provider). */
  readonly providers?: readonly ProviderFactory[];
  /** File to publish the bound address in while serving (env CDH_ADDRESS_FILE; see address-file.ts). */
  readonly addressFile?: string;
}

export interface DaemonHandle {
  /** `unix:///path` or `host:port` actually bound. */
  readonly address: string;
  readonly logger: Logger;
  /** Graceful stop: NOT_SERVING, stop accepting, finish in-flight calls (bounded), remove the socket. */
  stop(graceMs?: number): Promise<void>;
  /** Immediate stop (second signal). */
  kill(): void;
}

/** The daemon: the services of `config` (start-up steps first), served on both transports on one socket. */
export async function startDaemon(config: CdhConfig, options: DaemonOptions = {}): Promise<DaemonHandle> {
  const logger = options.logger ?? createLogger(config.log.level);
  const address = parseListenAddress(config.socket);
  if (address === undefined) throw new StartupError(`config key "socket": bad address ${config.socket}`);
  const services = await startServices(config, {
    logger,
    ...(options.providers ? { providers: options.providers } : {}),
  });
  const transports = createTransports(config, services.backend, logger);
  const { addressFile } = options;
  const parts: ShutdownParts = {
    ...transports,
    logger,
    services,
    ...(addressFile === undefined ? {} : { unlisted: () => withdrawAddress(addressFile) }),
  };
  let bound: string;
  try {
    bound = await transports.listener.listen(address, { mode: config.socketMode, group: config.socketGroup });
    transports.grpc.setServing(true);
    if (addressFile !== undefined) publishAddress(addressFile, bound);
  } catch (error) {
    await abandonStart(parts);
    throw error;
  }
  // code_cache: whether a bundled daemon started from V8's code cache (absent when run from dist/).
  logger.info(
    { socket: bound, providers: services.registry.providerNames, code_cache: codeCacheState() },
    'serving',
  );
  let stopping: Promise<void> | undefined;
  return {
    address: bound,
    logger,
    stop: (graceMs = SHUTDOWN_GRACE_MS) => (stopping ??= shutDown(parts, graceMs)),
    kill: () => stopNow(parts),
  };
}

/** The start-up steps' catalogued failures (a bad resource, a [[credentials]] path) stop start-up. */
async function startServices(
  config: CdhConfig,
  options: { logger: Logger; providers?: readonly ProviderFactory[] },
): Promise<Services> {
  try {
    return await buildServices(config, options);
  } catch (error) {
    if (isCdhError(error)) throw new StartupError(error.message);
    throw error;
  }
}
