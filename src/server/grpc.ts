import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { HealthImplementation, protoPath as healthProtoPath } from 'grpc-health-check';
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { API_METHODS, type ApiDispatcher, type ApiMethod } from './api';
import { API_PROTO } from '../package-info';

const LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: String, enums: String, defaults: true };

export interface GrpcFrontOptions {
  readonly maxMessageBytes: number;
}

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

  constructor(dispatcher: ApiDispatcher, options: GrpcFrontOptions) {
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': options.maxMessageBytes,
      'grpc.max_send_message_length': -1,
    });
    const definition = protoLoader.loadSync([API_PROTO, healthProtoPath], LOADER_OPTIONS);
    for (const serviceName of new Set(API_METHODS.map((m) => m.split('/')[0] as string))) {
      const service = definition[serviceName] as grpc.ServiceDefinition;
      const implementation: grpc.UntypedServiceImplementation = {};
      for (const [methodName] of Object.entries(service)) {
        const method = `${serviceName}/${methodName}` as ApiMethod;
        implementation[methodName] = unaryHandler(dispatcher, method);
      }
      this.server.addService(service, implementation);
    }
    this.health = new HealthImplementation({ '': 'NOT_SERVING' });
    this.health.addToServer(this.server);
    new LazyReflection(definition).addToServer(this.server);
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
    connection.once('close', () => {
      this.connections.delete(connection);
      for (const waiter of this.closeWaiters) waiter();
    });
    this.injector.injectConnection(connection);
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

function unaryHandler(dispatcher: ApiDispatcher, method: ApiMethod): grpc.handleUnaryCall<object, object> {
  return (call, callback) => {
    const controller = new AbortController();
    const onCancelled = (): void => controller.abort();
    call.on('cancelled', onCancelled);
    const deadline = toEpochMs(call.getDeadline());
    dispatcher
      .invoke(method, call.request, {
        transport: 'grpc',
        signal: controller.signal,
        ...(deadline === undefined ? {} : { deadline }),
      })
      .then(
        (result) => {
          // grpc-js reports the stream's closing after the answer as 'cancelled' too; nothing
          // is left to cancel then (and aborting would build a DOMException per call).
          call.off('cancelled', onCancelled);
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

type ReflectionModule = typeof import('@grpc/reflection');

interface ReflectionMethod {
  readonly definition: grpc.MethodDefinition<object, object>;
  readonly handler: grpc.handleBidiStreamingCall<object, object>;
}

/** The reflection services' one method (the same in v1 and v1alpha). */
const REFLECTION_PATHS = [
  '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo',
  '/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo',
] as const;

/**
 * Server reflection, built on its first use: @grpc/reflection loads two protos and turns our
 * definitions into file descriptors (measured in docs/performance.md), which start-up should not pay for a
 * debugging aid. The two methods are registered at once with pass-through (de)serializers;
 * the first call builds the real service and each call is relayed to it, messages decoded
 * on the way in and encoded on the way out with the real service's own serializers.
 */
class LazyReflection {
  private methods: Map<string, ReflectionMethod> | undefined;

  constructor(private readonly definition: protoLoader.PackageDefinition) {}

  addToServer(server: grpc.Server): void {
    const passThrough = (bytes: Buffer): Buffer => bytes;
    for (const path of REFLECTION_PATHS) {
      server.register<Buffer, Buffer>(
        path,
        (call: grpc.ServerDuplexStream<Buffer, Buffer>) => this.relay(path, call),
        passThrough,
        passThrough,
        'bidi',
      );
    }
  }

  private method(path: string): ReflectionMethod {
    if (this.methods === undefined) {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { ReflectionService } = require('@grpc/reflection') as ReflectionModule;
      const methods = new Map<string, ReflectionMethod>();
      const collector = {
        addService(service: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation): void {
          for (const [name, definition] of Object.entries(service)) {
            methods.set(definition.path, {
              definition: definition as grpc.MethodDefinition<object, object>,
              handler: implementation[name] as grpc.handleBidiStreamingCall<object, object>,
            });
          }
        },
      };
      new ReflectionService(this.definition).addToServer(collector as unknown as grpc.Server);
      this.methods = methods;
    }
    const method = this.methods.get(path);
    if (method === undefined) throw new Error(`@grpc/reflection did not provide ${path}`);
    return method;
  }

  private relay(path: string, call: grpc.ServerDuplexStream<Buffer, Buffer>): void {
    let method: ReflectionMethod;
    try {
      method = this.method(path);
    } catch {
      call.emit('error', { code: grpc.status.INTERNAL, details: 'server reflection is unavailable' });
      return;
    }
    // What the reflection handler uses of its stream: 'data' and 'end' events, write() and end().
    const stream = Object.assign(new EventEmitter(), {
      write: (message: object): boolean => call.write(method.definition.responseSerialize(message)),
      end: (): void => {
        call.end();
      },
    });
    call.on('data', (bytes: Buffer) => {
      let message: object;
      try {
        message = method.definition.requestDeserialize(bytes);
      } catch {
        call.emit('error', { code: grpc.status.INTERNAL, details: 'Error deserializing request' });
        return;
      }
      stream.emit('data', message);
    });
    call.on('end', () => stream.emit('end'));
    method.handler(stream as unknown as grpc.ServerDuplexStream<object, object>);
  }
}
