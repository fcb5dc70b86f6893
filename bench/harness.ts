/**
 * What the benchmark scripts share: the emulator process, 256 sealed secrets and the daemon
 * configs pointing at it, and running a bench script as its own process.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { defaultConfig } from '../src/config/types';
import { silentLogger } from '../src/log';
import { PACKAGE_ROOT } from '../src/package-info';
import { createClientKeyProvider } from '../src/providers/aliyun/client-key';
import { generateSigningJwkPair, sealEnvelope, signSealedSecret } from '../src/secret';
import { childEnv, tempDir } from '../src/devtools/daemon';
import type { DkmsEmulatorStats } from '../src/emulators/aliyun/dkms-gateway';
export { EmulatorProcess };
import { EmulatorProcess } from '../src/devtools/emulator-process';

export const BENCH_DIR = join(PACKAGE_ROOT, 'dist', 'bench');
export const DISTINCT_SECRETS = 256;
const SIGNING_KID = 'bench-signing-key';
const execFileAsync = promisify(execFile);

/** What the benchmark needs from `cdh-emulator aliyun`'s description line. */
export interface EmulatorInfo {
  readonly keyId: string;
  readonly connectTo: string;
  readonly credentialDir: string;
  readonly providerSettings: Record<string, string>;
  /** The `[aliyun]` section of a daemon config (snake_case). */
  readonly daemonConfig: Record<string, unknown>;
}

/**
 * `cdh-emulator aliyun` in a process of its own, so its CPU does not mix with the load
 * generator's or the daemon's, with the Alibaba-issued vector client key: its PKCS#12 (RC2-40,
 * 3DES, SHA-1 MAC) is what a per-call client parses in production.
 */
async function startEmulator(): Promise<{ process: EmulatorProcess; info: EmulatorInfo }> {
  const vector = join(PACKAGE_ROOT, 'test/fixtures/vectors/aliyun-client-key');
  const emulator = await EmulatorProcess.start('aliyun', [
    '--client-key-file',
    join(vector, 'clientKey_KAAP.vector-0001.json'),
    '--password-file',
    join(vector, 'password_KAAP.vector-0001.txt'),
  ]);
  const d = emulator.description as {
    key_id: string;
    endpoints: { dkms_gateway: string };
    credential_dir: string;
    provider_settings: { client_key: Record<string, string> };
    daemon_config: Record<string, unknown>;
  };
  const info: EmulatorInfo = {
    keyId: d.key_id,
    connectTo: d.endpoints.dkms_gateway,
    credentialDir: d.credential_dir,
    providerSettings: d.provider_settings.client_key,
    daemonConfig: d.daemon_config,
  };
  return { process: emulator, info };
}

/** The gateway emulator's counters. */
export async function gatewayStats(emulator: EmulatorProcess): Promise<DkmsEmulatorStats> {
  return (await emulator.stats())['dkms_gateway'] as DkmsEmulatorStats;
}

/** Runs a bench script as its own process and parses the JSON line it prints. */
export async function runJson<T>(
  script: string,
  args: Array<string | number>,
  options: { nodeFlags?: string[]; env?: Record<string, string> } = {},
): Promise<T> {
  const { stdout } = await execFileAsync(
    process.execPath,
    [...(options.nodeFlags ?? []), join(BENCH_DIR, script), ...args.map(String)],
    { env: childEnv(options.env), maxBuffer: 1024 * 1024 },
  );
  const last = stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(last) as T;
}

async function sealSecrets(info: EmulatorInfo, count: number, privateJwk: unknown): Promise<string[]> {
  const config = defaultConfig();
  config.aliyun.credentialDir = info.credentialDir;
  config.aliyun.dkmsConnectTo = info.connectTo;
  const provider = await createClientKeyProvider(info.providerSettings, { config, logger: silentLogger() });
  try {
    const encrypter = provider.encrypter;
    if (encrypter === undefined) throw new Error('client_key provider without an encrypter');
    const sealed: string[] = [];
    for (let start = 0; start < count; start += 32) {
      const batch = Array.from({ length: Math.min(32, count - start) }, (_, i) =>
        sealEnvelope({
          encrypter,
          provider: 'aliyun',
          providerSettings: info.providerSettings,
          keyId: info.keyId,
          plaintext: Buffer.from(`benchmark secret #${start + i}: ${'x'.repeat(64)}`),
        }).then((payload) => signSealedSecret(payload, privateJwk, SIGNING_KID)),
      );
      sealed.push(...(await Promise.all(batch)));
    }
    return sealed;
  } finally {
    await provider.close?.();
  }
}

export interface BenchSetup {
  readonly emulator: EmulatorProcess;
  readonly info: EmulatorInfo;
  /** File with DISTINCT_SECRETS sealed secrets, one per line. */
  readonly manySecrets: string;
  /** File with one of them. */
  readonly oneSecret: string;
  /** Daemon configs (snake_case, as in the config file): cache ttl 0 and ttl 300. */
  readonly uncachedConfig: Record<string, unknown>;
  readonly cachedConfig: Record<string, unknown>;
  /** The configs written as JSON config files (for the in-process floor). */
  readonly uncachedConfigFile: string;
  readonly cachedConfigFile: string;
  close(): Promise<void>;
}

/** Starts the emulator process, makes a signing key, seals the secrets, writes the configs. */
export async function prepareBench(): Promise<BenchSetup> {
  const work = tempDir('cdh-bench-');
  const { process: emulator, info } = await startEmulator();
  try {
    const keyDir = join(work.path, 'sealed-secret');
    mkdirSync(keyDir);
    const signing = generateSigningJwkPair(SIGNING_KID);
    writeFileSync(join(keyDir, SIGNING_KID), JSON.stringify(signing.publicJwk));
    const sealed = await sealSecrets(info, DISTINCT_SECRETS, signing.privateJwk);
    const manySecrets = join(work.path, `secrets-${DISTINCT_SECRETS}.txt`);
    const oneSecret = join(work.path, 'secret-1.txt');
    writeFileSync(manySecrets, `${sealed.join('\n')}\n`);
    writeFileSync(oneSecret, `${sealed[0]}\n`);
    const base = { ...info.daemonConfig, sealed_secret: { signing_key_dir: keyDir }, log: { level: 'info' } };
    const uncachedConfig = { ...base, cache: { ttl_seconds: 0 } };
    const cachedConfig = { ...base, cache: { ttl_seconds: 300 } };
    const uncachedConfigFile = join(work.path, 'uncached.json');
    writeFileSync(uncachedConfigFile, JSON.stringify(uncachedConfig));
    const cachedConfigFile = join(work.path, 'cached.json');
    writeFileSync(cachedConfigFile, JSON.stringify(cachedConfig));
    return {
      emulator,
      info,
      manySecrets,
      oneSecret,
      uncachedConfig,
      cachedConfig,
      uncachedConfigFile,
      cachedConfigFile,
      async close() {
        await emulator.close();
        work.cleanup();
      },
    };
  } catch (error) {
    await emulator.close();
    work.cleanup();
    throw error;
  }
}
