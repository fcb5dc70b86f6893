import { readFile } from 'node:fs/promises';
import { CdhError, isCdhError } from '../errors';
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
): Promise<Buffer> {
  if (uri.startsWith('kbs://') || /^kbs\+[\w-]+:\/\//.test(uri)) {
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
  try {
    const data = await readFile(path);
    if (data.length > MAX_RESOURCE_BYTES)
      throw new CdhError(
        'IMAGE_SETTINGS_INVALID',
        `${what} ${quote(uri)}: larger than ${MAX_RESOURCE_BYTES} bytes`,
      );
    return data;
  } catch (error) {
    if (isCdhError(error)) throw error;
    throw new CdhError(
      'IMAGE_SETTINGS_INVALID',
      `${what} ${quote(uri)}: cannot read ${quote(path)} (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
}
