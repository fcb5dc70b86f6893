import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AliyunScenario } from '../../src/emulators/aliyun/scenario';
import { spawnDaemon, type DaemonProcess } from './daemon';
import { writeResourceFile } from './kbs';

/** `secret keyprovider ali …` flags for the scenario's client key and KMS key. */
export function keyproviderAliFlags(kms: AliyunScenario, keyId = kms.keyId): string[] {
  const { paths, kmsInstanceId } = kms.credentials;
  return [
    'ali',
    '--kms-instance-id',
    kmsInstanceId,
    '--key-id',
    keyId,
    '--client-key-file-path',
    paths.clientKey,
    '--password-file-path',
    paths.password,
    '--cert-path',
    paths.instanceCa,
  ];
}

/**
 * The unwrapping side of the key-provider tests: the KEK written to `<dir>/kek.bin` (for
 * `secret keyprovider kbs --kek-file`) and served by offline_fs at `resourcePath`, and a daemon
 * process at log level trace with that KBC and the scenario's aliyun config.
 */
export async function startKekDaemon(
  dir: string,
  kms: AliyunScenario,
  resourcePath: string,
  kek: Buffer,
): Promise<{ daemon: DaemonProcess; kekFile: string }> {
  const kekFile = join(dir, 'kek.bin');
  writeFileSync(kekFile, kek);
  const resources = join(dir, 'resources.json');
  writeResourceFile(resources, { [resourcePath]: kek });
  const daemonDir = join(dir, 'daemon');
  mkdirSync(daemonDir);
  const daemon = await spawnDaemon({
    dir: daemonDir,
    config: {
      log: { level: 'trace' },
      kbc: { name: 'offline_fs_kbc', offline_fs: { resource_files: [resources] } },
      ...kms.daemonConfig,
    },
  });
  return { daemon, kekFile };
}
