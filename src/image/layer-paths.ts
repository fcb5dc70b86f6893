import { lstat, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CdhError } from '../errors';
import { quote } from './reference';

/**
 * Paths inside one layer being unpacked: entry names cleaned (`..` refuses the layer) and
 * parents that are real directories of this layer, never symlinks (checked once, remembered).
 */
export class LayerPaths {
  /** Directories of this layer known to be real (relative paths; '' = the root). */
  protected readonly knownDirs = new Set<string>(['']);

  constructor(
    protected readonly root: string,
    protected readonly label: string,
  ) {}

  /** Components of a path inside the layer; `..` anywhere refuses the layer. */
  protected clean(path: string, what: string): string[] {
    if (path.includes('\0')) throw this.refuse(path, `${what} holds a NUL byte`);
    const parts = path.split('/').filter((p) => p !== '' && p !== '.');
    if (parts.includes('..')) throw this.refuse(path, `${what} has a ".." component`);
    return parts;
  }

  protected refuse(path: string, why: string): CdhError {
    return new CdhError('IMAGE_LAYER_INVALID', `${this.label}: entry ${quote(path)} refused: ${why}`);
  }

  protected abs(parts: readonly string[]): string {
    return join(this.root, ...parts);
  }

  /**
   * Makes every parent a real directory of this layer (created 0755 root:root if missing).
   * `entry` names the tar entry in messages; `what` says which of its paths this is.
   */
  protected async parents(
    parts: readonly string[],
    create = true,
    entry = parts.join('/'),
    what = '',
  ): Promise<void> {
    for (let i = 1; i < parts.length; i++) {
      const rel = parts.slice(0, i).join('/');
      if (this.knownDirs.has(rel)) continue;
      const path = this.abs(parts.slice(0, i));
      const st = await lstat(path).catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') return undefined;
        throw e;
      });
      if (st === undefined) {
        if (!create) throw this.refuse(entry, `${what}parent ${quote(rel)} does not exist in this layer`);
        await mkdir(path, { mode: 0o755 });
      } else if (!st.isDirectory()) {
        throw this.refuse(
          entry,
          `${what}parent ${quote(rel)} is a ${st.isSymbolicLink() ? 'symlink' : 'non-directory'} in this layer`,
        );
      }
      this.knownDirs.add(rel);
    }
  }
}
