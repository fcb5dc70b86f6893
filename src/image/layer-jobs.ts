import type { Logger } from 'pino';
import { CdhError } from '../errors';
import type { CallContext } from '../providers/types';
import { unpackEncrypted } from './decrypt';
import { unpackBlob } from './layer';
import type { LayerRecord, LayerStore } from './layer-store';
import type { ImageManifest, LayerDescriptor } from './manifest';
import type { LayerKeyUnwrapper } from './ocicrypt';
import type { RegistrySession } from './registry';
import type { UnpackStats } from './unpack';

/** Counters for tests and benchmarks (how much was fetched). */
export interface PullStats {
  layersDownloaded: number;
  layersReused: number;
  bytesDownloaded: number;
}

export interface LayerJobs {
  readonly session: RegistrySession;
  readonly store: LayerStore;
  readonly label: string;
  readonly ctx: CallContext;
  readonly logger: Logger;
  readonly stats: PullStats;
  readonly concurrency: number;
  /** The daemon's UnWrapKey path; absent: encrypted layers are refused. */
  readonly unwrapper?: LayerKeyUnwrapper;
}

interface Job {
  readonly layer: LayerDescriptor;
  readonly diffId: string;
}

/** Every layer stored (downloading the missing ones, a few at a time), in manifest order. */
export async function storeLayers(
  jobs: LayerJobs,
  manifest: ImageManifest,
  diffIds: readonly string[],
): Promise<LayerRecord[]> {
  const unique = new Map<string, Job>();
  manifest.layers.forEach((layer, i) => {
    if (!unique.has(layer.digest)) unique.set(layer.digest, { layer, diffId: diffIds[i] as string });
  });
  const queue = [...unique.values()];
  const results = new Map<string, LayerRecord>();
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(jobs.ctx.signal.reason);
  jobs.ctx.signal.addEventListener('abort', onAbort, { once: true });
  const worker = async (): Promise<void> => {
    for (let job = queue.shift(); job !== undefined; job = queue.shift())
      results.set(job.layer.digest, await storeLayer(jobs, job, controller.signal));
  };
  const workers = Array.from({ length: Math.min(jobs.concurrency, queue.length) }, () =>
    worker().catch((error: unknown) => {
      controller.abort(error);
      throw error;
    }),
  );
  try {
    const settled = await Promise.allSettled(workers);
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) {
      await jobs.store.settle(unique.keys());
      throw controller.signal.reason ?? failed.reason;
    }
  } finally {
    jobs.ctx.signal.removeEventListener('abort', onAbort);
  }
  return [...unique.keys()].map((digest) => results.get(digest) as LayerRecord);
}

async function storeLayer(
  jobs: LayerJobs,
  { layer, diffId }: Job,
  signal: AbortSignal,
): Promise<LayerRecord> {
  const { store, stats } = jobs;
  const stored = store.get(layer.digest);
  if (stored && stored.diffId === diffId && (await store.present(stored))) {
    stats.layersReused++;
    return stored;
  }
  if (stored) await store.forget(layer.digest);
  const record = await store.ensure(
    layer.digest,
    diffId,
    layer.size,
    async (dir, flightSignal) => {
      const unpacked = await fill(jobs, layer, diffId, dir, flightSignal);
      stats.bytesDownloaded += layer.size;
      if (unpacked.skippedDevices > 0 || unpacked.xattrsDropped > 0)
        jobs.logger.warn(
          { layer: layer.digest, devices: unpacked.skippedDevices, xattrs: unpacked.xattrsDropped },
          'device nodes, FIFOs or extended attributes skipped',
        );
    },
    signal,
  );
  if (record.diffId !== diffId)
    throw new CdhError(
      'IMAGE_DIGEST_MISMATCH',
      `${jobs.label}: layer ${layer.digest} is stored with diff_id ${record.diffId}, the config says ${diffId}`,
    );
  return record;
}

/** Downloads one layer into `dir`: plain layers stream straight in, encrypted ones are staged first. */
async function fill(
  jobs: LayerJobs,
  layer: LayerDescriptor,
  diffId: string,
  dir: string,
  signal: AbortSignal,
): Promise<UnpackStats> {
  const { session, label } = jobs;
  const fetch = async (s: AbortSignal) => {
    const blob = await session.getBlob(layer.digest, `layer ${layer.digest}`, s);
    jobs.stats.layersDownloaded++;
    return blob.body;
  };
  if (layer.encryption === undefined)
    return unpackBlob(await fetch(signal), layer, diffId, dir, label, signal);
  if (jobs.unwrapper === undefined)
    throw new CdhError(
      'IMAGE_LAYER_KEY_UNAVAILABLE',
      `${label}: layer ${layer.digest} is encrypted and this process cannot unwrap layer keys`,
    );
  const stagingFile = jobs.store.stagingFile();
  // The flight may serve several pulls: the key is unwrapped under the flight's signal, for
  // the first caller's deadline would otherwise cut the others' shared download.
  const ctx: CallContext = { signal };
  return unpackEncrypted({ layer, diffId, dir, stagingFile, label, signal, ctx, fetch }, jobs.unwrapper);
}
