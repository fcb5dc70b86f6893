/**
 * The REST front's cost: cached resources per second through api-server-rest (HTTP → ttrpc →
 * daemon) against GetResource on the daemon's socket directly (ttrpc, as the REST front
 * speaks it, and gRPC), from one load generator in this process.
 *
 * Usage: npm run build && node dist/bench/rest.js   (BENCH_DURATION_MS, BENCH_CONCURRENCY)
 * Prints a markdown table; the daemon serves one offline_fs resource (served from memory).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { CdhClient } from '../src/client/cdh-client';
import { CdhTtrpcClient } from '../src/client/cdh-ttrpc-client';
import { PACKAGE_ROOT } from '../src/package-info';
import { cpuWindow, drive, type LoadResult } from './load';

const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 3000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const RESOURCE = Buffer.alloc(64, 0x61);

function start(bin: string, args: string[], ready: (line: string) => boolean): Promise<ChildProcess> {
  const child = spawn(process.execPath, [join(PACKAGE_ROOT, 'dist/src/bin', bin), ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, CDH_LOOPBACK_ONLY: '1' },
  });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.on('line', (line) => {
      if (ready(line)) resolve(child);
    });
    child.once('exit', (code) => reject(new Error(`${bin} exited (${code})`)));
  });
}

function get(agent: http.Agent | false, url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent }, (res) => {
        let size = 0;
        res.on('data', (chunk: Buffer) => (size += chunk.length));
        res.on('end', () =>
          res.statusCode === 200 && size === RESOURCE.length
            ? resolve()
            : reject(new Error(`status ${res.statusCode}`)),
        );
      })
      .on('error', reject);
  });
}

async function measure(
  name: string,
  pids: number[],
  call: () => Promise<unknown>,
): Promise<{ name: string; result: LoadResult; cpu: number[] }> {
  const windows = pids.map((pid) => cpuWindow(pid));
  const self = cpuWindow('self');
  const result = await drive(call, CONCURRENCY, DURATION_MS, 700, {
    onWindowStart: () => [...windows, self].forEach((w) => w.hooks.onWindowStart?.()),
    onWindowEnd: () => [...windows, self].forEach((w) => w.hooks.onWindowEnd?.()),
  });
  if (result.failures > 0) throw new Error(`${name}: ${result.failures} failures (${result.firstError})`);
  return { name, result, cpu: [...windows, self].map((w) => w.ms() / Math.max(1, result.calls)) };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-rest-'));
  const children: ChildProcess[] = [];
  try {
    const resources = join(dir, 'resources.json');
    writeFileSync(resources, JSON.stringify({ 'default/key/1': RESOURCE.toString('base64') }));
    const config = join(dir, 'cdh.json');
    writeFileSync(
      config,
      JSON.stringify({ kbc: { name: 'offline_fs_kbc', offline_fs: { resource_files: [resources] } } }),
    );
    const socket = `unix://${join(dir, 'cdh.sock')}`;
    const loadStart = loadavg()[0] ?? NaN;
    // Both at their default log level (info): the REST front's line per request is part of its cost.
    const daemon = await start('confidential-data-hub.js', ['-c', config, '--socket', socket], (line) =>
      line.includes('"msg":"serving"'),
    );
    children.push(daemon);
    let restUrl = '';
    const rest = await start('api-server-rest.js', ['-b', '127.0.0.1:0', '--cdh_addr', socket], (line) => {
      if (!line.includes('"API server listening"')) return false;
      restUrl = (JSON.parse(line) as { address: string }).address;
      return true;
    });
    children.push(rest);
    const url = `${restUrl}/cdh/resource/default/key/1`;
    const pids = [daemon.pid as number, rest.pid as number];

    const ttrpc = new CdhTtrpcClient(socket);
    const grpc = new CdhClient(socket, { timeoutMs: 10_000 });
    const keepAlive = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    const rows = [];
    rows.push(
      await measure('GetResource over ttrpc on the socket', pids, () =>
        ttrpc.getResource('kbs:///default/key/1', { timeoutMs: 10_000 }),
      ),
    );
    rows.push(
      await measure('GetResource over gRPC on the socket', pids, () =>
        grpc.getResource('kbs:///default/key/1', 10_000),
      ),
    );
    rows.push(await measure('REST, keep-alive connections', pids, () => get(keepAlive, url)));
    rows.push(await measure('REST, a new connection per request (as curl)', pids, () => get(false, url)));
    ttrpc.close();
    grpc.close();
    keepAlive.destroy();
    const loadEnd = loadavg()[0] ?? NaN;

    const base = rows[0]?.result.perSecond ?? NaN;
    const lines = [
      `Concurrency ${CONCURRENCY}, ${DURATION_MS} ms per scenario after 700 ms of warm-up, a 64-byte offline_fs resource; ` +
        `load average ${loadStart.toFixed(1)} at start / ${loadEnd.toFixed(1)} at end; Node ${process.version}.`,
      '',
      '| path | resources/s | vs ttrpc | p50 ms | p99 ms | daemon CPU ms/call | REST CPU ms/call | client CPU ms/call |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...rows.map(({ name, result, cpu }) => {
        const [d, r, c] = cpu.map((ms) => ms.toFixed(3));
        const restCpu = name.startsWith('REST') ? r : '–';
        return `| ${name} | ${Math.round(result.perSecond)} | ${(result.perSecond / base).toFixed(2)}× | ${result.p50Ms.toFixed(2)} | ${result.p99Ms.toFixed(2)} | ${d} | ${restCpu} | ${c} |`;
      }),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    for (const child of children) child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench/rest: ${(error as Error)?.stack ?? String(error)}\n`);
  process.exit(1);
});
