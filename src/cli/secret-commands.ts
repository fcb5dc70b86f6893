import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { resolveConfig } from '../config/load';
import type { CdhConfig } from '../config/types';
import { CdhError } from '../errors';
import { silentLogger } from '../log';
import { openClientKeyProvider } from '../providers/aliyun/client-key';
import type { CallContext, Encrypter, ProviderContext } from '../providers/types';
import {
  generateSigningJwkPair,
  inspectSealedSecret,
  sealEnvelope,
  sealVault,
  signSealedSecret,
  unsignedSealedSecret,
} from '../secret';
import { privateKeyFromJwk } from '../secret/jwk';
import type { SealedSecretPayload } from '../secret/payload';
import { UsageError } from './args';
import { buildLocalUnsealer } from '../app/local-unseal';
import { errnoCode } from '../lib/errno';

export interface SigningOptions {
  readonly kid: string;
  readonly jwk: unknown;
}

function cliConfig(): CdhConfig {
  // The CLI honours the same environment overrides as the daemon (ALIYUN_DKMS_CONNECT_TO, ...).
  return resolveConfig({}, process.env).config;
}

export function noDeadline(): CallContext {
  return { signal: new AbortController().signal };
}

function readInput(path: string, flag: string): Buffer {
  try {
    return path === '-' ? readFileSync(0) : readFileSync(path);
  } catch (error) {
    throw new UsageError(`${flag}: cannot read ${path} (${errnoCode(error)})`);
  }
}

const SIGNING_JWK = 'the signing JWK (--signing-jwk-path)';

/** A bad signing key is reported before the KMS is asked to wrap anything. */
function checkSigningKey(signing: SigningOptions | undefined): void {
  if (signing) privateKeyFromJwk(signing.jwk, SIGNING_JWK);
}

function emit(payload: SealedSecretPayload, signing: SigningOptions | undefined): void {
  const sealed = signing
    ? signSealedSecret(payload, signing.jwk, signing.kid)
    : unsignedSealedSecret(payload);
  process.stdout.write(`${sealed}\n`);
}

/** The `ali` flags: client key access to a KMS instance (as `secret seal envelope ali`). */
export interface AliAccess {
  readonly passwordFilePath: string;
  readonly certPath: string;
  readonly kmsInstanceId: string;
  readonly clientKeyFilePath: string;
}

export interface SealEnvelopeAliRequest extends AliAccess {
  readonly keyId: string;
  readonly plaintextPath: string;
  readonly signing: SigningOptions | undefined;
}

export interface AliEncrypter {
  readonly encrypter: Encrypter;
  /** What the guest's aliyun provider is built from (ids only; the files stay in the guest). */
  readonly providerSettings: Record<string, string>;
  close(): Promise<void>;
}

/** The Alibaba Cloud KMS client_key provider from the `ali` flags' files, for encrypting. */
export async function openAliEncrypter(access: AliAccess): Promise<AliEncrypter> {
  const providerSettings = {
    client_type: 'client_key',
    client_key_id: clientKeyIdOf(access.clientKeyFilePath),
    kms_instance_id: access.kmsInstanceId,
  };
  const context: ProviderContext<CdhConfig> = { config: cliConfig(), logger: silentLogger() };
  const instance = await openClientKeyProvider(
    providerSettings,
    { clientKey: access.clientKeyFilePath, password: access.passwordFilePath, instanceCa: access.certPath },
    context,
  );
  const close = async (): Promise<void> => void (await instance.close?.());
  const encrypter = instance.encrypter;
  if (!encrypter) {
    await close();
    throw new CdhError('PROVIDER_CAPABILITY_MISSING', 'the aliyun client key cannot encrypt');
  }
  return { encrypter, providerSettings, close };
}

/** `secret seal envelope ... ali ...`: the data key is wrapped by Alibaba Cloud KMS (client key). */
export async function runSealEnvelopeAli(request: SealEnvelopeAliRequest): Promise<void> {
  checkSigningKey(request.signing);
  const plaintext = readInput(request.plaintextPath, '--file-path');
  let ali: AliEncrypter | undefined;
  try {
    ali = await openAliEncrypter(request);
    const payload = await sealEnvelope({
      encrypter: ali.encrypter,
      provider: 'aliyun',
      providerSettings: ali.providerSettings,
      keyId: request.keyId,
      plaintext,
      ctx: noDeadline(),
    });
    emit(payload, request.signing);
  } finally {
    plaintext.fill(0);
    await ali?.close();
  }
}

/** The client key id is the `KeyId` of the client key file (as the console downloads it). */
function clientKeyIdOf(path: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new UsageError(
      `--client-key-file-path: ${code ? `cannot read ${path} (${code})` : `${path} is not JSON`}`,
    );
  }
  const keyId = (parsed as { KeyId?: unknown } | null)?.KeyId;
  if (typeof keyId !== 'string' || keyId === '')
    throw new UsageError(`--client-key-file-path: ${path} has no "KeyId" string`);
  return keyId;
}

export interface SealVaultRequest {
  readonly name: string;
  readonly provider: string;
  readonly providerSettings: Record<string, unknown>;
  readonly annotations: Record<string, string>;
  readonly signing: SigningOptions | undefined;
}

export async function runSealVault(request: SealVaultRequest): Promise<void> {
  emit(
    sealVault({
      provider: request.provider,
      name: request.name,
      providerSettings: request.providerSettings,
      annotations: request.annotations,
    }),
    request.signing,
  );
}

export interface UnsealRequest {
  readonly filePath: string;
  readonly keyPath: string | undefined;
  readonly skipVerification: boolean;
}

/** Local unseal: the daemon's own code path, with DIR as credential and signing-key dir. */
export async function runUnseal(request: UnsealRequest): Promise<void> {
  const sealed = readInput(request.filePath, '--file-path');
  const config = cliConfig();
  const skipVerification = request.skipVerification || config.skipSealedSecretVerification;
  if (!skipVerification && sealed.toString('latin1').trimStart().startsWith('sealed.fakejwsheader.'))
    throw new CdhError(
      'SEALED_SECRET_MALFORMED',
      'the sealed secret is the unsigned form (sealed.fakejwsheader.<payload>.fakesignature): ' +
        'unseal it with --skip-verification',
    );
  const target = request.filePath === '-' ? undefined : `${request.filePath}.unsealed`;
  // Checked again when writing (flag wx); this early check spares a KMS call.
  if (target !== undefined && existsSync(target))
    throw new UsageError(`${target} exists; not overwriting it`);
  if (request.keyPath !== undefined) {
    config.aliyun.credentialDir = request.keyPath;
    config.sealedSecret.signingKeyDir = request.keyPath;
  }
  const logger = silentLogger();
  const { unsealer, close } = buildLocalUnsealer(config, { logger, skipVerification });
  try {
    const plaintext = await unsealer.unseal(sealed, noDeadline());
    try {
      if (target === undefined) {
        // Wiped only once written: where stdout is asynchronous (pipes on macOS) the write holds the buffer.
        await new Promise<void>((resolve, reject) =>
          process.stdout.write(plaintext, (error) => (error ? reject(error) : resolve())),
        );
      } else {
        try {
          writeFileSync(target, plaintext, { flag: 'wx', mode: 0o600 });
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code;
          throw new UsageError(
            code === 'EEXIST' ? `${target} exists; not overwriting it` : `cannot write ${target} (${code})`,
          );
        }
      }
    } finally {
      plaintext.fill(0);
    }
  } finally {
    await close();
  }
}

export async function runInspect(filePath: string): Promise<void> {
  const payload = inspectSealedSecret(readInput(filePath, '--file-path'));
  process.stdout.write(`${JSON.stringify(payload, null, 2)}\n`);
}

export async function runKeygen(kid: string | undefined, outputDir: string): Promise<void> {
  const name = kid ?? `cdh-${randomBytes(4).toString('hex')}`;
  if (!/^[A-Za-z0-9._-]+$/.test(name) || name.startsWith('.'))
    throw new UsageError(
      '--kid may hold only letters, digits, ".", "_" and "-", not starting with "." (it names files)',
    );
  const pair = generateSigningJwkPair(name);
  const privatePath = join(outputDir, `${name}-private.json`);
  const publicPath = join(outputDir, `${name}-public.json`);
  let wrotePrivate = false;
  try {
    mkdirSync(outputDir, { recursive: true });
    writeFileSync(privatePath, `${JSON.stringify(pair.privateJwk, null, 2)}\n`, { flag: 'wx', mode: 0o600 });
    wrotePrivate = true;
    writeFileSync(publicPath, `${JSON.stringify(pair.publicJwk, null, 2)}\n`, { flag: 'wx', mode: 0o644 });
  } catch (error) {
    // Half a pair would only block the next attempt.
    if (wrotePrivate) rmSync(privatePath, { force: true });
    const code = (error as NodeJS.ErrnoException).code;
    throw new UsageError(
      code === 'EEXIST'
        ? `a key named ${name} already exists in ${outputDir}`
        : `cannot write keys to ${outputDir} (${code ?? 'error'})`,
    );
  }
  process.stdout.write(`${name}\n`);
}
