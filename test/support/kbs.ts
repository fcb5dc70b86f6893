import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';

/** A logger whose JSON lines are kept in memory, to assert on warnings. */
export function captureLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), lines };
}

/** A temp dir removed by the returned cleanup. */
export function makeTempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Writes an offline_fs KBC file: resource name → content (base64-encoded here). */
export function writeResourceFile(file: string, resources: Record<string, string | Buffer>): void {
  const encoded: Record<string, string> = {};
  for (const [name, value] of Object.entries(resources))
    encoded[name] = Buffer.from(value).toString('base64');
  writeFileSync(file, JSON.stringify(encoded, null, 2));
}

/** A CallContext that is never aborted. */
export function callContext(): { signal: AbortSignal } {
  return { signal: new AbortController().signal };
}
