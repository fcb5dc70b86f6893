/**
 * `npm run bundle`: one self-contained file per program in package.json "bin", written to
 * dist/bundle/<bin name>.js, that runs with `node` alone (no node_modules, no protos/ beside it).
 *
 * Bundled from the tsc output (dist/src/bin/<bin name>.js; the package's bins run the bundles,
 * cdh-emulator excepted), as CommonJS: each module
 * keeps its own wrapper, so a module required lazily (the Alibaba SDK, reflection, the CLI
 * commands) is still evaluated only at its first require.
 *
 * Files read at run time are embedded (src/bundle/embedded-files.ts serves them):
 *   - every file under protos/ and every generated descriptor set (dist/**\/*.binpb|.desc|.pb);
 *   - package.json (name and version only);
 *   - the .proto files of each bundled package whose code locates files by __dirname
 *     (grpc-health-check, @grpc/reflection).
 * Every bundled module's __dirname/__filename points to its own path under the bundle file.
 *
 * Usage: node dist/scripts/bundle.js [--metafile]  (the last step of `npm run build`, after tsc)
 */
import * as esbuild from 'esbuild';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { brotliCompressSync, constants as zlibConstants } from 'node:zlib';
import type { EmbeddedFile } from '../src/bundle/embedded-files';
import { healthDefinitionPlugin } from './bundle-health';
import { PACKAGE_ROOT } from '../src/package-info';
import { layOutBundle } from './bundle-program';

export const BUNDLE_DIR = join(PACKAGE_ROOT, 'dist', 'bundle');
const EMBEDDED_MODULE = 'cdh-bundle:embedded-files';
const DESCRIPTOR_EXTENSIONS = ['.binpb', '.desc', '.pb', '.protoset'];
const USES_OWN_PATH = /\b__(dirname|filename)\b/;
const PARTS_DIR = 'bundle-parts';

/**
 * Packages only ever required after start-up (client_key's PKCS#12, the OpenAPI SDK, image pull), bundled
 * apart and embedded as text: compiled at their first require, so start-up neither parses nor
 * compiles them (~1 MB of the daemon's ~3 MB). Packages that must share one instance go in one
 * part (the SDK's httpx is the one kms-sdk.ts wraps).
 */
const LAZY_PARTS: Readonly<Record<string, readonly string[]>> = {
  'node-forge': ['node-forge'],
  'alicloud-sdk': ['@alicloud/kms20160120', '@alicloud/rpc-client', '@alicloud/tea-util', 'httpx'],
  // Image pull (loaded at the first PullImage).
  'image-pull': ['undici', 'openpgp', 'tar', 'fzstd'],
};
const PART_OF = new Map(
  Object.entries(LAZY_PARTS).flatMap(([part, specifiers]) => specifiers.map((spec) => [spec, part] as const)),
);

/** zod's messages in every language (a third of the daemon's zod) for its English ones only. */
const ZOD_LOCALES_ENGLISH_ONLY = `module.exports = { en: require('./en.cjs').default };`;

interface Manifest {
  readonly name: string;
  readonly version: string;
  readonly bin: Readonly<Record<string, string>>;
}

function readManifest(): Manifest {
  const manifest = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as Partial<Manifest>;
  if (typeof manifest.bin !== 'object' || manifest.bin === null) throw new Error('package.json has no "bin"');
  return { name: String(manifest.name), version: String(manifest.version), bin: manifest.bin };
}

/** The tsc output a bin is bundled from (its package.json entry may be the bundle itself). */
function entryOf(name: string): string {
  const entry = `dist/src/bin/${name}.js`;
  if (!existsSync(join(PACKAGE_ROOT, entry)))
    throw new Error(`bin ${name}: no ${entry} to bundle (tsc first)`);
  return entry;
}

function walk(dir: string, keep: (file: string) => boolean, skipDirs: readonly string[] = []): string[] {
  const found: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return found;
  }
  for (const entry of entries.sort()) {
    const full = join(dir, entry);
    if (statSync(full).isDirectory()) {
      if (!skipDirs.includes(entry)) found.push(...walk(full, keep, skipDirs));
    } else if (keep(full)) found.push(full);
  }
  return found;
}

/** The package directory (…/node_modules/<name> or …/node_modules/@scope/<name>) holding `file`. */
function packageDirOf(file: string): string | undefined {
  const parts = file.split(sep);
  const at = parts.lastIndexOf('node_modules');
  if (at < 0 || at + 1 >= parts.length) return undefined;
  const depth = (parts[at + 1] as string).startsWith('@') ? 3 : 2;
  return parts.slice(0, at + depth).join(sep);
}

function toPosix(file: string): string {
  return file.split(sep).join('/');
}

/** Text as it is (cheap to scan at start-up, no decoding), anything else as base64. */
function embed(bytes: Buffer): EmbeddedFile {
  const text = bytes.toString('utf8');
  return Buffer.from(text, 'utf8').equals(bytes) ? { utf8: text } : bytes.toString('base64');
}

/** A lazy part, brotli-compressed: the bundle's source (kept by V8) holds it at about a fifth. */
function compressed(bytes: Buffer): EmbeddedFile {
  const packed = brotliCompressSync(bytes, {
    params: { [zlibConstants.BROTLI_PARAM_QUALITY]: 9, [zlibConstants.BROTLI_PARAM_SIZE_HINT]: bytes.length },
  });
  return { brotli: packed.toString('base64') };
}

/** The files one bundle embeds, keyed by their path relative to the package root. */
function embeddedFiles(
  manifest: Manifest,
  modulesUsingOwnPath: ReadonlySet<string>,
): Record<string, EmbeddedFile> {
  const files: Record<string, EmbeddedFile> = {};
  const add = (file: string, bytes: Buffer = readFileSync(file)): void => {
    files[toPosix(relative(PACKAGE_ROOT, file))] = embed(bytes);
  };
  add(
    join(PACKAGE_ROOT, 'package.json'),
    Buffer.from(JSON.stringify({ name: manifest.name, version: manifest.version })),
  );
  for (const file of walk(join(PACKAGE_ROOT, 'protos'), () => true)) add(file);
  const isDescriptor = (file: string): boolean => DESCRIPTOR_EXTENSIONS.some((ext) => file.endsWith(ext));
  for (const file of walk(join(PACKAGE_ROOT, 'dist'), isDescriptor, ['bundle'])) add(file);
  const packages = new Set<string>();
  for (const file of modulesUsingOwnPath) {
    const dir = packageDirOf(file);
    if (dir !== undefined) packages.add(dir);
  }
  for (const dir of [...packages].sort()) {
    for (const file of walk(dir, (f) => f.endsWith('.proto'), ['node_modules'])) add(file);
  }
  return files;
}

/** Gives each module that uses __dirname/__filename its own path under the bundle file. */
function ownPathPlugin(seen: Set<string>): esbuild.Plugin {
  return {
    name: 'own-path',
    setup(build) {
      build.onLoad({ filter: /\.(c|m)?js$/ }, (args) => {
        const source = readFileSync(args.path, 'utf8');
        if (!USES_OWN_PATH.test(source)) return undefined;
        seen.add(args.path);
        const file = toPosix(relative(PACKAGE_ROOT, args.path));
        const prelude =
          `var __dirname = __cdhBundlePath(${JSON.stringify(toPosix(dirname(file)))}), ` +
          `__filename = __cdhBundlePath(${JSON.stringify(file)});`;
        // One line, so that the module's own line numbers stay as they were.
        return { contents: `${prelude}${source}`, loader: 'js', resolveDir: dirname(args.path) };
      });
    },
  };
}

/** Bare requires of a lazy part's packages become a require of that part. */
function lazyPartsPlugin(): esbuild.Plugin {
  const specifiers = [...PART_OF.keys()].map((spec) => spec.replace(/[/.]/g, '\\$&'));
  return {
    name: 'lazy-parts',
    setup(build) {
      build.onResolve({ filter: new RegExp(`^(${specifiers.join('|')})$`) }, (args) => ({
        path: args.path,
        namespace: 'cdh-part',
      }));
      build.onLoad({ filter: /.*/, namespace: 'cdh-part' }, (args) => ({
        contents:
          `module.exports = require(${JSON.stringify(RUNTIME)}).loadBundlePart(` +
          `${JSON.stringify(`${PARTS_DIR}/${PART_OF.get(args.path) as string}.js`)})[${JSON.stringify(args.path)}];`,
        resolveDir: PACKAGE_ROOT,
        loader: 'js',
      }));
    },
  };
}

function zodEnglishOnlyPlugin(): esbuild.Plugin {
  return {
    name: 'zod-english-only',
    setup(build) {
      build.onLoad({ filter: /[\\/]node_modules[\\/]zod[\\/]v4[\\/]locales[\\/]index\.cjs$/ }, (args) => ({
        contents: ZOD_LOCALES_ENGLISH_ONLY,
        resolveDir: dirname(args.path),
        loader: 'js',
      }));
    },
  };
}

function embeddedFilesPlugin(files: () => Record<string, EmbeddedFile>): esbuild.Plugin {
  return {
    name: 'embedded-files',
    setup(build) {
      build.onResolve({ filter: new RegExp(`^${EMBEDDED_MODULE}$`) }, (args) => ({
        path: args.path,
        namespace: 'cdh-bundle',
      }));
      build.onLoad({ filter: /.*/, namespace: 'cdh-bundle' }, () => ({
        contents: `module.exports = {${Object.entries(files())
          .map(([name, file]) => `${JSON.stringify(name)}: () => (${JSON.stringify(file)})`)
          .join(',\n')}};`,
        loader: 'js',
      }));
    },
  };
}

/** What every module's __dirname/__filename is made of (a part gets it as a parameter). */
const BUNDLE_PATH_FUNCTION = `var __cdhBundlePath = (p) => require('node:path').join(__filename, p);`;

const RUNTIME = './dist/src/bundle/embedded-files.js';

function entrySource(binFile: string): string {
  return [
    `require('${RUNTIME}').installEmbeddedFiles(__filename, require('${EMBEDDED_MODULE}'));`,
    `require('./${toPosix(binFile)}');`,
  ].join('\n');
}

function buildOptions(name: string, binFile: string, plugins: esbuild.Plugin[]): esbuild.BuildOptions {
  return {
    stdin: { contents: entrySource(binFile), resolveDir: PACKAGE_ROOT, sourcefile: `${name}.entry.js` },
    bundle: true,
    // A node_modules that is a symlink (a worktree sharing another's) keeps its in-package paths.
    preserveSymlinks: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    outfile: join(BUNDLE_DIR, `${name}.js`),
    banner: { js: ['#!/usr/bin/env node', BUNDLE_PATH_FUNCTION].join('\n') },
    minifyWhitespace: true,
    minifySyntax: true,
    legalComments: 'eof',
    logLevel: 'warning',
    metafile: true,
    plugins,
  };
}

/** A lazy part: its packages in one CommonJS module exporting { specifier: module }. */
async function buildPart(name: string, seen: Set<string>): Promise<Buffer> {
  const specifiers = LAZY_PARTS[name] as readonly string[];
  const result = await esbuild.build({
    stdin: {
      contents: `module.exports = {${specifiers.map((spec) => `${JSON.stringify(spec)}: require(${JSON.stringify(spec)})`).join(', ')}};`,
      resolveDir: PACKAGE_ROOT,
      sourcefile: `${PARTS_DIR}/${name}.js`,
    },
    bundle: true,
    // A node_modules that is a symlink (a worktree sharing another's) keeps its in-package paths.
    preserveSymlinks: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    minifyWhitespace: true,
    minifySyntax: true,
    legalComments: 'eof',
    logLevel: 'warning',
    write: false,
    plugins: [zodEnglishOnlyPlugin(), ownPathPlugin(seen)],
  });
  return Buffer.from((result.outputFiles as esbuild.OutputFile[])[0]?.contents ?? []);
}

const SHARED_PLUGINS = (): esbuild.Plugin[] => [
  zodEnglishOnlyPlugin(),
  lazyPartsPlugin(),
  healthDefinitionPlugin(),
];

export interface BundleReport {
  readonly bin: string;
  readonly file: string;
  readonly bytes: number;
  readonly embedded: readonly string[];
}

export async function bundleAll(): Promise<BundleReport[]> {
  const manifest = readManifest();
  const reports: BundleReport[] = [];
  for (const name of Object.keys(manifest.bin)) {
    const target = entryOf(name);
    // First pass: which modules locate files by their own path (their packages' protos get embedded).
    const seen = new Set<string>();
    const probe = await esbuild.build({
      ...buildOptions(name, target, [
        ...SHARED_PLUGINS(),
        ownPathPlugin(seen),
        embeddedFilesPlugin(() => ({})),
      ]),
      write: false,
    });
    if (probe.errors.length > 0) throw new Error(`bundling ${name} failed`);
    const files = embeddedFiles(manifest, seen);
    const parts = new Set(
      Object.keys(probe.metafile?.inputs ?? {})
        .filter((input) => input.startsWith('cdh-part:'))
        .map((input) => PART_OF.get(input.slice('cdh-part:'.length)) as string),
    );
    for (const part of [...parts].sort()) {
      const partSeen = new Set<string>();
      files[`${PARTS_DIR}/${part}.js`] = compressed(await buildPart(part, partSeen));
      Object.assign(files, embeddedFiles(manifest, partSeen));
    }
    const result = await esbuild.build(
      buildOptions(name, target, [
        ...SHARED_PLUGINS(),
        ownPathPlugin(new Set()),
        embeddedFilesPlugin(() => files),
      ]),
    );
    const file = join(BUNDLE_DIR, `${name}.js`);
    writeFileSync(file, layOutBundle(readFileSync(file, 'utf8')), { mode: 0o755 });
    if (process.argv.includes('--metafile'))
      writeFileSync(join(BUNDLE_DIR, `${name}.meta.json`), JSON.stringify(result.metafile));
    reports.push({ bin: name, file, bytes: statSync(file).size, embedded: Object.keys(files) });
  }
  return reports;
}

if (require.main === module) {
  bundleAll().then(
    (reports) => {
      for (const r of reports) {
        console.log(
          `${relative(PACKAGE_ROOT, r.file)}: ${(r.bytes / 1024).toFixed(0)} KiB, ${r.embedded.length} embedded files`,
        );
      }
    },
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
