import { CdhError } from '../errors';

/** A docker-style image reference after the defaults (`docker.io`, `library/`, `latest`) are applied. */
export interface ImageReference {
  /** Registry name as written (`docker.io`, `127.0.0.1:5000`, `quay.io`). */
  readonly registry: string;
  readonly repository: string;
  readonly tag?: string;
  readonly digest?: string;
}

const DIGEST_HEX_LENGTH: Readonly<Record<string, number>> = { sha256: 64, sha384: 96, sha512: 128 };
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DOMAIN =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$/;
const MAX_REFERENCE_LENGTH = 4096;

/** Parses `[host[:port]/]path[:tag][@algo:hex]` the way docker/distribution does. */
export function parseReference(input: string): ImageReference {
  const bad = (why: string): never => {
    throw new CdhError('IMAGE_REFERENCE_INVALID', `image reference ${quote(input)}: ${why}`);
  };
  if (input.length === 0) bad('empty');
  if (input.length > MAX_REFERENCE_LENGTH) bad('too long');
  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    checkDigest(digest, bad);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) bad(`bad tag ${quote(tag)}`);
  }
  let registry = 'docker.io';
  let path = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost') {
      registry = first;
      path = rest.slice(slash + 1);
      if (!DOMAIN.test(registry)) bad(`bad registry ${quote(registry)}`);
    }
  }
  if (registry === 'index.docker.io') registry = 'docker.io';
  if (path.length === 0) bad('no repository');
  for (const component of path.split('/')) {
    if (!COMPONENT.test(component)) bad(`bad repository component ${quote(component)}`);
  }
  if (registry === 'docker.io' && !path.includes('/')) path = `library/${path}`;
  if (path.length > 255) bad('repository longer than 255 characters');
  if (tag === undefined && digest === undefined) tag = 'latest';
  return { registry, repository: path, ...(tag === undefined ? {} : { tag }), ...(digest ? { digest } : {}) };
}

export function checkDigest(digest: string, bad: (why: string) => never): void {
  const colon = digest.indexOf(':');
  const algorithm = digest.slice(0, colon);
  const hex = digest.slice(colon + 1);
  const length = DIGEST_HEX_LENGTH[algorithm];
  if (colon < 0 || length === undefined) bad(`unsupported digest ${quote(digest)}`);
  if (hex.length !== length || !/^[0-9a-f]+$/.test(hex)) bad(`malformed digest ${quote(digest)}`);
}

/** `registry/repository[:tag][@digest]`: what the policy and the signatures see. */
export function referenceString(ref: ImageReference): string {
  return `${ref.registry}/${ref.repository}${ref.tag === undefined ? '' : `:${ref.tag}`}${ref.digest === undefined ? '' : `@${ref.digest}`}`;
}

/** `registry/repository` */
export function repositoryName(ref: ImageReference): string {
  return `${ref.registry}/${ref.repository}`;
}

/** The host (and port) to dial: Docker Hub's API lives at index.docker.io. */
export function registryHost(ref: ImageReference): string {
  return ref.registry === 'docker.io' ? 'index.docker.io' : ref.registry;
}

/** The tag or digest the manifest is fetched by (the digest wins when both are present). */
export function manifestSelector(ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? 'latest';
}

/** A value from outside quoted for a message: bounded, control characters escaped. */
export function quote(value: string, max = 200): string {
  const cut = value.length > max ? `${value.slice(0, max)}…` : value;
  return JSON.stringify(cut);
}

/** `sha256:` and the first 12 hex digits. */
export function shortDigest(digest: string): string {
  const colon = digest.indexOf(':');
  return colon < 0 ? digest.slice(0, 20) : digest.slice(0, colon + 13);
}
