import { readFileSync } from 'node:fs';
import { isAbsolute, extname } from 'node:path';
import { z } from 'zod';
import { imageSectionSchema, resolveImageSettings } from './image';
import { defaultConfig, LOG_LEVELS, type CdhConfig, type LogLevel } from './types';
import { errnoCode } from '../lib/errno';

// smol-toml's type declarations are ESM-only; its CommonJS build is what runs here.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { parse: parseToml } = require('smol-toml') as { parse(text: string): Record<string, unknown> };

/** A configuration problem found at start-up; `key` names the offending key (dotted path). */
export class ConfigError extends Error {
  constructor(
    readonly key: string,
    message: string,
  ) {
    super(key ? `config key "${key}": ${message}` : message);
    this.name = 'ConfigError';
  }
}

/** What the command line may override (flags win over environment, which wins over the file). */
export interface ConfigFlags {
  socket?: string;
  logLevel?: string;
}

const hostPort = z
  .string()
  .refine((v) => v === '' || parseHostPort(v) !== undefined, 'must be "host:port" (or empty)');

const absolutePath = z.string().refine((v) => isAbsolute(v), 'must be an absolute path');

const KBC_NAMES = ['cc_kbc', 'offline_fs_kbc'] as const;

const unixSocketAddress = z
  .string()
  .refine((v) => parseListenAddress(v)?.kind === 'unix', 'must be "unix:///abs/path" or "unix:/abs/path"');

const fileSchema = z.strictObject({
  socket: z.string().refine((v) => parseListenAddress(v) !== undefined, {
    message: 'must be "unix:///abs/path", "unix:/abs/path" or "host:port"',
  }),
  skip_sealed_secret_verification: z.boolean(),
  log: z.strictObject({ level: z.enum(LOG_LEVELS as [LogLevel, ...LogLevel[]]) }).partial(),
  aa: z.strictObject({ aa_socket: unixSocketAddress }).partial(),
  kbc: z
    .strictObject({
      name: z.enum(KBC_NAMES, { message: 'unsupported KBC: use "cc_kbc" or "offline_fs_kbc"' }),
      url: z.string(),
      kbs_cert: z.string(),
      offline_fs: z.strictObject({ resource_files: z.array(absolutePath) }).partial(),
    })
    .partial(),
  credentials: z.array(z.strictObject({ resource_uri: z.string().min(1), path: absolutePath })),
  image: imageSectionSchema,
  socket_mode: z.union([
    z.string().regex(/^0?[0-7]{3}$/, 'must be octal permission bits such as "0600"'),
    z.number().int().min(0).max(0o777),
  ]),
  socket_group: z.string(),
  max_message_bytes: z
    .number()
    .int()
    .min(1024)
    .max(64 * 1024 * 1024),
  max_in_flight: z.number().int().min(1).max(100000),
  max_connections: z.number().int().min(1).max(1_000_000),
  handshake_timeout_ms: z.number().int().min(100).max(600_000),
  idle_timeout_ms: z.number().int().min(0).max(86_400_000),
  ttrpc_idle_timeout_ms: z.number().int().min(0).max(86_400_000),
  max_concurrent_streams: z.number().int().min(1).max(100_000),
  credentials_root: absolutePath,
  cache: z
    .strictObject({
      ttl_seconds: z.number().int().min(0).max(86400),
      max_entries: z.number().int().min(1).max(1_000_000),
    })
    .partial(),
  sealed_secret: z.strictObject({ signing_key_dir: absolutePath }).partial(),
  aliyun: z
    .strictObject({
      credential_dir: z
        .string()
        .refine((v) => v === '' || isAbsolute(v), 'must be an absolute path (or empty: the default lookup)'),
      sts_token_dir: z
        .string()
        .refine((v) => v === '' || isAbsolute(v), 'must be an absolute path (or empty: the credential dir)'),
      dkms_connect_to: hostPort,
      openapi_endpoint: hostPort,
      openapi_ca_file: z
        .string()
        .refine((v) => v === '' || isAbsolute(v), 'must be an absolute path (or empty)'),
      metadata_endpoint: z
        .string()
        .refine((v) => /^https?:\/\/[^/?#]+\/?$/.test(v), 'must be "http://host[:port]"'),
      request_timeout_ms: z.number().int().min(1).max(600000),
    })
    .partial(),
});

type ConfigFile = z.infer<ReturnType<typeof fileSchema.partial>>;

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
  const parsed = fileSchema.partial().safeParse(raw);
  if (!parsed.success) throw issueToError(parsed.error.issues[0]);
  const file: ConfigFile = parsed.data;
  const warnings: string[] = [];

  const config = defaultConfig();
  if (file.socket !== undefined) config.socket = file.socket;
  if (file.skip_sealed_secret_verification !== undefined)
    config.skipSealedSecretVerification = file.skip_sealed_secret_verification;
  if (file.log?.level !== undefined) config.log.level = file.log.level;
  if (file.aa?.aa_socket !== undefined) config.aa.aaSocket = file.aa.aa_socket;
  if (file.kbc?.name !== undefined) config.kbc.name = file.kbc.name;
  if (file.kbc?.url !== undefined) config.kbc.url = file.kbc.url;
  if (file.kbc?.kbs_cert !== undefined) config.kbc.kbsCert = file.kbc.kbs_cert;
  if (file.kbc?.offline_fs?.resource_files !== undefined)
    config.kbc.offlineFs.resourceFiles = file.kbc.offline_fs.resource_files;
  if (file.credentials !== undefined)
    config.credentials = file.credentials.map((c) => ({ resourceUri: c.resource_uri, path: c.path }));
  if (file.socket_mode !== undefined)
    config.socketMode =
      typeof file.socket_mode === 'number' ? file.socket_mode : parseInt(file.socket_mode, 8);
  if (file.socket_group !== undefined) config.socketGroup = file.socket_group;
  if (file.max_message_bytes !== undefined) config.maxMessageBytes = file.max_message_bytes;
  if (file.max_in_flight !== undefined) config.maxInFlight = file.max_in_flight;
  if (file.max_connections !== undefined) config.maxConnections = file.max_connections;
  if (file.handshake_timeout_ms !== undefined) config.handshakeTimeoutMs = file.handshake_timeout_ms;
  if (file.idle_timeout_ms !== undefined) config.idleTimeoutMs = file.idle_timeout_ms;
  if (file.ttrpc_idle_timeout_ms !== undefined) config.ttrpcIdleTimeoutMs = file.ttrpc_idle_timeout_ms;
  if (file.max_concurrent_streams !== undefined) config.maxConcurrentStreams = file.max_concurrent_streams;
  if (file.credentials_root !== undefined) config.credentialsRoot = file.credentials_root;
  Object.assign(config.cache, camelCase(file.cache));
  Object.assign(config.sealedSecret, camelCase(file.sealed_secret));
  Object.assign(config.aliyun, camelCase(file.aliyun));
  config.image = resolveImageSettings(file.image);

  if (options.kernelCmdline !== undefined) applyKernelFallback(config, env, options.kernelCmdline);
  applyEnvironment(config, env);
  applyKbcEnvironment(config, env);
  checkKbc(config);

  if (flags.socket !== undefined) {
    if (parseListenAddress(flags.socket) === undefined)
      throw new ConfigError('--socket', 'must be "unix:///abs/path", "unix:/abs/path" or "host:port"');
    config.socket = flags.socket;
  }
  if (flags.logLevel !== undefined) {
    if (!LOG_LEVELS.includes(flags.logLevel as LogLevel))
      throw new ConfigError('--log-level', `must be one of ${LOG_LEVELS.join(', ')}`);
    config.log.level = flags.logLevel as LogLevel;
  }
  return { config, warnings };
}

const ENV_OVERRIDES = [
  { env: 'ALIYUN_IN_GUEST_KEY_PATH', key: 'credentialDir', check: absolutePath },
  { env: 'ALIYUN_DKMS_CONNECT_TO', key: 'dkmsConnectTo', check: hostPort },
  { env: 'ALIYUN_OPENAPI_ENDPOINT', key: 'openapiEndpoint', check: hostPort },
  { env: 'ALIYUN_OPENAPI_CA_FILE', key: 'openapiCaFile', check: z.string() },
  {
    env: 'ALIYUN_METADATA_ENDPOINT',
    key: 'metadataEndpoint',
    check: z.string().regex(/^https?:\/\/[^/?#]+\/?$/),
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
function applyKernelFallback(config: CdhConfig, env: NodeJS.ProcessEnv, cmdline: string): void {
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
function applyKbcEnvironment(config: CdhConfig, env: NodeJS.ProcessEnv): void {
  const aaSocket = env['AA_SOCKET'];
  if (aaSocket !== undefined && aaSocket !== '') {
    if (!unixSocketAddress.safeParse(aaSocket).success)
      throw new ConfigError('AA_SOCKET', 'environment variable must be "unix:///abs/path"');
    config.aa.aaSocket = aaSocket;
  }
  const kbsCert = env['KBS_CERT'];
  if (kbsCert !== undefined && kbsCert !== '') config.kbc.kbsCert = kbsCert;
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

function camelCase<T extends object>(section: T | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(section ?? {})) {
    if (v !== undefined) out[k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())] = v;
  }
  return out;
}

export type ListenAddress = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

/** `unix:///abs`, `unix:/abs` or `host:port` (IPv6 as `[::1]:port`). */
export function parseListenAddress(address: string): ListenAddress | undefined {
  if (address.startsWith('unix:')) {
    const path = address.startsWith('unix://')
      ? address.slice('unix://'.length)
      : address.slice('unix:'.length);
    return isAbsolute(path) && !path.includes('\0') && path.length < 108 ? { kind: 'unix', path } : undefined;
  }
  const hp = parseHostPort(address);
  return hp ? { kind: 'tcp', ...hp } : undefined;
}

export function parseHostPort(value: string): { host: string; port: number } | undefined {
  const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value);
  if (!match) return undefined;
  const port = Number(match[2]);
  if (port < 1 || port > 65535) return undefined;
  return { host: match[1] as string, port };
}
