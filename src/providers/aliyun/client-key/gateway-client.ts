import * as https from 'node:https';
import type { IncomingMessage } from 'node:http';
import * as tls from 'node:tls';
import type { Logger } from 'pino';
import { CdhError } from '../../../errors';
import { assertDialAllowed } from '../../../net-guard';
import type { CallContext } from '../../types';
import { packageUserAgent } from '../../../package-info';
import { decodeDkms, type ErrorMessage } from './dkms-messages';
import {
  classifyNetworkError,
  describeRefusal,
  describeTlsFailure,
  isRetryableStatus,
  refusalErrorCode,
  refusalFromErrorBody,
  type GatewayRefusal,
} from './gateway-errors';
import { signedDkmsHeaders, type DkmsApiName, type SigningIdentity } from './request-signing';

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  readonly maxAttempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { maxAttempts: 4, baseDelayMs: 100, maxDelayMs: 2000 };

export interface GatewayClientOptions {
  /** The gateway's host name: TLS server name, verified certificate name and Host header. */
  readonly hostName: string;
  /** PEM of the only CA(s) trusted for this gateway. */
  readonly caPem: string;
  /** The file caPem came from, for messages. */
  readonly caFile: string;
  /** "host:port" to dial instead of hostName:443 ('' = hostName:443). */
  readonly connectTo: string;
  /** Budget of one call, every attempt and back-off included. */
  readonly requestTimeoutMs: number;
  readonly identity: SigningIdentity;
  /** Prefix of every error message, naming provider, instance and client key. */
  readonly label: string;
  readonly logger: Logger;
  readonly retry?: RetryPolicy;
}

/** Answers larger than this are not the gateway's. */
const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;
const MAX_SOCKETS = 64;

interface GatewayAnswer {
  readonly status: number;
  readonly body: Buffer;
  readonly retryAfterMs?: number;
}

class AttemptTimedOut extends Error {}
class CallAborted extends Error {}
class ResponseTooLarge extends Error {}

type Failure =
  | { readonly kind: 'refusal'; readonly refusal: GatewayRefusal }
  | { readonly kind: 'network'; readonly error: NodeJS.ErrnoException };

/**
 * Client of one KMS instance's dedicated gateway (API dkms-gcs-0.2): signed protobuf POSTs
 * over one keep-alive HTTPS agent that trusts only the instance CA, with retries on
 * transient failures inside a per-call time budget, and the caller's AbortSignal honoured.
 */
export class DkmsGatewayClient {
  private readonly agent: https.Agent;
  private readonly dialHost: string;
  private readonly dialPort: number;
  private readonly userAgent = packageUserAgent();
  private readonly retry: RetryPolicy;
  private inFlight = 0;
  private retired = false;

  constructor(private readonly options: GatewayClientOptions) {
    const dial = parseConnectTo(options.connectTo, options.hostName);
    this.dialHost = dial.host;
    this.dialPort = dial.port;
    this.retry = options.retry ?? DEFAULT_RETRY_POLICY;
    const hostName = options.hostName;
    this.agent = new https.Agent({
      keepAlive: true,
      maxSockets: MAX_SOCKETS,
      ca: options.caPem,
      servername: hostName,
      rejectUnauthorized: true,
      // Whatever address is dialled, the certificate must be for the instance host name.
      checkServerIdentity: (_dialled, cert) => tls.checkServerIdentity(hostName, cert),
    });
  }

  /** Where requests go: `host:port`. */
  get dialAddress(): string {
    return `${this.dialHost.includes(':') ? `[${this.dialHost}]` : this.dialHost}:${this.dialPort}`;
  }

  /** Sends one API call; resolves with the 2xx body, or throws a catalogued error. */
  async call(apiName: DkmsApiName, body: Buffer, ctx: CallContext, subject: string): Promise<Buffer> {
    const context = `${this.options.label}: ${subject}`;
    assertDialAllowed(this.dialHost, context);
    if (ctx.signal.aborted) throw abortedError(ctx.signal, context);

    const deadline = Date.now() + this.options.requestTimeoutMs;
    let lastFailure: Failure | undefined;
    this.inFlight++;
    try {
      for (let attempt = 1; ; attempt++) {
        const remainingMs = deadline - Date.now();
        if (remainingMs <= 0) throw this.timeoutError(context, attempt - 1, lastFailure);

        let answer: GatewayAnswer;
        try {
          answer = await this.attempt(apiName, body, ctx.signal, remainingMs);
        } catch (error) {
          if (error instanceof CallAborted) throw abortedError(ctx.signal, context);
          if (error instanceof AttemptTimedOut) throw this.timeoutError(context, attempt, lastFailure);
          if (error instanceof ResponseTooLarge) {
            throw new CdhError(
              'KMS_FAILED',
              `${context}: the KMS answer is larger than ${MAX_RESPONSE_BYTES} bytes`,
            );
          }
          const networkError = error as NodeJS.ErrnoException;
          const kind = classifyNetworkError(networkError);
          if (kind === 'tls') {
            throw new CdhError(
              'KMS_TLS_FAILED',
              `${context}: TLS failure with KMS gateway ${this.options.hostName} (dialled ${this.dialAddress}): ` +
                describeTlsFailure(networkError, this.options.hostName, this.options.caFile),
              { cause: error },
            );
          }
          if (kind === 'other') {
            throw new CdhError(
              'KMS_UNAVAILABLE',
              `${context}: cannot talk to the KMS at ${this.dialAddress} (${networkError.code ?? networkError.message})`,
              { cause: error },
            );
          }
          lastFailure = { kind: 'network', error: networkError };
          answer = { status: 0, body: Buffer.alloc(0) };
        }

        if (answer.status >= 200 && answer.status <= 299) return answer.body;
        if (answer.status !== 0) {
          const refusal = refusalFromErrorBody(answer.status, decodeErrorBody(answer.body));
          if (!isRetryableStatus(answer.status)) {
            throw new CdhError(
              refusalErrorCode(refusal),
              `${context}: the KMS refused: ${describeRefusal(refusal)}`,
            );
          }
          lastFailure = { kind: 'refusal', refusal };
        }

        const delayMs = this.backoffMs(attempt, answer.retryAfterMs);
        if (attempt >= this.retry.maxAttempts || Date.now() + delayMs >= deadline) {
          throw this.exhaustedError(context, attempt, lastFailure);
        }
        this.options.logger.debug(
          { api: apiName, attempt, delayMs, failure: describeFailure(lastFailure) },
          'aliyun client_key: retrying the KMS call',
        );
        await sleep(delayMs, ctx.signal).catch(() => {
          throw abortedError(ctx.signal, context);
        });
      }
    } finally {
      this.inFlight--;
      if (this.retired && this.inFlight === 0) this.agent.destroy();
    }
  }

  /** Closes the agent once the calls in flight are done (credentials replaced). */
  retire(): void {
    this.retired = true;
    if (this.inFlight === 0) this.agent.destroy();
  }

  /** Closes every connection now. */
  close(): void {
    this.retired = true;
    this.agent.destroy();
  }

  private attempt(
    apiName: DkmsApiName,
    body: Buffer,
    signal: AbortSignal,
    timeoutMs: number,
  ): Promise<GatewayAnswer> {
    // Signed per attempt: the date header must be fresh.
    const headers = signedDkmsHeaders(apiName, body, this.options.identity, {
      host: this.options.hostName,
      userAgent: this.userAgent,
    });
    return new Promise<GatewayAnswer>((resolve, reject) => {
      let settled = false;
      const request = https.request({
        host: this.dialHost,
        port: this.dialPort,
        method: 'POST',
        path: '/',
        headers,
        agent: this.agent,
      });
      const settle = (outcome: () => void): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        outcome();
      };
      const onAbort = (): void => {
        settle(() => reject(new CallAborted()));
        request.destroy();
      };
      const timer = setTimeout(() => {
        settle(() => reject(new AttemptTimedOut()));
        request.destroy();
      }, timeoutMs);
      signal.addEventListener('abort', onAbort, { once: true });

      request.on('error', (error) => settle(() => reject(error)));
      request.on('response', (response: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_RESPONSE_BYTES) {
            settle(() => reject(new ResponseTooLarge()));
            request.destroy();
            return;
          }
          chunks.push(chunk);
        });
        response.on('end', () => {
          const retryAfterMs = parseRetryAfter(response.headers['retry-after']);
          const status = response.statusCode ?? 0;
          const answerBody = Buffer.concat(chunks);
          // The chunks may hold a data key: keep one copy only, the one handed back.
          for (const chunk of chunks) chunk.fill(0);
          settle(() =>
            resolve(
              retryAfterMs === undefined
                ? { status, body: answerBody }
                : { status, body: answerBody, retryAfterMs },
            ),
          );
        });
        response.on('error', (error) => settle(() => reject(error)));
        response.on('close', () => {
          if (!response.complete) {
            const reset: NodeJS.ErrnoException = new Error(
              'connection closed before the answer was complete',
            );
            reset.code = 'ECONNRESET';
            settle(() => reject(reset));
          }
        });
      });
      request.end(body);
    });
  }

  /** Exponential back-off with jitter (half fixed, half random), at least what Retry-After asks. */
  private backoffMs(attempt: number, retryAfterMs: number | undefined): number {
    const ceiling = Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * 2 ** (attempt - 1));
    const jittered = ceiling / 2 + Math.random() * (ceiling / 2);
    return Math.max(jittered, retryAfterMs ?? 0);
  }

  private timeoutError(context: string, attempts: number, lastFailure: Failure | undefined): CdhError {
    const earlier = lastFailure ? `; earlier attempt: ${describeFailure(lastFailure)}` : '';
    return new CdhError(
      'KMS_UNAVAILABLE',
      `${context}: no answer from the KMS at ${this.dialAddress} within ${this.options.requestTimeoutMs} ms ` +
        `(request_timeout_ms, ${attempts} attempt${attempts === 1 ? '' : 's'})${earlier}`,
    );
  }

  private exhaustedError(context: string, attempts: number, lastFailure: Failure | undefined): CdhError {
    const failure = lastFailure ?? { kind: 'refusal', refusal: refusalFromErrorBody(0, undefined) };
    const what =
      failure.kind === 'refusal'
        ? `the KMS answered ${describeRefusal(failure.refusal)}`
        : `cannot reach the KMS at ${this.dialAddress} (${describeFailure(failure)})`;
    return new CdhError('KMS_UNAVAILABLE', `${context}: ${what}; gave up after ${attempts} attempts`);
  }
}

function describeFailure(failure: Failure | undefined): string {
  if (failure === undefined) return 'none';
  if (failure.kind === 'refusal') return describeRefusal(failure.refusal);
  return failure.error.code ?? failure.error.message;
}

function decodeErrorBody(body: Buffer): ErrorMessage | undefined {
  if (body.length === 0) return undefined;
  try {
    return decodeDkms('Error', body);
  } catch {
    return undefined;
  }
}

function parseRetryAfter(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d{1,4}$/.test(value.trim())) return undefined;
  return Number(value.trim()) * 1000;
}

/** Parses "host:port" / "[v6]:port"; '' means the production address. */
export function parseConnectTo(connectTo: string, hostName: string): { host: string; port: number } {
  if (connectTo === '') return { host: hostName, port: 443 };
  const match = /^\[([^\]]+)\]:(\d{1,5})$/.exec(connectTo) ?? /^([^:[\]\s]+):(\d{1,5})$/.exec(connectTo);
  const port = match ? Number(match[2]) : 0;
  if (!match || port < 1 || port > 65535) {
    throw new CdhError(
      'PROVIDER_NOT_CONFIGURED',
      `aliyun.dkms_connect_to ${JSON.stringify(connectTo)} is not "host:port"`,
    );
  }
  return { host: match[1] as string, port };
}

function abortedError(signal: AbortSignal, context: string): CdhError {
  const reason: unknown = signal.reason;
  if (reason instanceof CdhError) return reason;
  if (reason instanceof Error && reason.name === 'TimeoutError') {
    return new CdhError(
      'DEADLINE_EXCEEDED',
      `${context}: the caller's deadline passed while waiting for the KMS`,
    );
  }
  return new CdhError('CANCELLED', `${context}: the caller cancelled while waiting for the KMS`);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(new CallAborted());
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new CallAborted());
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
