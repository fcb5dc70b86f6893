/**
 * The per-call cost of the API, in one run (issue: cached unseal near a trivial RPC, uncached
 * near a direct gateway Decrypt), all at concurrency 16 with load clients that are not grpc-js:
 *   - Health/Check, cached UnsealSecret over gRPC, and cached UnsealSecret over ttrpc, on one
 *     daemon (cache ttl 300, one secret);
 *   - uncached UnsealSecret over gRPC (ttl 0, 256 distinct secrets) and a direct Decrypt of the
 *     same data keys at the gateway emulator through the provider's own client (bench/decrypt.ts).
 * Each is run ROUNDS times, alternating; the ratios are of the calls summed over the rounds.
 *
 * Usage: node dist/bench/percall.js [DAEMON_BIN]   (default: the dist/ daemon; e.g. the bundle)
 * Environment: BENCH_DURATION_MS (default 3000), BENCH_ROUNDS (default 2), BENCH_PROFILE_DIR=DIR
 * runs the daemons under `node --cpu-prof` writing into DIR (one profile per daemon).
 */
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { spawnDaemon, tempDir, type DaemonProcess } from '../src/devtools/daemon';
import { prepareBench, runJson, type BenchSetup } from './harness';
import type { LoadResult } from './load';

const DURATION_MS = Number(process.env['BENCH_DURATION_MS'] ?? 3000);
const WARMUP_MS = 700;
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 2);
const CONCURRENCY = 16;

type Kind = 'Health/Check' | 'cached gRPC' | 'cached ttrpc' | 'uncached gRPC' | 'direct Decrypt';

interface Measure {
  readonly kind: Kind;
  readonly result: LoadResult;
}

function daemonOptions(
  config: Record<string, unknown>,
  bin: string | undefined,
): Parameters<typeof spawnDaemon>[0] {
  const profileDir = process.env['BENCH_PROFILE_DIR'];
  return {
    config,
    ...(bin === undefined ? {} : { bin }),
    ...(profileDir === undefined
      ? {}
      : {
          wrap: (node, args) => ({
            file: node,
            args: ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, ...args],
          }),
        }),
  };
}

async function measure(
  kind: Kind,
  setup: BenchSetup,
  cached: DaemonProcess,
  uncached: DaemonProcess,
  infoFile: string,
): Promise<Measure> {
  const load = (
    daemon: DaemonProcess,
    secrets: string,
    env: Record<string, string> = {},
  ): Promise<LoadResult> =>
    runJson<LoadResult>(
      'load.js',
      [daemon.target, secrets, CONCURRENCY, DURATION_MS, WARMUP_MS, daemon.child.pid as number],
      { env },
    );
  switch (kind) {
    case 'Health/Check':
      return { kind, result: await load(cached, setup.oneSecret, { BENCH_METHOD: 'health' }) };
    case 'cached gRPC':
      return { kind, result: await load(cached, setup.oneSecret) };
    case 'cached ttrpc':
      return { kind, result: await load(cached, setup.oneSecret, { BENCH_CLIENT: 'ttrpc' }) };
    case 'uncached gRPC':
      return { kind, result: await load(uncached, setup.manySecrets) };
    case 'direct Decrypt':
      return {
        kind,
        result: await runJson<LoadResult>('decrypt.js', [
          infoFile,
          setup.manySecrets,
          CONCURRENCY,
          DURATION_MS,
          WARMUP_MS,
          setup.emulator.pid,
        ]),
      };
  }
}

function fmt(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : '–';
}

function report(
  measures: Measure[],
  load: { start: number[]; end: number[] },
  bin: string | undefined,
): void {
  console.log(
    `Per-call run ${new Date().toISOString().slice(0, 16)} UTC, ${bin ?? 'dist/ daemon'}, c${CONCURRENCY}, ` +
      `${ROUNDS} rounds × ${DURATION_MS} ms, load average ${load.start[0]?.toFixed(1)} at start / ${load.end[0]?.toFixed(1)} at end.\n`,
  );
  console.log(
    '| scenario | round | calls/s | p50 ms | p99 ms | daemon (or emulator) CPU ms/call | load-gen CPU ms/call |',
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  const rounds = new Map<Kind, number>();
  for (const { kind, result } of measures) {
    const round = (rounds.get(kind) ?? 0) + 1;
    rounds.set(kind, round);
    console.log(
      `| ${kind} | ${round} | ${fmt(result.perSecond, 0)} | ${fmt(result.p50Ms, 2)} | ${fmt(result.p99Ms, 2)} | ` +
        `${fmt((result.cpuMs ?? NaN) / result.calls, 3)} | ${fmt((result.loadCpuMs ?? NaN) / result.calls, 3)} |`,
    );
  }
  const rate = (kind: Kind): number => {
    const of = measures.filter((m) => m.kind === kind).map((m) => m.result);
    return of.reduce((n, r) => n + r.calls, 0) / of.reduce((s, r) => s + r.seconds, 0);
  };
  console.log(
    `\ncached UnsealSecret gRPC / Health/Check: ${fmt(rate('cached gRPC') / rate('Health/Check'), 2)}× ` +
      `(goal ≥ 0.8×); cached ttrpc / Health/Check: ${fmt(rate('cached ttrpc') / rate('Health/Check'), 2)}×; ` +
      `uncached UnsealSecret / direct Decrypt: ${fmt(rate('uncached gRPC') / rate('direct Decrypt'), 2)}× (goal ≥ 0.8×)`,
  );
}

async function main(): Promise<void> {
  const bin = process.argv[2];
  const loadStart = loadavg();
  const setup = await prepareBench();
  const daemons: DaemonProcess[] = [];
  const work = tempDir('cdh-percall-');
  try {
    const info = join(work.path, 'emulator-info.json');
    writeFileSync(info, JSON.stringify(setup.info));
    const cached = await spawnDaemon(daemonOptions(setup.cachedConfig, bin));
    daemons.push(cached);
    const uncached = await spawnDaemon(daemonOptions(setup.uncachedConfig, bin));
    daemons.push(uncached);
    const kinds: Kind[] = ['Health/Check', 'cached gRPC', 'cached ttrpc', 'uncached gRPC', 'direct Decrypt'];
    const measures: Measure[] = [];
    // Unmeasured: a daemon's first seconds under load run cold code.
    await measure('cached gRPC', setup, cached, uncached, info);
    for (let round = 0; round < ROUNDS; round++)
      for (const kind of kinds) {
        const m = await measure(kind, setup, cached, uncached, info);
        if (m.result.failures > 0)
          throw new Error(`${kind}: ${m.result.failures} failures: ${m.result.firstError}`);
        measures.push(m);
      }
    report(measures, { start: loadStart, end: loadavg() }, bin);
  } finally {
    for (const daemon of daemons) await daemon.stop();
    await setup.close();
    work.cleanup();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`percall failed: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
