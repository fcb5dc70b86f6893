/**
 * Start-up benchmark: time from exec to health SERVING (median of N starts) and the idle
 * daemon's RSS. Usage: node dist/bench/startup.js [starts=5]
 */
import { readFileSync } from 'node:fs';
import { spawnDaemon } from '../test/support/daemon';

function vm(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${field}:`));
  return Number(/(\d+)/.exec(line ?? '')?.[1] ?? NaN) / 1024;
}

export async function measureStartup(
  starts: number,
): Promise<{ medianMs: number; samplesMs: number[]; idleRssMb: number }> {
  const samplesMs: number[] = [];
  let idleRssMb = 0;
  for (let i = 0; i < starts; i++) {
    const begin = process.hrtime.bigint();
    const daemon = await spawnDaemon();
    samplesMs.push(Number(process.hrtime.bigint() - begin) / 1e6);
    if (i === starts - 1) {
      await new Promise((r) => setTimeout(r, 1000));
      idleRssMb = vm(daemon.child.pid as number, 'VmRSS');
    }
    await daemon.stop();
    daemon.cleanup();
  }
  const sorted = [...samplesMs].sort((a, b) => a - b);
  return { medianMs: sorted[Math.floor(sorted.length / 2)] as number, samplesMs, idleRssMb };
}

if (require.main === module) {
  const starts = Number(process.argv[2] ?? 5);
  void measureStartup(starts).then((r) => {
    console.log(
      `exec -> SERVING: median ${r.medianMs.toFixed(0)} ms over ${starts} starts (${r.samplesMs.map((s) => s.toFixed(0)).join(', ')}); idle VmRSS ${r.idleRssMb.toFixed(1)} MB`,
    );
  });
}
