import * as http from 'node:http';
import * as https from 'node:https';
import { checkServerIdentity, rootCertificates } from 'node:tls';
import { assertDialAllowed } from '../net-guard';
import { parseHostPort } from '../config/load';

/**
 * The one HTTP(S) client of the KBS (node:http/https; kept in this file so it can move to a
 * shared net/ helper). TLS trusts the system roots plus `kbs_cert` and verifies the host name
 * (Node's default checkServerIdentity). `connectTo` ("host:port") dials another address while
 * the Host header and the TLS server name stay the URL's host (tests, split-horizon DNS).
 */
export interface KbsHttpOptions {
  /** PEM certificates trusted besides the system roots. */
  readonly extraCa?: string;
  readonly connectTo?: string;
  /** Largest answer body accepted. */
  readonly maxBodyBytes: number;
}

export interface HttpAnswer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

/** Why a request got no answer: a network or TLS failure, a timeout, the body too large, aborted. */
export class HttpFailure extends Error {
  constructor(
    message: string,
    readonly kind: 'network' | 'tls' | 'too-large' | 'aborted',
  ) {
    super(message);
    this.name = 'HttpFailure';
  }
}

export class KbsHttpClient {
  private readonly agent: http.Agent | https.Agent;
  private readonly base: URL;
  private readonly dial: { host: string; port: number } | undefined;

  constructor(
    baseUrl: string,
    private readonly options: KbsHttpOptions,
  ) {
    this.base = new URL(baseUrl);
    if (this.base.protocol !== 'http:' && this.base.protocol !== 'https:')
      throw new TypeError(`KBS url ${baseUrl} is not http:// or https://`);
    const connectTo = options.connectTo ? parseHostPort(options.connectTo) : undefined;
    this.dial = connectTo ? { host: connectTo.host.replace(/^\[|\]$/g, ''), port: connectTo.port } : undefined;
    this.agent =
      this.base.protocol === 'https:'
        ? new https.Agent({
            keepAlive: true,
            ...(options.extraCa ? { ca: [...rootCertificates, options.extraCa] } : {}),
          })
        : new http.Agent({ keepAlive: true });
  }

  /** Host dialled (for messages and the loopback guard). */
  get dialHost(): string {
    return this.dial?.host ?? this.base.hostname;
  }

  /** `path` is appended to the base URL's path (e.g. `/kbs/v0/resource/a/b/c?x=1`). */
  request(
    method: 'GET' | 'POST',
    path: string,
    headers: Record<string, string>,
    signal: AbortSignal,
    body?: Buffer,
  ): Promise<HttpAnswer> {
    assertDialAllowed(this.dialHost, 'KBS');
    const basePath = this.base.pathname.replace(/\/+$/, '');
    const secure = this.base.protocol === 'https:';
    const port = this.base.port === '' ? (secure ? 443 : 80) : Number(this.base.port);
    const hostname = this.base.hostname.replace(/^\[|\]$/g, '');
    const requestOptions: https.RequestOptions = {
      method,
      host: this.dial?.host ?? hostname,
      port: this.dial?.port ?? port,
      path: `${basePath}${path}`,
      headers: {
        host: this.base.host,
        ...headers,
        ...(body === undefined ? {} : { 'content-length': String(body.length) }),
      },
      agent: this.agent,
      signal,
      ...(secure ? { servername: isIpLiteral(hostname) ? '' : hostname } : {}),
    };
    if (secure && this.dial !== undefined) {
      // Verify the certificate against the URL's host, not the dialled address.
      requestOptions.checkServerIdentity = (_host, cert) => checkServerIdentity(hostname, cert);
    }
    return new Promise<HttpAnswer>((resolve, reject) => {
      const request = (secure ? https : http).request(requestOptions, (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > this.options.maxBodyBytes) {
            for (const c of chunks) c.fill(0);
            chunks.length = 0;
            response.destroy();
            reject(new HttpFailure(`the answer is larger than ${this.options.maxBodyBytes} bytes`, 'too-large'));
            return;
          }
          chunks.push(chunk);
        });
        response.on('end', () => {
          const all = Buffer.concat(chunks);
          for (const c of chunks) c.fill(0);
          resolve({ status: response.statusCode ?? 0, headers: response.headers, body: all });
        });
        response.on('error', (error) => reject(classify(error, signal)));
      });
      request.on('error', (error) => reject(classify(error, signal)));
      request.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

function isIpLiteral(host: string): boolean {
  return /^[0-9.]+$/.test(host) || host.includes(':');
}

const TLS_CODES = new Set([
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'ERR_SSL_WRONG_VERSION_NUMBER',
]);

function classify(error: Error, signal: AbortSignal): HttpFailure {
  if (signal.aborted) return new HttpFailure('the request was aborted', 'aborted');
  const code = (error as NodeJS.ErrnoException).code ?? '';
  if (TLS_CODES.has(code) || code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL'))
    return new HttpFailure(`TLS handshake failed (${code})`, 'tls');
  return new HttpFailure(code ? `${code}` : error.message.split('\n')[0] ?? 'network error', 'network');
}
