import { CdhError, STATUS_NUMBER, toCdhError, type StatusName } from '../errors';

/** A failed call as both transports report it. */
export interface CallFailure {
  readonly status: StatusName;
  readonly code: number;
  readonly message: string;
}

/**
 * The one place where an error becomes a status. Catalogued errors keep their status and
 * message (prefixed by the stable code); anything else is INTERNAL with a generic message,
 * since its text could carry anything.
 */
export function toCallFailure(error: unknown): CallFailure {
  const cdh: CdhError = toCdhError(error);
  return {
    status: cdh.status,
    code: STATUS_NUMBER[cdh.status],
    message: `${cdh.code}: ${cdh.message}`,
  };
}
