import type { Logger } from 'pino';
import type { ImageSettings } from '../config/types';
import { CdhError } from '../errors';
import type { CallContext } from '../providers/types';
import { LookasideConfig } from './lookaside';
import { parseRequirements, type Requirement } from './policy-parse';
import { quote, referenceString, type ImageReference } from './reference';
import type { ResourceReads } from './resources';
import { scopeCandidates } from './scopes';
import { cosignProblems, type SignatureSource } from './sigstore';
import { fetchSignatures, verifySignature } from './simple-signing';

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

  /** The policy and lookaside config of `settings`, every resource read through `reads`. */
  static async load(settings: ImageSettings, reads: ResourceReads, logger: Logger): Promise<ImagePolicy> {
    const sigstoreTexts: Array<{ text: string; source: string }> = [];
    if (settings.sigstoreConfigUri !== '')
      sigstoreTexts.push({
        text: (await reads.read(settings.sigstoreConfigUri, 'sigstore_config_uri')).toString('utf8'),
        source: quote(settings.sigstoreConfigUri),
      });
    else if (settings.sigstoreConfig !== '')
      sigstoreTexts.push({ text: settings.sigstoreConfig, source: 'sigstore_config' });
    const lookaside = LookasideConfig.parse(sigstoreTexts);
    let text = settings.imageSecurityPolicy;
    let source = 'image_security_policy';
    if (settings.imageSecurityPolicyUri !== '') {
      source = quote(settings.imageSecurityPolicyUri);
      text = (await reads.read(settings.imageSecurityPolicyUri, 'image_security_policy_uri')).toString(
        'utf8',
      );
    }
    if (text === '') return new ImagePolicy(undefined, new Map(), lookaside, logger);
    const { defaults, scopes } = await parsePolicy(text, source, reads);
    return new ImagePolicy(defaults, scopes, lookaside, logger);
  }

  /** Throws IMAGE_POLICY_REJECTED unless every requirement of the image's scope holds. */
  async check(
    ref: ImageReference,
    manifestDigest: string,
    indexDigest: string | undefined,
    ctx: CallContext,
    signatures?: SignatureSource,
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
        case 'sigstoreUnsupported':
          throw new CdhError(
            'IMAGE_UNSUPPORTED',
            `image ${quote(name)}: ${where} of the policy requires sigstoreSigned (cosign) in a form this daemon cannot check offline: ${req.why}`,
          );
        case 'sigstoreSigned':
          await this.checkSigstore(req, ref, manifestDigest, indexDigest, where, signatures);
          break;
        case 'signedBy':
          await this.checkSignedBy(req, ref, manifestDigest, indexDigest, where, ctx);
          break;
      }
    }
  }

  /** cosign: one signature in the `sha256-<hex>.sig` tag of the platform manifest or the index. */
  private async checkSigstore(
    req: Extract<Requirement, { type: 'sigstoreSigned' }>,
    ref: ImageReference,
    manifestDigest: string,
    indexDigest: string | undefined,
    where: string,
    signatures: SignatureSource | undefined,
  ): Promise<void> {
    const reject = (why: string): never => {
      throw new CdhError(
        'IMAGE_POLICY_REJECTED',
        `image ${quote(referenceString(ref))}: ${where} requires a sigstoreSigned (cosign) signature by ${req.source}: ${why}`,
      );
    };
    if (signatures === undefined) return reject('no registry to read signatures from');
    const reasons: string[] = [];
    for (const digest of indexDigest === undefined ? [manifestDigest] : [manifestDigest, indexDigest]) {
      const problems = await cosignProblems(signatures, digest, req.key, req.identity, ref);
      if (problems.length === 0) return;
      reasons.push(...problems);
    }
    reject(reasons.join('; ').slice(0, 600));
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

async function parsePolicy(
  text: string,
  source: string,
  reads: ResourceReads,
): Promise<{ defaults: readonly Requirement[]; scopes: Map<string, readonly Requirement[]> }> {
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
  const defaults =
    (await parseRequirements(raw.default, 'default', bad, reads)) ?? bad('"default" is required');
  const scopes = new Map<string, readonly Requirement[]>();
  const transports = (raw.transports ?? {}) as Record<string, unknown>;
  if (typeof transports !== 'object' || transports === null) bad('"transports" is not an object');
  const docker = transports['docker'] as Record<string, unknown> | undefined;
  if (docker !== undefined) {
    if (typeof docker !== 'object' || docker === null) bad('"transports.docker" is not an object');
    for (const [scope, reqs] of Object.entries(docker)) {
      const where = `transports.docker[${JSON.stringify(scope)}]`;
      scopes.set(scope, (await parseRequirements(reqs, where, bad, reads)) ?? []);
    }
  }
  return { defaults, scopes };
}
