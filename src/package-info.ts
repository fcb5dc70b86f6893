import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The package root (holds package.json and protos/), found from here in src/ and in dist/src/. */
function findPackageRoot(): string {
  let dir = __dirname;
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'protos'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find the package root above ${__dirname}`);
    dir = parent;
  }
}

export const PACKAGE_ROOT = findPackageRoot();
export const PROTOS_DIR = join(PACKAGE_ROOT, 'protos');
export const API_PROTO = join(PROTOS_DIR, 'api.proto');
export const KEYPROVIDER_PROTO = join(PROTOS_DIR, 'keyprovider.proto');
/** The served protos compiled into one FileDescriptorSet at build time (scripts/compile-protos.ts). */
export const DESCRIPTOR_SET = join(PACKAGE_ROOT, 'dist/src/protos.binpb');

interface Manifest {
  name?: unknown;
  version?: unknown;
}

let manifest: Manifest | undefined;
function readManifest(): Manifest {
  manifest ??= JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as Manifest;
  return manifest;
}

export function packageVersion(): string {
  const { version } = readManifest();
  return typeof version === 'string' ? version : '0.0.0';
}

/** `<package name>/<version>`, e.g. for user-agent headers. */
export function packageUserAgent(): string {
  const { name } = readManifest();
  return `${typeof name === 'string' ? name : 'confidential-data-hub'}/${packageVersion()}`;
}
