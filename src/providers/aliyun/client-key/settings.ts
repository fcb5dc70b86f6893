import { z } from '../../../lib/zod';
import { ID_PATTERN, locateCredentialFile, MAX_ID_LENGTH } from '../credentials';
import { parseAliyunSettings } from '../settings';
import type { ProviderSettings } from '../../types';

/** provider_settings of `client_type = client_key`, validated. */
export interface ClientKeySettings {
  readonly clientKeyId: string;
  readonly kmsInstanceId: string;
}

/** The three files a client key needs, all directly inside the credential dir. */
export interface ClientKeyFilePaths {
  readonly clientKey: string;
  readonly password: string;
  readonly instanceCa: string;
  /**
   * Files from the credential dir: each must stay inside the directory it is found in, after
   * links. Unset for files the user names on the `secret seal` command line.
   */
  readonly confined?: boolean;
}

const REQUIRED = 'is required and must be a non-empty string';
const ID_RULE = `is not a valid id: only letters, digits and . _ * - are allowed (at most ${MAX_ID_LENGTH}), and ".." is refused`;

/**
 * An id that becomes part of a credential file name. The ids come from the sealed secret, which
 * the untrusted control plane carries, so anything that could leave the credential dir is refused.
 */
const credentialId = z
  .string({ error: REQUIRED })
  .min(1, REQUIRED)
  .max(MAX_ID_LENGTH, ID_RULE)
  .regex(ID_PATTERN, ID_RULE)
  .refine((id) => !id.includes('..'), ID_RULE);

const clientKeySchema = z
  .object({ client_key_id: credentialId, kms_instance_id: credentialId })
  .transform((s): ClientKeySettings => ({ clientKeyId: s.client_key_id, kmsInstanceId: s.kms_instance_id }));

/** Validates settings; ids are checked here, before any file is opened. */
export function parseClientKeySettings(settings: ProviderSettings): ClientKeySettings {
  return parseAliyunSettings(clientKeySchema, settings, 'provider_settings', 'client_key');
}

export function clientKeyFilePaths(credentialDir: string, settings: ClientKeySettings): ClientKeyFilePaths {
  return {
    clientKey: locateCredentialFile(credentialDir, `clientKey_${settings.clientKeyId}.json`),
    password: locateCredentialFile(credentialDir, `password_${settings.clientKeyId}.json`),
    instanceCa: locateCredentialFile(credentialDir, `PrivateKmsCA_${settings.kmsInstanceId}.pem`),
    confined: true,
  };
}

/** The gateway host name: TLS server name, certificate host name and Host header. */
export function instanceHostName(kmsInstanceId: string): string {
  return `${kmsInstanceId}.cryptoservice.kms.aliyuncs.com`;
}
