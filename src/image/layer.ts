import { createHash, type Hash } from 'node:crypto';
import { PassThrough, Transform, type Readable, type TransformCallback } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { Decompress } from 'fzstd';
import { CdhError, isCdhError } from '../errors';
import type { Compression, LayerDescriptor } from './manifest';
import { unpackLayer, type UnpackStats } from './unpack';

/** Hashes what passes; refuses more bytes than `limit` (bounded work on a lying registry). */
class Digester extends Transform {
  private readonly hash: Hash;
  bytes = 0;

  constructor(
    algorithm: string,
    private readonly limit: number,
    private readonly onLimit: () => CdhError,
  ) {
    super();
    this.hash = createHash(algorithm);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.limit) return callback(this.onLimit());
    this.hash.update(chunk);
    callback(null, chunk);
  }

  digest(): string {
    return this.hash.digest('hex');
  }
}

/** zstd through fzstd (pure JavaScript, streaming): Node 20's zlib has no zstd. */
class ZstdDecoder extends Transform {
  private readonly decoder = new Decompress((chunk: Uint8Array) => {
    this.push(Buffer.from(chunk));
  });

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.decoder.push(chunk);
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.decoder.push(new Uint8Array(0), true);
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }
}

export function decoderFor(compression: Compression): Transform {
  switch (compression) {
    case 'gzip':
      return createGunzip();
    case 'zstd':
      return new ZstdDecoder();
    case 'none':
      return new PassThrough();
  }
}

/**
 * blob → compressed digest → decompress → diff_id digest → unpack into `dir`, streamed.
 * Both digests are compared at the end; on any failure the caller removes `dir`.
 */
export async function unpackBlob(
  body: Readable,
  layer: LayerDescriptor,
  diffId: string,
  dir: string,
  label: string,
  signal: AbortSignal,
): Promise<UnpackStats> {
  const layerLabel = `${label}: layer ${layer.digest}`;
  const compressed = new Digester(
    algorithmOf(layer.digest),
    layer.size,
    () =>
      new CdhError(
        'IMAGE_DIGEST_MISMATCH',
        `${layerLabel}: the registry sent more than the ${layer.size} bytes in the manifest`,
      ),
  );
  const decoder = decoderFor(layer.compression);
  const uncompressed = new Digester(
    algorithmOf(diffId),
    Number.MAX_SAFE_INTEGER,
    () => new CdhError('INTERNAL', 'unreachable'),
  );
  let firstError: unknown;
  const stage = (name: string) => (error: Error) => {
    if (firstError !== undefined) return;
    if (isCdhError(error) || signal.aborted) firstError = signal.aborted ? signal.reason : error;
    else if (name === 'body')
      firstError = new CdhError(
        'IMAGE_REGISTRY_UNAVAILABLE',
        `${layerLabel}: download interrupted (${error.message})`,
      );
    else if (name === 'decoder')
      firstError = new CdhError(
        'IMAGE_LAYER_INVALID',
        `${layerLabel}: not valid ${layer.compression} data (${error.message.slice(0, 120)})`,
      );
    else firstError = error;
  };
  body.on('error', stage('body'));
  compressed.on('error', stage('digest'));
  decoder.on('error', stage('decoder'));
  uncompressed.on('error', stage('digest'));
  const forward = (from: Readable, to: Transform): void => {
    from.on('error', (error) => to.destroy(error));
    from.pipe(to);
  };
  forward(body, compressed);
  forward(compressed, decoder);
  forward(decoder, uncompressed);
  let stats: UnpackStats;
  try {
    stats = await unpackLayer(uncompressed, dir, layerLabel, signal);
  } catch (error) {
    const cause = firstError ?? error;
    // A corrupted blob usually breaks the decompressor first: say what is really wrong.
    if (!signal.aborted && isCdhError(cause) && cause.code === 'IMAGE_LAYER_INVALID') {
      const got = await finishDigest(compressed, algorithmOf(layer.digest));
      if (got !== undefined && got !== layer.digest)
        throw new CdhError(
          'IMAGE_DIGEST_MISMATCH',
          `${layerLabel}: the blob's digest is ${got}, not the manifest's (${cause.message.slice(layerLabel.length + 2)})`,
        );
    }
    body.destroy();
    throw cause;
  }
  if (firstError !== undefined) throw firstError;
  // The tar may end before the stream does (trailing zeros): the digests cover every byte.
  await drain(uncompressed);
  if (firstError !== undefined) throw firstError;
  const gotCompressed = `${algorithmOf(layer.digest)}:${compressed.digest()}`;
  if (gotCompressed !== layer.digest || compressed.bytes !== layer.size)
    throw new CdhError(
      'IMAGE_DIGEST_MISMATCH',
      `${layerLabel}: the blob's digest is ${gotCompressed} (${compressed.bytes} bytes), not the manifest's`,
    );
  const gotDiff = `${algorithmOf(diffId)}:${uncompressed.digest()}`;
  if (gotDiff !== diffId)
    throw new CdhError(
      'IMAGE_DIGEST_MISMATCH',
      `${layerLabel}: the uncompressed tar's digest is ${gotDiff}, not the config's diff_id ${diffId}`,
    );
  return stats;
}

/** Reads the rest of the compressed stream (bounded by the manifest size) for its digest. */
function finishDigest(compressed: Digester, algorithm: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    if (compressed.readableEnded) return resolve(`${algorithm}:${compressed.digest()}`);
    if (compressed.destroyed) return resolve(undefined);
    const timer = setTimeout(() => resolve(undefined), 30_000);
    compressed.unpipe();
    compressed.on('error', () => {
      clearTimeout(timer);
      resolve(undefined);
    });
    compressed.on('end', () => {
      clearTimeout(timer);
      resolve(`${algorithm}:${compressed.digest()}`);
    });
    compressed.resume();
  });
}

function drain(stream: Readable): Promise<void> {
  return new Promise((resolve, reject) => {
    if (stream.readableEnded) return resolve();
    stream.on('end', resolve);
    stream.on('error', reject);
    stream.resume();
  });
}

function algorithmOf(digest: string): string {
  return digest.slice(0, digest.indexOf(':'));
}
