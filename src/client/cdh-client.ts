import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { GetResourceService, ImagePullService, SealedSecretService } from '../gen/api_pb';
import { KeyProviderService } from '../gen/keyprovider_pb';
import { generatedServiceMethods } from '../server/api-codec';
import { grpcServiceDefinition } from '../server/grpc-services';
import type { DescService } from '@bufbuild/protobuf';

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, response?: Res) => void,
) => grpc.ClientUnaryCall;

interface ServiceClient extends grpc.Client {
  [method: string]: UnaryMethod<object, object> | unknown;
}

export interface CdhClientOptions {
  /** Per-call deadline in ms (default 30 s). */
  readonly timeoutMs?: number;
}

/** A gRPC client of the daemon's socket (cdh-tool, tests, benchmarks). */
export class CdhClient {
  private readonly sealed: ServiceClient;
  private readonly resources: ServiceClient;
  private readonly images: ServiceClient;
  private readonly keyProvider: ServiceClient;
  private readonly health: ServiceClient;
  private readonly timeoutMs: number;

  constructor(address: string, options: CdhClientOptions = {}) {
    const credentials = grpc.credentials.createInsecure();
    const channelOptions = { 'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1 };
    const make = (definition: grpc.ServiceDefinition, name: string): ServiceClient => {
      const Ctor = grpc.makeGenericClientConstructor(definition, name);
      return new Ctor(address, credentials, channelOptions) as unknown as ServiceClient;
    };
    const generated = (service: DescService): ServiceClient =>
      make(grpcServiceDefinition(generatedServiceMethods(service), false), service.typeName);
    this.sealed = generated(SealedSecretService);
    this.resources = generated(GetResourceService);
    this.images = generated(ImagePullService);
    this.keyProvider = generated(KeyProviderService);
    // grpc-health-check's own definition of grpc.health.v1 (status as its enum name).
    this.health = make(healthService as grpc.ServiceDefinition, 'grpc.health.v1.Health');
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  async unsealSecret(secret: Uint8Array, timeoutMs?: number): Promise<Buffer> {
    const response = await this.call<{ plaintext: Buffer }>(
      this.sealed,
      'UnsealSecret',
      { secret },
      timeoutMs,
    );
    return response.plaintext;
  }

  async getResource(uri: string, timeoutMs?: number): Promise<Buffer> {
    const response = await this.call<{ Resource: Buffer }>(
      this.resources,
      'GetResource',
      { ResourcePath: uri },
      timeoutMs,
    );
    return response.Resource;
  }

  /** PullImage: answers the platform manifest's digest. */
  async pullImage(imageUrl: string, bundlePath: string, timeoutMs?: number): Promise<string> {
    const response = await this.call<{ manifestDigest: string }>(
      this.images,
      'PullImage',
      { imageUrl, bundlePath },
      timeoutMs,
    );
    return response.manifestDigest;
  }

  /** KeyProviderService.UnWrapKey (or WrapKey): the request JSON in, the answer JSON out. */
  async keyProviderCall(
    method: 'UnWrapKey' | 'WrapKey',
    request: Uint8Array,
    timeoutMs?: number,
  ): Promise<Buffer> {
    const response = await this.call<{ KeyProviderKeyWrapProtocolOutput: Buffer }>(
      this.keyProvider,
      method,
      { KeyProviderKeyWrapProtocolInput: request },
      timeoutMs,
    );
    return response.KeyProviderKeyWrapProtocolOutput;
  }

  /** grpc.health.v1 Check for the whole server (service ""): 'SERVING', 'NOT_SERVING', ... */
  async check(service = '', timeoutMs?: number): Promise<string> {
    const response = await this.call<{ status: string }>(this.health, 'Check', { service }, timeoutMs);
    return response.status;
  }

  close(): void {
    this.sealed.close();
    this.resources.close();
    this.images.close();
    this.keyProvider.close();
    this.health.close();
  }

  private call<T>(client: ServiceClient, method: string, request: object, timeoutMs?: number): Promise<T> {
    const fn = client[method] as UnaryMethod<object, T>;
    return new Promise<T>((resolve, reject) => {
      fn.call(
        client,
        request,
        new grpc.Metadata(),
        { deadline: Date.now() + (timeoutMs ?? this.timeoutMs) },
        (error, response) => (error ? reject(error) : resolve(response as T)),
      );
    });
  }
}

/** `UNAVAILABLE`, `NOT_FOUND`, ... for a gRPC status number. */
export function grpcStatusName(code: number): string {
  return grpc.status[code] ?? `status ${code}`;
}

/** grpc-js accepts `unix:///abs` and `host:port` directly; `unix:/abs` is normalised. */
export function grpcTarget(address: string): string {
  if (address.startsWith('unix:') && !address.startsWith('unix://')) return `unix://${address.slice(5)}`;
  return address;
}
