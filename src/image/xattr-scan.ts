import { Header, Pax, type HeaderData } from 'tar';
import { CdhError } from '../errors';
import { quote } from './reference';

/** One extended attribute as a PAX `SCHILY.xattr.<name>` record carries it (value: raw bytes). */
export interface Xattr {
  readonly name: string;
  readonly value: Buffer;
}

/** What the scanner saw of one entry the tar parser will hand out (checked against it). */
export interface ScannedEntry {
  readonly path: string;
  readonly type: string;
  readonly size: number;
  readonly xattrs: readonly Xattr[];
}

/** The PAX header of one entry (and the global one) may hold at most this much (tar's own meta limit). */
export const MAX_PAX_HEADER_BYTES = 1024 * 1024;
/** Linux limits: XATTR_NAME_MAX, XATTR_SIZE_MAX; and a count per entry. */
const MAX_XATTR_NAME = 255;
const MAX_XATTR_VALUE = 64 * 1024;
const MAX_XATTRS_PER_ENTRY = 64;

const ENTRY_TYPES = new Set([
  'File',
  'OldFile',
  'Link',
  'SymbolicLink',
  'CharacterDevice',
  'BlockDevice',
  'Directory',
  'FIFO',
  'ContiguousFile',
  'GNUDumpDir',
]);
const META_TYPES = new Set([
  'ExtendedHeader',
  'OldExtendedHeader',
  'GlobalExtendedHeader',
  'NextFileHasLongPath',
  'OldGnuLongPath',
  'NextFileHasLongLinkpath',
]);
const XATTR_KEY = 'SCHILY.xattr.';
const ZERO_BLOCK = Buffer.alloc(512);
const NO_XATTRS: readonly Xattr[] = [];

/**
 * Reads the same bytes as the `tar` parser, ahead of it, only to keep what that parser drops:
 * the `SCHILY.xattr.*` records of PAX headers, as bytes. Framing uses tar's own `Header` and
 * `Pax` so both agree on every entry's path and size; each entry the parser emits is matched
 * against the next one seen here (`take`), and any disagreement refuses the layer.
 */
export class TarXattrScanner {
  private readonly pending: ScannedEntry[] = [];
  private partial: Buffer[] = [];
  private partialBytes = 0;
  /** Bytes of the current body still to skip (data + padding) or, for a meta entry, to keep. */
  private skip = 0;
  private meta?: { type: string; size: number; chunks: Buffer[]; got: number };
  private ex?: HeaderData;
  private gex?: HeaderData;
  private exXattrs = new Map<string, Buffer>();
  private readonly gexXattrs = new Map<string, Buffer>();
  private sawNull = false;
  private done = false;

  constructor(private readonly label: string) {}

  write(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length && !this.done) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - at);
        this.keepMeta(chunk.subarray(at, at + n));
        this.skip -= n;
        at += n;
        if (this.skip === 0) this.endMeta();
        continue;
      }
      if (this.partialBytes === 0 && chunk.length - at >= 512) {
        this.header(chunk.subarray(at, at + 512));
        at += 512;
        continue;
      }
      const need = 512 - this.partialBytes;
      const piece = chunk.subarray(at, at + need);
      at += piece.length;
      this.partial.push(piece);
      this.partialBytes += piece.length;
      if (this.partialBytes < 512) continue;
      const block = Buffer.concat(this.partial);
      this.partial = [];
      this.partialBytes = 0;
      this.header(block);
    }
  }

  /** The scanned entry for the next entry the parser emits; refuses the layer when they differ. */
  take(path: string, type: string, size: number): ScannedEntry {
    const next = this.pending.shift();
    const samePath = next?.path === path || path.includes('\uFFFD');
    if (next === undefined || !samePath || next.type !== type || next.size !== size)
      throw new CdhError(
        'IMAGE_LAYER_INVALID',
        `${this.label}: entry ${quote(path)}: the tar stream could not be read consistently (PAX headers)`,
      );
    return next;
  }

  private header(block: Buffer): void {
    if (block.equals(ZERO_BLOCK)) {
      if (this.sawNull) this.done = true;
      this.sawNull = true;
      return;
    }
    this.sawNull = false;
    let h: Header;
    try {
      h = new Header(block, 0, this.ex, this.gex);
    } catch {
      this.done = true; // the parser refuses the same header
      return;
    }
    if (!h.cksumValid || !h.path) {
      this.done = true;
      return;
    }
    const type = h.type as string;
    const size = h.size ?? 0;
    this.skip = 512 * Math.ceil(size / 512);
    if (META_TYPES.has(type)) {
      if (size > MAX_PAX_HEADER_BYTES)
        throw new CdhError(
          'IMAGE_LAYER_INVALID',
          `${this.label}: a ${type} record of ${size} bytes is larger than ${MAX_PAX_HEADER_BYTES}`,
        );
      if (size > 0) this.meta = { type, size, chunks: [], got: 0 };
      return;
    }
    if (ENTRY_TYPES.has(type)) this.pending.push({ path: h.path, type, size, xattrs: this.entryXattrs() });
    this.ex = undefined;
    if (this.exXattrs.size > 0) this.exXattrs = new Map();
  }

  private entryXattrs(): readonly Xattr[] {
    if (this.gexXattrs.size === 0 && this.exXattrs.size === 0) return NO_XATTRS;
    return [...new Map([...this.gexXattrs, ...this.exXattrs])].map(([name, value]) => ({ name, value }));
  }

  private keepMeta(piece: Buffer): void {
    const m = this.meta;
    if (m === undefined || m.got >= m.size) return;
    const keep = piece.subarray(0, m.size - m.got);
    m.chunks.push(keep);
    m.got += keep.length;
  }

  private endMeta(): void {
    const m = this.meta;
    this.meta = undefined;
    if (m === undefined) return;
    const body = Buffer.concat(m.chunks);
    const text = body.toString('utf8');
    switch (m.type) {
      case 'ExtendedHeader':
      case 'OldExtendedHeader':
        this.ex = Pax.parse(text, this.ex, false);
        for (const [k, v] of paxXattrs(body, this.label)) this.exXattrs.set(k, v);
        break;
      case 'GlobalExtendedHeader':
        this.gex = Pax.parse(text, this.gex, true);
        for (const [k, v] of paxXattrs(body, this.label)) this.gexXattrs.set(k, v);
        break;
      case 'NextFileHasLongPath':
      case 'OldGnuLongPath':
        this.ex = { ...(this.ex ?? {}), path: text.replace(/\0.*/, '') };
        break;
      default:
        this.ex = { ...(this.ex ?? {}), linkpath: text.replace(/\0.*/, '') };
    }
    const count = new Set([...this.gexXattrs.keys(), ...this.exXattrs.keys()]).size;
    if (count > MAX_XATTRS_PER_ENTRY)
      throw new CdhError(
        'IMAGE_LAYER_INVALID',
        `${this.label}: an entry has more than ${MAX_XATTRS_PER_ENTRY} extended attributes`,
      );
  }
}

/** The `SCHILY.xattr.<name>=<value>` records of a PAX body, read by their length prefixes (values may hold any byte). */
export function paxXattrs(body: Buffer, label: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let at = 0;
  while (at < body.length) {
    const space = body.indexOf(0x20, at);
    const len = space > at && space - at <= 8 ? Number(body.toString('latin1', at, space)) : NaN;
    if (
      !Number.isInteger(len) ||
      len <= space - at + 1 ||
      at + len > body.length ||
      body[at + len - 1] !== 0x0a
    )
      break; // the rest is malformed: tar stops reading records too
    const record = body.subarray(space + 1, at + len - 1);
    at += len;
    const eq = record.indexOf(0x3d);
    if (eq < 0) continue;
    const key = record.toString('utf8', 0, eq);
    if (!key.startsWith(XATTR_KEY)) continue;
    const name = key.slice(XATTR_KEY.length);
    const value = Buffer.from(record.subarray(eq + 1));
    if (name === '' || Buffer.byteLength(name) > MAX_XATTR_NAME || name.includes('\0'))
      throw new CdhError(
        'IMAGE_LAYER_INVALID',
        `${label}: extended attribute name ${quote(name)} is invalid`,
      );
    if (value.length > MAX_XATTR_VALUE)
      throw new CdhError(
        'IMAGE_LAYER_INVALID',
        `${label}: extended attribute ${quote(name)} holds ${value.length} bytes (at most ${MAX_XATTR_VALUE})`,
      );
    out.set(name, value);
  }
  return out;
}
