import { CdhError, isCdhError, type ErrorCode } from '../errors';
import { decodeStandardBase64 } from '../lib/base64';
import type { CallContext } from '../providers/types';
import { ENC_KEYS_ATTESTATION_AGENT, type LayerDescriptor, type LayerEncryption } from './manifest';
import { quote } from './reference';

/**
 * ocicrypt's layer options: the public ones (`…enc.pubopts`: cipher name, HMAC) and the private
 * ones (symkey, nonce, plaintext digest) unwrapped from a `provider.attestation-agent` packet.
 * Only AES_256_CTR_HMAC_SHA256 exists in ocicrypt (Go and Rust).
 */

/** The daemon's UnWrapKey path, called in-process: one packet's bytes → the private options JSON. */
export interface LayerKeyUnwrapper {
  unwrapPacket(packet: Uint8Array, ctx: CallContext): Promise<Buffer>;
}

export const LAYER_CIPHER = 'AES_256_CTR_HMAC_SHA256';
const SYMKEY_BYTES = 32;
const NONCE_BYTES = 16;
const HMAC_BYTES = 32;
const MAX_PACKETS = 32;
const MAX_OPTIONS_BYTES = 64 * 1024;

/** Key, nonce and expected MAC of one layer. `wipe()` once the layer is decrypted. */
export interface LayerCipher {
  readonly symkey: Buffer;
  readonly nonce: Buffer;
  readonly hmac: Buffer;
  wipe(): void;
}

type Bad = (why: string) => never;

function badFor(layerLabel: string): Bad {
  return (why) => {
    throw new CdhError('IMAGE_LAYER_OPTIONS_INVALID', `${layerLabel}: ${why}`);
  };
}

function jsonObject(bytes: Uint8Array, what: string, bad: Bad): Record<string, unknown> {
  if (bytes.length > MAX_OPTIONS_BYTES) bad(`${what} is larger than ${MAX_OPTIONS_BYTES} bytes`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    // JSON.parse's message quotes the text: it may be key material.
    return bad(`${what} is not UTF-8 JSON`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) bad(`${what} is not an object`);
  return parsed as Record<string, unknown>;
}

/** Strict base64; a failure is reported through `bad` (so it names the layer). */
function decode(text: string, what: string, bad: Bad): Buffer {
  try {
    return decodeStandardBase64(text, what, 'IMAGE_LAYER_OPTIONS_INVALID');
  } catch (error) {
    return bad(isCdhError(error) ? error.message : `${what} is not base64`);
  }
}

function base64Field(object: Record<string, unknown>, field: string, what: string, bad: Bad): Buffer {
  const value = object[field];
  if (typeof value !== 'string') return bad(`${what} field "${field}" is missing or not a string`);
  return decode(value, `${what} field "${field}"`, bad);
}

function cipherOptions(object: Record<string, unknown>, what: string, bad: Bad): Record<string, unknown> {
  const value = object['cipheroptions'] ?? {};
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    bad(`${what} field "cipheroptions" is not an object`);
  return value as Record<string, unknown>;
}

interface PublicOptions {
  readonly hmac: Buffer;
  readonly cipheroptions: Record<string, unknown>;
}

/** `pubopts`: base64 JSON `{"cipher","hmac","cipheroptions"}`; an absent one names no cipher (refused). */
export function parsePublicOptions(encryption: LayerEncryption, layerLabel: string): PublicOptions {
  const bad = badFor(layerLabel);
  if (encryption.pubopts === undefined)
    bad('the encrypted layer has no pubopts annotation (no cipher named)');
  const what = 'pubopts';
  const bytes = decode(encryption.pubopts as string, what, bad);
  const options = jsonObject(bytes, what, bad);
  const cipher = options['cipher'];
  if (cipher !== LAYER_CIPHER)
    throw new CdhError(
      'IMAGE_UNSUPPORTED',
      `${layerLabel}: layer cipher ${quote(String(cipher ?? ''))} is not supported (only ${LAYER_CIPHER})`,
    );
  const hmac = base64Field(options, 'hmac', what, bad);
  if (hmac.length === 0) bad('pubopts has an empty hmac (an unauthenticated layer is refused)');
  if (hmac.length !== HMAC_BYTES)
    bad(`pubopts has a ${hmac.length}-byte hmac, not ${HMAC_BYTES} (HMAC-SHA256)`);
  return { hmac, cipheroptions: cipherOptions(options, what, bad) };
}

/** The private options JSON (wiped here) with the public ones → the layer's cipher. */
export function layerCipher(optsdata: Buffer, pub: PublicOptions, layerLabel: string): LayerCipher {
  const bad = badFor(layerLabel);
  const owned: Buffer[] = [];
  try {
    const what = 'the unwrapped layer options';
    const options = jsonObject(optsdata, what, bad);
    const symkey = base64Field(options, 'symkey', what, bad);
    owned.push(symkey);
    if (symkey.length !== SYMKEY_BYTES)
      bad(`${what} hold a ${symkey.length}-byte symkey, not ${SYMKEY_BYTES}`);
    // As both ocicrypts: the nonce is looked up in the public options first.
    const source = 'nonce' in pub.cipheroptions ? pub.cipheroptions : cipherOptions(options, what, bad);
    const nonce = base64Field(source, 'nonce', `${what} cipheroptions`, bad);
    owned.push(nonce);
    if (nonce.length !== NONCE_BYTES) bad(`the layer nonce is ${nonce.length} bytes, not ${NONCE_BYTES}`);
    // `digest` is not checked (as image-rs): skopeo writes the source layer's digest even when it
    // recompressed the layer before encrypting it. The HMAC and the diff_id authenticate the layer.
    return {
      symkey,
      nonce,
      hmac: pub.hmac,
      wipe: () => {
        for (const b of owned) b.fill(0);
      },
    };
  } catch (error) {
    for (const b of owned) b.fill(0);
    throw error;
  } finally {
    optsdata.fill(0);
  }
}

/** The comma-separated packet list, each base64-decoded; bounded. */
export function packetList(encryption: LayerEncryption, layerLabel: string): Buffer[] {
  if (encryption.packets === undefined) {
    const others = encryption.otherSchemes.length > 0 ? ` (only ${encryption.otherSchemes.join(', ')})` : '';
    throw new CdhError(
      'IMAGE_LAYER_KEY_UNAVAILABLE',
      `${layerLabel}: the encrypted layer has no ${ENC_KEYS_ATTESTATION_AGENT} key${others}`,
    );
  }
  const entries = encryption.packets.split(',').filter((e) => e !== '');
  if (entries.length === 0) badFor(layerLabel)(`${ENC_KEYS_ATTESTATION_AGENT} is empty`);
  if (entries.length > MAX_PACKETS)
    badFor(layerLabel)(`${ENC_KEYS_ATTESTATION_AGENT} lists more than ${MAX_PACKETS} packets`);
  return entries.map((e, i) =>
    decodeStandardBase64(
      e,
      `${layerLabel}: packet ${i + 1} of ${ENC_KEYS_ATTESTATION_AGENT}`,
      'IMAGE_LAYER_OPTIONS_INVALID',
    ),
  );
}

/**
 * The layer's cipher: every packet tried in turn through the unwrapper, the first that unwraps
 * wins. None does: the status of the (last) unwrap failure, naming the layer.
 */
export async function unwrapLayerCipher(
  layer: LayerDescriptor,
  unwrapper: LayerKeyUnwrapper,
  layerLabel: string,
  ctx: CallContext,
): Promise<LayerCipher> {
  const encryption = layer.encryption as LayerEncryption;
  const pub = parsePublicOptions(encryption, layerLabel);
  const packets = packetList(encryption, layerLabel);
  const failures: string[] = [];
  let code: ErrorCode = 'INTERNAL';
  for (const [i, packet] of packets.entries()) {
    let optsdata: Buffer;
    try {
      optsdata = await unwrapper.unwrapPacket(packet, ctx);
    } catch (error) {
      if (ctx.signal.aborted) throw ctx.signal.reason;
      code = isCdhError(error) ? error.code : 'INTERNAL';
      failures.push(`packet ${i + 1}: ${isCdhError(error) ? error.message : 'unexpected failure'}`);
      continue;
    }
    return layerCipher(optsdata, pub, layerLabel);
  }
  const which = packets.length === 1 ? 'its key could not' : `none of its ${packets.length} keys could`;
  throw new CdhError(code, `${layerLabel}: ${which} be unwrapped (${failures.join('; ')})`);
}
