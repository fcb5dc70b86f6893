import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TreeNode {
  type: 'file' | 'dir' | 'symlink' | 'other';
  mode: string;
  uid: number;
  gid: number;
  size?: number;
  sha256?: string;
  link?: string;
}

/** Every path under `root` (not root itself) with type, mode, owner, size, content hash, link target. */
export function snapshotTree(root: string): Map<string, TreeNode> {
  const out = new Map<string, TreeNode>();
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const path = rel === '' ? name : `${rel}/${name}`;
      const abs = join(root, path);
      const st = lstatSync(abs);
      const base = { mode: (st.mode & 0o7777).toString(8), uid: st.uid, gid: st.gid };
      if (st.isDirectory()) {
        out.set(path, { type: 'dir', ...base });
        walk(path);
      } else if (st.isSymbolicLink()) out.set(path, { type: 'symlink', ...base, link: readlinkSync(abs) });
      else if (st.isFile())
        out.set(path, {
          type: 'file',
          ...base,
          size: st.size,
          sha256: createHash('sha256').update(readFileSync(abs)).digest('hex'),
        });
      else out.set(path, { type: 'other', ...base });
    }
  };
  walk('');
  return out;
}

/** Differences between two snapshots, one line each (empty when equal). */
export function diffTrees(a: Map<string, TreeNode>, b: Map<string, TreeNode>): string[] {
  const lines: string[] = [];
  for (const [path, node] of a) {
    const other = b.get(path);
    if (!other) lines.push(`only in first: ${path}`);
    else if (JSON.stringify(node) !== JSON.stringify(other))
      lines.push(`${path}: ${JSON.stringify(node)} != ${JSON.stringify(other)}`);
  }
  for (const path of b.keys()) if (!a.has(path)) lines.push(`only in second: ${path}`);
  return lines;
}

/** Debian's umoci unpacking `<layout>:<tag>` into `<bundle>` (as root: owners kept). */
export async function umociUnpack(layout: string, tag: string, bundle: string): Promise<string> {
  await run('umoci', ['unpack', '--image', `${layout}:${tag}`, bundle], { timeout: 120_000 });
  return join(bundle, 'rootfs');
}

export async function unmount(path: string): Promise<void> {
  await run('umount', [path]).catch(() => undefined);
}

/** Every extended attribute under `root` (getfattr -R, symlinks not followed): path → name → hex value. */
export async function xattrTree(root: string): Promise<Map<string, Record<string, string>>> {
  const { stdout } = await run('getfattr', ['-R', '-h', '-d', '-m', '-', '-e', 'hex', '.'], {
    cwd: root,
    maxBuffer: 1 << 26,
  });
  const out = new Map<string, Record<string, string>>();
  let current: Record<string, string> | undefined;
  for (const line of stdout.split('\n')) {
    const file = /^# file: (?:\.\/)?(.*)$/.exec(line);
    if (file) out.set(file[1] as string, (current = {}));
    else if (current && line.includes('=')) {
      const at = line.indexOf('=');
      current[line.slice(0, at)] = line.slice(at + 1);
    }
  }
  return out;
}
