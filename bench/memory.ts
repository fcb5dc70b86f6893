/**
 * What node flags cost and save in memory: the daemon (default: the bundle) started with each
 * set of flags in turn, alternating, and for each its idle VmRSS one second after SERVING, its
 * VmHWM and idle VmRSS after the standard load (uncached then cached UnsealSecret at c16), and
 * the cached unseal/s and daemon CPU per call of that load (the throughput cost of the flags).
 *
 * Usage: node dist/bench/memory.js [ROUNDS=2] [DAEMON_BIN]
 * Environment: BENCH_FLAG_SETS='[[], ["--max-semi-space-size=1"]]' (JSON), BENCH_DURATION_MS.
 */
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../src/package-info';
import { spawnDaemon } from '../src/devtools/daemon';
import { prepareBench, runJson, type BenchSetup } from './harness';
import { processMemoryMb, type LoadResult } from './load';

const DURATION_MS = Number(process.env['BENCH_DURATION_MS'] ?? 3000);
const WARMUP_MS = 700;

interface Sample {
  readonly flags: readonly string[];
  readonly idleMb: number;
  readonly hwmMb: number;
  readonly idleAfterLoadMb: number;
  readonly cached: LoadResult;
  readonly bareMb: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function bareNodeRss(): Promise<number> {
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 3000)'], { stdio: 'ignore' });
  await sleep(1000);
  const mb = processMemoryMb(child.pid as number, 'VmRSS');
  child.kill();
  return mb;
}

async function sample(setup: BenchSetup, bin: string, flags: readonly string[]): Promise<Sample> {
  const bareMb = await bareNodeRss();
  const daemon = await spawnDaemon({
    config: setup.uncachedConfig,
    bin,
    wrap: (node, args) => ({ file: node, args: [...flags, ...args] }),
  });
  const cachedDaemon = await spawnDaemon({
    config: setup.cachedConfig,
    bin,
    wrap: (node, args) => ({ file: node, args: [...flags, ...args] }),
  });
  try {
    const pid = daemon.child.pid as number;
    await sleep(1000);
    const idleMb = processMemoryMb(pid, 'VmRSS');
    await runJson<LoadResult>('load.js', [daemon.target, setup.manySecrets, 16, DURATION_MS, WARMUP_MS, pid]);
    const hwmMb = processMemoryMb(pid, 'VmHWM');
    await sleep(1000);
    const idleAfterLoadMb = processMemoryMb(pid, 'VmRSS');
    const cachedPid = cachedDaemon.child.pid as number;
    const cached = await runJson<LoadResult>('load.js', [
      cachedDaemon.target,
      setup.oneSecret,
      16,
      DURATION_MS,
      WARMUP_MS,
      cachedPid,
    ]);
    return { flags, idleMb, hwmMb, idleAfterLoadMb, cached, bareMb };
  } finally {
    await daemon.stop();
    await cachedDaemon.stop();
  }
}

async function main(): Promise<void> {
  const rounds = Number(process.argv[2] ?? 2);
  const bin = process.argv[3] ?? join(PACKAGE_ROOT, 'dist', 'bundle', 'confidential-data-hub.js');
  const flagSets = JSON.parse(
    process.env['BENCH_FLAG_SETS'] ?? '[[], ["--max-semi-space-size=1"]]',
  ) as string[][];
  const start = loadavg()[0] ?? NaN;
  const setup = await prepareBench();
  const samples: Sample[] = [];
  try {
    for (let round = 0; round < rounds; round++)
      for (const flags of flagSets) samples.push(await sample(setup, bin, flags));
  } finally {
    await setup.close();
  }
  console.log(
    `Memory run ${new Date().toISOString().slice(0, 16)} UTC, ${bin}, load average ${start.toFixed(1)} at start / ${loadavg()[0]?.toFixed(1)} at end.\n`,
  );
  console.log(
    '| node flags | bare node VmRSS MB | idle VmRSS MB | VmHWM after uncached c16 MB | idle VmRSS after it MB | cached unseal/s c16 | daemon CPU ms/call |',
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const s of samples)
    console.log(
      `| ${s.flags.join(' ') || '(none)'} | ${s.bareMb.toFixed(1)} | ${s.idleMb.toFixed(1)} | ${s.hwmMb.toFixed(1)} | ${s.idleAfterLoadMb.toFixed(1)} | ` +
        `${s.cached.perSecond.toFixed(0)} | ${((s.cached.cpuMs ?? NaN) / s.cached.calls).toFixed(3)} |`,
    );
}

main().catch((error: unknown) => {
  process.stderr.write(`memory failed: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
