import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import { AttestationAgentClient } from '../client/aa-client';
import { CdhError } from '../errors';
import type { CallContext } from '../providers/types';
import { quote } from './reference';
import type { PullMeasurer } from './service';

const MEASURE_TIMEOUT_MS = 10_000;

/**
 * After each pull: ExtendRuntimeMeasurement on the attestation agent (domain
 * github.com/confidential-containers, operation PullImage, content as upstream formats it).
 * NOT_SUPPORTED / NOT_ENABLED are fine; any other failure fails the pull. A Unix socket that
 * does not exist means there is no AA in this guest: logged, and checked again at the next pull
 * (upstream decides once, at the first pull, for the life of the process).
 */
export class AaPullMeasurer implements PullMeasurer {
  private client?: AttestationAgentClient;

  constructor(
    private readonly address: string,
    private readonly logger: Logger,
  ) {}

  async measure(imageUrl: string, manifestDigest: string, ctx: CallContext): Promise<void> {
    const path = unixPath(this.address);
    if (path !== undefined && !existsSync(path)) {
      this.logger.warn(
        { aaSocket: this.address, image: imageUrl },
        'no attestation agent socket: the pull is not measured',
      );
      return;
    }
    this.client ??= new AttestationAgentClient(this.address);
    let result: string;
    try {
      result = await this.client.extendRuntimeMeasurement(
        {
          domain: 'github.com/confidential-containers',
          operation: 'PullImage',
          content: `{"image":"${imageUrl}", "digest":"${manifestDigest}"}`,
        },
        { timeoutMs: MEASURE_TIMEOUT_MS, signal: ctx.signal },
      );
    } catch (error) {
      if (ctx.signal.aborted) throw ctx.signal.reason;
      const e = error as { peerMessage?: unknown; message?: unknown };
      const said =
        typeof e.peerMessage === 'string' && e.peerMessage !== '' ? e.peerMessage : String(e.message);
      throw new CdhError(
        'IMAGE_MEASUREMENT_FAILED',
        `image ${quote(imageUrl)} (${manifestDigest}) is mounted but the attestation agent at ${this.address} did not record it: ${said.slice(0, 300)}`,
        { cause: error },
      );
    }
    if (result === 'OK') this.logger.info({ image: imageUrl, digest: manifestDigest }, 'pull measured');
    else this.logger.warn({ image: imageUrl, result }, 'the attestation agent does not measure pulls');
  }

  close(): void {
    this.client?.close();
    this.client = undefined;
  }
}

function unixPath(address: string): string | undefined {
  if (address.startsWith('unix://')) return address.slice('unix://'.length);
  if (address.startsWith('unix:')) return address.slice('unix:'.length);
  return undefined;
}
