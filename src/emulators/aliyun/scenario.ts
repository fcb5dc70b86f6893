import { rmSync } from 'node:fs';
import {
  writeClientKeyCredentials,
  type ClientKeyCredentials,
  type ClientKeySource,
} from './client-key-files';
import { DkmsEmulator } from './dkms-gateway';

/** The `[aliyun]` part of a daemon config file (snake_case) pointing at a gateway and a credential dir. */
export interface AliyunDaemonConfig {
  aliyun: { credential_dir: string; dkms_connect_to: string; request_timeout_ms: number };
}

export function clientKeyDaemonConfig(
  gateway: Pick<DkmsEmulator, 'connectTo'>,
  credentialDir: string,
  overrides: { requestTimeoutMs?: number } = {},
): AliyunDaemonConfig {
  return {
    aliyun: {
      credential_dir: credentialDir,
      dkms_connect_to: gateway.connectTo,
      request_timeout_ms: overrides.requestTimeoutMs ?? 5000,
    },
  };
}

/**
 * A complete offline Alibaba Cloud KMS set-up: the gateway emulator on 127.0.0.1, a
 * credential dir with a client key it accepts, and one symmetric key. Used by
 * `cdh-emulator aliyun`, the demo, the CLI tests and the benchmarks.
 */
export interface AliyunScenario {
  readonly emulator: DkmsEmulator;
  readonly credentials: ClientKeyCredentials;
  /** The KMS key that wraps data keys. */
  readonly keyId: string;
  /** The daemon config section (snake_case) pointing at the emulator and credential dir. */
  readonly daemonConfig: AliyunDaemonConfig;
  /** Environment for `secret` and other processes that honour the overrides. */
  readonly env: Record<string, string>;
  close(): Promise<void>;
}

export interface AliyunScenarioOptions {
  readonly source?: ClientKeySource;
  readonly instanceId?: string;
  /** Written into (and left in place); default: a temp dir removed by close(). */
  readonly credentialDir?: string;
  /** Id of the symmetric key created (default: random). */
  readonly keyId?: string;
}

export async function startAliyunScenario(options: AliyunScenarioOptions = {}): Promise<AliyunScenario> {
  const instanceId = options.instanceId ?? 'kst-demo0000000000000';
  const emulator = await DkmsEmulator.start({ instanceId });
  const credentials = await writeClientKeyCredentials({
    caPem: emulator.caPem,
    kmsInstanceId: instanceId,
    source: options.source ?? 'forge-aes256',
    ...(options.credentialDir === undefined ? {} : { dir: options.credentialDir }),
  });
  emulator.addClientKey(credentials.clientKeyId, credentials.certificatePem);
  const keyId = emulator.addKey(options.keyId);
  return {
    emulator,
    credentials,
    keyId,
    daemonConfig: clientKeyDaemonConfig(emulator, credentials.dir),
    env: { ALIYUN_DKMS_CONNECT_TO: emulator.connectTo, ALIYUN_IN_GUEST_KEY_PATH: credentials.dir },
    async close() {
      await emulator.close();
      if (options.credentialDir === undefined) rmSync(credentials.dir, { recursive: true, force: true });
    },
  };
}
