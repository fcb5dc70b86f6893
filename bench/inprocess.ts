/**
 * The in-process floor: the same unseal as the daemon's (SecretUnsealer over the cached,
 * single-flighted registry, same config, same emulator), called directly with no gRPC and no
 * socket, by N concurrent callers in this process. Prints one JSON line (a LoadResult whose
 * cpuMs is this process's CPU over the measured window, plus vmHwmMb).
 *
 * Usage: node dist/bench/inprocess.js CONFIG_FILE SECRET_FILE CONCURRENCY DURATION_MS [WARMUP_MS]
 */
import pino from 'pino';
import { loadConfig } from '../src/config/load';
import { createLogger } from '../src/log';
import { buildServices } from '../src/app/services';
import { cpuWindow, drive, processMemoryMb, readSecrets } from './load';

async function main(): Promise<void> {
  const [configFile, secretFile, concurrency, durationMs, warmupMs] = process.argv.slice(2);
  if (!configFile || !secretFile || !concurrency || !durationMs) {
    process.stderr.write('usage: inprocess.js CONFIG_FILE SECRET_FILE CONCURRENCY DURATION_MS [WARMUP_MS]\n');
    process.exit(2);
  }
  const { config } = loadConfig(configFile, process.env);
  // Same level as the daemon; to stderr, as stdout carries the result.
  const logger = createLogger(config.log.level, pino.destination({ fd: 2, sync: false }));
  const { unsealer, close } = await buildServices(config, { logger });
  const secrets = readSecrets(secretFile);
  const cpu = cpuWindow('self');
  const result = await drive(
    (i) => unsealer.unseal(secrets[i % secrets.length] as Buffer, { signal: new AbortController().signal }),
    Number(concurrency),
    Number(durationMs),
    Number(warmupMs ?? 500),
    cpu.hooks,
  );
  const vmHwmMb = processMemoryMb('self', 'VmHWM');
  await close();
  process.stdout.write(`${JSON.stringify({ ...result, cpuMs: cpu.ms(), vmHwmMb })}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`in-process bench failed: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
