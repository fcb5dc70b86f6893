/**
 * `npm run bench:pull` (also run by `npm run bench`): PullImage of a ~200 MB image from Debian's
 * docker-registry on 127.0.0.1, cold (empty layer store) and warm (layers stored, a new
 * bundle), next to `skopeo copy docker://… oci:…` + `umoci unpack` of the same image. One run
 * each; the figure is seconds and MB/s of uncompressed layer data.
 * Environment: BENCH_PULL_MB (default 200) total uncompressed size, BENCH_PULL_LAYERS (default 4).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { spawnDaemon, tempDir } from '../src/devtools/daemon';
import { buildLayer, makeTar, tagInLayout, writeImage, type BuiltLayer } from '../src/devtools/oci-image';
import { pushImage, startRegistry } from '../src/devtools/registry';

const run = promisify(execFile);
const TOTAL_MB = Number(process.env['BENCH_PULL_MB'] ?? 200);
const LAYERS = Number(process.env['BENCH_PULL_LAYERS'] ?? 4);

/** Files of half random, half repetitive text: compresses about 2:1, like typical layers. */
function layerContent(mb: number, seed: number): BuiltLayer {
  const entries = [];
  for (let i = 0; i < mb; i++) {
    const random = randomBytes(512 * 1024);
    const text = Buffer.from(
      `line ${seed}-${i} of a fairly ordinary configuration file\n`.repeat(9000),
    ).subarray(0, 512 * 1024);
    entries.push({ path: `data/${seed}/f${i}`, content: Buffer.concat([random, text]) });
  }
  return buildLayer(makeTar(entries), 'gzip');
}

async function timed<T>(fn: () => Promise<T>): Promise<{ s: number; value: T }> {
  const started = process.hrtime.bigint();
  const value = await fn();
  return { s: Number(process.hrtime.bigint() - started) / 1e9, value };
}

async function main(): Promise<void> {
  const work = tempDir('cdh-bench-pull-');
  const registry = await startRegistry();
  const mounts: string[] = [];
  try {
    const layout = join(work.path, 'layout');
    const layers = Array.from({ length: LAYERS }, (_, i) => layerContent(Math.round(TOTAL_MB / LAYERS), i));
    const image = writeImage(layout, { layers });
    tagInLayout(layout, 'big', {
      digest: image.digest,
      size: image.manifest.length,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
    });
    const ref = `${registry.host}/bench/big:v1`;
    await pushImage(layout, 'big', ref);
    const compressedMb = layers.reduce((n, l) => n + l.blob.length, 0) / 1e6;
    const uncompressedMb = layers.reduce((n, l) => n + l.tarSize, 0) / 1e6;

    const daemon = await spawnDaemon({
      config: {
        image: {
          work_dir: join(work.path, 'store'),
          registry_config: { registry: [{ location: registry.host, insecure: true }] },
        },
      },
    });
    let cold: number;
    let warm: number;
    try {
      const client = daemon.client();
      const b1 = join(work.path, 'b1');
      cold = (await timed(() => client.pullImage(ref, b1, 1_200_000))).s;
      mounts.push(join(b1, 'rootfs'));
      const b2 = join(work.path, 'b2');
      warm = (await timed(() => client.pullImage(ref, b2, 1_200_000))).s;
      mounts.push(join(b2, 'rootfs'));
    } finally {
      await daemon.stop();
      daemon.cleanup();
    }
    const copy = (
      await timed(() =>
        run(
          'skopeo',
          [
            'copy',
            '--quiet',
            '--src-tls-verify=false',
            `docker://${ref}`,
            `oci:${join(work.path, 'skopeo')}:big`,
          ],
          {
            timeout: 1_200_000,
          },
        ),
      )
    ).s;
    const unpack = (
      await timed(() =>
        run('umoci', ['unpack', '--image', `${join(work.path, 'skopeo')}:big`, join(work.path, 'umoci')], {
          timeout: 1_200_000,
        }),
      )
    ).s;
    const peer = copy + unpack;
    const mbs = (s: number): string => (uncompressedMb / s).toFixed(0);
    const cpu = cpus();
    const report = [
      `## Image pull ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`,
      '',
      `Machine: ${cpu.length} × ${cpu[0]?.model.trim() ?? 'unknown CPU'}, Node ${process.version}, load average ` +
        `${(loadavg()[0] as number).toFixed(1)} (shared with other work). Image: ${LAYERS} gzip layers, ` +
        `${uncompressedMb.toFixed(0)} MB uncompressed / ${compressedMb.toFixed(0)} MB compressed, from docker-registry on 127.0.0.1. One run each.`,
      '',
      '| what | seconds | MB/s (uncompressed) |',
      '| --- | --- | --- |',
      `| PullImage, cold (empty layer store: download, verify, unpack, overlay mount) | ${cold.toFixed(2)} | ${mbs(cold)} |`,
      `| PullImage, warm (layers stored: manifest, config, policy, mount) | ${warm.toFixed(2)} | ${mbs(warm)} |`,
      `| skopeo copy docker:// → oci: | ${copy.toFixed(2)} | ${mbs(copy)} |`,
      `| umoci unpack | ${unpack.toFixed(2)} | ${mbs(unpack)} |`,
      `| skopeo copy + umoci unpack | ${peer.toFixed(2)} | ${mbs(peer)} |`,
      '',
      `Ratio cold PullImage / (skopeo copy + umoci unpack): ${(cold / peer).toFixed(2)}; warm / that: ${(warm / peer).toFixed(3)}.`,
    ].join('\n');
    process.stdout.write(`${report}\n`);
  } finally {
    for (const m of mounts) await run('umount', [m]).catch(() => undefined);
    await registry.stop();
    work.cleanup();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench:pull failed: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
