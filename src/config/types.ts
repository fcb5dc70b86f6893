import { defaultImageSettings, type ImageSettings } from './image';

/** The daemon's configuration after defaults, file, environment and flags are merged. */
export interface CdhConfig {
  /** Listen address: `unix:///abs/path`, `unix:/abs/path` or `host:port`. */
  socket: string;
  skipSealedSecretVerification: boolean;
  log: { level: LogLevel };
  aa: {
    /** The attestation agent's ttrpc socket (`unix:///...`). */
    aaSocket: string;
  };
  kbc: {
    name: 'offline_fs_kbc' | 'cc_kbc';
    /** The KBS (cc_kbc). */
    url: string;
    /** PEM trusted for an https KBS besides the system roots ('' = none). */
    kbsCert: string;
    offlineFs: { resourceFiles: string[] };
  };
  /** Resources fetched through the KBC at start-up and written to `path`. */
  credentials: Array<{ resourceUri: string; path: string }>;
  /** Permission bits of the socket file. */
  socketMode: number;
  /** Group owning the socket file ('' = leave as is). */
  socketGroup: string;
  maxMessageBytes: number;
  maxInFlight: number;
  /** Connections served at once (both protocols); more are closed at accept. */
  maxConnections: number;
  /** From accept until the client's first protocol unit (HTTP/2 preface, ttrpc frame) is complete. */
  handshakeTimeoutMs: number;
  /** A connection with no call in flight and nothing received for this long is closed (0 = never). */
  idleTimeoutMs: number;
  /**
   * The same for ttrpc connections. Off by default: the Kata agent opens its ttrpc connection to
   * the CDH once and does not dial again, so closing it idle would fail the agent's next call.
   */
  ttrpcIdleTimeoutMs: number;
  /** gRPC streams one connection may have open at once (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS). */
  maxConcurrentStreams: number;
  /** Every [[credentials]] path must lie under it. */
  credentialsRoot: string;
  cache: { ttlSeconds: number; maxEntries: number };
  sealedSecret: { signingKeyDir: string };
  aliyun: AliyunConfig;
  /** [image]: PullImage. */
  image: ImageSettings;
}

export interface AliyunConfig {
  /** '' = look in upstream's current dir, then the seed document's; set = that dir alone. */
  credentialDir: string;
  /** Where a sealed secret's sts_token `token_path` must lie ('' = the credential dir, as above). */
  stsTokenDir: string;
  /** "host:port" dialled instead of <instance>.cryptoservice.kms.aliyuncs.com:443 ('' = production). */
  dkmsConnectTo: string;
  /** "host:port" replacing kms.<region>.aliyuncs.com ('' = production). */
  openapiEndpoint: string;
  /** Extra CA bundle trusted for the OpenAPI endpoint ('' = system roots only). */
  openapiCaFile: string;
  metadataEndpoint: string;
  requestTimeoutMs: number;
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export const DEFAULT_SOCKET = 'unix:///run/confidential-containers/cdh.sock';
export const DEFAULT_AA_SOCKET =
  'unix:///run/confidential-containers/attestation-agent/attestation-agent.sock';

export function defaultConfig(): CdhConfig {
  return {
    socket: DEFAULT_SOCKET,
    skipSealedSecretVerification: false,
    log: { level: 'info' },
    aa: { aaSocket: DEFAULT_AA_SOCKET },
    kbc: { name: 'offline_fs_kbc', url: '', kbsCert: '', offlineFs: { resourceFiles: [] } },
    credentials: [],
    socketMode: 0o600,
    socketGroup: '',
    maxMessageBytes: 1024 * 1024,
    maxInFlight: 256,
    maxConnections: 512,
    handshakeTimeoutMs: 10_000,
    idleTimeoutMs: 300_000,
    ttrpcIdleTimeoutMs: 0,
    maxConcurrentStreams: 256,
    credentialsRoot: '/run/confidential-containers/cdh',
    cache: { ttlSeconds: 300, maxEntries: 1024 },
    sealedSecret: { signingKeyDir: '/run/confidential-containers/cdh/sealed-secret' },
    aliyun: {
      // '' = upstream's current dir, then the seed document's (providers/aliyun/credentials.ts).
      credentialDir: '',
      stsTokenDir: '',
      dkmsConnectTo: '',
      openapiEndpoint: '',
      openapiCaFile: '',
      metadataEndpoint: 'http://100.100.100.200',
      requestTimeoutMs: 10000,
    },
    image: defaultImageSettings(),
  };
}
