import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { CdhError, isCdhError } from '../errors';

/** One unpacked layer: `<work_dir>/layers/<id>`. */
export interface LayerRecord {
  readonly id: number;
  readonly digest: string;
  readonly diffId: string;
  readonly size: number;
}

interface MetaFile {
  readonly version: 1;
  readonly layers: Record<string, { id: number; diff_id: string; size: number }>;
}

/** Fills a fresh directory with a layer; throws (the directory is then removed). */
export type LayerFiller = (dir: string, signal: AbortSignal) => Promise<void>;

interface Flight {
  readonly promise: Promise<LayerRecord>;
  readonly controller: AbortController;
  waiters: number;
}

const META_FILE = 'meta_store.json';
const TMP_PREFIX = '.tmp-';

/**
 * The layer store under work_dir: every layer is unpacked once, into a temp directory renamed
 * into place only after its digests verified, and recorded in meta_store.json (written to a
 * temp file, fsynced, renamed). Concurrent pulls of one layer share one download, which stops
 * only when every puller waiting for it has gone. At open, temp directories, directories not
 * in the meta store (a crash between the rename and the meta write) and staged ciphertext are
 * removed.
 */
export class LayerStore {
  private readonly layers = new Map<string, LayerRecord>();
  private readonly flights = new Map<string, Flight>();
  private nextId = 1;
  private metaWrite: Promise<void> = Promise.resolve();

  private constructor(
    readonly workDir: string,
    private readonly logger: Logger,
  ) {}

  get layersDir(): string {
    return join(this.workDir, 'layers');
  }

  /** Encrypted layers' ciphertext waits here (outside every layer) until it is authenticated. */
  get stagingDir(): string {
    return join(this.workDir, 'staging');
  }

  /** A fresh file name under the staging directory (the caller creates and removes it). */
  stagingFile(): string {
    return join(this.stagingDir, `${randomBytes(8).toString('hex')}.blob`);
  }

  static async open(workDir: string, logger: Logger): Promise<LayerStore> {
    const store = new LayerStore(workDir, logger);
    try {
      await store.load();
    } catch (error) {
      if (isCdhError(error)) throw error;
      throw new CdhError(
        'IMAGE_MOUNT_FAILED',
        `image work_dir ${workDir}: cannot open the layer store (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
        { cause: error },
      );
    }
    return store;
  }

  private async load(): Promise<void> {
    await mkdir(this.layersDir, { recursive: true, mode: 0o700 });
    await mkdir(join(this.workDir, 'overlay'), { recursive: true, mode: 0o700 });
    // Whatever a crash left staged was never authenticated: it goes.
    await rm(this.stagingDir, { recursive: true, force: true });
    await mkdir(this.stagingDir, { mode: 0o700 });
    let meta: MetaFile | undefined;
    try {
      const parsed = JSON.parse(await readFile(join(this.workDir, META_FILE), 'utf8')) as MetaFile;
      if (parsed.version === 1 && typeof parsed.layers === 'object') meta = parsed;
      else this.logger.warn({ workDir: this.workDir }, 'meta store of another format: starting empty');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
        this.logger.warn({ workDir: this.workDir }, 'meta store unreadable: starting empty');
    }
    const present = new Set(await readdir(this.layersDir));
    for (const [digest, entry] of Object.entries(meta?.layers ?? {})) {
      if (!Number.isSafeInteger(entry.id) || !present.has(String(entry.id))) continue;
      this.layers.set(digest, { id: entry.id, digest, diffId: entry.diff_id, size: entry.size });
      this.nextId = Math.max(this.nextId, entry.id + 1);
    }
    const recorded = new Set([...this.layers.values()].map((l) => String(l.id)));
    for (const name of present) {
      if (recorded.has(name)) continue;
      await rm(join(this.layersDir, name), { recursive: true, force: true });
      if (!name.startsWith(TMP_PREFIX))
        this.logger.warn({ dir: name }, 'removed an unrecorded layer directory');
    }
    if (meta === undefined || this.layers.size !== Object.keys(meta.layers).length) await this.persist();
  }

  get(digest: string): LayerRecord | undefined {
    return this.layers.get(digest);
  }

  /** Relative to work_dir (overlay options stay short; the mount runs in work_dir). */
  relativePath(record: LayerRecord): string {
    return join('layers', String(record.id));
  }

  get size(): number {
    return this.layers.size;
  }

  /** The stored layer, unpacking it with `fill` first if needed (one download per digest). */
  async ensure(
    digest: string,
    diffId: string,
    size: number,
    fill: LayerFiller,
    signal: AbortSignal,
  ): Promise<LayerRecord> {
    const existing = this.layers.get(digest);
    if (existing) return existing;
    let flight = this.flights.get(digest);
    if (!flight) {
      const controller = new AbortController();
      const promise = this.unpackOnce(digest, diffId, size, fill, controller.signal).finally(() =>
        this.flights.delete(digest),
      );
      promise.catch(() => undefined);
      flight = { promise, controller, waiters: 0 };
      this.flights.set(digest, flight);
    }
    return this.wait(flight, signal);
  }

  /**
   * Waits until the abandoned downloads of `digests` (no puller left) have removed their temp
   * directory: a failed pull answers only once nothing of its layers is left in the store.
   */
  async settle(digests: Iterable<string>): Promise<void> {
    const abandoned = [...digests]
      .map((d) => this.flights.get(d))
      .filter((f): f is Flight => f !== undefined && f.waiters === 0);
    await Promise.allSettled(abandoned.map((f) => f.promise));
  }

  private wait(flight: Flight, signal: AbortSignal): Promise<LayerRecord> {
    if (signal.aborted) return Promise.reject(signal.reason);
    flight.waiters++;
    return new Promise<LayerRecord>((resolve, reject) => {
      const onAbort = (): void => {
        flight.waiters--;
        if (flight.waiters === 0) flight.controller.abort(signal.reason);
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      flight.promise.then(
        (record) => {
          signal.removeEventListener('abort', onAbort);
          flight.waiters--;
          resolve(record);
        },
        (error: unknown) => {
          signal.removeEventListener('abort', onAbort);
          flight.waiters--;
          reject(error);
        },
      );
    });
  }

  private async unpackOnce(
    digest: string,
    diffId: string,
    size: number,
    fill: LayerFiller,
    signal: AbortSignal,
  ): Promise<LayerRecord> {
    const tmp = join(this.layersDir, `${TMP_PREFIX}${randomBytes(8).toString('hex')}`);
    await mkdir(tmp, { mode: 0o755 });
    try {
      await fill(tmp, signal);
      const id = this.nextId++;
      await rename(tmp, join(this.layersDir, String(id)));
      const record: LayerRecord = { id, digest, diffId, size };
      this.layers.set(digest, record);
      await this.persist();
      return record;
    } catch (error) {
      await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
      throw error;
    }
  }

  /** Writes the meta store atomically (temp file, fsync, rename), one write at a time. */
  private persist(): Promise<void> {
    const write = async (): Promise<void> => {
      const meta: MetaFile = {
        version: 1,
        layers: Object.fromEntries(
          [...this.layers.values()].map((l) => [l.digest, { id: l.id, diff_id: l.diffId, size: l.size }]),
        ),
      };
      const path = join(this.workDir, META_FILE);
      const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
      const handle = await open(tmp, 'w', 0o600);
      try {
        await handle.writeFile(JSON.stringify(meta));
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(tmp, path);
    };
    this.metaWrite = this.metaWrite.then(write, write);
    return this.metaWrite.catch((error: unknown) => {
      throw new CdhError(
        'IMAGE_MOUNT_FAILED',
        `image work_dir ${this.workDir}: cannot write ${META_FILE} (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
        { cause: error },
      );
    });
  }

  /** Drops a record whose directory has gone (removed by hand): the next ensure unpacks again. */
  async forget(digest: string): Promise<void> {
    if (this.layers.delete(digest)) await this.persist();
  }

  /** True when the layer's directory is still there (someone may have removed it by hand). */
  async present(record: LayerRecord): Promise<boolean> {
    return stat(join(this.layersDir, String(record.id))).then(
      (s) => s.isDirectory(),
      () => false,
    );
  }
}
