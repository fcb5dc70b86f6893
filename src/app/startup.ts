import type { Logger } from 'pino';
import type { CdhConfig } from '../config/types';
import { createKbc, type Kbc } from '../kbc';
import type * as AaToken from '../kbc/aa-token';
import { provisionCredentials } from './credentials';

/**
 * The start-up steps before anything serves: the KBC named by `[kbc]`, then the
 * `[[credentials]]` fetched through it and written under credentials_root. A failing step closes
 * what the earlier ones opened and throws (a catalogued error for a bad resource or path).
 */
export async function startKbc(
  config: Pick<CdhConfig, 'kbc' | 'aa' | 'credentials' | 'credentialsRoot'>,
  logger: Logger,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Kbc> {
  let kbc: Kbc | undefined;
  try {
    const tokenSource = (socket: string) =>
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      (require('../kbc/aa-token') as typeof AaToken).aaTokenSource(socket, logger);
    kbc = await createKbc(config, logger, { tokenSource }, env);
    await provisionCredentials(config, kbc, logger);
    return kbc;
  } catch (error) {
    kbc?.close?.();
    throw error;
  }
}
