/**
 * A direct Decrypt load generator: N concurrent callers send the dkms gateway the very request
 * the daemon's client_key provider sends (HTTPS, protobuf DecryptRequest, RSA-signed headers,
 * one kept-alive connection), through the provider's own gateway client, with no daemon and no
 * gRPC in between. It is what an uncached UnsealSecret is compared with.
 *
 * Usage: node dist/bench/decrypt.js INFO_FILE SECRET_FILE CONCURRENCY DURATION_MS [WARMUP_MS] [EMULATOR_PID]
 * INFO_FILE: the emulator's EmulatorInfo as JSON (bench/harness.ts); SECRET_FILE: sealed
 * secrets, one per line (their encrypted data keys are what is decrypted).
 */
import { readFileSync } from 'node:fs';
import { defaultConfig } from '../src/config/types';
import { silentLogger } from '../src/log';
import { createClientKeyProvider } from '../src/providers/aliyun/client-key';
import { decodeUnverifiedPayload, splitSealedSecret } from '../src/secret/compact';
import type { EmulatorInfo } from './harness';
import { cpuWindow, drive, readSecrets } from './load';

interface DataKey {
  readonly ciphertext: Buffer;
  readonly keyId: string;
  readonly annotations: Record<string, string>;
}

function dataKeyOf(sealed: Buffer): DataKey {
  const payload = JSON.parse(decodeUnverifiedPayload(splitSealedSecret(sealed).payload).toString('utf8')) as {
    encrypted_key: string;
    key_id: string;
    annotations: Record<string, string>;
  };
  return {
    ciphertext: Buffer.from(payload.encrypted_key, 'base64'),
    keyId: payload.key_id,
    annotations: payload.annotations,
  };
}

async function main(): Promise<void> {
  const [infoFile, secretFile, concurrency, durationMs, warmupMs, emulatorPid] = process.argv.slice(2);
  if (!infoFile || !secretFile || !concurrency || !durationMs) {
    process.stderr.write(
      'usage: decrypt.js INFO_FILE SECRET_FILE CONCURRENCY DURATION_MS [WARMUP_MS] [EMULATOR_PID]\n',
    );
    process.exit(2);
  }
  const info = JSON.parse(readFileSync(infoFile, 'utf8')) as EmulatorInfo;
  const keys = readSecrets(secretFile).map(dataKeyOf);
  const config = defaultConfig();
  config.aliyun.credentialDir = info.credentialDir;
  config.aliyun.dkmsConnectTo = info.connectTo;
  const provider = await createClientKeyProvider(info.providerSettings, { config, logger: silentLogger() });
  const decrypter = provider.decrypter;
  if (decrypter === undefined) throw new Error('client_key provider without a decrypter');
  const signal = new AbortController().signal;
  const emulatorCpu = emulatorPid ? cpuWindow(Number(emulatorPid)) : undefined;
  const ownCpu = cpuWindow('self');
  const result = await drive(
    async (i) => {
      const key = keys[i % keys.length] as DataKey;
      (await decrypter.decrypt(key.ciphertext, key.keyId, key.annotations, { signal })).fill(0);
    },
    Number(concurrency),
    Number(durationMs),
    Number(warmupMs ?? 500),
    {
      onWindowStart: () => {
        emulatorCpu?.hooks.onWindowStart?.();
        ownCpu.hooks.onWindowStart?.();
      },
      onWindowEnd: () => {
        emulatorCpu?.hooks.onWindowEnd?.();
        ownCpu.hooks.onWindowEnd?.();
      },
    },
  );
  await provider.close?.();
  const cpu = emulatorCpu ? { cpuMs: emulatorCpu.ms() } : {};
  process.stdout.write(`${JSON.stringify({ ...result, ...cpu, loadCpuMs: ownCpu.ms() })}\n`);
}

void main();
