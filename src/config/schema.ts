import { isAbsolute } from 'node:path';
import { z } from '../lib/zod';
import { parseHostPort, parseListenAddress } from './address';
import { imageSectionSchema } from './image';

/**
 * The configuration file's schema with every default in it: parsing `{}` gives the built-in
 * configuration, and the daemon's type (CdhConfig) is derived from it, the file's snake_case
 * keys turned into camelCase by one generic step.
 */

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const KBC_NAMES = ['cc_kbc', 'offline_fs_kbc'] as const;

export const DEFAULT_SOCKET = 'unix:///run/confidential-containers/cdh.sock';
export const DEFAULT_AA_SOCKET =
  'unix:///run/confidential-containers/attestation-agent/attestation-agent.sock';

export const hostPort = z
  .string()
  .refine((v) => v === '' || parseHostPort(v) !== undefined, 'must be "host:port" (or empty)');

export const absolutePath = z.string().refine((v) => isAbsolute(v), 'must be an absolute path');

export const unixSocketAddress = z
  .string()
  .refine((v) => parseListenAddress(v)?.kind === 'unix', 'must be "unix:///abs/path" or "unix:/abs/path"');

export const metadataEndpoint = z
  .string()
  .refine((v) => /^https?:\/\/[^/?#]+\/?$/.test(v), 'must be "http://host[:port]"');

const int = (min: number, max: number, fallback: number) =>
  z.number().int().min(min).max(max).default(fallback);

const kbcSection = z.strictObject({
  name: z
    .enum(KBC_NAMES, { message: 'unsupported KBC: use "cc_kbc" or "offline_fs_kbc"' })
    .default('offline_fs_kbc'),
  /** The KBS (cc_kbc). */
  url: z.string().default(''),
  /** PEM trusted for an https KBS besides the system roots ('' = none). */
  kbs_cert: z.string().default(''),
  offline_fs: z.strictObject({ resource_files: z.array(absolutePath).default(() => []) }).prefault({}),
});

const aliyunSection = z.strictObject({
  /** '' = look in upstream's current dir, then the seed document's; set = that dir alone. */
  credential_dir: z
    .string()
    .refine((v) => v === '' || isAbsolute(v), 'must be an absolute path (or empty: the default lookup)')
    .default(''),
  /** Where a sealed secret's sts_token `token_path` must lie ('' = the credential dir, as above). */
  sts_token_dir: z
    .string()
    .refine((v) => v === '' || isAbsolute(v), 'must be an absolute path (or empty: the credential dir)')
    .default(''),
  /** "host:port" dialled instead of <instance>.cryptoservice.kms.aliyuncs.com:443 ('' = production). */
  dkms_connect_to: hostPort.default(''),
  /** "host:port" replacing kms.<region>.aliyuncs.com ('' = production). */
  openapi_endpoint: hostPort.default(''),
  /** Extra CA bundle trusted for the OpenAPI endpoint ('' = system roots only). */
  openapi_ca_file: z
    .string()
    .refine((v) => v === '' || isAbsolute(v), 'must be an absolute path (or empty)')
    .default(''),
  metadata_endpoint: metadataEndpoint.default('http://100.100.100.200'),
  request_timeout_ms: int(1, 600_000, 10_000),
});

export const configFileSchema = z.strictObject({
  socket: z
    .string()
    .refine((v) => parseListenAddress(v) !== undefined, {
      message: 'must be "unix:///abs/path", "unix:/abs/path" or "host:port"',
    })
    .default(DEFAULT_SOCKET),
  skip_sealed_secret_verification: z.boolean().default(false),
  log: z.strictObject({ level: z.enum(LOG_LEVELS).default('info') }).prefault({}),
  /** The attestation agent's ttrpc socket. */
  aa: z.strictObject({ aa_socket: unixSocketAddress.default(DEFAULT_AA_SOCKET) }).prefault({}),
  kbc: kbcSection.prefault({}),
  /** Resources fetched through the KBC at start-up and written to `path`. */
  credentials: z
    .array(z.strictObject({ resource_uri: z.string().min(1), path: absolutePath }))
    .default(() => []),
  image: imageSectionSchema,
  /** Permission bits of the socket file. */
  socket_mode: z
    .union([
      z.string().regex(/^0?[0-7]{3}$/, 'must be octal permission bits such as "0600"'),
      z.number().int().min(0).max(0o777),
    ])
    .default(0o600)
    .transform((v) => (typeof v === 'number' ? v : parseInt(v, 8))),
  /** Group owning the socket file ('' = leave as is). */
  socket_group: z.string().default(''),
  max_message_bytes: int(1024, 64 * 1024 * 1024, 1024 * 1024),
  max_in_flight: int(1, 100_000, 256),
  /** Connections served at once (both protocols); more are closed at accept. */
  max_connections: int(1, 1_000_000, 512),
  /** From accept until the client's first protocol unit (HTTP/2 preface, ttrpc frame) is complete. */
  handshake_timeout_ms: int(100, 600_000, 10_000),
  /** A connection with no call in flight and nothing received for this long is closed (0 = never). */
  idle_timeout_ms: int(0, 86_400_000, 300_000),
  /**
   * The same for ttrpc connections. Off by default: the Kata agent opens its ttrpc connection to
   * the CDH once and does not dial again, so closing it idle would fail the agent's next call.
   */
  ttrpc_idle_timeout_ms: int(0, 86_400_000, 0),
  /** gRPC streams one connection may have open at once (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS). */
  max_concurrent_streams: int(1, 100_000, 256),
  /** Every [[credentials]] path must lie under it. */
  credentials_root: absolutePath.default('/run/confidential-containers/cdh'),
  /** Data keys of envelope secrets and values of vault secrets; ttl 0 disables. */
  cache: z
    .strictObject({ ttl_seconds: int(0, 86_400, 300), max_entries: int(1, 1_000_000, 1024) })
    .prefault({}),
  sealed_secret: z
    .strictObject({ signing_key_dir: absolutePath.default('/run/confidential-containers/cdh/sealed-secret') })
    .prefault({}),
  aliyun: aliyunSection.prefault({}),
});

type CamelCase<S extends string> = S extends `${infer Head}_${infer Tail}`
  ? `${Head}${Capitalize<CamelCase<Tail>>}`
  : S;
type Camelized<T> = T extends readonly (infer Item)[]
  ? Camelized<Item>[]
  : T extends Record<string, unknown>
    ? { -readonly [K in keyof T as K extends string ? CamelCase<K> : K]: Camelized<T[K]> }
    : T;

/**
 * `resource_files` → `resourceFiles`, through plain objects and arrays; a value under a key in
 * `keptAsWritten` keeps its own keys (only the key itself is renamed).
 */
function camelized(value: unknown, keptAsWritten: ReadonlySet<string>): unknown {
  if (Array.isArray(value)) return value.map((item) => camelized(item, keptAsWritten));
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, item]) => [
      key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()),
      keptAsWritten.has(key) ? item : camelized(item, keptAsWritten),
    ]),
  );
}

/** `[image.registry_config]` is containers-registries.conf, read by its own parser. */
const KEPT_AS_WRITTEN = new Set(['registry_config']);

export const configSchema = configFileSchema.transform(
  (file) => camelized(file, KEPT_AS_WRITTEN) as Camelized<z.output<typeof configFileSchema>>,
);

/** The daemon's configuration after defaults, file, environment and flags are merged. */
export type CdhConfig = z.output<typeof configSchema>;
export type AliyunConfig = CdhConfig['aliyun'];
export type ImageSettings = CdhConfig['image'];
