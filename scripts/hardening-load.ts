/**
 * The full hardening load run: 10,000 UnsealSecret calls (or the count given) at concurrency 64
 * against the daemon process, valid and invalid mixed, the gateway emulator failing 5 % of its
 * calls. Prints the figures (one summary block, then the report as JSON).
 *
 *   npm run build && CDH_LOOPBACK_ONLY=1 node dist/scripts/hardening-load.js [COUNT]
 */
import { LOOPBACK_ONLY_ENV } from '../src/net-guard';
import { runHardeningLoad } from '../test/support/hardening-load';

async function main(): Promise<void> {
  process.env[LOOPBACK_ONLY_ENV] = '1';
  const total = Number(process.argv[2] ?? 10_000);
  const report = await runHardeningLoad({
    total,
    onProgress: (done) => process.stderr.write(`\r${done}/${total}`),
  });
  process.stderr.write('\n');
  const failed = Object.values(report.failures).reduce((a, b) => a + b, 0);
  const lines = [
    `calls ${report.total} at concurrency ${report.concurrency}, KMS failing ${report.kmsFailRatio * 100} % ` +
      `(${report.emulator.injectedFailures} injected of ${report.emulator.decryptRequests} Decrypt requests)`,
    `duration ${(report.durationMs / 1000).toFixed(1)} s, ${report.callsPerSecond} calls/s`,
    `ok ${report.ok}, wrong plaintexts ${report.wrongPlaintexts}, failed ${failed} ` +
      `(uncatalogued ${report.uncatalogued.length}, unexpected ${report.unexpected.length})`,
    `failures: ${Object.entries(report.failures)
      .map(([what, n]) => `${what} ${n}`)
      .join(', ')}`,
    `daemon alive at the end: ${report.daemonAlive}, exit code after SIGTERM: ${report.exitCode}`,
    `RSS start ${report.memory.rssStartKb} kB, after warm-up ${report.memory.rssAfterWarmupKb} kB, ` +
      `end ${report.memory.rssEndKb} kB; VmHWM ${report.memory.vmHwmKb} kB`,
  ];
  process.stdout.write(`${lines.join('\n')}\n${JSON.stringify(report)}\n`);
  const clean =
    report.daemonAlive &&
    report.exitCode === 0 &&
    report.wrongPlaintexts === 0 &&
    report.uncatalogued.length === 0 &&
    report.unexpected.length === 0;
  process.exitCode = clean ? 0 : 1;
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
