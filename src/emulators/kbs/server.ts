import { createHash, randomBytes, timingSafeEqual, type webcrypto } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import * as path from 'node:path';
import { loadJose } from '../../kbc/jwe';
import { encryptResource, type JweProducer } from './jwe-producer';
import { KBS_PROTOCOL_VERSION, SAMPLE_TEE, reportData, runtimeData, type PublicJwk } from './protocol';

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

interface Session {
  readonly nonce: string;
  readonly created: number;
  teePubkey?: PublicJwk;
}

const SESSION_COOKIE = 'kbs-session-id';
const MAX_BODY_BYTES = 1024 * 1024;
const SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/;
const ERROR_TYPE = 'https://github.com/confidential-containers/kbs/errors/';

type Jose = Awaited<ReturnType<typeof loadJose>>;
type CryptoKey = webcrypto.CryptoKey;

export class KbsEmulator {
  readonly counters: KbsCounters = {
    auth: 0,
    attest: 0,
    attestRejected: 0,
    tokensIssued: 0,
    resourceRequests: 0,
    byStatus: {},
    lastResourcePath: '',
  };
  /** Which JOSE implementation encrypts the answers (may be switched between requests). */
  producer: JweProducer;
  private readonly faults: KbsFault[] = [];
  private readonly sessions = new Map<string, Session>();
  private readonly sockets = new Set<Socket>();
  private readonly server: http.Server;
  private signingKey: CryptoKey | undefined;
  private verifyKey: CryptoKey | undefined;
  private jose: Jose | undefined;
  /** Sequence number of the next token; tokens numbered below `minSequence` are refused. */
  private sequence = 0;
  private minSequence = 0;
  private baseUrl = '';

  constructor(readonly options: KbsEmulatorOptions) {
    this.producer = options.producer ?? 'jose';
    const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      this.handle(req, res).catch((error: unknown) => {
        if (!res.headersSent) this.error(res, 500, 'InternalError', (error as Error).message);
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
    this.jose = await loadJose();
    const pair = await this.jose.generateKeyPair('ES256');
    this.signingKey = pair.privateKey;
    this.verifyKey = pair.publicKey;
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
    this.minSequence = this.sequence;
  }

  resetCounters(): void {
    Object.assign(this.counters, {
      auth: 0,
      attest: 0,
      attestRejected: 0,
      tokensIssued: 0,
      resourceRequests: 0,
      byStatus: {},
      lastResourcePath: '',
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://kbs');
    if (!url.pathname.startsWith('/kbs/v0/')) return this.error(res, 404, 'NotFound', 'unknown path');
    const route = url.pathname.slice('/kbs/v0/'.length);
    if (req.method === 'POST' && route === 'auth') return this.auth(req, res);
    if (req.method === 'POST' && route === 'attest') return this.attest(req, res);
    if (req.method === 'GET') return this.resource(req, res, route, url.search);
    return this.error(res, 405, 'MethodNotAllowed', `${req.method ?? ''} ${route}`);
  }

  private async auth(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    this.counters.auth++;
    const body = await readJson(req);
    if (body === undefined || typeof body !== 'object' || body === null)
      return this.error(res, 400, 'InvalidRequest', 'auth body is not JSON');
    const request = body as Record<string, unknown>;
    if (request['version'] !== KBS_PROTOCOL_VERSION)
      return this.error(res, 400, 'ProtocolVersion', `expected version ${KBS_PROTOCOL_VERSION}`);
    if (request['tee'] !== SAMPLE_TEE)
      return this.error(res, 400, 'UnsupportedTee', `tee ${String(request['tee'])} is not "sample"`);
    const id = randomBytes(16).toString('hex');
    const nonce = randomBytes(32).toString('base64');
    this.sessions.set(id, { nonce, created: Date.now() });
    this.pruneSessions();
    res.setHeader('set-cookie', `${SESSION_COOKIE}=${id}; Path=/kbs/v0; HttpOnly`);
    this.json(res, 200, { nonce, 'extra-params': '' });
  }

  private async attest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    this.counters.attest++;
    const session = this.session(req);
    const reject = (type: string, detail: string): void => {
      this.counters.attestRejected++;
      this.error(res, 401, type, detail);
    };
    if (session === undefined) return reject('UnAuthenticatedCookie', 'no kbs-session-id cookie of an auth');
    const body = (await readJson(req)) as Record<string, unknown> | undefined;
    const runtime = body?.['runtime-data'] as Record<string, unknown> | undefined;
    const evidence = body?.['tee-evidence'] as Record<string, unknown> | undefined;
    if (runtime === undefined || evidence === undefined)
      return this.error(res, 400, 'InvalidRequest', 'attest body needs runtime-data and tee-evidence');
    const nonce = runtime['nonce'];
    const teePubkey = runtime['tee-pubkey'] as PublicJwk | undefined;
    if (nonce !== session.nonce)
      return reject('AttestationFailed', 'runtime-data nonce is not the auth nonce');
    if (teePubkey === undefined || typeof teePubkey !== 'object')
      return reject('AttestationFailed', 'runtime-data has no tee-pubkey');
    let primary = evidence['primary_evidence'];
    if (typeof primary === 'string') primary = JSON.parse(primary) as unknown;
    const additional =
      typeof evidence['additional_evidence'] === 'string' ? evidence['additional_evidence'] : '';
    const sample = primary as { svn?: unknown; report_data?: unknown } | undefined;
    if (typeof sample?.report_data !== 'string' || sample.svn === undefined)
      return reject('AttestationFailed', 'sample evidence needs svn and report_data');
    const expected = reportData(runtimeData(teePubkey, session.nonce, additional));
    const got = Buffer.from(sample.report_data, 'base64');
    if (got.length !== expected.length || !timingSafeEqual(got, expected))
      return reject('AttestationFailed', 'report_data is not SHA-384 of the JCS runtime data');
    session.teePubkey = teePubkey;
    const jose = this.jose as Jose;
    const token = await new jose.SignJWT({ 'tee-pubkey': teePubkey, tee: SAMPLE_TEE, seq: this.sequence++ })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT' })
      .setIssuer('cdh-kbs-emulator')
      .setIssuedAt()
      .setExpirationTime(`${this.options.tokenTtlSeconds ?? 300}s`)
      .setJti(createHash('sha256').update(randomBytes(16)).digest('hex').slice(0, 16))
      .sign(this.signingKey as CryptoKey);
    this.counters.tokensIssued++;
    this.json(res, 200, { token });
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
      this.error(res, status, type, detail);
    };
    const teePubkey = await this.authorised(req);
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
    this.json(res, 200, jwe);
  }

  /** The TEE key of a valid bearer token, or of the attested session of the cookie. */
  private async authorised(req: http.IncomingMessage): Promise<PublicJwk | undefined> {
    const header = req.headers.authorization;
    if (header?.startsWith('Bearer ')) {
      const jose = this.jose as Jose;
      try {
        const { payload } = await jose.jwtVerify(
          header.slice('Bearer '.length),
          this.verifyKey as CryptoKey,
          {
            issuer: 'cdh-kbs-emulator',
            algorithms: ['ES256'],
          },
        );
        if (typeof payload['seq'] !== 'number' || payload['seq'] < this.minSequence) return undefined;
        return payload['tee-pubkey'] as PublicJwk;
      } catch {
        return undefined;
      }
    }
    return this.session(req)?.teePubkey;
  }

  private takeFault(route: string): KbsFaultKind | undefined {
    const index = this.faults.findIndex((f) => f.pathPrefix === undefined || route.startsWith(f.pathPrefix));
    if (index < 0) return undefined;
    const fault = this.faults[index] as KbsFault;
    if (fault.count !== undefined && --fault.count <= 0) this.faults.splice(index, 1);
    return fault.kind;
  }

  private session(req: http.IncomingMessage): Session | undefined {
    const cookie = req.headers.cookie ?? '';
    const match = new RegExp(`(?:^|;\\s*)${SESSION_COOKIE}=([0-9a-f]+)`).exec(cookie);
    return match ? this.sessions.get(match[1] as string) : undefined;
  }

  private pruneSessions(): void {
    const cutoff = Date.now() - 10 * 60_000;
    for (const [id, session] of this.sessions) if (session.created < cutoff) this.sessions.delete(id);
  }

  private json(res: http.ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  private error(res: http.ServerResponse, status: number, type: string, detail: string): void {
    this.json(res, status, { type: `${ERROR_TYPE}${type}`, detail });
  }
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}
