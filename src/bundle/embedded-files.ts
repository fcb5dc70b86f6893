// The module object itself (a namespace import is a copy whose properties cannot be set).
// eslint-disable-next-line @typescript-eslint/no-require-imports
import fs = require('node:fs');
import * as path from 'node:path';
import * as vm from 'node:vm';

/**
 * The read-only files a bundle carries (protos, descriptor sets, package.json, the .proto files
 * third-party packages load at run time), served at `<bundle file>/<path in the package>`.
 *
 * Bundled code keeps reading them through `fs` as it does from `dist/`: the bundle rewrites
 * every module's `__dirname`/`__filename` to a path under the bundle file, and this overlay
 * answers the few `fs` calls those readers make for such paths. A path under a regular file can
 * never exist on disk (ENOTDIR), so nothing real is shadowed; every other path goes to `fs`.
 */

/**
 * A file's bytes: UTF-8 text as it is, anything else as base64; large parts brotli-compressed
 * (base64), so that the bundle's source, which V8 keeps in memory, holds them at a fifth.
 */
export type EmbeddedFile = string | { readonly utf8: string } | { readonly brotli: string };
/** Path inside the package ('protos/api.proto') → the file. */
export type EmbeddedFileMap = Readonly<Record<string, EmbeddedFile>>;
/**
 * What a bundle carries: each file behind a function, so that its text (a string literal in a
 * function not yet called) stays unparsed source until the file is first read.
 */
export type LazyEmbeddedFileMap = Readonly<Record<string, () => EmbeddedFile>>;

interface Overlay {
  readonly root: string;
  readonly files: Map<string, (() => EmbeddedFile) | Buffer>;
  readonly dirs: Set<string>;
}

let overlay: Overlay | undefined;

/** Relative path inside the bundle, or undefined when `file` is not under it. */
function inside(file: unknown): string | undefined {
  if (overlay === undefined) return undefined;
  let name: string;
  if (typeof file === 'string') name = file;
  else if (file instanceof URL && file.protocol === 'file:') name = decodeURIComponent(file.pathname);
  else if (Buffer.isBuffer(file)) name = file.toString();
  else return undefined;
  const prefix = overlay.root + path.sep;
  if (!name.startsWith(prefix)) return undefined;
  return path.normalize(name.slice(prefix.length));
}

function contents(relative: string): Buffer | undefined {
  const stored = (overlay as Overlay).files.get(relative);
  if (stored === undefined) return undefined;
  if (!Buffer.isBuffer(stored)) {
    const decoded = decode(stored());
    (overlay as Overlay).files.set(relative, decoded);
    return decoded;
  }
  return stored;
}

function decode(file: EmbeddedFile): Buffer {
  if (typeof file === 'string') return Buffer.from(file, 'base64');
  if ('utf8' in file) return Buffer.from(file.utf8, 'utf8');
  // Loaded only here: zlib is not needed until a compressed part is first read.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const zlib = require('node:zlib') as typeof import('node:zlib');
  return zlib.brotliDecompressSync(Buffer.from(file.brotli, 'base64'));
}

function notFound(syscall: string, file: unknown): NodeJS.ErrnoException {
  const error: NodeJS.ErrnoException = new Error(
    `ENOENT: no such file in the bundle, ${syscall} '${String(file)}'`,
  );
  error.code = 'ENOENT';
  error.errno = -2;
  error.syscall = syscall;
  error.path = String(file);
  return error;
}

function encodingOf(options: unknown): BufferEncoding | undefined {
  if (typeof options === 'string') return options as BufferEncoding;
  if (typeof options === 'object' && options !== null && 'encoding' in options) {
    const { encoding } = options as { encoding?: unknown };
    if (typeof encoding === 'string') return encoding as BufferEncoding;
  }
  return undefined;
}

function read(relative: string, file: unknown, options: unknown, syscall: string): string | Buffer {
  const bytes = contents(relative);
  if (bytes === undefined) throw notFound(syscall, file);
  const encoding = encodingOf(options);
  return encoding === undefined ? Buffer.from(bytes) : bytes.toString(encoding);
}

function fakeStats(relative: string, file: unknown): fs.Stats {
  const isFile = (overlay as Overlay).files.has(relative);
  const isDir = (overlay as Overlay).dirs.has(relative);
  if (!isFile && !isDir) throw notFound('stat', file);
  const real = fs.statSync(process.execPath);
  const size = isFile ? (contents(relative) as Buffer).length : 0;
  return Object.assign(Object.create(Object.getPrototypeOf(real) as object) as fs.Stats, real, {
    size,
    mode: isFile ? 0o100444 : 0o40555,
    isFile: () => isFile,
    isDirectory: () => isDir,
    isSymbolicLink: () => false,
  });
}

type Callback = (error: NodeJS.ErrnoException | null, data?: string | Buffer) => void;

/** Installs the overlay for the bundle at `bundleFile` (the bundle's own `__filename`). */
export function installEmbeddedFiles(bundleFile: string, files: LazyEmbeddedFileMap): void {
  if (overlay !== undefined) return;
  const dirs = new Set<string>(['.']);
  for (const name of Object.keys(files)) {
    for (let dir = path.dirname(name); dir !== '.' && !dirs.has(dir); dir = path.dirname(dir)) dirs.add(dir);
  }
  const current: Overlay = { root: path.resolve(bundleFile), files: new Map(Object.entries(files)), dirs };
  overlay = current;
  const has = (relative: string): boolean => current.files.has(relative) || current.dirs.has(relative);

  patchFs(has);
}

type RealFs = Pick<typeof fs, 'readFileSync' | 'existsSync' | 'accessSync' | 'statSync' | 'readFile'>;

/** Routes the `fs` calls the bundled readers make to the overlay for paths under the bundle. */
function patchFs(has: (relative: string) => boolean): void {
  const real: RealFs = {
    readFileSync: fs.readFileSync,
    existsSync: fs.existsSync,
    accessSync: fs.accessSync,
    statSync: fs.statSync,
    readFile: fs.readFile,
  };
  const patched = fs as unknown as Record<keyof RealFs, unknown>;
  patchReads(real, patched);
  patchQueries(real, patched, has);
}

function patchReads(real: RealFs, patched: Record<keyof RealFs, unknown>): void {
  patched.readFileSync = function readFileSync(file: unknown, options?: unknown): string | Buffer {
    const relative = inside(file);
    if (relative === undefined)
      return (real.readFileSync as (f: unknown, o?: unknown) => string | Buffer)(file, options);
    return read(relative, file, options, 'open');
  };
  patched.readFile = function readFile(file: unknown, ...rest: unknown[]): void {
    const relative = inside(file);
    if (relative === undefined) {
      (real.readFile as (...args: unknown[]) => void)(file, ...rest);
      return;
    }
    const callback = rest[rest.length - 1] as Callback;
    const options = rest.length > 1 ? rest[0] : undefined;
    let result: string | Buffer;
    try {
      result = read(relative, file, options, 'open');
    } catch (error) {
      process.nextTick(callback, error as NodeJS.ErrnoException);
      return;
    }
    process.nextTick(callback, null, result);
  };
}

function patchQueries(
  real: RealFs,
  patched: Record<keyof RealFs, unknown>,
  has: (relative: string) => boolean,
): void {
  patched.existsSync = function existsSync(file: unknown): boolean {
    const relative = inside(file);
    if (relative === undefined) return real.existsSync(file as fs.PathLike);
    return has(relative);
  };
  patched.accessSync = function accessSync(file: unknown, mode?: number): void {
    const relative = inside(file);
    if (relative === undefined) return real.accessSync(file as fs.PathLike, mode);
    if (!has(relative)) throw notFound('access', file);
    if (mode !== undefined && (mode & fs.constants.W_OK) !== 0) {
      const error: NodeJS.ErrnoException = new Error(
        `EROFS: the bundle is read-only, access '${String(file)}'`,
      );
      error.code = 'EROFS';
      throw error;
    }
  };
  patched.statSync = function statSync(file: unknown, options?: unknown): fs.Stats | undefined {
    const relative = inside(file);
    if (relative === undefined)
      return (real.statSync as (f: unknown, o?: unknown) => fs.Stats | undefined)(file, options);
    try {
      return fakeStats(relative, file);
    } catch (error) {
      if (
        typeof options === 'object' &&
        options !== null &&
        (options as { throwIfNoEntry?: boolean }).throwIfNoEntry === false
      )
        return undefined;
      throw error;
    }
  };
}

const loadedParts = new Map<string, unknown>();

/**
 * A part of the bundle kept as text until its first require (packages that start-up does not
 * use): compiled and evaluated once, as a CommonJS module whose own requires are Node's built-ins.
 */
export function loadBundlePart(relative: string): unknown {
  if (overlay === undefined) throw new Error('embedded files are not installed');
  if (loadedParts.has(relative)) return loadedParts.get(relative);
  const source = contents(relative);
  if (source === undefined) throw notFound('open', path.join(overlay.root, relative));
  const root = overlay.root;
  const filename = path.join(root, relative);
  const evaluate = vm.compileFunction(
    source.toString('utf8'),
    ['exports', 'require', 'module', '__filename', '__dirname', '__cdhBundlePath'],
    { filename },
  );
  const partModule = { exports: {} as unknown };
  evaluate(partModule.exports, require, partModule, filename, path.dirname(filename), (p: string) =>
    path.join(root, p),
  );
  loadedParts.set(relative, partModule.exports);
  // The text is not needed once compiled.
  overlay.files.delete(relative);
  return partModule.exports;
}
