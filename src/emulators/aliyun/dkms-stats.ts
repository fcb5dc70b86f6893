import type { ServerResponse } from 'node:http';
import { CONTENT_TYPE } from './dkms-request-checks';

export type DkmsFault =
  | {
      readonly kind: 'error';
      readonly status: number;
      readonly errorCode: string;
      readonly errorMessage: string;
    }
  /** Read the request, never answer (until the emulator closes). */
  | { readonly kind: 'hang' }
  /** Destroy the connection once the request has arrived. */
  | { readonly kind: 'reset' }
  /** Answer normally after a delay. */
  | { readonly kind: 'slow'; readonly delayMs: number }
  /** Send the status line, headers and half the body of a normal answer, then destroy the connection. */
  | { readonly kind: 'truncate' };

export interface DkmsEmulatorStats {
  /** TCP connections accepted. */
  tcpConnections: number;
  /** TLS handshakes completed. */
  tlsConnections: number;
  /** TLS handshakes that failed (client refused the certificate, …). */
  tlsFailures: number;
  /** Requests received, by x-kms-apiname (unknown names under their own value). */
  requests: Record<string, number>;
  /** Successful answers, by API name. */
  succeeded: Record<string, number>;
  /** Error answers, by ErrorCode. */
  errors: Record<string, number>;
  /** Requests whose client went away (connection closed, request aborted) before the answer was sent. */
  abandoned: number;
  /** Requests failed by `failRatio` (not counted in `errors`' injected entries twice). */
  ratioFailures: number;
}

export interface EmulatorAnswer {
  readonly apiName: string;
  readonly status: number;
  /** '' on success. */
  readonly errorCode: string;
  readonly requestId: string;
}

export function emptyStats(): DkmsEmulatorStats {
  return {
    tcpConnections: 0,
    tlsConnections: 0,
    tlsFailures: 0,
    requests: {},
    succeeded: {},
    errors: {},
    abandoned: 0,
    ratioFailures: 0,
  };
}

/** mulberry32: a small seeded PRNG, so fault patterns repeat from run to run. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A protobuf answer with the gateway's request id. */
export function sendProtobuf(res: ServerResponse, status: number, body: Buffer, requestId: string): void {
  if (res.destroyed) return;
  res.writeHead(status, {
    'Content-Type': CONTENT_TYPE,
    'Content-Length': String(body.length),
    'x-kms-requestid': requestId,
  });
  res.end(body);
}
