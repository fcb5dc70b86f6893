import type { Logger } from 'pino';
import { CdhError } from '../errors';
import type { TokenSource } from './cc-kbc';

/** GetToken over ttrpc on `[aa] aa_socket`, through the project's AA client. */
export function aaTokenSource(aaSocket: string, _logger: Logger): TokenSource {
  return {
    address: aaSocket,
    getToken: () => {
      throw new CdhError('AA_UNAVAILABLE', `attestation agent at ${aaSocket}: no AA client in this build yet`);
    },
  };
}
