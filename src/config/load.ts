import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import type { z } from 'zod';
import { errnoCode } from '../lib/errno';
import { parseListenAddress } from './address';
import { ConfigError } from './error';
import { applyEnvironment, applyKbcEnvironment, applyKernelFallback, readKernelCmdline } from './overrides';
import { configSchema, LOG_LEVELS, type CdhConfig, type LogLevel } from './schema';

export { parseHostPort, parseListenAddress, type ListenAddress } from './address';
export { ConfigError } from './error';
export { applyEnvironment, KERNEL_CMDLINE_FILE_ENV, readKernelCmdline } from './overrides';

// smol-toml's type declarations are ESM-only; its CommonJS build is what runs here.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { parse: parseToml } = require('smol-toml') as { parse(text: string): Record<string, unknown> };

/** What the command line may override (flags win over environment, which wins over the file). */
export interface ConfigFlags {
  socket?: string;
  logLevel?: string;
}

/**
 * Builds the configuration: defaults, then the file (TOML or JSON by extension), then the
 * environment, then flags. Anything unknown or invalid throws ConfigError naming the key.
 */
export function loadConfig(
  path: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  flags: ConfigFlags = {},
): { config: CdhConfig; warnings: string[] } {
  if (path !== undefined) return resolveConfig(readConfigFile(path), env, flags);
  return resolveConfig({}, env, flags, { kernelCmdline: readKernelCmdline(env) });
}

export interface ResolveOptions {
  /**
   * The kernel command line when there is no config file (upstream's fallback):
   * `agent.aa_kbc_params` and `cdh.kbs_resources`. Absent: a file was given.
   */
  readonly kernelCmdline?: string;
}

export function resolveConfig(
  raw: unknown,
  env: NodeJS.ProcessEnv = process.env,
  flags: ConfigFlags = {},
  options: ResolveOptions = {},
): { config: CdhConfig; warnings: string[] } {
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) throw issueToError(parsed.error.issues[0]);
  const config = parsed.data;
  if (options.kernelCmdline !== undefined) applyKernelFallback(config, env, options.kernelCmdline);
  applyEnvironment(config, env);
  applyKbcEnvironment(config, env);
  checkKbc(config);
  applyFlags(config, flags);
  return { config, warnings: [] };
}

function applyFlags(config: CdhConfig, flags: ConfigFlags): void {
  if (flags.socket !== undefined) {
    if (parseListenAddress(flags.socket) === undefined)
      throw new ConfigError('--socket', 'must be "unix:///abs/path", "unix:/abs/path" or "host:port"');
    config.socket = flags.socket;
  }
  if (flags.logLevel !== undefined) {
    if (!(LOG_LEVELS as readonly string[]).includes(flags.logLevel))
      throw new ConfigError('--log-level', `must be one of ${LOG_LEVELS.join(', ')}`);
    config.log.level = flags.logLevel as LogLevel;
  }
}

function checkKbc(config: CdhConfig): void {
  if (config.kbc.name !== 'cc_kbc') return;
  let url: URL;
  try {
    url = new URL(config.kbc.url);
  } catch {
    throw new ConfigError('kbc.url', 'cc_kbc needs the KBS URL ("http://host:port" or "https://host:port")');
  }
  if (
    (url.protocol !== 'http:' && url.protocol !== 'https:') ||
    url.username ||
    url.password ||
    url.search ||
    url.hash
  )
    throw new ConfigError(
      'kbc.url',
      'must be "http://host[:port][/path]" or "https://..." (no user, query or fragment)',
    );
  if (config.kbc.kbsCert !== '' && !config.kbc.kbsCert.includes('-----BEGIN CERTIFICATE-----'))
    throw new ConfigError('kbc.kbs_cert', 'must be PEM text (-----BEGIN CERTIFICATE-----)');
}

function readConfigFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError('', `cannot read config file ${path}: ${errnoCode(error)}`);
  }
  const kind = extname(path).toLowerCase();
  try {
    if (kind === '.json') return JSON.parse(text) as unknown;
    if (kind === '.toml' || kind === '') return parseToml(text);
  } catch (error) {
    throw new ConfigError(
      '',
      `config file ${path} is not valid ${kind === '.json' ? 'JSON' : 'TOML'}: ${firstLine(error)}`,
    );
  }
  throw new ConfigError('', `config file ${path}: unsupported extension "${kind}" (use .toml or .json)`);
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';
}

function issueToError(issue: z.core.$ZodIssue | undefined): ConfigError {
  if (issue === undefined) return new ConfigError('', 'invalid configuration');
  const path = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') {
    const key = [path, issue.keys[0]].filter(Boolean).join('.');
    return new ConfigError(key, 'unknown key');
  }
  return new ConfigError(path, issue.message);
}
