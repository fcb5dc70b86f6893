import { sleep } from './abort';

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  readonly maxAttempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
}

/** Every remote's policy unless configured otherwise: 4 attempts, 100 ms doubling up to 2 s. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = { maxAttempts: 4, baseDelayMs: 100, maxDelayMs: 2000 };

/**
 * Exponential backoff with jitter: half the cap fixed, half random, at least what the server
 * asked for (Retry-After). `failures` counts from 1.
 */
export function backoffDelay(
  policy: RetryPolicy,
  failures: number,
  random: () => number = Math.random,
  retryAfterMs = 0,
): number {
  const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (failures - 1));
  return Math.max(cap / 2 + random() * (cap / 2), retryAfterMs);
}

/** What one attempt came to: done, or a failure worth another attempt (or not). */
export type AttemptOutcome<T, F> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly failure: F; readonly retryable: boolean; readonly retryAfterMs?: number };

export interface RetryOptions<T, F> {
  readonly policy: RetryPolicy;
  readonly signal: AbortSignal;
  /** Prefix of the abort error's message. */
  readonly context?: string;
  /** No attempt starts, and no backoff runs, past this time (ms since epoch). */
  readonly deadline?: number;
  /** One attempt; `remainingMs` is what is left before the deadline (Infinity without one). */
  attempt(attempt: number, remainingMs: number): Promise<AttemptOutcome<T, F>>;
  /**
   * The error for the last failure: `retryable` false when it is final by itself, true when the
   * attempts are used up or the backoff would pass the deadline.
   */
  giveUp(failure: F, attempts: number, retryable: boolean): Error;
  /** The deadline passed before attempt `attempts + 1` (default: giveUp of the last failure). */
  expired?(attempts: number, lastFailure: F | undefined): Error;
  onRetry?(failure: F, attempt: number, delayMs: number): void;
}

/** Runs attempts with backoff until one succeeds, a failure is final, or attempts or time run out. */
export async function withRetry<T, F>(options: RetryOptions<T, F>): Promise<T> {
  const { policy, deadline = Infinity } = options;
  let lastFailure: F | undefined;
  for (let attempt = 1; ; attempt++) {
    const remainingMs = deadline - Date.now();
    if (remainingMs <= 0) {
      if (options.expired) throw options.expired(attempt - 1, lastFailure);
      throw options.giveUp(lastFailure as F, attempt - 1, true);
    }
    const outcome = await options.attempt(attempt, remainingMs);
    if (outcome.ok) return outcome.value;
    lastFailure = outcome.failure;
    const delayMs = backoffDelay(policy, attempt, Math.random, outcome.retryAfterMs);
    if (!outcome.retryable || attempt >= policy.maxAttempts || Date.now() + delayMs >= deadline)
      throw options.giveUp(outcome.failure, attempt, outcome.retryable);
    options.onRetry?.(outcome.failure, attempt, delayMs);
    await sleep(delayMs, options.signal, options.context);
  }
}
