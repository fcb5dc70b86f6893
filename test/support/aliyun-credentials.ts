import * as path from 'node:path';
import { defaultConfig, type CdhConfig } from '../../src/config/types';
import { tempDir } from '../../src/devtools/daemon';
import type { DkmsEmulator } from '../../src/emulators/aliyun/dkms-gateway';
import { readClientKeyFiles, type ClientKeyMaterial } from '../../src/emulators/aliyun/client-key-files';
import { silentLogger } from '../../src/log';
import { PACKAGE_ROOT } from '../../src/package-info';
import type { ProviderContext } from '../../src/providers/types';

/** Id of the real Alibaba-issued client key kept in test/fixtures/vectors/aliyun-client-key/. */
export const VECTOR_CLIENT_KEY_ID = 'KAAP.vector-0001';

/** test/fixtures/vectors/ of this checkout (found from src or dist). */
export function vectorsDir(): string {
  return path.join(PACKAGE_ROOT, 'test', 'fixtures', 'vectors');
}

/**
 * The real Alibaba-issued vector (RC2-40 certificate bag, 3DES key bag, SHA-1 MAC) as a
 * `source` for writeClientKeyCredentials.
 */
export const VECTOR_SOURCE = {
  clientKeyFile: path.join(vectorsDir(), 'aliyun-client-key', `clientKey_${VECTOR_CLIENT_KEY_ID}.json`),
  passwordFile: path.join(vectorsDir(), 'aliyun-client-key', `password_${VECTOR_CLIENT_KEY_ID}.txt`),
} as const;

/** The vector's key id, PKCS#12, password and certificate (read with node-forge, independently of src/). */
export function readVectorClientKey(): ClientKeyMaterial {
  return readClientKeyFiles(VECTOR_SOURCE.clientKeyFile, VECTOR_SOURCE.passwordFile);
}

/** A fresh temp dir's path (removed by the caller). */
export async function makeTempDir(prefix = 'cdh-aliyun-'): Promise<string> {
  return tempDir(prefix).path;
}

/** A CdhConfig whose aliyun section points at the credential dir and the emulator. */
export function clientKeyConfig(
  emulator: Pick<DkmsEmulator, 'connectTo'>,
  credentialDir: string,
  overrides: { requestTimeoutMs?: number } = {},
): CdhConfig {
  const config = defaultConfig();
  config.aliyun.credentialDir = credentialDir;
  config.aliyun.dkmsConnectTo = emulator.connectTo;
  config.aliyun.requestTimeoutMs = overrides.requestTimeoutMs ?? 5000;
  return config;
}

export function providerContext(config: CdhConfig): ProviderContext<CdhConfig> {
  return { config, logger: silentLogger() };
}
