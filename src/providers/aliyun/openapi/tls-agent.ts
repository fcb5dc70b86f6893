import { readFile } from 'node:fs/promises';
import { Agent, type AgentOptions } from 'node:https';
import { createSecureContext, rootCertificates } from 'node:tls';
import { CdhError } from '../../../errors';

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * The keep-alive agent for the KMS OpenAPI. It trusts the system roots and, when
 * `openapi_ca_file` is set, the certificates in that file too. Host names are verified as usual.
 */
export async function createOpenApiAgent(caFile: string): Promise<Agent> {
  const options: AgentOptions = { keepAlive: true, maxSockets: 32 };
  if (caFile !== '') {
    let pem: string;
    try {
      pem = await readFile(caFile, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException | null)?.code;
      throw new CdhError(
        'PROVIDER_NOT_CONFIGURED',
        `aliyun openapi_ca_file ${caFile} cannot be read${code ? ` (${code})` : ''}`,
      );
    }
    const extra = pem.match(PEM_CERTIFICATE) ?? [];
    if (extra.length === 0) {
      throw new CdhError(
        'PROVIDER_NOT_CONFIGURED',
        `aliyun openapi_ca_file ${caFile} holds no PEM certificate`,
      );
    }
    try {
      // Built once: creating a context with ~150 roots per connection would cost milliseconds.
      options.secureContext = createSecureContext({ ca: [...rootCertificates, ...extra] });
    } catch {
      throw new CdhError(
        'PROVIDER_NOT_CONFIGURED',
        `aliyun openapi_ca_file ${caFile} holds a certificate that cannot be parsed`,
      );
    }
  }
  return new Agent(options);
}
