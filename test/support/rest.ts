import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as http from 'node:http';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../src/package-info';
import { childEnv, REST_BIN } from '../../src/devtools/daemon';

export { REST_BIN };

/** A child process whose stdout lines are collected. */
export interface LinedProcess {
  readonly child: ChildProcess;
  readonly lines: string[];
  readonly stderr: () => string;
  /** Resolves with the first stdout line `match` accepts (rejects if the process exits first). */
  waitForLine(match: (line: string) => boolean, withinMs?: number): Promise<string>;
  stop(): Promise<void>;
}

export function spawnLined(command: string, args: readonly string[]): LinedProcess {
  const child = spawn(command, [...args], { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const waiters = new Set<(line: string) => void>();
  let rest = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    const parts = (rest + chunk).split('\n');
    rest = parts.pop() ?? '';
    for (const line of parts.filter(Boolean)) {
      lines.push(line);
      for (const waiter of waiters) waiter(line);
    }
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    lines,
    stderr: () => stderr,
    waitForLine(match, withinMs = 15_000) {
      const seen = lines.find(match);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const done = (): void => {
          waiters.delete(onLine);
          clearTimeout(timer);
        };
        const onLine = (line: string): void => {
          if (!match(line)) return;
          done();
          resolve(line);
        };
        waiters.add(onLine);
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${command}: no matching line within ${withinMs} ms; stderr: ${stderr}`));
        }, withinMs);
        void exited.then(() => {
          if (!waiters.has(onLine)) return;
          done();
          reject(new Error(`${command} exited: ${stderr}`));
        });
      });
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

export interface RestProcess extends LinedProcess {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** The JSON log lines with msg "request", parsed. */
  requestLogs(): Array<Record<string, unknown>>;
}

/** Starts the built api-server-rest on an ephemeral port (unless `-b` is given) and waits for it to listen. */
export async function spawnRest(args: readonly string[]): Promise<RestProcess> {
  const withBind = args.includes('-b') || args.includes('--bind') ? args : ['-b', '127.0.0.1:0', ...args];
  const proc = spawnLined(process.execPath, [REST_BIN, ...withBind]);
  let listening: string;
  try {
    listening = await proc.waitForLine((line) => line.includes('"API server listening"'));
  } catch (error) {
    await proc.stop();
    throw error;
  }
  const url = String((JSON.parse(listening) as { address: string }).address);
  const parsed = new URL(url);
  return {
    ...proc,
    url,
    host: parsed.hostname,
    port: Number(parsed.port),
    requestLogs: () =>
      proc.lines
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .filter((entry) => entry.msg === 'request'),
  };
}

export interface HttpAnswer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
  readonly text: string;
}

/** One request on a fresh connection (no agent), with a client-side timeout. */
export function request(
  url: string,
  options: {
    method?: string;
    body?: string | Buffer;
    headers?: Record<string, string>;
    timeoutMs?: number;
  } = {},
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: options.method ?? 'GET', agent: false, headers: options.headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString('utf8') });
        });
        res.on('error', reject);
      },
    );
    req.setTimeout(options.timeoutMs ?? 10_000, () => req.destroy(new Error(`no answer from ${url}`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

/** The Go ttrpc attestation agent (test/interop/ttrpc-go-aa), built once per test file, or why not. */
export function buildGoAttestationAgent(outputDir: string): { binary: string } | { skip: string } {
  if (spawnSync('go', ['version']).status !== 0)
    return { skip: 'Go is not installed (apt-get install golang-go)' };
  if (!existsSync('/usr/share/gocode/src/github.com/containerd/ttrpc'))
    return {
      skip: 'containerd ttrpc for Go is not installed (apt-get install golang-github-containerd-ttrpc-dev)',
    };
  const binary = join(outputDir, 'ttrpc-aa');
  const build = spawnSync(join(PACKAGE_ROOT, 'test/interop/ttrpc-go-aa/build.sh'), [binary], {
    encoding: 'utf8',
  });
  if (build.status !== 0) throw new Error(`building the Go ttrpc agent failed: ${build.stderr}`);
  return { binary };
}

/** Starts the Go attestation agent on `socket` and waits until it listens. */
export async function spawnGoAttestationAgent(
  binary: string,
  socket: string,
  flags: readonly string[] = [],
): Promise<LinedProcess> {
  const agent = spawnLined(binary, ['-socket', socket, ...flags]);
  await agent.waitForLine((line) => line === 'ready');
  return agent;
}
