import { createPublicKey, type KeyObject } from 'node:crypto';
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
  | { type: 'sigstoreSigned'; key: KeyObject; identity: Identity; source: string }
  /** A sigstoreSigned form this daemon cannot check offline (named when an image needs it). */
  | { type: 'sigstoreUnsupported'; why: string };

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
        out.push({ type: req['type'] });
        break;
      case 'sigstoreSigned':
        out.push(await parseSigstoreSigned(req, at, bad, reads));
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

const SIGSTORE_OFFLINE_ONLY = [
  'fulcio',
  'rekorPublicKeyPath',
  'rekorPublicKeyPaths',
  'rekorPublicKeyData',
  'rekorPublicKeyDatas',
  'pki',
  'keyPaths',
  'keyDatas',
];

/**
 * `sigstoreSigned` with one cosign public key (`keyPath` through the resources, or `keyData`:
 * base64 of the PEM as containers/image has it, or the PEM itself as upstream reads it).
 * Fulcio, Rekor, PKI and multi-key forms need services or data this guest does not have: they
 * are kept as unsupported and refused by name when an image's scope uses them.
 */
async function parseSigstoreSigned(
  req: Record<string, unknown>,
  at: string,
  bad: (why: string) => never,
  reads: ResourceReads,
): Promise<Requirement> {
  const offline = SIGSTORE_OFFLINE_ONLY.filter((k) => req[k] !== undefined);
  if (offline.length > 0)
    return {
      type: 'sigstoreUnsupported',
      why: `${at} uses ${offline.join(', ')} (Fulcio/Rekor/PKI or several keys)`,
    };
  const identity = parseIdentity(req['signedIdentity'], at, bad);
  let pem: Buffer;
  let source: string;
  if (typeof req['keyPath'] === 'string' && req['keyData'] === undefined) {
    pem = await reads.read(req['keyPath'], `${at}.keyPath`);
    source = quote(req['keyPath']);
  } else if (typeof req['keyData'] === 'string' && req['keyPath'] === undefined) {
    const data = req['keyData'];
    pem = data.trimStart().startsWith('-----BEGIN') ? Buffer.from(data) : Buffer.from(data, 'base64');
    source = 'keyData';
  } else return bad(`${at}: exactly one of keyPath, keyData is needed`);
  try {
    return { type: 'sigstoreSigned', key: cosignPublicKey(pem), identity, source };
  } catch (error) {
    return bad(
      `${at}: ${source} is not a usable cosign public key (${String((error as Error).message).slice(0, 100)})`,
    );
  }
}

/** A cosign public key (PEM): ECDSA P-256, as `cosign generate-key-pair` makes. */
export function cosignPublicKey(pem: Buffer): KeyObject {
  const key = createPublicKey(pem);
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1')
    throw new Error(`an ECDSA P-256 public key is needed, not ${key.asymmetricKeyType ?? 'this key'}`);
  return key;
}
