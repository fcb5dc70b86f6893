/**
 * `npm run bench:kbc`: GetResource latency through cc_kbc with a warm token vs through
 * offline_fs, one caller (concurrency 1) over the socket (gRPC, the grpc-js client).
 *
 *   - `cdh-emulator kbs` (HTTP on 127.0.0.1, jose producer) and `cdh-emulator aa` in their own
 *     processes; the AA hands out an EC P-256 TEE key (upstream's default)
 *   - daemon A: cc_kbc; daemon B: offline_fs_kbc with the same 64-byte resource in a file
 *   - BENCH_CALLS (default 500) calls each after 50 warm-up calls; prints markdown
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { CdhClient } from '../src/client/cdh-client';
import { spawnDaemon, tempDir } from '../src/devtools/daemon';
import { EmulatorProcess } from '../src/devtools/emulator-process';

const CALLS = Number(process.env['BENCH_CALLS'] ?? 500);
const WARMUP = 50;
const URI = 'kbs:///default/bench/resource';
const RESOURCE = Buffer.alloc(64, 0x5a);

async function measure(client: CdhClient): Promise<{ p50: number; p95: number; p99: number; mean: number }> {
  for (let i = 0; i < WARMUP; i++) await client.getResource(URI);
  const samples: number[] = [];
  for (let i = 0; i < CALLS; i++) {
    const start = process.hrtime.bigint();
    const answer = await client.getResource(URI);
    samples.push(Number(process.hrtime.bigint() - start) / 1e6);
    if (!answer.equals(RESOURCE)) throw new Error('wrong resource');
  }
  samples.sort((a, b) => a - b);
  const at = (q: number): number =>
    samples[Math.min(samples.length - 1, Math.floor(q * samples.length))] ?? 0;
  return {
    p50: at(0.5),
    p95: at(0.95),
    p99: at(0.99),
    mean: samples.reduce((a, b) => a + b, 0) / samples.length,
  };
}

async function main(): Promise<void> {
  const work = tempDir('cdh-bench-kbc-');
  const resources = join(work.path, 'resources');
  mkdirSync(join(resources, 'default/bench'), { recursive: true });
  writeFileSync(join(resources, 'default/bench/resource'), RESOURCE);
  const offlineFile = join(work.path, 'offline.json');
  writeFileSync(offlineFile, JSON.stringify({ 'default/bench/resource': RESOURCE.toString('base64') }));

  const kbs = await EmulatorProcess.start('kbs', ['--resources', resources]);
  const url = (kbs.description as { url: string }).url;
  const aaSocket = `unix://${join(work.path, 'aa.sock')}`;
  const aa = await EmulatorProcess.start('aa', ['--socket', aaSocket, '--kbs-url', url]);
  const ccKbc = await spawnDaemon({
    dir: mkdirSync(join(work.path, 'cc'), { recursive: true }) ?? join(work.path, 'cc'),
    config: { aa: { aa_socket: aaSocket }, kbc: { name: 'cc_kbc', url } },
  });
  const offline = await spawnDaemon({
    dir: mkdirSync(join(work.path, 'offline'), { recursive: true }) ?? join(work.path, 'offline'),
    config: { kbc: { name: 'offline_fs_kbc', offline_fs: { resource_files: [offlineFile] } } },
  });
  try {
    const cc = await measure(ccKbc.client());
    const fs = await measure(offline.client());
    const kbsStats = (await kbs.stats())['kbs'] as { attest: number; resourceRequests: number };
    const fmt = (n: number): string => n.toFixed(2);
    console.log(
      `### GetResource: cc_kbc (warm token) vs offline_fs, ${new Date().toISOString().slice(0, 16)} UTC\n`,
    );
    console.log(
      `${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(
          ' ',
        )}, Node ${process.version}; ${CALLS} calls each after ${WARMUP} warm-up, one caller, gRPC over the Unix socket\n`,
    );
    console.log('| KBC | p50 ms | p95 ms | p99 ms | mean ms |');
    console.log('| --- | ---: | ---: | ---: | ---: |');
    console.log(
      `| cc_kbc (HTTP KBS emulator, EC P-256 JWE) | ${fmt(cc.p50)} | ${fmt(cc.p95)} | ${fmt(cc.p99)} | ${fmt(cc.mean)} |`,
    );
    console.log(`| offline_fs | ${fmt(fs.p50)} | ${fmt(fs.p95)} | ${fmt(fs.p99)} | ${fmt(fs.mean)} |`);
    console.log(
      `\nKBS: ${kbsStats.attest} attestation(s) for ${kbsStats.resourceRequests} resource requests (the token stayed warm).`,
    );
  } finally {
    await ccKbc.stop();
    await offline.stop();
    await aa.close();
    await kbs.close();
    work.cleanup();
  }
}

main().catch((error: unknown) => {
  console.error(`bench failed: ${(error as Error).stack ?? String(error)}`);
  process.exit(1);
});
