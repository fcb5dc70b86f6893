import type { Logger } from 'pino';
import type { CdhConfig } from '../config/types';
import { CcKbc, KBS_REQUEST_TIMEOUT_MS, MAX_KBS_ANSWER_BYTES, type TokenSource } from './cc-kbc';
import { KbsHttpClient } from './kbs-http';
import { OfflineFsResourceStore, offlineFsFilesFromConfig } from './offline-fs';
import type { Kbc } from './types';

export { CcKbc, type TokenSource } from './cc-kbc';
export { aaTokenSource } from './aa-token';
export { OfflineFsResourceStore, offlineFsFilesFromConfig } from './offline-fs';
export type { Kbc, KbcName } from './types';
export { formatResourceUri, kbsRequestPath, parseResourceUri, resourceKey, type ResourceUri } from './uri';

/** Test-only: dial this "host:port" for the KBS, keeping the URL's host for Host and TLS. */
export const KBS_CONNECT_TO_ENV = 'CDH_KBS_CONNECT_TO';

export interface KbcDependencies {
  /** Builds the attestation agent client of cc_kbc from `[aa] aa_socket`. */
  readonly tokenSource: (aaSocket: string) => TokenSource;
}

/**
 * Builds the KBC named by `[kbc]`. offline_fs_kbc loads its files (a malformed one throws
 * KBC_RESOURCES_INVALID naming it); cc_kbc connects lazily (the AA may not listen yet).
 */
export async function createKbc(
  config: Pick<CdhConfig, 'kbc' | 'aa'>,
  logger: Logger,
  deps: KbcDependencies,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Kbc> {
  if (config.kbc.name === 'cc_kbc') {
    const connectTo = env[KBS_CONNECT_TO_ENV];
    const http = new KbsHttpClient(config.kbc.url, {
      maxBodyBytes: MAX_KBS_ANSWER_BYTES,
      timeoutMs: KBS_REQUEST_TIMEOUT_MS,
      ...(config.kbc.kbsCert ? { extraCa: config.kbc.kbsCert } : {}),
      ...(connectTo ? { connectTo } : {}),
    });
    logger.info(
      { kbs: config.kbc.url, aaSocket: config.aa.aaSocket },
      'cc_kbc: KBS through the attestation agent',
    );
    return new CcKbc(deps.tokenSource(config.aa.aaSocket), http, config.kbc.url, logger);
  }
  const store = new OfflineFsResourceStore(offlineFsFilesFromConfig(config, env), logger);
  await store.load();
  return store;
}
