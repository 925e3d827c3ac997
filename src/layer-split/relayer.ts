// relayerToSink: a `docker save` archive in, every layer over the limit split into pieces that build the same
// filesystem, the new image out to a LayerSink: a `docker load` archive (relayerArchive, archive-sink.ts) or
// compressed blobs the action uploads itself (blob-sink.ts).
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { PassThrough, Readable } from 'node:stream';
import { formatBytes } from '../util/units.js';
import { readArchive, type ArchiveEntry, type SavedArchive } from '../image/docker-archive-stream.js';
import { ArchiveSink } from './archive-sink.js';
import { decompressor } from '../image/compression.js';
import { layerHistory, rewriteConfig } from './config-rewrite.js';
import { resolveImage } from '../image/oci-layout-read.js';
import { writePieces } from './piece-writer.js';
import { planSplit, type LayerPlan, type Oversized } from './split-plan.js';
import { displayPath } from '../image/tar-header.js';
import type { LayerSink } from './sink.js';
import { RawStore } from '../image/tar-scanner.js';
import type { LayerReport, PieceReport, RelayerOptions, RelayerReport, UnsplittableEntry } from './types.js';

/** What the splitting needs; the tag only names a loaded image. */
export type SinkOptions = Omit<RelayerOptions, 'tag'>;

/** Below this a piece could not hold even a header and the end-of-archive blocks. */
const MIN_PIECE_SIZE = 4096;
/** Spilled documents (a config is small, but nothing forbids a big one) are read back up to this size. */
const DOCUMENT_MAX = 64 * 1024 * 1024;

function short(diffId: string): string {
  return diffId.replace(/^sha256:/, '').slice(0, 12);
}

function hex(diffId: string): string {
  return diffId.replace(/^sha256:/, '');
}

function validate(opts: SinkOptions): void {
  if (!Number.isSafeInteger(opts.maxLayerSize) || opts.maxLayerSize < MIN_PIECE_SIZE) {
    throw new Error(`maxLayerSize must be an integer of at least ${MIN_PIECE_SIZE} bytes, got ${opts.maxLayerSize}`);
  }
  for (const [diffId, size] of opts.split ?? []) {
    if (!Number.isSafeInteger(size) || size < MIN_PIECE_SIZE)
      throw new Error(`split size for ${diffId} must be at least ${MIN_PIECE_SIZE} bytes`);
  }
}

function targetFor(opts: SinkOptions, diffId: string, size: number | undefined): number | undefined {
  if (opts.split) return opts.split.get(diffId);
  return size !== undefined && size > opts.maxLayerSize ? opts.maxLayerSize : undefined;
}

function documentOf(archive: SavedArchive, name: string): Buffer | undefined {
  const e = archive.get(name);
  if (!e) return undefined;
  if (e.data) return e.data;
  return e.file && e.size <= DOCUMENT_MAX ? readFileSync(e.file) : undefined;
}

/** The layer's uncompressed bytes, read again from where the reader kept them. */
function openLayer(entry: ArchiveEntry): AsyncIterable<Buffer> {
  const source = entry.file
    ? createReadStream(entry.file, { highWaterMark: 1024 * 1024 })
    : Readable.from([entry.data as Buffer]);
  const inflate = decompressor(entry.layer?.compression ?? 'none');
  if (!inflate) return source;
  source.on('error', (e: Error) => inflate.destroy(e));
  inflate.on('close', () => source.destroy());
  return source.pipe(inflate);
}

interface LayerDecision {
  readonly diffId: string;
  readonly entry: ArchiveEntry;
  readonly size: number;
  readonly createdBy: string;
  /** null: the layer is kept whole. */
  readonly plan: LayerPlan | null;
  readonly target: number;
  /** Entries that could not be cut down to the target, whether or not the layer is split. */
  readonly oversized: readonly Oversized[];
}

function decide(
  archive: SavedArchive,
  layerNames: readonly string[],
  diffIds: readonly string[],
  createdBy: string[],
  opts: SinkOptions,
): LayerDecision[] {
  return layerNames.map((name, i) => {
    const entry = archive.get(name);
    if (!entry) throw new Error(`the archive lists layer ${name} but does not hold it`);
    const diffId = diffIds[i];
    const probe = entry.layer;
    // Docker and containerd could not have loaded such a layer: whatever made this archive, it is not theirs.
    if (probe?.invalid) throw new Error(`layer ${i + 1} (${name}) is not a valid tar archive: ${probe.invalid}`);
    if (probe?.diffId && probe.diffId !== diffId) {
      throw new Error(`layer ${i + 1} (${name}) has diff ID ${probe.diffId} but the config says ${diffId}`);
    }
    const size = probe?.uncompressedSize ?? entry.size;
    const target = targetFor(opts, diffId, probe?.uncompressedSize);
    const base = { diffId, entry, size, createdBy: createdBy[i] ?? '', target: target ?? 0 };
    if (target === undefined) {
      if (!opts.split && probe?.unreadable)
        opts.log(`layer ${i + 1} sha256:${short(diffId)}: size unknown, left whole (${probe.unreadable})`);
      return { ...base, plan: null, oversized: [] };
    }
    if (!probe?.entries) {
      const why = probe?.unreadable ?? 'it is not a tar archive';
      if (opts.split) throw new Error(`layer ${i + 1} sha256:${short(diffId)} cannot be split: ${why}`);
      throw new Error(`layer ${i + 1} sha256:${short(diffId)} was not indexed: ${why}`);
    }
    const plan = planSplit(probe.entries, target);
    if (plan.pieces.length < 2) {
      const why = plan.oversized.length ? 'cannot be cut smaller' : `fits in one piece of ${formatBytes(target)}`;
      opts.log(`layer ${i + 1} sha256:${short(diffId)} (${formatBytes(size)}) ${why}: left whole`);
      return { ...base, plan: null, oversized: plan.oversized };
    }
    return { ...base, plan, oversized: plan.oversized };
  });
}

function reportOversized(d: LayerDecision, index: number, opts: SinkOptions): UnsplittableEntry[] {
  const found: UnsplittableEntry[] = [];
  for (const o of d.oversized) {
    const where = `layer ${index + 1} sha256:${short(d.diffId)}`;
    if (o.reason === 'single-entry') {
      opts.log(
        `unsplittable: ${displayPath(o.path)} (${formatBytes(o.size)}, ${o.size} bytes) in ${where} is bigger than the piece size ${formatBytes(d.target)}; its piece holds only it and its parent directories`,
      );
      found.push({ path: displayPath(o.path), size: o.size, layerDiffId: d.diffId });
    } else if (o.reason === 'hardlink-order') {
      opts.log(
        `${where}: entries from ${displayPath(o.path)} to a later hardlink of it must stay in one piece, which is over ${formatBytes(d.target)}`,
      );
    } else {
      opts.log(
        `${where}: its whiteouts alone (${formatBytes(o.size)}) make the first piece bigger than ${formatBytes(d.target)}`,
      );
    }
  }
  return found;
}

/** A `docker save` archive in, a `docker load` archive (tagged opts.tag) out. */
export async function relayerArchive(
  input: NodeJS.ReadableStream,
  output: NodeJS.WritableStream,
  opts: RelayerOptions,
): Promise<RelayerReport> {
  if (!opts.tag || /\s/.test(opts.tag)) throw new Error(`tag must be a repo:tag reference, got "${opts.tag}"`);
  const report = await relayerToSink(input, new ArchiveSink(output, opts.tag), opts);
  // Nothing was written: the output still ends, so a reader (docker load, a file) is not left waiting.
  if (!report.changed && opts.skipUnchanged) output.end();
  return report;
}

/** What the saved archive says the image is: its config and, in order, its layers' archive names and diff IDs. */
interface SavedImage {
  readonly configBytes: Buffer;
  readonly configText: string;
  readonly layerNames: readonly string[];
  readonly diffIds: readonly string[];
  /** The history entry that made each layer; [] when history does not match the layers one to one. */
  readonly createdBy: string[];
}

function savedImage(archive: SavedArchive): SavedImage {
  const refs = resolveImage((name) => documentOf(archive, name));
  const configBytes = documentOf(archive, refs.config);
  if (!configBytes) throw new Error(`the archive does not hold the image config ${refs.config}`);
  const configText = configBytes.toString('utf8');
  const diffIds = (JSON.parse(configText) as { rootfs?: { diff_ids?: string[] } }).rootfs?.diff_ids ?? [];
  if (diffIds.length !== refs.layers.length) {
    throw new Error(`the config lists ${diffIds.length} layers but ${refs.source} lists ${refs.layers.length}`);
  }
  const history = layerHistory(configText);
  const createdBy = history.length === diffIds.length ? history.map((h) => h.created_by ?? '') : [];
  return { configBytes, configText, layerNames: refs.layers, diffIds, createdBy };
}

/** The report of an image left as it was (nothing written): every layer is its own only piece. */
function unchangedReport(
  decisions: readonly LayerDecision[],
  configBytes: Buffer,
  unsplittable: UnsplittableEntry[],
): RelayerReport {
  const configDigest = `sha256:${createHash('sha256').update(configBytes).digest('hex')}`;
  const layers = decisions.map((d) => ({
    diffId: d.diffId,
    size: d.size,
    createdBy: d.createdBy,
    pieces: [{ diffId: d.diffId, size: d.size }],
  }));
  return { changed: false, configDigest, layers, unsplittable };
}

/** One layer to the sink, split into its pieces or kept whole: the names the image lists it by, and its pieces. */
async function writeLayer(
  d: LayerDecision,
  index: number,
  raws: RawStore,
  sink: LayerSink,
  opts: SinkOptions,
): Promise<{ names: string[]; pieces: PieceReport[] }> {
  if (!d.plan) {
    const entry = d.entry;
    const name = await sink.kept(entry, d.diffId, () => openLayer(entry));
    return { names: [name], pieces: [{ diffId: d.diffId, size: d.size }] };
  }
  const written = await writePieces(
    openLayer(d.entry),
    d.plan,
    raws,
    sink,
    (k) => `relayer/${hex(d.diffId)}/${k + 1}.tar`,
  );
  opts.log(
    `layer ${index + 1} sha256:${short(d.diffId)} (${formatBytes(d.size)}) split into ${written.length} pieces of at most ${formatBytes(d.target)}`,
  );
  return { names: written.map((w) => w.name), pieces: written.map((w) => ({ diffId: w.diffId, size: w.size })) };
}

/** Every layer to the sink, in order: their reports, and the names the new image lists, in order. */
async function writeLayers(
  decisions: readonly LayerDecision[],
  raws: RawStore,
  sink: LayerSink,
  opts: SinkOptions,
): Promise<{ layers: LayerReport[]; layerNames: string[] }> {
  // A layer listed twice (identical layers) is written once; a spilled file goes once nothing else needs it.
  const uses = new Map<string, number>();
  for (const d of decisions) uses.set(d.entry.name, (uses.get(d.entry.name) ?? 0) + 1);
  const done = new Map<string, { names: string[]; pieces: PieceReport[] }>();
  const layers: LayerReport[] = [];
  for (const [i, d] of decisions.entries()) {
    let result = done.get(d.diffId);
    if (!result) {
      result = await writeLayer(d, i, raws, sink, opts);
      done.set(d.diffId, result);
    }
    const left = (uses.get(d.entry.name) ?? 1) - 1;
    uses.set(d.entry.name, left);
    if (left === 0 && d.entry.file) await rm(d.entry.file, { force: true });
    layers.push({ diffId: d.diffId, size: d.size, createdBy: d.createdBy, pieces: result.pieces });
  }
  const layerNames = decisions.flatMap((d) => (done.get(d.diffId) as { names: string[] }).names);
  return { layers, layerNames };
}

/** The config with the split layers' diff IDs (and history) replaced by their pieces', when anything was split. */
function newConfig(
  image: SavedImage,
  decisions: readonly LayerDecision[],
  layers: readonly LayerReport[],
  opts: SinkOptions,
): Buffer {
  if (!decisions.some((d) => d.plan)) return image.configBytes;
  const rewrite = rewriteConfig(
    image.configText,
    decisions.map((d, i) => ({
      diffId: d.diffId,
      pieces: d.plan ? layers[i].pieces.map((p) => p.diffId) : null,
    })),
  );
  if (!rewrite.historyRewritten) opts.log('config history does not match the layers one to one: left as it was');
  return Buffer.from(rewrite.text, 'utf8');
}

/**
 * A `docker save` archive in, the re-layered image out to `sink`. With opts.skipUnchanged and no layer to split,
 * the sink is never written to (report.changed is false).
 */
export async function relayerToSink(
  input: NodeJS.ReadableStream,
  sink: LayerSink,
  opts: SinkOptions,
): Promise<RelayerReport> {
  validate(opts);
  // Attached before the first await: a child process's stdout nobody listens to yet is drained and
  // discarded by Node when the child exits (child_process flushStdio), which a small `docker save` can do.
  const source = new PassThrough({ highWaterMark: 1024 * 1024 });
  input.on('error', (e: Error) => source.destroy(e));
  input.pipe(source);
  const work = await mkdtemp(join(opts.workDir, 'relayer-'));
  const raws = new RawStore(join(work, 'raw-entries'));
  try {
    const readStart = performance.now();
    const keepIndex = (diffId: string, size: number) => targetFor(opts, diffId, size) !== undefined;
    const archive = await readArchive(source, work, { probe: { keepIndex, raws } });
    // timings say whether the time went to the engine's save (reading) or its load (writing)
    const readSeconds = (performance.now() - readStart) / 1000;
    opts.log(
      `read the saved archive in ${readSeconds.toFixed(1)}s (${formatBytes(archive.spilledBytes)} kept in ${work})`,
    );
    const image = savedImage(archive);
    const decisions = decide(archive, image.layerNames, image.diffIds, image.createdBy, opts);
    // an identical layer listed twice is reported once
    const unsplittable = decisions.flatMap((d, i) =>
      decisions.findIndex((x) => x.diffId === d.diffId) === i ? reportOversized(d, i, opts) : [],
    );
    const changed = decisions.some((d) => d.plan);
    if (!changed && opts.skipUnchanged) {
      opts.log(
        `no layer over ${formatBytes(opts.maxLayerSize)}${opts.split ? ' listed for splitting' : ''}: image unchanged`,
      );
      return unchangedReport(decisions, image.configBytes, unsplittable);
    }

    const writeStart = performance.now();
    const { layers, layerNames } = await writeLayers(decisions, raws, sink, opts);
    const config = newConfig(image, decisions, layers, opts);
    const configDigest = `sha256:${createHash('sha256').update(config).digest('hex')}`;
    const written = await sink.finish(config, configDigest, layerNames);

    const writeSeconds = (performance.now() - writeStart) / 1000;
    opts.log(
      `${decisions.length} layers -> ${layerNames.length}, config ${configDigest}; ${written} written in ${writeSeconds.toFixed(1)}s`,
    );
    return { changed, configDigest, layers, unsplittable };
  } finally {
    await raws.close();
    await rm(work, { recursive: true, force: true });
  }
}
