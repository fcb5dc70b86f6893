/**
 * A gRPC load generator, run as its own process so it does not share the daemon's CPU
 * accounting: N concurrent callers send UnsealSecret for a fixed time and the process prints
 * one JSON line {calls, failures, seconds, perSecond, p50Ms, p99Ms, firstError}.
 *
 * Usage: node dist/bench/load.js TARGET SECRET_FILE CONCURRENCY DURATION_MS [WARMUP_MS]
 */
import { readFileSync } from 'node:fs';
import { CdhClient } from '../src/client/cdh-client';

export interface LoadResult {
  calls: number;
  failures: number;
  seconds: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  firstError?: string;
}

export function percentile(sortedMs: number[], p: number): number {
  if (sortedMs.length === 0) return NaN;
  return sortedMs[Math.min(sortedMs.length - 1, Math.floor((p / 100) * sortedMs.length))] as number;
}

/** Drives `call` from `concurrency` loops for durationMs after a warm-up. */
export async function drive(
  call: () => Promise<unknown>,
  concurrency: number,
  durationMs: number,
  warmupMs = 500,
): Promise<LoadResult> {
  const latencies: number[] = [];
  let failures = 0;
  let firstError: string | undefined;
  let measuring = false;
  let stop = false;
  const loop = async (): Promise<void> => {
    while (!stop) {
      const t0 = process.hrtime.bigint();
      try {
        await call();
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
  const started = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, durationMs));
  measuring = false;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  stop = true;
  await Promise.all(loops);
  latencies.sort((a, b) => a - b);
  return {
    calls: latencies.length,
    failures,
    seconds,
    perSecond: latencies.length / seconds,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    ...(firstError === undefined ? {} : { firstError }),
  };
}

if (require.main === module) {
  const [target, secretFile, concurrency, durationMs, warmupMs] = process.argv.slice(2);
  if (!target || !secretFile || !concurrency || !durationMs) {
    process.stderr.write('usage: load.js TARGET SECRET_FILE CONCURRENCY DURATION_MS [WARMUP_MS]\n');
    process.exit(2);
  }
  const secret = readFileSync(secretFile);
  const client = new CdhClient(target, { timeoutMs: 30_000 });
  void drive(
    () => client.unsealSecret(secret),
    Number(concurrency),
    Number(durationMs),
    Number(warmupMs ?? 500),
  ).then((result) => {
    client.close();
    process.stdout.write(`${JSON.stringify(result)}\n`);
  });
}
