// Which entries of one layer go into which piece, so that applying the pieces in order builds exactly the
// filesystem the layer builds. Pure: works on the scanner's index, reads no bytes.
//
// The rules (OCI image-spec layer.md, and how Docker's and containerd's appliers behave):
// - whiteouts and opaque markers act on lower layers only: all of them go in the first piece, so no piece
//   of this layer can be hidden by one;
// - a piece re-creates the parent directories of its entries (their original bytes, so mode, owner and
//   mtime stay) before them, because an applier would otherwise invent them with default mode and owner;
// - a hardlink must be applied in the same layer as its target (an applier links within the layer being
//   unpacked): it moves into the piece of its target, just after it;
// - everything else keeps its order, so a later entry for a path still wins over an earlier one.
import { END_OF_ARCHIVE } from '../image/tar-header.js';
import type { LayerEntry, RawBytes } from '../image/tar-scanner.js';

type Range = { readonly kind: 'range'; readonly start: number; readonly end: number; readonly entry: number };

/**
 * A planned piece's content, in order: ranges of the layer stream, and entries placed out of stream order
 * (moved, or re-emitted as a parent) as their raw bytes, which the RawStore may hold on disk.
 */
export type PlanItem =
  | Range
  | { readonly kind: 'bytes'; readonly raw: RawBytes; readonly entry: number; readonly reason: 'moved' | 'parent' };

export interface PlannedPiece {
  readonly items: readonly PlanItem[];
  /** Bytes of the piece's tar, end-of-archive blocks included. */
  readonly size: number;
}

export interface LayerPlan {
  readonly pieces: readonly PlannedPiece[];
  /** Pieces over the target that could not be avoided. */
  readonly oversized: readonly Oversized[];
}

export interface Oversized {
  readonly path: string;
  readonly size: number;
  /** single-entry: one file bigger than the target; hardlink-order: entries that had to stay together;
   * whiteouts: so many whiteouts that the first piece alone is over the target. */
  readonly reason: 'single-entry' | 'hardlink-order' | 'whiteouts';
}

const EOA = END_OF_ARCHIVE.length;

/** The scanner keeps the bytes of every movable entry (directories, whiteouts, opaque markers, hardlinks). */
function rawOf(e: LayerEntry): RawBytes {
  if (!e.raw) throw new Error(`entry ${e.index} (${e.kind}) was indexed without its bytes`);
  return e.raw;
}

function parentsOf(path: string): string[] {
  if (path === '') return [];
  const parents = [''];
  let i = path.indexOf('/');
  while (i >= 0) {
    parents.push(path.slice(0, i));
    i = path.indexOf('/', i + 1);
  }
  return parents;
}

/** Directory entries of the layer by path, oldest first. */
function directoryIndex(entries: readonly LayerEntry[]): Map<string, LayerEntry[]> {
  const dirs = new Map<string, LayerEntry[]>();
  for (const e of entries) {
    if (e.kind !== 'directory') continue;
    const list = dirs.get(e.path);
    if (list) list.push(e);
    else dirs.set(e.path, [e]);
  }
  return dirs;
}

/** The occurrences of each path, oldest first: for "is this path touched between i and j". */
function occurrenceIndex(entries: readonly LayerEntry[]): Map<string, number[]> {
  const occ = new Map<string, number[]>();
  for (const e of entries) {
    const list = occ.get(e.path);
    if (list) list.push(e.index);
    else occ.set(e.path, [e.index]);
  }
  return occ;
}

function touchedBetween(occ: Map<string, number[]>, path: string, after: number, before: number): number[] {
  const list = occ.get(path);
  if (!list) return [];
  // lists are short except in pathological layers: a linear scan is fine
  return list.filter((i) => i > after && i < before);
}

interface Grouping {
  /** hardlink index -> index of the entry it travels with */
  readonly attachedTo: Map<number, number>;
  /** entry index -> hardlinks travelling with it, in order */
  readonly followers: Map<number, number[]>;
  /** entry indexes that may not start a new piece (kept with the entry before them) */
  readonly noCutBefore: Set<number>;
}

/**
 * Hardlinks to an entry of this layer move to their target. Moving one ahead of the entries between target
 * and link is only safe if none of those entries touches the link's path, an ancestor of it, or (when the
 * link's path is a directory somewhere in the layer) anything under it; otherwise target..link stay together.
 */
function groupHardlinks(entries: readonly LayerEntry[]): Grouping {
  const attachedTo = new Map<number, number>();
  const followers = new Map<number, number[]>();
  const noCutBefore = new Set<number>();
  const occ = occurrenceIndex(entries);
  const impliedDirs = new Set<string>();
  for (const e of entries) for (const p of parentsOf(e.path)) impliedDirs.add(p);
  const latest = new Map<string, number>();
  for (const e of entries) {
    if (e.kind === 'hardlink') {
      const target = latest.get(e.linkTarget);
      const targetEntry = target === undefined ? undefined : entries[target];
      if (
        targetEntry &&
        targetEntry.kind !== 'directory' &&
        targetEntry.kind !== 'whiteout' &&
        targetEntry.kind !== 'opaque'
      ) {
        const root = attachedTo.get(targetEntry.index) ?? targetEntry.index;
        const hazard =
          impliedDirs.has(e.path) ||
          touchedBetween(occ, e.path, root, e.index).length > 0 ||
          parentsOf(e.path).some((p) =>
            touchedBetween(occ, p, root, e.index).some((i) => entries[i].kind !== 'directory'),
          );
        if (hazard) {
          for (let i = root + 1; i <= e.index; i++) noCutBefore.add(i);
        } else {
          attachedTo.set(e.index, root);
          const list = followers.get(root);
          if (list) list.push(e.index);
          else followers.set(root, [e.index]);
        }
      }
    }
    if (e.kind !== 'whiteout' && e.kind !== 'opaque' && e.kind !== 'meta') latest.set(e.path, e.index);
  }
  return { attachedTo, followers, noCutBefore };
}

class PieceBuilder {
  readonly items: PlanItem[] = [];
  size = EOA;
  /** Directories this piece has created so far: path -> the entry that made it. */
  readonly dirs = new Map<string, number>();
  hasEntries = false;
  /** Whether every entry placed here (re-emitted parents aside) is a directory, and their paths while so. */
  private onlyDirectories = true;
  private readonly placed: string[] = [];

  constructor(private readonly dirIndex: Map<string, LayerEntry[]>) {}

  /** The directory entry to re-emit for `path` when placing entry `at`: the latest before it, else the last. */
  private dirFor(path: string, at: number): LayerEntry | undefined {
    const list = this.dirIndex.get(path);
    if (!list) return undefined;
    let best: LayerEntry | undefined;
    for (const d of list) if (d.index < at) best = d;
    return best ?? list[list.length - 1];
  }

  /** A directory entry already re-emitted here as a parent, unchanged since: its own turn adds nothing. */
  private alreadyHas(entry: LayerEntry): boolean {
    return entry.kind === 'directory' && this.dirs.get(entry.path) === entry.index;
  }

  /** Bytes placing `entry` would add, parents included, given the directories this piece and `extra` hold. */
  cost(entry: LayerEntry, as: 'range' | 'moved', extra: Set<string>): number {
    if (this.alreadyHas(entry)) return 0;
    let bytes = 0;
    for (const p of parentsOf(entry.path)) {
      if (this.dirs.has(p) || extra.has(p)) continue;
      const d = this.dirFor(p, entry.index);
      if (d) {
        bytes += rawOf(d).length;
        extra.add(p);
      }
    }
    if (entry.kind === 'directory') extra.add(entry.path);
    return bytes + (as === 'range' ? entry.end - entry.start : rawOf(entry).length);
  }

  /** True when the piece holds nothing but directories above `path`: closing it would only repeat them. */
  onlyParentsOf(path: string): boolean {
    if (!this.onlyDirectories) return false;
    const parents = new Set(parentsOf(path));
    return this.placed.every((p) => parents.has(p));
  }

  add(entry: LayerEntry, as: 'range' | 'moved'): void {
    this.hasEntries = true;
    if (entry.kind !== 'directory') this.onlyDirectories = false;
    else if (this.onlyDirectories) this.placed.push(entry.path);
    if (this.alreadyHas(entry)) return;
    for (const p of parentsOf(entry.path)) {
      if (this.dirs.has(p)) continue;
      const d = this.dirFor(p, entry.index);
      if (!d) continue;
      this.push({ kind: 'bytes', raw: rawOf(d), entry: d.index, reason: 'parent' });
      this.dirs.set(p, d.index);
    }
    if (as === 'range') this.push({ kind: 'range', start: entry.start, end: entry.end, entry: entry.index });
    else this.push({ kind: 'bytes', raw: rawOf(entry), entry: entry.index, reason: 'moved' });
    // Anything else at a directory's path replaces the directory: later children need it again.
    if (entry.kind === 'directory') this.dirs.set(entry.path, entry.index);
    else this.dirs.delete(entry.path);
  }

  private push(item: PlanItem): void {
    const last = this.items[this.items.length - 1];
    // adjacent ranges become one copy
    if (item.kind === 'range' && last?.kind === 'range' && last.end === item.start) {
      this.items[this.items.length - 1] = { kind: 'range', start: last.start, end: item.end, entry: last.entry };
    } else this.items.push(item);
    this.size += item.kind === 'range' ? item.end - item.start : item.raw.length;
  }

  plan(): PlannedPiece {
    return { items: this.items, size: this.size };
  }
}

/** A run of entries placed together: an entry, the hardlinks attached to it, and what may not be cut off it. */
type Unit = Array<{ entry: LayerEntry; as: 'range' | 'moved' }>;

function units(entries: readonly LayerEntry[], grouping: Grouping): Unit[] {
  const result: Unit[] = [];
  for (const e of entries) {
    if (e.kind === 'whiteout' || e.kind === 'opaque' || grouping.attachedTo.has(e.index)) continue;
    const members: Unit = [{ entry: e, as: 'range' }];
    for (const f of grouping.followers.get(e.index) ?? []) members.push({ entry: entries[f], as: 'moved' });
    if (grouping.noCutBefore.has(e.index) && result.length > 0) result[result.length - 1].push(...members);
    else result.push(members);
  }
  return result;
}

export function planSplit(entries: readonly LayerEntry[], target: number): LayerPlan {
  const dirIndex = directoryIndex(entries);
  const grouping = groupHardlinks(entries);
  const pieces: PlannedPiece[] = [];
  const oversized: Oversized[] = [];
  let piece = new PieceBuilder(dirIndex);

  for (const e of entries) {
    if (e.kind === 'whiteout' || e.kind === 'opaque') piece.add(e, 'moved');
  }
  const whiteouts = piece.items.find((i) => i.kind === 'bytes' && i.reason === 'moved');
  if (whiteouts && piece.size > target)
    oversized.push({ path: entries[whiteouts.entry].path, size: piece.size, reason: 'whiteouts' });

  for (const unit of units(entries, grouping)) {
    const costOf = (b: PieceBuilder) => {
      const extra = new Set<string>();
      return unit.reduce((sum, m) => sum + b.cost(m.entry, m.as, extra), 0);
    };
    const lead = unit[0].entry.path;
    if (piece.hasEntries && piece.size + costOf(piece) > target && !piece.onlyParentsOf(lead)) {
      pieces.push(piece.plan());
      piece = new PieceBuilder(dirIndex);
    }
    const fresh = !piece.hasEntries || piece.onlyParentsOf(lead);
    for (const m of unit) piece.add(m.entry, m.as);
    if (fresh && piece.size > target) {
      // Too big even alone: it gets a piece of its own, which the caller reports.
      const big = unit.map((m) => m.entry).reduce((a, b) => (b.size > a.size ? b : a));
      oversized.push({
        path: big.path,
        size: big.size,
        reason: unit.length > 1 && big.size + EOA <= target ? 'hardlink-order' : 'single-entry',
      });
      pieces.push(piece.plan());
      piece = new PieceBuilder(dirIndex);
    }
  }
  if (piece.items.length > 0) pieces.push(piece.plan());
  return { pieces, oversized };
}
