/**
 * Start-up benchmark: exec → SERVING (median of N starts) and the idle daemon's RSS.
 *
 * exec → SERVING is the daemon's own "serving" log line (written right after health turns
 * SERVING) minus the moment just before spawn, both on this machine's wall clock in ms; no
 * client polls the daemon while it starts, so nothing competes with it for the CPU. The CPU
 * the daemon used to get there (utime + stime) is reported too: on a shared, noisy machine it
 * varies less than the wall time. Bare `node` start-up is measured the same way for reference.
 *
 * Usage: node dist/bench/startup.js [starts=5] [DAEMON_JS]   (another build's daemon, to compare)
 */
import { spawn } from 'node:child_process';
import { spawnDaemon, type SpawnDaemonOptions } from '../src/devtools/daemon';
import { processCpuMs, processMemoryMb } from './load';

export interface StartupResult {
  /** Median exec → SERVING, ms. */
  medianMs: number;
  samplesMs: number[];
  /** Median CPU ms (utime + stime) of the daemon up to SERVING. */
  medianCpuMs: number;
  /** Median exec → first line of `node -e` printing the time: Node's own start-up. */
  bareNodeMs: number;
  /** VmRSS of the last daemon, idle for a second after SERVING (before any call). */
  idleRssMb: number;
  /** VmRSS of a bare `node` idle for a second. */
  bareNodeIdleRssMb: number;
  /**
   * With `settleMs`: VmRSS of the last daemon and of a bare node both idle that long (V8's
   * memory reducer gives pages back some seconds after allocation stops; a guest's daemon idles
   * for minutes), before any call; and again after one Health/Check, idle as long (the first
   * call loads the codecs and runs http2's and grpc-js's call path). Undefined without.
   */
  settled?: { ms: number; daemonRssMb: number; bareNodeRssMb: number };
  settledAfterOneCall?: { ms: number; daemonRssMb: number; bareNodeRssMb: number };
}

/** VmRSS of `pid` and of a bare node started now, both after `ms` of idling. */
export async function settledRssMb(
  pid: number,
  ms: number,
): Promise<{ daemonRssMb: number; bareNodeRssMb: number }> {
  const bare = spawn(process.execPath, ['-e', `setTimeout(() => {}, ${ms + 2000})`], { stdio: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, ms));
    return {
      daemonRssMb: processMemoryMb(pid, 'VmRSS'),
      bareNodeRssMb: processMemoryMb(bare.pid as number, 'VmRSS'),
    };
  } finally {
    bare.kill();
  }
}

/** VmRSS of a bare `node` that has done nothing for a second. */
export async function bareNodeIdleRssMb(): Promise<number> {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 3000)'], { stdio: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, 1000));
    return processMemoryMb(child.pid as number, 'VmRSS');
  } finally {
    child.kill();
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

async function waitFor<T>(probe: () => T | undefined, what: string, timeoutMs = 15_000): Promise<T> {
  const giveUp = Date.now() + timeoutMs;
  for (;;) {
    const found = probe();
    if (found !== undefined) return found;
    if (Date.now() > giveUp) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Wall ms from spawn to a bare `node -e` reporting its first statement. */
async function bareNodeStartMs(): Promise<number> {
  const spawnedAt = Date.now();
  const child = spawn(process.execPath, ['-e', 'process.stdout.write(String(Date.now()))']);
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  await new Promise((resolve) => child.once('exit', resolve));
  return Number(out) - spawnedAt;
}

export async function measureStartup(
  starts: number,
  options: Pick<SpawnDaemonOptions, 'config' | 'env' | 'bin'> & { settleMs?: number } = {},
): Promise<StartupResult> {
  const { settleMs, ...spawnOptions } = options;
  let settled: StartupResult['settled'];
  let settledAfterOneCall: StartupResult['settledAfterOneCall'];
  const samplesMs: number[] = [];
  const cpuMs: number[] = [];
  const bare: number[] = [];
  let idleRssMb = NaN;
  for (let i = 0; i < starts; i++) {
    bare.push(await bareNodeStartMs());
    const spawnedAt = Date.now();
    const daemon = await spawnDaemon({ ...spawnOptions, waitReady: false });
    try {
      const serving = await waitFor(
        () => daemon.logLines.find((line) => line.includes('"msg":"serving"')),
        `the daemon's serving line (stderr: ${daemon.stderr()})`,
      );
      const pid = daemon.child.pid as number;
      cpuMs.push(processCpuMs(pid));
      samplesMs.push(Date.parse((JSON.parse(serving) as { time: string }).time) - spawnedAt);
      const last = i === starts - 1;
      if (last) {
        await new Promise((r) => setTimeout(r, 1000));
        idleRssMb = processMemoryMb(pid, 'VmRSS');
        if (settleMs !== undefined) settled = { ms: settleMs, ...(await settledRssMb(pid, settleMs - 1000)) };
      }
      const client = daemon.client();
      const status = await client.check('', 2000);
      if (status !== 'SERVING') throw new Error(`health says ${status} after the serving line`);
      if (last && settleMs !== undefined)
        settledAfterOneCall = { ms: settleMs, ...(await settledRssMb(pid, settleMs)) };
      await daemon.stop();
    } finally {
      daemon.cleanup();
    }
  }
  return {
    medianMs: median(samplesMs),
    samplesMs,
    medianCpuMs: median(cpuMs),
    bareNodeMs: median(bare),
    idleRssMb,
    bareNodeIdleRssMb: await bareNodeIdleRssMb(),
    ...(settled === undefined ? {} : { settled }),
    ...(settledAfterOneCall === undefined ? {} : { settledAfterOneCall }),
  };
}

if (require.main === module) {
  const starts = Number(process.argv[2] ?? 5);
  const bin = process.argv[3];
  void measureStartup(starts, bin === undefined ? {} : { bin }).then((r) => {
    console.log(
      `exec -> SERVING: median ${r.medianMs.toFixed(0)} ms over ${starts} starts ` +
        `(${r.samplesMs.join(', ')}); CPU to SERVING median ${r.medianCpuMs.toFixed(0)} ms; ` +
        `bare node ${r.bareNodeMs} ms; idle VmRSS ${r.idleRssMb.toFixed(1)} MB (bare node ${r.bareNodeIdleRssMb.toFixed(1)} MB)`,
    );
    process.exit(0);
  });
}
