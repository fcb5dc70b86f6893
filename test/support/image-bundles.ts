import { join } from 'node:path';
import type { DaemonProcess } from './daemon';
import type { TestRegistry } from './registry';
import { unmount } from './tree';

/**
 * The bundle directories a test file pulls images into (below `<root>/bundles`): each one's
 * rootfs, which the daemon may have mounted, is unmounted at tear-down, newest first.
 */
export class Bundles {
  private readonly rootfsPaths: string[] = [];
  private seq = 0;

  constructor(private readonly root: string) {}

  /** A new bundle directory: `bundles/<name>`, or b1, b2, ... */
  dir(name?: string): string {
    const path = join(this.root, 'bundles', name ?? `b${++this.seq}`);
    this.rootfsPaths.push(join(path, 'rootfs'));
    return path;
  }

  async unmountAll(): Promise<void> {
    for (const rootfs of this.rootfsPaths.splice(0).reverse()) await unmount(rootfs);
  }
}

/** What a pulling test file tears down: its mounts first, then the daemon, the registry, the temp dir. */
export interface ImagePullWorld {
  readonly bundles: Bundles;
  readonly work: { cleanup(): void };
  readonly daemon?: DaemonProcess | undefined;
  readonly registry?: TestRegistry | undefined;
}

export async function closeImagePullWorld(world: ImagePullWorld): Promise<void> {
  await world.bundles.unmountAll();
  await world.daemon?.stop();
  world.daemon?.cleanup();
  await world.registry?.stop();
  world.work.cleanup();
}

/** The `[image]` section of a daemon pulling from the test registry at `registryHost` (plain HTTP). */
export function registryImageConfig(
  root: string,
  registryHost: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    work_dir: join(root, 'store'),
    registry_config: { registry: [{ location: registryHost, insecure: true }] },
    ...extra,
  };
}
