import type { Logger } from 'pino';
import { CdhError } from '../errors';
import type { CallContext } from '../providers/types';
import { JweError, TeeKey } from './jwe';
import { HttpFailure, type KbsHttpClient } from './kbs-http';
import type { Kbc } from './types';
import { formatResourceUri, kbsRequestPath, parseResourceUri, type ResourceUri } from './uri';

/** Where cc_kbc gets its token: the attestation agent's GetToken, answering the raw Token bytes. */
export interface TokenSource {
  /** Names the AA in messages (its socket address). */
  readonly address: string;
  getToken(tokenType: string, ctx: CallContext): Promise<Buffer>;
  close?(): void;
}

/** Upstream: the AA may attest for a while; GetToken is given 50 s. */
export const AA_TOKEN_TIMEOUT_MS = 50_000;
/** A KBS request with no caller deadline still ends. */
export const KBS_REQUEST_TIMEOUT_MS = 30_000;
/** Upstream makes at most 3 attempts (a 401 gets a new token before the next). */
export const MAX_ATTEMPTS = 3;
/** Largest KBS answer read (the resource is at most one 4 MiB ttrpc frame, JWE adds a third). */
export const MAX_KBS_ANSWER_BYTES = 8 * 1024 * 1024;
const RETRY_DELAY_MS = 200;
/** The KBS error `detail` shown in messages is cut to this. */
const MAX_DETAIL_CHARS = 300;

interface TokenEntry {
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
 * The `cc_kbc` KBC (kbs.md): a token from the attestation agent, resources from the KBS with
 * `Authorization: Bearer`, answers decrypted with the TEE key that came with the token.
 *
 * What is kept: the token and its TEE key, in memory only, reused until the KBS answers 401
 * (as upstream) or the JWT's `exp` passes (then both are dropped; the next call gets new
 * ones). Resources are not cached: the KBS authorises every request against its policy, and
 * a cache here would keep serving a resource the KBS has since revoked.
 */
export class CcKbc implements Kbc {
  readonly name = 'cc_kbc';
  private current: TokenEntry | undefined;
  private pending: PendingFetch | undefined;
  private generation = 0;
  private expiryTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly aa: TokenSource,
    private readonly kbs: KbsHttpClient,
    private readonly kbsUrl: string,
    private readonly logger: Logger,
  ) {}

  async getResource(uri: string, ctx: CallContext): Promise<Buffer> {
    const parsed = parseResourceUri(uri);
    const shown = formatResourceUri(parsed);
    let stale: number | undefined;
    let lastRefusal = '';
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      throwIfAborted(ctx.signal, shown, 'before the request');
      const entry = await this.token(ctx, stale, shown);
      const answer = await this.fetch(parsed, shown, entry.token, ctx, attempt);
      if (answer === 'retry') continue;
      try {
        const { status, body } = answer;
        if (status === 200) return await this.decrypt(entry.key, body, shown);
        const detail = kbsErrorText(body);
        if (status === 401) {
          // Not (or no longer) accepted: drop the token, get a new one, try again.
          this.invalidate(entry);
          stale = entry.generation;
          lastRefusal = detail;
          this.logger.debug({ resourceUri: shown, attempt }, 'KBS answered 401; getting a new token');
          continue;
        }
        if (status === 403)
          throw new CdhError('KBS_UNAUTHORIZED', `KBS refused resource ${shown} (403${detail})`);
        if (status === 404)
          throw new CdhError('RESOURCE_NOT_FOUND', `resource ${shown} not found at the KBS (404${detail})`);
        if (status >= 500) {
          if (attempt < MAX_ATTEMPTS && (await this.pause(ctx, attempt))) continue;
          throw new CdhError(
            'KBS_UNAVAILABLE',
            `KBS ${this.kbsUrl} failed for resource ${shown} (${status}${detail})`,
          );
        }
        throw new CdhError(
          'KBS_REQUEST_FAILED',
          `KBS ${this.kbsUrl} answered ${status} for resource ${shown}${detail ? ` (${detail.slice(2)})` : ''}`,
        );
      } finally {
        answer.body.fill(0);
      }
    }
    throw new CdhError(
      'KBS_UNAUTHORIZED',
      `KBS refused resource ${shown}: 401 after ${MAX_ATTEMPTS} attempts, each with a fresh token from the attestation agent${lastRefusal ? ` (last${lastRefusal})` : ''}`,
    );
  }

  close(): void {
    this.closed = true;
    this.pending?.controller.abort(new CdhError('SHUTTING_DOWN', 'the KBC is closing'));
    this.drop();
    this.kbs.close();
    this.aa.close?.();
  }

  /** Tokens fetched from the AA so far (tests, benchmarks). */
  get tokenGeneration(): number {
    return this.generation;
  }

  private async decrypt(key: TeeKey, body: Buffer, shown: string): Promise<Buffer> {
    try {
      return await key.decrypt(body);
    } catch (error) {
      if (error instanceof JweError)
        throw new CdhError('KBS_ANSWER_UNDECRYPTABLE', `KBS answer for resource ${shown}: ${error.message}`);
      throw new CdhError('KBS_ANSWER_UNDECRYPTABLE', `KBS answer for resource ${shown} does not decrypt`, {
        cause: error,
      });
    }
  }

  /** One KBS request; 'retry' after a network failure when another attempt is allowed. */
  private async fetch(
    uri: ResourceUri,
    shown: string,
    token: string,
    ctx: CallContext,
    attempt: number,
  ): Promise<{ status: number; body: Buffer } | 'retry'> {
    const signal = ctx.signal;
    try {
      const answer = await this.kbs.request(
        'GET',
        `/kbs/v0/${kbsRequestPath(uri)}`,
        { authorization: `Bearer ${token}`, accept: 'application/json' },
        signal,
      );
      return { status: answer.status, body: answer.body };
    } catch (error) {
      throwIfAborted(ctx.signal, shown, 'waiting for the KBS');
      if (error instanceof CdhError) throw error;
      const failure = error instanceof HttpFailure ? error : undefined;
      if (failure?.kind === 'too-large') {
        throw new CdhError(
          'KBS_ANSWER_UNDECRYPTABLE',
          `KBS answer for resource ${shown}: ${failure.message}`,
        );
      }
      if (failure?.kind === 'timeout' || failure?.kind === 'aborted' || signal.aborted) {
        throw new CdhError(
          'KBS_UNAVAILABLE',
          `KBS ${this.kbsUrl} did not answer within ${KBS_REQUEST_TIMEOUT_MS} ms for resource ${shown}`,
        );
      }
      const reason = failure?.message ?? 'network error';
      if (failure?.kind !== 'tls' && attempt < MAX_ATTEMPTS && (await this.pause(ctx, attempt)))
        return 'retry';
      throw new CdhError(
        'KBS_UNAVAILABLE',
        `KBS ${this.kbsUrl} unreachable for resource ${shown}: ${reason}`,
        {
          cause: error,
        },
      );
    }
  }

  /** Waits before a retry; false when the caller left meanwhile. */
  private async pause(ctx: CallContext, attempt: number): Promise<boolean> {
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, RETRY_DELAY_MS * attempt);
        ctx.signal.addEventListener(
          'abort',
          () => {
            clearTimeout(timer);
            reject(ctx.signal.reason);
          },
          { once: true },
        );
      });
      return true;
    } catch {
      return false;
    }
  }

  /**
   * The current token, or a new one from the AA. Concurrent callers share one GetToken; it is
   * aborted when every caller waiting for it has left. `stale` is a generation the caller saw
   * refused: it is not handed out again.
   */
  private async token(ctx: CallContext, stale: number | undefined, shown: string): Promise<TokenEntry> {
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
    if (delay > 2 ** 31 - 1) return;
    this.expiryTimer = setTimeout(
      () => {
        if (this.current === entry) this.drop();
      },
      Math.max(0, delay),
    );
    this.expiryTimer.unref();
  }

  private invalidate(entry: TokenEntry): void {
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

/** `, <type name>: <detail>` from a KBS error body, or ''; never more than a few hundred chars. */
function kbsErrorText(body: Buffer): string {
  if (body.length === 0 || body.length > 64 * 1024) return '';
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { type?: unknown; detail?: unknown };
    const type = typeof parsed.type === 'string' ? (parsed.type.split('/').pop() ?? '') : '';
    const detail = typeof parsed.detail === 'string' ? parsed.detail : '';
    const text = [type, detail]
      .filter(Boolean)
      .join(': ')
      .replace(/[^\x20-\x7e]/g, '?');
    if (text === '') return '';
    return `, ${text.length > MAX_DETAIL_CHARS ? `${text.slice(0, MAX_DETAIL_CHARS)}...` : text}`;
  } catch {
    return '';
  }
}

function throwIfAborted(signal: AbortSignal, shown: string, where: string): void {
  if (!signal.aborted) return;
  const reason: unknown = signal.reason;
  if (reason instanceof CdhError) {
    throw new CdhError(reason.code, `resource ${shown}: ${reason.message} (${where})`);
  }
  throw new CdhError('CANCELLED', `resource ${shown}: the caller cancelled (${where})`);
}

function raceSignal<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error as Error);
      },
    );
  });
}
