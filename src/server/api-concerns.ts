import type { Logger } from 'pino';
import { CdhError, isCdhError } from '../errors';
import type { CallContext } from '../providers/types';
import type { ApiCall, ApiMethod, ApiResult } from './api';
import { toCallFailure } from './status';
import { MAX_TIMER_MS } from '../lib/abort';

/**
 * The concerns every API call passes through, each a function of the next step, composed once
 * at start-up (src/server/api.ts). Per call they share one CallScope and create nothing they do
 * not need: no AbortController until the domain asks for a signal, no timer without a deadline.
 */
export type Next = (scope: CallScope) => Promise<object>;
export type Concern = (next: Next) => Next;
/** A step that answers (never rejects): the outer concerns. */
export type Answer = (scope: CallScope) => Promise<ApiResult>;

/** One call on its way through the concerns; what the domain sees of it is its CallContext. */
export class CallScope implements CallContext {
  /** The in-flight limit the call holds a slot of (the limit gives it back on shared work). */
  slots: InFlightLimit | undefined = undefined;
  holdsSlot = false;
  /** Set by the deadline concern: answers the caller at once when the call is aborted. */
  onAbort: ((reason: unknown) => void) | undefined = undefined;
  /** What made the call fail, for the log. */
  error: unknown = undefined;
  private controller: AbortController | undefined = undefined;
  private abortReason: unknown = undefined;
  private aborted = false;

  constructor(
    readonly method: ApiMethod,
    readonly request: unknown,
    readonly call: ApiCall,
  ) {}

  /** Created on first use: a cached answer never asks for it. */
  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort(this.abortReason);
    }
    return this.controller.signal;
  }

  onSharedWork(): void {
    this.slots?.giveBack(this);
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.abortReason = reason;
    this.controller?.abort(reason);
    this.onAbort?.(reason);
  }
}

/** Shutdown: from startDraining() on, new calls are refused (calls already running go on). */
export class Drain {
  private draining = false;

  startDraining(): void {
    this.draining = true;
  }

  readonly concern: Concern = (next) => (scope) =>
    this.draining
      ? Promise.reject(new CdhError('SHUTTING_DOWN', 'the daemon is shutting down'))
      : next(scope);
}

/**
 * Calls waiting on another call's KMS request hold no slot; they are bounded apart, at this
 * many per slot (each holds its request, at most max_message_bytes, and a few hundred bytes).
 */
export const SHARED_CALLS_PER_SLOT = 16;

/**
 * At most maxInFlight calls doing their own work. A call that goes on to wait for identical
 * work already in flight (single-flight) gives its slot back and counts among the sharing
 * calls instead, bounded at SHARED_CALLS_PER_SLOT per slot.
 */
export class InFlightLimit {
  private holding = 0;
  private sharing = 0;
  private readonly idleWaiters: Array<() => void> = [];
  private readonly maxShared: number;

  constructor(private readonly maxInFlight: number) {
    this.maxShared = maxInFlight * SHARED_CALLS_PER_SLOT;
  }

  get callsInFlight(): number {
    return this.holding + this.sharing;
  }

  /** Resolves when no call is in flight. */
  whenIdle(): Promise<void> {
    if (this.callsInFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  readonly concern: Concern = (next) => async (scope) => {
    if (this.holding >= this.maxInFlight || this.sharing >= this.maxShared) throw this.refusal();
    this.holding++;
    scope.slots = this;
    scope.holdsSlot = true;
    try {
      return await next(scope);
    } finally {
      if (scope.holdsSlot) this.holding--;
      else this.sharing--;
      scope.holdsSlot = false;
      scope.slots = undefined;
      if (this.callsInFlight === 0) for (const wake of this.idleWaiters.splice(0)) wake();
    }
  };

  giveBack(scope: CallScope): void {
    if (!scope.holdsSlot) return;
    scope.holdsSlot = false;
    this.holding--;
    this.sharing++;
  }

  private refusal(): CdhError {
    return new CdhError(
      'TOO_MANY_IN_FLIGHT',
      this.holding >= this.maxInFlight
        ? `more than ${this.maxInFlight} calls in flight (max_in_flight)`
        : `more than ${this.maxShared} calls waiting on identical calls in flight (${SHARED_CALLS_PER_SLOT} x max_in_flight)`,
    );
  }
}

/** Timers may fire a little early; a caller gone this close to its deadline ran out of time. */
const DEADLINE_SLACK_MS = 10;

export function deadlineExceeded(): CdhError {
  return new CdhError('DEADLINE_EXCEEDED', `the caller's deadline passed`);
}

/**
 * Why the caller went away. grpc-js answers DEADLINE_EXCEEDED itself when the deadline passes
 * and reports the call as cancelled, possibly before our own deadline timer fires: the domain
 * and the log must still see a deadline, not a cancellation.
 */
export function callerGone(deadline: number | undefined): CdhError {
  if (deadline !== undefined && Date.now() >= deadline - DEADLINE_SLACK_MS) return deadlineExceeded();
  return new CdhError('CANCELLED', 'the caller cancelled the call');
}

function abortAtDeadline(scope: CallScope): void {
  scope.abort(deadlineExceeded());
}

/**
 * The caller's deadline and cancellation: the call's signal aborts (so the domain stops its
 * KMS request) and the caller is answered at once. A timer (unref'd) only when there is a
 * deadline; nothing at all when the call can neither expire nor be cancelled.
 */
export const deadline: Concern = (next) => (scope) => {
  const { call } = scope;
  const expires =
    call.deadline !== undefined &&
    Number.isFinite(call.deadline) &&
    call.deadline - Date.now() <= MAX_TIMER_MS;
  if (!expires && call.signal === undefined && call.cancellation === undefined) return next(scope);
  if (call.signal?.aborted) return Promise.reject(callerGone(call.deadline));
  return new Promise<object>((resolve, reject) => {
    const gone = (): void => scope.abort(callerGone(call.deadline));
    const timer = expires
      ? setTimeout(abortAtDeadline, Math.max(0, (call.deadline as number) - Date.now()), scope).unref()
      : undefined;
    call.signal?.addEventListener('abort', gone, { once: true });
    call.cancellation?.on('cancelled', gone);
    const settle = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      call.signal?.removeEventListener('abort', gone);
      call.cancellation?.off('cancelled', gone);
      scope.onAbort = undefined;
    };
    scope.onAbort = (reason) => {
      settle();
      reject(reason);
    };
    let work: Promise<object>;
    try {
      work = next(scope);
    } catch (error) {
      settle();
      reject(error);
      return;
    }
    work.then(
      (response) => {
        settle();
        resolve(response);
      },
      (error: unknown) => {
        settle();
        reject(error);
      },
    );
  });
};

/** Error → status: the one place a failed call becomes an answer (src/server/status.ts). */
export function errorToStatus(next: Next): Answer {
  return async (scope) => {
    try {
      return { ok: true, response: await next(scope) };
    } catch (error) {
      scope.error = error;
      return { ok: false, ...toCallFailure(error) };
    }
  };
}

/**
 * One log line per call: failures at info (catalogued) or error (unexpected, with the stack),
 * successes at debug only when debug is on (nothing is built for them otherwise).
 */
export function logging(logger: Logger): (next: Answer) => Answer {
  return (next) => async (scope) => {
    const started = performance.now();
    const result = await next(scope);
    if (result.ok) {
      if (logger.isLevelEnabled('debug'))
        logger.debug({ ...fieldsOf(scope), ms: performance.now() - started }, 'call succeeded');
      return result;
    }
    const fields = { ...fieldsOf(scope), status: result.status, ms: performance.now() - started };
    const error = scope.error;
    if (isCdhError(error) && error.code !== 'INTERNAL') {
      logger.info({ ...fields, error: result.message }, 'call failed');
    } else {
      // Unexpected: keep the stack for the operator. Stacks carry code locations, not secrets.
      const cause = isCdhError(error) ? error.cause : error;
      logger.error(
        { ...fields, err: cause instanceof Error ? { type: cause.name, stack: cause.stack } : String(cause) },
        'call failed unexpectedly',
      );
    }
    return result;
  };
}

function fieldsOf(scope: CallScope): { method: ApiMethod; transport: ApiCall['transport'] } {
  return { method: scope.method, transport: scope.call.transport };
}
