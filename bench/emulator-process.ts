/**
 * The KMS gateway emulator in a process of its own, so its CPU does not mix with the load
 * generator's or the daemon's. Prints one JSON line (EmulatorProcessInfo) once it listens,
 * then answers stdin commands, one per line: `stats` prints the emulator's counters as a
 * JSON line; closing stdin stops it.
 *
 * Usage: node dist/bench/emulator-process.js [CLIENT_KEY_SOURCE]   (default: vector)
 */
import { createInterface } from 'node:readline';
import type { ClientKeySource } from '../test/support/aliyun-credentials';
import { startAliyunScenario } from '../test/support/aliyun-scenario';

export interface EmulatorProcessInfo {
  readonly pid: number;
  readonly keyId: string;
  readonly connectTo: string;
  readonly credentialDir: string;
  readonly providerSettings: Record<string, string>;
  /** The `[aliyun]` section of a daemon config (snake_case). */
  readonly daemonConfig: Record<string, unknown>;
}

async function main(): Promise<void> {
  // The Alibaba-issued vector by default: its PKCS#12 (RC2-40, 3DES, SHA-1 MAC) is what a
  // per-call client parses in production.
  const source = (process.argv[2] ?? 'vector') as ClientKeySource;
  const scenario = await startAliyunScenario({ source });
  const info: EmulatorProcessInfo = {
    pid: process.pid,
    keyId: scenario.keyId,
    connectTo: scenario.emulator.connectTo,
    credentialDir: scenario.credentials.dir,
    providerSettings: { ...scenario.credentials.providerSettings },
    daemonConfig: scenario.daemonConfig,
  };
  process.stdout.write(`${JSON.stringify(info)}\n`);

  const commands = createInterface({ input: process.stdin });
  commands.on('line', (line) => {
    if (line.trim() === 'stats') process.stdout.write(`${JSON.stringify(scenario.emulator.stats)}\n`);
  });
  commands.on('close', () => {
    void scenario.close().then(() => process.exit(0));
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`emulator failed: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
