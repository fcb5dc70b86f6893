import type { RuntimeMeasurementEvent, RuntimeMeasurementResult } from '../client/aa-client';
import { TtrpcCallError, type TtrpcCallOptions } from '../client/ttrpc-client';
import { base64UrlProblem } from '../lib/base64';
import {
  ATTESTATION_DISABLED_TEXT,
  badRequest,
  failure,
  json,
  methodNotAllowed,
  notFound,
  octetStream,
  peerFailure,
  RESOURCE_DISABLED_TEXT,
  type RestAnswer,
} from './answers';

/** What `--features` enables: the daemon's resources, the attestation agent's routes, or both. */
export type Feature = 'resource' | 'attestation' | 'all';
export const FEATURES: readonly Feature[] = ['resource', 'attestation', 'all'];

/** The daemon as the REST front uses it (CdhTtrpcClient). */
export interface ResourceSource {
  getResource(resourcePath: string, options?: TtrpcCallOptions): Promise<Buffer>;
}

/** The attestation agent as the REST front uses it (AttestationAgentClient). */
export interface AttestationSource {
  getToken(tokenType: string, options?: TtrpcCallOptions): Promise<Buffer>;
  getEvidence(runtimeData: Uint8Array, options?: TtrpcCallOptions): Promise<Buffer>;
  getAdditionalEvidence(runtimeData: Uint8Array, options?: TtrpcCallOptions): Promise<Buffer>;
  getTeeType(options?: TtrpcCallOptions): Promise<string>;
  getAdditionalTees(options?: TtrpcCallOptions): Promise<string[]>;
  extendRuntimeMeasurement(
    event: RuntimeMeasurementEvent,
    options?: TtrpcCallOptions,
  ): Promise<RuntimeMeasurementResult>;
}

export interface RouterOptions {
  readonly version: string;
  readonly feature: Feature;
  /** Present when the feature includes resources. */
  readonly cdh?: ResourceSource;
  /** Present when the feature includes attestation. */
  readonly aa?: AttestationSource;
  /** Deadline of every call to the daemon or the agent. */
  readonly callTimeoutMs: number;
}

export interface RestRequest {
  readonly method: string;
  /** The request target as sent (`/path?query`). */
  readonly target: string;
  /** The body, at most the server's limit (only POST /aa/aael reads it). */
  readBody(): Promise<Buffer>;
  /** Aborted when the caller goes away. */
  readonly signal: AbortSignal;
}

/** A route's failure that is answered as it is (bad query, bad body, body too large). */
export class RestRequestError extends Error {
  constructor(readonly answer: RestAnswer) {
    super(String(answer.body));
    this.name = 'RestRequestError';
  }
}

const KBS_PREFIX = 'kbs://';

/** Upstream's answers to ExtendRuntimeMeasurement, as JSON. */
const AAEL_ANSWERS: Readonly<Record<RuntimeMeasurementResult, object>> = {
  OK: { success: 'true' },
  NOT_SUPPORTED: { success: 'false', message: 'The platform does not support runtime measurement' },
  NOT_ENABLED: { success: 'false', message: 'Attestation Agent does not enable eventlog recording' },
};

/** ttrpc status codes an agent without GetAdditionalTees answers (Rust ttrpc: NOT_FOUND; Go: UNIMPLEMENTED). */
const METHOD_MISSING_CODES = new Set([5, 12]);

/** The path and the query parameters of a request target; the last of a repeated parameter wins. */
export function splitTarget(target: string): { path: string; query: Map<string, string> } {
  const at = target.indexOf('?');
  const path = at < 0 ? target : target.slice(0, at);
  const query = new Map<string, string>();
  if (at >= 0) for (const [name, value] of new URLSearchParams(target.slice(at + 1))) query.set(name, value);
  return { path, query };
}

/**
 * `runtime_data` as bytes: its UTF-8 text, or with `encoding=base64` the bytes of its
 * base64url (no padding) text; or why it cannot be decoded.
 */
export function decodeRuntimeData(
  value: string,
  encoding: string | undefined,
): { bytes: Buffer } | { problem: string } {
  if (encoding === undefined) return { bytes: Buffer.from(value, 'utf8') };
  if (encoding !== 'base64')
    return { problem: `unsupported runtime_data encoding "${encoding.slice(0, 32)}"` };
  const problem = base64UrlProblem(value);
  if (problem !== undefined)
    return { problem: `runtime_data is not base64url without padding: it ${problem}` };
  return { bytes: Buffer.from(value, 'base64url') };
}

/** Upstream's routes: feature gating, query parameters and answers, plus a 405 for a wrong method. */
export class RestRouter {
  constructor(private readonly options: RouterOptions) {}

  async route(request: RestRequest): Promise<RestAnswer> {
    try {
      return await this.dispatch(request);
    } catch (error) {
      if (error instanceof RestRequestError) return error.answer;
      throw error;
    }
  }

  private async dispatch(request: RestRequest): Promise<RestAnswer> {
    const target = originForm(request.target);
    if (target === undefined) return badRequest('the request target must be a path');
    const { path, query } = splitTarget(target);
    const { method } = request;

    if (path === '/info') return method === 'GET' ? this.info(request) : methodNotAllowed('GET');

    const [root, rest] = splitAtSlash(path, 2) ?? ['', ''];
    if (root === '/aa') {
      const aa = this.options.aa;
      if (!aa) return failure(404, ATTESTATION_DISABLED_TEXT);
      return this.attestation(aa, rest, method, query, request);
    }
    if (root === '/cdh') {
      const cdh = this.options.cdh;
      if (!cdh) return failure(404, RESOURCE_DISABLED_TEXT);
      const [api, resourcePath] = splitAtSlash(rest, 2) ?? ['', ''];
      if (api !== '/resource') return notFound();
      if (method !== 'GET') return methodNotAllowed('GET');
      // The path goes to the daemon as sent (no percent-decoding): the daemon validates it.
      const uri = `${KBS_PREFIX}${resourcePath}`;
      return this.call('CDH', request, async (options) => octetStream(await cdh.getResource(uri, options)));
    }
    return notFound();
  }

  private async info(request: RestRequest): Promise<RestAnswer> {
    const body: { version: string; tee?: string; additional_tees?: string[]; feature: Feature } = {
      version: this.options.version,
      feature: this.options.feature,
    };
    const aa = this.options.aa;
    if (!aa) return json(body);
    return this.call('AA', request, async (options) => {
      const tee = await aa.getTeeType(options);
      const additional = await aa.getAdditionalTees(options).catch((error: unknown) => {
        // An agent older than GetAdditionalTees has none to report.
        if (
          error instanceof TtrpcCallError &&
          error.kind === 'status' &&
          METHOD_MISSING_CODES.has(error.code)
        )
          return [];
        throw error;
      });
      return json({
        version: body.version,
        tee,
        ...(additional.length > 0 ? { additional_tees: additional } : {}),
        feature: body.feature,
      });
    });
  }

  private async attestation(
    aa: AttestationSource,
    route: string,
    method: string,
    query: ReadonlyMap<string, string>,
    request: RestRequest,
  ): Promise<RestAnswer> {
    switch (route) {
      case '/token': {
        if (method !== 'GET') return methodNotAllowed('GET');
        const tokenType = query.get('token_type');
        if (tokenType === undefined) return badRequest('the query parameter token_type is missing');
        return this.call('AA', request, async (options) =>
          octetStream(await aa.getToken(tokenType, options)),
        );
      }
      case '/evidence':
      case '/additional-evidence': {
        if (method !== 'GET') return methodNotAllowed('GET');
        const value = query.get('runtime_data');
        if (value === undefined) return badRequest('the query parameter runtime_data is missing');
        const decoded = decodeRuntimeData(value, query.get('encoding'));
        if ('problem' in decoded) return badRequest(decoded.problem);
        const additional = route === '/additional-evidence';
        return this.call('AA', request, async (options) =>
          octetStream(
            additional
              ? await aa.getAdditionalEvidence(decoded.bytes, options)
              : await aa.getEvidence(decoded.bytes, options),
          ),
        );
      }
      case '/aael': {
        if (method !== 'POST') return methodNotAllowed('POST');
        const event = parseAaelEvent(await request.readBody());
        return this.call('AA', request, async (options) =>
          json(AAEL_ANSWERS[await aa.extendRuntimeMeasurement(event, options)]),
        );
      }
      default:
        return notFound();
    }
  }

  /** One call to the daemon or the agent, bounded by the deadline and by the caller leaving. */
  private async call(
    peer: 'CDH' | 'AA',
    request: RestRequest,
    run: (options: TtrpcCallOptions) => Promise<RestAnswer>,
  ): Promise<RestAnswer> {
    try {
      return await run({ timeoutMs: this.options.callTimeoutMs, signal: request.signal });
    } catch (error) {
      return peerFailure(peer, error);
    }
  }
}

/** `{"domain", "operation", "content"}`, all strings (other members are ignored, as upstream). */
export function parseAaelEvent(body: Buffer): RuntimeMeasurementEvent {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    throw new RestRequestError(badRequest('the AAEL entry is not JSON'));
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new RestRequestError(badRequest('the AAEL entry must be a JSON object'));
  const record = value as Record<string, unknown>;
  const field = (name: string): string => {
    const member = record[name];
    if (typeof member !== 'string')
      throw new RestRequestError(badRequest(`the AAEL entry needs "${name}" as a string`));
    return member;
  };
  return { domain: field('domain'), operation: field('operation'), content: field('content') };
}

/** The path-and-query of a request target: as sent, or out of an absolute-form `http://host/...`. */
export function originForm(target: string): string | undefined {
  if (target.startsWith('/')) return target;
  const authority = /^https?:\/\/[^/?#]*/i.exec(target);
  if (!authority) return undefined;
  const rest = target.slice(authority[0].length);
  return rest.startsWith('/') ? rest : `/${rest}`;
}

/**
 * Splits before the n-th "/" (`/cdh/resource/x`, 2 → `/cdh`, `/resource/x`), or undefined when
 * there are fewer slashes: how upstream takes a path apart.
 */
export function splitAtSlash(path: string, n: number): [string, string] | undefined {
  let at = -1;
  for (let i = 0; i < n; i++) {
    at = path.indexOf('/', at + 1);
    if (at < 0) return undefined;
  }
  return [path.slice(0, at), path.slice(at)];
}
