import { rmSync } from 'node:fs';
import {
  writeClientKeyCredentials,
  type ClientKeyCredentials,
  type ClientKeySource,
} from './aliyun-credentials';
import { DkmsEmulator } from './dkms-emulator';

/**
 * A complete offline Alibaba Cloud KMS set-up: the gateway emulator on 127.0.0.1, a
 * credential dir with a client key it accepts, and one symmetric key. Used by the demo,
 * the CLI tests and the benchmarks.
 */
export interface AliyunScenario {
  readonly emulator: DkmsEmulator;
  readonly credentials: ClientKeyCredentials;
  /** The KMS key that wraps data keys. */
  readonly keyId: string;
  /** The daemon config section (snake_case) pointing at the emulator and credential dir. */
  readonly daemonConfig: {
    aliyun: { credential_dir: string; dkms_connect_to: string; request_timeout_ms: number };
  };
  /** Environment for `secret` and other processes that honour the overrides. */
  readonly env: Record<string, string>;
  close(): Promise<void>;
}

export async function startAliyunScenario(
  options: { source?: ClientKeySource; instanceId?: string; credentialDir?: string } = {},
): Promise<AliyunScenario> {
  const instanceId = options.instanceId ?? 'kst-demo0000000000000';
  const emulator = await DkmsEmulator.start({ instanceId });
  const credentials = await writeClientKeyCredentials({
    caPem: emulator.caPem,
    kmsInstanceId: instanceId,
    source: options.source ?? 'forge-aes256',
    ...(options.credentialDir === undefined ? {} : { dir: options.credentialDir }),
  });
  emulator.addClientKey(credentials.clientKeyId, credentials.certificatePem);
  const keyId = emulator.addKey();
  return {
    emulator,
    credentials,
    keyId,
    daemonConfig: {
      aliyun: {
        credential_dir: credentials.dir,
        dkms_connect_to: emulator.connectTo,
        request_timeout_ms: 5000,
      },
    },
    env: { ALIYUN_DKMS_CONNECT_TO: emulator.connectTo, ALIYUN_IN_GUEST_KEY_PATH: credentials.dir },
    async close() {
      await emulator.close();
      if (options.credentialDir === undefined) rmSync(credentials.dir, { recursive: true, force: true });
    },
  };
}
