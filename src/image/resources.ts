import { open } from 'node:fs/promises';
import { CdhError, isCdhError } from '../errors';
import { fileFingerprint } from '../lib/file-fingerprint';
import type { CallContext, ResourceReader } from '../providers/types';
import { quote } from './reference';

const MAX_RESOURCE_BYTES = 4 * 1024 * 1024;

/**
 * Reads an [image] resource: `kbs://…` through the KBC, `file:///abs` or a bare path from disk
 * (as upstream: a value without `://` is a file path). `what` names the key in errors.
 */
export async function readImageResource(
  uri: string,
  what: string,
  kbc: ResourceReader | undefined,
  ctx: CallContext,
  reads?: ResourceReads,
): Promise<Buffer> {
  if (isKbsUri(uri)) {
    if (reads) reads.remote = true;
    if (!kbc)
      throw new CdhError(
        'IMAGE_SETTINGS_INVALID',
        `${what} ${quote(uri)}: no KBC is configured to read kbs:// resources`,
      );
    try {
      return await kbc.getResource(uri, ctx);
    } catch (error) {
      if (isCdhError(error))
        throw new CdhError(error.code, `${what} ${quote(uri)}: ${error.message}`, { cause: error });
      throw error;
    }
  }
  let path: string;
  if (uri.startsWith('file://')) path = decodeURIComponent(new URL(uri).pathname);
  else if (uri.includes('://'))
    throw new CdhError(
      'IMAGE_SETTINGS_INVALID',
      `${what} ${quote(uri)}: unsupported scheme (kbs://, file:// or a path)`,
    );
  else path = uri;
  if (reads) reads.files.set(path, await fileFingerprint(path));
  try {
    return await readBounded(path, `${what} ${quote(uri)}`);
  } catch (error) {
    if (isCdhError(error)) throw error;
    throw new CdhError(
      'IMAGE_SETTINGS_INVALID',
      `${what} ${quote(uri)}: cannot read ${quote(path)} (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
}

async function readBounded(path: string, what: string): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    if (size > MAX_RESOURCE_BYTES)
      throw new CdhError('IMAGE_SETTINGS_INVALID', `${what}: larger than ${MAX_RESOURCE_BYTES} bytes`);
    const data = Buffer.alloc(size);
    const { bytesRead } = await handle.read(data, 0, size, 0);
    return data.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

function isKbsUri(uri: string): boolean {
  return uri.startsWith('kbs://') || /^kbs\+[\w-]+:\/\//.test(uri);
}

/** What a set of reads depended on: local files (with their fingerprints before reading) and any KBS resource. */
export class ResourceReads {
  readonly files = new Map<string, string>();
  remote = false;

  constructor(
    private readonly kbc: ResourceReader | undefined,
    private readonly ctx: CallContext,
  ) {}

  read(uri: string, what: string): Promise<Buffer> {
    return readImageResource(uri, what, this.kbc, this.ctx, this);
  }

  /** True while every file read still has the same fingerprint and no KBS resource was read. */
  async unchanged(): Promise<boolean> {
    if (this.remote) return false;
    for (const [path, print] of this.files) if ((await fileFingerprint(path)) !== print) return false;
    return true;
  }
}
