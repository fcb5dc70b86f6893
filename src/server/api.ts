import type { Logger } from 'pino';
import { CdhError, isCdhError, type ErrorCode } from '../errors';
import type { CallContext } from '../providers/types';
import { toCallFailure, type CallFailure } from './status';

/**
 * The transport-neutral API: gRPC and ttrpc both decode a request into the plain object of
 * protos/api.proto (field names as in the proto, bytes as Uint8Array), call `invoke`, and
 * encode what comes back. Limits, deadlines, logging and error mapping live here once.
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

const MAX_TIMER_MS = 2 ** 31 - 1;
/**
 * Calls waiting on another call's KMS request hold no slot; they are bounded apart, at this
 * many per slot (each holds its request, at most max_message_bytes, and a few hundred bytes).
 */
export const SHARED_CALLS_PER_SLOT = 16;

export interface UnsealSecretInput {
  secret: Uint8Array;
}
export interface UnsealSecretOutput {
  plaintext: Uint8Array;
}
export interface GetResourceRequest {
  ResourcePath: string;
}
export interface GetResourceResponse {
  Resource: Uint8Array;
}
export interface ImagePullResponse {
  manifest_digest: string;
}
export interface KeyProviderKeyWrapProtocolOutput {
  KeyProviderKeyWrapProtocolOutput: Uint8Array;
}

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
  /** Aborted when the caller goes away. */
  readonly signal?: AbortSignal;
}

export type ApiResult =
  { readonly ok: true; readonly response: object } | ({ readonly ok: false } & CallFailure);

export interface ApiDispatcherOptions {
  readonly maxInFlight: number;
  readonly logger: Logger;
}

export class ApiDispatcher {
  /** Calls holding a slot (doing their own work). */
  private inFlight = 0;
  /** Calls that gave their slot back to wait on work another call started. */
  private sharing = 0;
  private draining = false;
  private readonly idleWaiters: Array<() => void> = [];

  constructor(
    private readonly backend: ApiBackend,
    private readonly options: ApiDispatcherOptions,
  ) {}

  get callsInFlight(): number {
    return this.inFlight + this.sharing;
  }

  /** Refuse new calls from now on (shutdown); calls already running continue. */
  startDraining(): void {
    this.draining = true;
  }

  /** Resolves when no call is in flight. */
  whenIdle(): Promise<void> {
    if (this.callsInFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  async invoke(method: ApiMethod, request: unknown, call: ApiCall): Promise<ApiResult> {
    const started = process.hrtime.bigint();
    if (this.draining)
      return this.fail(method, call, new CdhError('SHUTTING_DOWN', 'the daemon is shutting down'));
    const maxShared = this.options.maxInFlight * SHARED_CALLS_PER_SLOT;
    if (this.inFlight >= this.options.maxInFlight || this.sharing >= maxShared) {
      return this.fail(
        method,
        call,
        new CdhError(
          'TOO_MANY_IN_FLIGHT',
          this.inFlight >= this.options.maxInFlight
            ? `more than ${this.options.maxInFlight} calls in flight (max_in_flight)`
            : `more than ${maxShared} calls waiting on identical calls in flight (${SHARED_CALLS_PER_SLOT} x max_in_flight)`,
        ),
      );
    }
    this.inFlight++;
    let holdsSlot = true;
    const onSharedWork = (): void => {
      if (!holdsSlot) return;
      holdsSlot = false;
      this.inFlight--;
      this.sharing++;
    };
    const controller = new AbortController();
    const onCallerAbort = (): void => controller.abort(callerGone(call.deadline));
    call.signal?.addEventListener('abort', onCallerAbort, { once: true });
    let timer: NodeJS.Timeout | undefined;
    try {
      const work = this.dispatch(method, request, { signal: controller.signal, onSharedWork });
      const response = await this.withinDeadline(work, call.deadline, controller, (t) => (timer = t));
      this.options.logger.debug(
        { method, transport: call.transport, ms: elapsedMs(started) },
        'call succeeded',
      );
      return { ok: true, response };
    } catch (error) {
      return this.fail(method, call, error, started);
    } finally {
      if (timer) clearTimeout(timer);
      call.signal?.removeEventListener('abort', onCallerAbort);
      if (holdsSlot) this.inFlight--;
      else this.sharing--;
      holdsSlot = false;
      if (this.callsInFlight === 0) for (const wake of this.idleWaiters.splice(0)) wake();
    }
  }

  private async dispatch(method: ApiMethod, request: unknown, ctx: CallContext): Promise<object> {
    switch (method) {
      case 'api.SealedSecretService/UnsealSecret': {
        const secret = bytesField(request, 'secret');
        const plaintext = await this.backend.unsealSecret(secret, ctx);
        return { plaintext } satisfies UnsealSecretOutput;
      }
      case 'api.GetResourceService/GetResource': {
        const uri = stringField(request, 'ResourcePath');
        const resource = await this.backend.getResource(uri, ctx);
        return { Resource: resource } satisfies GetResourceResponse;
      }
      case 'api.SecureMountService/SecureMount':
        throw new CdhError(
          'NOT_IMPLEMENTED',
          'SecureMount is not part of this daemon (it unseals secrets and serves KBS resources only)',
        );
      case 'api.ImagePullService/PullImage': {
        if (!this.backend.pullImage)
          throw new CdhError('NOT_IMPLEMENTED', 'PullImage is not configured in this daemon');
        const imageUrl = stringField(request, 'image_url', 'IMAGE_REFERENCE_INVALID');
        const bundlePath = stringField(request, 'bundle_path', 'IMAGE_REFERENCE_INVALID');
        const digest = await this.backend.pullImage(imageUrl, bundlePath, ctx);
        return { manifest_digest: digest } satisfies ImagePullResponse;
      }
      case 'keyprovider.KeyProviderService/UnWrapKey': {
        if (!this.backend.unwrapKey)
          throw new CdhError('NOT_IMPLEMENTED', 'UnWrapKey is not configured in this daemon');
        const input = bytesField(request, 'KeyProviderKeyWrapProtocolInput', 'KEYPROVIDER_REQUEST_INVALID');
        const output = await this.backend.unwrapKey(input, ctx);
        return { KeyProviderKeyWrapProtocolOutput: output } satisfies KeyProviderKeyWrapProtocolOutput;
      }
      case 'keyprovider.KeyProviderService/WrapKey':
        throw new CdhError(
          'NOT_IMPLEMENTED',
          'WrapKey is not served by the daemon in the guest (the sealing side is `secret keyprovider`)',
        );
    }
  }

  private withinDeadline<T>(
    work: Promise<T>,
    deadline: number | undefined,
    controller: AbortController,
    setTimer: (t: NodeJS.Timeout) => void,
  ): Promise<T> {
    const cancelled = new Promise<never>((_, reject) => {
      if (controller.signal.aborted) reject(controller.signal.reason);
      controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true });
    });
    // Node timers overflow past 2^31-1 ms (they would fire at once): treat longer as none.
    if (deadline !== undefined && Number.isFinite(deadline) && deadline - Date.now() <= MAX_TIMER_MS) {
      const remaining = Math.max(0, deadline - Date.now());
      setTimer(setTimeout(() => controller.abort(deadlineExceeded()), remaining));
    }
    // The domain stops its KMS request when the signal aborts; the caller is answered at once.
    cancelled.catch(() => undefined);
    return Promise.race([work, cancelled]);
  }

  private fail(method: ApiMethod, call: ApiCall, error: unknown, started?: bigint): ApiResult {
    const failure = toCallFailure(error);
    const fields = {
      method,
      transport: call.transport,
      status: failure.status,
      ms: started === undefined ? 0 : elapsedMs(started),
    };
    if (isCdhError(error) && error.code !== 'INTERNAL') {
      this.options.logger.info({ ...fields, error: failure.message }, 'call failed');
    } else {
      // Unexpected: keep the stack for the operator. Stacks carry code locations, not secrets.
      const cause = isCdhError(error) ? error.cause : error;
      this.options.logger.error(
        { ...fields, err: cause instanceof Error ? { type: cause.name, stack: cause.stack } : String(cause) },
        'call failed unexpectedly',
      );
    }
    return { ok: false, ...failure };
  }
}

function deadlineExceeded(): CdhError {
  return new CdhError('DEADLINE_EXCEEDED', `the caller's deadline passed`);
}

/** Timers may fire a little early; a caller gone this close to its deadline ran out of time. */
const DEADLINE_SLACK_MS = 10;

/**
 * Why the caller went away. grpc-js answers DEADLINE_EXCEEDED itself when the deadline passes
 * and reports the call as cancelled, possibly before our own deadline timer fires: the domain
 * and the log must still see a deadline, not a cancellation.
 */
function callerGone(deadline: number | undefined): CdhError {
  if (deadline !== undefined && Date.now() >= deadline - DEADLINE_SLACK_MS) return deadlineExceeded();
  return new CdhError('CANCELLED', 'the caller cancelled the call');
}

function elapsedMs(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e6;
}

function bytesField(
  request: unknown,
  field: string,
  code: ErrorCode = 'SEALED_SECRET_MALFORMED',
): Uint8Array {
  const value = (request as Record<string, unknown> | null)?.[field];
  if (value === undefined || value === null) return new Uint8Array(0);
  if (value instanceof Uint8Array) return value;
  throw new CdhError(code, `request field "${field}" must be bytes`);
}

function stringField(request: unknown, field: string, code: ErrorCode = 'RESOURCE_URI_INVALID'): string {
  const value = (request as Record<string, unknown> | null)?.[field];
  if (value === undefined || value === null) return '';
  if (typeof value === 'string') return value;
  throw new CdhError(code, `request field "${field}" must be a string`);
}
