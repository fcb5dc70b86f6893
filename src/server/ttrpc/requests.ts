import type { Logger } from 'pino';
import { CdhError } from '../../errors';
import type { ApiDispatcher } from '../api';
import { toCallFailure } from '../status';
import { MAX_FRAME_DATA_BYTES, MessageType, type Frame } from './frame';
import { decodeRequestEnvelope, type ApiRoute, type TtrpcResponse } from './messages';
import { MAX_TIMER_MS } from '../../lib/abort';

/**
 * What a ttrpc request frame asks for, decided before any work is done: a protocol error
 * (the connection closes), a refusal answered at once (too large, unknown method,
 * undecodable), or a call for the dispatcher; and running such a call.
 */

export const EMPTY = Buffer.alloc(0);

export type RequestDecision =
  | { readonly kind: 'protocol-error'; readonly reason: string; readonly where: Record<string, number> }
  | { readonly kind: 'refuse'; readonly name: string; readonly error: CdhError }
  | {
      readonly kind: 'call';
      readonly route: ApiRoute;
      readonly request: Record<string, unknown>;
      readonly timeoutNano: number;
    };

/** Checks a request frame from the client; `inUse`: its stream id has a call in flight. */
export function decideRequest(
  frame: Frame,
  inUse: boolean,
  routes: ReadonlyMap<string, ApiRoute>,
  maxMessageBytes: number,
): RequestDecision {
  const where = { streamId: frame.streamId, type: frame.type, length: frame.length };
  const protocolError = (reason: string): RequestDecision => ({ kind: 'protocol-error', reason, where });
  if (frame.streamId % 2 !== 1) return protocolError('stream id must be odd');
  switch (frame.type) {
    case MessageType.Request:
      break;
    case MessageType.Data:
      return protocolError('data frame on a unary stream');
    case MessageType.Response:
      return protocolError('response frame from the client');
    default:
      return protocolError('unknown message type');
  }
  if (inUse) return protocolError('stream id already in use');
  let envelope;
  try {
    envelope = decodeRequestEnvelope(frame.data);
  } catch {
    return protocolError('request frame is not a ttrpc Request message');
  }
  const name = `${envelope.service}/${envelope.method}`;
  const refuse = (code: 'REQUEST_TOO_LARGE' | 'NOT_IMPLEMENTED' | 'REQUEST_MALFORMED', message: string) =>
    ({ kind: 'refuse', name, error: new CdhError(code, message) }) as const;
  if (envelope.payload.length > maxMessageBytes) {
    return refuse(
      'REQUEST_TOO_LARGE',
      `request of ${envelope.payload.length} bytes is larger than ${maxMessageBytes} bytes (max_message_bytes)`,
    );
  }
  const route = routes.get(name);
  if (!route) return refuse('NOT_IMPLEMENTED', `unknown service or method "${printable(name)}"`);
  try {
    const request = route.request.decode(envelope.payload);
    return { kind: 'call', route, request, timeoutNano: envelope.timeoutNano };
  } catch {
    return refuse('REQUEST_MALFORMED', `the payload is not a valid ${route.request.typeName}`);
  }
}

/** Runs one call through the dispatcher; never rejects. */
export async function runCall(
  dispatcher: ApiDispatcher,
  call: { readonly route: ApiRoute; readonly request: Record<string, unknown>; readonly timeoutNano: number },
  signal: AbortSignal,
  logger: Logger,
): Promise<TtrpcResponse> {
  const { route } = call;
  try {
    const result = await dispatcher.invoke(route.method, call.request, {
      transport: 'ttrpc',
      deadline: deadlineFrom(call.timeoutNano),
      signal,
    });
    if (!result.ok) return { status: { code: result.code, message: result.message }, payload: EMPTY };
    return {
      status: { code: 0, message: '' },
      payload: route.response.encode(result.response),
    };
  } catch (error) {
    logger.error({ method: route.method, err: describeError(error) }, 'ttrpc call failed unexpectedly');
    return { status: failureStatus(new CdhError('INTERNAL', 'internal error')), payload: EMPTY };
  }
}

/** Room for the Request envelope (service and method names, metadata) around the payload. */
const ENVELOPE_ALLOWANCE_BYTES = 64 * 1024;

/**
 * The largest request frame read: ttrpc's usual 4 MiB, or more when max_message_bytes is
 * larger, so the configured limit holds on both transports.
 */
export function frameDataLimit(maxMessageBytes: number): number {
  return Math.max(MAX_FRAME_DATA_BYTES, maxMessageBytes + ENVELOPE_ALLOWANCE_BYTES);
}

function deadlineFrom(timeoutNano: number): number | undefined {
  if (!(timeoutNano > 0)) return undefined;
  const ms = timeoutNano / 1e6;
  // Beyond what a timer can wait (weeks), a timeout is no limit in practice.
  if (ms > MAX_TIMER_MS) return undefined;
  return Date.now() + ms;
}

export function failureStatus(error: CdhError): { code: number; message: string } {
  const failure = toCallFailure(error);
  return { code: failure.code, message: failure.message };
}

/** Client-chosen names go into messages and logs shortened and without control characters. */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\u0000-\u001f\u007f]/g, '?');
  return clean.length > 200 ? `${clean.slice(0, 200)}…` : clean;
}

export function describeError(error: unknown): unknown {
  return error instanceof Error ? { type: error.name, stack: error.stack } : String(error);
}
