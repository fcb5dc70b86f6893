import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CdhClient } from '../client/cdh-client';
import { LOOPBACK_ONLY_ENV } from '../net-guard';
import { PACKAGE_ROOT } from '../package-info';

/**
 * CDH_TEST_BIN_DIR=<dir> runs the programs from <dir>/<bin name>.js instead of dist/src/bin/
 * (CI points it at a copy of dist/bundle/ in an empty directory: the tests then run the bundles).
 */
export const BIN_DIR_ENV = 'CDH_TEST_BIN_DIR';
/** The program `name` (a package.json bin) as the tests and benchmarks run it. */
export function programPath(name: string): string {
  const dir = process.env[BIN_DIR_ENV];
  return dir ? join(dir, `${name}.js`) : join(PACKAGE_ROOT, 'dist/src/bin', `${name}.js`);
}

export const DAEMON_BIN = programPath('confidential-data-hub');
export const SECRET_BIN = programPath('secret');
export const CDH_TOOL_BIN = programPath('cdh-tool');
export const REST_BIN = programPath('api-server-rest');

/** A fresh temp dir, removed by the returned cleanup. */
export function tempDir(prefix = 'cdh-test-'): { path: string; cleanup(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/**
 * Environment for child processes: the loopback guard on (CDH_LOOPBACK_ONLY=1: they only ever
 * talk to emulators on 127.0.0.1), and nothing inherited that could point a provider at
 * production or change verification. The calling process's own environment is left alone.
 */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, [LOOPBACK_ONLY_ENV]: '1' };
  for (const name of Object.keys(env)) {
    if (
      name.startsWith('ALIYUN_') ||
      name === 'SKIP_SEALED_SECRET_VERIFICATION' ||
      name === 'OFFLINE_FS_KBC_EXTRA_FILE_PATH' ||
      name === 'CDH_ADDRESS_FILE' ||
      ['AA_KBC_PARAMS', 'AA_SOCKET', 'KBS_CERT', 'CDH_KBS_CONNECT_TO', 'CDH_KERNEL_CMDLINE_FILE'].includes(
        name,
      )
    )
      delete env[name];
  }
  return { ...env, ...extra };
}

export interface DaemonProcess {
  readonly child: ChildProcess;
  readonly socketPath: string;
  /** `unix:///...` target for clients. */
  readonly target: string;
  readonly dir: string;
  /** Every stdout line (JSON log lines) so far. */
  readonly logLines: string[];
  readonly stderr: () => string;
  client(): CdhClient;
  /** SIGTERM and wait; resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Waits for exit without signalling. */
  exited(): Promise<number | null>;
  cleanup(): void;
}

export interface SpawnDaemonOptions {
  /** Config written to a file and passed with -c (snake_case keys, as in the file format). */
  config?: Record<string, unknown>;
  /** Write the config as TOML text instead. */
  configToml?: string;
  env?: Record<string, string>;
  args?: string[];
  /** Defaults to <dir>/cdh.sock. */
  socketPath?: string;
  /** Wait until health answers SERVING (default true). */
  waitReady?: boolean;
  dir?: string;
  /** The daemon program to run with node (default: the built DAEMON_BIN; e.g. an installed copy). */
  bin?: string;
  /** Runs node through another program (e.g. unshare): gets node's path and arguments. */
  wrap?: (node: string, args: string[]) => { file: string; args: string[] };
}

/** Starts the built daemon as a child process on a temp socket and waits until it serves. */
export async function spawnDaemon(options: SpawnDaemonOptions = {}): Promise<DaemonProcess> {
  const ownDir = options.dir === undefined ? tempDir() : undefined;
  const dir = options.dir ?? (ownDir as { path: string }).path;
  const socketPath = options.socketPath ?? join(dir, 'cdh.sock');
  const args = [
    options.bin ?? DAEMON_BIN,
    '--socket',
    `unix://${socketPath}`,
    ...(options.args ?? []),
    ...configArgs(options, dir),
  ];
  const command = options.wrap ? options.wrap(process.execPath, args) : { file: process.execPath, args };
  const child = spawn(command.file, command.args, {
    env: childEnv(options.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = collectOutput(child);
  const { logLines } = output;
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const clients: CdhClient[] = [];

  const handle: DaemonProcess = {
    child,
    socketPath,
    target: `unix://${socketPath}`,
    dir,
    logLines,
    stderr: () => output.stderr,
    client() {
      const client = new CdhClient(`unix://${socketPath}`, { timeoutMs: 10_000 });
      clients.push(client);
      return client;
    },
    async stop(signal = 'SIGTERM') {
      for (const c of clients.splice(0)) c.close();
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const code = await exit;
      output.flush();
      return code;
    },
    exited: () => exit,
    cleanup() {
      for (const c of clients.splice(0)) c.close();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      ownDir?.cleanup();
    },
  };

  if (options.waitReady ?? true) {
    try {
      await waitUntilServing(handle, exit);
    } catch (error) {
      handle.cleanup();
      throw error;
    }
  }
  return handle;
}

/** `-c FILE` for the config given as TOML text or as an object (written as JSON), or nothing. */
function configArgs(options: SpawnDaemonOptions, dir: string): string[] {
  if (options.configToml !== undefined) {
    const file = join(dir, 'cdh.toml');
    writeFileSync(file, options.configToml);
    return ['-c', file];
  }
  if (options.config === undefined) return [];
  const file = join(dir, 'cdh.json');
  writeFileSync(file, JSON.stringify(options.config));
  return ['-c', file];
}

/** The child's stdout as log lines (a partial last line kept until flush) and its stderr. */
function collectOutput(child: ChildProcess): { logLines: string[]; readonly stderr: string; flush(): void } {
  const logLines: string[] = [];
  let stdoutRest = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    const parts = (stdoutRest + chunk).split('\n');
    stdoutRest = parts.pop() ?? '';
    logLines.push(...parts.filter(Boolean));
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return {
    logLines,
    get stderr() {
      return stderr;
    },
    flush() {
      if (stdoutRest) logLines.push(stdoutRest);
      stdoutRest = '';
    },
  };
}

async function waitUntilServing(daemon: DaemonProcess, exit: Promise<number | null>): Promise<void> {
  let exited = false;
  void exit.then(() => (exited = true));
  const client = new CdhClient(daemon.target, { timeoutMs: 1000 });
  const giveUp = Date.now() + 15_000;
  try {
    while (Date.now() < giveUp) {
      if (exited) throw new Error(`daemon exited before serving: ${daemon.stderr()}`);
      try {
        if ((await client.check('', 500)) === 'SERVING') return;
      } catch {
        // Not listening yet.
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`daemon did not serve within 15 s: ${daemon.stderr()}`);
  } finally {
    client.close();
  }
}
