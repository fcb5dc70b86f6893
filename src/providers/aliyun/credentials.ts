import { constants as fsConstants, existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { CdhError } from '../../errors';
import { quoteUntrusted } from '../../lib/untrusted';
import { fileReadProblem } from '../../lib/errno';
import { openInsideDirectory, OutsideDirectoryError } from '../../lib/confined-file';

/**
 * Helpers shared by the aliyun client types: where credential files are, the rule for ids
 * that name them, and reading them with errors that name the file but never its content.
 */

/** Credential files are small; anything larger is not one of ours. */
const MAX_CREDENTIAL_FILE_BYTES = 1024 * 1024;
/** An id that becomes part of a credential file name (checked in client-key/settings.ts). */
export const MAX_ID_LENGTH = 256;
export const ID_PATTERN = /^[A-Za-z0-9._*-]+$/;

/** Upstream's current credential directory (since early 2026), tried first. */
export const UPSTREAM_CREDENTIAL_DIR = '/run/confidential-containers/cdh/kbs/kms-credential/aliyun';
/** The seed document's directory (existing guides and images), tried second. */
export const SEED_CREDENTIAL_DIR = '/run/confidential-containers/cdh/kms-credential/aliyun';

/** The directories a credential file is looked up in: `[aliyun] credential_dir` alone when set. */
export function credentialDirs(credentialDir: string): string[] {
  return credentialDir === '' ? [UPSTREAM_CREDENTIAL_DIR, SEED_CREDENTIAL_DIR] : [credentialDir];
}

/**
 * The path of `fileName` in the first credential directory that has it; when none has it, the
 * path in the first directory (so the error names where it is expected).
 */
export function locateCredentialFile(credentialDir: string, fileName: string): string {
  const paths = credentialDirs(credentialDir).map((dir) => credentialFilePath(dir, fileName));
  return paths.find((candidate) => existsSync(candidate)) ?? (paths[0] as string);
}

/** The path of `fileName` directly inside `dir`; refuses names that would land elsewhere. */
export function credentialFilePath(dir: string, fileName: string): string {
  const resolvedDir = path.resolve(dir);
  const full = path.resolve(resolvedDir, fileName);
  if (path.dirname(full) !== resolvedDir || path.basename(full) !== fileName) {
    throw new CdhError(
      'PROVIDER_SETTINGS_INVALID',
      `credential file name ${quoteUntrusted(fileName)} is refused`,
    );
  }
  return full;
}

/**
 * Opening never blocks: a FIFO without a writer would otherwise hold a thread of libuv's small
 * pool forever (and a few of them every file and crypto call); a terminal must not become ours.
 */
const OPEN_FLAGS = fsConstants.O_RDONLY | fsConstants.O_NONBLOCK | fsConstants.O_NOCTTY;

/**
 * Reads a credential file: only a regular file of at most 1 MiB (a device such as /dev/zero
 * would be read until memory runs out). With `confinedTo`, the file reached (after every
 * symbolic link) must lie inside that directory: links within it work (a Kubernetes secret
 * volume's `..data/` chain), a link leaving it is refused. Every failure is
 * CREDENTIAL_UNAVAILABLE naming the file.
 */
export async function readCredentialFile(
  filePath: string,
  what: string,
  confinedTo?: string,
): Promise<Buffer> {
  let handle: fs.FileHandle | undefined;
  try {
    let size: bigint;
    let isFile: boolean;
    if (confinedTo === undefined) {
      handle = await fs.open(filePath, OPEN_FLAGS);
      const stat = await handle.stat({ bigint: true });
      [size, isFile] = [stat.size, stat.isFile()];
    } else {
      const opened = await openInsideDirectory(confinedTo, filePath, OPEN_FLAGS);
      handle = opened.handle;
      [size, isFile] = [opened.stat.size, opened.stat.isFile()];
    }
    if (!isFile) throw credentialError(filePath, what, 'is not a regular file');
    if (size > BigInt(MAX_CREDENTIAL_FILE_BYTES)) {
      throw credentialError(filePath, what, `is larger than ${MAX_CREDENTIAL_FILE_BYTES} bytes`);
    }
    return await handle.readFile();
  } catch (error) {
    if (error instanceof CdhError) throw error;
    if (error instanceof OutsideDirectoryError) {
      throw credentialError(filePath, what, `is a link that leaves ${confinedTo ?? ''}: refused`);
    }
    throw credentialError(filePath, what, fileReadProblem(error), error);
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/** A CREDENTIAL_UNAVAILABLE error about one file: `<what> <path> <problem>`. */
export function credentialError(filePath: string, what: string, problem: string, cause?: unknown): CdhError {
  return new CdhError('CREDENTIAL_UNAVAILABLE', `${what} ${filePath} ${problem}`, { cause });
}
