/**
 * What the benchmark scripts share: the emulator process, 256 sealed secrets and the daemon
 * configs pointing at it, and running a bench script as its own process.
 */
import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { defaultConfig } from '../src/config/types';
import { silentLogger } from '../src/log';
import { PACKAGE_ROOT } from '../src/package-info';
import { createClientKeyProvider } from '../src/providers/aliyun/client-key';
import { generateSigningJwkPair, sealEnvelope, signSealedSecret } from '../src/secret';
import { childEnv, tempDir } from '../test/support/daemon';
import type { DkmsEmulatorStats } from '../test/support/dkms-emulator';
import type { EmulatorProcessInfo } from './emulator-process';

export const BENCH_DIR = join(PACKAGE_ROOT, 'dist', 'bench');
export const DISTINCT_SECRETS = 256;
const SIGNING_KID = 'bench-signing-key';
const execFileAsync = promisify(execFile);

/** The emulator process: its info line, then `stats` on request. */
export class EmulatorProcess {
  private readonly lines: string[] = [];
  private readonly waiters: Array<{ resolve(line: string): void; reject(error: Error): void }> = [];
  private exitCode: number | null | undefined;

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    createInterface({ input: child.stdout }).on('line', (line) => {
      const waiter = this.waiters.shift();
      if (waiter) waiter.resolve(line);
      else this.lines.push(line);
    });
    child.once('exit', (code) => {
      this.exitCode = code;
      for (const waiter of this.waiters.splice(0)) waiter.reject(new Error(`the emulator exited (${code})`));
    });
  }

  static async start(): Promise<{ process: EmulatorProcess; info: EmulatorProcessInfo }> {
    const child = spawn(process.execPath, [join(BENCH_DIR, 'emulator-process.js')], { env: childEnv() });
    child.stderr.pipe(process.stderr);
    const emulator = new EmulatorProcess(child);
    const info = JSON.parse(await emulator.nextLine()) as EmulatorProcessInfo;
    return { process: emulator, info };
  }

  get pid(): number {
    return this.child.pid as number;
  }

  async stats(): Promise<DkmsEmulatorStats> {
    const line = this.nextLine();
    this.child.stdin.write('stats\n');
    return JSON.parse(await line) as DkmsEmulatorStats;
  }

  async close(): Promise<void> {
    if (this.exitCode !== undefined) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.stdin.end();
    await exited;
  }

  private nextLine(): Promise<string> {
    const ready = this.lines.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    if (this.exitCode !== undefined)
      return Promise.reject(new Error(`the emulator exited (${this.exitCode})`));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }
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

async function sealSecrets(info: EmulatorProcessInfo, count: number, privateJwk: unknown): Promise<string[]> {
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
  readonly info: EmulatorProcessInfo;
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
  const { process: emulator, info } = await EmulatorProcess.start();
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
