import { createHash, type Hash } from 'node:crypto';
import { PassThrough, Transform, type Readable, type TransformCallback } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { Decompress } from 'fzstd';
import { CdhError, isCdhError } from '../errors';
import type { Compression, LayerDescriptor } from './manifest';
import { unpackLayer, type UnpackStats } from './unpack';

/** Hashes what passes; refuses more bytes than `limit` (bounded work on a lying registry). */
export class Digester extends Transform {
  private readonly hash: Hash;
  bytes = 0;

  constructor(
    readonly algorithm: string,
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

/** The Digester of a downloaded layer: more bytes than the manifest says is IMAGE_DIGEST_MISMATCH. */
export function layerDigester(layer: LayerDescriptor, layerLabel: string): Digester {
  return new Digester(
    algorithmOf(layer.digest),
    layer.size,
    () =>
      new CdhError(
        'IMAGE_DIGEST_MISMATCH',
        `${layerLabel}: the registry sent more than the ${layer.size} bytes in the manifest`,
      ),
  );
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

/** The compressed blob's bytes as they reach the decoder. */
export interface CompressedInput {
  readonly stream: Readable;
  /** The blob's digest and size, checked on the way (a decrypted layer's were checked before). */
  readonly check?: { readonly digester: Digester; readonly digest: string; readonly size: number };
  /** The error for a failure of `stream` itself (the download, the staged file). */
  inputError(error: Error): CdhError;
}

/**
 * blob → compressed digest → decompress → diff_id digest → unpack into `dir`, streamed.
 * Both digests are compared at the end; on any failure the caller removes `dir`.
 */
export function unpackBlob(
  body: Readable,
  layer: LayerDescriptor,
  diffId: string,
  dir: string,
  label: string,
  signal: AbortSignal,
): Promise<UnpackStats> {
  const layerLabel = `${label}: layer ${layer.digest}`;
  const digester = layerDigester(layer, layerLabel);
  const input: CompressedInput = {
    stream: body,
    check: { digester, digest: layer.digest, size: layer.size },
    inputError: (error) =>
      new CdhError('IMAGE_REGISTRY_UNAVAILABLE', `${layerLabel}: download interrupted (${error.message})`),
  };
  return unpackCompressed(input, layer.compression, diffId, dir, layerLabel, signal);
}

/**
 * The streamed core: `input` → decoder → diff_id digest → tar unpack into `dir`. The tar may
 * end before the stream does (trailing zeros): both digests cover every byte.
 */
export async function unpackCompressed(
  input: CompressedInput,
  compression: Compression,
  diffId: string,
  dir: string,
  layerLabel: string,
  signal: AbortSignal,
): Promise<UnpackStats> {
  const uncompressed = new Digester(
    algorithmOf(diffId),
    Number.MAX_SAFE_INTEGER,
    () => new CdhError('INTERNAL', 'unreachable'),
  );
  const pipeline = wire(input, decoderFor(compression), uncompressed, compression, layerLabel, signal);
  let stats: UnpackStats;
  try {
    stats = await unpackLayer(uncompressed, dir, layerLabel, signal);
  } catch (error) {
    throw await pipeline.explain(error);
  }
  pipeline.rethrow();
  await drain(uncompressed);
  pipeline.rethrow();
  const { check } = input;
  const got = check && `${check.digester.algorithm}:${check.digester.digest()}`;
  if (check && (got !== check.digest || check.digester.bytes !== check.size))
    throw new CdhError(
      'IMAGE_DIGEST_MISMATCH',
      `${layerLabel}: the blob's digest is ${got} (${check.digester.bytes} bytes), not the manifest's`,
    );
  const gotDiff = `${algorithmOf(diffId)}:${uncompressed.digest()}`;
  if (gotDiff !== diffId)
    throw new CdhError(
      'IMAGE_DIGEST_MISMATCH',
      `${layerLabel}: the uncompressed tar's digest is ${gotDiff}, not the config's diff_id ${diffId}`,
    );
  return stats;
}

interface Wired {
  /** The first stage failure (else `error`), corrected to a digest mismatch when that is the cause. */
  explain(error: unknown): Promise<unknown>;
  rethrow(): void;
}

/** Pipes input → [digester →] decoder → uncompressed, remembering the first stage that failed. */
function wire(
  input: CompressedInput,
  decoder: Transform,
  uncompressed: Digester,
  compression: Compression,
  layerLabel: string,
  signal: AbortSignal,
): Wired {
  const { stream, check } = input;
  let firstError: unknown;
  const stage = (name: string) => (error: Error) => {
    if (firstError !== undefined) return;
    if (isCdhError(error) || signal.aborted) firstError = signal.aborted ? signal.reason : error;
    else if (name === 'input') firstError = input.inputError(error);
    else if (name === 'decoder')
      firstError = new CdhError(
        'IMAGE_LAYER_INVALID',
        `${layerLabel}: not valid ${compression} data (${error.message.slice(0, 120)})`,
      );
    else firstError = error;
  };
  stream.on('error', stage('input'));
  check?.digester.on('error', stage('digest'));
  decoder.on('error', stage('decoder'));
  uncompressed.on('error', stage('digest'));
  const forward = (from: Readable, to: Transform): void => {
    from.on('error', (error) => to.destroy(error));
    from.pipe(to);
  };
  if (check) {
    forward(stream, check.digester);
    forward(check.digester, decoder);
  } else forward(stream, decoder);
  forward(decoder, uncompressed);
  return {
    async explain(error) {
      const cause = firstError ?? error;
      // A corrupted blob usually breaks the decompressor first: say what is really wrong.
      if (!signal.aborted && isCdhError(cause) && cause.code === 'IMAGE_LAYER_INVALID' && check) {
        const got = await finishDigest(check.digester);
        if (got !== undefined && got !== check.digest) {
          stream.destroy();
          return new CdhError(
            'IMAGE_DIGEST_MISMATCH',
            `${layerLabel}: the blob's digest is ${got}, not the manifest's (${cause.message.slice(layerLabel.length + 2)})`,
          );
        }
      }
      stream.destroy();
      return cause;
    },
    rethrow() {
      if (firstError !== undefined) throw firstError;
    },
  };
}

/** Reads the rest of the compressed stream (bounded by the manifest size) for its digest. */
function finishDigest(compressed: Digester): Promise<string | undefined> {
  const algorithm = compressed.algorithm;
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

export function algorithmOf(digest: string): string {
  return digest.slice(0, digest.indexOf(':'));
}
