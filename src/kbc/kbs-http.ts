import type { IncomingHttpHeaders } from 'node:http';
import { rootCertificates } from 'node:tls';
import { parseHostPort } from '../config/load';
import { HttpClient } from '../net/http-client';

/**
 * The KBS over the project's one HTTP(S) client (net/http-client.ts). TLS trusts the system
 * roots plus `kbs_cert` and verifies the URL's host name. `connectTo` ("host:port") dials
 * another address while the Host header and the TLS server name stay the URL's host (tests,
 * split-horizon DNS). Failures are the client's HttpRequestError (kind, errno, TLS or not).
 * The KBS handshake's session cookie is the attestation agent's concern (it attests and hands
 * cc_kbc a token); resources are fetched with `Authorization: Bearer`, so no cookie is kept here.
 */
export interface KbsHttpOptions {
  /** PEM certificates trusted besides the system roots. */
  readonly extraCa?: string;
  readonly connectTo?: string;
  /** Largest answer body accepted. */
  readonly maxBodyBytes: number;
  /** One request's budget when the caller has no shorter deadline (default 30 s). */
  readonly timeoutMs?: number;
}

export interface HttpAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

export class KbsHttpClient {
  private readonly client: HttpClient;
  private readonly base: URL;

  constructor(
    baseUrl: string,
    private readonly options: KbsHttpOptions,
  ) {
    this.base = new URL(baseUrl);
    if (this.base.protocol !== 'http:' && this.base.protocol !== 'https:')
      throw new TypeError(`KBS url ${baseUrl} is not http:// or https://`);
    let dial: { host: string; port: number } | undefined;
    if (options.connectTo) {
      dial = parseHostPort(options.connectTo);
      if (dial === undefined)
        throw new TypeError(`KBS connect-to address ${options.connectTo} is not host:port`);
    }
    const secure = this.base.protocol === 'https:';
    const hostname = this.base.hostname.replace(/^\[|\]$/g, '');
    this.client = new HttpClient({
      protocol: this.base.protocol,
      host: dial ? dial.host.replace(/^\[|\]$/g, '') : hostname,
      port: dial?.port ?? (this.base.port === '' ? (secure ? 443 : 80) : Number(this.base.port)),
      purpose: 'KBS',
      maxResponseBytes: options.maxBodyBytes,
      ...(secure && options.extraCa ? { caPem: [...rootCertificates, options.extraCa].join('\n') } : {}),
      ...(secure ? { serverName: hostname } : {}),
    });
  }

  /** `path` is appended to the base URL's path (e.g. `/kbs/v0/resource/a/b/c?x=1`). */
  request(
    method: 'GET' | 'POST',
    path: string,
    headers: Record<string, string>,
    signal: AbortSignal,
    body?: Buffer,
  ): Promise<HttpAnswer> {
    const basePath = this.base.pathname.replace(/\/+$/, '');
    return this.client.request({
      method,
      path: `${basePath}${path}`,
      headers: {
        host: this.base.host,
        ...headers,
        ...(body === undefined ? {} : { 'content-length': String(body.length) }),
      },
      ...(body === undefined ? {} : { body }),
      signal,
      timeoutMs: this.options.timeoutMs ?? 30_000,
    });
  }

  close(): void {
    this.client.close();
  }
}
