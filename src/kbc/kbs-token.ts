import type { Logger } from 'pino';
import { CdhError } from '../errors';
import { MAX_TIMER_MS, raceSignal } from '../lib/abort';
import type { CallContext } from '../providers/types';
import { TeeKey } from './jwe';
import { throwIfAborted } from './kbc-abort';

/** Where cc_kbc gets its token: the attestation agent's GetToken, answering the raw Token bytes. */
export interface TokenSource {
  /** Names the AA in messages (its socket address). */
  readonly address: string;
  getToken(tokenType: string, ctx: CallContext): Promise<Buffer>;
  close?(): void;
}

/** Upstream: the AA may attest for a while; GetToken is given 50 s. */
export const AA_TOKEN_TIMEOUT_MS = 50_000;

export interface TokenEntry {
  readonly token: string;
  readonly key: TeeKey;
  readonly generation: number;
  /** From the JWT's `exp` (ms), when it has one. */
  readonly expiresAt: number | undefined;
}

interface PendingFetch {
  readonly promise: Promise<TokenEntry>;
  readonly controller: AbortController;
  waiters: number;
}

/**
 * cc_kbc's KBS token and the TEE key that came with it, from the attestation agent: kept in
 * memory only, reused until the KBS answers 401 (invalidate) or the JWT's `exp` passes. One
 * GetToken at a time, shared by every caller waiting for it.
 */
export class KbsTokens {
  private current: TokenEntry | undefined;
  private pending: PendingFetch | undefined;
  private generation = 0;
  private expiryTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly aa: TokenSource,
    private readonly logger: Logger,
  ) {}

  /** Tokens fetched from the AA so far. */
  get fetched(): number {
    return this.generation;
  }

  /** Aborts a GetToken in flight and forgets the token. */
  close(): void {
    this.closed = true;
    this.pending?.controller.abort(new CdhError('SHUTTING_DOWN', 'the KBC is closing'));
    this.drop();
    this.aa.close?.();
  }

  /**
   * The current token, or a new one from the AA. Concurrent callers share one GetToken; it is
   * aborted when every caller waiting for it has left. `stale` is a generation the caller saw
   * refused: it is not handed out again.
   */
  async token(ctx: CallContext, stale: number | undefined, shown: string): Promise<TokenEntry> {
    const current = this.current;
    if (current !== undefined && current.generation !== stale) {
      if (current.expiresAt === undefined || current.expiresAt > Date.now()) return current;
      this.drop();
    }
    if (this.closed) throw new CdhError('SHUTTING_DOWN', 'the KBC is closing');
    const pending = this.pending ?? this.startFetch();
    pending.waiters++;
    try {
      return await raceSignal(pending.promise, ctx.signal);
    } catch (error) {
      throwIfAborted(ctx.signal, shown, 'waiting for the attestation agent');
      if (error instanceof CdhError) {
        throw new CdhError(error.code, `resource ${shown}: ${error.message}`, { cause: error.cause });
      }
      throw error;
    } finally {
      if (--pending.waiters === 0 && this.pending === pending) {
        pending.controller.abort(new CdhError('CANCELLED', 'every caller waiting for the token left'));
        this.pending = undefined;
      }
    }
  }

  private startFetch(): PendingFetch {
    const controller = new AbortController();
    const signal = AbortSignal.any([controller.signal, AbortSignal.timeout(AA_TOKEN_TIMEOUT_MS)]);
    const promise = this.fetchToken(signal).finally(() => {
      if (this.pending?.promise === promise) this.pending = undefined;
    });
    promise.catch(() => undefined);
    const pending: PendingFetch = { promise, controller, waiters: 0 };
    this.pending = pending;
    return pending;
  }

  private async fetchToken(signal: AbortSignal): Promise<TokenEntry> {
    let raw: Buffer;
    try {
      raw = await this.aa.getToken('kbs', { signal });
    } catch (error) {
      if (signal.aborted && controllerReason(signal) !== undefined) throw controllerReason(signal);
      throw this.aaError(error, signal);
    }
    const entry = await this.parseToken(raw).finally(() => raw.fill(0));
    this.current = entry;
    this.scheduleExpiry(entry);
    this.logger.debug({ generation: entry.generation, teeKey: entry.key.kind }, 'KBS token obtained');
    return entry;
  }

  private aaError(error: unknown, signal: AbortSignal): CdhError {
    if (signal.aborted) {
      return new CdhError(
        'AA_UNAVAILABLE',
        `attestation agent at ${this.aa.address} did not answer GetToken within ${AA_TOKEN_TIMEOUT_MS} ms`,
      );
    }
    if (error instanceof CdhError && error.code === 'AA_UNAVAILABLE') return error;
    const reason =
      error instanceof CdhError
        ? error.message
        : error instanceof Error
          ? ((error as NodeJS.ErrnoException).code ?? error.message.split('\n')[0])
          : String(error);
    return new CdhError(
      'AA_UNAVAILABLE',
      `attestation agent at ${this.aa.address}: GetToken failed: ${reason}`,
      {
        cause: error,
      },
    );
  }

  private async parseToken(raw: Buffer): Promise<TokenEntry> {
    const bad = (why: string): CdhError =>
      new CdhError('AA_UNAVAILABLE', `attestation agent at ${this.aa.address}: GetToken answer ${why}`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw.toString('utf8'));
    } catch {
      throw bad('is not JSON {"token", "tee_keypair"}');
    }
    const record = (parsed ?? {}) as Record<string, unknown>;
    const token = record['token'];
    const pem = record['tee_keypair'];
    if (typeof token !== 'string' || token === '' || !/^[\x21-\x7e]+$/.test(token))
      throw bad('has no usable "token" string');
    if (typeof pem !== 'string' || pem === '') throw bad('has no "tee_keypair" PEM');
    let key: TeeKey;
    try {
      key = await TeeKey.fromPem(pem);
    } catch (error) {
      throw bad(
        `has a tee_keypair that is not an RSA or EC P-256/P-521 private key (${error instanceof TypeError ? error.message : 'unparsable'})`,
      );
    }
    return { token, key, generation: ++this.generation, expiresAt: jwtExpiry(token) };
  }

  private scheduleExpiry(entry: TokenEntry): void {
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
    if (entry.expiresAt === undefined) return;
    const delay = entry.expiresAt - Date.now();
    if (delay > MAX_TIMER_MS) return;
    this.expiryTimer = setTimeout(
      () => {
        if (this.current === entry) this.drop();
      },
      Math.max(0, delay),
    );
    this.expiryTimer.unref();
  }

  invalidate(entry: TokenEntry): void {
    if (this.current === entry) this.drop();
  }

  /** Forgets the token and its key (references dropped; a CryptoKey cannot be zeroed from JS). */
  private drop(): void {
    this.current = undefined;
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
  }
}

function controllerReason(signal: AbortSignal): CdhError | undefined {
  const reason: unknown = signal.reason;
  return reason instanceof CdhError ? reason : undefined;
}

/** The JWT's `exp` in ms, read without verifying (the KBS verifies; this only drops it early). */
function jwtExpiry(token: string): number | undefined {
  const payload = token.split('.')[1];
  if (payload === undefined) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof claims.exp === 'number' && Number.isFinite(claims.exp) ? claims.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}
