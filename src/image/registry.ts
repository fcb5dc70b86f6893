import type { Readable } from 'node:stream';
import { request, type Dispatcher } from 'undici';
import { CdhError, isCdhError, type ErrorCode } from '../errors';
import { assertDialAllowed } from '../net-guard';
import { sleep } from '../lib/abort';
import type { BasicCredentials } from './auth';
import { quote, referenceString, registryHost, type ImageReference } from './reference';
import type { RegistryTransport } from './registry-transport';

const MAX_ERROR_BODY = 4096;
const RETRY_DELAYS_MS = [200, 800];

export interface FetchedBlob {
  readonly body: Readable;
  readonly digestHeader?: string;
}

/**
 * One registry and repository as seen by one pull: the auth handshake (anonymous, Basic,
 * Bearer token challenge) is done once, then manifests and blobs are fetched with it.
 */
export class RegistrySession {
  private readonly base: string;
  private authorization?: Promise<string | undefined>;
  readonly label: string;

  constructor(
    private readonly transport: RegistryTransport,
    readonly ref: ImageReference,
    plainHttp: boolean,
    private readonly credentials: BasicCredentials | undefined,
    readonly signal: AbortSignal,
    label?: string,
  ) {
    this.base = `${plainHttp ? 'http' : 'https'}://${registryHost(ref)}`;
    this.label = label ?? `image ${quote(referenceString(ref))}`;
  }

  async getManifest(
    selector: string,
    accept: readonly string[],
    maxBytes: number,
  ): Promise<{ body: Buffer; mediaType: string; digestHeader?: string }> {
    const url = `${this.base}/v2/${this.ref.repository}/manifests/${selector}`;
    const response = await this.get(url, { accept: accept.join(', ') }, `manifest ${selector}`);
    const body = await readLimited(response.body, maxBytes, `${this.label}: manifest ${selector}`);
    return {
      body,
      mediaType: headerValue(response.headers['content-type'])?.split(';')[0]?.trim() ?? '',
      ...digestHeader(response.headers),
    };
  }

  /** A blob's body, streamed; `signal` may outlive this session's caller (a shared download). */
  async getBlob(digest: string, what: string, signal: AbortSignal = this.signal): Promise<FetchedBlob> {
    const url = `${this.base}/v2/${this.ref.repository}/blobs/${digest}`;
    const response = await this.get(url, {}, what, signal);
    return { body: response.body, ...digestHeader(response.headers) };
  }

  private async get(
    url: string,
    headers: Record<string, string>,
    what: string,
    signal: AbortSignal = this.signal,
  ): Promise<{ body: Readable; headers: Record<string, string | string[] | undefined> }> {
    const authorization = await this.authorize();
    const response = await this.send(
      url,
      { ...headers, ...(authorization ? { authorization } : {}) },
      what,
      signal,
    );
    if (response.statusCode === 200) return response;
    throw await this.failure(response, what);
  }

  /** GET with redirects (Authorization only to the same origin) and retries of 429/5xx. */
  private async send(
    url: string,
    headers: Record<string, string>,
    what: string,
    signal: AbortSignal = this.signal,
  ): Promise<{
    statusCode: number;
    body: Readable;
    headers: Record<string, string | string[] | undefined>;
  }> {
    for (let attempt = 0; ; attempt++) {
      let target = new URL(url);
      let sendHeaders = headers;
      for (let hop = 0; ; hop++) {
        assertDialAllowed(target.hostname, 'image registry');
        let response: Dispatcher.ResponseData;
        try {
          response = await request(target, {
            method: 'GET',
            headers: sendHeaders,
            dispatcher: this.transport.dispatcherFor(target),
            signal,
            headersTimeout: 60_000,
            bodyTimeout: 120_000,
          });
        } catch (error) {
          if (signal.aborted) throw signal.reason;
          throw new CdhError(
            'IMAGE_REGISTRY_UNAVAILABLE',
            `${this.label}: ${what}: registry ${target.host} unreachable (${errorText(error)})`,
            { cause: error },
          );
        }
        const location = headerValue(response.headers['location']);
        if (response.statusCode >= 300 && response.statusCode < 400 && location && hop < 5) {
          response.body.resume();
          const next = new URL(location, target);
          if (next.origin !== target.origin) {
            const { authorization: _dropped, ...rest } = sendHeaders;
            sendHeaders = rest;
          }
          target = next;
          continue;
        }
        const retriable = response.statusCode === 429 || response.statusCode >= 500;
        const delay = RETRY_DELAYS_MS[attempt];
        if (retriable && delay !== undefined) {
          response.body.resume();
          await sleep(delay, signal);
          break;
        }
        return response;
      }
    }
  }

  private authorize(): Promise<string | undefined> {
    this.authorization ??= this.handshake();
    return this.authorization;
  }

  private async handshake(): Promise<string | undefined> {
    const ping = await this.send(`${this.base}/v2/`, {}, 'API check');
    ping.body.resume();
    if (ping.statusCode !== 401) return undefined;
    const challenge = parseChallenge(headerValue(ping.headers['www-authenticate']) ?? '');
    const basic = this.credentials
      ? `Basic ${Buffer.from(`${this.credentials.username}:${this.credentials.password}`).toString('base64')}`
      : undefined;
    if (challenge?.scheme !== 'bearer') return basic;
    const realm = challenge.params['realm'];
    if (!realm)
      throw new CdhError('IMAGE_REGISTRY_FAILED', `${this.label}: the Bearer challenge has no realm`);
    let tokenUrl: URL;
    try {
      tokenUrl = new URL(realm);
    } catch {
      throw new CdhError('IMAGE_REGISTRY_FAILED', `${this.label}: bad token realm ${quote(realm)}`);
    }
    if (challenge.params['service']) tokenUrl.searchParams.set('service', challenge.params['service']);
    tokenUrl.searchParams.set('scope', `repository:${this.ref.repository}:pull`);
    const response = await this.send(tokenUrl.href, basic ? { authorization: basic } : {}, 'token request');
    if (response.statusCode === 401 || response.statusCode === 403) {
      response.body.resume();
      throw new CdhError(
        'IMAGE_REGISTRY_DENIED',
        `${this.label}: the token service ${tokenUrl.host} refused the ${basic ? 'credentials' : 'anonymous request'} (HTTP ${response.statusCode})`,
      );
    }
    if (response.statusCode !== 200) throw await this.failure(response, 'token request');
    const body = await readLimited(response.body, 1 << 20, `${this.label}: token`);
    let token: unknown;
    try {
      const parsed = JSON.parse(body.toString('utf8')) as { token?: unknown; access_token?: unknown };
      token = parsed.token ?? parsed.access_token;
    } catch {
      token = undefined;
    }
    if (typeof token !== 'string' || token === '')
      throw new CdhError('IMAGE_REGISTRY_FAILED', `${this.label}: the token service answered no token`);
    return `Bearer ${token}`;
  }

  private async failure(response: { statusCode: number; body: Readable }, what: string): Promise<CdhError> {
    const detail = await registryErrorText(response.body);
    const said = `HTTP ${response.statusCode}${detail ? `, ${detail}` : ''}`;
    const code: ErrorCode =
      response.statusCode === 401 || response.statusCode === 403
        ? 'IMAGE_REGISTRY_DENIED'
        : response.statusCode === 404
          ? 'IMAGE_NOT_FOUND'
          : response.statusCode === 429 || response.statusCode >= 500
            ? 'IMAGE_REGISTRY_UNAVAILABLE'
            : 'IMAGE_REGISTRY_FAILED';
    const why =
      code === 'IMAGE_REGISTRY_DENIED'
        ? this.credentials
          ? 'the registry refused the credentials'
          : 'the registry requires credentials and none are configured'
        : code === 'IMAGE_NOT_FOUND'
          ? 'not found in the registry'
          : 'the registry failed';
    return new CdhError(code, `${this.label}: ${what}: ${why} (${said})`);
  }
}

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

export function parseChallenge(header: string): Challenge | undefined {
  const match = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!match) return undefined;
  const params: Record<string, string> = {};
  const re = /([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
  for (const m of (match[2] ?? '').matchAll(re)) {
    params[(m[1] as string).toLowerCase()] = (m[2] ?? m[3] ?? '').replace(/\\(.)/g, '$1');
  }
  return { scheme: (match[1] as string).toLowerCase(), params };
}

async function registryErrorText(body: Readable): Promise<string> {
  let text: string;
  try {
    text = (await readLimited(body, MAX_ERROR_BODY, 'error', true)).toString('utf8');
  } catch {
    return '';
  }
  try {
    const parsed = JSON.parse(text) as { errors?: Array<{ code?: unknown; message?: unknown }> };
    const first = parsed.errors?.[0];
    if (first && typeof first.code === 'string')
      return `registry error ${first.code}${typeof first.message === 'string' ? `: ${first.message.slice(0, 200)}` : ''}`;
  } catch {
    // not the registry's JSON error
  }
  return '';
}

/** Reads a body up to `max` bytes; more is an error (or, with `truncate`, cut off). */
export async function readLimited(
  body: Readable,
  max: number,
  what: string,
  truncate = false,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    const buf = chunk as Buffer;
    total += buf.length;
    if (total > max) {
      body.destroy();
      if (truncate) break;
      throw new CdhError('IMAGE_MANIFEST_INVALID', `${what}: larger than ${max} bytes`);
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks);
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function digestHeader(headers: Record<string, string | string[] | undefined>): { digestHeader?: string } {
  const value = headerValue(headers['docker-content-digest']);
  return value ? { digestHeader: value.trim() } : {};
}

function errorText(error: unknown): string {
  if (isCdhError(error)) return error.message;
  const e = error as { code?: unknown; message?: unknown; cause?: { code?: unknown; message?: unknown } };
  const code = e.cause?.code ?? e.code;
  const message = e.cause?.message ?? e.message;
  return (
    [code, message]
      .filter((x) => typeof x === 'string' && x !== '')
      .join(': ')
      .slice(0, 200) || 'error'
  );
}
