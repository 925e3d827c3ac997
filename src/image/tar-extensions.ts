// The headers of a layer tar that describe the entry after them (pax 'x', GNU long name 'L' and long link 'K')
// and the pax global header ('g'), as the tar scanner meets them: their sizes checked where Go checks them, and
// only what Go would use kept (the last header of each kind), so a chain of any length costs a bounded amount.
import { BLOCK, MAX_EXTENSION_SIZE, parsePaxRecords, TarFormatError, type TarHeader } from './tar-header.js';

/** Headers that describe the next one: pax ('x'), GNU long name ('L') and long link ('K'). */
const EXTENSIONS: ReadonlySet<string> = new Set(['x', 'L', 'K']);
/** The pax records the scanner reads; the others (xattrs...) are checked, not decoded. */
const PAX_KEYS: ReadonlySet<string> = new Set(['path', 'linkpath', 'size']);
const NO_KEYS: ReadonlySet<string> = new Set();

/**
 * The most bytes of extension headers the scanner holds for the entry being read (before its own header says
 * whether it is movable): one of each kind, its header block and padded data. Go reads an entry's extensions
 * by kind, each replacing the one before (reader.go next(): `paxHdrs, err = parsePAX(tr)`, `gnuLongName =`),
 * so of a chain of any length only the last of each kind says anything, and only that one is kept. A layer
 * that chains 300 pax headers of 1 MiB before one file (300 MiB, a few hundred KB gzip'd) therefore holds
 * this much, not 300 MiB (tar-scanner.test.ts, "a chain of extension headers").
 */
export const MAX_RETAINED_EXTENSIONS = EXTENSIONS.size * (BLOCK + MAX_EXTENSION_SIZE + BLOCK);

/** True for the headers whose data the scanner reads whole: the extensions and a pax global header. */
export function hasExtensionData(typeflag: string): boolean {
  return EXTENSIONS.has(typeflag) || typeflag === 'g';
}

/**
 * The name of the header at `at`, for errors, once its size is known to be one Go reads: extension data (and a
 * global header's) is read whole, and Go refuses more than MAX_EXTENSION_SIZE of it.
 */
export function checkExtensionSize(header: TarHeader, at: number): string {
  const what = { x: 'pax header', g: 'pax global header', L: 'GNU long name', K: 'GNU long link' }[
    header.typeflag
  ] as string;
  if (header.size < 0) throw new TarFormatError(`${what} with a negative size ${header.size}`, at);
  if (header.size > MAX_EXTENSION_SIZE) {
    throw new TarFormatError(
      `${what} of ${header.size} bytes, over the ${MAX_EXTENSION_SIZE} that Docker and containerd read`,
      at,
    );
  }
  return what;
}

/** A global header is an entry of its own (Go returns it as one): its records are checked as Go checks them, none is read. */
export function checkGlobalRecords(data: Buffer, at: number): void {
  parsePaxRecords(data, at, NO_KEYS);
}

/** A pax decimal number as Go's strconv.ParseInt reads it (an optional sign, digits); NaN otherwise. */
export function paxNumber(text: string): number {
  if (!/^[+-]?[0-9]+$/.test(text)) return NaN;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : NaN;
}

/** An extension header kept for the entry being read: its block and padded data, as they were. */
interface Extension {
  readonly typeflag: string;
  /** Its data, unpadded. */
  readonly data: Buffer;
  /** Its padded data (a chain's next header of the kind reuses it). */
  readonly buffer: Buffer;
  readonly bytes: Buffer[];
}

/** What the extension headers of the entry being read said (the last of each kind: see MAX_RETAINED_EXTENSIONS). */
export class ExtensionChain {
  /** The last pax header's records of PAX_KEYS. */
  pax = new Map<string, string>();
  private extensions: Extension[] = [];
  /** The last global header's data buffer, for the next one. */
  private globalData: Buffer | null = null;

  /**
   * The buffer to read a header's padded data into. The data goes where the header it supersedes kept its own
   * (that one says nothing once this one is read, and the scan fails if this one is bad), and a global
   * header's into the last one's: garbage that grew with the chain until the next collection is what a chain
   * would otherwise cost. Only into a buffer of the same size: a movable entry's capture keeps the data by
   * reference, and the store counts its length.
   */
  bufferFor(typeflag: string, padded: number): Buffer {
    let reuse: Buffer | null;
    if (typeflag === 'g') reuse = this.globalData;
    else {
      const previous = this.extensions.find((e) => e.typeflag === typeflag);
      this.extensions = this.extensions.filter((e) => e !== previous);
      reuse = previous?.buffer ?? null;
    }
    const buffer = reuse?.length === padded ? reuse : Buffer.alloc(padded);
    if (typeflag === 'g') this.globalData = buffer;
    return buffer;
  }

  /**
   * Keeps an extension header once its data is read: `block` its header block (at `at`), `buffer` its padded
   * data (from bufferFor), `data` the unpadded part.
   */
  keep(typeflag: string, block: Buffer, buffer: Buffer, data: Buffer, at: number): void {
    // A long name is decoded once its entry's header comes, from the last one only (longText).
    if (typeflag === 'x') this.pax = parsePaxRecords(data, at, PAX_KEYS);
    // (the one before of the same kind, which says nothing any more, was let go at this one's header)
    const bytes = buffer.length ? [block, buffer] : [block];
    this.extensions.push({ typeflag, data, buffer, bytes });
  }

  /** A GNU long name's or link's text: NUL terminated within its data; '' when there is none (as in Go). */
  longText(typeflag: 'L' | 'K'): string {
    const data = this.extensions.find((e) => e.typeflag === typeflag)?.data;
    if (!data) return '';
    const nul = data.indexOf(0);
    return data.toString('latin1', 0, nul < 0 ? data.length : nul);
  }

  /** The kept headers' bytes (blocks and padded data), in the order the tar holds them. */
  *bytes(): Iterable<Buffer> {
    for (const e of this.extensions) yield* e.bytes;
  }

  /** Lets the kept headers' bytes go once the entry's own header is read (their pax records stay until reset). */
  dropBytes(): void {
    this.extensions = [];
  }

  /** The entry is done: what its extensions said applies to it only. */
  reset(): void {
    this.pax = new Map();
    this.extensions = [];
  }
}
