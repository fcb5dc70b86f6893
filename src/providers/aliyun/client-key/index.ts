import type { Logger } from 'pino';
import { CdhError } from '../../../errors';
import type {
  Annotations,
  CallContext,
  Decrypter,
  Encrypter,
  Getter,
  ProviderContext,
  ProviderInstance,
  ProviderSettings,
} from '../../types';
import type { AliyunSection } from '..';
import { quoteUntrusted } from '../../../lib/untrusted';
import { clientKeyFilesFingerprint, loadClientKey, type LoadedClientKey } from './credential-files';
import {
  decodeDkms,
  encodeDkms,
  type DkmsMessageInput,
  type DkmsMessageName,
  type DkmsMessages,
} from './dkms-messages';
import { DkmsGatewayClient, type RetryPolicy } from './gateway-client';
import type { DkmsApiName } from './request-signing';
import {
  clientKeyFilePaths,
  instanceHostName,
  parseClientKeySettings,
  type ClientKeyFilePaths,
  type ClientKeySettings,
} from './settings';
import { decodeStandardBase64 } from '../../../lib/base64';
import { secretVersionSelector } from '../settings';

export { parseClientKeySettings } from './settings';

const AES_GCM = 'AES_GCM';
/** The gateway's AES_GCM takes a 12-byte IV; anything else is refused before a call is made. */
const AES_GCM_IV_BYTES = 12;

/** Knobs for tests; production uses the defaults. */
export interface ClientKeyProviderOptions {
  readonly retry?: RetryPolicy;
}

/**
 * `aliyun` with `client_type = client_key`: the KMS instance's dedicated gateway, reached
 * with an RSA client key. Settings are validated (ids before any file is opened), the
 * credential files are loaded once, and every call re-checks the files' fingerprints so a
 * replaced key, password or CA takes effect at the next call.
 */
export async function createClientKeyProvider(
  settings: ProviderSettings,
  ctx: ProviderContext<AliyunSection>,
  options: ClientKeyProviderOptions = {},
): Promise<ProviderInstance> {
  const parsed = parseClientKeySettings(settings);
  return openSession(parsed, clientKeyFilePaths(ctx.config.aliyun.credentialDir, parsed), ctx, options);
}

/**
 * The same provider from explicitly named files (the `secret seal ... ali` flags), instead
 * of the credential dir's naming convention.
 */
export async function openClientKeyProvider(
  settings: ProviderSettings,
  paths: ClientKeyFilePaths,
  ctx: ProviderContext<AliyunSection>,
  options: ClientKeyProviderOptions = {},
): Promise<ProviderInstance> {
  return openSession(parseClientKeySettings(settings), paths, ctx, options);
}

async function openSession(
  settings: ClientKeySettings,
  paths: ClientKeyFilePaths,
  ctx: ProviderContext<AliyunSection>,
  options: ClientKeyProviderOptions,
): Promise<ProviderInstance> {
  const session = new ClientKeySession(settings, paths, ctx, options);
  await session.start();
  return session.instance();
}

interface ActiveClient {
  readonly loaded: LoadedClientKey;
  readonly gateway: DkmsGatewayClient;
}

class ClientKeySession implements Decrypter, Encrypter, Getter {
  readonly label: string;
  private active: ActiveClient | undefined;
  private reloading: Promise<ActiveClient> | undefined;
  private closed = false;
  private readonly logger: Logger;

  constructor(
    private readonly settings: ClientKeySettings,
    private readonly paths: ClientKeyFilePaths,
    private readonly ctx: ProviderContext<AliyunSection>,
    private readonly options: ClientKeyProviderOptions,
  ) {
    this.label =
      `aliyun client_key (kms_instance_id ${settings.kmsInstanceId}, ` +
      `client_key_id ${settings.clientKeyId})`;
    this.logger = ctx.logger.child({
      provider: 'aliyun',
      clientType: 'client_key',
      kmsInstanceId: settings.kmsInstanceId,
      clientKeyId: settings.clientKeyId,
    });
  }

  async start(): Promise<void> {
    this.active = await this.build();
  }

  instance(): ProviderInstance {
    return {
      label: 'aliyun (client_type client_key)',
      decrypter: this,
      encrypter: this,
      getter: this,
      close: () => this.close(),
    };
  }

  async decrypt(
    ciphertext: Uint8Array,
    keyId: string,
    annotations: Annotations,
    ctx: CallContext,
  ): Promise<Buffer> {
    const iv = decodeIvAnnotation(annotations);
    const response = await this.exchange(
      'Decrypt',
      'DecryptRequest',
      { CiphertextBlob: ciphertext, KeyId: keyId, Algorithm: AES_GCM, Iv: iv, Aad: Buffer.alloc(0) },
      'DecryptResponse',
      ctx,
      `Decrypt with key ${quoteUntrusted(keyId)}`,
    );
    return response.Plaintext;
  }

  async encrypt(
    plaintext: Uint8Array,
    keyId: string,
    ctx: CallContext,
  ): Promise<{ ciphertext: Buffer; annotations: Record<string, string> }> {
    const subject = `Encrypt with key ${quoteUntrusted(keyId)}`;
    const response = await this.exchange(
      'Encrypt',
      'EncryptRequest',
      { KeyId: keyId, Plaintext: plaintext, Algorithm: AES_GCM, Iv: Buffer.alloc(0), Aad: Buffer.alloc(0) },
      'EncryptResponse',
      ctx,
      subject,
    );
    if (response.CiphertextBlob.length === 0 || response.Iv.length === 0) {
      throw new CdhError(
        'KMS_FAILED',
        `${this.label}: ${subject}: the KMS answer has no CiphertextBlob or no Iv` +
          (response.RequestId ? ` (RequestId ${response.RequestId})` : ''),
      );
    }
    return { ciphertext: response.CiphertextBlob, annotations: { iv: response.Iv.toString('base64') } };
  }

  async getSecret(name: string, annotations: Annotations, ctx: CallContext): Promise<Buffer> {
    const { versionStage = '', versionId = '' } = secretVersionSelector(annotations, 'client_key');
    const response = await this.exchange(
      'GetSecretValue',
      'GetSecretValueRequest',
      { SecretName: name, VersionStage: versionStage, VersionId: versionId, FetchExtendedConfig: true },
      'GetSecretValueResponse',
      ctx,
      `GetSecretValue of secret ${quoteUntrusted(name)}` +
        (versionId ? ` version_id ${quoteUntrusted(versionId)}` : '') +
        (versionStage ? ` version_stage ${quoteUntrusted(versionStage)}` : ''),
    );
    return Buffer.from(response.SecretData, 'utf8');
  }

  async close(): Promise<void> {
    this.closed = true;
    this.active?.gateway.close();
    this.active = undefined;
  }

  private async exchange<Req extends DkmsMessageName, Res extends DkmsMessageName>(
    api: DkmsApiName,
    requestType: Req,
    request: DkmsMessageInput<Req>,
    responseType: Res,
    ctx: CallContext,
    subject: string,
  ): Promise<DkmsMessages[Res]> {
    const client = await this.current();
    const body = encodeDkms(requestType, request);
    let answer: Buffer;
    try {
      answer = await client.gateway.call(api, body, ctx, subject);
    } finally {
      if (api === 'Encrypt') body.fill(0);
    }
    try {
      return decodeDkms(responseType, answer);
    } catch (error) {
      throw new CdhError('KMS_FAILED', `${this.label}: ${subject}: the KMS answer is not a ${responseType}`, {
        cause: error,
      });
    }
  }

  /** The client for the files as they are now: rebuilt when a fingerprint changed. */
  private async current(): Promise<ActiveClient> {
    if (this.closed) throw new CdhError('SHUTTING_DOWN', `${this.label} is closed`);
    if (this.reloading !== undefined) return this.reloading;
    const fingerprint = clientKeyFilesFingerprint(this.paths);
    const active = this.active;
    if (active !== undefined && active.loaded.fingerprint === fingerprint) return active;
    if (this.reloading !== undefined) return this.reloading;

    this.logger.info('aliyun client_key: credential files changed; reloading the client key');
    const reloading = this.build().then((next) => {
      const previous = this.active;
      this.active = next;
      previous?.gateway.retire();
      return next;
    });
    this.reloading = reloading;
    try {
      return await reloading;
    } finally {
      if (this.reloading === reloading) this.reloading = undefined;
    }
  }

  private async build(): Promise<ActiveClient> {
    const loaded = await loadClientKey(this.paths);
    if (loaded.clientKeyId !== this.settings.clientKeyId) {
      this.logger.warn(
        { fileKeyId: loaded.clientKeyId },
        'aliyun client_key: KeyId in the client key file differs from client_key_id; using the file KeyId',
      );
    }
    const config = this.ctx.config.aliyun;
    const gateway = new DkmsGatewayClient({
      hostName: instanceHostName(this.settings.kmsInstanceId),
      caPem: loaded.caPem,
      caFile: this.paths.instanceCa,
      connectTo: config.dkmsConnectTo,
      requestTimeoutMs: config.requestTimeoutMs,
      identity: { clientKeyId: loaded.clientKeyId, privateKey: loaded.material.privateKey },
      label: this.label,
      logger: this.logger,
      ...(this.options.retry ? { retry: this.options.retry } : {}),
    });
    return { loaded, gateway };
  }
}

/** `annotations.iv`: standard base64 (padded), decoded strictly. */
function decodeIvAnnotation(annotations: Annotations): Buffer {
  const value: unknown = annotations['iv'];
  if (value === undefined || value === null || value === '') {
    throw new CdhError(
      'PROVIDER_SETTINGS_INVALID',
      'aliyun annotations.iv is required to decrypt with client_type client_key (it is missing)',
    );
  }
  if (typeof value !== 'string') {
    throw new CdhError(
      'PROVIDER_SETTINGS_INVALID',
      `aliyun annotations.iv must be standard base64 (got ${quoteUntrusted(value)})`,
    );
  }
  const iv = decodeStandardBase64(value, 'aliyun annotations.iv', 'PROVIDER_SETTINGS_INVALID');
  if (iv.length !== AES_GCM_IV_BYTES) {
    throw new CdhError(
      'PROVIDER_SETTINGS_INVALID',
      `aliyun annotations.iv is ${iv.length} bytes; ${AES_GCM} at the KMS takes a ${AES_GCM_IV_BYTES}-byte iv`,
    );
  }
  return iv;
}
