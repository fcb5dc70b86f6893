import * as grpc from '@grpc/grpc-js';
import { constants as h2, type ServerHttp2Stream } from 'node:http2';
import { CdhError } from '../errors';
import { toCallFailure } from './status';

/**
 * A deadline for receiving a gRPC request: from its headers until the client has sent the
 * whole request (half-close). A stream whose headers arrived but whose message never
 * completes would otherwise hold its partly decoded message (up to max_message_bytes) and
 * a stream slot for as long as the connection lives, keepalive PINGs being answered all the
 * while. The same bound as for a ttrpc frame begun (`handshake_timeout_ms`).
 *
 * When it passes, the call is answered DEADLINE_EXCEEDED (trailers only) and the stream is
 * then reset with RST_STREAM NO_ERROR (RFC 9113 section 8.1: a response complete before the
 * request): ending our half alone would leave the stream, its slot and its buffered bytes
 * to the client. The handler never runs. Once the request is whole, the handler's own
 * deadline applies.
 */
export function receiveDeadlineInterceptor(timeoutMs: number): grpc.ServerInterceptor {
  return (method, call) => {
    let timer: NodeJS.Timeout | undefined;
    const stop = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
    };
    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveHalfClose((next) => {
        stop();
        next();
      })
      .withOnCancel(stop)
      .build();
    const responder = new grpc.ResponderBuilder()
      .withStart((next) => {
        timer = setTimeout(() => {
          timer = undefined;
          const failure = toCallFailure(
            new CdhError(
              'DEADLINE_EXCEEDED',
              `the request to ${method.path} was not received in full within handshake_timeout_ms ` +
                `(${timeoutMs} ms)`,
            ),
          );
          call.sendStatus({ code: failure.code, details: failure.message });
          const stream = http2StreamOf(call);
          if (stream !== undefined && !stream.closed) setImmediate(() => stream.close(h2.NGHTTP2_NO_ERROR));
        }, timeoutMs);
        timer.unref();
        next(listener);
      })
      .withSendStatus((status, next) => {
        stop();
        next(status);
      })
      .build();
    return new grpc.ServerInterceptingCall(call, responder);
  };
}

/**
 * The HTTP/2 stream under the call: grpc-js's base call (what the one interceptor in the
 * chain is handed) keeps it as `stream`, outside its typings. Checked by shape; the
 * receive-deadline test fails if an update moves it (the stream would stay open).
 */
function http2StreamOf(call: unknown): ServerHttp2Stream | undefined {
  const stream = (call as { stream?: Partial<ServerHttp2Stream> } | null)?.stream;
  return typeof stream?.close === 'function' && typeof stream.respond === 'function'
    ? (stream as ServerHttp2Stream)
    : undefined;
}
