import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { chmod, lchown, link, lstat, lutimes, mkdir, open, rm, symlink, utimes } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import type { ReadEntry } from 'tar';
import { CdhError } from '../errors';
import { quote } from './reference';
import { LayerPaths } from './layer-paths';
import { parseSequentially } from './tar-stream';
import { writeXattrs, xattrApplied, type XattrTarget } from './xattr';
import type { Xattr } from './xattr-scan';

const run = promisify(execFile);

/**
 * Unpacking rules (the `tar` package only parses; every write is ours):
 * - paths: a leading `/` is dropped (tar's convention); any `..` component refuses the layer;
 *   a parent that is not a real directory in this layer (a symlink, a file) refuses the layer.
 * - files, directories: full mode incl. setuid/setgid/sticky (chmod after chown), numeric
 *   uid/gid from the header, mtime (atime = mtime); directory times are set last.
 * - symlinks: the target is stored as written (it is only followed inside the container).
 * - hard links: the target must be an earlier non-directory entry of this same layer.
 * - whiteouts: `.wh.<name>` becomes the character device 0:0 overlayfs reads as a deletion;
 *   `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its directory; other `.wh..wh.*` entries
 *   (AUFS metadata) are dropped.
 * - character/block devices and FIFOs are skipped (counted): the runtime provides /dev.
 * - PAX `SCHILY.xattr.*` records (read by xattr-scan.ts: the `tar` parser drops them) of files,
 *   directories and hard links are written after the layer's entries when `xattrApplied` allows
 *   the name (user.*, security.capability); others, and any on symlinks, are dropped and counted.
 *   A filesystem without xattr support loses them (counted too).
 */
export interface UnpackStats {
  entries: number;
  skippedDevices: number;
  whiteouts: number;
  opaqueDirs: number;
  xattrsApplied: number;
  /** Not applied: a namespace not honoured, on a symlink, or a filesystem without xattrs. */
  xattrsDropped: number;
}

export async function unpackLayer(
  tarStream: Readable,
  root: string,
  label: string,
  signal: AbortSignal,
): Promise<UnpackStats> {
  const state = new LayerWriter(root, label);
  await parseSequentially(tarStream, (entry, xattrs) => state.handle(entry, xattrs), label, signal);
  await state.finish();
  return state.stats;
}

interface PendingTime {
  path: string;
  depth: number;
  mtime: Date;
}

class LayerWriter extends LayerPaths {
  readonly stats: UnpackStats = {
    entries: 0,
    skippedDevices: 0,
    whiteouts: 0,
    opaqueDirs: 0,
    xattrsApplied: 0,
    xattrsDropped: 0,
  };
  private readonly whiteouts = new Set<string>();
  private readonly opaque = new Set<string>();
  private readonly dirTimes = new Map<string, PendingTime>();
  private readonly xattrs = new Map<string, readonly Xattr[]>();

  async handle(entry: ReadEntry, xattrs: readonly Xattr[]): Promise<void> {
    this.stats.entries++;
    await this.entry(entry);
    if (xattrs.length > 0) this.keepXattrs(entry, xattrs);
  }

  private keepXattrs(entry: ReadEntry, xattrs: readonly Xattr[]): void {
    const parts = this.clean(entry.path, 'path');
    const kept = ['File', 'OldFile', 'ContiguousFile', 'Directory', 'Link'].includes(entry.type)
      ? xattrs.filter((x) => xattrApplied(x.name))
      : [];
    this.stats.xattrsDropped += xattrs.length - kept.length;
    if (kept.length > 0 && !parts[parts.length - 1]?.startsWith('.wh.'))
      this.xattrs.set(parts.join('/'), kept);
  }

  private async entry(entry: ReadEntry): Promise<void> {
    const parts = this.clean(entry.path, 'path');
    const rel = parts.join('/');
    const name = parts[parts.length - 1] ?? '';
    try {
      if (name.startsWith('.wh.')) {
        entry.resume();
        return await this.whiteout(parts.slice(0, -1), name);
      }
      switch (entry.type) {
        case 'Directory':
          entry.resume();
          return await this.directory(parts, entry);
        case 'File':
        case 'OldFile':
        case 'ContiguousFile':
          return await this.file(parts, entry);
        case 'SymbolicLink':
          entry.resume();
          return await this.symlink(parts, entry);
        case 'Link':
          entry.resume();
          return await this.hardLink(parts, entry);
        case 'CharacterDevice':
        case 'BlockDevice':
        case 'FIFO':
          entry.resume();
          this.stats.skippedDevices++;
          return;
        default:
          entry.resume();
          return;
      }
    } catch (error) {
      if (error instanceof CdhError) throw error;
      const code = (error as NodeJS.ErrnoException).code ?? 'error';
      throw new CdhError(
        'IMAGE_LAYER_INVALID',
        `${this.label}: cannot unpack entry ${quote(rel)} (${code})`,
        {
          cause: error,
        },
      );
    }
  }

  /** Removes what an earlier entry put at `parts` (a later entry replaces it, as tar does). */
  private async replace(parts: readonly string[], keepDir: boolean): Promise<boolean> {
    const path = this.abs(parts);
    const st = await lstat(path).catch(() => undefined);
    if (st === undefined) return false;
    if (keepDir && st.isDirectory()) return true;
    await rm(path, { recursive: true, force: true });
    const rel = parts.join('/');
    for (const known of this.knownDirs)
      if (known === rel || known.startsWith(`${rel}/`)) this.knownDirs.delete(known);
    for (const known of this.dirTimes.keys())
      if (known === rel || known.startsWith(`${rel}/`)) this.dirTimes.delete(known);
    for (const set of [this.xattrs, this.opaque, this.whiteouts])
      for (const known of set.keys()) if (known === rel || known.startsWith(`${rel}/`)) set.delete(known);
    return false;
  }

  private async directory(parts: string[], entry: ReadEntry): Promise<void> {
    await this.parents(parts);
    const path = this.abs(parts);
    if (parts.length > 0 && !(await this.replace(parts, true))) await mkdir(path, { mode: 0o700 });
    await this.owner(path, entry);
    await chmod(path, mode(entry, 0o755));
    const rel = parts.join('/');
    this.knownDirs.add(rel);
    this.dirTimes.set(rel, { path, depth: parts.length, mtime: entry.mtime ?? new Date(0) });
  }

  private async file(parts: string[], entry: ReadEntry): Promise<void> {
    if (parts.length === 0) throw this.refuse(entry.path, 'a file cannot replace the layer root');
    await this.parents(parts);
    await this.replace(parts, false);
    const path = this.abs(parts);
    const handle = await open(
      path,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o600,
    );
    await pipeline(entry, handle.createWriteStream());
    await this.owner(path, entry);
    await chmod(path, mode(entry, 0o644));
    const time = entry.mtime ?? new Date(0);
    await utimes(path, time, time);
  }

  private async symlink(parts: string[], entry: ReadEntry): Promise<void> {
    if (parts.length === 0) throw this.refuse(entry.path, 'a symlink cannot replace the layer root');
    const target = entry.linkpath ?? '';
    if (target === '' || target.includes('\0')) throw this.refuse(entry.path, 'symlink without a target');
    await this.parents(parts);
    await this.replace(parts, false);
    const path = this.abs(parts);
    await symlink(target, path);
    await lchown(path, entry.uid ?? 0, entry.gid ?? 0);
    const time = entry.mtime ?? new Date(0);
    await lutimes(path, time, time);
  }

  private async hardLink(parts: string[], entry: ReadEntry): Promise<void> {
    if (parts.length === 0) throw this.refuse(entry.path, 'a hard link cannot replace the layer root');
    const targetParts = this.clean(entry.linkpath ?? '', 'hard link target');
    if (targetParts.length === 0) throw this.refuse(entry.path, 'hard link to the layer root');
    const linkpath = entry.linkpath ?? '';
    await this.parents(targetParts, false, entry.path, `hard link target ${quote(linkpath)}: `);
    const targetPath = this.abs(targetParts);
    const st = await lstat(targetPath).catch(() => undefined);
    if (st === undefined || st.isDirectory())
      throw this.refuse(
        entry.path,
        `hard link target ${quote(entry.linkpath ?? '')} is not ${st ? 'a non-directory' : 'an earlier entry'} of this layer`,
      );
    await this.parents(parts);
    if (targetParts.join('/') === parts.join('/')) return;
    await this.replace(parts, false);
    await link(targetPath, this.abs(parts));
  }

  private async whiteout(dirParts: string[], name: string): Promise<void> {
    await this.parents([...dirParts, name]);
    if (name === '.wh..wh..opq') {
      this.opaque.add(dirParts.join('/'));
      return;
    }
    if (name.startsWith('.wh..wh.')) return;
    const hidden = name.slice('.wh.'.length);
    if (hidden === '') throw this.refuse(name, 'empty whiteout name');
    this.whiteouts.add([...dirParts, hidden].join('/'));
  }

  private async owner(path: string, entry: ReadEntry): Promise<void> {
    await lchown(path, entry.uid ?? 0, entry.gid ?? 0);
  }

  /** The image's own xattrs (parents re-checked: a later entry may have replaced one). */
  private async writeImageXattrs(): Promise<void> {
    const targets: XattrTarget[] = [];
    for (const [rel, xattrs] of this.xattrs) {
      await this.parents(rel === '' ? [] : rel.split('/'), false);
      targets.push({ rel, xattrs });
    }
    const count = targets.reduce((n, t) => n + t.xattrs.length, 0);
    const options = { label: this.label, code: 'IMAGE_LAYER_INVALID', tolerateUnsupported: true } as const;
    if (await writeXattrs(this.root, targets, options)) this.stats.xattrsApplied += count;
    else this.stats.xattrsDropped += count;
  }

  /** Whiteouts, opaque markers and xattrs, then directory times (deepest first). */
  async finish(): Promise<void> {
    for (const rel of this.whiteouts) {
      const parts = rel.split('/');
      const path = this.abs(parts);
      const existing = await lstat(path).catch(() => undefined);
      if (existing !== undefined) continue;
      await this.parents(parts);
      await runTool('mknod', ['-m', '000', '--', path, 'c', '0', '0'], this.label, rel);
      this.stats.whiteouts++;
    }
    const opaque: XattrTarget[] = [];
    for (const rel of this.opaque) {
      await this.parents([...(rel === '' ? [] : rel.split('/')), '.wh..wh..opq'], false);
      opaque.push({ rel, xattrs: [{ name: 'trusted.overlay.opaque', value: Buffer.from('y') }] });
    }
    const what = { label: `${this.label}: overlay opaque markers`, code: 'IMAGE_MOUNT_FAILED' } as const;
    await writeXattrs(this.root, opaque, { ...what, tolerateUnsupported: false });
    this.stats.opaqueDirs += opaque.length;
    await this.writeImageXattrs();
    const dirs = [...this.dirTimes.values()].sort((a, b) => b.depth - a.depth);
    for (const d of dirs) await utimes(d.path, d.mtime, d.mtime);
  }
}

function mode(entry: ReadEntry, fallback: number): number {
  return (entry.mode ?? fallback) & 0o7777;
}

async function runTool(tool: string, args: string[], label: string, rel: string): Promise<void> {
  try {
    await run(tool, args, { timeout: 10_000 });
  } catch (error) {
    const e = error as { code?: unknown; stderr?: unknown };
    const why = typeof e.stderr === 'string' && e.stderr.trim() !== '' ? e.stderr.trim() : String(e.code);
    throw new CdhError(
      'IMAGE_MOUNT_FAILED',
      `${label}: cannot create the overlay marker for ${quote(rel || '/')} with ${tool}: ${why.slice(0, 200)}`,
    );
  }
}
