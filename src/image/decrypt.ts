import { createDecipheriv, createHmac, timingSafeEqual, type Hmac } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CdhError, isCdhError } from '../errors';
import type { CallContext } from '../providers/types';
import { layerDigester, unpackCompressed } from './layer';
import type { LayerDescriptor } from './manifest';
import { unwrapLayerCipher, type LayerCipher, type LayerKeyUnwrapper } from './ocicrypt';
import type { UnpackStats } from './unpack';

/**
 * An encrypted layer (ocicrypt AES_256_CTR_HMAC_SHA256), authenticated before any of it is used:
 * 1. the key: the packets unwrapped through the daemon's own UnWrapKey path (before downloading);
 * 2. the ciphertext streamed into a staging file outside the layer directory, its digest and its
 *    HMAC-SHA256(symkey, ciphertext) computed on the way; both compared;
 * 3. only then the staged file is decrypted (AES-256-CTR, nonce = the initial counter block) and
 *    streamed through the decompressor and the diff_id digest into the tar unpacker.
 * A layer whose HMAC fails never has a single file unpacked. The staging file and the key are
 * removed / wiped whatever happens; a layer is never held whole in memory.
 */

export interface EncryptedLayerJob {
  readonly layer: LayerDescriptor;
  readonly diffId: string;
  readonly dir: string;
  /** A fresh path under the store's staging directory. */
  readonly stagingFile: string;
  readonly label: string;
  readonly signal: AbortSignal;
  /** The pull's caller (its deadline bounds the key unwrap). */
  readonly ctx: CallContext;
  /** Opens the blob download (called once the key is unwrapped). */
  fetch(signal: AbortSignal): Promise<Readable>;
}

export async function unpackEncrypted(
  job: EncryptedLayerJob,
  unwrapper: LayerKeyUnwrapper,
): Promise<UnpackStats> {
  const layerLabel = `${job.label}: layer ${job.layer.digest}`;
  const cipher = await unwrapLayerCipher(job.layer, unwrapper, layerLabel, job.ctx);
  try {
    await stageCiphertext(job, cipher, layerLabel);
    return await unpackStaged(job, cipher, layerLabel);
  } finally {
    cipher.wipe();
    await rm(job.stagingFile, { force: true }).catch(() => undefined);
  }
}

/** HMAC-SHA256 of what passes (encrypt-then-MAC over the whole ciphertext). */
class MacTap extends Transform {
  private readonly mac: Hmac;

  constructor(key: Buffer) {
    super();
    this.mac = createHmac('sha256', key);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.mac.update(chunk);
    callback(null, chunk);
  }

  matches(expected: Buffer): boolean {
    const got = this.mac.digest();
    return got.length === expected.length && timingSafeEqual(got, expected);
  }
}

async function stageCiphertext(
  job: EncryptedLayerJob,
  cipher: LayerCipher,
  layerLabel: string,
): Promise<void> {
  const { layer, signal } = job;
  const digester = layerDigester(layer, layerLabel);
  const mac = new MacTap(cipher.symkey);
  const body = await job.fetch(signal);
  try {
    await pipeline(body, digester, mac, createWriteStream(job.stagingFile, { mode: 0o600, flags: 'wx' }), {
      signal,
    });
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    if (isCdhError(error)) throw error;
    const e = error as NodeJS.ErrnoException;
    if (e.syscall !== undefined && e.path === job.stagingFile)
      throw new CdhError(
        'IMAGE_MOUNT_FAILED',
        `${layerLabel}: cannot stage the ciphertext (${e.code ?? 'error'})`,
      );
    throw new CdhError('IMAGE_REGISTRY_UNAVAILABLE', `${layerLabel}: download interrupted (${e.message})`);
  }
  const got = `${digester.algorithm}:${digester.digest()}`;
  if (got !== layer.digest || digester.bytes !== layer.size)
    throw new CdhError(
      'IMAGE_DIGEST_MISMATCH',
      `${layerLabel}: the blob's digest is ${got} (${digester.bytes} bytes), not the manifest's`,
    );
  if (!mac.matches(cipher.hmac))
    throw new CdhError(
      'IMAGE_LAYER_AUTH_FAILED',
      `${layerLabel}: the encrypted layer's HMAC does not match its pubopts (tampered layer or wrong key); nothing of it was unpacked`,
    );
}

/** The authenticated ciphertext, decrypted as it is read, into the decompressor and the unpacker. */
async function unpackStaged(
  job: EncryptedLayerJob,
  cipher: LayerCipher,
  layerLabel: string,
): Promise<UnpackStats> {
  const decipher = createDecipheriv('aes-256-ctr', cipher.symkey, cipher.nonce);
  const file = createReadStream(job.stagingFile);
  file.on('error', (error) => decipher.destroy(error));
  const plain = file.pipe(decipher);
  // Digest and HMAC were checked on the ciphertext; the diff_id check covers the tar.
  try {
    return await unpackCompressed(
      {
        stream: plain,
        inputError: (error) =>
          new CdhError(
            'IMAGE_MOUNT_FAILED',
            `${layerLabel}: cannot read the staged ciphertext (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
          ),
      },
      job.layer.compression,
      job.diffId,
      job.dir,
      layerLabel,
      job.signal,
    );
  } finally {
    file.destroy();
  }
}
