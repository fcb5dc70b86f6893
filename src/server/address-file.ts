import { closeSync, mkdirSync, openSync, readSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { StartupError } from './listener';

/**
 * Env naming a file where the daemon publishes the address it serves on (once serving; removed
 * on stop) and where `cdh-tool` looks first when no --socket is given. A container's HEALTHCHECK or a
 * unit's readiness check then follows `-c`, `--socket` and the config without repeating them.
 */
export const ADDRESS_FILE_ENV = 'CDH_ADDRESS_FILE';

/** An address is one short line; anything longer is not ours. */
const MAX_ADDRESS_FILE_BYTES = 512;

/** Writes `address` to `path` atomically (a reader sees the old file, none, or the whole new one). */
export function publishAddress(path: string, address: string): void {
  const temp = `${path}.${process.pid}.tmp`;
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    writeFileSync(temp, `${address}\n`, { mode: 0o644 });
    renameSync(temp, path);
  } catch (error) {
    try {
      unlinkSync(temp);
    } catch {
      // Never written.
    }
    throw new StartupError(
      `${ADDRESS_FILE_ENV}: cannot write ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    );
  }
}

export function withdrawAddress(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone.
  }
}

export class AddressFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AddressFileError';
  }
}

/**
 * The address a daemon published in `path`; undefined when there is no such file (no daemon
 * has published there, as in another container of the same image); AddressFileError naming the
 * file when it cannot be read or holds no address.
 */
export function readPublishedAddress(path: string): string | undefined {
  let text: string;
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const buffer = Buffer.alloc(MAX_ADDRESS_FILE_BYTES + 1);
    const length = readSync(fd, buffer, 0, buffer.length, 0);
    if (length > MAX_ADDRESS_FILE_BYTES)
      throw new AddressFileError(`${ADDRESS_FILE_ENV}: ${path} is larger than an address`);
    text = buffer.subarray(0, length).toString('utf8').trim();
  } catch (error) {
    if (error instanceof AddressFileError) throw error;
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    if (code === 'ENOENT') return undefined;
    throw new AddressFileError(`${ADDRESS_FILE_ENV}: cannot read ${path}: ${code}`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  // The client reports a wrong address well enough; this only rules out what is not one line.
  if (text === '' || /\s/.test(text) || [...text].some((c) => c.charCodeAt(0) < 0x20))
    throw new AddressFileError(`${ADDRESS_FILE_ENV}: ${path} does not hold an address`);
  return text;
}
