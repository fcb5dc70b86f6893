import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { promises as fs, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import forge from 'node-forge';
import { defaultConfig, type CdhConfig } from '../../src/config/types';
import { silentLogger } from '../../src/log';
import { PACKAGE_ROOT } from '../../src/package-info';
import type { ProviderContext } from '../../src/providers/types';
import type { DkmsEmulator } from './dkms-emulator';

/**
 * Writes a complete client_key credential dir for tests: clientKey_<id>.json (PKCS#12),
 * password_<id>.json (console JSON or bare text) and PrivateKmsCA_<instance>.pem.
 */

/** Id of the real Alibaba-issued client key kept in test/fixtures/vectors/aliyun-client-key/. */
export const VECTOR_CLIENT_KEY_ID = 'KAAP.vector-0001';

/** test/fixtures/vectors/ of this checkout (found from src or dist). */
export function vectorsDir(): string {
  return path.join(PACKAGE_ROOT, 'test', 'fixtures', 'vectors');
}

function vectorDir(): string {
  return path.join(vectorsDir(), 'aliyun-client-key');
}

export type ClientKeySource =
  /** The real Alibaba-issued vector: RC2-40 certificate bag, 3DES key bag, SHA-1 MAC. */
  | 'vector'
  /** A fresh key, PKCS#12 by node-forge with AES-256 (PBES2) key bag. */
  | 'forge-aes256'
  /** A fresh key, PKCS#12 by `openssl pkcs12 -export` with OpenSSL 3 defaults (PBES2/AES-256-CBC/SHA-256 MAC). */
  | 'openssl-default';

export interface ClientKeyCredentialOptions {
  /** Credential dir to write into (default: a fresh temp dir). */
  readonly dir?: string;
  readonly source?: ClientKeySource;
  readonly passwordForm?: 'json' | 'text';
  /** PEM written as PrivateKmsCA_<instance>.pem (usually the emulator's CA). */
  readonly caPem: string;
  readonly kmsInstanceId?: string;
  /** For generated keys (default: a random KAAP.* id); the vector's id is fixed. */
  readonly clientKeyId?: string;
}

export interface ClientKeyCredentials {
  readonly dir: string;
  readonly clientKeyId: string;
  readonly kmsInstanceId: string;
  /** The client certificate: its public key is what the gateway verifies signatures with. */
  readonly certificatePem: string;
  readonly paths: { readonly clientKey: string; readonly password: string; readonly instanceCa: string };
  /** provider_settings of a sealed secret using this client key. */
  readonly providerSettings: { client_type: 'client_key'; client_key_id: string; kms_instance_id: string };
}

export async function makeTempDir(prefix = 'cdh-aliyun-'): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

export async function writeClientKeyCredentials(
  options: ClientKeyCredentialOptions,
): Promise<ClientKeyCredentials> {
  const dir = options.dir ?? (await makeTempDir());
  const source = options.source ?? 'forge-aes256';
  const kmsInstanceId = options.kmsInstanceId ?? 'kst-test0000000000000';
  const key =
    source === 'vector'
      ? readVectorClientKey()
      : generateClientKey(options.clientKeyId ?? `KAAP.${randomBytes(8).toString('hex')}`, source);
  const paths = {
    clientKey: path.join(dir, `clientKey_${key.clientKeyId}.json`),
    password: path.join(dir, `password_${key.clientKeyId}.json`),
    instanceCa: path.join(dir, `PrivateKmsCA_${kmsInstanceId}.pem`),
  };
  await fs.writeFile(
    paths.clientKey,
    JSON.stringify({ KeyId: key.clientKeyId, PrivateKeyData: key.pkcs12.toString('base64') }, null, 2),
    { mode: 0o600 },
  );
  await writePasswordFile(paths.password, key.password, options.passwordForm ?? 'json');
  await fs.writeFile(paths.instanceCa, options.caPem);
  return {
    dir,
    clientKeyId: key.clientKeyId,
    kmsInstanceId,
    certificatePem: key.certificatePem,
    paths,
    providerSettings: {
      client_type: 'client_key',
      client_key_id: key.clientKeyId,
      kms_instance_id: kmsInstanceId,
    },
  };
}

export async function writePasswordFile(
  filePath: string,
  password: string,
  form: 'json' | 'text',
): Promise<void> {
  const content =
    form === 'json' ? `${JSON.stringify({ ClientKeyPassword: password }, null, 2)}\n` : `${password}\n`;
  await fs.writeFile(filePath, content, { mode: 0o600 });
}

interface GeneratedClientKey {
  readonly clientKeyId: string;
  readonly pkcs12: Buffer;
  readonly password: string;
  readonly certificatePem: string;
}

/** The vector's key id, PKCS#12, password and certificate (read with node-forge, independently of src/). */
export function readVectorClientKey(): GeneratedClientKey {
  const dir = vectorDir();
  const file = JSON.parse(readFileSync(path.join(dir, `clientKey_${VECTOR_CLIENT_KEY_ID}.json`), 'utf8')) as {
    KeyId: string;
    PrivateKeyData: string;
  };
  const password = readFileSync(path.join(dir, `password_${VECTOR_CLIENT_KEY_ID}.txt`), 'utf8').trimEnd();
  const pkcs12 = Buffer.from(file.PrivateKeyData, 'base64');
  const p12 = forge.pkcs12.pkcs12FromAsn1(forge.asn1.fromDer(pkcs12.toString('binary')), password);
  const certBagOid = forge.pki.oids['certBag'] as string;
  const cert = p12.getBags({ bagType: certBagOid })[certBagOid]?.[0]?.cert;
  if (!cert) throw new Error('the vector PKCS#12 has no certificate');
  return { clientKeyId: file.KeyId, pkcs12, password, certificatePem: forge.pki.certificateToPem(cert) };
}

function generateClientKey(
  clientKeyId: string,
  source: 'forge-aes256' | 'openssl-default',
): GeneratedClientKey {
  const password = randomBytes(16).toString('hex');
  const { privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  const forgeKey = forge.pki.privateKeyFromPem(privateKey);
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e);
  cert.serialNumber = `01${randomBytes(8).toString('hex')}`;
  cert.validity.notBefore = new Date(Date.now() - 3600_000);
  cert.validity.notAfter = new Date(Date.now() + 7 * 24 * 3600_000);
  const subject = [{ name: 'commonName', value: `${clientKeyId}-client` }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.sign(forgeKey, forge.md.sha256.create());
  const certificatePem = forge.pki.certificateToPem(cert);

  if (source === 'forge-aes256') {
    const asn1 = forge.pkcs12.toPkcs12Asn1(forgeKey, cert, password, { algorithm: 'aes256' });
    return {
      clientKeyId,
      pkcs12: Buffer.from(forge.asn1.toDer(asn1).getBytes(), 'binary'),
      password,
      certificatePem,
    };
  }
  return {
    clientKeyId,
    pkcs12: opensslPkcs12(privateKey, certificatePem, password),
    password,
    certificatePem,
  };
}

/** `openssl pkcs12 -export` with no algorithm options: whatever this OpenSSL makes by default. */
export function opensslPkcs12(keyPem: string, certificatePem: string, password: string): Buffer {
  const workDir = path.join(os.tmpdir(), `cdh-p12-${randomBytes(6).toString('hex')}`);
  mkdirSync(workDir, { mode: 0o700 });
  try {
    const keyFile = path.join(workDir, 'key.pem');
    const certFile = path.join(workDir, 'cert.pem');
    writeFileSync(keyFile, keyPem, { mode: 0o600 });
    writeFileSync(certFile, certificatePem);
    return execFileSync(
      'openssl',
      ['pkcs12', '-export', '-inkey', keyFile, '-in', certFile, '-passout', 'env:CDH_P12_PASSWORD'],
      { env: { ...process.env, CDH_P12_PASSWORD: password }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
}

/** Whether an `openssl` binary is on PATH (the openssl-default source needs it). */
export function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A CdhConfig whose aliyun section points at the credential dir and the emulator. */
export function clientKeyConfig(
  emulator: Pick<DkmsEmulator, 'connectTo'>,
  credentialDir: string,
  overrides: { requestTimeoutMs?: number } = {},
): CdhConfig {
  const config = defaultConfig();
  config.aliyun.credentialDir = credentialDir;
  config.aliyun.dkmsConnectTo = emulator.connectTo;
  config.aliyun.requestTimeoutMs = overrides.requestTimeoutMs ?? 5000;
  return config;
}

export function providerContext(config: CdhConfig): ProviderContext {
  return { config, logger: silentLogger() };
}

/**
 * The `[aliyun]` part of a daemon config file (snake_case, as `spawnDaemon({ config })` writes it)
 * pointing the daemon at a credential dir and the emulator.
 */
export function clientKeyDaemonConfig(
  emulator: Pick<DkmsEmulator, 'connectTo'>,
  credentialDir: string,
  overrides: { requestTimeoutMs?: number } = {},
): { aliyun: { credential_dir: string; dkms_connect_to: string; request_timeout_ms: number } } {
  return {
    aliyun: {
      credential_dir: credentialDir,
      dkms_connect_to: emulator.connectTo,
      request_timeout_ms: overrides.requestTimeoutMs ?? 5000,
    },
  };
}
