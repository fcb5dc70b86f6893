import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { listenOnLoopback } from '../listen';
import { DelayedActions } from '../delayed-actions';

/**
 * The ECS instance metadata service's RAM-role corner, for tests: plain HTTP on 127.0.0.1.
 * `hardened` mode issues session tokens (PUT /latest/api/token) and requires one on the
 * credentials GET; `plain` mode has no token endpoint (404) and answers the GET as is.
 * Every credentials GET issues fresh STS credentials expiring `credentialLifetimeMs` later.
 */

export type MetadataMode = 'hardened' | 'plain';

export interface IssuedCredential {
  readonly roleName: string;
  readonly accessKeyId: string;
  readonly accessKeySecret: string;
  readonly securityToken: string;
  readonly expiresAt: number;
}

export interface MetadataEmulatorOptions {
  readonly mode?: MetadataMode;
  /** Role names attached to the "instance"; a role mapped to a code other than Success answers that Code. */
  readonly roles?: Readonly<Record<string, string>>;
  readonly credentialLifetimeMs?: number;
  /** Called for every credential issued (tests register them with the OpenAPI emulator). */
  readonly onIssue?: (credential: IssuedCredential) => void;
}

export interface MetadataCounters {
  tokenRequests: number;
  credentialRequests: number;
  issued: number;
  rejected: number;
}

const TOKEN_PATH = '/latest/api/token';
const CREDENTIALS_PREFIX = '/latest/meta-data/ram/security-credentials/';
const MAX_TOKEN_TTL_SECONDS = 21600;

export class MetadataEmulator {
  mode: MetadataMode;
  credentialLifetimeMs: number;
  /** Delay before answering credential requests (single-flight tests). */
  answerDelayMs = 0;
  /** When set, the token endpoint answers this status instead (405, 403, 500 … tests). */
  tokenEndpointStatus: number | undefined;
  readonly counters: MetadataCounters = { tokenRequests: 0, credentialRequests: 0, issued: 0, rejected: 0 };
  readonly issued: IssuedCredential[] = [];
  /** The TTL header of each token request, as sent. */
  readonly requestedTokenTtls: string[] = [];

  private readonly roles: Map<string, string>;
  private readonly tokens = new Map<string, number>();
  private readonly delayed = new DelayedActions();
  /** Injected answers for the next requests (any path), one per request. */
  private readonly faults: Array<{ readonly status: number } | 'hang'> = [];
  private port = 0;

  private constructor(
    private readonly server: Server,
    private readonly options: MetadataEmulatorOptions,
  ) {
    this.mode = options.mode ?? 'hardened';
    this.credentialLifetimeMs = options.credentialLifetimeMs ?? 60 * 60 * 1000;
    this.roles = new Map(Object.entries(options.roles ?? { EcsRamRoleTest: 'Success' }));
  }

  static async start(options: MetadataEmulatorOptions = {}): Promise<MetadataEmulator> {
    const server = createServer();
    const emulator = new MetadataEmulator(server, options);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => emulator.handle(req, res));
    await listenOnLoopback(server);
    emulator.port = (server.address() as AddressInfo).port;
    return emulator;
  }

  /** The next `count` requests are answered with HTTP `status` (a flapping service). */
  failNext(count: number, status = 500): void {
    for (let i = 0; i < count; i++) this.faults.push({ status });
  }

  /** The next `count` requests are read and never answered. */
  hangNext(count = 1): void {
    for (let i = 0; i < count; i++) this.faults.push('hang');
  }

  clearFaults(): void {
    this.faults.length = 0;
  }

  /** Stops listening (dials are refused) and drops every connection; goOnline listens again. */
  async goOffline(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  async goOnline(): Promise<void> {
    await listenOnLoopback(this.server, this.port);
  }

  /** `http://127.0.0.1:<port>`, what metadata_endpoint takes. */
  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Session tokens issued so far stop working (the client must get a new one). */
  revokeTokens(): void {
    this.tokens.clear();
  }

  resetCounters(): void {
    for (const key of Object.keys(this.counters) as Array<keyof MetadataCounters>) this.counters[key] = 0;
  }

  async close(): Promise<void> {
    this.delayed.cancelAll();
    this.server.closeAllConnections();
    if (!this.server.listening) return;
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    req.resume();
    req.on('end', () => {
      const fault = this.faults.shift();
      if (fault === 'hang') return;
      if (fault !== undefined) return this.text(res, fault.status, 'injected failure');
      const path = new URL(req.url ?? '/', 'http://metadata').pathname;
      if (path === TOKEN_PATH) {
        this.counters.tokenRequests++;
        this.token(req, res);
      } else if (path.startsWith(CREDENTIALS_PREFIX) && req.method === 'GET') {
        this.counters.credentialRequests++;
        const answer = (): void =>
          this.credentials(decodeURIComponent(path.slice(CREDENTIALS_PREFIX.length)), req, res);
        if (this.answerDelayMs > 0) this.delayed.later(res, answer, this.answerDelayMs);
        else answer();
      } else {
        this.notFound(res);
      }
    });
  }

  private token(req: IncomingMessage, res: ServerResponse): void {
    if (this.tokenEndpointStatus !== undefined) return this.text(res, this.tokenEndpointStatus, 'refused');
    if (this.mode === 'plain') return this.notFound(res);
    if (req.method !== 'PUT') return this.text(res, 405, 'Method Not Allowed');
    const ttlHeader = req.headers['x-aliyun-ecs-metadata-token-ttl-seconds'];
    const ttl = typeof ttlHeader === 'string' ? Number(ttlHeader) : Number.NaN;
    this.requestedTokenTtls.push(String(ttlHeader));
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TOKEN_TTL_SECONDS) {
      this.counters.rejected++;
      return this.text(res, 400, 'Bad Request');
    }
    const token = randomBytes(24).toString('base64url');
    this.tokens.set(token, Date.now() + ttl * 1000);
    this.text(res, 200, token);
  }

  private credentials(roleName: string, req: IncomingMessage, res: ServerResponse): void {
    if (this.mode === 'hardened') {
      const token = req.headers['x-aliyun-ecs-metadata-token'];
      const expiresAt = typeof token === 'string' ? this.tokens.get(token) : undefined;
      if (expiresAt === undefined || expiresAt <= Date.now()) {
        this.counters.rejected++;
        return this.text(res, 401, 'Unauthorized');
      }
    }
    const code = this.roles.get(roleName);
    if (code === undefined) return this.notFound(res);
    if (code !== 'Success') {
      return this.json(res, {
        Code: code,
        Message: 'the role cannot be assumed',
        LastUpdated: isoSeconds(Date.now()),
      });
    }
    const issuedAt = Date.now();
    const credential: IssuedCredential = {
      roleName,
      accessKeyId: `STS.${randomBytes(12).toString('hex')}`,
      accessKeySecret: randomBytes(20).toString('base64url'),
      securityToken: `CAIS${randomBytes(48).toString('base64url')}`,
      // Expiration has whole seconds, as the real service writes it.
      expiresAt: Math.floor((issuedAt + this.credentialLifetimeMs) / 1000) * 1000,
    };
    this.issued.push(credential);
    this.counters.issued++;
    this.options.onIssue?.(credential);
    this.json(res, {
      AccessKeyId: credential.accessKeyId,
      AccessKeySecret: credential.accessKeySecret,
      Expiration: isoSeconds(credential.expiresAt),
      SecurityToken: credential.securityToken,
      LastUpdated: isoSeconds(issuedAt),
      Code: 'Success',
    });
  }

  private notFound(res: ServerResponse): void {
    res.writeHead(404, { 'content-type': 'text/html' });
    res.end('<html><body><h1>404 Not Found</h1></body></html>');
  }

  private text(res: ServerResponse, status: number, body: string): void {
    res.writeHead(status, { 'content-type': 'text/plain' });
    res.end(body);
  }

  private json(res: ServerResponse, body: object): void {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(JSON.stringify(body));
  }
}

function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}
