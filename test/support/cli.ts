import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import { childEnv } from '../../src/devtools/daemon';

/** What one run of a command-line program produced. */
export interface CliResult {
  /** Exit code (null when killed by a signal). */
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout as bytes (plaintext written by `secret unseal --file-path -` need not be text). */
  readonly stdoutBytes: Buffer;
}

export interface RunCliOptions {
  /** Extra environment (on top of childEnv(): loopback guard on, no inherited ALIYUN_* overrides). */
  readonly env?: Record<string, string>;
  /** Written to stdin, which is then closed (default: stdin closed at once). */
  readonly input?: string | Buffer;
  readonly cwd?: string;
  /** Kill the program after this long (default 30 s). */
  readonly timeoutMs?: number;
}

/**
 * Runs one of the built programs with node, asynchronously: emulators live in the test process,
 * so a synchronous child would block them.
 */
export function runCli(
  bin: string,
  args: readonly string[],
  options: RunCliOptions = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      env: childEnv(options.env),
      cwd: options.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: options.timeoutMs ?? 30_000,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      const stdoutBytes = Buffer.concat(out);
      resolve({
        code,
        stdout: stdoutBytes.toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        stdoutBytes,
      });
    });
    child.stdin.on('error', () => undefined); // the program may exit before reading its input
    child.stdin.end(options.input ?? '');
  });
}

/** Success: exit 0, nothing on stderr. */
export function assertSucceeded(result: CliResult, what: string): void {
  assert.equal(result.stderr, '', `${what}: unexpected stderr`);
  assert.equal(result.code, 0, `${what}: exit code ${result.code}`);
}

/** Success with exactly one line on stdout and nothing on stderr; returns that line. */
export function singleLineOutput(result: CliResult, what: string): string {
  assertSucceeded(result, what);
  assert.match(result.stdout, /^[^\n]+\n$/, `${what}: stdout is not exactly one line`);
  return result.stdout.slice(0, -1);
}

/**
 * Failure as the contract says: non-zero exit, nothing on stdout, exactly one line on stderr
 * (starting with the program's name); returns that line.
 */
export function singleLineFailure(result: CliResult, program: string, what: string): string {
  assert.notEqual(result.code, 0, `${what}: exit code 0 (stdout ${JSON.stringify(result.stdout)})`);
  assert.notEqual(result.code, null, `${what}: killed by a signal`);
  assert.equal(result.stdout, '', `${what}: unexpected stdout`);
  assert.match(
    result.stderr,
    /^[^\n]+\n$/,
    `${what}: stderr is not one line: ${JSON.stringify(result.stderr)}`,
  );
  assert.ok(
    result.stderr.startsWith(`${program}: `),
    `${what}: stderr lacks the program name: ${result.stderr}`,
  );
  return result.stderr.slice(0, -1);
}
