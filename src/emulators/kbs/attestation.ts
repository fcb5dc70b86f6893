import { createHash, randomBytes, timingSafeEqual, type webcrypto } from 'node:crypto';
import type * as http from 'node:http';
import { loadJose } from '../../kbc/jwe';
import { readJson, sendError, sendJson } from './answers';
import { KBS_PROTOCOL_VERSION, SAMPLE_TEE, reportData, runtimeData, type PublicJwk } from './protocol';
import type { KbsCounters } from './server';

interface Session {
  readonly nonce: string;
  readonly created: number;
  teePubkey?: PublicJwk;
}

const SESSION_COOKIE = 'kbs-session-id';

type Jose = Awaited<ReturnType<typeof loadJose>>;
type CryptoKey = webcrypto.CryptoKey;

/**
 * The KBS emulator's attestation side: `auth` (a nonce and a session cookie), `attest` (the
 * sample TEE's evidence checked against the nonce; an ES256 JWT with the TEE key), and which
 * TEE key a resource request is authorised for (bearer token, or the attested session).
 */
export class KbsAttestation {
  private readonly sessions = new Map<string, Session>();
  private jose: Jose | undefined;
  private signingKey: CryptoKey | undefined;
  private verifyKey: CryptoKey | undefined;
  /** Sequence number of the next token; tokens numbered below `minSequence` are refused. */
  private sequence = 0;
  private minSequence = 0;

  constructor(
    private readonly counters: KbsCounters,
    private readonly tokenTtlSeconds: number,
  ) {}

  /** Generates the token signing key. */
  async init(): Promise<void> {
    this.jose = await loadJose();
    const pair = await this.jose.generateKeyPair('ES256');
    this.signingKey = pair.privateKey;
    this.verifyKey = pair.publicKey;
  }

  /** Every token issued so far is refused from now on. */
  revokeTokens(): void {
    this.minSequence = this.sequence;
  }

  async auth(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    this.counters.auth++;
    const body = await readJson(req);
    if (body === undefined || typeof body !== 'object' || body === null)
      return sendError(res, 400, 'InvalidRequest', 'auth body is not JSON');
    const request = body as Record<string, unknown>;
    if (request['version'] !== KBS_PROTOCOL_VERSION)
      return sendError(res, 400, 'ProtocolVersion', `expected version ${KBS_PROTOCOL_VERSION}`);
    if (request['tee'] !== SAMPLE_TEE)
      return sendError(res, 400, 'UnsupportedTee', `tee ${String(request['tee'])} is not "sample"`);
    const id = randomBytes(16).toString('hex');
    const nonce = randomBytes(32).toString('base64');
    this.sessions.set(id, { nonce, created: Date.now() });
    this.pruneSessions();
    res.setHeader('set-cookie', `${SESSION_COOKIE}=${id}; Path=/kbs/v0; HttpOnly`);
    sendJson(res, 200, { nonce, 'extra-params': '' });
  }

  async attest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    this.counters.attest++;
    const session = this.session(req);
    const reject = (type: string, detail: string): void => {
      this.counters.attestRejected++;
      sendError(res, 401, type, detail);
    };
    if (session === undefined) return reject('UnAuthenticatedCookie', 'no kbs-session-id cookie of an auth');
    const body = (await readJson(req)) as Record<string, unknown> | undefined;
    const runtime = body?.['runtime-data'] as Record<string, unknown> | undefined;
    const evidence = body?.['tee-evidence'] as Record<string, unknown> | undefined;
    if (runtime === undefined || evidence === undefined)
      return sendError(res, 400, 'InvalidRequest', 'attest body needs runtime-data and tee-evidence');
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
      .setExpirationTime(`${this.tokenTtlSeconds}s`)
      .setJti(createHash('sha256').update(randomBytes(16)).digest('hex').slice(0, 16))
      .sign(this.signingKey as CryptoKey);
    this.counters.tokensIssued++;
    sendJson(res, 200, { token });
  }

  /** The TEE key of a valid bearer token, or of the attested session of the cookie. */
  async authorised(req: http.IncomingMessage): Promise<PublicJwk | undefined> {
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

  private session(req: http.IncomingMessage): Session | undefined {
    const cookie = req.headers.cookie ?? '';
    const match = new RegExp(`(?:^|;\\s*)${SESSION_COOKIE}=([0-9a-f]+)`).exec(cookie);
    return match ? this.sessions.get(match[1] as string) : undefined;
  }

  private pruneSessions(): void {
    const cutoff = Date.now() - 10 * 60_000;
    for (const [id, session] of this.sessions) if (session.created < cutoff) this.sessions.delete(id);
  }
}
