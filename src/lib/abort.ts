import { setTimeout as delay } from 'node:timers/promises';
import { CdhError, isCdhError } from '../errors';

/** The longest delay a Node timer takes (2^31-1 ms); a longer one fires at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The error to report when `signal` fired: its reason when catalogued (the API's deadline or
 * cancellation), DEADLINE_EXCEEDED for an AbortSignal.timeout(), else CANCELLED.
 * `context` prefixes the message of the errors made here.
 */
export function abortError(signal: AbortSignal, context?: string): CdhError {
  const reason: unknown = signal.reason;
  if (isCdhError(reason)) return reason;
  const prefix = context === undefined ? '' : `${context}: `;
  if (reason instanceof Error && reason.name === 'TimeoutError')
    return new CdhError('DEADLINE_EXCEEDED', `${prefix}the caller's deadline passed`);
  return new CdhError('CANCELLED', `${prefix}the caller cancelled the call`);
}

/** Throws abortError(signal) when `signal` has fired. */
export function throwIfAborted(signal: AbortSignal | undefined, context?: string): void {
  if (signal?.aborted) throw abortError(signal, context);
}

/** Settles like `work`, or rejects as soon as `signal` fires (the work itself is left to finish). */
export function raceSignal<T>(
  work: Promise<T>,
  signal: AbortSignal | undefined,
  context?: string,
): Promise<T> {
  if (signal === undefined) return work;
  if (signal.aborted) {
    work.catch(() => undefined);
    return Promise.reject(abortError(signal, context));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(abortError(signal, context));
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/** Waits `ms`, or rejects with abortError(signal) as soon as `signal` fires. */
export async function sleep(ms: number, signal?: AbortSignal, context?: string): Promise<void> {
  throwIfAborted(signal, context);
  try {
    await delay(ms, undefined, signal === undefined ? {} : { signal });
  } catch (error) {
    if (signal?.aborted) throw abortError(signal, context);
    throw error;
  }
}
