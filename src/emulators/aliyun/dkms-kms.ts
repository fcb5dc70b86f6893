import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import {
  decodeDkms,
  encodeDkms,
  type DecryptRequest,
  type DkmsMessageName,
  type DkmsMessages,
  type EncryptRequest,
  type GetSecretValueRequest,
} from '../../providers/aliyun/client-key/dkms-messages';

/** What the emulated gateway answers when it refuses (a protobuf `Error` body). */
export interface ErrorAnswer {
  readonly status: number;
  readonly errorCode: string;
  readonly errorMessage: string;
}

export class GatewayError extends Error {
  constructor(readonly answer: ErrorAnswer) {
    super(answer.errorMessage);
  }
}

export function refuse(status: number, errorCode: string, errorMessage: string): never {
  throw new GatewayError({ status, errorCode, errorMessage });
}

export const DKMS_EMULATOR_API_NAMES = ['Encrypt', 'Decrypt', 'GetSecretValue'] as const;
export type DkmsEmulatorApiName = (typeof DKMS_EMULATOR_API_NAMES)[number];

export interface ClientKeyPolicy {
  /** Key ids this client key may use (default: all). */
  readonly allowedKeyIds?: readonly string[];
  /** Secret names this client key may read (default: all). */
  readonly allowedSecretNames?: readonly string[];
}

interface SecretVersion {
  readonly versionId: string;
  readonly data: string;
  readonly stages: Set<string>;
  readonly createTime: string;
}

const GCM_IV_BYTES = 12;
const GCM_TAG_BYTES = 16;
/** The gateway's limit on Encrypt plaintext. */
const MAX_PLAINTEXT_BYTES = 6144;

/**
 * The emulated KMS instance behind the gateway: AES-256-GCM master keys held only here and
 * versioned, staged secrets; answers Encrypt / Decrypt / GetSecretValue as protobuf messages.
 */
export class DkmsKeyStore {
  private readonly masterKeys = new Map<string, Buffer>();
  private readonly secrets = new Map<string, SecretVersion[]>();

  /** Creates a symmetric key (AES-256 master key held only here); returns its id. */
  addKey(keyId = `key-${randomBytes(8).toString('hex')}`): string {
    this.masterKeys.set(keyId, randomBytes(32));
    return keyId;
  }

  /**
   * Adds a version of a secret (created if new). A version marked ACSCurrent takes that stage
   * from the previous current version, which becomes ACSPrevious (as a rotation does).
   */
  putSecretVersion(
    name: string,
    versionId: string,
    data: string,
    stages: readonly string[] = ['ACSCurrent'],
  ): void {
    const versions = this.secrets.get(name) ?? [];
    if (stages.includes('ACSCurrent')) {
      for (const version of versions) {
        if (version.stages.delete('ACSCurrent')) {
          for (const other of versions) other.stages.delete('ACSPrevious');
          version.stages.add('ACSPrevious');
        }
      }
    }
    for (const stage of stages) for (const version of versions) version.stages.delete(stage);
    versions.push({ versionId, data, stages: new Set(stages), createTime: new Date().toISOString() });
    this.secrets.set(name, versions);
  }

  /** The protobuf answer to an authenticated request, or a GatewayError. */
  answer(apiName: DkmsEmulatorApiName, body: Buffer, policy: ClientKeyPolicy, requestId: string): Buffer {
    switch (apiName) {
      case 'Encrypt':
        return this.encrypt(decodeRequest('EncryptRequest', body), policy, requestId);
      case 'Decrypt':
        return this.decrypt(decodeRequest('DecryptRequest', body), policy, requestId);
      case 'GetSecretValue':
        return this.getSecretValue(decodeRequest('GetSecretValueRequest', body), policy, requestId);
    }
  }

  private masterKey(keyId: string, policy: ClientKeyPolicy): Buffer {
    if (!keyId) refuse(400, 'MissingParameter', 'The parameter KeyId is missing.');
    const key = this.masterKeys.get(keyId);
    if (key === undefined) refuse(404, 'Forbidden.KeyNotFound', `The specified Key "${keyId}" is not found.`);
    if (policy.allowedKeyIds !== undefined && !policy.allowedKeyIds.includes(keyId)) {
      refuse(403, 'Forbidden.NoPermission', 'This operation is forbidden by the client key policy.');
    }
    return key;
  }

  private encrypt(request: EncryptRequest, policy: ClientKeyPolicy, requestId: string): Buffer {
    const key = this.masterKey(request.KeyId, policy);
    if (request.Algorithm !== 'AES_GCM')
      refuse(400, 'InvalidParameter', 'The parameter Algorithm is invalid.');
    if (request.Plaintext.length === 0 || request.Plaintext.length > MAX_PLAINTEXT_BYTES) {
      refuse(400, 'InvalidParameter', 'The parameter Plaintext is invalid.');
    }
    if (request.Iv.length !== 0 && request.Iv.length !== GCM_IV_BYTES) {
      refuse(400, 'InvalidParameter', 'The parameter Iv is invalid.');
    }
    const iv = request.Iv.length === GCM_IV_BYTES ? request.Iv : randomBytes(GCM_IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(request.Aad);
    // The blob carries ciphertext and tag; KeyId, Iv and Aad come with the Decrypt request.
    const blob = Buffer.concat([cipher.update(request.Plaintext), cipher.final(), cipher.getAuthTag()]);
    return encodeDkms('EncryptResponse', {
      KeyId: request.KeyId,
      CiphertextBlob: blob,
      Iv: iv,
      RequestId: requestId,
      Algorithm: 'AES_GCM',
      PaddingMode: '',
    });
  }

  private decrypt(request: DecryptRequest, policy: ClientKeyPolicy, requestId: string): Buffer {
    const key = this.masterKey(request.KeyId, policy);
    if (request.Algorithm !== 'AES_GCM')
      refuse(400, 'InvalidParameter', 'The parameter Algorithm is invalid.');
    if (request.Iv.length !== GCM_IV_BYTES) refuse(400, 'InvalidParameter', 'The parameter Iv is invalid.');
    const blob = request.CiphertextBlob;
    if (blob.length <= GCM_TAG_BYTES)
      refuse(400, 'InvalidParameter', 'The parameter CiphertextBlob is invalid.');
    let plaintext: Buffer;
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, request.Iv);
      decipher.setAAD(request.Aad);
      decipher.setAuthTag(blob.subarray(blob.length - GCM_TAG_BYTES));
      plaintext = Buffer.concat([
        decipher.update(blob.subarray(0, blob.length - GCM_TAG_BYTES)),
        decipher.final(),
      ]);
    } catch {
      refuse(400, 'InvalidParameter', 'The parameter CiphertextBlob is invalid: decryption failed.');
    }
    return encodeDkms('DecryptResponse', {
      KeyId: request.KeyId,
      Plaintext: plaintext,
      RequestId: requestId,
      Algorithm: 'AES_GCM',
      PaddingMode: '',
    });
  }

  private getSecretValue(request: GetSecretValueRequest, policy: ClientKeyPolicy, requestId: string): Buffer {
    if (!request.SecretName) refuse(400, 'MissingParameter', 'The parameter SecretName is missing.');
    const versions = this.secrets.get(request.SecretName);
    if (versions === undefined) {
      refuse(404, 'Forbidden.ResourceNotFound', `The secret "${request.SecretName}" is not found.`);
    }
    if (policy.allowedSecretNames !== undefined && !policy.allowedSecretNames.includes(request.SecretName)) {
      refuse(403, 'Forbidden.NoPermission', 'This operation is forbidden by the client key policy.');
    }
    const stage = request.VersionStage || (request.VersionId ? '' : 'ACSCurrent');
    const version = versions.find(
      (candidate) =>
        (!request.VersionId || candidate.versionId === request.VersionId) &&
        (!stage || candidate.stages.has(stage)),
    );
    if (version === undefined) {
      refuse(404, 'Forbidden.ResourceNotFound', 'The specified secret version is not found.');
    }
    return encodeDkms('GetSecretValueResponse', {
      SecretName: request.SecretName,
      SecretType: 'Generic',
      SecretData: version.data,
      SecretDataType: 'text',
      VersionStages: [...version.stages],
      VersionId: version.versionId,
      CreateTime: version.createTime,
      RequestId: requestId,
      ExtendedConfig: request.FetchExtendedConfig ? '{}' : '',
      AutomaticRotation: 'Disabled',
    });
  }
}

function decodeRequest<N extends DkmsMessageName>(name: N, body: Buffer): DkmsMessages[N] {
  try {
    return decodeDkms(name, body);
  } catch {
    refuse(400, 'InvalidParameter', 'The request body is not a valid protobuf message.');
  }
}
