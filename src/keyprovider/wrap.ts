import { randomBytes } from 'node:crypto';
import { DATA_KEY_BYTES, encryptData, IV_BYTES, wipe } from '../crypto/wrap';
import { CdhError } from '../errors';
import { parseResourceUri } from '../kbc/uri';
import { quoteUntrusted } from '../lib/untrusted';
import type { CallContext, Encrypter, ProviderSettings } from '../providers/types';
import { PACKET_VERSION } from './packet';
import { encodeKeyWrapResults, parseKeyWrapRequest } from './protocol';

/**
 * The sealing side of ocicrypt's key-provider protocol (WrapKey): a layer's private options
 * JSON in, an annotation packet out, which the daemon's UnWrapKey takes back in the guest.
 */

/** Wraps one layer's options into an annotation packet (its JSON bytes). */
export interface PacketSealer {
  seal(optsdata: Uint8Array, ctx: CallContext): Promise<Buffer>;
  /** Wipes the key material and releases connections. */
  close(): Promise<void>;
}

/** The whole WrapKey exchange: keywrap request JSON → keywrapresults JSON. */
export async function answerKeyWrap(
  request: Uint8Array,
  sealer: PacketSealer,
  ctx: CallContext,
): Promise<Buffer> {
  const { optsdata } = parseKeyWrapRequest(request);
  try {
    return encodeKeyWrapResults(await sealer.seal(optsdata, ctx));
  } finally {
    wipe(optsdata);
  }
}

const WRAP_TYPE = 'A256GCM';

/**
 * A v1 packet (`kid`, `wrapped_data`, `iv`, `wrap_type`): the options AES-256-GCM-encrypted
 * under a KEK that the guest gets from the KBS as the resource `kid`.
 */
export class KekPacketSealer implements PacketSealer {
  private readonly kek: Buffer;
  private closed = false;

  /** `kek` is copied; the caller wipes its own buffer. */
  constructor(
    private readonly kid: string,
    kek: Uint8Array,
  ) {
    parseResourceUri(kid);
    if (kek.length !== DATA_KEY_BYTES)
      throw new CdhError(
        'DATA_KEY_INVALID',
        `the KEK for ${quoteUntrusted(kid)} is ${kek.length} bytes; ${WRAP_TYPE} needs ${DATA_KEY_BYTES} raw bytes`,
      );
    this.kek = Buffer.from(kek);
  }

  async seal(optsdata: Uint8Array): Promise<Buffer> {
    if (this.closed) throw new CdhError('SHUTTING_DOWN', 'the KEK sealer is closed');
    const iv = randomBytes(IV_BYTES[WRAP_TYPE]);
    const wrapped = encryptData(WRAP_TYPE, this.kek, iv, optsdata);
    return Buffer.from(
      JSON.stringify({
        kid: this.kid,
        wrapped_data: wrapped.toString('base64'),
        iv: iv.toString('base64'),
        wrap_type: WRAP_TYPE,
      }),
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    wipe(this.kek);
  }
}

export interface KmsPacketSealerOptions {
  /** The provider name the guest's registry knows (`aliyun`). */
  readonly provider: string;
  /** What the guest's provider is built from (no secrets: credentials stay in the guest's files). */
  readonly providerSettings: ProviderSettings;
  /** The KMS key; stored as the packet's `kid`. */
  readonly keyId: string;
  readonly encrypter: Encrypter;
  readonly close: () => void | Promise<void>;
}

/**
 * A v2 packet for a KMS provider: the options encrypted by the KMS itself (its Encrypt API),
 * with the annotations its Decrypter needs (for aliyun the `iv`).
 */
export class KmsPacketSealer implements PacketSealer {
  constructor(private readonly options: KmsPacketSealerOptions) {}

  async seal(optsdata: Uint8Array, ctx: CallContext): Promise<Buffer> {
    const { provider, providerSettings, keyId, encrypter } = this.options;
    const { ciphertext, annotations } = await encrypter.encrypt(optsdata, keyId, ctx);
    return Buffer.from(
      JSON.stringify({
        version: PACKET_VERSION,
        kid: keyId,
        wrapped_data: ciphertext.toString('base64'),
        provider,
        provider_settings: providerSettings,
        annotations,
      }),
    );
  }

  async close(): Promise<void> {
    await this.options.close();
  }
}
