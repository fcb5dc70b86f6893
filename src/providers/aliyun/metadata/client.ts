import type { OutgoingHttpHeaders } from 'node:http';
import { CdhError } from '../../../errors';
import { abortError, throwIfAborted } from '../../../lib/abort';
import { SingleFlight } from '../../../lib/single-flight';
import { assertDialAllowed } from '../../../net-guard';
import { HttpClient, HttpRequestError } from '../../../net/http-client';
import type { StsCredentials } from '../openapi/credential-files';
import { quoteUntrusted } from '../../../lib/untrusted';

export const DEFAULT_METADATA_ENDPOINT = 'http://100.100.100.200';
export const TOKEN_PATH = '/latest/api/token';
export const CREDENTIALS_PATH = '/latest/meta-data/ram/security-credentials/';
export const TOKEN_TTL_HEADER = 'X-aliyun-ecs-metadata-token-ttl-seconds';
export const TOKEN_HEADER = 'X-aliyun-ecs-metadata-token';

/** Role credentials and when they stop working (ms since epoch). */
export interface RoleCredentials extends StsCredentials {
  readonly expiresAt: number;
}

export interface EcsMetadataClientOptions {
  /** `http://host[:port]` of the instance metadata service (https is accepted for proxies). */
  readonly endpoint: string;
  readonly roleName: string;
  /** Per metadata request. */
  readonly timeoutMs: number;
  /** Credentials are refreshed this long before their Expiration (default 5 minutes). */
  readonly refreshMarginMs?: number;
  /** Lifetime asked for the hardened-mode token (default 6 hours, the service's maximum). */
  readonly tokenTtlSeconds?: number;
  readonly now?: () => number;
}

const MAX_BODY_BYTES = 64 * 1024;

interface MetadataAnswer {
  readonly status: number;
  readonly body: string;
}

/**
 * Fetches the STS credentials of the instance's RAM role from the ECS metadata service.
 * Hardened mode first (a session token from PUT /latest/api/token sent on the GET); the plain
 * GET only when the token endpoint does not exist (404/405). Credentials are reused until
 * `refreshMarginMs` before their Expiration, and concurrent callers share one refresh.
 */
export class EcsMetadataClient {
  readonly endpoint: URL;
  private readonly refreshMarginMs: number;
  private readonly tokenTtlSeconds: number;
  private readonly now: () => number;
  private cached?: RoleCredentials;
  private readonly refreshing = new SingleFlight<RoleCredentials>();
  private sessionToken?: { readonly value: string; readonly expiresAt: number };
  private readonly http: HttpClient;

  constructor(private readonly options: EcsMetadataClientOptions) {
    this.endpoint = parseMetadataEndpoint(options.endpoint);
    const purpose = 'aliyun ecs_ram_role ECS metadata service';
    assertDialAllowed(this.endpoint.hostname, purpose);
    const https = this.endpoint.protocol === 'https:';
    this.http = new HttpClient({
      protocol: https ? 'https:' : 'http:',
      host: this.endpoint.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: Number(this.endpoint.port || (https ? 443 : 80)),
      purpose,
      keepAlive: false,
      maxResponseBytes: MAX_BODY_BYTES,
    });
    this.refreshMarginMs = options.refreshMarginMs ?? 5 * 60 * 1000;
    this.tokenTtlSeconds = options.tokenTtlSeconds ?? 21600;
    this.now = options.now ?? Date.now;
  }

  /**
   * Valid credentials: cached ones, or fresh ones from one refresh shared by all callers. A
   * caller whose signal fires stops waiting at once; when the last one has gone, the metadata
   * request itself is aborted (a hung service must not hold a socket, nor make the next caller
   * wait for a request nobody wants).
   */
  credentials(signal?: AbortSignal): Promise<RoleCredentials> {
    const cached = this.cached;
    if (cached !== undefined && this.now() < cached.expiresAt - this.refreshMarginMs) {
      return Promise.resolve(cached);
    }
    return this.refreshing.run('refresh', signal, (refreshSignal) => this.refresh(refreshSignal));
  }

  /** Forgets `stale` (the KMS refused it), so the next call fetches new credentials. */
  invalidate(stale: StsCredentials): void {
    if (this.cached === stale) this.cached = undefined;
  }

  private async refresh(signal: AbortSignal): Promise<RoleCredentials> {
    const path = CREDENTIALS_PATH + encodeURIComponent(this.options.roleName);
    let token = await this.hardenedModeToken(signal);
    let answer = await this.send('GET', path, token === undefined ? {} : { [TOKEN_HEADER]: token }, signal);
    if (token !== undefined && (answer.status === 401 || answer.status === 403)) {
      // The session token may have been revoked early: get a new one, once.
      this.sessionToken = undefined;
      token = await this.hardenedModeToken(signal);
      answer = await this.send('GET', path, token === undefined ? {} : { [TOKEN_HEADER]: token }, signal);
    }
    const credentials = this.parseCredentials(answer);
    this.cached = credentials;
    return credentials;
  }

  /** The hardened-mode session token, or undefined when the service has no token endpoint. */
  private async hardenedModeToken(signal: AbortSignal): Promise<string | undefined> {
    const current = this.sessionToken;
    if (current !== undefined && this.now() < current.expiresAt - 60_000) return current.value;
    const requestedAt = this.now();
    const answer = await this.send(
      'PUT',
      TOKEN_PATH,
      { [TOKEN_TTL_HEADER]: String(this.tokenTtlSeconds) },
      signal,
    );
    if (answer.status === 404 || answer.status === 405) return undefined;
    if (answer.status !== 200) {
      throw this.answerError('PUT', TOKEN_PATH, answer.status, 'refused to issue a session token');
    }
    const value = answer.body.trim();
    if (value === '' || /[\r\n]/.test(value)) {
      throw new CdhError(
        'KMS_UNAVAILABLE',
        `aliyun ecs_ram_role: the ECS metadata service at ${this.endpoint.origin} answered an empty or ` +
          `malformed session token (PUT ${TOKEN_PATH})`,
      );
    }
    this.sessionToken = { value, expiresAt: requestedAt + this.tokenTtlSeconds * 1000 };
    return value;
  }

  private parseCredentials(answer: MetadataAnswer): RoleCredentials {
    const role = this.options.roleName;
    const where = `the ECS metadata service at ${this.endpoint.origin}`;
    if (answer.status === 404) {
      throw new CdhError(
        'KMS_ACCESS_DENIED',
        `aliyun ecs_ram_role: ${where} knows no RAM role "${role}" (HTTP 404): is the role attached to this instance?`,
      );
    }
    if (answer.status !== 200) {
      throw this.answerError('GET', CREDENTIALS_PATH + role, answer.status, 'refused the role credentials');
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(answer.body);
    } catch {
      throw new CdhError(
        'KMS_UNAVAILABLE',
        `aliyun ecs_ram_role: ${where} answered non-JSON role credentials`,
      );
    }
    const fields = (parsed !== null && typeof parsed === 'object' ? parsed : {}) as Record<string, unknown>;
    if (fields['Code'] !== 'Success') {
      const code = typeof fields['Code'] === 'string' ? quoteUntrusted(fields['Code']) : 'missing';
      throw new CdhError(
        'KMS_ACCESS_DENIED',
        `aliyun ecs_ram_role: ${where} did not issue credentials for RAM role "${role}" (Code ${code})`,
      );
    }
    const { AccessKeyId, AccessKeySecret, SecurityToken, Expiration } = fields;
    if (
      typeof AccessKeyId !== 'string' ||
      AccessKeyId === '' ||
      typeof AccessKeySecret !== 'string' ||
      AccessKeySecret === '' ||
      typeof SecurityToken !== 'string' ||
      SecurityToken === ''
    ) {
      throw new CdhError(
        'KMS_UNAVAILABLE',
        `aliyun ecs_ram_role: ${where} answered incomplete credentials for RAM role "${role}"`,
      );
    }
    const expiration = typeof Expiration === 'string' ? Date.parse(Expiration) : Number.NaN;
    return {
      accessKeyId: AccessKeyId,
      accessKeySecret: AccessKeySecret,
      securityToken: SecurityToken,
      // Unknown expiry: use them for this call only.
      expiresAt: Number.isFinite(expiration) ? expiration : this.now(),
    };
  }

  private answerError(method: string, path: string, status: number, what: string): CdhError {
    const code = status >= 500 || status === 429 ? 'KMS_UNAVAILABLE' : 'KMS_ACCESS_DENIED';
    return new CdhError(
      code,
      `aliyun ecs_ram_role: the ECS metadata service at ${this.endpoint.origin} ${what} ` +
        `(${method} ${path}: HTTP ${status})`,
    );
  }

  private async send(
    method: 'GET' | 'PUT',
    path: string,
    headers: OutgoingHttpHeaders,
    signal: AbortSignal,
  ): Promise<MetadataAnswer> {
    throwIfAborted(signal);
    try {
      const answer = await this.http.request({
        method,
        path,
        headers,
        signal,
        timeoutMs: this.options.timeoutMs,
      });
      return { status: answer.status, body: answer.body.toString('utf8') };
    } catch (error) {
      if (!(error instanceof HttpRequestError)) throw error;
      if (error.kind === 'aborted') throw abortError(signal);
      const reason =
        error.kind === 'too-large'
          ? 'answer too large'
          : error.kind === 'network'
            ? error.code
            : error.message;
      throw new CdhError(
        'KMS_UNAVAILABLE',
        `aliyun ecs_ram_role: the ECS metadata service at ${this.endpoint.origin} is unreachable ` +
          `(${method} ${path}: ${reason})`,
      );
    }
  }
}

/** `http://host[:port]` or `https://host[:port]` (a bare `host[:port]` means http). */
export function parseMetadataEndpoint(endpoint: string): URL {
  const text = endpoint.trim();
  let url: URL;
  try {
    url = new URL(text.includes('://') ? text : `http://${text}`);
  } catch {
    throw new CdhError(
      'PROVIDER_NOT_CONFIGURED',
      `aliyun metadata_endpoint must be an http://host[:port] URL (got ${quoteUntrusted(text)})`,
    );
  }
  const web = url.protocol === 'http:' || url.protocol === 'https:';
  if (!web || url.hostname === '' || (url.pathname !== '/' && url.pathname !== '')) {
    throw new CdhError(
      'PROVIDER_NOT_CONFIGURED',
      `aliyun metadata_endpoint must be an http://host[:port] URL (got ${quoteUntrusted(text)})`,
    );
  }
  return url;
}
