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
    message: boundMessage(`${cdh.code}: ${cdh.message}`),
  };
}

/**
 * Status messages travel in an HTTP/2 trailer (grpc-message); one that echoes a huge input
 * would blow the peer's header-list limit. Keep them to one readable line.
 */
export const MAX_STATUS_MESSAGE_CHARS = 1024;

const TRUNCATED = '… (message truncated)';

function boundMessage(message: string): string {
  const oneLine = message.replace(/[\r\n]+/g, ' ');
  return oneLine.length <= MAX_STATUS_MESSAGE_CHARS
    ? oneLine
    : `${oneLine.slice(0, MAX_STATUS_MESSAGE_CHARS - TRUNCATED.length)}${TRUNCATED}`;
}
