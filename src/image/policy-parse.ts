import { quote } from './reference';
import type { ResourceReads } from './resources';

// openpgp's type declarations are ESM-only; its CommonJS build is what runs here. Loaded only
// when a policy has a signedBy requirement.
type OpenPgp = typeof import('openpgp', { with: { 'resolution-mode': 'import' } });
export type PublicKey = import('openpgp', { with: { 'resolution-mode': 'import' } }).PublicKey;
let openpgpModule: OpenPgp | undefined;
export function pgp(): OpenPgp {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  openpgpModule ??= require('openpgp') as OpenPgp;
  return openpgpModule;
}

export type Identity =
  | { type: 'matchExact' }
  | { type: 'matchRepoDigestOrExact' }
  | { type: 'matchRepository' }
  | { type: 'exactReference'; dockerReference: string }
  | { type: 'exactRepository'; dockerRepository: string }
  | { type: 'remapIdentity'; prefix: string; signedPrefix: string };

export type Requirement =
  | { type: 'insecureAcceptAnything' }
  | { type: 'reject' }
  | { type: 'signedBy'; keys: PublicKey[]; identity: Identity; source: string }
  | { type: 'sigstoreSigned' };

export async function parseRequirements(
  value: unknown,
  where: string,
  bad: (why: string) => never,
  reads: ResourceReads,
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
        out.push(await parseSignedBy(req, at, bad, reads));
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
  reads: ResourceReads,
): Promise<Requirement> {
  if (req['keyType'] !== 'GPGKeys') bad(`${at}: keyType must be "GPGKeys"`);
  const blobs: Array<{ data: Buffer; source: string }> = [];
  const paths: string[] = [];
  if (typeof req['keyPath'] === 'string') paths.push(req['keyPath']);
  if (Array.isArray(req['keyPaths']))
    for (const p of req['keyPaths']) if (typeof p === 'string') paths.push(p);
  for (const path of paths)
    blobs.push({ data: await reads.read(path, `${at}.keyPath`), source: quote(path) });
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
