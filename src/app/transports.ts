import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { CdhConfig } from '../config/types';
import { ApiDispatcher, type ApiBackend } from '../server/api';
import { GrpcFront } from '../server/grpc';
import { ProtocolListener, RefusalLog } from '../server/listener';
import { TtrpcServer } from '../server/ttrpc/server';

/** Both transports over one dispatcher, behind the one listener that routes by the first bytes. */
export interface Transports {
  readonly dispatcher: ApiDispatcher;
  readonly grpc: GrpcFront;
  readonly ttrpc: TtrpcServer;
  readonly listener: ProtocolListener;
}

type TransportConfig = Pick<
  CdhConfig,
  | 'maxInFlight'
  | 'maxMessageBytes'
  | 'maxConcurrentStreams'
  | 'idleTimeoutMs'
  | 'ttrpcIdleTimeoutMs'
  | 'handshakeTimeoutMs'
  | 'maxConnections'
>;

export function createTransports(config: TransportConfig, backend: ApiBackend, logger: Logger): Transports {
  const dispatcher = new ApiDispatcher(backend, { maxInFlight: config.maxInFlight, logger });
  const grpc = new GrpcFront(dispatcher, {
    maxMessageBytes: config.maxMessageBytes,
    maxConcurrentStreams: config.maxConcurrentStreams,
    idleTimeoutMs: config.idleTimeoutMs,
    pingTimeoutMs: config.handshakeTimeoutMs,
    receiveTimeoutMs: config.handshakeTimeoutMs,
  });
  const refusals = new RefusalLog(logger);
  const ttrpc = new TtrpcServer(dispatcher, {
    maxMessageBytes: config.maxMessageBytes,
    frameTimeoutMs: config.handshakeTimeoutMs,
    idleTimeoutMs: config.ttrpcIdleTimeoutMs,
    refusals,
    logger,
  });
  const listener = new ProtocolListener(
    {
      grpc: (socket: Socket) => grpc.injectConnection(socket),
      ttrpc: (socket: Socket) => ttrpc.handleConnection(socket),
    },
    logger,
    { maxConnections: config.maxConnections, handshakeTimeoutMs: config.handshakeTimeoutMs },
    refusals,
  );
  return { dispatcher, grpc, ttrpc, listener };
}
