import type { Agent as HttpsAgent } from 'node:https';
import type { Logger } from 'pino';
import { CdhError, isCdhError } from '../../../errors';
import { assertDialAllowed } from '../../../net-guard';
import type { StsCredentials } from './credential-files';
import { describeSdkFailure, isRetryable, kmsFailureError, type KmsFailure } from './kms-errors';
import { loadOpenApiSdk, type OpenApiCallScope, type OpenApiSdk, type OpenApiSdkClient } from './kms-sdk';
import type { OpenApiEndpoint, SecretVersionSelector } from './settings';
import { abortError, raceSignal } from '../../../lib/abort';
import { DEFAULT_RETRY_POLICY, withRetry, type AttemptOutcome, type RetryPolicy } from '../../../lib/retry';

export { DEFAULT_RETRY_POLICY, type RetryPolicy };

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
    return withRetry<Buffer, KmsFailure>({
      policy: this.retry,
      signal,
      attempt: () => this.attempt(credentials, secretName, selector, signal, operation),
      giveUp: (failure, attempts) =>
        kmsFailureError(failure, {
          label: this.options.label,
          operation,
          endpoint: this.options.endpoint.authority,
          timeoutMs: this.options.timeoutMs,
          attempts,
          secrets: [credentials.accessKeyId, credentials.accessKeySecret, credentials.securityToken],
        }),
      onRetry: (failure, attempt, delay) =>
        this.options.logger?.debug(
          {
            provider: this.options.label,
            attempt,
            kmsCode: failure.kind === 'answer' ? failure.code : failure.reason,
            httpStatus: failure.kind === 'answer' ? failure.httpStatus : undefined,
            requestId: failure.kind === 'answer' ? failure.requestId : undefined,
            retryInMs: Math.round(delay),
          },
          'KMS OpenAPI call failed, retrying',
        ),
    });
  }

  private async attempt(
    credentials: StsCredentials,
    secretName: string,
    selector: SecretVersionSelector,
    signal: AbortSignal,
    operation: string,
  ): Promise<AttemptOutcome<Buffer, KmsFailure>> {
    if (signal.aborted) throw abortError(signal);
    const purpose = `${this.options.label} KMS OpenAPI`;
    assertDialAllowed(this.options.endpoint.host, purpose);
    const scope: OpenApiCallScope = {
      agent: this.options.agent,
      signal,
      expectedHost: this.options.endpoint.host,
      purpose,
      dialled: false,
    };
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
      return { ok: true, value: Buffer.from(answer.secretData, 'utf8') };
    } catch (error) {
      if (signal.aborted) throw abortError(signal);
      if (isCdhError(error)) throw error;
      const failure = describeSdkFailure(error, scope.httpStatus);
      return { ok: false, failure, retryable: isRetryable(failure) };
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
