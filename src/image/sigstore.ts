import { createHash, verify, type KeyObject } from 'node:crypto';
import { CdhError, isCdhError } from '../errors';
import type { ImageReference } from './reference';
import type { RegistrySession } from './registry';
import { readLimited } from './registry';
import { signedPayloadProblem } from './simple-signing';
import type { Identity } from './policy-parse';

/** The cosign signature format (sigstore "simple signing" in the registry). */
export const COSIGN_PAYLOAD_MEDIA_TYPE = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const COSIGN_SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
const COSIGN_PAYLOAD = {
  type: 'cosign container image signature',
  name: 'a cosign container image signature',
};
const MAX_SIGNATURE_MANIFEST_BYTES = 256 * 1024;
const MAX_PAYLOAD_BYTES = 64 * 1024;
const MAX_SIGNATURE_LAYERS = 32;

/** Where signatures come from: the `sha256-<hex>.sig` tag of the image's own repository. */
export interface SignatureSource {
  /** The manifest tagged `tag`, or undefined when the registry has none. */
  manifest(tag: string): Promise<Buffer | undefined>;
  blob(digest: string, maxBytes: number): Promise<Buffer>;
}

export function registrySignatures(session: RegistrySession, label: string): SignatureSource {
  return {
    async manifest(tag) {
      try {
        const accept = [
          'application/vnd.oci.image.manifest.v1+json',
          'application/vnd.docker.distribution.manifest.v2+json',
        ];
        return (await session.getManifest(tag, accept, MAX_SIGNATURE_MANIFEST_BYTES)).body;
      } catch (error) {
        if (isCdhError(error) && error.code === 'IMAGE_NOT_FOUND') return undefined;
        throw error;
      }
    },
    async blob(digest, maxBytes) {
      const blob = await session.getBlob(digest, `signature payload ${digest}`, session.signal);
      return readLimited(blob.body, maxBytes, `${label}: signature payload ${digest}`);
    },
  };
}

/**
 * Why one cosign signature does not hold (undefined = it holds): the ECDSA signature over the
 * payload bytes, then the payload: type, the signed manifest digest, the identity.
 */
export function cosignPayloadProblem(
  payload: Buffer,
  signature: Buffer,
  key: KeyObject,
  digest: string,
  identity: Identity,
  ref: ImageReference,
): string | undefined {
  if (!verify('sha256', payload, key, signature)) return "does not verify with the policy's key";
  return signedPayloadProblem(payload, COSIGN_PAYLOAD, { digest, identity, ref });
}

interface SignatureLayer {
  mediaType?: unknown;
  digest?: unknown;
  size?: unknown;
  annotations?: Record<string, unknown>;
}

/** Reasons no signature of `digest` holds (empty = one holds). */
export async function cosignProblems(
  source: SignatureSource,
  digest: string,
  key: KeyObject,
  identity: Identity,
  ref: ImageReference,
): Promise<string[]> {
  const tag = `${digest.replace(':', '-')}.sig`;
  const body = await source.manifest(tag);
  if (body === undefined) return [`no ${tag}`];
  let layers: SignatureLayer[];
  try {
    layers = (JSON.parse(body.toString('utf8')) as { layers?: SignatureLayer[] }).layers ?? [];
  } catch {
    return [`${tag} is not JSON`];
  }
  if (!Array.isArray(layers)) return [`${tag} has no layers`];
  const reasons: string[] = [];
  for (const [i, layer] of layers.slice(0, MAX_SIGNATURE_LAYERS).entries()) {
    const why = await layerProblem(source, layer, digest, key, identity, ref);
    if (why === undefined) return [];
    reasons.push(`${tag} layer ${i + 1}: ${why}`);
  }
  return reasons.length > 0 ? reasons : [`${tag} holds no signature`];
}

async function layerProblem(
  source: SignatureSource,
  layer: SignatureLayer,
  digest: string,
  key: KeyObject,
  identity: Identity,
  ref: ImageReference,
): Promise<string | undefined> {
  if (layer.mediaType !== COSIGN_PAYLOAD_MEDIA_TYPE) return 'not a simple signing payload';
  const sig = layer.annotations?.[COSIGN_SIGNATURE_ANNOTATION];
  if (typeof sig !== 'string' || sig.length > 1024) return `no ${COSIGN_SIGNATURE_ANNOTATION} annotation`;
  if (typeof layer.digest !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(layer.digest))
    return 'bad payload digest';
  if (typeof layer.size !== 'number' || layer.size > MAX_PAYLOAD_BYTES) return 'payload too large';
  const payload = await source.blob(layer.digest, MAX_PAYLOAD_BYTES);
  if (`sha256:${createHash('sha256').update(payload).digest('hex')}` !== layer.digest)
    throw new CdhError(
      'IMAGE_DIGEST_MISMATCH',
      `signature payload ${layer.digest} does not match its digest`,
    );
  return cosignPayloadProblem(payload, Buffer.from(sig, 'base64'), key, digest, identity, ref);
}
