import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import * as path from 'node:path';
import { sendError, sendJson } from './answers';
import { KbsAttestation } from './attestation';
import { encryptResource, type JweProducer } from './jwe-producer';

/**
 * A Key Broker Service emulator (Trustee's KBS protocol 0.4.0, kbs.md) for the `sample` TEE:
 * `POST /kbs/v0/auth` (nonce + session cookie), `POST /kbs/v0/attest` (checks the nonce and
 * that the sample evidence's report data is SHA-384 of the JCS runtime data; answers a JWT
 * signed with ES256), and `GET /kbs/v0/<plugin>/<path>` with the token (or the attested
 * session's cookie): the file `<dir>/<repo>/<type>/<tag>` (other plugins:
 * `<dir>/+<plugin>/<path>`) as a JWE to the token's TEE key. Counters and fault injection
 * for tests; never used by the daemon.
 */

export type KbsFaultKind =
  | 'unauthorized' // 401 (e.g. count 1: "401 once")
  | 'forbidden' // 403
  | 'not-found' // 404
  | 'server-error' // 500
  | 'hang' // no answer at all
  | 'corrupt-tag'; // a JWE whose tag is changed

export interface KbsFault {
  readonly kind: KbsFaultKind;
  /** How many resource requests it applies to (default: until cleared). */
  count?: number;
  /** Applies only to request paths below /kbs/v0/ starting with this (default: all). */
  readonly pathPrefix?: string;
}

export interface KbsEmulatorOptions {
  readonly resourceDir: string;
  /** HTTPS with this certificate chain and key (PEM); HTTP without. */
  readonly tls?: { readonly cert: string; readonly key: string };
  readonly host?: string;
  readonly port?: number;
  /** Token lifetime (default 300 s). */
  readonly tokenTtlSeconds?: number;
  /** Which JOSE implementation encrypts the answers (default jose). */
  readonly producer?: JweProducer;
  /** Python with jwcrypto for the `jwcrypto` producer. */
  readonly python?: string;
}

export interface KbsCounters {
  auth: number;
  attest: number;
  attestRejected: number;
  tokensIssued: number;
  resourceRequests: number;
  /** Resource answers by HTTP status. */
  byStatus: Record<number, number>;
  /** Path + query of the last resource request (below /kbs/v0/). */
  lastResourcePath: string;
}

const SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/;

export class KbsEmulator {
  readonly counters: KbsCounters = freshCounters();
  /** Which JOSE implementation encrypts the answers (may be switched between requests). */
  producer: JweProducer;
  private readonly faults: KbsFault[] = [];
  private readonly sockets = new Set<Socket>();
  private readonly server: http.Server;
  private readonly attestation: KbsAttestation;
  private baseUrl = '';

  constructor(readonly options: KbsEmulatorOptions) {
    this.producer = options.producer ?? 'jose';
    this.attestation = new KbsAttestation(this.counters, options.tokenTtlSeconds ?? 300);
    const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      this.handle(req, res).catch((error: unknown) => {
        if (!res.headersSent) sendError(res, 500, 'InternalError', (error as Error).message);
      });
    };
    this.server = options.tls
      ? https.createServer({ cert: options.tls.cert, key: options.tls.key }, handler)
      : http.createServer(handler);
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
  }

  /** Starts listening; resolves with the base URL (`http(s)://127.0.0.1:<port>`). */
  async start(): Promise<string> {
    await this.attestation.init();
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port ?? 0, this.options.host ?? '127.0.0.1', () => resolve());
    });
    const address = this.server.address() as AddressInfo;
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    this.baseUrl = `${this.options.tls ? 'https' : 'http'}://${host}:${address.port}`;
    return this.baseUrl;
  }

  get url(): string {
    return this.baseUrl;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Adds a fault; resource requests meet the first one that matches. */
  inject(fault: KbsFault): void {
    this.faults.push({ ...fault });
  }

  clearFaults(): void {
    this.faults.length = 0;
  }

  /** Every token issued so far is refused from now on (401), as after a KBS restart. */
  revokeTokens(): void {
    this.attestation.revokeTokens();
  }

  resetCounters(): void {
    Object.assign(this.counters, freshCounters());
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://kbs');
    if (!url.pathname.startsWith('/kbs/v0/')) return sendError(res, 404, 'NotFound', 'unknown path');
    const route = url.pathname.slice('/kbs/v0/'.length);
    if (req.method === 'POST' && route === 'auth') return this.attestation.auth(req, res);
    if (req.method === 'POST' && route === 'attest') return this.attestation.attest(req, res);
    if (req.method === 'GET') return this.resource(req, res, route, url.search);
    return sendError(res, 405, 'MethodNotAllowed', `${req.method ?? ''} ${route}`);
  }

  private async resource(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    route: string,
    search: string,
  ): Promise<void> {
    this.counters.resourceRequests++;
    this.counters.lastResourcePath = `${route}${search}`;
    const answer = (status: number, type: string, detail: string): void => {
      this.counters.byStatus[status] = (this.counters.byStatus[status] ?? 0) + 1;
      sendError(res, status, type, detail);
    };
    const teePubkey = await this.attestation.authorised(req);
    if (teePubkey === undefined)
      return answer(401, 'TokenNotFound', 'no valid bearer token or attested session');

    const fault = this.takeFault(route);
    if (fault === 'hang') return; // the socket stays open until the client gives up or close()
    if (fault === 'unauthorized') return answer(401, 'PolicyDeny', 'injected 401');
    if (fault === 'forbidden') return answer(403, 'PolicyDeny', 'injected 403: resource policy denies it');
    if (fault === 'not-found') return answer(404, 'ResourceNotFound', 'injected 404');
    if (fault === 'server-error') return answer(500, 'InternalError', 'injected 500');

    const [plugin, ...segments] = route.split('/');
    if (plugin === undefined || segments.length === 0 || !segments.every((s) => SEGMENT.test(s)))
      return answer(400, 'InvalidRequest', 'bad resource path');
    if (plugin === 'resource' && segments.length !== 3)
      return answer(400, 'InvalidRequest', 'resource path must be <repo>/<type>/<tag>');
    const file =
      plugin === 'resource'
        ? path.join(this.options.resourceDir, ...segments)
        : path.join(this.options.resourceDir, `+${plugin}`, ...segments);
    let content: Buffer;
    try {
      content = await fs.readFile(file);
    } catch {
      return answer(404, 'ResourceNotFound', `no resource ${segments.join('/')}`);
    }
    let jwe: Record<string, unknown>;
    try {
      jwe = await encryptResource(content, teePubkey, this.producer, this.options.python);
    } finally {
      content.fill(0);
    }
    if (fault === 'corrupt-tag') {
      const tag = Buffer.from(jwe['tag'] as string, 'base64url');
      tag[0] = (tag[0] ?? 0) ^ 0x01;
      jwe['tag'] = tag.toString('base64url');
    }
    this.counters.byStatus[200] = (this.counters.byStatus[200] ?? 0) + 1;
    sendJson(res, 200, jwe);
  }

  private takeFault(route: string): KbsFaultKind | undefined {
    const index = this.faults.findIndex((f) => f.pathPrefix === undefined || route.startsWith(f.pathPrefix));
    if (index < 0) return undefined;
    const fault = this.faults[index] as KbsFault;
    if (fault.count !== undefined && --fault.count <= 0) this.faults.splice(index, 1);
    return fault.kind;
  }
}

function freshCounters(): KbsCounters {
  return {
    auth: 0,
    attest: 0,
    attestRejected: 0,
    tokensIssued: 0,
    resourceRequests: 0,
    byStatus: {},
    lastResourcePath: '',
  };
}
