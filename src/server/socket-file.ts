import { existsSync, lstatSync, mkdirSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { createConnection } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from 'pino';

/**
 * The Unix socket file: preparing its path, checking that the path still is the socket
 * bind() made, and the group named by socket_group.
 */

export class StartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StartupError';
  }
}

export class SocketReplacedError extends StartupError {}

/** The path must still be the socket bind() made: a socket, ours, with the mode asked for. */
export function checkOwnSocket(path: string, mode: number): void {
  const stat = lstatSync(path);
  const uid = process.geteuid?.();
  if (!stat.isSocket() || (uid !== undefined && stat.uid !== uid)) {
    throw new SocketReplacedError(
      `${path} was replaced by something else right after the daemon created it; ` +
        `refusing to serve (is the socket directory writable by others?)`,
    );
  }
  if ((stat.mode & 0o777) !== mode) {
    throw new StartupError(
      `config key "socket_mode": ${path} has mode ${(stat.mode & 0o777).toString(8)}, not ${mode.toString(8)}`,
    );
  }
}

/**
 * Creates the parent directory, replaces a stale socket (nobody listening) and refuses to
 * start when another daemon is listening or the path is not a socket.
 */
export async function prepareSocketPath(path: string, logger: Logger): Promise<void> {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  warnAboutWritableDirs(dir, logger);
  if (!existsSync(path)) return;
  const stat = lstatSync(path);
  if (!stat.isSocket()) throw new StartupError(`${path} exists and is not a socket; refusing to replace it`);
  if (await someoneListens(path)) {
    throw new StartupError(
      `another process is already listening on ${path}; stop it or choose another --socket`,
    );
  }
  logger.info({ socket: path }, 'replacing a stale socket file');
  unlinkSync(path);
}

/**
 * Anyone but root and this user who can write to the socket's directory, or to a directory
 * above it, can replace the socket with their own (or rename the directory): warned about,
 * naming the directory and who. A sticky directory (like /tmp) protects entries of others.
 */
function warnAboutWritableDirs(dir: string, logger: Logger): void {
  const uid = process.geteuid?.() ?? 0;
  for (let current = dir; ; current = dirname(current)) {
    let stat;
    try {
      stat = statSync(current);
    } catch {
      break;
    }
    const sticky = (stat.mode & 0o1000) !== 0;
    const writers: string[] = [];
    if (stat.uid !== 0 && stat.uid !== uid) writers.push(`its owner (uid ${stat.uid})`);
    if (!sticky && (stat.mode & 0o020) !== 0 && stat.gid !== 0) writers.push(`group ${stat.gid}`);
    if (!sticky && (stat.mode & 0o002) !== 0) writers.push('everyone');
    if (writers.length > 0) {
      logger.warn(
        { dir: current, writableBy: writers.join(', ') },
        `the socket directory is writable by others (${current}: ${writers.join(', ')}): anyone of them could replace the socket`,
      );
    }
    if (current === dirname(current)) break;
  }
}

function someoneListens(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createConnection(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

export function resolveGroup(group: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  const line = readFileSync('/etc/group', 'utf8')
    .split('\n')
    .find((l) => l.split(':')[0] === group);
  const gid = line?.split(':')[2];
  if (gid === undefined) throw new StartupError(`config key "socket_group": unknown group "${group}"`);
  return Number(gid);
}
