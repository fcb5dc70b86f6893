import { CdhError } from '../errors';

/** The caller's abort as the error of a resource call: its reason when catalogued, else CANCELLED. */
export function throwIfAborted(signal: AbortSignal, shown: string, where: string): void {
  if (!signal.aborted) return;
  const reason: unknown = signal.reason;
  if (reason instanceof CdhError) {
    throw new CdhError(reason.code, `resource ${shown}: ${reason.message} (${where})`);
  }
  throw new CdhError('CANCELLED', `resource ${shown}: the caller cancelled (${where})`);
}
