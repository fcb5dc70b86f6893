import type { Readable } from 'node:stream';
import { Parser, type ReadEntry } from 'tar';
import { CdhError } from '../errors';
import { MAX_PAX_HEADER_BYTES, TarXattrScanner, type Xattr } from './xattr-scan';

export type EntryHandler = (entry: ReadEntry, xattrs: readonly Xattr[]) => Promise<void>;

/**
 * Feeds `input` to the `tar` parser and runs `handler` on each entry, one at a time, in order
 * (an entry's body is read by its handler). The first failure stops the stream and is thrown.
 */
export async function parseSequentially(
  input: Readable,
  handler: EntryHandler,
  label: string,
  signal: AbortSignal,
): Promise<void> {
  const run = new SequentialRun(handler, label);
  try {
    for await (const chunk of input) {
      if (run.failure !== undefined) break;
      if (signal.aborted) throw signal.reason;
      await run.write(chunk as Buffer);
    }
  } catch (error) {
    run.fail(error);
  }
  await run.end();
  if (run.failure !== undefined) {
    input.destroy();
    throw run.failure;
  }
}

class SequentialRun {
  failure: unknown;
  private chain: Promise<void> = Promise.resolve();
  private wakeFailure?: () => void;
  private readonly failed = new Promise<void>((resolve) => (this.wakeFailure = resolve));
  /** Entries whose body is still arriving: a failure ends them, or their writers would wait forever. */
  private readonly unfinished = new Set<ReadEntry>();
  private readonly scanner: TarXattrScanner;
  private readonly parser: Parser;
  private readonly ended: Promise<void>;

  constructor(
    private readonly handler: EntryHandler,
    label: string,
  ) {
    this.scanner = new TarXattrScanner(label);
    this.parser = new Parser({
      strict: true,
      maxMetaEntrySize: MAX_PAX_HEADER_BYTES,
      onReadEntry: (entry: ReadEntry) => this.onEntry(entry),
    });
    this.parser.on('error', (error: Error) =>
      this.fail(new CdhError('IMAGE_LAYER_INVALID', `${label}: not a valid tar stream (${error.message})`)),
    );
    this.ended = new Promise<void>((resolve) => this.parser.on('end', () => resolve()));
  }

  fail(error: unknown): void {
    this.failure ??= error;
    this.wakeFailure?.();
    for (const entry of this.unfinished)
      entry.destroy(error instanceof Error ? error : new Error(String(error)));
    this.unfinished.clear();
  }

  async write(chunk: Buffer): Promise<void> {
    this.scanner.write(chunk);
    if (!this.parser.write(chunk))
      await Promise.race([new Promise((resolve) => this.parser.once('drain', resolve)), this.failed]);
  }

  async end(): Promise<void> {
    if (this.failure === undefined) {
      this.parser.end();
      await Promise.race([this.ended, this.failed]);
    }
    await this.chain;
  }

  private onEntry(entry: ReadEntry): void {
    if (this.failure !== undefined) return void entry.resume();
    let xattrs: readonly Xattr[];
    try {
      xattrs = this.scanner.take(entry.path, entry.type, entry.size).xattrs;
    } catch (error) {
      entry.resume();
      return this.fail(error);
    }
    this.unfinished.add(entry);
    const done = (): void => void this.unfinished.delete(entry);
    entry.once('end', done);
    entry.once('close', done);
    this.chain = this.chain.then(async () => {
      if (this.failure !== undefined) return void entry.resume();
      try {
        await this.handler(entry, xattrs);
      } catch (error) {
        entry.resume();
        this.fail(error);
      }
    });
  }
}
