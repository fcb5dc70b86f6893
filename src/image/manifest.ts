import { createHash } from 'node:crypto';
import { CdhError } from '../errors';
import { checkDigest, quote } from './reference';

export const MEDIA = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
} as const;

export const MANIFEST_ACCEPT: readonly string[] = [
  MEDIA.dockerManifest,
  MEDIA.dockerList,
  MEDIA.ociManifest,
  MEDIA.ociIndex,
];

export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
export const MAX_CONFIG_BYTES = 8 * 1024 * 1024;

export type Compression = 'none' | 'gzip' | 'zstd';

export interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
}

export interface LayerDescriptor extends Descriptor {
  readonly compression: Compression;
  /** Set for ocicrypt media types (`…+encrypted`): the annotations decryption needs. */
  readonly encryption?: LayerEncryption;
}

/** The ocicrypt annotations of an encrypted layer, as the manifest carries them (not yet parsed). */
export interface LayerEncryption {
  /** `org.opencontainers.image.enc.keys.provider.attestation-agent`: comma-separated base64 packets. */
  readonly packets?: string;
  /** `org.opencontainers.image.enc.pubopts`: base64 of the public cipher options JSON. */
  readonly pubopts?: string;
  /** The other `…enc.keys.<scheme>` names present (keys this daemon does not use: jwe, pgp, ...). */
  readonly otherSchemes: readonly string[];
}

export const ENC_KEYS_PREFIX = 'org.opencontainers.image.enc.keys.';
export const ENC_KEYS_ATTESTATION_AGENT = `${ENC_KEYS_PREFIX}provider.attestation-agent`;
export const ENC_PUBOPTS = 'org.opencontainers.image.enc.pubopts';
const ENCRYPTED_SUFFIX = '+encrypted';

export interface ImageManifest {
  readonly kind: 'manifest';
  readonly config: Descriptor;
  readonly layers: readonly LayerDescriptor[];
}

export interface IndexEntry extends Descriptor {
  readonly platform?: { os?: string; architecture?: string; variant?: string };
}

export interface ImageIndex {
  readonly kind: 'index';
  readonly manifests: readonly IndexEntry[];
}

const LAYER_MEDIA: Readonly<Record<string, Compression>> = {
  'application/vnd.oci.image.layer.v1.tar': 'none',
  'application/vnd.oci.image.layer.nondistributable.v1.tar': 'none',
  'application/vnd.oci.image.layer.v1.tar+gzip': 'gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip': 'gzip',
  'application/vnd.docker.image.rootfs.diff.tar.gzip': 'gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd': 'zstd',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd': 'zstd',
};

/** The digest of `body` with the algorithm of `like` (sha256 unless told otherwise). */
export function digestOf(body: Uint8Array, like = 'sha256:'): string {
  const algorithm = like.slice(0, like.indexOf(':'));
  return `${algorithm}:${createHash(algorithm).update(body).digest('hex')}`;
}

export function parseManifest(body: Buffer, label: string): ImageManifest | ImageIndex {
  const bad = (why: string): never => {
    throw new CdhError('IMAGE_MANIFEST_INVALID', `${label}: manifest ${why}`);
  };
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
  } catch {
    return bad('is not JSON');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) bad('is not a JSON object');
  if (raw['schemaVersion'] !== 2)
    throw new CdhError(
      'IMAGE_UNSUPPORTED',
      `${label}: manifest schemaVersion ${quote(String(raw['schemaVersion']))} is not supported (docker schema 1 is not)`,
    );
  const mediaType = raw['mediaType'];
  if (mediaType !== undefined && !MANIFEST_ACCEPT.includes(mediaType as string))
    throw new CdhError('IMAGE_UNSUPPORTED', `${label}: manifest media type ${quote(String(mediaType))}`);
  if (Array.isArray(raw['manifests']) && raw['layers'] === undefined) {
    const manifests = (raw['manifests'] as unknown[]).map((m, i) => {
      const d = descriptor(m, `manifests[${i}]`, bad);
      const platform = (m as { platform?: unknown }).platform;
      return platform && typeof platform === 'object'
        ? { ...d, platform: platform as IndexEntry['platform'] & object }
        : d;
    });
    return { kind: 'index', manifests };
  }
  if (!Array.isArray(raw['layers'])) bad('has neither "layers" nor "manifests"');
  const config = descriptor(raw['config'], 'config', bad);
  const layers = (raw['layers'] as unknown[]).map((l, i): LayerDescriptor => {
    const d = descriptor(l, `layers[${i}]`, bad);
    const encrypted = d.mediaType.endsWith(ENCRYPTED_SUFFIX);
    const plainType = encrypted ? d.mediaType.slice(0, -ENCRYPTED_SUFFIX.length) : d.mediaType;
    const compression = LAYER_MEDIA[plainType];
    // ocicrypt defines `+encrypted` for the OCI layer types only.
    if (compression === undefined || (encrypted && !plainType.startsWith('application/vnd.oci.')))
      throw new CdhError(
        'IMAGE_UNSUPPORTED',
        `${label}: layer ${d.digest} has unsupported media type ${quote(d.mediaType)}`,
      );
    if (!encrypted) return { ...d, compression };
    return { ...d, compression, encryption: layerEncryption(l, `layers[${i}]`, bad) };
  });
  return { kind: 'manifest', config, layers };
}

function layerEncryption(value: unknown, where: string, bad: (why: string) => never): LayerEncryption {
  const annotations = (value as { annotations?: unknown }).annotations ?? {};
  if (typeof annotations !== 'object' || annotations === null || Array.isArray(annotations))
    bad(`${where}.annotations is not an object`);
  const text = (name: string): string | undefined => {
    const v = (annotations as Record<string, unknown>)[name];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') return bad(`${where}.annotations[${quote(name)}] is not a string`);
    return v;
  };
  const otherSchemes = Object.keys(annotations as object)
    .filter((k) => k.startsWith(ENC_KEYS_PREFIX) && k !== ENC_KEYS_ATTESTATION_AGENT)
    .map((k) => k.slice(ENC_KEYS_PREFIX.length));
  const packets = text(ENC_KEYS_ATTESTATION_AGENT);
  const pubopts = text(ENC_PUBOPTS);
  return {
    ...(packets === undefined ? {} : { packets }),
    ...(pubopts === undefined ? {} : { pubopts }),
    otherSchemes,
  };
}

function descriptor(value: unknown, where: string, bad: (why: string) => never): Descriptor {
  const v = value as { mediaType?: unknown; digest?: unknown; size?: unknown } | null;
  if (typeof v !== 'object' || v === null) bad(`${where} is not an object`);
  const { mediaType, digest, size } = v as { mediaType?: unknown; digest?: unknown; size?: unknown };
  if (typeof digest !== 'string') bad(`${where}.digest is missing`);
  checkDigest(digest as string, (why) => bad(`${where}: ${why}`));
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) bad(`${where}.size is not a size`);
  return {
    mediaType: typeof mediaType === 'string' ? mediaType : '',
    digest: digest as string,
    size: size as number,
  };
}

/** Go's name for this CPU, as registries label platforms. */
export function goArch(arch: string = process.arch): string {
  switch (arch) {
    case 'x64':
      return 'amd64';
    case 'ia32':
      return '386';
    case 'ppc64':
      return 'ppc64le';
    default:
      return arch;
  }
}

/** The first entry for linux on this CPU (variant and os.version are not compared, as upstream). */
export function choosePlatform(index: ImageIndex, label: string, arch = goArch()): IndexEntry {
  const found = index.manifests.find((m) => m.platform?.os === 'linux' && m.platform.architecture === arch);
  if (!found)
    throw new CdhError(
      'IMAGE_NOT_FOUND',
      `${label}: the index has no manifest for linux/${arch} (has ${
        index.manifests
          .map((m) => `${m.platform?.os ?? '?'}/${m.platform?.architecture ?? '?'}`)
          .join(', ')
          .slice(0, 200) || 'none'
      })`,
    );
  return found;
}

export interface ImageConfig {
  readonly raw: Record<string, unknown>;
  readonly os: string;
  readonly architecture: string;
  readonly diffIds: readonly string[];
  readonly entrypoint: readonly string[];
  readonly cmd: readonly string[];
  readonly env: readonly string[];
  readonly workingDir: string;
  readonly user: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly volumes: readonly string[];
}

export function parseImageConfig(body: Buffer, label: string): ImageConfig {
  const bad = (why: string): never => {
    throw new CdhError('IMAGE_MANIFEST_INVALID', `${label}: image config ${why}`);
  };
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body)) as Record<string, unknown>;
  } catch {
    return bad('is not UTF-8 JSON');
  }
  if (typeof raw !== 'object' || raw === null) bad('is not an object');
  const rootfs = raw['rootfs'] as { diff_ids?: unknown } | undefined;
  const diffIds = rootfs?.diff_ids;
  if (!Array.isArray(diffIds) || diffIds.some((d) => typeof d !== 'string')) bad('has no rootfs.diff_ids');
  for (const d of diffIds as string[]) checkDigest(d, (why) => bad(`rootfs.diff_ids: ${why}`));
  const c = (raw['config'] ?? {}) as Record<string, unknown>;
  const strings = (v: unknown, name: string): string[] => {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string'))
      bad(`config.${name} is not a list of strings`);
    return v as string[];
  };
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries((c['Labels'] ?? {}) as Record<string, unknown>))
    if (typeof v === 'string') labels[k] = v;
  return {
    raw,
    os: typeof raw['os'] === 'string' ? raw['os'] : '',
    architecture: typeof raw['architecture'] === 'string' ? raw['architecture'] : '',
    diffIds: diffIds as string[],
    entrypoint: strings(c['Entrypoint'], 'Entrypoint'),
    cmd: strings(c['Cmd'], 'Cmd'),
    env: strings(c['Env'], 'Env'),
    workingDir: typeof c['WorkingDir'] === 'string' ? c['WorkingDir'] : '',
    user: typeof c['User'] === 'string' ? c['User'] : '',
    labels,
    volumes: Object.keys((c['Volumes'] ?? {}) as Record<string, unknown>),
  };
}
