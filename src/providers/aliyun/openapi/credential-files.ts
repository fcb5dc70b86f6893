import { stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { CdhError } from '../../../errors';
import type { AliyunConfig } from '../../../config/types';
import { credentialDirs, locateCredentialFile, readCredentialFile } from '../credentials';
import { pathIsInside } from '../../../lib/confined-file';
import { quoteUntrusted } from '../../../lib/untrusted';
import { checkRegionId } from './settings';
import { fileReadProblem } from '../../../lib/errno';
import { statFingerprint } from '../../../lib/file-fingerprint';

/** Temporary (STS) credentials of the KMS OpenAPI. Never logged, never put in a message. */
export interface StsCredentials {
  readonly accessKeyId: string;
  readonly accessKeySecret: string;
  readonly securityToken: string;
}

export const STS_TOKEN_FORMAT = 'AK:SK:STS';

/**
 * Parses the content of a `token_path` file: exactly three non-empty `:`-separated parts
 * after trimming surrounding whitespace. Errors name the file and the format, never the content.
 */
export function parseStsTokenFile(content: string, path: string): StsCredentials {
  const parts = content.trim().split(':');
  const [accessKeyId, accessKeySecret, securityToken] = parts;
  if (
    parts.length !== 3 ||
    accessKeyId === undefined ||
    accessKeySecret === undefined ||
    securityToken === undefined ||
    parts.some((part) => part === '')
  ) {
    throw new CdhError(
      'CREDENTIAL_UNAVAILABLE',
      `aliyun sts_token: the token file ${path} is malformed: expected exactly ${STS_TOKEN_FORMAT} ` +
        `(three non-empty parts separated by ":")`,
    );
  }
  return { accessKeyId, accessKeySecret, securityToken };
}

/**
 * The `token_path` file, re-read whenever it changes (a sidecar may rotate the STS token),
 * otherwise served from memory.
 */
export class StsTokenFile {
  private cached?: { readonly fingerprint: string; readonly credentials: StsCredentials };

  /** `directory`: where the file (after every link) must lie (see stsTokenDirectory). */
  constructor(
    readonly path: string,
    readonly directory: string,
  ) {}

  async current(): Promise<StsCredentials> {
    let fingerprint: string;
    try {
      fingerprint = statFingerprint(await stat(this.path, { bigint: true }));
    } catch (error) {
      throw fileUnavailable(`the token file ${this.path}`, error);
    }
    if (this.cached?.fingerprint === fingerprint) return this.cached.credentials;
    // token_path comes from the sealed secret: a device, FIFO or huge file must fail fast.
    const content = await readCredentialFile(this.path, 'aliyun sts_token: the token file', this.directory);
    try {
      const credentials = parseStsTokenFile(content.toString('utf8'), this.path);
      this.cached = { fingerprint, credentials };
      return credentials;
    } finally {
      content.fill(0);
    }
  }
}

/**
 * The directory a sealed secret's `token_path` must lie in: `[aliyun] sts_token_dir`, else the
 * credential dir(s). The sealed secret comes through the untrusted control plane, so a path
 * elsewhere (`/etc/...`, another tenant's files) is refused before anything is opened.
 */
export function stsTokenDirectory(config: AliyunConfig, tokenPath: string): string {
  const allowed = config.stsTokenDir !== '' ? [config.stsTokenDir] : credentialDirs(config.credentialDir);
  const directory = allowed.find(
    (dir) => pathIsInside(dir, tokenPath) && resolve(dir) !== resolve(tokenPath),
  );
  if (directory === undefined) {
    throw new CdhError(
      'CREDENTIAL_UNAVAILABLE',
      `aliyun provider_settings.token_path ${quoteUntrusted(tokenPath)} (client_type sts_token) is outside ` +
        `${allowed.join(' and ')}, where token files are read from ([aliyun] sts_token_dir)`,
    );
  }
  return directory;
}

export const ECS_RAM_ROLE_FILE = 'ecsRamRole.json';

/** RAM role names: letters, digits, `.`, `-`, `_` (they become a path segment of a metadata URL). */
const ROLE_NAME = /^[A-Za-z0-9._-]{1,64}$/;

export interface EcsRamRoleFile {
  readonly roleName: string;
  readonly regionId: string;
}

/** Reads `<credential_dir>/ecsRamRole.json`: `{"ecs_ram_role_name": "...", "region_id": "..."}`. */
export async function readEcsRamRoleFile(credentialDir: string): Promise<EcsRamRoleFile> {
  const path = locateCredentialFile(credentialDir, ECS_RAM_ROLE_FILE);
  try {
    await stat(path);
  } catch (error) {
    throw fileUnavailable(`${path}`, error);
  }
  const content = await readCredentialFile(path, 'aliyun ecs_ram_role: the role file', dirname(path));
  return parseEcsRamRoleFile(content.toString('utf8'), path);
}

export function parseEcsRamRoleFile(content: string, path: string): EcsRamRoleFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(content);
  } catch {
    throw new CdhError('CREDENTIAL_UNAVAILABLE', `aliyun ecs_ram_role: ${path} is not valid JSON`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new CdhError(
      'CREDENTIAL_UNAVAILABLE',
      `aliyun ecs_ram_role: ${path} must hold a JSON object with ecs_ram_role_name and region_id`,
    );
  }
  const fields = parsed as Record<string, unknown>;
  const roleName = fields['ecs_ram_role_name'];
  if (typeof roleName !== 'string' || !ROLE_NAME.test(roleName)) {
    throw new CdhError(
      'CREDENTIAL_UNAVAILABLE',
      `aliyun ecs_ram_role: ${path}: ecs_ram_role_name must be a RAM role name ` +
        '(1 to 64 letters, digits, ".", "-" or "_")',
    );
  }
  let regionId: string;
  try {
    regionId = checkRegionId(fields['region_id'], `ecs_ram_role region_id in ${path}`);
  } catch (error) {
    throw new CdhError('CREDENTIAL_UNAVAILABLE', (error as Error).message);
  }
  return { roleName, regionId };
}

function fileUnavailable(what: string, error: unknown): CdhError {
  return new CdhError('CREDENTIAL_UNAVAILABLE', `aliyun: ${what} ${fileReadProblem(error)}`);
}
