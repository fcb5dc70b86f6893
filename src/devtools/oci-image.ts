import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

/** One tar entry as a test writes it (any path, including hostile ones). */
export interface TarEntry {
  path: string;
  type?: 'file' | 'dir' | 'symlink' | 'link' | 'char' | 'fifo';
  content?: string | Buffer;
  mode?: number;
  uid?: number;
  gid?: number;
  linkname?: string;
  mtime?: number;
  /** Extended attributes, written as PAX `SCHILY.xattr.<name>` records (values are raw bytes). */
  xattrs?: Record<string, string | Buffer>;
}

const TYPE_FLAG = { file: '0', link: '1', symlink: '2', char: '3', dir: '5', fifo: '6' } as const;

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

function header(name: string, e: TarEntry, size: number, flag: string, linkname: string): Buffer {
  const h = Buffer.alloc(512, 0);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(e.mode ?? (e.type === 'dir' ? 0o755 : 0o644), 8), 100, 'ascii');
  h.write(octal(e.uid ?? 0, 8), 108, 'ascii');
  h.write(octal(e.gid ?? 0, 8), 116, 'ascii');
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(e.mtime ?? 1_700_000_000, 12), 136, 'ascii');
  h.write('        ', 148, 'ascii');
  h.write(flag, 156, 'ascii');
  h.write(linkname, 157, 100, 'utf8');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return h;
}

function pax(name: string, record: Record<string, string | Buffer>): Buffer {
  const lines: Buffer[] = [];
  for (const [k, v] of Object.entries(record)) {
    const line = Buffer.concat([Buffer.from(` ${k}=`), Buffer.from(v), Buffer.from('\n')]);
    let len = line.length + 1;
    while (`${len}`.length + line.length !== len) len = `${len}`.length + line.length;
    lines.push(Buffer.from(`${len}`), line);
  }
  const data = Buffer.concat(lines);
  return Buffer.concat([
    header(`PaxHeaders/${name}`.slice(0, 99), {} as TarEntry, data.length, 'x', ''),
    pad(data),
  ]);
}

function pad(data: Buffer): Buffer {
  const rest = data.length % 512;
  return rest === 0 ? data : Buffer.concat([data, Buffer.alloc(512 - rest)]);
}

/** A ustar archive (PAX records for names over 100 bytes), written byte by byte. */
export function makeTar(entries: readonly TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const type = e.type ?? 'file';
    const data = type === 'file' ? Buffer.from(e.content ?? '') : Buffer.alloc(0);
    const long: Record<string, string | Buffer> = {};
    if (Buffer.byteLength(e.path) > 99) long['path'] = e.path;
    if (e.linkname !== undefined && Buffer.byteLength(e.linkname) > 99) long['linkpath'] = e.linkname;
    for (const [k, v] of Object.entries(e.xattrs ?? {})) long[`SCHILY.xattr.${k}`] = v;
    if (Object.keys(long).length > 0) parts.push(pax(e.path, long));
    parts.push(header(e.path, e, data.length, TYPE_FLAG[type], e.linkname ?? ''), pad(data));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export type LayerCompression = 'gzip' | 'zstd' | 'none';

export interface BuiltLayer {
  readonly blob: Buffer;
  readonly mediaType: string;
  readonly digest: string;
  readonly diffId: string;
  /** Bytes of the uncompressed tar. */
  readonly tarSize: number;
}

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function buildLayer(tar: Buffer, compression: LayerCompression = 'gzip'): BuiltLayer {
  const blob =
    compression === 'gzip'
      ? gzipSync(tar)
      : compression === 'zstd'
        ? execFileSync('zstd', ['-q', '-c', '-3'], { input: tar, maxBuffer: 1 << 30 })
        : tar;
  const mediaType = `application/vnd.oci.image.layer.v1.tar${compression === 'none' ? '' : `+${compression}`}`;
  return { blob, mediaType, digest: sha256(blob), diffId: sha256(tar), tarSize: tar.length };
}

export interface ImageSpec {
  layers: readonly BuiltLayer[];
  config?: Record<string, unknown>;
  architecture?: string;
}

export interface BuiltManifest {
  readonly manifest: Buffer;
  readonly digest: string;
  readonly config: Buffer;
}

/** Writes blobs into an OCI layout dir and returns the image manifest (not yet referenced). */
export function writeImage(layout: string, spec: ImageSpec): BuiltManifest {
  ensureLayout(layout);
  const config = Buffer.from(
    JSON.stringify({
      architecture: spec.architecture ?? goArch(),
      os: 'linux',
      config: spec.config ?? { Env: ['PATH=/usr/bin:/bin'], Cmd: ['/bin/sh'] },
      rootfs: { type: 'layers', diff_ids: spec.layers.map((l) => l.diffId) },
    }),
  );
  writeBlob(layout, config);
  for (const l of spec.layers) writeBlob(layout, l.blob);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: sha256(config),
        size: config.length,
      },
      layers: spec.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.blob.length })),
    }),
  );
  writeBlob(layout, manifest);
  return { manifest, digest: sha256(manifest), config };
}

/** An OCI index over manifests, with their platforms. */
export function writeIndex(
  layout: string,
  entries: ReadonlyArray<{ manifest: BuiltManifest; architecture: string }>,
): { index: Buffer; digest: string } {
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: entries.map((e) => ({
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: e.manifest.digest,
        size: e.manifest.manifest.length,
        platform: { os: 'linux', architecture: e.architecture },
      })),
    }),
  );
  writeBlob(layout, index);
  return { index, digest: sha256(index) };
}

/** Names `digest` (a manifest or index) as `tag` in the layout's index.json. */
export function tagInLayout(
  layout: string,
  tag: string,
  target: { digest: string; size: number; mediaType: string },
): void {
  const path = join(layout, 'index.json');
  let index: { schemaVersion: number; manifests: Array<Record<string, unknown>> };
  try {
    index = JSON.parse(readFileSync(path, 'utf8')) as typeof index;
  } catch {
    index = { schemaVersion: 2, manifests: [] };
  }
  index.manifests = index.manifests.filter(
    (m) =>
      (m['annotations'] as Record<string, string> | undefined)?.['org.opencontainers.image.ref.name'] !== tag,
  );
  index.manifests.push({ ...target, annotations: { 'org.opencontainers.image.ref.name': tag } });
  writeFileSync(path, JSON.stringify(index));
}

/** Names an image manifest written by writeImage as `tag` in the layout. */
export function tagImage(layout: string, tag: string, image: BuiltManifest): void {
  tagInLayout(layout, tag, {
    digest: image.digest,
    size: image.manifest.length,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
  });
}

function ensureLayout(layout: string): void {
  mkdirSync(join(layout, 'blobs', 'sha256'), { recursive: true });
  writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
}

function writeBlob(layout: string, data: Buffer): void {
  writeFileSync(join(layout, 'blobs', 'sha256', sha256(data).slice('sha256:'.length)), data);
}

export function goArch(): string {
  return process.arch === 'x64' ? 'amd64' : process.arch;
}
