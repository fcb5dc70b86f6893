import type { Logger } from 'pino';
import { AttestationAgentClient } from '../client/aa-client';
import { TtrpcCallError } from '../client/ttrpc-client';
import { CdhError } from '../errors';
import { AA_TOKEN_TIMEOUT_MS, type TokenSource } from './kbs-token';

/** GetToken over ttrpc on `[aa] aa_socket`, through the project's AA client. */
export function aaTokenSource(aaSocket: string, logger: Logger): TokenSource {
  const client = new AttestationAgentClient(aaSocket);
  return {
    address: aaSocket,
    async getToken(tokenType, ctx) {
      try {
        return await client.getToken(tokenType, { signal: ctx.signal, timeoutMs: AA_TOKEN_TIMEOUT_MS });
      } catch (error) {
        if (error instanceof TtrpcCallError) {
          const why =
            error.kind === 'status'
              ? `it answered status ${error.code}: ${error.peerMessage.slice(0, 200)}`
              : error.message;
          logger.debug({ aaSocket, kind: error.kind }, 'GetToken failed');
          throw new CdhError('AA_UNAVAILABLE', `attestation agent at ${aaSocket}: GetToken failed: ${why}`);
        }
        throw error;
      }
    },
    close: () => client.close(),
  };
}
