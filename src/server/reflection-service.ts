import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { DESCRIPTOR_SET } from '../package-info';

import type { ReflectionRequest } from './reflection';

type ReflectionModule = typeof import('./reflection');

/** Both versions: one method each, the same messages on the wire. */
const REFLECTION_SERVICES = [
  'grpc.reflection.v1.ServerReflection',
  'grpc.reflection.v1alpha.ServerReflection',
];

interface ReflectionServer {
  readonly reflection: InstanceType<ReflectionModule['DescriptorSetReflection']>;
  readonly codec: InstanceType<ReflectionModule['ReflectionCodec']>;
}

/**
 * Server reflection over the FileDescriptorSet compiled at build time (DESCRIPTOR_SET), built
 * on its first use: start-up should not pay for reading and indexing it for a debugging aid.
 * Both versions are registered at once with pass-through (de)serializers; messages are
 * decoded and encoded with the set's own reflection types.
 */
export class LazyReflection {
  private server: ReflectionServer | undefined;

  /** `serviceNames`: the other services on the server, listed and described from `setPath`. */
  constructor(
    private readonly serviceNames: readonly string[],
    private readonly setPath: string = DESCRIPTOR_SET,
  ) {}

  addToServer(server: grpc.Server): void {
    const passThrough = (bytes: Buffer): Buffer => bytes;
    for (const service of REFLECTION_SERVICES) {
      server.register<Buffer, Buffer>(
        `/${service}/ServerReflectionInfo`,
        (call: grpc.ServerDuplexStream<Buffer, Buffer>) => this.serve(call),
        passThrough,
        passThrough,
        'bidi',
      );
    }
  }

  private load(): ReflectionServer {
    if (this.server === undefined) {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { DescriptorSetReflection, ReflectionCodec } = require('./reflection') as ReflectionModule;
      const set = readFileSync(this.setPath);
      this.server = {
        reflection: new DescriptorSetReflection(set, [...this.serviceNames, ...REFLECTION_SERVICES]),
        codec: new ReflectionCodec(),
      };
    }
    return this.server;
  }

  private serve(call: grpc.ServerDuplexStream<Buffer, Buffer>): void {
    let server: ReflectionServer;
    try {
      server = this.load();
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      call.emit('error', {
        code: grpc.status.INTERNAL,
        details: `server reflection is unavailable: ${reason}`,
      });
      return;
    }
    const sent = new Set<string>();
    let failed = false;
    call.on('data', (bytes: Buffer) => {
      if (failed) return;
      let request: ReflectionRequest;
      try {
        request = server.codec.decodeRequest(bytes);
      } catch {
        failed = true;
        call.emit('error', { code: grpc.status.INTERNAL, details: 'Error deserializing request' });
        return;
      }
      call.write(server.codec.encodeResponse(server.reflection.answer(request, sent)));
    });
    call.on('end', () => {
      if (!failed) call.end();
    });
  }
}
