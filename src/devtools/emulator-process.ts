import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { childEnv, programPath } from './daemon';

export const EMULATOR_BIN = programPath('cdh-emulator');

/**
 * `cdh-emulator <command>` as a child process (its CPU apart from the caller's): the JSON line
 * it prints once serving, its counters on request (SIGUSR2), SIGTERM to stop.
 */
export class EmulatorProcess {
  private readonly lines: string[] = [];
  private readonly waiters: Array<{ resolve(line: string): void; reject(error: Error): void }> = [];
  private exitCode: number | null | undefined;
  private stderr = '';

  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    /** The description line: endpoints, daemon_config, env, … */
    public description: Record<string, unknown> = {},
  ) {
    createInterface({ input: child.stdout }).on('line', (line) => {
      const waiter = this.waiters.shift();
      if (waiter) waiter.resolve(line);
      else this.lines.push(line);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    child.once('exit', (code) => {
      this.exitCode = code;
      for (const waiter of this.waiters.splice(0))
        waiter.reject(new Error(`cdh-emulator exited (${code}): ${this.stderr}`));
    });
  }

  static async start(
    command: string,
    args: readonly string[] = [],
    options: { env?: Record<string, string> } = {},
  ): Promise<EmulatorProcess> {
    const child = spawn(process.execPath, [EMULATOR_BIN, command, ...args], { env: childEnv(options.env) });
    const emulator = new EmulatorProcess(child);
    try {
      emulator.description = JSON.parse(await emulator.nextLine()) as Record<string, unknown>;
    } catch (error) {
      await emulator.close();
      throw error;
    }
    return emulator;
  }

  get pid(): number {
    return this.child.pid as number;
  }

  /** The emulator's counters (the `stats` object of its SIGUSR2 line). */
  async stats(): Promise<Record<string, unknown>> {
    const line = this.nextLine();
    this.child.kill('SIGUSR2');
    return (JSON.parse(await line) as { stats: Record<string, unknown> }).stats;
  }

  /** SIGTERM and wait for the exit; resolves with the exit code. */
  async close(): Promise<number | null> {
    if (this.exitCode !== undefined) return this.exitCode;
    const exited = new Promise<number | null>((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGTERM');
    return exited;
  }

  private nextLine(): Promise<string> {
    const ready = this.lines.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    if (this.exitCode !== undefined)
      return Promise.reject(new Error(`cdh-emulator exited (${this.exitCode}): ${this.stderr}`));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }
}
