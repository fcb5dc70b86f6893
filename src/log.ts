import { fstatSync } from 'node:fs';
import { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';
import type { LogLevel } from './config/types';

/** Log bytes waiting for stdout at most; beyond, lines are dropped and counted. */
export const LOG_BUFFER_BYTES = 4 * 1024 * 1024;

/**
 * Paths pino censors wherever they appear in a log object. Code never logs secret
 * material on purpose; this is the second line of defence.
 */
export const REDACT_PATHS: readonly string[] = [
  'plaintext',
  'secret',
  'dek',
  'dataKey',
  'password',
  'privateKey',
  'token',
  'securityToken',
  'accessKeySecret',
  'authorization',
  '*.plaintext',
  '*.secret',
  '*.dek',
  '*.dataKey',
  '*.password',
  '*.privateKey',
  '*.token',
  '*.securityToken',
  '*.accessKeySecret',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
];

export function createLogger(level: LogLevel, destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
    formatters: { level: (label) => ({ level: label }) },
  };
  return pino(options, destination ?? stdoutDestination());
}

/**
 * Log lines to a stream with a bounded queue: when the reader stops reading, lines beyond
 * `maxBytes` are dropped and counted, and a line saying how many is written once it reads
 * again. Writes never block the event loop and nothing waits for them at exit.
 */
export class BoundedLogSink implements pino.DestinationStream {
  private droppedLines = 0;
  private broken = false;

  constructor(
    private readonly out: Writable,
    private readonly maxBytes = LOG_BUFFER_BYTES,
  ) {
    out.on('error', () => {
      // EPIPE and the like: nobody will read the log any more.
      this.broken = true;
    });
    out.on('drain', () => this.reportDropped());
  }

  get dropped(): number {
    return this.droppedLines;
  }

  get pendingBytes(): number {
    return this.out.writableLength;
  }

  write(line: string): void {
    if (this.broken || this.out.destroyed) return;
    if (this.out.writableLength + line.length > this.maxBytes) {
      this.droppedLines++;
      return;
    }
    this.reportDropped();
    this.out.write(line);
  }

  /** Resolves once what is queued has been written, or after `ms`, whichever comes first. */
  settle(ms: number): Promise<void> {
    if (this.broken || this.out.writableLength === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.out.once('drain', done);
    });
  }

  private reportDropped(): void {
    if (this.droppedLines === 0 || this.out.writableLength > this.maxBytes / 2) return;
    const line = JSON.stringify({
      level: 'warn',
      time: new Date().toISOString(),
      pid: process.pid,
      dropped: this.droppedLines,
      msg: 'log lines dropped: stdout was not being read',
    });
    this.droppedLines = 0;
    this.out.write(`${line}\n`);
  }
}

let stdoutSink: BoundedLogSink | undefined;

/**
 * stdout for the log. A pipe or socket (systemd's journal, a container runtime, a test) is
 * written asynchronously through libuv with a bounded queue, so a reader that stops reading
 * costs dropped lines, not memory or a hung exit (a blocking write in the thread pool would
 * hold process.exit). A file or terminal is written synchronously (it cannot stall for ever).
 */
function stdoutDestination(): pino.DestinationStream {
  let kind: 'stream' | 'other' = 'other';
  try {
    const stat = fstatSync(1);
    if (stat.isFIFO() || stat.isSocket()) kind = 'stream';
  } catch {
    // fd 1 closed: pino's destination reports it.
  }
  if (kind === 'other') return pino.destination({ fd: 1, sync: true });
  stdoutSink ??= new BoundedLogSink(new Socket({ fd: 1, readable: false, writable: true }).unref());
  return stdoutSink;
}

/** Gives queued log lines up to `ms` to reach stdout (before exiting). */
export function settleStdoutLog(ms: number): Promise<void> {
  return stdoutSink?.settle(ms) ?? Promise.resolve();
}

/** A logger that drops everything (unit tests, the CLI). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
