import { readFile } from 'node:fs/promises';
import { request } from 'undici';
import { CdhError, isCdhError } from '../errors';
import { assertDialAllowed } from '../net-guard';
import type { CallContext } from '../providers/types';
import { pgp, type Identity, type Requirement } from './policy-parse';
import { parseReference, quote, referenceString, repositoryName, type ImageReference } from './reference';

const MAX_SIGNATURES = 16;
const MAX_SIGNATURE_BYTES = 256 * 1024;

/** `<base>/<repository path>@<algo>=<hex>/signature-<n>` (no registry host, as skopeo writes it), n = 1… until the first missing one. */
export async function fetchSignatures(
  base: string,
  ref: ImageReference,
  digest: string,
  ctx: CallContext,
): Promise<Buffer[]> {
  const [algo, hex] = digest.split(':') as [string, string];
  const out: Buffer[] = [];
  for (let n = 1; n <= MAX_SIGNATURES; n++) {
    const url = `${base.replace(/\/+$/, '')}/${ref.repository}@${algo}=${hex}/signature-${n}`;
    const sig = await fetchOne(url, ctx);
    if (sig === undefined) break;
    out.push(sig);
  }
  return out;
}

async function fetchOne(url: string, ctx: CallContext): Promise<Buffer | undefined> {
  if (url.startsWith('file://')) {
    const path = decodeURIComponent(new URL(url).pathname);
    try {
      const data = await readFile(path);
      return data.length > MAX_SIGNATURE_BYTES ? undefined : data;
    } catch {
      return undefined;
    }
  }
  if (!url.startsWith('http://') && !url.startsWith('https://'))
    throw new CdhError('IMAGE_SETTINGS_INVALID', `lookaside ${quote(url)}: unsupported scheme`);
  const target = new URL(url);
  assertDialAllowed(target.hostname, 'signature lookaside');
  try {
    const response = await request(target, { method: 'GET', signal: ctx.signal, headersTimeout: 30_000 });
    if (response.statusCode === 404) {
      response.body.resume();
      return undefined;
    }
    if (response.statusCode !== 200) {
      response.body.resume();
      throw new CdhError(
        'IMAGE_REGISTRY_UNAVAILABLE',
        `lookaside ${quote(url)}: HTTP ${response.statusCode}`,
      );
    }
    const body = Buffer.from(await response.body.arrayBuffer());
    return body.length > MAX_SIGNATURE_BYTES ? undefined : body;
  } catch (error) {
    if (isCdhError(error)) throw error;
    if (ctx.signal.aborted) throw ctx.signal.reason;
    throw new CdhError('IMAGE_REGISTRY_UNAVAILABLE', `lookaside ${quote(url)} unreachable`, { cause: error });
  }
}

/** undefined when the signature is good for this image; else why not. */
export async function verifySignature(
  sig: Buffer,
  req: Extract<Requirement, { type: 'signedBy' }>,
  ref: ImageReference,
  digest: string,
): Promise<string | undefined> {
  let payload: Buffer;
  try {
    const message = await pgp().readMessage({ binaryMessage: sig });
    const result = await pgp().verify({
      message,
      verificationKeys: req.keys,
      format: 'binary',
      expectSigned: true,
    });
    payload = Buffer.from(result.data as Uint8Array);
  } catch (error) {
    return `does not verify with the policy's keys (${String((error as Error).message).slice(0, 120)})`;
  }
  return signedPayloadProblem(
    payload,
    { type: 'atomic container signature', name: 'an atomic container signature' },
    { digest, identity: req.identity, ref },
  );
}

/** What a signature's payload must say: the image's manifest digest, a reference the identity accepts. */
export interface SignedImage {
  readonly digest: string;
  readonly identity: Identity;
  readonly ref: ImageReference;
}

/**
 * Why a verified signature's JSON payload (containers/image "simple signing", which cosign
 * uses too) does not sign this image (undefined = it does): its `critical.type`, the signed
 * manifest digest, the signed docker-reference against the policy's identity.
 */
export function signedPayloadProblem(
  payload: Buffer,
  kind: { readonly type: string; readonly name: string },
  image: SignedImage,
): string | undefined {
  let parsed: {
    critical?: { type?: unknown; image?: Record<string, unknown>; identity?: Record<string, unknown> };
  };
  try {
    parsed = JSON.parse(payload.toString('utf8')) as typeof parsed;
  } catch {
    return 'its payload is not JSON';
  }
  const critical = parsed.critical;
  if (critical?.type !== kind.type) return `not ${kind.name}`;
  if (critical.image?.['docker-manifest-digest'] !== image.digest) return 'signs another manifest digest';
  const signed = critical.identity?.['docker-reference'];
  if (typeof signed !== 'string') return 'no docker-reference in the payload';
  return identityMatches(image.identity, image.ref, signed) ? undefined : `signed for ${quote(signed)}`;
}

export function identityMatches(identity: Identity, ref: ImageReference, signedText: string): boolean {
  let signed: ImageReference;
  try {
    signed = parseReference(signedText);
  } catch {
    return false;
  }
  const sameRepo = (a: ImageReference, b: ImageReference): boolean => repositoryName(a) === repositoryName(b);
  const exact = (a: ImageReference, b: ImageReference): boolean =>
    referenceString(a) === referenceString(b) && (a.tag !== undefined || a.digest !== undefined);
  switch (identity.type) {
    case 'matchExact':
      return ref.digest === undefined && exact(ref, signed);
    case 'matchRepoDigestOrExact':
      return ref.digest !== undefined ? sameRepo(ref, signed) : exact(ref, signed);
    case 'matchRepository':
      return sameRepo(ref, signed);
    case 'exactReference':
      try {
        return referenceString(parseReference(identity.dockerReference)) === referenceString(signed);
      } catch {
        return false;
      }
    case 'exactRepository':
      try {
        return sameRepo(parseReference(identity.dockerRepository), signed);
      } catch {
        return false;
      }
    case 'remapIdentity': {
      const text = referenceString(ref);
      if (!text.startsWith(identity.prefix))
        return ref.digest !== undefined ? sameRepo(ref, signed) : exact(ref, signed);
      let remapped: ImageReference;
      try {
        remapped = parseReference(identity.signedPrefix + text.slice(identity.prefix.length));
      } catch {
        return false;
      }
      return remapped.digest !== undefined ? sameRepo(remapped, signed) : exact(remapped, signed);
    }
  }
}
