import type { Logger } from 'pino';
import type { CdhConfig } from '../config/types';
import type { TokenSource } from './cc-kbc';
import type * as CcKbcSetup from './cc-kbc-setup';
import { OfflineFsResourceStore, offlineFsFilesFromConfig } from './offline-fs';
import type { Kbc } from './types';

export type { TokenSource } from './cc-kbc';
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
    // Required only for cc_kbc: its modules (the KBS client, https, JWE, the AA client) are
    // nothing an offline_fs daemon loads at start-up.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { createCcKbc } = require('./cc-kbc-setup') as typeof CcKbcSetup;
    return createCcKbc(config, logger, () => deps.tokenSource(config.aa.aaSocket), env[KBS_CONNECT_TO_ENV]);
  }
  const store = new OfflineFsResourceStore(offlineFsFilesFromConfig(config, env), logger);
  await store.load();
  return store;
}
