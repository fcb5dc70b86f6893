import { readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { z } from '../lib/zod';
import { ConfigError } from './error';
import { absolutePath, hostPort, metadataEndpoint, unixSocketAddress, type CdhConfig } from './schema';

const ENV_OVERRIDES = [
  { env: 'ALIYUN_IN_GUEST_KEY_PATH', key: 'credentialDir', check: absolutePath },
  { env: 'ALIYUN_DKMS_CONNECT_TO', key: 'dkmsConnectTo', check: hostPort },
  { env: 'ALIYUN_OPENAPI_ENDPOINT', key: 'openapiEndpoint', check: hostPort },
  { env: 'ALIYUN_OPENAPI_CA_FILE', key: 'openapiCaFile', check: z.string() },
  {
    env: 'ALIYUN_METADATA_ENDPOINT',
    key: 'metadataEndpoint',
    check: metadataEndpoint,
  },
] as const;

/** Environment variables override the file (upstream names, honoured by the daemon and `secret`). */
export function applyEnvironment(config: CdhConfig, env: NodeJS.ProcessEnv): void {
  for (const { env: name, key, check } of ENV_OVERRIDES) {
    const value = env[name];
    if (value === undefined) continue;
    if (!check.safeParse(value).success) throw new ConfigError(name, `environment variable has a bad value`);
    config.aliyun[key] = value;
  }
  // Upstream treats exactly "true" as on.
  if (env['SKIP_SEALED_SECRET_VERIFICATION'] === 'true') config.skipSealedSecretVerification = true;
}

/** Upstream's `AA_KBC_PARAMS` / `agent.aa_kbc_params` form: `<kbc name>::<url>`. */
function parseKbcParams(value: string, key: string): { name: CdhConfig['kbc']['name']; url: string } {
  const at = value.indexOf('::');
  const name = at < 0 ? value : value.slice(0, at);
  const url = at < 0 ? '' : value.slice(at + 2);
  if (name !== 'cc_kbc' && name !== 'offline_fs_kbc')
    throw new ConfigError(
      key,
      `unsupported KBC "${name.slice(0, 64)}": use "cc_kbc::<url>" or "offline_fs_kbc"`,
    );
  return { name, url };
}

/** The kernel command line as upstream reads it: `/proc/cmdline`, or env CDH_KERNEL_CMDLINE_FILE. */
export const KERNEL_CMDLINE_FILE_ENV = 'CDH_KERNEL_CMDLINE_FILE';

export function readKernelCmdline(env: NodeJS.ProcessEnv): string {
  const file = env[KERNEL_CMDLINE_FILE_ENV] || '/proc/cmdline';
  try {
    return readFileSync(file, 'utf8').slice(0, 64 * 1024);
  } catch (error) {
    if (env[KERNEL_CMDLINE_FILE_ENV])
      throw new ConfigError(
        KERNEL_CMDLINE_FILE_ENV,
        `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
      );
    return '';
  }
}

/**
 * No config file: the KBC from env AA_KBC_PARAMS, else `agent.aa_kbc_params` on the kernel
 * command line (else offline_fs_kbc); `cdh.kbs_resources=<uri>::<path>,...` adds [[credentials]].
 */
export function applyKernelFallback(config: CdhConfig, env: NodeJS.ProcessEnv, cmdline: string): void {
  const params = new Map<string, string>();
  for (const word of cmdline.split(/\s+/)) {
    const eq = word.indexOf('=');
    if (eq > 0) params.set(word.slice(0, eq), word.slice(eq + 1));
  }
  const fromEnv = env['AA_KBC_PARAMS'];
  const kbcParams = fromEnv !== undefined && fromEnv !== '' ? fromEnv : params.get('agent.aa_kbc_params');
  if (kbcParams !== undefined && kbcParams !== '') {
    const key = fromEnv ? 'AA_KBC_PARAMS' : 'agent.aa_kbc_params';
    Object.assign(config.kbc, parseKbcParams(kbcParams, key));
  }
  const resources = params.get('cdh.kbs_resources');
  if (resources !== undefined && resources !== '') {
    for (const item of resources.split(',')) {
      const at = item.indexOf('::');
      const resourceUri = at < 0 ? '' : item.slice(0, at);
      const path = at < 0 ? '' : item.slice(at + 2);
      if (resourceUri === '' || !isAbsolute(path))
        throw new ConfigError('cdh.kbs_resources', 'each item must be "<resource uri>::<absolute path>"');
      config.credentials.push({ resourceUri, path });
    }
  }
}

/** AA_SOCKET and KBS_CERT override the file (upstream names). */
export function applyKbcEnvironment(config: CdhConfig, env: NodeJS.ProcessEnv): void {
  const aaSocket = env['AA_SOCKET'];
  if (aaSocket !== undefined && aaSocket !== '') {
    if (!unixSocketAddress.safeParse(aaSocket).success)
      throw new ConfigError('AA_SOCKET', 'environment variable must be "unix:///abs/path"');
    config.aa.aaSocket = aaSocket;
  }
  const kbsCert = env['KBS_CERT'];
  if (kbsCert !== undefined && kbsCert !== '') config.kbc.kbsCert = kbsCert;
}
