import { readFileSync } from 'node:fs';
import { wipe } from '../crypto/wrap';
import { CdhError } from '../errors';
import { MAX_REQUEST_BYTES } from '../keyprovider/protocol';
import { answerKeyWrap, KekPacketSealer, KmsPacketSealer, type PacketSealer } from '../keyprovider/wrap';
import { errnoCode } from '../lib/errno';
import { UsageError } from './args';
import type { KeyproviderRequest, KeyproviderWrapping } from './keyprovider-args';
import { listenTarget, serveKeyProvider } from './keyprovider-server';
import { noDeadline, openAliEncrypter } from './secret-commands';

/**
 * `secret keyprovider`: the image owner's key provider for ocicrypt. Without --listen it is
 * ocicrypt's `cmd` provider (one keywrap request on stdin, its answer on stdout); with it, a
 * gRPC KeyProviderService serving WrapKey until SIGTERM.
 */
export async function runKeyprovider(request: KeyproviderRequest): Promise<void> {
  if (request.listen !== undefined) listenTarget(request.listen); // a bad address before any file is read
  const sealer = await openSealer(request.wrapping);
  try {
    if (request.listen === undefined) await answerStdin(sealer);
    else await serveKeyProvider(request.listen, sealer);
  } finally {
    await sealer.close();
  }
}

async function openSealer(wrapping: KeyproviderWrapping): Promise<PacketSealer> {
  if (wrapping.kind === 'kbs') {
    const kek = readKek(wrapping.kekFile);
    try {
      return new KekPacketSealer(wrapping.kid, kek);
    } finally {
      wipe(kek);
    }
  }
  const ali = await openAliEncrypter(wrapping.access);
  return new KmsPacketSealer({
    provider: 'aliyun',
    providerSettings: ali.providerSettings,
    keyId: wrapping.keyId,
    encrypter: ali.encrypter,
    close: () => ali.close(),
  });
}

/** The KEK file: the 32 raw key bytes, as the KBS resource holds them. */
function readKek(path: string): Buffer {
  let kek: Buffer;
  try {
    kek = readFileSync(path);
  } catch (error) {
    throw new UsageError(`--kek-file: cannot read ${path} (${errnoCode(error)})`);
  }
  if (kek.length !== 32) {
    const length = kek.length;
    wipe(kek);
    throw new UsageError(`--kek-file: ${path} holds ${length} bytes; a KEK is 32 raw bytes`);
  }
  return kek;
}

async function answerStdin(sealer: PacketSealer): Promise<void> {
  const request = await readStdin(MAX_REQUEST_BYTES);
  let answer: Buffer;
  try {
    answer = await answerKeyWrap(request, sealer, noDeadline());
  } finally {
    wipe(request);
  }
  await new Promise<void>((resolve, reject) =>
    process.stdout.write(Buffer.concat([answer, Buffer.from('\n')]), (error) =>
      error ? reject(error) : resolve(),
    ),
  );
}

/** All of stdin, refusing (and no longer reading) more than `maxBytes`. */
async function readStdin(maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      total += chunk.length;
      if (total > maxBytes) {
        throw new CdhError(
          'KEYPROVIDER_REQUEST_INVALID',
          `key-provider request on stdin is more than the ${maxBytes} bytes accepted`,
        );
      }
    }
    if (total === 0)
      throw new CdhError('KEYPROVIDER_REQUEST_INVALID', 'key-provider request on stdin is empty');
    return Buffer.concat(chunks);
  } finally {
    for (const chunk of chunks) wipe(chunk);
  }
}
