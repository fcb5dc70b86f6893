import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { CdhConfig } from '../config/types';
import { CdhError, isCdhError } from '../errors';
import type { ResourceReader } from '../providers/types';
import { parseResourceUri } from '../kbc/uri';
import { errnoCode } from '../lib/errno';

type CredentialEntry = CdhConfig['credentials'][number];

interface CheckedEntry {
  readonly entry: CredentialEntry;
  /** Who the entry is in messages: position, URI and path. */
  readonly label: string;
  /** Directories between credentials_root and the file. */
  readonly dirSegments: readonly string[];
  readonly fileName: string;
}

/**
 * `[[credentials]]`: fetches each resource through the KBC and writes it to its path, before
 * the daemon serves. Every path must be absolute, normalised and under credentials_root, also
 * once symlinks of existing directories are resolved. Each file is written with mode 0600 to a
 * temporary name in its directory and renamed over the target, so readers never see half a file.
 * All entries are checked before anything is written; the first failure throws
 * CREDENTIAL_PROVISIONING_FAILED naming the entry.
 */
export async function provisionCredentials(
  config: Pick<CdhConfig, 'credentials' | 'credentialsRoot'>,
  resources: ResourceReader,
  logger: Logger,
): Promise<void> {
  if (config.credentials.length === 0) return;
  const root = checkRoot(config.credentialsRoot);
  const checked = config.credentials.map((entry, index) => checkEntry(entry, index, root));

  let realRoot: string;
  try {
    await fs.mkdir(root, { recursive: true, mode: 0o700 });
    realRoot = await fs.realpath(root);
  } catch (error) {
    throw new CdhError(
      'CREDENTIAL_PROVISIONING_FAILED',
      `credentials_root ${root} cannot be created or resolved (${errorCode(error)})`,
    );
  }

  const signal = new AbortController().signal;
  for (const { entry, label, dirSegments, fileName } of checked) {
    let content: Buffer;
    try {
      content = await resources.getResource(entry.resourceUri, { signal });
    } catch (error) {
      throw failure(label, isCdhError(error) ? error.message : 'the resource could not be read', error);
    }
    try {
      const dir = await ensureDirectories(realRoot, root, dirSegments, label);
      await writeAtomically(dir, fileName, content, label);
    } finally {
      content.fill(0);
    }
    logger.info({ resourceUri: entry.resourceUri, path: entry.path }, 'credential provisioned');
  }
}

function checkRoot(credentialsRoot: string): string {
  if (
    typeof credentialsRoot !== 'string' ||
    !path.isAbsolute(credentialsRoot) ||
    credentialsRoot.includes('\0')
  ) {
    throw new CdhError(
      'CREDENTIAL_PROVISIONING_FAILED',
      `credentials_root ${JSON.stringify(credentialsRoot)} must be an absolute path`,
    );
  }
  return path.resolve(credentialsRoot);
}

function checkEntry(entry: CredentialEntry, index: number, root: string): CheckedEntry {
  const label = `[[credentials]] entry ${index + 1} (resource_uri ${JSON.stringify(entry.resourceUri)}, path ${JSON.stringify(entry.path)})`;
  try {
    parseResourceUri(entry.resourceUri);
  } catch (error) {
    throw failure(label, isCdhError(error) ? error.message : 'invalid resource_uri', error);
  }
  const target = entry.path;
  if (typeof target !== 'string' || target === '') throw failure(label, 'path is empty');
  if (target.includes('\0')) throw failure(label, 'path contains a NUL character');
  if (!path.isAbsolute(target)) throw failure(label, 'path must be absolute');
  if (path.normalize(target) !== target || target.endsWith('/')) {
    throw failure(label, 'path must be normalised (no "." or ".." segments, no "//", no trailing "/")');
  }
  const relative = path.relative(root, target);
  if (relative === '' || escapes(relative)) {
    throw failure(label, `path must lie under credentials_root ${root}`);
  }
  const parts = relative.split(path.sep);
  const fileName = parts.pop() ?? '';
  return { entry, label, dirSegments: parts, fileName };
}

/**
 * Creates (mode 0700) or follows each directory below the root, checking after every step
 * that the real location is still inside the real root: a symlinked directory pointing
 * elsewhere is refused rather than written through.
 */
async function ensureDirectories(
  realRoot: string,
  root: string,
  segments: readonly string[],
  label: string,
): Promise<string> {
  let current = realRoot;
  for (const segment of segments) {
    const next = path.join(current, segment);
    let real: string;
    try {
      await fs.mkdir(next, { mode: 0o700 }).catch((error: unknown) => {
        if (errorCode(error) !== 'EEXIST') throw error;
      });
      real = await fs.realpath(next);
    } catch (error) {
      throw failure(label, `directory ${next} cannot be created or resolved (${errorCode(error)})`, error);
    }
    if (!isWithin(realRoot, real)) {
      throw failure(label, `directory ${next} resolves to ${real}, outside credentials_root ${root}`);
    }
    const stat = await fs.stat(real);
    if (!stat.isDirectory()) throw failure(label, `${next} is not a directory`);
    current = real;
  }
  return current;
}

async function writeAtomically(dir: string, fileName: string, content: Buffer, label: string): Promise<void> {
  const temporary = path.join(dir, `.${randomBytes(8).toString('hex')}.cdh-tmp`);
  try {
    // 'wx' = O_CREAT|O_EXCL: never opens an existing file or follows a planted symlink.
    const handle = await fs.open(temporary, 'wx', 0o600);
    try {
      await handle.chmod(0o600);
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(temporary, path.join(dir, fileName));
  } catch (error) {
    await fs.rm(temporary, { force: true }).catch(() => undefined);
    throw failure(label, `cannot write the file (${errorCode(error)})`, error);
  }
}

function isWithin(root: string, candidate: string): boolean {
  const relative = path.relative(root, candidate);
  return relative === '' || !escapes(relative);
}

/** A path.relative() result that leaves its base (`..`, `../x`, or another root). */
function escapes(relative: string): boolean {
  return relative === '..' || relative.startsWith(`..${path.sep}`) || path.isAbsolute(relative);
}

function failure(label: string, reason: string, cause?: unknown): CdhError {
  return new CdhError('CREDENTIAL_PROVISIONING_FAILED', `${label}: ${reason}`, { cause });
}

function errorCode(error: unknown): string {
  return errnoCode(error, 'unknown error');
}
