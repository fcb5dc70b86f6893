/**
 * How a bundle starts its program (scripts/bundle-program.ts lays the file out):
 *
 *   #!/usr/bin/env node
 *   <the functions below, then runBundledProgram(arguments.callee.toString(), __filename, …)>
 *   /*@cdh-program
 *   (function (exports, require, module, __filename, __dirname) {<esbuild's output>
 *   })
 *   @cdh-program*\/
 *
 * with every "*\/" of the program escaped. V8 skips a comment without parsing it, so all that
 * Node compiles is the loader; the program is then compiled by `vm.Script`, with V8's code
 * cache when a valid `<bundle>.codecache` lies beside the file (deploy/prime-code-cache.sh
 * makes it by running the program once with the guest's own node), and called with the
 * module's own exports, require and module, so it behaves as if Node had loaded it. Why: on
 * Node 20 (no module.enableCompileCache) compiling the 2.6 MB daemon bundle and the functions
 * start-up runs is a third of the CPU to SERVING; from the cache it takes a few ms.
 *
 * The functions are copied into each bundle as text (Function.prototype.toString), so they use
 * only their parameters and globals: no imports, no helpers outside them.
 *
 * A code cache holds bytecode and the code's own constants, never a value computed at run
 * time. It is trusted like the bundle beside it: read only if it is a regular file (not a
 * link) owned by the bundle's owner, writable by nobody else, and written for this very build
 * (its header names the build). V8 itself refuses a cache made by another V8 or other flags.
 */
import type * as Fs from 'node:fs';
import type * as Path from 'node:path';
import type * as Vm from 'node:vm';

/** What the build tells the loader about the file it is in. */
export interface ProgramLayout {
  /** The text just before the program (a comment's opening) and just after it. */
  readonly begin: string;
  readonly end: string;
  /** What "*\/" became inside the comment. */
  readonly escapedClose: string;
  /** The 0-based line of the bundle file where the program starts (stack traces keep file lines). */
  readonly lineOffset: number;
  /** The first line of a cache made for this build ("CDHCC1 <hash of the program>\n"): another build's is not used. */
  readonly cacheHeader: string;
  /** `Symbol.for` key under which the outcome is left for the program (code-cache-state.ts). */
  readonly stateKey: string;
}

/**
 * The cache's V8 data, or why there is none: 'absent' (no file), 'refused' (a link, not a
 * regular file, not owned by the bundle's owner, writable by others, or too large), 'stale'
 * (made for another build).
 */
export function readProgramCodeCache(
  fs: typeof Fs,
  cacheFile: string,
  bundleFile: string,
  header: string,
): { data: Buffer } | { missing: 'absent' | 'refused' | 'stale' } {
  const limit = 64 * 1024 * 1024; // the daemon's cache is about 1.5 MB
  let fd: number;
  try {
    fd = fs.openSync(cacheFile, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (error) {
    return { missing: (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'absent' : 'refused' };
  }
  try {
    const cache = fs.fstatSync(fd);
    const bundle = fs.statSync(bundleFile);
    if (!cache.isFile() || cache.uid !== bundle.uid || (cache.mode & 0o022) !== 0 || cache.size > limit)
      return { missing: 'refused' };
    const bytes = fs.readFileSync(fd);
    if (bytes.length <= header.length || bytes.toString('latin1', 0, header.length) !== header)
      return { missing: 'stale' };
    return { data: bytes.subarray(header.length) };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The program's source as V8 will compile it, cut from the bundle file's text as Node already
 * holds it (the module wrapper's own source: no second read of the file, no native buffers,
 * whose freed memory glibc keeps; intermediate strings are V8 heap, freed by the next full GC).
 */
export function bundledProgramSource(fileText: string, bundleFile: string, layout: ProgramLayout): string {
  const from = fileText.indexOf(layout.begin) + layout.begin.length;
  const to = fileText.lastIndexOf(layout.end);
  if (from < layout.begin.length || to < from)
    throw new Error(`${bundleFile}: the program is missing from this bundle file`);
  return fileText.slice(from, to).split(layout.escapedClose).join('*/');
}

/** Compiles the program, from the code cache when there is a valid one; leaves the outcome for it. */
export function compileBundledProgram(
  vm: typeof Vm,
  fs: typeof Fs,
  fileText: string,
  bundleFile: string,
  cacheFile: string,
  layout: ProgramLayout,
): Vm.Script {
  const cache = readProgramCodeCache(fs, cacheFile, bundleFile, layout.cacheHeader);
  const script = new vm.Script(bundledProgramSource(fileText, bundleFile, layout), {
    filename: bundleFile,
    lineOffset: layout.lineOffset,
    ...('data' in cache ? { cachedData: cache.data } : {}),
    importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
  const state = 'data' in cache ? (script.cachedDataRejected === true ? 'rejected' : 'used') : cache.missing;
  (globalThis as Record<symbol, unknown>)[Symbol.for(layout.stateKey)] = state;
  return script;
}

/** Compiles and runs the program kept in `bundleFile`'s comment as this module's body. */
export function runBundledProgram(
  fileText: string,
  bundleFile: string,
  layout: ProgramLayout,
  nodeRequire: NodeJS.Require,
  module: NodeJS.Module,
): void {
  const fs = nodeRequire('node:fs') as typeof Fs;
  const cacheFile = `${bundleFile}.codecache`;
  const vm = nodeRequire('node:vm') as typeof Vm;
  const script = compileBundledProgram(vm, fs, fileText, bundleFile, cacheFile, layout);
  if (process.env['CDH_CODE_CACHE_WRITE'] === '1') {
    // At exit, so that the functions the run compiled (start-up's) are in the cache too.
    process.once('exit', () => {
      const temporary = `${cacheFile}.${process.pid}.tmp`;
      const header = Buffer.from(layout.cacheHeader, 'latin1');
      fs.writeFileSync(temporary, Buffer.concat([header, script.createCachedData()]), {
        mode: 0o644,
        flag: 'wx',
      });
      fs.renameSync(temporary, cacheFile);
    });
  }
  const body = script.runInThisContext() as (...args: unknown[]) => void; // the program's wrapper
  const dirname = (nodeRequire('node:path') as typeof Path).dirname(bundleFile);
  body.call(module.exports, module.exports, nodeRequire, module, bundleFile, dirname);
}
