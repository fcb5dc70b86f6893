import type { Logger } from 'pino';

/** How long in-flight calls may take to finish after SIGTERM. */
export const SHUTDOWN_GRACE_MS = 10_000;
/**
 * Once no call is in flight, how long connections may take to close on their own (the last
 * answers being written). A health Watch stream keeps its connection open: it is not waited for.
 */
export const FLUSH_WAIT_MS = 1000;

/** What the shutdown sequence stops, each by the little it needs (tests pass fakes). */
export interface ShutdownParts {
  readonly logger: Logger;
  readonly dispatcher: {
    readonly callsInFlight: number;
    startDraining(): void;
    whenIdle(): Promise<void>;
  };
  readonly grpc: {
    setServing(serving: boolean): void;
    drain(graceMs: number): void;
    whenClosed(waitMs: number): Promise<void>;
    destroy(): void;
  };
  readonly ttrpc: { close(): Promise<void>; destroy(): void };
  readonly listener: { close(): Promise<void>; removeSocketFile(): void };
  /** Once the socket is closed (the published address is withdrawn). */
  readonly unlisted?: () => void;
  /** Providers, image puller, caches, KBC: closed after the last call, or at once by stopNow. */
  readonly services: { close(): Promise<void>; closeNow(): void };
}

/**
 * The graceful stop: health NOT_SERVING, new calls refused, the socket closed and removed, then
 * in-flight calls get `graceMs` to finish (ttrpc connections close once their answers are
 * written; gRPC gets GOAWAY); whatever is left is destroyed, and the services are closed last.
 */
export async function shutDown(parts: ShutdownParts, graceMs: number): Promise<void> {
  const { logger, dispatcher, grpc, ttrpc } = parts;
  logger.info({ inFlight: dispatcher.callsInFlight }, 'shutting down');
  grpc.setServing(false);
  dispatcher.startDraining();
  await parts.listener.close();
  parts.unlisted?.();
  grpc.drain(graceMs);
  const ttrpcClosed = ttrpc.close();
  const graceEnds = Date.now() + graceMs;
  const timedOut = await Promise.race([
    Promise.all([dispatcher.whenIdle(), ttrpcClosed]).then(() => false),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(true), graceMs).unref()),
  ]);
  if (timedOut)
    logger.warn({ inFlight: dispatcher.callsInFlight }, 'grace period over; closing calls still in flight');
  else await grpc.whenClosed(Math.min(FLUSH_WAIT_MS, Math.max(0, graceEnds - Date.now())));
  grpc.destroy();
  ttrpc.destroy();
  await parts.services.close();
  logger.info('stopped');
}

/** The immediate stop (a second signal): socket file removed, every connection destroyed. */
export function stopNow(parts: ShutdownParts): void {
  parts.services.closeNow();
  parts.listener.removeSocketFile();
  parts.unlisted?.();
  parts.grpc.destroy();
  parts.ttrpc.destroy();
}

/** Start-up failed after the services were built: nothing served yet, everything is closed. */
export async function abandonStart(parts: ShutdownParts): Promise<void> {
  await parts.listener.close();
  parts.grpc.destroy();
  parts.ttrpc.destroy();
  await parts.services.close();
}
