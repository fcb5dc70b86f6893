import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { promises as fs, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import forge from 'node-forge';

/**
 * Writes a complete client_key credential dir, as the Alibaba console hands it out:
 * clientKey_<id>.json (PKCS#12), password_<id>.json (console JSON or bare text) and
 * PrivateKmsCA_<instance>.pem. Read back by the daemon's client_key provider.
 */

export type ClientKeySource =
  /** A fresh key, PKCS#12 by node-forge with AES-256 (PBES2) key bag. */
  | 'forge-aes256'
  /** A fresh key, PKCS#12 by `openssl pkcs12 -export` with OpenSSL 3 defaults (PBES2/AES-256-CBC/SHA-256 MAC). */
  | 'openssl-default'
  /** An existing client key (e.g. one issued by Alibaba): its clientKey_*.json and password file. */
  | { readonly clientKeyFile: string; readonly passwordFile: string };

export interface ClientKeyCredentialOptions {
  /** Credential dir to write into (default: a fresh temp dir). */
  readonly dir?: string;
  readonly source?: ClientKeySource;
  readonly passwordForm?: 'json' | 'text';
  /** PEM written as PrivateKmsCA_<instance>.pem (usually the emulator's CA). */
  readonly caPem: string;
  readonly kmsInstanceId?: string;
  /** For generated keys (default: a random KAAP.* id); an existing key keeps its id. */
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

export interface ClientKeyMaterial {
  readonly clientKeyId: string;
  readonly pkcs12: Buffer;
  readonly password: string;
  readonly certificatePem: string;
}

export async function writeClientKeyCredentials(
  options: ClientKeyCredentialOptions,
): Promise<ClientKeyCredentials> {
  const dir = options.dir ?? mkdtempSync(path.join(os.tmpdir(), 'cdh-aliyun-'));
  const source = options.source ?? 'forge-aes256';
  const kmsInstanceId = options.kmsInstanceId ?? 'kst-test0000000000000';
  const key =
    typeof source === 'object'
      ? readClientKeyFiles(source.clientKeyFile, source.passwordFile)
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

/**
 * An existing client key's id, PKCS#12, password and certificate, read with node-forge
 * (independently of the daemon's own PKCS#12 reader). The password file may be the console's
 * JSON or bare text.
 */
export function readClientKeyFiles(clientKeyFile: string, passwordFile: string): ClientKeyMaterial {
  const file = JSON.parse(readFileSync(clientKeyFile, 'utf8')) as { KeyId: string; PrivateKeyData: string };
  const passwordText = readFileSync(passwordFile, 'utf8');
  const password = passwordText.trimStart().startsWith('{')
    ? (JSON.parse(passwordText) as { ClientKeyPassword: string }).ClientKeyPassword
    : passwordText.trimEnd();
  const pkcs12 = Buffer.from(file.PrivateKeyData, 'base64');
  const p12 = forge.pkcs12.pkcs12FromAsn1(forge.asn1.fromDer(pkcs12.toString('binary')), password);
  const certBagOid = forge.pki.oids['certBag'] as string;
  const cert = p12.getBags({ bagType: certBagOid })[certBagOid]?.[0]?.cert;
  if (!cert) throw new Error(`the PKCS#12 in ${clientKeyFile} has no certificate`);
  return { clientKeyId: file.KeyId, pkcs12, password, certificatePem: forge.pki.certificateToPem(cert) };
}

function generateClientKey(
  clientKeyId: string,
  source: 'forge-aes256' | 'openssl-default',
): ClientKeyMaterial {
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
