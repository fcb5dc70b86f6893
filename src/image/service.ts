import { resolve } from 'node:path';
import type { Logger } from 'pino';
import type { ImageSettings } from '../config/types';
import { CdhError, isCdhError } from '../errors';
import type { CallContext, ResourceReader } from '../providers/types';
import { checkBundle, mountRootfs, unmountRootfs, writeRuntimeConfig } from './bundle';
import { storeLayers, type PullStats } from './layer-jobs';
import {
  choosePlatform,
  digestOf,
  MANIFEST_ACCEPT,
  MAX_CONFIG_BYTES,
  MAX_MANIFEST_BYTES,
  parseImageConfig,
  parseManifest,
  type ImageConfig,
  type ImageManifest,
} from './manifest';
import type { LayerKeyUnwrapper } from './ocicrypt';
import { PullResourceCache } from './pull-resources';
import { loadPullSetup, type PullSetup } from './pull-setup';
import { manifestSelector, parseReference, quote, referenceString, type ImageReference } from './reference';
import { pullTasks, type PullTask } from './registry-config';
import { readLimited, RegistrySession } from './registry';
import { registrySignatures } from './sigstore';

export type { PullStats } from './layer-jobs';

/** Records a finished pull with the attestation agent (ExtendRuntimeMeasurement). */
export interface PullMeasurer {
  measure(imageUrl: string, manifestDigest: string, ctx: CallContext): Promise<void>;
  close?(): void;
}

export interface ImagePullerDeps {
  readonly logger: Logger;
  readonly kbc?: ResourceReader;
  readonly measurer?: PullMeasurer;
  /** The daemon's UnWrapKey path, for encrypted layers (absent: they are refused). */
  readonly unwrapper?: LayerKeyUnwrapper;
}

type Loaded = PullSetup;

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
    const { manifest, config, manifestDigest } = await this.resolve(session, task, original, loaded, ctx);
    const records = await storeLayers(
      {
        session,
        store: loaded.store,
        label,
        ctx,
        logger: this.deps.logger,
        stats: this.stats,
        concurrency: this.settings.maxConcurrentLayerDownloadsPerImage,
        ...(this.deps.unwrapper ? { unwrapper: this.deps.unwrapper } : {}),
      },
      manifest,
      config.diffIds,
    );
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

  /** Manifest (through an index to this platform), the policy check, then the image config. */
  private async resolve(
    session: RegistrySession,
    task: PullTask,
    original: ImageReference,
    loaded: Loaded,
    ctx: CallContext,
  ): Promise<{ manifest: ImageManifest; config: ImageConfig; manifestDigest: string }> {
    const label = session.label;
    let fetched = await this.fetchManifest(session, manifestSelector(task.ref), task.ref.digest, label);
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
    await loaded.policy.check(original, fetched.digest, indexDigest, ctx, registrySignatures(session, label));
    const config = parseImageConfig(await this.fetchBlobBytes(session, manifest.config.digest, label), label);
    if (config.diffIds.length !== manifest.layers.length)
      throw new CdhError(
        'IMAGE_MANIFEST_INVALID',
        `${label}: the manifest has ${manifest.layers.length} layers but the config ${config.diffIds.length} diff_ids`,
      );
    if (config.os !== '' && config.os !== 'linux')
      throw new CdhError('IMAGE_UNSUPPORTED', `${label}: image os ${quote(config.os)} is not linux`);
    return { manifest, config, manifestDigest: fetched.digest };
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

  /** The store and transport (once), and the [image] resources as they are now (pull-resources.ts). */
  private async load(ctx: CallContext): Promise<Loaded> {
    this.loading ??= loadPullSetup(this.settings, this.deps.logger).catch((error: unknown) => {
      this.loading = undefined;
      throw error;
    });
    return { ...(await this.loading), ...(await this.resources.current(ctx)) };
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
    'IMAGE_LAYER_AUTH_FAILED',
    'IMAGE_MANIFEST_INVALID',
  ].includes(error.code);
}
