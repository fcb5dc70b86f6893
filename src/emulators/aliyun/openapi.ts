import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createTestCa, type ServerCert, type TestCa } from '../pki';
import { listenOnLoopback } from '../listen';
import { DelayedActions } from '../delayed-actions';
import { apiError, isApiError, RpcAuthenticator, type EmulatorCredential } from './openapi-auth';

export { percentEncode, rpcStringToSign, type EmulatorCredential } from './openapi-auth';

/**
 * An Alibaba Cloud KMS OpenAPI (RPC style, version 2016-01-20) for tests: HTTPS on 127.0.0.1,
 * checks what the real service checks before answering (HMAC-SHA1 signature version 1.0,
 * known AccessKeyId, SecurityToken, timestamp skew, nonce reuse) and serves GetSecretValue.
 * Written from the public protocol description, not from the SDK.
 */

export interface SecretVersionSpec {
  readonly versionId: string;
  readonly data: string;
  /** Default: the last version of a secret is ACSCurrent. */
  readonly stages?: readonly string[];
  readonly dataType?: 'text' | 'binary';
}

export interface OpenApiEmulatorOptions {
  readonly ca?: TestCa;
  /** A certificate issued by `ca` for localhost and 127.0.0.1 (saves a key generation). */
  readonly serverCert?: ServerCert;
  readonly credentials?: readonly EmulatorCredential[];
  /** Allowed distance between the request's Timestamp and the emulator's clock (default 15 min). */
  readonly maxClockSkewMs?: number;
}

/** One request as the emulator saw it (no key material). */
export interface RecordedCall {
  readonly action: string | undefined;
  readonly accessKeyId: string | undefined;
  readonly params: Readonly<Record<string, string>>;
  readonly host: string | undefined;
  readonly status: number;
  readonly code?: string;
}

export interface OpenApiCounters {
  requests: number;
  getSecretValue: number;
  succeeded: number;
  rejected: number;
  injectedFaults: number;
  /** Delayed answers whose client hung up first. */
  abandoned: number;
}

const HIDDEN_PARAMETERS = new Set(['Signature', 'SecurityToken', 'AccessKeyId']);

export class OpenApiEmulator {
  readonly ca: TestCa;
  readonly counters: OpenApiCounters = {
    requests: 0,
    getSecretValue: 0,
    succeeded: 0,
    rejected: 0,
    injectedFaults: 0,
    abandoned: 0,
  };
  readonly calls: RecordedCall[] = [];
  /** Skew applied to the emulator's clock (tests of the timestamp check). */
  clockOffsetMs = 0;
  /** Delay before every answer (deadline and cancellation tests). */
  answerDelayMs = 0;

  private readonly credentials = new Map<string, EmulatorCredential>();
  private readonly secrets = new Map<string, SecretVersionSpec[]>();
  private readonly delayed = new DelayedActions();
  private readonly auth: RpcAuthenticator;
  private faults: { remaining: number; status: number } = { remaining: 0, status: 503 };

  private constructor(
    private readonly server: Server,
    ca: TestCa,
    options: OpenApiEmulatorOptions,
  ) {
    this.ca = ca;
    this.auth = new RpcAuthenticator(this.credentials, options.maxClockSkewMs ?? 15 * 60 * 1000, () =>
      this.now(),
    );
    for (const credential of options.credentials ?? []) this.addCredential(credential);
  }

  static async start(options: OpenApiEmulatorOptions = {}): Promise<OpenApiEmulator> {
    const ca = options.ca ?? createTestCa('OpenAPI emulator CA');
    const cert = options.serverCert ?? ca.issueServerCert(['localhost'], { ipAddresses: ['127.0.0.1'] });
    const server = createServer({ key: cert.keyPem, cert: cert.chainPem });
    const emulator = new OpenApiEmulator(server, ca, options);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => emulator.handle(req, res));
    await listenOnLoopback(server);
    return emulator;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** `host:port`, what openapi_endpoint takes. */
  get endpoint(): string {
    return `127.0.0.1:${this.port}`;
  }

  get caPem(): string {
    return this.ca.certPem;
  }

  addCredential(credential: EmulatorCredential): void {
    this.credentials.set(credential.accessKeyId, credential);
  }

  /** Replaces the secret's versions. */
  putSecret(name: string, versions: readonly SecretVersionSpec[]): void {
    const last = versions.length - 1;
    this.secrets.set(
      name,
      versions.map((version, index) => ({
        ...version,
        stages: version.stages ?? (index === last ? ['ACSCurrent'] : []),
      })),
    );
  }

  /** The next `count` requests are answered `status` (429 Throttling or 5xx) before any other check. */
  injectFaults(count: number, status: 429 | 500 | 502 | 503): void {
    this.faults = { remaining: count, status };
  }

  resetCounters(): void {
    for (const key of Object.keys(this.counters) as Array<keyof OpenApiCounters>) this.counters[key] = 0;
    this.calls.length = 0;
  }

  async close(): Promise<void> {
    this.delayed.cancelAll();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const params = new URLSearchParams(new URL(req.url ?? '/', 'https://emulator').search);
      if ((req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
        for (const [key, value] of new URLSearchParams(Buffer.concat(chunks).toString('utf8')))
          params.append(key, value);
      }
      const flat: Record<string, string> = {};
      for (const [key, value] of params) flat[key] = value;
      this.counters.requests++;
      let status = 200;
      let code: string | undefined;
      let body: Record<string, unknown>;
      try {
        body = this.answer(req.method ?? 'GET', flat);
        this.counters.succeeded++;
      } catch (error) {
        if (!isApiError(error)) throw error;
        status = error.status;
        code = error.code;
        this.counters.rejected++;
        body = {
          RequestId: requestId(),
          HostId: req.headers.host ?? 'kms.aliyuncs.com',
          Code: error.code,
          Message: error.message,
          Recommend: `https://api.aliyun.com/troubleshoot?q=${encodeURIComponent(error.code)}`,
        };
      }
      const visible = Object.fromEntries(Object.entries(flat).filter(([key]) => !HIDDEN_PARAMETERS.has(key)));
      this.calls.push({
        action: flat['Action'],
        accessKeyId: flat['AccessKeyId'],
        params: visible,
        host: req.headers.host,
        status,
        ...(code === undefined ? {} : { code }),
      });
      const payload = JSON.stringify(body);
      const send = (): void => {
        res.writeHead(status, { 'content-type': 'application/json;charset=utf-8' });
        res.end(payload);
      };
      if (this.answerDelayMs > 0)
        this.delayed.later(res, send, this.answerDelayMs, () => this.counters.abandoned++);
      else send();
    });
  }

  private answer(method: string, params: Record<string, string>): Record<string, unknown> {
    if (this.faults.remaining > 0) {
      this.faults.remaining--;
      this.counters.injectedFaults++;
      throw this.faults.status === 429
        ? apiError(429, 'Throttling', 'Request was denied due to request throttling.')
        : apiError(
            this.faults.status,
            'ServiceUnavailable',
            'The request has failed due to a temporary failure of the server.',
          );
    }
    this.auth.authenticate(method, params);

    switch (params['Action']) {
      case 'GetSecretValue':
        this.counters.getSecretValue++;
        return this.getSecretValue(params);
      default:
        throw apiError(400, 'InvalidAction', `Specified action ${params['Action']} is not supported.`);
    }
  }

  private getSecretValue(params: Record<string, string>): Record<string, unknown> {
    const name = params['SecretName'];
    if (name === undefined || name === '') {
      throw apiError(400, 'MissingSecretName', 'SecretName is mandatory for this action.');
    }
    const versions = this.secrets.get(name);
    const versionId = params['VersionId'] ?? '';
    const stage = params['VersionStage'] ?? '';
    const notFound = apiError(404, 'Forbidden.ResourceNotFound', 'The resource not exists.');
    if (versions === undefined) throw notFound;
    let version: SecretVersionSpec | undefined;
    if (versionId !== '') {
      version = versions.find((v) => v.versionId === versionId);
      if (version !== undefined && stage !== '' && !(version.stages ?? []).includes(stage))
        version = undefined;
    } else {
      const wanted = stage === '' ? 'ACSCurrent' : stage;
      version = versions.find((v) => (v.stages ?? []).includes(wanted));
    }
    if (version === undefined) throw notFound;
    return {
      RequestId: requestId(),
      SecretName: name,
      SecretType: 'Generic',
      VersionId: version.versionId,
      CreateTime: '2024-01-01T00:00:00Z',
      SecretData: version.data,
      SecretDataType: version.dataType ?? 'text',
      VersionStages: { VersionStage: [...(version.stages ?? [])] },
      ...(params['FetchExtendedConfig'] === 'true' ? { AutomaticRotation: 'Disabled' } : {}),
    };
  }

  private now(): number {
    return Date.now() + this.clockOffsetMs;
  }
}

function requestId(): string {
  return randomUUID().toUpperCase();
}
