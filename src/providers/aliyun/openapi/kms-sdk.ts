import { AsyncLocalStorage } from 'node:async_hooks';
import type { IncomingMessage } from 'node:http';
import type { Agent as HttpsAgent, RequestOptions } from 'node:https';
import { CdhError } from '../../../errors';
import { assertDialAllowed } from '../../../net-guard';
import type { StsCredentials } from './credential-files';

/*
 * The official SDK (`@alicloud/kms20160120` 1.x on `@alicloud/rpc-client`) builds, signs and
 * sends the request and turns JSON error bodies into errors. What it cannot do: its
 * `doRequest` copies only timeouts and proxies out of RuntimeOptions, so neither a CA bundle
 * nor an https.Agent nor an AbortSignal reaches the transport (`@alicloud/tea-typescript`
 * → `httpx.request`). `httpx.request` does honour `agent` and `beforeRequest`, so we wrap it
 * once: inside a call of ours (an AsyncLocalStorage scope) the request gets our agent (keep-alive,
 * system roots + openapi_ca_file) and the caller's signal; outside such a scope it is untouched.
 * The wrapper also applies the loopback guard and pins the host. This module is the only code
 * that knows the SDK's internals; kms-sdk-transport.test.ts fails if an SDK update stops
 * sending its requests through the wrapper.
 */

type KmsModule = typeof import('@alicloud/kms20160120');
type RpcModule = typeof import('@alicloud/rpc-client');
type TeaUtilModule = typeof import('@alicloud/tea-util');
type KmsClient = InstanceType<KmsModule['default']>;

interface HttpxOptions {
  agent?: unknown;
  beforeRequest?: (options: RequestOptions) => RequestOptions;
  [option: string]: unknown;
}

interface HttpxModule {
  request: (url: string, options?: HttpxOptions) => Promise<IncomingMessage>;
  [SCOPED_TRANSPORT]?: true;
}

const SCOPED_TRANSPORT = Symbol.for('confidential-data-hub.openapi-scoped-transport');

/** What one SDK call may use, and what it reports back. */
export interface OpenApiCallScope {
  readonly agent: HttpsAgent;
  readonly signal: AbortSignal;
  /** The only host this call may dial (the resolved OpenAPI endpoint). */
  readonly expectedHost: string;
  /** Names the caller in net-guard messages. */
  readonly purpose: string;
  /** Set when the transport was reached through our scope. */
  dialled: boolean;
  /** HTTP status of the last answer, also when its body was not JSON. */
  httpStatus?: number;
}

export interface SdkClientOptions {
  readonly credentials: StsCredentials;
  /** `host[:port]` of the OpenAPI. */
  readonly endpoint: string;
  readonly regionId: string;
  readonly timeoutMs: number;
}

export interface SdkSecretRequest {
  readonly secretName: string;
  readonly versionStage?: string;
  readonly versionId?: string;
}

export interface SdkSecretAnswer {
  readonly secretData: unknown;
  readonly requestId: unknown;
}

/** The part of the SDK this provider uses. */
export interface OpenApiSdk {
  newClient(options: SdkClientOptions): OpenApiSdkClient;
}

export interface OpenApiSdkClient {
  getSecretValue(request: SdkSecretRequest, scope: OpenApiCallScope): Promise<SdkSecretAnswer>;
}

const callScopes = new AsyncLocalStorage<OpenApiCallScope>();
let loaded: OpenApiSdk | undefined;

/** Loads the SDK on first use (its require is costly: docs/performance.md, "Measured costs behind the code"). */
export function loadOpenApiSdk(): OpenApiSdk {
  loaded ??= load();
  return loaded;
}

interface SdkModules {
  readonly kms: KmsModule;
  readonly rpc: RpcModule;
  readonly teaUtil: TeaUtilModule;
  readonly httpx: HttpxModule;
}

function load(): OpenApiSdk {
  const modules = requireSdk();
  installScopedTransport(modules.httpx);
  const Request = extendedGetSecretValueRequest(modules.kms);
  return { newClient: (options) => newSdkClient(modules, Request, options) };
}

function requireSdk(): SdkModules {
  try {
    // Required here, at first use (not at start-up). The packages are resolved from here as
    // the SDK resolves them from its own files: with one copy of each installed (npm dedupes
    // them; the bundle holds one), the httpx wrapped below is the one the SDK calls, and
    // `scope.dialled` catches a layout where it is not.
    /* eslint-disable @typescript-eslint/no-require-imports */
    return {
      kms: require('@alicloud/kms20160120') as KmsModule,
      rpc: require('@alicloud/rpc-client') as RpcModule,
      teaUtil: require('@alicloud/tea-util') as TeaUtilModule,
      httpx: require('httpx') as HttpxModule,
    };
    /* eslint-enable @typescript-eslint/no-require-imports */
  } catch (error) {
    throw new CdhError('INTERNAL', 'the Alibaba Cloud KMS SDK (@alicloud/kms20160120) cannot be loaded', {
      cause: error,
    });
  }
}

type GetSecretValueRequestClass = ReturnType<typeof extendedGetSecretValueRequest>;

/**
 * SDK 1.2.0's request model lacks FetchExtendedConfig, which upstream sends; the model's
 * `names()` decide which fields become query parameters, so extend them.
 */
function extendedGetSecretValueRequest(kms: KmsModule) {
  return class GetSecretValueWithExtendedConfig extends kms.GetSecretValueRequest {
    declare fetchExtendedConfig?: boolean;
    static override names(): { [key: string]: string } {
      return { ...super.names(), fetchExtendedConfig: 'FetchExtendedConfig' };
    }
    static override types(): ReturnType<typeof kms.GetSecretValueRequest.types> {
      return { ...super.types(), fetchExtendedConfig: 'boolean' };
    }
  };
}

function newSdkClient(
  { kms, rpc, teaUtil }: SdkModules,
  Request: GetSecretValueRequestClass,
  options: SdkClientOptions,
): OpenApiSdkClient {
  const client: KmsClient = new kms.default(
    new rpc.Config({
      accessKeyId: options.credentials.accessKeyId,
      accessKeySecret: options.credentials.accessKeySecret,
      securityToken: options.credentials.securityToken,
      endpoint: options.endpoint,
      regionId: options.regionId,
      protocol: 'https',
      readTimeout: options.timeoutMs,
      connectTimeout: options.timeoutMs,
      userAgent: 'confidential-data-hub',
    }),
  );
  return {
    async getSecretValue(request, scope) {
      const sdkRequest = new Request({
        secretName: request.secretName,
        versionStage: request.versionStage,
        versionId: request.versionId,
        fetchExtendedConfig: true,
      });
      const runtime = new teaUtil.RuntimeOptions({
        autoretry: false,
        readTimeout: options.timeoutMs,
        connectTimeout: options.timeoutMs,
      });
      const answer = await callScopes.run(scope, () => client.getSecretValueEx(sdkRequest, runtime));
      if (!scope.dialled) {
        // The SDK no longer goes through the transport we wrap: our CA and signal were not used.
        throw new CdhError('INTERNAL', 'the KMS SDK bypassed the scoped transport (SDK layout changed?)');
      }
      return { secretData: answer.secretData, requestId: answer.requestId };
    },
  };
}

function installScopedTransport(httpx: HttpxModule): void {
  if (typeof httpx.request !== 'function') {
    throw new CdhError('INTERNAL', 'the KMS SDK transport (httpx.request) is not where it is expected');
  }
  if (httpx[SCOPED_TRANSPORT]) return;
  const original = httpx.request;
  httpx.request = (url: string, options: HttpxOptions = {}): Promise<IncomingMessage> => {
    const scope = callScopes.getStore();
    if (scope === undefined) return original(url, options);
    const host = new URL(url).hostname;
    assertDialAllowed(host, scope.purpose);
    if (host !== scope.expectedHost) {
      return Promise.reject(
        new CdhError('INTERNAL', `the KMS SDK tried to reach ${host} instead of ${scope.expectedHost}`),
      );
    }
    scope.dialled = true;
    const before = options.beforeRequest;
    return original(url, {
      ...options,
      agent: scope.agent,
      beforeRequest: (request: RequestOptions): RequestOptions => ({
        ...(before ? before(request) : request),
        signal: scope.signal,
      }),
    }).then((response) => {
      scope.httpStatus = response.statusCode;
      return response;
    });
  };
  httpx[SCOPED_TRANSPORT] = true;
}
