import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createPrivateKey } from 'node:crypto';
import { join } from 'node:path';
import forge from 'node-forge';
import { createClientKeyProvider } from '../../src/providers/aliyun/client-key';
import type { Encrypter, ProviderInstance } from '../../src/providers/types';
import { sealEnvelope, sealVault, signSealedSecret } from '../../src/secret';
import { signCompact } from '../../src/secret/jws';
import type { SealedSecretPayload } from '../../src/secret/payload';
import { clientKeyConfig, providerContext } from './aliyun-credentials';
import {
  writeClientKeyCredentials,
  type ClientKeyCredentials,
} from '../../src/emulators/aliyun/client-key-files';
import { DkmsEmulator } from '../../src/emulators/aliyun/dkms-gateway';
import { createTestCa } from '../../src/emulators/pki';
import { upstreamJwk } from './sealed-fixtures';

/**
 * Everything the hardening tests need around the aliyun client_key provider: the gateway
 * emulator, a credential dir it accepts, a signing key dir holding the upstream test key, and
 * sealing through the domain code (sealEnvelope with the real provider as Encrypter), which
 * also hands back the data key so tests can look for it where it must not be.
 *
 * Two more KMS instance ids share the client key: one whose CA file is another CA (TLS:
 * unknown issuer) and one the emulator's certificate does not name (TLS: wrong host name).
 */

export const SIGNING_KID = 'signer.json';
export const INSTANCE_ID = 'kst-hardening00000000';
export const WRONG_CA_INSTANCE_ID = 'kst-wrongca0000000000';
export const WRONG_HOST_INSTANCE_ID = 'kst-wronghost00000000';

export interface SealedEnvelope {
  readonly sealed: string;
  /** The data key the emulator wrapped (for leak checks; never send it anywhere). */
  readonly dataKey: Buffer;
  readonly payload: SealedSecretPayload;
}

export interface ClientKeyWorld {
  readonly emulator: DkmsEmulator;
  readonly credentials: ClientKeyCredentials;
  readonly keyId: string;
  /** Holds credentials/ and keys/. */
  readonly dir: string;
  readonly signingKeyDir: string;
  /** The PKCS#12 password and the client key's private key PEM (for leak checks). */
  readonly pkcs12Password: string;
  readonly privateKeyPem: string;
  /** provider_settings for another instance id (TLS failure cases). */
  settingsFor(instanceId: string): Record<string, string>;
  sealEnvelope(plaintext: string | Uint8Array, keyId?: string): Promise<SealedEnvelope>;
  sealVault(name: string, annotations?: Record<string, string>, instanceId?: string): string;
  /** Signs any payload with the upstream test key under SIGNING_KID. */
  sign(payload: object): string;
  /** Signs payload JSON text as it is (duplicate names, odd spacing), under `kid`. */
  signRaw(payloadJson: string, kid?: string): string;
  /** Config file sections (snake_case) for spawnDaemon. */
  daemonConfig(requestTimeoutMs?: number): Record<string, unknown>;
  close(): Promise<void>;
}

export async function startClientKeyWorld(): Promise<ClientKeyWorld> {
  const dir = await mkdtemp(join(tmpdir(), 'cdh-world-'));
  const credentialDir = join(dir, 'credentials');
  const signingKeyDir = join(dir, 'keys');
  await mkdir(credentialDir);
  await mkdir(signingKeyDir);
  const emulator = await DkmsEmulator.start({
    instanceId: INSTANCE_ID,
    serverHostNames: [
      `${INSTANCE_ID}.cryptoservice.kms.aliyuncs.com`,
      `${WRONG_CA_INSTANCE_ID}.cryptoservice.kms.aliyuncs.com`,
    ],
  });
  const credentials = await writeClientKeyCredentials({
    dir: credentialDir,
    caPem: emulator.caPem,
    kmsInstanceId: INSTANCE_ID,
    source: 'forge-aes256',
  });
  emulator.addClientKey(credentials.clientKeyId, credentials.certificatePem);
  const keyId = emulator.addKey('hardening-key');
  await writeFile(
    join(credentialDir, `PrivateKmsCA_${WRONG_CA_INSTANCE_ID}.pem`),
    createTestCa('Some other CA').certPem,
  );
  await writeFile(join(credentialDir, `PrivateKmsCA_${WRONG_HOST_INSTANCE_ID}.pem`), emulator.caPem);
  const testKey = upstreamJwk('test-key.json');
  const { d: _private, ...publicJwk } = testKey;
  await writeFile(join(signingKeyDir, SIGNING_KID), JSON.stringify(publicJwk));

  const { password, privateKeyPem } = readClientKeySecrets(credentials);
  const config = clientKeyConfig(emulator, credentialDir);
  const sealer: ProviderInstance = await createClientKeyProvider(
    credentials.providerSettings,
    providerContext(config),
  );
  const sign = (payload: object): string =>
    signSealedSecret(payload as SealedSecretPayload, testKey, SIGNING_KID);
  const settingsFor = (instanceId: string): Record<string, string> => ({
    ...credentials.providerSettings,
    kms_instance_id: instanceId,
  });

  return {
    emulator,
    credentials,
    keyId,
    dir,
    signingKeyDir,
    pkcs12Password: password,
    privateKeyPem,
    settingsFor,
    async sealEnvelope(plaintext, sealKeyId = keyId) {
      const inner = sealer.encrypter as Encrypter;
      let dataKey = Buffer.alloc(0);
      // The domain's sealEnvelope picks a random data key and wipes it; keep a copy for leak checks.
      const capturing: Encrypter = {
        encrypt(key, id, ctx) {
          dataKey = Buffer.from(key);
          return inner.encrypt(key, id, ctx);
        },
      };
      const payload = await sealEnvelope({
        encrypter: capturing,
        provider: 'aliyun',
        providerSettings: credentials.providerSettings,
        keyId: sealKeyId,
        plaintext: Buffer.from(plaintext),
      });
      return { sealed: sign(payload), dataKey, payload };
    },
    sealVault(name, annotations = {}, instanceId = INSTANCE_ID) {
      return sign(
        sealVault({ provider: 'aliyun', name, providerSettings: settingsFor(instanceId), annotations }),
      );
    },
    sign,
    signRaw(payloadJson, kid = SIGNING_KID) {
      return signCompact(payloadJson, createPrivateKey({ key: testKey, format: 'jwk' }), kid);
    },
    daemonConfig(requestTimeoutMs = 5000) {
      return {
        sealed_secret: { signing_key_dir: signingKeyDir },
        aliyun: {
          credential_dir: credentialDir,
          dkms_connect_to: emulator.connectTo,
          request_timeout_ms: requestTimeoutMs,
        },
      };
    },
    async close() {
      await sealer.close?.();
      await emulator.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The password and private key inside the credential files, read independently of src/. */
function readClientKeySecrets(credentials: ClientKeyCredentials): {
  password: string;
  privateKeyPem: string;
} {
  const password = (
    JSON.parse(readFileSync(credentials.paths.password, 'utf8')) as { ClientKeyPassword: string }
  ).ClientKeyPassword;
  const file = JSON.parse(readFileSync(credentials.paths.clientKey, 'utf8')) as { PrivateKeyData: string };
  const der = Buffer.from(file.PrivateKeyData, 'base64').toString('binary');
  const p12 = forge.pkcs12.pkcs12FromAsn1(forge.asn1.fromDer(der), password);
  const bagType = forge.pki.oids['pkcs8ShroudedKeyBag'] as string;
  const key = p12.getBags({ bagType })[bagType]?.[0]?.key;
  if (!key) throw new Error('the client key PKCS#12 has no private key');
  return { password, privateKeyPem: forge.pki.privateKeyToPem(key) };
}
