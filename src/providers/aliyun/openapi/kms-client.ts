import type { Agent as HttpsAgent } from 'node:https';
import type { Logger } from 'pino';
import { CdhError, isCdhError } from '../../../errors';
import { assertDialAllowed } from '../../../net-guard';
import type { StsCredentials } from './credential-files';
import { describeSdkFailure, isRetryable, kmsFailureError, type KmsFailure } from './kms-errors';
import { loadOpenApiSdk, type OpenApiCallScope, type OpenApiSdk, type OpenApiSdkClient } from './kms-sdk';
import type { OpenApiEndpoint, SecretVersionSelector } from './settings';
import { abortError, raceSignal, sleep } from './signal';

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  readonly maxAttempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { maxAttempts: 4, baseDelayMs: 200, maxDelayMs: 2000 };

/** Exponential backoff with jitter: half the cap fixed, half random. `failures` counts from 1. */
export function backoffDelay(
  policy: RetryPolicy,
  failures: number,
  random: () => number = Math.random,
): number {
  const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (failures - 1));
  return cap / 2 + random() * (cap / 2);
}

export interface OpenApiKmsClientOptions {
  /** Names the provider in messages, e.g. `aliyun (client_type sts_token)`. */
  readonly label: string;
  readonly endpoint: OpenApiEndpoint;
  readonly regionId: string;
  readonly timeoutMs: number;
  readonly agent: HttpsAgent;
  readonly retry?: RetryPolicy;
  readonly logger?: Logger;
  /** Replaces the official SDK (unit tests). */
  readonly sdk?: OpenApiSdk;
}

/** GetSecretValue through the KMS OpenAPI with the official SDK: retries, deadlines, catalogued errors. */
export class OpenApiKmsClient {
  private readonly retry: RetryPolicy;
  private sdkClient?: { readonly credentials: StsCredentials; readonly client: OpenApiSdkClient };

  constructor(private readonly options: OpenApiKmsClientOptions) {
    this.retry = options.retry ?? DEFAULT_RETRY_POLICY;
  }

  async getSecretValue(
    credentials: StsCredentials,
    secretName: string,
    selector: SecretVersionSelector,
    signal: AbortSignal,
  ): Promise<Buffer> {
    const operation = `GetSecretValue of secret ${JSON.stringify(secretName)}${describeSelector(selector)}`;
    const purpose = `${this.options.label} KMS OpenAPI`;
    let failures = 0;
    for (;;) {
      if (signal.aborted) throw abortError(signal);
      assertDialAllowed(this.options.endpoint.host, purpose);
      const scope: OpenApiCallScope = {
        agent: this.options.agent,
        signal,
        expectedHost: this.options.endpoint.host,
        purpose,
        dialled: false,
      };
      let failure: KmsFailure;
      try {
        const client = this.clientFor(credentials);
        const answer = await raceSignal(client.getSecretValue({ secretName, ...selector }, scope), signal);
        if (typeof answer.secretData !== 'string') {
          throw new CdhError(
            'KMS_FAILED',
            `${this.options.label}: ${operation}: the KMS answer has no SecretData` +
              (typeof answer.requestId === 'string' ? ` (RequestId ${answer.requestId})` : ''),
          );
        }
        return Buffer.from(answer.secretData, 'utf8');
      } catch (error) {
        if (signal.aborted) throw abortError(signal);
        if (isCdhError(error)) throw error;
        failure = describeSdkFailure(error, scope.httpStatus);
      }
      failures++;
      if (!isRetryable(failure) || failures >= this.retry.maxAttempts) {
        throw kmsFailureError(failure, {
          label: this.options.label,
          operation,
          endpoint: this.options.endpoint.authority,
          timeoutMs: this.options.timeoutMs,
          attempts: failures,
          secrets: [credentials.accessKeyId, credentials.accessKeySecret, credentials.securityToken],
        });
      }
      const delay = backoffDelay(this.retry, failures);
      this.options.logger?.debug(
        {
          provider: this.options.label,
          attempt: failures,
          kmsCode: failure.kind === 'answer' ? failure.code : failure.reason,
          httpStatus: failure.kind === 'answer' ? failure.httpStatus : undefined,
          requestId: failure.kind === 'answer' ? failure.requestId : undefined,
          retryInMs: Math.round(delay),
        },
        'KMS OpenAPI call failed, retrying',
      );
      await sleep(delay, signal);
    }
  }

  /** Releases the keep-alive sockets. */
  close(): void {
    this.options.agent.destroy();
  }

  /** One SDK client per credential set (STS credentials of a RAM role change on refresh). */
  private clientFor(credentials: StsCredentials): OpenApiSdkClient {
    if (this.sdkClient?.credentials !== credentials) {
      const sdk = this.options.sdk ?? loadOpenApiSdk();
      this.sdkClient = {
        credentials,
        client: sdk.newClient({
          credentials,
          endpoint: this.options.endpoint.authority,
          regionId: this.options.regionId,
          timeoutMs: this.options.timeoutMs,
        }),
      };
    }
    return this.sdkClient.client;
  }
}

function describeSelector(selector: SecretVersionSelector): string {
  const parts = [
    ...(selector.versionId === undefined ? [] : [`version_id ${JSON.stringify(selector.versionId)}`]),
    ...(selector.versionStage === undefined
      ? []
      : [`version_stage ${JSON.stringify(selector.versionStage)}`]),
  ];
  return parts.length === 0 ? '' : ` (${parts.join(', ')})`;
}
