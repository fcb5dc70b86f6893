import * as http from 'node:http';
import { TtrpcCallError } from '../client/ttrpc-client';

/**
 * What the REST front answers, and the one place where a failure behind it (the daemon's or
 * the attestation agent's ttrpc status, or the call not getting through) becomes an HTTP status.
 */

export interface RestAnswer {
  readonly status: number;
  readonly contentType: string;
  readonly body: Buffer | string;
  /** One line saying why, for the request's log line (failures only; never a secret). */
  readonly reason?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

const TEXT = 'text/plain; charset=utf-8';

export const MAX_REASON_CHARS = 1024;
const TRUNCATED = '… (truncated)';

/** One readable line of at most MAX_REASON_CHARS characters. */
export function oneLine(text: string): string {
  const line = text.replace(/[\r\n]+/g, ' ').trim();
  return line.length <= MAX_REASON_CHARS
    ? line
    : `${line.slice(0, MAX_REASON_CHARS - TRUNCATED.length)}${TRUNCATED}`;
}

export function octetStream(bytes: Buffer): RestAnswer {
  return { status: 200, contentType: 'application/octet-stream', body: bytes };
}

export function json(value: unknown): RestAnswer {
  return { status: 200, contentType: 'application/json', body: JSON.stringify(value) };
}

/** A failure answered as one line of text; `text` is the body and the logged reason. */
export function failure(status: number, text: string, headers?: Record<string, string>): RestAnswer {
  const line = oneLine(text);
  return { status, contentType: TEXT, body: line, reason: line, ...(headers ? { headers } : {}) };
}

// Upstream's texts for these answers, kept so scripts matching them keep working.
export const NOT_FOUND_TEXT = 'URL NOT FOUND';
export const BAD_REQUEST_TEXT = 'BAD REQUEST';
export const FORBIDDEN_TEXT = 'Forbidden';
export const METHOD_NOT_ALLOWED_TEXT = 'Method Not Allowed';
export const ATTESTATION_DISABLED_TEXT = 'Attestation Feature Not Enabled';
export const RESOURCE_DISABLED_TEXT = 'Resource Feature Not Enabled';

export const notFound = (): RestAnswer => failure(404, NOT_FOUND_TEXT);
export const badRequest = (why: string): RestAnswer => failure(400, `${BAD_REQUEST_TEXT}: ${why}`);
export const methodNotAllowed = (allow: string): RestAnswer =>
  failure(405, METHOD_NOT_ALLOWED_TEXT, { Allow: allow });

/** The HTTP status for a gRPC/ttrpc status code the peer answered. */
export function httpStatusForPeerCode(code: number): number {
  switch (code) {
    case 3: // INVALID_ARGUMENT
      return 400;
    case 5: // NOT_FOUND
      return 404;
    case 4: // DEADLINE_EXCEEDED
    case 8: // RESOURCE_EXHAUSTED
    case 14: // UNAVAILABLE
      return 503;
    default:
      return 500;
  }
}

/**
 * A failed call to `peer` ("CDH" or "AA") as an answer. A status the peer answered keeps the
 * peer's own message (the daemon's starts with its catalogued code, e.g. `RESOURCE_NOT_FOUND: …`);
 * a peer that cannot be reached, closes, or does not answer in time is 503.
 */
export function peerFailure(peer: string, error: unknown): RestAnswer {
  if (!(error instanceof TtrpcCallError)) {
    return failure(500, `${peer} answer could not be decoded`);
  }
  switch (error.kind) {
    case 'status':
      return failure(
        httpStatusForPeerCode(error.code),
        error.peerMessage === '' ? `${peer} answered status ${error.code}` : error.peerMessage,
      );
    case 'protocol':
      return failure(500, `${peer} sent an invalid answer: ${error.message}`);
    case 'unreachable':
    case 'closed':
    case 'deadline':
    case 'aborted':
      return failure(503, `${peer} unavailable: ${error.message}`);
  }
}

export function writeAnswer(res: http.ServerResponse, answer: RestAnswer, close: boolean): void {
  const body = typeof answer.body === 'string' ? Buffer.from(answer.body) : answer.body;
  const headers: Record<string, string | number> = {
    'Content-Type': answer.contentType,
    'Content-Length': body.length,
    ...answer.headers,
  };
  if (close) headers.Connection = 'close';
  res.writeHead(answer.status, headers);
  res.end(body);
}

/** An answer written straight to a socket (no request parsed), closing the connection. */
export function closingAnswer(answer: RestAnswer): Buffer {
  const body = typeof answer.body === 'string' ? Buffer.from(answer.body) : answer.body;
  const head =
    `HTTP/1.1 ${answer.status} ${http.STATUS_CODES[answer.status] ?? ''}\r\n` +
    `Content-Type: ${answer.contentType}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}
