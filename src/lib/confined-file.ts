import { promises as fs, type BigIntStats } from 'node:fs';
import * as path from 'node:path';

/**
 * Opening a file that must stay inside a directory once every symbolic link is followed.
 *
 * Links are followed (a Kubernetes secret volume is a chain of links into `..data/` in the same
 * directory), but where the opened file really is decides: on Linux the kernel's own path of the
 * open descriptor (`/proc/self/fd/N`), so swapping a link between the check and the open cannot
 * smuggle in another file; elsewhere the resolved path, accepted only when it still names the
 * inode that was opened.
 */

/** The opened file lies outside the directory it is confined to (or moved while being opened). */
export class OutsideDirectoryError extends Error {
  constructor(
    readonly filePath: string,
    readonly directory: string,
  ) {
    super(`${filePath} resolves to a file outside ${directory}`);
    this.name = 'OutsideDirectoryError';
  }
}

/** True when `relative` does not climb: `..` as its first segment, not a name such as `..data`. */
function climbs(relative: string): boolean {
  return relative === '..' || relative.startsWith(`..${path.sep}`);
}

/** Lexical test (no file system): does `filePath` name something inside `directory`? */
export function pathIsInside(directory: string, filePath: string): boolean {
  const relative = path.relative(path.resolve(directory), path.resolve(filePath));
  return !climbs(relative) && !path.isAbsolute(relative);
}

/**
 * Opens `filePath` with `flags` and returns the handle and its stat, or throws
 * OutsideDirectoryError when the file it reaches lies outside `directory` (after every link).
 * File system errors (ENOENT, EACCES, ...) are thrown as they are.
 */
export async function openInsideDirectory(
  directory: string,
  filePath: string,
  flags: number,
): Promise<{ handle: fs.FileHandle; stat: BigIntStats }> {
  const realDirectory = await fs.realpath(directory);
  const handle = await fs.open(filePath, flags);
  try {
    const stat = await handle.stat({ bigint: true });
    const where = await openedLocation(handle, filePath, stat);
    if (where === undefined || !insideReal(realDirectory, where)) {
      throw new OutsideDirectoryError(filePath, directory);
    }
    return { handle, stat };
  } catch (error) {
    await handle.close().catch(() => undefined);
    throw error;
  }
}

function insideReal(realDirectory: string, where: string): boolean {
  const relative = path.relative(realDirectory, where);
  return relative !== '' && !climbs(relative) && !path.isAbsolute(relative);
}

/** Where the open descriptor's file is; undefined when that cannot be told for sure. */
async function openedLocation(
  handle: fs.FileHandle,
  filePath: string,
  opened: BigIntStats,
): Promise<string | undefined> {
  try {
    const kernelPath = await fs.readlink(`/proc/self/fd/${handle.fd}`);
    if (path.isAbsolute(kernelPath)) return kernelPath;
  } catch {
    // No procfs: fall back to resolving the path again.
  }
  const resolved = await fs.realpath(filePath);
  const now = await fs.lstat(resolved, { bigint: true });
  return now.dev === opened.dev && now.ino === opened.ino ? resolved : undefined;
}
