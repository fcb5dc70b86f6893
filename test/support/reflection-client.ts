import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { join } from 'node:path';
import * as protobuf from 'protobufjs';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const descriptor = require('protobufjs/ext/descriptor') as {
  FileDescriptorProto: protobuf.Type;
};
import { PACKAGE_ROOT } from '../../src/package-info';

export interface FileDescriptor {
  name: string;
  package?: string;
  dependency?: string[];
  messageType?: Array<{
    name: string;
    field?: Array<{ name: string; number: number; type: number | string }>;
  }>;
  service?: Array<{ name: string }>;
}

/** A grpc.reflection client (v1 or v1alpha), as grpcurl uses it. */
export class ReflectionClient {
  private readonly client: grpc.Client & Record<string, unknown>;

  constructor(target: string, version: 'v1' | 'v1alpha' = 'v1') {
    const proto = join(
      PACKAGE_ROOT,
      `node_modules/@grpc/reflection/build/proto/grpc/reflection/${version}/reflection.proto`,
    );
    const definition = protoLoader.loadSync(proto, { keepCase: true, defaults: true, oneofs: true });
    const name = `grpc.reflection.${version}.ServerReflection`;
    const Ctor = grpc.makeGenericClientConstructor(definition[name] as grpc.ServiceDefinition, name);
    this.client = new Ctor(target, grpc.credentials.createInsecure()) as grpc.Client &
      Record<string, unknown>;
  }

  private ask(request: object): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const open = this.client['ServerReflectionInfo'] as (
        opts: grpc.CallOptions,
      ) => grpc.ClientDuplexStream<object, Record<string, unknown>>;
      const stream = open.call(this.client, { deadline: Date.now() + 5000 });
      stream.once('data', (response) => {
        resolve(response);
        stream.end();
      });
      stream.once('error', reject);
      stream.write(request);
    });
  }

  async listServices(): Promise<string[]> {
    const response = await this.ask({ list_services: '' });
    const list = response['list_services_response'] as { service: Array<{ name: string }> };
    return list.service.map((s) => s.name);
  }

  /** The file defining `symbol` plus its dependencies, decoded. */
  async fileContainingSymbol(symbol: string): Promise<FileDescriptor[]> {
    const response = await this.ask({ file_containing_symbol: symbol });
    const files = response['file_descriptor_response'] as { file_descriptor_proto: Buffer[] } | undefined;
    if (!files) throw new Error(`no descriptor for ${symbol}: ${JSON.stringify(response['error_response'])}`);
    return files.file_descriptor_proto.map(
      (bytes) =>
        descriptor.FileDescriptorProto.toObject(
          descriptor.FileDescriptorProto.decode(bytes),
        ) as FileDescriptor,
    );
  }

  close(): void {
    this.client.close();
  }
}
