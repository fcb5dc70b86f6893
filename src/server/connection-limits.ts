import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';

/** Descriptors kept free for everything else (KMS connections, files) when fitting max_connections. */
const RESERVED_FDS = 64;
/** At most one line per kind of refusal per this interval (a flood must not flood the log). */
const REFUSAL_LOG_INTERVAL_MS = 10_000;

/**
 * Logs a refusal at most once per interval, with how many happened since the last line: the
 * operator learns that a limit is being hit without an attacker writing the log.
 */
export class RefusalLog {
  private readonly counts = new Map<string, { count: number; last: number }>();

  constructor(
    private readonly logger: Logger,
    private readonly intervalMs = REFUSAL_LOG_INTERVAL_MS,
  ) {}

  note(message: string, fields: Record<string, unknown> = {}): void {
    const now = Date.now();
    const entry = this.counts.get(message) ?? { count: 0, last: -Infinity };
    entry.count++;
    this.counts.set(message, entry);
    if (now - entry.last < this.intervalMs) return;
    this.logger.warn({ ...fields, count: entry.count }, message);
    entry.count = 0;
    entry.last = now;
  }
}

/** The process's soft open-file limit, from /proc (undefined where there is none). */
function descriptorLimit(): number | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = line?.split(/\s{2,}/)[1];
    return soft === undefined || soft === 'unlimited' ? undefined : Number(soft);
  } catch {
    return undefined;
  }
}

/**
 * max_connections lowered to what the descriptor limit leaves: the connection limit, which
 * is logged, must be hit before EMFILE, which libuv handles silently (accepting and closing).
 */
export function fitToDescriptorLimit(maxConnections: number, logger: Logger): number {
  const limit = descriptorLimit();
  if (limit === undefined || !Number.isFinite(limit) || maxConnections + RESERVED_FDS <= limit)
    return maxConnections;
  const fitted = Math.max(1, limit - RESERVED_FDS);
  logger.warn(
    { maxConnections, openFileLimit: limit, using: fitted },
    'max_connections lowered to fit the open-file limit (raise LimitNOFILE / ulimit -n to serve more)',
  );
  return fitted;
}
