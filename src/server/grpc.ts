import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { API_METHODS, type ApiDispatcher, type ApiMethod } from './api';
import { CdhError } from '../errors';
import { LazyReflection } from './reflection-service';
import { toCallFailure } from './status';
import { receiveDeadlineInterceptor } from './receive-deadline';
import { apiServiceMethods } from './api-codec';
import { grpcServiceDefinition, UNDECODABLE, type UndecodableRequest } from './grpc-services';

export interface GrpcFrontOptions {
  readonly maxMessageBytes: number;
  /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS: streams one connection may have open. */
  readonly maxConcurrentStreams?: number;
  /** A connection with no stream open for this long gets GOAWAY (0 or absent = never). */
  readonly idleTimeoutMs?: number;
  /** A keepalive PING unanswered for this long drops the connection (default 10 s). */
  readonly pingTimeoutMs?: number;
  /** From a request's headers until the whole request has arrived (absent = no bound). */
  readonly receiveTimeoutMs?: number;
}

/** Keepalive PING interval when connections are never closed for idleness. */
const DEFAULT_KEEPALIVE_MS = 300_000;

/**
 * gRPC over connections handed in by the listener (no port of its own): the API services,
 * grpc.health.v1 and server reflection (v1 and v1alpha), so grpcurl needs no proto files.
 */
export class GrpcFront {
  private readonly server: grpc.Server;
  private readonly injector: grpc.ConnectionInjector;
  private readonly health: HealthImplementation;
  private readonly connections = new Set<Duplex>();
  private readonly closeWaiters = new Set<() => void>();
  /** A connection silent for this long (keepalive interval + ping timeout) is destroyed. */
  private readonly silenceLimitMs: number;

  constructor(dispatcher: ApiDispatcher, options: GrpcFrontOptions) {
    this.silenceLimitMs = (options.idleTimeoutMs || DEFAULT_KEEPALIVE_MS) + (options.pingTimeoutMs ?? 10_000);
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': options.maxMessageBytes,
      'grpc.max_send_message_length': -1,
      // No channelz service is served: without this grpc-js keeps per-call and per-session
      // counters and timestamps for it (a tracker object and closures per call).
      'grpc.enable_channelz': 0,
      ...(options.maxConcurrentStreams === undefined
        ? {}
        : { 'grpc.max_concurrent_streams': options.maxConcurrentStreams }),
      ...(options.idleTimeoutMs ? { 'grpc.max_connection_idle_ms': options.idleTimeoutMs } : {}),
      // A peer that never finished the HTTP/2 handshake (or stopped reading) answers no PING:
      // the idle GOAWAY alone would wait on it for ever.
      'grpc.keepalive_time_ms': options.idleTimeoutMs || DEFAULT_KEEPALIVE_MS,
      'grpc.keepalive_timeout_ms': options.pingTimeoutMs ?? 10_000,
      interceptors: options.receiveTimeoutMs ? [receiveDeadlineInterceptor(options.receiveTimeoutMs)] : [],
    });
    for (const [serviceName, methods] of apiServiceMethods()) {
      const implementation: grpc.UntypedServiceImplementation = {};
      for (const { name } of methods)
        implementation[name] = unaryHandler(dispatcher, `${serviceName}/${name}` as ApiMethod);
      this.server.addService(grpcServiceDefinition(methods, true), implementation);
    }
    this.health = new HealthImplementation({ '': 'NOT_SERVING' });
    this.health.addToServer(this.server);
    new LazyReflection([...apiServiceNames(), 'grpc.health.v1.Health']).addToServer(this.server);
    this.injector = this.server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  }

  setServing(serving: boolean): void {
    const status = serving ? 'SERVING' : 'NOT_SERVING';
    this.health.setStatus('', status);
    for (const name of new Set(API_METHODS.map((m) => m.split('/')[0] as string)))
      this.health.setStatus(name, status);
  }

  injectConnection(connection: Duplex): void {
    this.connections.add(connection);
    this.watchHalfClosed(connection);
    connection.once('close', () => {
      this.connections.delete(connection);
      for (const waiter of this.closeWaiters) waiter();
    });
    this.injector.injectConnection(connection);
  }

  /**
   * The backstop behind the idle GOAWAY and keepalive: a peer that has sent nothing, not even
   * a PING ack, for the keepalive interval plus the ping timeout is gone or hostile, yet Node
   * would keep its session (and descriptor) for as long as it neither reads nor closes.
   */
  private watchHalfClosed(connection: Duplex): void {
    const socket = connection as Partial<Socket>;
    let lastRead = socket.bytesRead ?? 0;
    let lastChange = Date.now();
    const timer = setInterval(() => {
      const read = socket.bytesRead ?? 0;
      if (read !== lastRead) {
        lastRead = read;
        lastChange = Date.now();
      } else if (Date.now() - lastChange > this.silenceLimitMs) {
        clearInterval(timer);
        connection.destroy();
      }
    }, 1000);
    timer.unref();
    connection.once('close', () => clearInterval(timer));
  }

  /** Sends GOAWAY to every session; after graceMs the rest is closed. */
  drain(graceMs: number): void {
    this.injector.drain(graceMs);
  }

  /**
   * Resolves once every connection has closed on its own (after drain, a session closes when
   * its last answer is written), or after waitMs. Destroying earlier would reset streams whose
   * answer is still being sent, and their callers would see CANCELLED.
   */
  whenClosed(waitMs: number): Promise<void> {
    if (this.connections.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.closeWaiters.delete(waiter);
        resolve();
      };
      const waiter = (): void => {
        if (this.connections.size === 0) done();
      };
      const timer = setTimeout(done, waitMs);
      timer.unref();
      this.closeWaiters.add(waiter);
    });
  }

  destroy(): void {
    this.injector.destroy();
    this.server.forceShutdown();
  }
}

function apiServiceNames(): string[] {
  return [...new Set(API_METHODS.map((m) => m.split('/')[0] as string))];
}

function unaryHandler(dispatcher: ApiDispatcher, method: ApiMethod): grpc.handleUnaryCall<object, object> {
  return (call, callback) => {
    const undecodable = (call.request as Partial<UndecodableRequest>)[UNDECODABLE];
    if (undecodable !== undefined) {
      const failure = toCallFailure(new CdhError('REQUEST_MALFORMED', undecodable));
      callback({ code: failure.code, details: failure.message });
      return;
    }
    const deadline = toEpochMs(call.getDeadline());
    // grpc-js's call emits 'cancelled' when the caller goes away; the deadline concern listens
    // to it for the call's duration only (the stream's closing after the answer emits it too).
    dispatcher
      .invoke(method, call.request, {
        transport: 'grpc',
        cancellation: call,
        ...(deadline === undefined ? {} : { deadline }),
      })
      .then(
        (result) => {
          if (result.ok) callback(null, result.response);
          else callback({ code: result.code, details: result.message });
        },
        // invoke() never rejects; this keeps a bug from leaving the call hanging.
        () => callback({ code: grpc.status.INTERNAL, details: 'INTERNAL: internal error' }),
      );
  };
}

function toEpochMs(deadline: grpc.Deadline): number | undefined {
  const ms = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(ms) ? ms : undefined;
}
