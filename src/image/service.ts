import { resolve } from 'node:path';
import type { Logger } from 'pino';
import type { ImageSettings } from '../config/image';
import { CdhError, isCdhError } from '../errors';
import type { CallContext, ResourceReader } from '../providers/types';
import { AuthFile } from './auth';
import { checkBundle, mountRootfs, unmountRootfs, writeRuntimeConfig } from './bundle';
import { unpackBlob } from './layer';
import { LayerStore, type LayerRecord } from './layer-store';
import {
  choosePlatform,
  digestOf,
  MANIFEST_ACCEPT,
  MAX_CONFIG_BYTES,
  MAX_MANIFEST_BYTES,
  parseImageConfig,
  parseManifest,
  type ImageManifest,
  type LayerDescriptor,
} from './manifest';
import { ImagePolicy } from './policy';
import { PullResourceCache } from './pull-resources';
import { manifestSelector, parseReference, quote, referenceString, type ImageReference } from './reference';
import { pullTasks, type PullTask, type RegistryConfig } from './registry-config';
import { readLimited, RegistrySession, RegistryTransport } from './registry';
import { registrySignatures } from './sigstore';

/** Records a finished pull with the attestation agent (ExtendRuntimeMeasurement). */
export interface PullMeasurer {
  measure(imageUrl: string, manifestDigest: string, ctx: CallContext): Promise<void>;
  close?(): void;
}

export interface ImagePullerDeps {
  readonly logger: Logger;
  readonly kbc?: ResourceReader;
  readonly measurer?: PullMeasurer;
}

interface Loaded {
  readonly registryConfig: RegistryConfig;
  readonly auth: AuthFile;
  readonly policy: ImagePolicy;
  readonly transport: RegistryTransport;
  readonly store: LayerStore;
}

/** Counters for tests and benchmarks (how much was fetched). */
export interface PullStats {
  layersDownloaded: number;
  layersReused: number;
  bytesDownloaded: number;
}

/**
 * PullImage: reference → registry tasks → manifest (index → platform) → policy (every pull)
 * → config → layers (once each, shared between concurrent pulls) → overlay rootfs + config.json.
 * The [image] resources are read again when they changed (pull-resources.ts).
 */
export class ImagePuller {
  private loading?: Promise<Pick<Loaded, 'transport' | 'store'>>;
  private readonly resources: PullResourceCache;
  /** Bundles being pulled into right now: a second pull into one is refused, not stacked. */
  private readonly busyBundles = new Set<string>();
  readonly stats: PullStats = { layersDownloaded: 0, layersReused: 0, bytesDownloaded: 0 };

  constructor(
    private readonly settings: ImageSettings,
    private readonly deps: ImagePullerDeps,
  ) {
    this.resources = new PullResourceCache(settings, deps.kbc, deps.logger);
  }

  async pull(imageUrl: string, bundlePath: string, ctx: CallContext): Promise<string> {
    const ref = parseReference(imageUrl);
    const label = `image ${quote(imageUrl)}`;
    await checkBundle(bundlePath, label);
    const bundleKey = resolve(bundlePath);
    if (this.busyBundles.has(bundleKey))
      throw new CdhError(
        'IMAGE_BUNDLE_IN_USE',
        `${label}: another pull into bundle ${quote(bundlePath)} is running`,
      );
    this.busyBundles.add(bundleKey);
    try {
      return await this.pullInto(ref, imageUrl, bundlePath, label, ctx);
    } finally {
      this.busyBundles.delete(bundleKey);
    }
  }

  private async pullInto(
    ref: ImageReference,
    imageUrl: string,
    bundlePath: string,
    label: string,
    ctx: CallContext,
  ): Promise<string> {
    const loaded = await this.load(ctx);
    const tasks = pullTasks(ref, loaded.registryConfig);
    const failures: CdhError[] = [];
    for (const task of tasks) {
      try {
        const digest = await this.pullFrom(task, ref, imageUrl, bundlePath, loaded, ctx);
        if (this.deps.measurer) await this.deps.measurer.measure(imageUrl, digest, ctx);
        return digest;
      } catch (error) {
        if (ctx.signal.aborted) throw ctx.signal.reason;
        if (!isCdhError(error) || !retriable(error)) throw error;
        failures.push(error);
        this.deps.logger.info(
          { image: imageUrl, task: referenceString(task.ref), error: error.message },
          'pull task failed',
        );
      }
    }
    const last = failures[failures.length - 1] as CdhError;
    if (failures.length === 1) throw last;
    throw new CdhError(
      last.code,
      `${label}: every location failed: ${failures.map((f) => f.message).join('; ')}`,
    );
  }

  private async pullFrom(
    task: PullTask,
    original: ImageReference,
    imageUrl: string,
    bundlePath: string,
    loaded: Loaded,
    ctx: CallContext,
  ): Promise<string> {
    const label =
      referenceString(task.ref) === referenceString(original)
        ? `image ${quote(imageUrl)}`
        : `image ${quote(imageUrl)} (from ${quote(referenceString(task.ref))})`;
    const session = new RegistrySession(
      loaded.transport,
      task.ref,
      task.plainHttp,
      loaded.auth.lookup(task.ref),
      ctx.signal,
      label,
    );
    const selector = manifestSelector(task.ref);
    let fetched = await this.fetchManifest(session, selector, task.ref.digest, label);
    let manifest = parseManifest(fetched.body, label);
    let indexDigest: string | undefined;
    if (manifest.kind === 'index') {
      indexDigest = fetched.digest;
      const entry = choosePlatform(manifest, label);
      fetched = await this.fetchManifest(session, entry.digest, entry.digest, label);
      manifest = parseManifest(fetched.body, label);
      if (manifest.kind !== 'manifest')
        throw new CdhError(
          'IMAGE_UNSUPPORTED',
          `${label}: the index entry ${entry.digest} is itself an index`,
        );
    }
    const manifestDigest = fetched.digest;
    await loaded.policy.check(original, manifestDigest, indexDigest, ctx, registrySignatures(session, label));

    const configBody = await this.fetchBlobBytes(session, manifest.config.digest, label);
    const config = parseImageConfig(configBody, label);
    if (config.diffIds.length !== manifest.layers.length)
      throw new CdhError(
        'IMAGE_MANIFEST_INVALID',
        `${label}: the manifest has ${manifest.layers.length} layers but the config ${config.diffIds.length} diff_ids`,
      );
    if (config.os !== '' && config.os !== 'linux')
      throw new CdhError('IMAGE_UNSUPPORTED', `${label}: image os ${quote(config.os)} is not linux`);
    const records = await this.layers(session, manifest, config.diffIds, loaded.store, label, ctx);

    await checkBundle(bundlePath, label);
    const lowers = [...records].reverse().map((r) => loaded.store.relativePath(r));
    const { rootfs, overlayDir } = await mountRootfs(loaded.store.workDir, lowers, bundlePath, label);
    try {
      await writeRuntimeConfig(bundlePath, config, label);
    } catch (error) {
      await unmountRootfs(rootfs, overlayDir);
      throw error;
    }
    this.deps.logger.info(
      { image: imageUrl, digest: manifestDigest, layers: records.length, bundle: bundlePath },
      'image pulled',
    );
    return manifestDigest;
  }

  private async fetchManifest(
    session: RegistrySession,
    selector: string,
    expected: string | undefined,
    label: string,
  ): Promise<{ body: Buffer; digest: string }> {
    const got = await session.getManifest(selector, MANIFEST_ACCEPT, MAX_MANIFEST_BYTES);
    const like = expected ?? got.digestHeader ?? 'sha256:';
    const digest = digestOf(got.body, like);
    if (expected !== undefined && digest !== expected)
      throw new CdhError(
        'IMAGE_DIGEST_MISMATCH',
        `${label}: manifest ${selector} has digest ${digest}, not ${expected}`,
      );
    if (got.digestHeader !== undefined && digestOf(got.body, got.digestHeader) !== got.digestHeader)
      throw new CdhError(
        'IMAGE_DIGEST_MISMATCH',
        `${label}: manifest ${selector} does not match the registry's Docker-Content-Digest ${got.digestHeader}`,
      );
    return { body: got.body, digest };
  }

  private async fetchBlobBytes(session: RegistrySession, digest: string, label: string): Promise<Buffer> {
    const blob = await session.getBlob(digest, `config ${digest}`, session.signal);
    const body = await readLimited(blob.body, MAX_CONFIG_BYTES, `${label}: config ${digest}`);
    const got = digestOf(body, digest);
    if (got !== digest)
      throw new CdhError('IMAGE_DIGEST_MISMATCH', `${label}: config blob ${digest} has digest ${got}`);
    return body;
  }

  /** Every layer stored (downloading the missing ones, a few at a time), in manifest order. */
  private async layers(
    session: RegistrySession,
    manifest: ImageManifest,
    diffIds: readonly string[],
    store: LayerStore,
    label: string,
    ctx: CallContext,
  ): Promise<LayerRecord[]> {
    const unique = new Map<string, { layer: LayerDescriptor; diffId: string }>();
    manifest.layers.forEach((layer, i) => {
      if (!unique.has(layer.digest)) unique.set(layer.digest, { layer, diffId: diffIds[i] as string });
    });
    const jobs = [...unique.values()];
    const results = new Map<string, LayerRecord>();
    const controller = new AbortController();
    const onAbort = (): void => controller.abort(ctx.signal.reason);
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < jobs.length) {
        const { layer, diffId } = jobs[next++] as { layer: LayerDescriptor; diffId: string };
        const stored = store.get(layer.digest);
        if (stored && stored.diffId === diffId && (await store.present(stored))) {
          this.stats.layersReused++;
          results.set(layer.digest, stored);
          continue;
        }
        if (stored) await store.forget(layer.digest);
        const record = await store.ensure(
          layer.digest,
          diffId,
          layer.size,
          async (dir, signal) => {
            const blob = await session.getBlob(layer.digest, `layer ${layer.digest}`, signal);
            this.stats.layersDownloaded++;
            const unpacked = await unpackBlob(blob.body, layer, diffId, dir, label, signal);
            this.stats.bytesDownloaded += layer.size;
            if (unpacked.skippedDevices > 0 || unpacked.xattrsDropped > 0)
              this.deps.logger.warn(
                { layer: layer.digest, devices: unpacked.skippedDevices, xattrs: unpacked.xattrsDropped },
                'device nodes, FIFOs or extended attributes skipped',
              );
          },
          controller.signal,
        );
        if (record.diffId !== diffId)
          throw new CdhError(
            'IMAGE_DIGEST_MISMATCH',
            `${label}: layer ${layer.digest} is stored with diff_id ${record.diffId}, the config says ${diffId}`,
          );
        results.set(layer.digest, record);
      }
    };
    const workers = Array.from(
      { length: Math.min(this.settings.maxConcurrentLayerDownloadsPerImage, jobs.length) },
      () =>
        worker().catch((error: unknown) => {
          controller.abort(error);
          throw error;
        }),
    );
    try {
      const settled = await Promise.allSettled(workers);
      const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
      if (failed) throw controller.signal.reason ?? failed.reason;
    } finally {
      ctx.signal.removeEventListener('abort', onAbort);
    }
    return manifest.layers
      .filter((l, i, all) => all.findIndex((x) => x.digest === l.digest) === i)
      .map((l) => results.get(l.digest) as LayerRecord);
  }

  /** The store and transport (once), and the [image] resources as they are now (pull-resources.ts). */
  private async load(ctx: CallContext): Promise<Loaded> {
    this.loading ??= this.loadOnce().catch((error: unknown) => {
      this.loading = undefined;
      throw error;
    });
    return { ...(await this.loading), ...(await this.resources.current(ctx)) };
  }

  private async loadOnce(): Promise<Pick<Loaded, 'transport' | 'store'>> {
    const s = this.settings;
    const store = await LayerStore.open(s.workDir, this.deps.logger);
    const transport = new RegistryTransport({
      extraRootCertificates: s.extraRootCertificates,
      proxy: s.imagePullProxy,
    });
    return { transport, store };
  }

  async close(): Promise<void> {
    const loaded = await this.loading?.catch(() => undefined);
    await loaded?.transport.close();
    this.deps.measurer?.close?.();
  }
}

/** Failures worth trying the next mirror / location for. */
function retriable(error: CdhError): boolean {
  return [
    'IMAGE_NOT_FOUND',
    'IMAGE_REGISTRY_DENIED',
    'IMAGE_REGISTRY_UNAVAILABLE',
    'IMAGE_REGISTRY_FAILED',
    'IMAGE_DIGEST_MISMATCH',
    'IMAGE_MANIFEST_INVALID',
  ].includes(error.code);
}
