import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultConfig, type CdhConfig } from '../../config/types';
import { MetadataEmulator, type IssuedCredential, type MetadataMode } from './metadata';
import { OpenApiEmulator } from './openapi';
import { createTestCa, type ServerCert, type TestCa } from '../pki';

/** The static STS credentials the OpenAPI emulator knows (sts_token tests). */
export const STS_CREDENTIAL = {
  accessKeyId: 'STS.NUfixtureAccessKey',
  accessKeySecret: 'fixtureAccessKeySecret0123456789',
  securityToken: 'CAISfixtureSecurityTokenDoNotLeak',
} as const;

export const ROLE_NAME = 'EcsRamRoleTest';
export const REGION_ID = 'cn-beijing';

export interface OpenApiFixtureOptions {
  readonly metadataMode?: MetadataMode;
  readonly credentialLifetimeMs?: number;
  /** Decides how each issued role credential is registered with the OpenAPI emulator. */
  readonly onIssue?: (credential: IssuedCredential, register: (expiresAt: number) => void) => void;
  /** Where ecsRamRole.json goes (default: <dir>/kms-credential). */
  readonly credentialDir?: string;
}

let sharedPki: { ca: TestCa; serverCert: ServerCert } | undefined;

/** One CA and server certificate per test process: RSA key generation costs ~0.5 s each. */
function emulatorPki(): { ca: TestCa; serverCert: ServerCert } {
  if (sharedPki === undefined) {
    const ca = createTestCa('OpenAPI emulator CA');
    sharedPki = { ca, serverCert: ca.issueServerCert(['localhost'], { ipAddresses: ['127.0.0.1'] }) };
  }
  return sharedPki;
}

/**
 * The KMS OpenAPI and ECS metadata emulators together, a temp dir with the OpenAPI CA bundle, a token file and ecsRamRole.json,
 * and a configuration pointing at them (what every provider-level test needs).
 */
export class OpenApiFixture {
  private constructor(
    readonly openapi: OpenApiEmulator,
    readonly metadata: MetadataEmulator,
    readonly dir: string,
    readonly caFile: string,
    readonly credentialDir: string,
    readonly tokenPath: string,
  ) {}

  static async start(options: OpenApiFixtureOptions = {}): Promise<OpenApiFixture> {
    const openapi = await OpenApiEmulator.start({ ...emulatorPki(), credentials: [STS_CREDENTIAL] });
    const metadata = await MetadataEmulator.start({
      mode: options.metadataMode ?? 'hardened',
      roles: { [ROLE_NAME]: 'Success', FailingRole: 'Failed' },
      ...(options.credentialLifetimeMs === undefined
        ? {}
        : { credentialLifetimeMs: options.credentialLifetimeMs }),
      onIssue: (credential) => {
        const register = (expiresAt: number): void => openapi.addCredential({ ...credential, expiresAt });
        if (options.onIssue) options.onIssue(credential, register);
        else register(credential.expiresAt);
      },
    });
    const dir = await mkdtemp(join(tmpdir(), 'cdh-openapi-'));
    const caFile = join(dir, 'openapi-ca.pem');
    await writeFile(caFile, openapi.caPem);
    const credentialDir = options.credentialDir ?? join(dir, 'kms-credential');
    await mkdir(credentialDir, { recursive: true });
    await writeFile(
      join(credentialDir, 'ecsRamRole.json'),
      JSON.stringify({ ecs_ram_role_name: ROLE_NAME, region_id: REGION_ID }),
    );
    const tokenPath = join(dir, 'sts-token');
    const { accessKeyId, accessKeySecret, securityToken } = STS_CREDENTIAL;
    await writeFile(tokenPath, `${accessKeyId}:${accessKeySecret}:${securityToken}\n`);
    return new OpenApiFixture(openapi, metadata, dir, caFile, credentialDir, tokenPath);
  }

  /** The daemon configuration with every [aliyun] endpoint on the emulators. */
  config(): CdhConfig {
    const config = defaultConfig();
    config.aliyun = {
      ...config.aliyun,
      credentialDir: this.credentialDir,
      stsTokenDir: this.dir,
      openapiEndpoint: this.openapi.endpoint,
      openapiCaFile: this.caFile,
      metadataEndpoint: this.metadata.endpoint,
      requestTimeoutMs: 3000,
    };
    return config;
  }

  /** The `[aliyun]` part of a daemon config file (snake_case, as `spawnDaemon({ config })` writes it). */
  daemonConfig(requestTimeoutMs = 3000): { aliyun: Record<string, string | number> } {
    return {
      aliyun: {
        credential_dir: this.credentialDir,
        sts_token_dir: this.dir,
        openapi_endpoint: this.openapi.endpoint,
        openapi_ca_file: this.caFile,
        metadata_endpoint: this.metadata.endpoint,
        request_timeout_ms: requestTimeoutMs,
      },
    };
  }

  /** Writes a file in the fixture's dir and returns its path. */
  async writeFile(name: string, content: string): Promise<string> {
    const path = join(this.dir, name);
    await writeFile(path, content);
    return path;
  }

  stsSettings(tokenPath = this.tokenPath): Record<string, unknown> {
    return { client_type: 'sts_token', token_path: tokenPath, region_id: REGION_ID };
  }

  async close(): Promise<void> {
    await Promise.all([this.openapi.close(), this.metadata.close()]);
    await rm(this.dir, { recursive: true, force: true });
  }
}
