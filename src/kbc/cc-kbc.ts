import type { Logger } from 'pino';
import { CdhError } from '../errors';
import type { CallContext } from '../providers/types';
import { sleep } from '../lib/abort';
import { JweError, type TeeKey } from './jwe';
import { throwIfAborted } from './kbc-abort';
import { KbsTokens, type TokenSource } from './kbs-token';
import { HttpRequestError } from '../net/http-client';
import type { KbsHttpClient } from './kbs-http';
import type { Kbc } from './types';
import { formatResourceUri, kbsRequestPath, parseResourceUri, type ResourceUri } from './uri';

export { AA_TOKEN_TIMEOUT_MS, type TokenSource } from './kbs-token';
/** A KBS request with no caller deadline still ends. */
export const KBS_REQUEST_TIMEOUT_MS = 30_000;
/** Upstream makes at most 3 attempts (a 401 gets a new token before the next). */
export const MAX_ATTEMPTS = 3;
/** Largest KBS answer read (the resource is at most one 4 MiB ttrpc frame, JWE adds a third). */
export const MAX_KBS_ANSWER_BYTES = 8 * 1024 * 1024;
const RETRY_DELAY_MS = 200;
/** The KBS error `detail` shown in messages is cut to this. */
const MAX_DETAIL_CHARS = 300;

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
  private readonly tokens: KbsTokens;

  constructor(
    aa: TokenSource,
    private readonly kbs: KbsHttpClient,
    private readonly kbsUrl: string,
    private readonly logger: Logger,
  ) {
    this.tokens = new KbsTokens(aa, logger);
  }

  async getResource(uri: string, ctx: CallContext): Promise<Buffer> {
    const parsed = parseResourceUri(uri);
    const shown = formatResourceUri(parsed);
    let stale: number | undefined;
    let lastRefusal = '';
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      throwIfAborted(ctx.signal, shown, 'before the request');
      const entry = await this.tokens.token(ctx, stale, shown);
      const answer = await this.fetch(parsed, shown, entry.token, ctx, attempt);
      if (answer === 'retry') continue;
      try {
        const { status, body } = answer;
        if (status === 200) return await this.decrypt(entry.key, body, shown);
        const detail = kbsErrorText(body);
        if (status === 401) {
          // Not (or no longer) accepted: drop the token, get a new one, try again.
          this.tokens.invalidate(entry);
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
    this.tokens.close();
    this.kbs.close();
  }

  /** Tokens fetched from the AA so far (tests, benchmarks). */
  get tokenGeneration(): number {
    return this.tokens.fetched;
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
      const failure = error instanceof HttpRequestError ? error : undefined;
      const tls = failure?.networkKind === 'tls';
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
      const reason = tls
        ? `TLS handshake failed (${failure?.code ?? 'error'})`
        : (failure?.code ?? failure?.message ?? 'network error');
      if (!tls && attempt < MAX_ATTEMPTS && (await this.pause(ctx, attempt))) return 'retry';
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
      await sleep(RETRY_DELAY_MS * attempt, ctx.signal);
      return true;
    } catch {
      return false;
    }
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
