import { spawn } from 'node:child_process';
import { CdhError, type ErrorCode } from '../errors';
import { quote } from './reference';
import type { Xattr } from './xattr-scan';

/**
 * Which extended attributes of an image layer are written (everything else is dropped and
 * counted): `user.*` except `user.overlay.*` (overlayfs reads that namespace when mounted with
 * `userxattr`), and `security.capability` (file capabilities). Never `trusted.*`: a layer's
 * `trusted.overlay.opaque` / `redirect` / `metacopy` would forge what overlayfs reads as
 * whiteouts, opaque dirs or redirects to other layers' files; `security.selinux` and other
 * security modules' labels belong to the host policy; `system.*` (ACLs) is not carried.
 */
export function xattrApplied(name: string): boolean {
  if (name.startsWith('user.')) return !name.startsWith('user.overlay.');
  return name === 'security.capability';
}

/** The xattrs of one path, relative to the layer root ('' = the root). */
export interface XattrTarget {
  readonly rel: string;
  readonly xattrs: readonly Xattr[];
}

export interface XattrWriteOptions {
  readonly label: string;
  /** Catalogued code of a failure. */
  readonly code: ErrorCode;
  /** "Operation not supported" on every failing path is not an error (the filesystem has no xattrs). */
  readonly tolerateUnsupported: boolean;
}

/** Octal escapes for everything but a few safe characters (getfattr's dump format, read back by setfattr). */
function escape(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8'))
    out += /[A-Za-z0-9._\-+@:/,]/.test(String.fromCharCode(byte))
      ? String.fromCharCode(byte)
      : `\\${byte.toString(8).padStart(3, '0')}`;
  return out;
}

export function xattrDump(targets: readonly XattrTarget[]): string {
  const parts: string[] = [];
  for (const t of targets) {
    if (t.xattrs.length === 0) continue;
    parts.push(`# file: ${t.rel === '' ? '.' : escape(t.rel)}\n`);
    for (const x of t.xattrs) parts.push(`${escape(x.name)}=0x${x.value.toString('hex')}\n`);
    parts.push('\n');
  }
  return parts.join('');
}

/**
 * The one place xattrs are written: a single `setfattr -h --restore=-` (Debian `attr`; Node has
 * no xattr API) run in `root` for all targets, so a final symlink is never followed and the
 * work is one process per layer. Every parent must already be checked to be a real directory.
 * Returns false when the filesystem does not support xattrs and that was tolerated.
 */
export async function writeXattrs(
  root: string,
  targets: readonly XattrTarget[],
  options: XattrWriteOptions,
): Promise<boolean> {
  const dump = xattrDump(targets);
  if (dump === '') return true;
  const { code, stderr } = await runSetfattr(root, dump);
  if (code === 0) return true;
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  if (
    options.tolerateUnsupported &&
    lines.length > 0 &&
    lines.every((l) => l.endsWith('Operation not supported'))
  )
    return false;
  throw new CdhError(
    options.code,
    `${options.label}: cannot set extended attributes with setfattr: ${quote(lines[0] ?? `exit ${code}`)}`,
  );
}

async function runSetfattr(root: string, dump: string): Promise<{ code: number; stderr: string }> {
  const timeoutMs = 30_000 + Math.ceil(dump.length / 10_000);
  return new Promise((resolve, reject) => {
    const child = spawn('setfattr', ['-h', '--restore=-'], { cwd: root, stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => {
      if (stderr.length < 4096) stderr += c.toString('utf8');
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, sig) => {
      clearTimeout(timer);
      resolve({ code: code ?? (sig === null ? 1 : 128), stderr });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(dump);
  });
}
