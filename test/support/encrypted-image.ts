import { execFile } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadJose } from '../../src/kbc/jwe';
import { runCli } from './cli';
import { SECRET_BIN } from './daemon';
import { sha256 } from './oci-image';

/**
 * Encrypted images whose ciphertext no code of ours produced: Debian's skopeo encrypts with a
 * `jwe:` key (ocicrypt's own AES_256_CTR_HMAC_SHA256 layer cipher), the test's RSA key opens
 * each layer's JWE annotation to get the layer options, and those options are wrapped into
 * `provider.attestation-agent` packets (the JWE annotation removed). Blobs stay byte for byte.
 */

const run = promisify(execFile);

export const ENC_JWE = 'org.opencontainers.image.enc.keys.jwe';
export const ENC_AA = 'org.opencontainers.image.enc.keys.provider.attestation-agent';
export const ENC_PUBOPTS = 'org.opencontainers.image.enc.pubopts';

export interface RsaRecipient {
  readonly publicPem: string;
  readonly privateKey: KeyObject;
}

/** An RSA key pair; the public half written as PEM for `--encryption-key jwe:<file>`. */
export function rsaRecipient(dir: string): RsaRecipient {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const publicPem = join(dir, 'jwe-pub.pem');
  writeFileSync(publicPem, publicKey.export({ type: 'spki', format: 'pem' }));
  return { publicPem, privateKey };
}

export interface SkopeoEncryptOptions {
  /** `--encrypt-layer` indexes (default: every layer). */
  readonly layers?: readonly number[];
  readonly zstd?: boolean;
}

/** `skopeo copy --encryption-key jwe:… oci:<from>:<tag> oci:<to>:<tag>` */
export async function skopeoEncrypt(
  from: string,
  to: string,
  tag: string,
  recipient: RsaRecipient,
  options: SkopeoEncryptOptions = {},
): Promise<void> {
  const args = ['copy', '--quiet', '--encryption-key', `jwe:${recipient.publicPem}`];
  for (const i of options.layers ?? []) args.push('--encrypt-layer', String(i));
  if (options.zstd) args.push('--dest-compress-format', 'zstd');
  await run('skopeo', [...args, `oci:${from}:${tag}`, `oci:${to}:${tag}`], { timeout: 120_000 });
}

interface Layout {
  index: { manifests: Array<{ digest: string; size: number; annotations?: Record<string, string> }> };
  entry: { digest: string; size: number };
  manifest: {
    layers: Array<{ mediaType: string; digest: string; size: number; annotations?: Record<string, string> }>;
  } & Record<string, unknown>;
}

function readLayout(layout: string, tag: string): Layout {
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as Layout['index'];
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!entry) throw new Error(`no ${tag} in ${layout}`);
  const manifest = JSON.parse(readFileSync(blobPath(layout, entry.digest), 'utf8')) as Layout['manifest'];
  return { index, entry, manifest };
}

function writeManifest(layout: string, l: Layout): string {
  const bytes = Buffer.from(JSON.stringify(l.manifest));
  const digest = sha256(bytes);
  writeFileSync(blobPath(layout, digest), bytes);
  l.entry.digest = digest;
  l.entry.size = bytes.length;
  writeFileSync(join(layout, 'index.json'), JSON.stringify(l.index));
  return digest;
}

export function blobPath(layout: string, digest: string): string {
  return join(layout, 'blobs', 'sha256', digest.slice('sha256:'.length));
}

/** The layer options skopeo wrapped for the recipient: the JWE (flattened JSON) opened with its key. */
export async function openJweAnnotation(value: string, recipient: RsaRecipient): Promise<Buffer> {
  const { flattenedDecrypt } = await loadJose();
  const jwe = JSON.parse(Buffer.from(value, 'base64').toString('utf8')) as Parameters<
    typeof flattenedDecrypt
  >[0];
  const { plaintext } = await flattenedDecrypt(jwe, recipient.privateKey, {
    keyManagementAlgorithms: ['RSA-OAEP'],
    contentEncryptionAlgorithms: ['A256GCM'],
  });
  return Buffer.from(plaintext);
}

/** Wraps one layer's options into annotation packets (their JSON bytes), as a sealing tool would. */
export type PacketWrapper = (optsdata: Buffer) => Promise<Buffer[]>;

/**
 * The keywrap request an image-encryption tool sends its key provider: Go ocicrypt puts the
 * options in base64, ocicrypt-rs as the raw JSON text.
 */
export function keywrapRequest(optsdata: Buffer, style: 'go' | 'rust'): string {
  return JSON.stringify({
    op: 'keywrap',
    keywrapparams: {
      ec: {
        Parameters: { 'attestation-agent': [Buffer.from('enc').toString('base64')] },
        DecryptConfig: { Parameters: {} },
      },
      optsdata: style === 'go' ? optsdata.toString('base64') : optsdata.toString('utf8'),
    },
    keyunwrapparams: { dc: null, annotation: null },
  });
}

/**
 * `secret keyprovider PROVIDER-FLAGS` as ocicrypt's `cmd` provider: the request on stdin, the
 * `{"keywrapresults":{"annotation":[…]}}` answer on stdout.
 */
export function secretKeyprovider(
  flags: readonly string[],
  style: 'go' | 'rust',
  env: Record<string, string> = {},
): PacketWrapper {
  return async (optsdata) => {
    const result = await runCli(SECRET_BIN, ['keyprovider', ...flags], {
      input: keywrapRequest(optsdata, style),
      env,
      timeoutMs: 60_000,
    });
    if (result.code !== 0) throw new Error(`secret keyprovider exited ${result.code}: ${result.stderr}`);
    const answer = JSON.parse(result.stdout) as { keywrapresults?: { annotation?: unknown } };
    const annotation = answer.keywrapresults?.annotation;
    if (!Array.isArray(annotation)) throw new Error('secret keyprovider answered no annotation bytes');
    return [Buffer.from(annotation as number[])];
  };
}

export interface Rewrapped {
  /** The options JSON of every encrypted layer (to look for in logs: must never appear). */
  readonly options: string[];
  /** Digests of the encrypted layers, in manifest order. */
  readonly encryptedLayers: string[];
}

/**
 * Replaces each layer's JWE key with `provider.attestation-agent` packets (comma list of
 * base64, as ocicrypt writes it) and re-tags the edited manifest. `extraPackets` go first
 * (packets this daemon cannot unwrap, to check that the next one is tried).
 */
export async function rewrapLayout(
  layout: string,
  tag: string,
  recipient: RsaRecipient,
  wrap: PacketWrapper,
  extraPackets: readonly Buffer[] = [],
): Promise<Rewrapped> {
  const l = readLayout(layout, tag);
  const options: string[] = [];
  const encryptedLayers: string[] = [];
  for (const layer of l.manifest.layers) {
    const jwe = layer.annotations?.[ENC_JWE];
    if (jwe === undefined || layer.annotations === undefined) continue;
    const optsdata = await openJweAnnotation(jwe, recipient);
    options.push(optsdata.toString('utf8'));
    encryptedLayers.push(layer.digest);
    const packets = [...extraPackets, ...(await wrap(optsdata))];
    delete layer.annotations[ENC_JWE];
    layer.annotations[ENC_AA] = packets.map((p) => p.toString('base64')).join(',');
  }
  writeManifest(layout, l);
  return { options, encryptedLayers };
}

/**
 * Flips one byte of layer `digest`'s blob and re-publishes it under its new digest (manifest
 * edited), so the registry's digest check passes and only the HMAC can tell.
 */
export function tamperLayer(layout: string, tag: string, digest: string): string {
  const l = readLayout(layout, tag);
  const layer = l.manifest.layers.find((x) => x.digest === digest);
  if (!layer) throw new Error(`no layer ${digest}`);
  const blob = Buffer.from(readFileSync(blobPath(layout, digest)));
  const at = Math.floor(blob.length / 2);
  blob[at] = (blob[at] as number) ^ 0x01;
  const tampered = sha256(blob);
  writeFileSync(blobPath(layout, tampered), blob);
  layer.digest = tampered;
  writeManifest(layout, l);
  return tampered;
}

/** Gives layer `index` another diff_id in the image config (config blob and manifest re-written). */
export function replaceDiffId(layout: string, tag: string, index: number, diffId: string): void {
  const l = readLayout(layout, tag);
  const descriptor = l.manifest['config'] as { digest: string; size: number };
  const config = JSON.parse(readFileSync(blobPath(layout, descriptor.digest), 'utf8')) as {
    rootfs: { diff_ids: string[] };
  };
  config.rootfs.diff_ids[index] = diffId;
  const bytes = Buffer.from(JSON.stringify(config));
  descriptor.digest = sha256(bytes);
  descriptor.size = bytes.length;
  writeFileSync(blobPath(layout, descriptor.digest), bytes);
  writeManifest(layout, l);
}
