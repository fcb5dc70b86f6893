import type { Logger } from 'pino';
import { DATA_KEY_BYTES, decryptData, wipe } from '../crypto/wrap';
import { CdhError, isCdhError } from '../errors';
import type { ProviderRegistry } from '../providers/registry';
import type { CallContext, ResourceReader } from '../providers/types';
import type { AnnotationPacket } from './packet';
import { parseAnnotationPacket } from './packet';
import { encodeKeyUnwrapResults, parseKeyUnwrapRequest } from './protocol';
import { isJsonObject } from './json';
import { quoteUntrusted } from '../lib/untrusted';

export interface KeyUnwrapperDeps {
  /** The KBC: KEKs of `provider: kbs` packets are KBS resources named by `kid`. */
  readonly kbc: ResourceReader;
  /** Decrypters of every other provider (`aliyun`, ...), as for envelope secrets. */
  readonly registry: ProviderRegistry;
  readonly logger: Logger;
}

/**
 * Unwraps ocicrypt layer keys (UnWrapKey): an annotation packet in, the layer's private
 * options JSON out. The caller wipes the answer.
 */
export class KeyUnwrapper {
  constructor(private readonly deps: KeyUnwrapperDeps) {}

  /** The whole UnWrapKey exchange: keyunwrap request JSON → keyunwrapresults JSON. */
  async handleRequest(request: Uint8Array, ctx: CallContext): Promise<Buffer> {
    const optsdata = await this.unwrapPacket(parseKeyUnwrapRequest(request), ctx);
    try {
      return encodeKeyUnwrapResults(optsdata);
    } finally {
      wipe(optsdata);
    }
  }

  /** One packet (its JSON bytes) → the layer options JSON. */
  async unwrapPacket(packetBytes: Uint8Array, ctx: CallContext): Promise<Buffer> {
    const packet = parseAnnotationPacket(packetBytes);
    this.deps.logger.debug({ provider: packet.provider, kid: packet.kid }, 'unwrapping a layer key');
    const optsdata =
      packet.provider === 'kbs'
        ? await this.unwrapWithKek(packet, ctx)
        : await this.unwrapWithKms(packet, ctx);
    checkLayerOptions(optsdata, packet);
    return optsdata;
  }

  private async unwrapWithKek(packet: AnnotationPacket, ctx: CallContext): Promise<Buffer> {
    // The parser made sure both are present for provider kbs.
    const wrapType = packet.wrapType as NonNullable<AnnotationPacket['wrapType']>;
    const iv = packet.iv as Buffer;
    const kek = await this.deps.kbc.getResource(packet.kid, ctx);
    try {
      if (kek.length !== DATA_KEY_BYTES) {
        throw new CdhError(
          'DATA_KEY_INVALID',
          `the KEK ${quoteUntrusted(packet.kid)} is ${kek.length} bytes; wrap_type ${wrapType} needs a ${DATA_KEY_BYTES}-byte key`,
        );
      }
      return decryptData(wrapType, kek, iv, packet.wrappedData);
    } catch (error) {
      if (isCdhError(error) && error.code === 'DECRYPTION_FAILED') {
        throw new CdhError(
          'DECRYPTION_FAILED',
          `annotation packet: ${wrapType} authentication of wrapped_data failed with the KEK ${quoteUntrusted(packet.kid)} (wrong KEK, tampered wrapped_data or iv)`,
        );
      }
      if (isCdhError(error) && error.code === 'PAYLOAD_INVALID') {
        throw new CdhError(
          'ANNOTATION_PACKET_INVALID',
          `annotation packet: wrapped_data is shorter than the ${wrapType} tag`,
        );
      }
      throw error;
    } finally {
      wipe(kek);
    }
  }

  private async unwrapWithKms(packet: AnnotationPacket, ctx: CallContext): Promise<Buffer> {
    const decrypter = await this.deps.registry.decrypter(packet.provider, packet.providerSettings);
    return decrypter.decrypt(packet.wrappedData, packet.kid, packet.annotations, ctx);
  }
}

/**
 * The unwrapped bytes must be ocicrypt's private layer options (a JSON object): A256CTR has no
 * integrity, so a wrong KEK shows only here. The message says nothing of the bytes.
 */
function checkLayerOptions(optsdata: Buffer, packet: AnnotationPacket): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(optsdata));
  } catch {
    parsed = undefined;
  }
  if (!isJsonObject(parsed)) {
    wipe(optsdata);
    throw new CdhError(
      'DECRYPTION_FAILED',
      `annotation packet: what ${packet.provider} unwrapped for ${quoteUntrusted(packet.kid)} is not layer options JSON (wrong key?)`,
    );
  }
}
