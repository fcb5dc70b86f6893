import type { Logger } from 'pino';
import type { CallContext } from '../providers/types';
import type {
  GetResourceRequestSchema,
  GetResourceResponseSchema,
  ImagePullRequestSchema,
  ImagePullResponseSchema,
  UnsealSecretInputSchema,
  UnsealSecretOutputSchema,
} from '../gen/api_pb';
import type {
  KeyProviderKeyWrapProtocolInputSchema,
  KeyProviderKeyWrapProtocolOutputSchema,
} from '../gen/keyprovider_pb';
import type { MessageFields } from './api-codec';
import {
  CallScope,
  deadline,
  Drain,
  errorToStatus,
  InFlightLimit,
  logging,
  type Answer,
  type Next,
} from './api-concerns';
import { apiHandlers, runHandler } from './api-handlers';
import type { CallFailure } from './status';

/**
 * The transport-neutral API: gRPC and ttrpc both decode a request into the generated message
 * of protos/api.proto (src/server/api-codec.ts: generated field names, bytes as Buffers), call
 * ApiDispatcher.invoke, and encode what comes back.
 */
export const API_METHODS = [
  'api.SealedSecretService/UnsealSecret',
  'api.GetResourceService/GetResource',
  'api.SecureMountService/SecureMount',
  'api.ImagePullService/PullImage',
  'keyprovider.KeyProviderService/UnWrapKey',
  'keyprovider.KeyProviderService/WrapKey',
] as const;

export type ApiMethod = (typeof API_METHODS)[number];

export { SHARED_CALLS_PER_SLOT } from './api-concerns';

/** Each method's messages: the fields of the types generated from the protos (src/gen). */
export type UnsealSecretInput = MessageFields<typeof UnsealSecretInputSchema>;
export type UnsealSecretOutput = MessageFields<typeof UnsealSecretOutputSchema>;
export type GetResourceRequest = MessageFields<typeof GetResourceRequestSchema>;
export type GetResourceResponse = MessageFields<typeof GetResourceResponseSchema>;
export type ImagePullRequest = MessageFields<typeof ImagePullRequestSchema>;
export type ImagePullResponse = MessageFields<typeof ImagePullResponseSchema>;
export type KeyProviderKeyWrapProtocolInput = MessageFields<typeof KeyProviderKeyWrapProtocolInputSchema>;
export type KeyProviderKeyWrapProtocolOutput = MessageFields<typeof KeyProviderKeyWrapProtocolOutputSchema>;

/** The domain operations the API exposes. */
export interface ApiBackend {
  unsealSecret(secret: Uint8Array, ctx: CallContext): Promise<Uint8Array>;
  getResource(uri: string, ctx: CallContext): Promise<Uint8Array>;
  /** Pulls `imageUrl` into `bundlePath`; answers the platform manifest's digest. */
  pullImage?(imageUrl: string, bundlePath: string, ctx: CallContext): Promise<string>;
  /** KeyProviderService.UnWrapKey: the keyunwrap request JSON in, the keyunwrapresults JSON out. */
  unwrapKey?(request: Uint8Array, ctx: CallContext): Promise<Uint8Array>;
}

export interface ApiCall {
  readonly transport: 'grpc' | 'ttrpc';
  /** Absolute deadline (ms since epoch) from the caller, if any. */
  readonly deadline?: number;
  /** Aborted when the caller goes away (ttrpc). */
  readonly signal?: AbortSignal;
  /** Or: emits 'cancelled' when the caller goes away (grpc-js's call object, no signal built). */
  readonly cancellation?: CancellationEmitter;
}

export interface CancellationEmitter {
  on(event: 'cancelled', listener: () => void): unknown;
  off(event: 'cancelled', listener: () => void): unknown;
}

export type ApiResult =
  { readonly ok: true; readonly response: object } | ({ readonly ok: false } & CallFailure);

export interface ApiDispatcherOptions {
  readonly maxInFlight: number;
  readonly logger: Logger;
}

/**
 * The one composed function both transports call: logging ∘ error → status ∘ drain ∘
 * in-flight limit ∘ deadline ∘ the method's typed handler (src/server/api-concerns.ts,
 * src/server/api-handlers.ts), put together once here.
 */
export class ApiDispatcher {
  private readonly drain = new Drain();
  private readonly limit: InFlightLimit;
  private readonly answer: Answer;

  constructor(backend: ApiBackend, options: ApiDispatcherOptions) {
    this.limit = new InFlightLimit(options.maxInFlight);
    const handlers = apiHandlers(backend);
    const handle: Next = (scope) => runHandler(handlers, scope.method, scope.request, scope);
    this.answer = logging(options.logger)(
      errorToStatus(this.drain.concern(this.limit.concern(deadline(handle)))),
    );
  }

  get callsInFlight(): number {
    return this.limit.callsInFlight;
  }

  /** Refuse new calls from now on (shutdown); calls already running continue. */
  startDraining(): void {
    this.drain.startDraining();
  }

  /** Resolves when no call is in flight. */
  whenIdle(): Promise<void> {
    return this.limit.whenIdle();
  }

  /** Never rejects: a failure comes back as a status. */
  invoke(method: ApiMethod, request: unknown, call: ApiCall): Promise<ApiResult> {
    return this.answer(new CallScope(method, request, call));
  }
}
