import type { Logger } from 'pino';
import type { CdhConfig } from '../config/types';
import { CcKbc, KBS_REQUEST_TIMEOUT_MS, MAX_KBS_ANSWER_BYTES, type TokenSource } from './cc-kbc';
import { KbsHttpClient } from './kbs-http';

/**
 * cc_kbc from `[kbc]` and `[aa]`: the KBS at `url` through the attestation agent's tokens
 * (`tokens` is called once the KBS client is made: a bad `url` throws before any AA client).
 */
export function createCcKbc(
  config: Pick<CdhConfig, 'kbc' | 'aa'>,
  logger: Logger,
  tokens: () => TokenSource,
  connectTo: string | undefined,
): CcKbc {
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
  return new CcKbc(tokens(), http, config.kbc.url, logger);
}
