// The module object itself (a namespace import would be a copy): patching it reaches every caller.
import fs from 'node:fs';

/**
 * Records every call in this process that could create, change or remove a file while it is
 * installed: node:fs write-mode opens, writes by path, mkdir/mkdtemp, rename, copy, link,
 * unlink/rm, chmod/chown/utimes, truncate and write streams (callback, sync and promise
 * forms). Writes to already-open descriptors (the log on stdout) are not file creations and
 * are not recorded. The calls still happen; the test asserts the record is empty.
 */

const WRITE_OPEN_FLAGS =
  fs.constants.O_WRONLY |
  fs.constants.O_RDWR |
  fs.constants.O_CREAT |
  fs.constants.O_TRUNC |
  fs.constants.O_APPEND;

const PATH_WRITERS = [
  'writeFile',
  'appendFile',
  'mkdir',
  'mkdtemp',
  'rename',
  'copyFile',
  'cp',
  'symlink',
  'link',
  'unlink',
  'rm',
  'rmdir',
  'truncate',
  'chmod',
  'chown',
  'lchown',
  'utimes',
  'lutimes',
] as const;

export interface FileWriteSpy {
  /** `<function>(<first argument>)` of every recorded call. */
  readonly calls: string[];
  restore(): void;
}

function isWriteFlag(flags: unknown): boolean {
  if (flags === undefined || flags === null) return false;
  if (typeof flags === 'number') return (flags & WRITE_OPEN_FLAGS) !== 0;
  return /[wa+]/.test(String(flags));
}

type AnyFunction = (...args: unknown[]) => unknown;

export function spyOnFileWrites(): FileWriteSpy {
  const calls: string[] = [];
  const restorers: Array<() => void> = [];
  const wrap = (target: object, name: string, record: (args: unknown[]) => boolean): void => {
    const holder = target as Record<string, unknown>;
    const original = holder[name];
    if (typeof original !== 'function') return;
    const wrapped = function (this: unknown, ...args: unknown[]): unknown {
      if (record(args)) calls.push(`${name}(${String(args[0])})`);
      return (original as AnyFunction).apply(this, args);
    };
    holder[name] = wrapped;
    restorers.push(() => {
      holder[name] = original;
    });
  };
  const always = (): boolean => true;
  for (const name of PATH_WRITERS) {
    wrap(fs, name, always);
    wrap(fs, `${name}Sync`, always);
    wrap(fs.promises, name, always);
  }
  wrap(fs, 'open', (args) => isWriteFlag(args[1]));
  wrap(fs, 'openSync', (args) => isWriteFlag(args[1]));
  wrap(fs.promises, 'open', (args) => isWriteFlag(args[1]));
  wrap(fs, 'createWriteStream', always);
  return {
    calls,
    restore() {
      for (const restore of restorers.splice(0).reverse()) restore();
    },
  };
}

/** Every path under `root` with its type and size (a snapshot to compare before/after). */
export function snapshotTree(root: string): string[] {
  const entries: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = `${dir}/${entry.name}`;
      const stat = fs.lstatSync(full);
      entries.push(`${full} ${stat.mode.toString(8)} ${entry.isFile() ? stat.size : '-'}`);
      if (entry.isDirectory()) walk(full);
    }
  };
  walk(root);
  return entries.sort();
}
