import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { parseListenAddress } from '../config/load';
import type { CdhConfig } from '../config/types';
import { isCdhError } from '../errors';
import type { ImagePuller } from '../image/service';
import { createLogger } from '../log';
import { builtinProviders } from '../providers';
import { startKbc, type Kbc } from '../kbc';
import { ProviderRegistry } from '../providers/registry';
import type { ProviderFactory } from '../providers/types';
import { createUnsealService } from '../secret/service';
import { KeyUnwrapper } from '../keyprovider/unwrap';
import { publishAddress, withdrawAddress } from './address-file';
import { ApiDispatcher, type ApiBackend } from './api';
import { GrpcFront } from './grpc';
import { ProtocolListener, RefusalLog, StartupError } from './listener';
import { TtrpcServer } from './ttrpc/server';

/** How long in-flight calls may take to finish after SIGTERM. */
export const SHUTDOWN_GRACE_MS = 10_000;
/**
 * Once no call is in flight, how long connections may take to close on their own (the last
 * answers being written). A health Watch stream keeps its connection open: it is not waited for.
 */
const FLUSH_WAIT_MS = 1000;

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

export async function startDaemon(config: CdhConfig, options: DaemonOptions = {}): Promise<DaemonHandle> {
  const logger = options.logger ?? createLogger(config.log.level);
  const address = parseListenAddress(config.socket);
  if (address === undefined) throw new StartupError(`config key "socket": bad address ${config.socket}`);

  const resourceStore = await prepareResources(config, logger);

  const registry = new ProviderRegistry(options.providers ?? builtinProviders(), {
    config,
    logger,
    resources: resourceStore,
  });
  const { unsealer, cache } = createUnsealService(config, registry, logger, resourceStore);
  // The image code (tar, zstd, OpenPGP, the registry client) is loaded at the first PullImage:
  // most daemons never pull, and start-up and idle memory should not pay for it.
  let images: Promise<ImagePuller> | undefined;
  const imagePuller = (): Promise<ImagePuller> =>
    (images ??= Promise.all([import('../image/service.js'), import('../image/measure.js')]).then(
      ([{ ImagePuller: Puller }, { AaPullMeasurer }]) =>
        new Puller(config.image, {
          logger,
          kbc: resourceStore,
          measurer: new AaPullMeasurer(config.aa.aaSocket, logger),
        }),
    ));
  const keyUnwrapper = new KeyUnwrapper({ kbc: resourceStore, registry, logger });
  const backend: ApiBackend = {
    unsealSecret: (secret, ctx) => unsealer.unseal(secret, ctx),
    getResource: (uri, ctx) => resourceStore.getResource(uri, ctx),
    pullImage: async (imageUrl, bundlePath, ctx) => (await imagePuller()).pull(imageUrl, bundlePath, ctx),
    unwrapKey: (request, ctx) => keyUnwrapper.handleRequest(request, ctx),
  };
  const dispatcher = new ApiDispatcher(backend, { maxInFlight: config.maxInFlight, logger });
  const grpcFront = new GrpcFront(dispatcher, {
    maxMessageBytes: config.maxMessageBytes,
    maxConcurrentStreams: config.maxConcurrentStreams,
    idleTimeoutMs: config.idleTimeoutMs,
    pingTimeoutMs: config.handshakeTimeoutMs,
    receiveTimeoutMs: config.handshakeTimeoutMs,
  });
  const refusals = new RefusalLog(logger);
  const ttrpcServer = new TtrpcServer(dispatcher, {
    maxMessageBytes: config.maxMessageBytes,
    frameTimeoutMs: config.handshakeTimeoutMs,
    idleTimeoutMs: config.ttrpcIdleTimeoutMs,
    refusals,
    logger,
  });
  const listener = new ProtocolListener(
    {
      grpc: (socket: Socket) => grpcFront.injectConnection(socket),
      ttrpc: (socket: Socket) => ttrpcServer.handleConnection(socket),
    },
    logger,
    { maxConnections: config.maxConnections, handshakeTimeoutMs: config.handshakeTimeoutMs },
    refusals,
  );

  const bound = await listener.listen(address, { mode: config.socketMode, group: config.socketGroup });
  grpcFront.setServing(true);
  const { addressFile } = options;
  if (addressFile !== undefined) {
    try {
      publishAddress(addressFile, bound);
    } catch (error) {
      await listener.close();
      grpcFront.destroy();
      ttrpcServer.destroy();
      await registry.close();
      throw error;
    }
  }
  logger.info({ socket: bound, providers: registry.providerNames }, 'serving');

  let stopping: Promise<void> | undefined;
  return {
    address: bound,
    logger,
    stop(graceMs = SHUTDOWN_GRACE_MS) {
      stopping ??= (async () => {
        logger.info({ inFlight: dispatcher.callsInFlight }, 'shutting down');
        grpcFront.setServing(false);
        dispatcher.startDraining();
        await listener.close();
        if (addressFile !== undefined) withdrawAddress(addressFile);
        grpcFront.drain(graceMs);
        // ttrpc connections close once their answers are written.
        const ttrpcClosed = ttrpcServer.close();
        const graceEnds = Date.now() + graceMs;
        const timedOut = await Promise.race([
          Promise.all([dispatcher.whenIdle(), ttrpcClosed]).then(() => false),
          new Promise<boolean>((resolve) => setTimeout(() => resolve(true), graceMs).unref()),
        ]);
        if (timedOut)
          logger.warn(
            { inFlight: dispatcher.callsInFlight },
            'grace period over; closing calls still in flight',
          );
        else await grpcFront.whenClosed(Math.min(FLUSH_WAIT_MS, Math.max(0, graceEnds - Date.now())));
        grpcFront.destroy();
        ttrpcServer.destroy();
        await registry.close();
        if (images) await (await images).close();
        cache.clear();
        resourceStore.close?.();
        logger.info('stopped');
      })();
      return stopping;
    },
    kill() {
      resourceStore.close?.();
      listener.removeSocketFile();
      if (addressFile !== undefined) withdrawAddress(addressFile);
      grpcFront.destroy();
      ttrpcServer.destroy();
    },
  };
}

/** The KBC, then the [[credentials]] written from it: both before the socket serves. */
async function prepareResources(config: CdhConfig, logger: Logger): Promise<Kbc> {
  try {
    return await startKbc(config, logger);
  } catch (error) {
    if (isCdhError(error)) throw new StartupError(error.message);
    throw error;
  }
}
