import { defaultImageSettings, type ImageSettings } from './image';

/** The daemon's configuration after defaults, file, environment and flags are merged. */
export interface CdhConfig {
  /** Listen address: `unix:///abs/path`, `unix:/abs/path` or `host:port`. */
  socket: string;
  skipSealedSecretVerification: boolean;
  log: { level: LogLevel };
  kbc: {
    name: 'offline_fs_kbc';
    url: string;
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
  /** Every [[credentials]] path must lie under it. */
  credentialsRoot: string;
  cache: { ttlSeconds: number; maxEntries: number };
  sealedSecret: { signingKeyDir: string };
  aliyun: AliyunConfig;
  /** [image]: PullImage. */
  image: ImageSettings;
}

export interface AliyunConfig {
  credentialDir: string;
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

export function defaultConfig(): CdhConfig {
  return {
    socket: DEFAULT_SOCKET,
    skipSealedSecretVerification: false,
    log: { level: 'info' },
    kbc: { name: 'offline_fs_kbc', url: '', offlineFs: { resourceFiles: [] } },
    credentials: [],
    socketMode: 0o600,
    socketGroup: '',
    maxMessageBytes: 1024 * 1024,
    maxInFlight: 256,
    credentialsRoot: '/run/confidential-containers/cdh',
    cache: { ttlSeconds: 300, maxEntries: 1024 },
    sealedSecret: { signingKeyDir: '/run/confidential-containers/cdh/sealed-secret' },
    aliyun: {
      credentialDir: '/run/confidential-containers/cdh/kms-credential/aliyun',
      dkmsConnectTo: '',
      openapiEndpoint: '',
      openapiCaFile: '',
      metadataEndpoint: 'http://100.100.100.200',
      requestTimeoutMs: 10000,
    },
    image: defaultImageSettings(),
  };
}
