import { promises as fs } from 'node:fs';
import type { Logger } from 'pino';
import type { CdhConfig } from '../config/types';
import { CdhError } from '../errors';
import type { CallContext } from '../providers/types';
import type { Kbc } from './types';
import { formatResourceUri, parseResourceUri, resourceKey } from './uri';

/** Where upstream's offline_fs KBC reads keys and resources (both: JSON `"<repo>/<type>/<tag>"` → base64). */
export const OFFLINE_FS_KEYS_FILE = '/etc/aa-offline_fs_kbc-keys.json';
export const OFFLINE_FS_RESOURCES_FILE = '/etc/aa-offline_fs_kbc-resources.json';
/** Upstream's variable: more resource files, comma-separated. */
export const OFFLINE_FS_EXTRA_FILES_ENV = 'OFFLINE_FS_KBC_EXTRA_FILE_PATH';

/**
 * The files of the offline_fs KBC in precedence order (a resource defined twice comes from
 * the later file): the two /etc files, `[kbc.offline_fs] resource_files`, then the env list.
 * A path listed twice keeps its first place.
 */
export function offlineFsFilesFromConfig(
  config: Pick<CdhConfig, 'kbc'>,
  env: NodeJS.ProcessEnv = process.env,
): string[] {
  const fromEnv = (env[OFFLINE_FS_EXTRA_FILES_ENV] ?? '')
    .split(',')
    .map((file) => file.trim())
    .filter((file) => file !== '');
  const all = [
    OFFLINE_FS_KEYS_FILE,
    OFFLINE_FS_RESOURCES_FILE,
    ...config.kbc.offlineFs.resourceFiles,
    ...fromEnv,
  ];
  return [...new Set(all)];
}

interface FileState {
  /** Identity of the version last read (device, inode, size, times); null while the file is absent. */
  readonly signature: string | null;
  /** The content of the last well-formed version. */
  readonly entries: ReadonlyMap<string, Buffer>;
}

const NO_ENTRIES: ReadonlyMap<string, Buffer> = new Map();

type Mode = 'startup' | 'refresh';

/**
 * Resources of the offline_fs KBC. `load()` reads every file and refuses a malformed one;
 * afterwards each read re-stats the files (a few cheap syscalls) and re-reads the ones that
 * changed, so edits are served without a restart. A file that turns malformed later keeps
 * serving its last good content, with a warning.
 */
export class OfflineFsResourceStore implements Kbc {
  readonly name = 'offline_fs_kbc';
  readonly files: readonly string[];
  private readonly states = new Map<string, FileState>();
  private merged = new Map<string, Buffer>();
  private refreshing: Promise<void> | undefined;

  constructor(
    files: readonly string[],
    private readonly logger: Logger,
  ) {
    this.files = [...new Set(files)];
  }

  /** Reads all files; a malformed or unreadable one throws KBC_RESOURCES_INVALID naming it. */
  async load(): Promise<void> {
    let changed = false;
    for (const file of this.files) changed = (await this.check(file, 'startup')) || changed;
    if (changed) this.rebuild();
    const present = this.files.filter((file) => this.states.get(file)?.signature != null);
    this.logger.info({ files: present, resources: this.merged.size }, 'offline_fs KBC resource files loaded');
  }

  /** Number of resources currently served. */
  get size(): number {
    return this.merged.size;
  }

  async getResource(uri: string, ctx: CallContext): Promise<Buffer> {
    ctx.signal.throwIfAborted();
    const parsed = parseResourceUri(uri);
    if (parsed.plugin !== 'resource') {
      throw new CdhError(
        'RESOURCE_NOT_FOUND',
        `resource ${formatResourceUri(parsed)} not found: the offline_fs KBC serves only the resource plugin`,
      );
    }
    // As upstream's offline_fs KBC, a query does not select anything here.
    await this.refresh();
    const value = this.merged.get(resourceKey(parsed));
    if (value === undefined) {
      throw new CdhError(
        'RESOURCE_NOT_FOUND',
        `resource ${formatResourceUri(parsed)} not found: no "${resourceKey(parsed)}" in the offline_fs KBC files`,
      );
    }
    // A copy: the caller may wipe it.
    return Buffer.from(value);
  }

  private refresh(): Promise<void> {
    // Concurrent reads share one round of stats.
    this.refreshing ??= (async () => {
      try {
        const changed = await Promise.all(this.files.map((file) => this.check(file, 'refresh')));
        if (changed.some(Boolean)) this.rebuild();
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  /** Brings one file's state up to date; true when its served content changed. */
  private async check(file: string, mode: Mode): Promise<boolean> {
    const previous = this.states.get(file);
    let signature: string | undefined;
    let read: { signature: string; content: Buffer } | undefined;
    let notAFile = false;
    try {
      const stat = await fs.stat(file, { bigint: true });
      signature = `${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeNs}:${stat.ctimeNs}`;
      if (previous !== undefined && previous.signature === signature) return false;
      if (stat.isFile()) read = { signature, content: await fs.readFile(file) };
      else notAFile = true;
    } catch (error) {
      // Absent (or removed between stat and read) is not an error; anything else is.
      if (!isMissing(error)) {
        const reason = `cannot be read (${errorCode(error)})`;
        return this.unusable(file, mode, previous, reason, signature ?? `unreadable:${errorCode(error)}`);
      }
    }
    if (notAFile && signature !== undefined) {
      return this.unusable(file, mode, previous, 'is not a regular file', signature);
    }

    if (read === undefined) {
      if (previous !== undefined && previous.signature === null) return false;
      if (mode === 'startup')
        this.logger.warn({ file }, 'offline_fs KBC resource file does not exist; skipped');
      else if (previous !== undefined && previous.entries.size > 0) {
        this.logger.warn(
          { file },
          'offline_fs KBC resource file was removed; its resources are no longer served',
        );
      }
      this.states.set(file, { signature: null, entries: NO_ENTRIES });
      return previous !== undefined && previous.entries.size > 0;
    }

    let entries: Map<string, Buffer>;
    try {
      entries = parseResourceFile(file, read.content);
    } catch (error) {
      const reason = error instanceof CdhError ? error.message : 'could not be parsed';
      return this.unusable(file, mode, previous, reason, read.signature, error instanceof CdhError);
    } finally {
      read.content.fill(0);
    }
    this.states.set(file, { signature: read.signature, entries });
    if (mode === 'refresh')
      this.logger.info({ file, resources: entries.size }, 'offline_fs KBC resource file reloaded');
    return true;
  }

  /**
   * At start-up: an error naming the file. Later: a warning (once per version of the file),
   * and the last good content stays.
   */
  private unusable(
    file: string,
    mode: Mode,
    previous: FileState | undefined,
    reason: string,
    signature: string,
    reasonNamesFile = false,
  ): boolean {
    const message = reasonNamesFile ? reason : `offline_fs KBC resource file ${file} ${reason}`;
    if (mode === 'startup') throw new CdhError('KBC_RESOURCES_INVALID', message);
    if (previous?.signature !== signature) {
      this.logger.warn(
        { file, error: message },
        'offline_fs KBC resource file unusable; keeping its last good content',
      );
    }
    this.states.set(file, { signature, entries: previous?.entries ?? NO_ENTRIES });
    return false;
  }

  private rebuild(): void {
    const merged = new Map<string, Buffer>();
    const origin = new Map<string, string>();
    for (const file of this.files) {
      for (const [key, value] of this.states.get(file)?.entries ?? NO_ENTRIES) {
        const earlier = origin.get(key);
        if (earlier !== undefined) {
          this.logger.warn(
            { resource: key, files: [earlier, file] },
            'offline_fs KBC resource defined in two files; the later file wins',
          );
        }
        merged.set(key, value);
        origin.set(key, file);
      }
    }
    const live = new Set(merged.values());
    for (const file of this.files)
      for (const value of this.states.get(file)?.entries.values() ?? []) live.add(value);
    // Key material of replaced versions does not linger in memory.
    for (const value of this.merged.values()) if (!live.has(value)) value.fill(0);
    this.merged = merged;
  }
}

/**
 * One offline_fs file: a JSON object mapping resource names to standard base64. Errors name
 * the file and the entry, never the content (JSON.parse messages quote it, so they are dropped).
 */
export function parseResourceFile(file: string, content: Buffer): Map<string, Buffer> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(content));
  } catch {
    throw new CdhError(
      'KBC_RESOURCES_INVALID',
      `offline_fs KBC resource file ${file} is not valid UTF-8 JSON`,
    );
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new CdhError(
      'KBC_RESOURCES_INVALID',
      `offline_fs KBC resource file ${file} must hold a JSON object {"<repo>/<type>/<tag>": "<base64>"}`,
    );
  }
  const entries = new Map<string, Buffer>();
  for (const [key, value] of Object.entries(parsed)) {
    if (typeof value !== 'string') {
      throw new CdhError(
        'KBC_RESOURCES_INVALID',
        `offline_fs KBC resource file ${file}: the value of ${JSON.stringify(key)} is ${describeJson(value)}, not a base64 string`,
      );
    }
    const decoded = decodeStrictBase64(value);
    if (decoded === undefined) {
      throw new CdhError(
        'KBC_RESOURCES_INVALID',
        `offline_fs KBC resource file ${file}: the value of ${JSON.stringify(key)} is not standard base64 (A-Z a-z 0-9 + /, = padding, no whitespace)`,
      );
    }
    entries.set(key, decoded);
  }
  return entries;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Standard base64 with canonical padding, as upstream's decoder demands; Buffer.from alone is lenient. */
function decodeStrictBase64(text: string): Buffer | undefined {
  if (!BASE64.test(text)) return undefined;
  const decoded = Buffer.from(text, 'base64');
  // Non-zero bits in the last character's unused part: not canonical.
  return decoded.toString('base64') === text ? decoded : undefined;
}

function describeJson(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

function isMissing(error: unknown): boolean {
  const code = errorCode(error);
  return code === 'ENOENT' || code === 'ENOTDIR';
}

function errorCode(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : 'unknown error';
}
