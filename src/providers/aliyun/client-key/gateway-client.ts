import type { Logger } from 'pino';
import { CdhError } from '../../../errors';
import { abortError, throwIfAborted } from '../../../lib/abort';
import { DEFAULT_RETRY_POLICY, withRetry, type AttemptOutcome, type RetryPolicy } from '../../../lib/retry';
import { describeTlsFailure, isRetryableStatus } from '../../../net/errors';
import { HttpClient, HttpRequestError, retryAfterMs } from '../../../net/http-client';
import type { CallContext } from '../../types';
import { packageUserAgent } from '../../../package-info';
import { decodeDkms, type ErrorMessage } from './dkms-messages';
import {
  describeRefusal,
  refusalErrorCode,
  refusalFromErrorBody,
  type GatewayRefusal,
} from './gateway-errors';
import { signedDkmsHeaders, type DkmsApiName, type SigningIdentity } from './request-signing';
import { errnoCode } from '../../../lib/errno';

export { DEFAULT_RETRY_POLICY, type RetryPolicy };

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

type Failure =
  | { readonly kind: 'refusal'; readonly refusal: GatewayRefusal }
  | { readonly kind: 'network'; readonly error: NodeJS.ErrnoException };

/**
 * Client of one KMS instance's dedicated gateway (API dkms-gcs-0.2): signed protobuf POSTs
 * over one keep-alive HTTPS client that trusts only the instance CA, with retries on
 * transient failures inside a per-call time budget, and the caller's AbortSignal honoured.
 */
export class DkmsGatewayClient {
  private readonly http: HttpClient;
  private readonly userAgent = packageUserAgent();
  private readonly retry: RetryPolicy;
  private inFlight = 0;
  private retired = false;

  constructor(private readonly options: GatewayClientOptions) {
    const dial = parseConnectTo(options.connectTo, options.hostName);
    this.retry = options.retry ?? DEFAULT_RETRY_POLICY;
    this.http = new HttpClient({
      protocol: 'https:',
      host: dial.host,
      port: dial.port,
      purpose: options.label,
      caPem: options.caPem,
      // Whatever address is dialled, the certificate must be for the instance host name.
      serverName: options.hostName,
      maxResponseBytes: MAX_RESPONSE_BYTES,
    });
  }

  /** Where requests go: `host:port`. */
  get dialAddress(): string {
    return this.http.dialAddress;
  }

  /** Sends one API call; resolves with the 2xx body, or throws a catalogued error. */
  async call(apiName: DkmsApiName, body: Buffer, ctx: CallContext, subject: string): Promise<Buffer> {
    const context = `${this.options.label}: ${subject}`;
    throwIfAborted(ctx.signal, context);
    let lastFailure: Failure | undefined;
    this.inFlight++;
    try {
      return await withRetry<Buffer, Failure>({
        policy: this.retry,
        signal: ctx.signal,
        context,
        deadline: Date.now() + this.options.requestTimeoutMs,
        attempt: (attempt, remainingMs) =>
          this.attempt(apiName, body, ctx.signal, remainingMs, context, () =>
            this.timeoutError(context, attempt, lastFailure),
          ),
        giveUp: (failure, attempts, retryable) =>
          retryable
            ? this.exhaustedError(context, attempts, failure)
            : new CdhError(
                refusalErrorCode((failure as Extract<Failure, { kind: 'refusal' }>).refusal),
                `${context}: the KMS refused: ${describeFailure(failure)}`,
              ),
        expired: (attempts, lastFailure) => this.timeoutError(context, attempts, lastFailure),
        onRetry: (failure, attempt, delayMs) => {
          lastFailure = failure;
          this.options.logger.debug(
            { api: apiName, attempt, delayMs, failure: describeFailure(failure) },
            'aliyun client_key: retrying the KMS call',
          );
        },
      });
    } finally {
      this.inFlight--;
      if (this.retired && this.inFlight === 0) this.http.close();
    }
  }

  /** Closes the connections once the calls in flight are done (credentials replaced). */
  retire(): void {
    this.retired = true;
    if (this.inFlight === 0) this.http.close();
  }

  /** Closes every connection now. */
  close(): void {
    this.retired = true;
    this.http.close();
  }

  private async attempt(
    apiName: DkmsApiName,
    body: Buffer,
    signal: AbortSignal,
    timeoutMs: number,
    context: string,
    timedOut: () => CdhError,
  ): Promise<AttemptOutcome<Buffer, Failure>> {
    // Signed per attempt: the date header must be fresh.
    const headers = signedDkmsHeaders(apiName, body, this.options.identity, {
      host: this.options.hostName,
      userAgent: this.userAgent,
    });
    let answer;
    try {
      answer = await this.http.request({ method: 'POST', path: '/', headers, body, signal, timeoutMs });
    } catch (error) {
      if (!(error instanceof HttpRequestError)) throw error;
      return { ok: false, failure: this.transportFailure(error, signal, context, timedOut), retryable: true };
    }
    if (answer.status >= 200 && answer.status <= 299) return { ok: true, value: answer.body };
    const refusal = refusalFromErrorBody(answer.status, decodeErrorBody(answer.body));
    const delay = retryAfterMs(answer.headers['retry-after']);
    return {
      ok: false,
      failure: { kind: 'refusal', refusal },
      retryable: isRetryableStatus(answer.status),
      ...(delay === undefined ? {} : { retryAfterMs: delay }),
    };
  }

  /** A retryable network failure, or throws the final error (abort, timeout, TLS, too large, other). */
  private transportFailure(
    error: HttpRequestError,
    signal: AbortSignal,
    context: string,
    timedOut: () => CdhError,
  ): Failure {
    if (error.kind === 'aborted') throw abortError(signal, context);
    if (error.kind === 'timeout') throw timedOut();
    if (error.kind === 'too-large')
      throw new CdhError(
        'KMS_FAILED',
        `${context}: the KMS answer is larger than ${MAX_RESPONSE_BYTES} bytes`,
      );
    const networkError = error.networkError as NodeJS.ErrnoException;
    if (error.networkKind === 'tls') {
      throw new CdhError(
        'KMS_TLS_FAILED',
        `${context}: TLS failure with KMS gateway ${this.options.hostName} (dialled ${this.dialAddress}): ` +
          describeTlsFailure(networkError, this.options.hostName, this.options.caFile),
        { cause: networkError },
      );
    }
    if (error.networkKind === 'other') {
      throw new CdhError(
        'KMS_UNAVAILABLE',
        `${context}: cannot talk to the KMS at ${this.dialAddress} (${errnoCode(networkError, networkError.message)})`,
        { cause: networkError },
      );
    }
    return { kind: 'network', error: networkError };
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
  return errnoCode(failure.error, failure.error.message);
}

function decodeErrorBody(body: Buffer): ErrorMessage | undefined {
  if (body.length === 0) return undefined;
  try {
    return decodeDkms('Error', body);
  } catch {
    return undefined;
  }
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
