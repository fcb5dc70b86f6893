import { constants } from 'node:fs';
import { lstat, open, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { CdhError } from '../errors';
import { quote } from './reference';

/** The container's process identity for config.json (`process.user`). */
export interface ProcessUser {
  uid: number;
  gid: number;
  additionalGids?: number[];
}

const MAX_ACCOUNT_FILE_BYTES = 1024 * 1024;
const MAX_SYMLINKS = 40;
const MAX_ID = 2 ** 31 - 1;

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
}
interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

/**
 * Resolves the image config's `User` (`user`, `user:group`, ids or names) against the rootfs'
 * /etc/passwd and /etc/group, as runc does: a name must exist; a numeric id need not (then the
 * primary group is 0); an explicit group replaces the primary group and adds none; without one,
 * the groups listing the user as a member become additionalGids.
 */
export async function resolveUser(rootfs: string, spec: string, label: string): Promise<ProcessUser> {
  if (spec === '') return { uid: 0, gid: 0 };
  const colon = spec.indexOf(':');
  const userPart = colon < 0 ? spec : spec.slice(0, colon);
  const groupPart = colon < 0 ? '' : spec.slice(colon + 1);
  const unknown = (what: string): CdhError =>
    new CdhError('IMAGE_USER_UNKNOWN', `${label}: the image config's User ${quote(spec)}: ${what}`);
  const numericUid = numericId(userPart);
  const passwd =
    numericUid !== undefined && groupPart !== '' && numericId(groupPart) !== undefined
      ? []
      : parsePasswd(await readRootfsFile(rootfs, '/etc/passwd', label));
  const entry = passwd.find((p) => p.name === userPart) ?? passwd.find((p) => p.uid === numericUid);
  if (entry === undefined && numericUid === undefined)
    throw unknown(`no user ${quote(userPart)} in the image's /etc/passwd`);
  const user = { name: entry?.name ?? '', uid: entry?.uid ?? (numericUid as number), gid: entry?.gid ?? 0 };
  const numericGid = numericId(groupPart);
  if (groupPart !== '' && numericGid !== undefined) return { uid: user.uid, gid: numericGid };
  if (groupPart === '' && user.name === '') return { uid: user.uid, gid: user.gid };
  const groups = parseGroup(await readRootfsFile(rootfs, '/etc/group', label));
  if (groupPart !== '') {
    const group = groups.find((g) => g.name === groupPart);
    if (group === undefined) throw unknown(`no group ${quote(groupPart)} in the image's /etc/group`);
    return { uid: user.uid, gid: group.gid };
  }
  const additional = groups.filter((g) => g.members.includes(user.name)).map((g) => g.gid);
  return additional.length > 0
    ? { uid: user.uid, gid: user.gid, additionalGids: [...new Set(additional)] }
    : { uid: user.uid, gid: user.gid };
}

function numericId(text: string): number | undefined {
  if (!/^\d{1,10}$/.test(text)) return undefined;
  const n = Number(text);
  return n <= MAX_ID ? n : undefined;
}

function fields(text: string | undefined, count: number): string[][] {
  if (text === undefined) return [];
  return text
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#') && !/^[+-]/.test(line))
    .map((line) => line.split(':'))
    .filter((f) => f.length >= count);
}

export function parsePasswd(text: string | undefined): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const f of fields(text, 4)) {
    const uid = numericId(f[2] as string);
    const gid = numericId(f[3] as string);
    if (uid !== undefined && gid !== undefined) out.push({ name: f[0] as string, uid, gid });
  }
  return out;
}

export function parseGroup(text: string | undefined): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const f of fields(text, 3)) {
    const gid = numericId(f[2] as string);
    const members = (f[3] ?? '').split(',').filter((m) => m !== '');
    if (gid !== undefined) out.push({ name: f[0] as string, gid, members });
  }
  return out;
}

/**
 * A file of the rootfs read as the container would see it: symlinks are resolved inside the
 * rootfs (an absolute target starts again at its root, `..` stops at it), never outside it.
 * Undefined when it does not exist; larger than 1 MiB or not a regular file refuses the pull.
 */
export async function readRootfsFile(
  rootfs: string,
  path: string,
  label: string,
): Promise<string | undefined> {
  const resolved = await resolveInRoot(rootfs, path);
  if (resolved === undefined) return undefined;
  const fail = (why: string): CdhError =>
    new CdhError('IMAGE_USER_UNKNOWN', `${label}: cannot read the image's ${path}: ${why}`);
  let handle;
  try {
    handle = await open(
      join(rootfs, ...resolved),
      constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK,
    );
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw fail(code ?? 'error');
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw fail('not a regular file');
    if (st.size > MAX_ACCOUNT_FILE_BYTES) throw fail(`larger than ${MAX_ACCOUNT_FILE_BYTES} bytes`);
    const data = Buffer.alloc(st.size);
    const { bytesRead } = await handle.read(data, 0, st.size, 0);
    return data.subarray(0, bytesRead).toString('utf8');
  } finally {
    await handle.close();
  }
}

/** Components of `path` inside `root` with every symlink resolved there; undefined if missing. */
async function resolveInRoot(root: string, path: string): Promise<string[] | undefined> {
  const done: string[] = [];
  const todo = path.split('/').reverse();
  let links = 0;
  while (todo.length > 0) {
    const part = todo.pop() as string;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      done.pop();
      continue;
    }
    const here = join(root, ...done, part);
    const st = await lstat(here).catch(() => undefined);
    if (st === undefined) return undefined;
    if (!st.isSymbolicLink()) {
      done.push(part);
      continue;
    }
    if (++links > MAX_SYMLINKS) return undefined;
    const target = await readlink(here);
    if (target.startsWith('/')) done.length = 0;
    todo.push(...target.split('/').reverse());
  }
  return done;
}
