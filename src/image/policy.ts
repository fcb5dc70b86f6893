import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { request } from 'undici';
import type { ImageSettings } from '../config/image';
import { CdhError, isCdhError } from '../errors';
import { assertDialAllowed } from '../net-guard';
import type { CallContext, ResourceReader } from '../providers/types';
import { LookasideConfig } from './lookaside';
import { parseReference, quote, referenceString, repositoryName, type ImageReference } from './reference';
import { readImageResource } from './resources';
import { scopeCandidates } from './scopes';

// openpgp's type declarations are ESM-only; its CommonJS build is what runs here. Loaded only
// when a policy has a signedBy requirement.
type OpenPgp = typeof import('openpgp', { with: { 'resolution-mode': 'import' } });
type PublicKey = import('openpgp', { with: { 'resolution-mode': 'import' } }).PublicKey;
let openpgpModule: OpenPgp | undefined;
function pgp(): OpenPgp {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  openpgpModule ??= require('openpgp') as OpenPgp;
  return openpgpModule;
}

type Identity =
  | { type: 'matchExact' }
  | { type: 'matchRepoDigestOrExact' }
  | { type: 'matchRepository' }
  | { type: 'exactReference'; dockerReference: string }
  | { type: 'exactRepository'; dockerRepository: string }
  | { type: 'remapIdentity'; prefix: string; signedPrefix: string };

type Requirement =
  | { type: 'insecureAcceptAnything' }
  | { type: 'reject' }
  | { type: 'signedBy'; keys: PublicKey[]; identity: Identity; source: string }
  | { type: 'sigstoreSigned' };

const MAX_SIGNATURES = 16;
const MAX_SIGNATURE_BYTES = 256 * 1024;

/**
 * The image security policy (containers policy.json, docker transport): the requirements of the
 * most specific scope must all hold. Checked on every pull, cached layers or not.
 */
export class ImagePolicy {
  private warned = false;

  private constructor(
    private readonly defaults: readonly Requirement[] | undefined,
    private readonly scopes: ReadonlyMap<string, readonly Requirement[]>,
    private readonly lookaside: LookasideConfig,
    private readonly logger: Logger,
  ) {}

  static async load(
    settings: ImageSettings,
    kbc: ResourceReader | undefined,
    logger: Logger,
    ctx: CallContext,
  ): Promise<ImagePolicy> {
    let text: string | undefined;
    let source = '';
    if (settings.imageSecurityPolicyUri !== '') {
      source = quote(settings.imageSecurityPolicyUri);
      text = (
        await readImageResource(settings.imageSecurityPolicyUri, 'image_security_policy_uri', kbc, ctx)
      ).toString('utf8');
    } else if (settings.imageSecurityPolicy !== '') {
      source = 'image_security_policy';
      text = settings.imageSecurityPolicy;
    }
    const sigstoreTexts: Array<{ text: string; source: string }> = [];
    if (settings.sigstoreConfigUri !== '')
      sigstoreTexts.push({
        text: (await readImageResource(settings.sigstoreConfigUri, 'sigstore_config_uri', kbc, ctx)).toString(
          'utf8',
        ),
        source: quote(settings.sigstoreConfigUri),
      });
    else if (settings.sigstoreConfig !== '')
      sigstoreTexts.push({ text: settings.sigstoreConfig, source: 'sigstore_config' });
    const lookaside = LookasideConfig.parse(sigstoreTexts);
    if (text === undefined) return new ImagePolicy(undefined, new Map(), lookaside, logger);
    const bad = (why: string): never => {
      throw new CdhError('IMAGE_SETTINGS_INVALID', `image security policy ${source}: ${why}`);
    };
    let raw: { default?: unknown; transports?: unknown };
    try {
      raw = JSON.parse(text) as typeof raw;
    } catch {
      return bad('not JSON');
    }
    if (typeof raw !== 'object' || raw === null) bad('not a JSON object');
    const defaults = await parseRequirements(raw.default, 'default', bad, kbc, ctx);
    if (defaults === undefined) bad('"default" is required');
    const scopes = new Map<string, readonly Requirement[]>();
    const transports = (raw.transports ?? {}) as Record<string, unknown>;
    if (typeof transports !== 'object' || transports === null) bad('"transports" is not an object');
    const docker = transports['docker'] as Record<string, unknown> | undefined;
    if (docker !== undefined) {
      if (typeof docker !== 'object' || docker === null) bad('"transports.docker" is not an object');
      for (const [scope, reqs] of Object.entries(docker))
        scopes.set(
          scope,
          (await parseRequirements(reqs, `transports.docker[${JSON.stringify(scope)}]`, bad, kbc, ctx)) ?? [],
        );
    }
    return new ImagePolicy(defaults, scopes, lookaside, logger);
  }

  /** Throws IMAGE_POLICY_REJECTED unless every requirement of the image's scope holds. */
  async check(
    ref: ImageReference,
    manifestDigest: string,
    indexDigest: string | undefined,
    ctx: CallContext,
  ): Promise<void> {
    const name = referenceString(ref);
    if (this.defaults === undefined && this.scopes.size === 0) {
      if (!this.warned) {
        this.warned = true;
        this.logger.warn('no image security policy is configured: every image is accepted');
      }
      return;
    }
    let scope = '';
    let requirements = this.defaults;
    for (const candidate of scopeCandidates(ref)) {
      const found = this.scopes.get(candidate);
      if (found) {
        scope = candidate;
        requirements = found;
        break;
      }
    }
    if (!requirements && this.scopes.has('')) {
      requirements = this.scopes.get('');
      scope = '';
    }
    const where = scope === '' ? 'the default requirement' : `scope ${quote(scope)}`;
    if (!requirements)
      throw new CdhError(
        'IMAGE_POLICY_REJECTED',
        `image ${quote(name)}: the policy has no requirement for it`,
      );
    for (const req of requirements) {
      switch (req.type) {
        case 'insecureAcceptAnything':
          break;
        case 'reject':
          throw new CdhError(
            'IMAGE_POLICY_REJECTED',
            `image ${quote(name)}: rejected by ${where} of the policy`,
          );
        case 'sigstoreSigned':
          throw new CdhError(
            'IMAGE_UNSUPPORTED',
            `image ${quote(name)}: ${where} of the policy requires sigstoreSigned (cosign), which this daemon does not support`,
          );
        case 'signedBy':
          await this.checkSignedBy(req, ref, manifestDigest, indexDigest, where, ctx);
          break;
      }
    }
  }

  private async checkSignedBy(
    req: Extract<Requirement, { type: 'signedBy' }>,
    ref: ImageReference,
    manifestDigest: string,
    indexDigest: string | undefined,
    where: string,
    ctx: CallContext,
  ): Promise<void> {
    const name = referenceString(ref);
    const reject = (why: string): never => {
      throw new CdhError(
        'IMAGE_POLICY_REJECTED',
        `image ${quote(name)}: ${where} requires a signature by ${req.source}: ${why}`,
      );
    };
    const base = this.lookaside.baseFor(ref);
    if (base === undefined) reject('no lookaside (sigstore_config) location is configured for it');
    const digests = indexDigest === undefined ? [manifestDigest] : [manifestDigest, indexDigest];
    const reasons: string[] = [];
    for (const digest of digests) {
      const signatures = await fetchSignatures(base as string, ref, digest, ctx);
      for (const [i, sig] of signatures.entries()) {
        const why = await verifySignature(sig, req, ref, digest);
        if (why === undefined) return;
        reasons.push(`signature-${i + 1} of ${digest}: ${why}`);
      }
    }
    reject(reasons.length === 0 ? 'no signature found' : reasons.join('; ').slice(0, 600));
  }
}

async function parseRequirements(
  value: unknown,
  where: string,
  bad: (why: string) => never,
  kbc: ResourceReader | undefined,
  ctx: CallContext,
): Promise<Requirement[] | undefined> {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.length === 0) bad(`${where} must be a non-empty list of requirements`);
  const out: Requirement[] = [];
  for (const [i, r] of (value as unknown[]).entries()) {
    const req = r as Record<string, unknown>;
    const at = `${where}[${i}]`;
    switch (req?.['type']) {
      case 'insecureAcceptAnything':
      case 'reject':
      case 'sigstoreSigned':
        out.push({ type: req['type'] });
        break;
      case 'signedBy':
        out.push(await parseSignedBy(req, at, bad, kbc, ctx));
        break;
      default:
        bad(`${at}: unknown requirement type ${quote(String(req?.['type']))}`);
    }
  }
  return out;
}

async function parseSignedBy(
  req: Record<string, unknown>,
  at: string,
  bad: (why: string) => never,
  kbc: ResourceReader | undefined,
  ctx: CallContext,
): Promise<Requirement> {
  if (req['keyType'] !== 'GPGKeys') bad(`${at}: keyType must be "GPGKeys"`);
  const blobs: Array<{ data: Buffer; source: string }> = [];
  const paths: string[] = [];
  if (typeof req['keyPath'] === 'string') paths.push(req['keyPath']);
  if (Array.isArray(req['keyPaths']))
    for (const p of req['keyPaths']) if (typeof p === 'string') paths.push(p);
  for (const path of paths)
    blobs.push({ data: await readImageResource(path, `${at}.keyPath`, kbc, ctx), source: quote(path) });
  if (typeof req['keyData'] === 'string')
    blobs.push({ data: Buffer.from(req['keyData'], 'base64'), source: 'keyData' });
  if (blobs.length !== 1) bad(`${at}: exactly one of keyPath, keyPaths, keyData is needed`);
  const keys: PublicKey[] = [];
  for (const { data, source } of blobs) {
    try {
      const text = data.toString('utf8');
      const read = text.includes('-----BEGIN PGP PUBLIC KEY BLOCK-----')
        ? await pgp().readKeys({ armoredKeys: text })
        : await pgp().readKeys({ binaryKeys: data });
      for (const k of read) keys.push(k.toPublic());
    } catch (error) {
      bad(
        `${at}: ${source} holds no OpenPGP public keys (${String((error as Error).message).slice(0, 100)})`,
      );
    }
  }
  return {
    type: 'signedBy',
    keys,
    identity: parseIdentity(req['signedIdentity'], at, bad),
    source: blobs.map((b) => b.source).join(', '),
  };
}

function parseIdentity(value: unknown, at: string, bad: (why: string) => never): Identity {
  if (value === undefined) return { type: 'matchRepoDigestOrExact' };
  const v = value as Record<string, unknown>;
  switch (v?.['type']) {
    case 'matchExact':
    case 'matchRepoDigestOrExact':
    case 'matchRepository':
      return { type: v['type'] };
    case 'exactReference':
      if (typeof v['dockerReference'] !== 'string') bad(`${at}.signedIdentity needs dockerReference`);
      return { type: 'exactReference', dockerReference: v['dockerReference'] as string };
    case 'exactRepository':
      if (typeof v['dockerRepository'] !== 'string') bad(`${at}.signedIdentity needs dockerRepository`);
      return { type: 'exactRepository', dockerRepository: v['dockerRepository'] as string };
    case 'remapIdentity':
      if (typeof v['prefix'] !== 'string' || typeof v['signedPrefix'] !== 'string')
        bad(`${at}.signedIdentity needs prefix and signedPrefix`);
      return {
        type: 'remapIdentity',
        prefix: v['prefix'] as string,
        signedPrefix: v['signedPrefix'] as string,
      };
    default:
      return bad(`${at}.signedIdentity: unknown type ${quote(String(v?.['type']))}`);
  }
}

/** `<base>/<repository path>@<algo>=<hex>/signature-<n>` (no registry host, as skopeo writes it), n = 1… until the first missing one. */
async function fetchSignatures(
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
async function verifySignature(
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
  let parsed: {
    critical?: { type?: unknown; image?: Record<string, unknown>; identity?: Record<string, unknown> };
  };
  try {
    parsed = JSON.parse(payload.toString('utf8')) as typeof parsed;
  } catch {
    return 'its payload is not JSON';
  }
  const critical = parsed.critical;
  if (critical?.type !== 'atomic container signature') return 'not an atomic container signature';
  if (critical.image?.['docker-manifest-digest'] !== digest) return `signs another manifest digest`;
  const signed = critical.identity?.['docker-reference'];
  if (typeof signed !== 'string') return 'no docker-reference in the payload';
  return identityMatches(req.identity, ref, signed) ? undefined : `signed for ${quote(signed)}`;
}

function identityMatches(identity: Identity, ref: ImageReference, signedText: string): boolean {
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
