import * as http from 'node:http';
import * as https from 'node:https';
import * as tls from 'node:tls';
import { assertDialAllowed } from '../net-guard';
import { classifyNetworkError, type NetworkFailureKind } from './errors';

export interface HttpClientOptions {
  readonly protocol: 'http:' | 'https:';
  /** The address dialled (may differ from serverName: an emulator, a proxy). */
  readonly host: string;
  readonly port: number;
  /** Names the remote in the loopback guard's message. */
  readonly purpose: string;
  /** HTTPS: the only CA(s) trusted (default: Node's bundled roots; add them with tls.rootCertificates). */
  readonly caPem?: string | readonly string[];
  /** HTTPS: the name sent as SNI and required in the certificate, whatever address is dialled. */
  readonly serverName?: string;
  /** Keep connections open between requests (default true; false: one connection per request). */
  readonly keepAlive?: boolean;
  readonly maxSockets?: number;
  /** Answers larger than this fail with kind `too-large`. */
  readonly maxResponseBytes: number;
}

export interface HttpRequest {
  readonly method: string;
  readonly path: string;
  readonly headers?: http.OutgoingHttpHeaders;
  readonly body?: Buffer;
  readonly signal: AbortSignal;
  /** This request's budget: connect, send and the whole answer. */
  readonly timeoutMs: number;
}

export interface HttpResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

export type HttpFailureKind = 'aborted' | 'timeout' | 'too-large' | 'network';

/** A request that got no complete answer; `network` ones carry the errno and its classification. */
export class HttpRequestError extends Error {
  constructor(
    readonly kind: HttpFailureKind,
    message: string,
    readonly networkError?: NodeJS.ErrnoException,
  ) {
    super(message, networkError === undefined ? undefined : { cause: networkError });
    this.name = 'HttpRequestError';
  }

  /** For `network` failures: TLS, retryable or other. */
  get networkKind(): NetworkFailureKind | undefined {
    return this.networkError === undefined ? undefined : classifyNetworkError(this.networkError);
  }

  /** The errno code (or error name) of a network failure. */
  get code(): string | undefined {
    return this.networkError?.code ?? this.networkError?.name;
  }
}

/**
 * The one HTTP(S) client of every remote: a pinned CA and server name, keep-alive, the
 * caller's AbortSignal, a per-request timeout, a response size limit, the loopback guard and
 * one classification of network errors. The answer's chunks are wiped once joined: only the
 * body handed back holds it (it may carry a data key).
 */
export class HttpClient {
  private readonly agent: http.Agent | undefined;
  private readonly send: typeof http.request;

  constructor(private readonly options: HttpClientOptions) {
    const keepAlive = options.keepAlive ?? true;
    if (options.protocol === 'https:') {
      const serverName = options.serverName;
      this.send = https.request;
      this.agent = new https.Agent({
        keepAlive,
        maxSockets: options.maxSockets ?? 64,
        rejectUnauthorized: true,
        ...(options.caPem === undefined
          ? {}
          : { ca: typeof options.caPem === 'string' ? options.caPem : [...options.caPem] }),
        ...(serverName === undefined
          ? {}
          : {
              servername: serverName,
              checkServerIdentity: (_dialled: string, cert: tls.PeerCertificate) =>
                tls.checkServerIdentity(serverName, cert),
            }),
      });
    } else {
      this.send = http.request;
      this.agent = keepAlive
        ? new http.Agent({ keepAlive, maxSockets: options.maxSockets ?? 64 })
        : undefined;
    }
  }

  /** `host:port` dialled. */
  get dialAddress(): string {
    const { host, port } = this.options;
    return `${host.includes(':') ? `[${host}]` : host}:${port}`;
  }

  request(request: HttpRequest): Promise<HttpResponse> {
    assertDialAllowed(this.options.host, this.options.purpose);
    if (request.signal.aborted)
      return Promise.reject(new HttpRequestError('aborted', 'aborted before sending'));
    return new Promise<HttpResponse>((resolve, reject) => this.exchange(request, resolve, reject));
  }

  /** Closes every connection (calls in flight fail). */
  close(): void {
    this.agent?.destroy();
  }

  private exchange(
    request: HttpRequest,
    resolve: (response: HttpResponse) => void,
    reject: (error: HttpRequestError) => void,
  ): void {
    const { signal, timeoutMs } = request;
    const outgoing = this.send({
      host: this.options.host,
      port: this.options.port,
      method: request.method,
      path: request.path,
      ...(request.headers === undefined ? {} : { headers: request.headers }),
      agent: this.agent ?? false,
    });
    let settled = false;
    const settle = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      outcome();
    };
    const fail = (kind: HttpFailureKind, message: string, error?: NodeJS.ErrnoException): void => {
      settle(() => reject(new HttpRequestError(kind, message, error)));
      outgoing.destroy();
    };
    const onAbort = (): void => fail('aborted', 'the caller gave up');
    const timer = setTimeout(() => fail('timeout', `no answer within ${timeoutMs} ms`), timeoutMs);
    signal.addEventListener('abort', onAbort, { once: true });
    outgoing.on('error', (error: NodeJS.ErrnoException) =>
      fail('network', error.code ?? error.message, error),
    );
    outgoing.on('response', (response: http.IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > this.options.maxResponseBytes)
          fail('too-large', `the answer is larger than ${this.options.maxResponseBytes} bytes`);
        else chunks.push(chunk);
      });
      response.on('end', () => {
        const body = Buffer.concat(chunks);
        for (const chunk of chunks) chunk.fill(0);
        settle(() => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
      });
      response.on('error', (error: NodeJS.ErrnoException) =>
        fail('network', error.code ?? error.message, error),
      );
      response.on('close', () => {
        if (response.complete) return;
        const reset: NodeJS.ErrnoException = new Error('connection closed before the answer was complete');
        reset.code = 'ECONNRESET';
        fail('network', reset.message, reset);
      });
    });
    outgoing.end(request.body);
  }
}

/** Seconds of a Retry-After header as ms (the HTTP-date form is ignored). */
export function retryAfterMs(value: string | string[] | undefined): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined || !/^\d{1,4}$/.test(text.trim())) return undefined;
  return Number(text.trim()) * 1000;
}
