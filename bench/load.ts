/**
 * A gRPC load generator, run as its own process so it does not share the daemon's CPU
 * accounting: N concurrent callers send UnsealSecret for a fixed time and the process prints
 * one JSON line (a LoadResult).
 *
 * Usage: node dist/bench/load.js TARGET SECRET_FILE CONCURRENCY DURATION_MS [WARMUP_MS] [DAEMON_PID]
 *
 * The client is the lean HTTP/2 one (h2-grpc-client.ts); BENCH_CLIENT=grpc-js uses grpc-js's
 * (CdhClient), which costs several times more CPU per call in this process; BENCH_CLIENT=ttrpc
 * calls over ttrpc on the same socket (CdhTtrpcClient, one connection). BENCH_METHOD=health
 * calls grpc.health.v1.Health/Check instead of UnsealSecret (the lean client only).
 *
 * SECRET_FILE holds one sealed secret per line; the callers take them in turn, so with many
 * distinct secrets single-flight never merges concurrent calls. With DAEMON_PID, the daemon's
 * CPU time (utime + stime from /proc) over the measured window is reported too.
 */
import { readFileSync } from 'node:fs';
import { CdhClient } from '../src/client/cdh-client';
import { CdhTtrpcClient } from '../src/client/cdh-ttrpc-client';
import { RawGrpcClient } from './h2-grpc-client';

export interface LoadResult {
  /** Calls completed inside the measured window. */
  calls: number;
  /** Calls completed in all, warm-up included (to relate to KMS counters). */
  allCalls: number;
  failures: number;
  seconds: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU ms of the measured process (the daemon, or this process in-process) over the window. */
  cpuMs?: number;
  /** CPU ms of the load generator itself over the window. */
  loadCpuMs?: number;
  firstError?: string;
}

export interface DriveHooks {
  /** Called when the measured window opens and when it closes. */
  readonly onWindowStart?: () => void;
  readonly onWindowEnd?: () => void;
}

export function percentile(sortedMs: number[], p: number): number {
  if (sortedMs.length === 0) return NaN;
  return sortedMs[Math.min(sortedMs.length - 1, Math.floor((p / 100) * sortedMs.length))] as number;
}

/** Drives `call(i)` (i counts calls from 0) from `concurrency` loops for durationMs after a warm-up. */
export async function drive(
  call: (index: number) => Promise<unknown>,
  concurrency: number,
  durationMs: number,
  warmupMs = 500,
  hooks: DriveHooks = {},
): Promise<LoadResult> {
  const latencies: number[] = [];
  let failures = 0;
  let allCalls = 0;
  let next = 0;
  let firstError: string | undefined;
  let measuring = false;
  let stop = false;
  const loop = async (): Promise<void> => {
    while (!stop) {
      const t0 = process.hrtime.bigint();
      try {
        await call(next++);
        allCalls++;
        if (measuring) latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      } catch (error) {
        if (measuring) failures++;
        firstError ??= (error as { details?: string }).details ?? String(error);
      }
    }
  };
  const loops = Array.from({ length: concurrency }, loop);
  await new Promise((r) => setTimeout(r, warmupMs));
  measuring = true;
  hooks.onWindowStart?.();
  const started = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, durationMs));
  measuring = false;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  hooks.onWindowEnd?.();
  stop = true;
  await Promise.all(loops);
  latencies.sort((a, b) => a - b);
  return {
    calls: latencies.length,
    allCalls,
    failures,
    seconds,
    perSecond: latencies.length / seconds,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    ...(firstError === undefined ? {} : { firstError }),
  };
}

/** utime + stime of a process in ms, from /proc/<pid>/stat (Linux). */
export function processCpuMs(pid: number | 'self'): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1000) / CLOCK_TICKS_PER_SECOND;
}

/** USER_HZ: 100 on every Linux this runs on (sysconf(_SC_CLK_TCK) is not reachable from Node). */
const CLOCK_TICKS_PER_SECOND = 100;

/** A field of /proc/<pid>/status in MB (VmRSS, VmHWM). */
export function processMemoryMb(pid: number | 'self', field: 'VmRSS' | 'VmHWM'): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${field}:`));
  return Number(/(\d+)/.exec(line ?? '')?.[1] ?? NaN) / 1024;
}

/** The secrets of a file, one per non-empty line. */
export function readSecrets(file: string): Buffer[] {
  const secrets = readFileSync(file, 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => Buffer.from(line, 'utf8'));
  if (secrets.length === 0) throw new Error(`${file} holds no sealed secret`);
  return secrets;
}

/** Measures a process's CPU over the drive window. */
export function cpuWindow(pid: number | 'self'): { hooks: DriveHooks; ms(): number } {
  let start = 0;
  let end = 0;
  return {
    hooks: {
      onWindowStart: () => (start = processCpuMs(pid)),
      onWindowEnd: () => (end = processCpuMs(pid)),
    },
    ms: () => end - start,
  };
}

if (require.main === module) {
  const [target, secretFile, concurrency, durationMs, warmupMs, daemonPid] = process.argv.slice(2);
  if (!target || !secretFile || !concurrency || !durationMs) {
    process.stderr.write(
      'usage: load.js TARGET SECRET_FILE CONCURRENCY DURATION_MS [WARMUP_MS] [DAEMON_PID]\n',
    );
    process.exit(2);
  }
  const secrets = readSecrets(secretFile);
  const kind = process.env['BENCH_CLIENT'];
  const client =
    kind === 'grpc-js'
      ? new CdhClient(target, { timeoutMs: 30_000 })
      : kind === 'ttrpc'
        ? new CdhTtrpcClient(target)
        : new RawGrpcClient(target);
  const daemonCpu = daemonPid ? cpuWindow(Number(daemonPid)) : undefined;
  const ownCpu = cpuWindow('self');
  // BENCH_METHOD=health: grpc.health.v1.Health/Check instead (a trivial RPC on the same socket).
  const health = process.env['BENCH_METHOD'] === 'health';
  if (health && !(client instanceof RawGrpcClient))
    throw new Error('BENCH_METHOD=health needs the lean client');
  void drive(
    health
      ? () => (client as RawGrpcClient).healthCheck()
      : (i) => client.unsealSecret(secrets[i % secrets.length] as Buffer),
    Number(concurrency),
    Number(durationMs),
    Number(warmupMs ?? 500),
    {
      onWindowStart: () => {
        daemonCpu?.hooks.onWindowStart?.();
        ownCpu.hooks.onWindowStart?.();
      },
      onWindowEnd: () => {
        daemonCpu?.hooks.onWindowEnd?.();
        ownCpu.hooks.onWindowEnd?.();
      },
    },
  ).then((result) => {
    client.close();
    const cpu = daemonCpu ? { cpuMs: daemonCpu.ms() } : {};
    process.stdout.write(`${JSON.stringify({ ...result, ...cpu, loadCpuMs: ownCpu.ms() })}\n`);
  });
}
