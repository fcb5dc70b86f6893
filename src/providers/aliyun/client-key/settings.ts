import { checkCredentialId, locateCredentialFile, requireStringSetting } from '../credentials';
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

/** Validates settings; ids are checked here, before any file is opened. */
export function parseClientKeySettings(settings: ProviderSettings): ClientKeySettings {
  const clientKeyId = checkCredentialId(
    requireStringSetting(settings, 'client_key_id', 'client_key'),
    'client_key_id',
  );
  const kmsInstanceId = checkCredentialId(
    requireStringSetting(settings, 'kms_instance_id', 'client_key'),
    'kms_instance_id',
  );
  return { clientKeyId, kmsInstanceId };
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
