import { constants as fsConstants, promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { KeyObject } from 'node:crypto';
import { CdhError, isCdhError } from '../errors';
import type { CallContext, ResourceReader } from '../providers/types';
import { parseJwkBytes, publicKeyFromJwk } from './jwk';
import { quoteUntrusted } from '../lib/untrusted';
import { statFingerprint } from '../lib/file-fingerprint';
import { LRUCache } from 'lru-cache';

/** Where a JWS `kid` is looked up: a key file under signing_key_dir or a `kbs://` resource. */
export interface VerificationKeyResolver {
  resolve(kid: string, ctx: CallContext): Promise<KeyObject>;
}

export const KBS_KID_PREFIX = 'kbs://';

/** A JWK is a few hundred bytes; refuse to read anything much larger. */
const MAX_KEY_FILE_BYTES = 64 * 1024;
/** Files already identify their version by mtime; KBS resources are refetched after this. */
const KBS_KEY_TTL_MS = 30_000;
/** Bound on cached keys (kids come from untrusted headers, though only existing keys are cached). */
const MAX_CACHED_KEYS = 256;

/** The kid as it may appear in a message. */
export function describeKid(kid: string): string {
  return quoteUntrusted(kid);
}

function unavailable(kid: string, why: string, cause?: unknown): CdhError {
  return new CdhError('SIGNING_KEY_UNAVAILABLE', `JWS kid ${describeKid(kid)}: ${why}`, { cause });
}

/** Refuses kids that are not a plain relative name under the key dir, before touching the disk. */
function checkKidIsRelativeName(kid: string): void {
  if (kid === '') throw unavailable(kid, 'is empty');
  if (kid.includes('\0')) throw unavailable(kid, 'contains a NUL character');
  if (kid.includes('\\')) throw unavailable(kid, 'contains a backslash');
  if (path.isAbsolute(kid))
    throw unavailable(kid, 'is an absolute path; it must name a file in signing_key_dir');
  if (kid.split('/').includes('..'))
    throw unavailable(kid, 'has a ".." segment; it must stay in signing_key_dir');
}

function isInside(directory: string, candidate: string): boolean {
  const prefix = directory.endsWith(path.sep) ? directory : directory + path.sep;
  return candidate.startsWith(prefix);
}

interface CachedFileKey {
  /** The file's version the key was read from. */
  readonly fingerprint: string;
  readonly key: KeyObject;
}

/** How long a key file, once checked, is used without checking it again. */
export const KEY_FILE_RECHECK_MS = 1000;

export interface SigningKeyResolverOptions {
  /** Clock for the KBS key cache (tests). */
  readonly now?: () => number;
}

/**
 * Resolves a JWS `kid` to a public key. A `kbs://` kid is a KBS resource read through the
 * ResourceReader; anything else names a file under signing_key_dir, which must not escape it:
 * no absolute path, no `..`, and no symlink whose target lies outside (checked on real paths,
 * before the file is opened). Keys are cached: files by real path + mtime + size, KBS
 * resources for a short while.
 */
export class SigningKeyResolver implements VerificationKeyResolver {
  private readonly fileKeys = new LRUCache<string, CachedFileKey>({ max: MAX_CACHED_KEYS });
  /** Keys by kid whose file was checked less than KEY_FILE_RECHECK_MS ago. */
  private readonly recentlyChecked: LRUCache<string, KeyObject>;
  private readonly resourceKeys: LRUCache<string, KeyObject>;

  constructor(
    private readonly signingKeyDir: string,
    private readonly resources?: ResourceReader,
    options: SigningKeyResolverOptions = {},
  ) {
    const perf = { now: options.now ?? Date.now };
    this.recentlyChecked = new LRUCache({
      max: MAX_CACHED_KEYS,
      ttl: KEY_FILE_RECHECK_MS,
      perf,
      ttlResolution: 0,
    });
    this.resourceKeys = new LRUCache({ max: MAX_CACHED_KEYS, ttl: KBS_KEY_TTL_MS, perf, ttlResolution: 0 });
  }

  resolve(kid: string, ctx: CallContext): Promise<KeyObject> {
    return kid.startsWith(KBS_KID_PREFIX) ? this.fromResource(kid, ctx) : this.fromFile(kid);
  }

  private async fromResource(kid: string, ctx: CallContext): Promise<KeyObject> {
    if (this.resources === undefined) {
      throw new CdhError('PROVIDER_NOT_CONFIGURED', 'kbs provider not configured');
    }
    const cached = this.resourceKeys.get(kid);
    if (cached !== undefined) return cached;
    const bytes = await readKeyResource(this.resources, kid, ctx);
    const source = `JWS kid ${describeKid(kid)}`;
    const key = publicKeyFromJwk(parseJwkBytes(bytes, source), source);
    this.resourceKeys.set(kid, key);
    return key;
  }

  private async fromFile(kid: string): Promise<KeyObject> {
    checkKidIsRelativeName(kid);
    // Two realpaths and a stat per unseal are costly (docs/performance.md): a file checked
    // moments ago is trusted for a moment more (a replaced or removed key shows within 1 s).
    const recent = this.recentlyChecked.get(kid);
    if (recent !== undefined) return recent;
    const key = await this.loadFileKey(kid);
    this.recentlyChecked.set(kid, key);
    return key;
  }

  private async loadFileKey(kid: string): Promise<KeyObject> {
    const file = await this.realKeyFile(kid);
    const stats = await fs.stat(file, { bigint: true }).catch((cause: unknown) => {
      throw unavailable(kid, 'the key file is not readable', cause);
    });
    if (!stats.isFile()) throw unavailable(kid, 'is not a regular file in signing_key_dir');
    if (stats.size > BigInt(MAX_KEY_FILE_BYTES))
      throw unavailable(kid, 'the key file is too large to be a JWK');
    const cached = this.fileKeys.get(file);
    const fingerprint = statFingerprint(stats);
    if (cached !== undefined && cached.fingerprint === fingerprint) return cached.key;
    const bytes = await readRegularFile(file).catch((cause: unknown) => {
      throw unavailable(kid, 'the key file is not readable', cause);
    });
    const source = `JWS kid ${describeKid(kid)}`;
    const key = publicKeyFromJwk(parseJwkBytes(bytes, source), source);
    this.fileKeys.set(file, { fingerprint, key });
    return key;
  }

  /** The real path of the kid's file, refused unless it lies inside the real signing_key_dir. */
  private async realKeyFile(kid: string): Promise<string> {
    const directory = await fs.realpath(this.signingKeyDir).catch((cause: unknown) => {
      throw unavailable(kid, 'signing_key_dir does not exist or is not readable', cause);
    });
    const file = await fs.realpath(path.join(directory, kid)).catch((cause: unknown) => {
      throw unavailable(kid, 'no such key file in signing_key_dir', cause);
    });
    if (!isInside(directory, file)) throw unavailable(kid, 'resolves to a file outside signing_key_dir');
    return file;
  }
}

async function readKeyResource(resources: ResourceReader, kid: string, ctx: CallContext): Promise<Buffer> {
  try {
    return await resources.getResource(kid, ctx);
  } catch (error) {
    // A missing or malformed resource is an unknown kid; outages and deadlines pass through.
    if (isCdhError(error) && (error.code === 'RESOURCE_NOT_FOUND' || error.code === 'RESOURCE_URI_INVALID')) {
      throw unavailable(kid, `no signing key resource (${error.message})`, error);
    }
    throw error;
  }
}

/** Reads a file whose real path is known, refusing a symlink swapped in since (O_NOFOLLOW). */
async function readRegularFile(file: string): Promise<Buffer> {
  const handle = await fs.open(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  try {
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}
