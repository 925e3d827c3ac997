// Turns push events into the progress line a person watching a long push wants: which layer, how far, how long.
import type { LayerFact } from '../../image/layers.js';
import type { PushEvent } from '../../engine/push-output.js';
import { formatBytes, formatDuration } from '../../util/units.js';

const DONE = new Set(['pushed', 'exists', 'mounted']);

export class PushProgress {
  private readonly status = new Map<string, string>();
  private readonly byShortId: Map<string, LayerFact>;

  constructor(
    private readonly layers: readonly LayerFact[],
    private readonly startedAt: number,
  ) {
    this.byShortId = new Map(layers.map((l) => [l.shortId, l]));
  }

  observe(event: PushEvent): void {
    if (event.kind === 'layer') this.status.set(event.id, event.status);
  }

  /** Layer IDs the engine was still working on (uploading or waiting to retry) when it stopped. */
  unfinished(): string[] {
    return [...this.status].filter(([, s]) => !DONE.has(s)).map(([id]) => id);
  }

  /** The layer the engine was retrying or uploading last, when its ID maps to a known layer. */
  suspect(): LayerFact | null {
    const ids = this.unfinished();
    const facts = ids.map((id) => this.byShortId.get(id)).filter((l): l is LayerFact => !!l);
    if (facts.length === 0) return null;
    return facts.reduce((a, b) => (b.size > a.size ? b : a));
  }

  line(now: number): string {
    const known = [...this.status.keys()].filter((id) => this.byShortId.has(id));
    const total = this.layers.length;
    const done = known.filter((id) => DONE.has(this.status.get(id) ?? ''));
    const doneBytes = done.reduce((s, id) => s + (this.byShortId.get(id)?.size ?? 0), 0);
    const totalBytes = this.layers.reduce((s, l) => s + l.size, 0);
    // Biggest first: that is the layer a person watching a long push is waiting for.
    const active = known
      .filter((id) => !DONE.has(this.status.get(id) ?? ''))
      .map((id) => this.byShortId.get(id) as LayerFact)
      .sort((a, b) => b.size - a.size)
      .map(
        (l) =>
          `layer ${l.index} (${formatBytes(l.size)}${l.instruction ? `, ${shorten(l.instruction)}` : ''}) ${ACTIVE_WORDS[this.status.get(l.shortId) ?? ''] ?? this.status.get(l.shortId)}`,
      );
    const counted =
      known.length > 0
        ? `${done.length}/${total} layers done (${formatBytes(doneBytes)} of ${formatBytes(totalBytes)})`
        : `${this.status.size} blobs, ${[...this.status.values()].filter((s) => DONE.has(s)).length} done`;
    return `push: ${counted}${active.length ? `; ${active.join('; ')}` : ''}; ${formatDuration(now - this.startedAt)} elapsed`;
  }
}

// Without a TTY the engine prints no "Pushing" lines: a layer is "Preparing" until it is pushed, so that is
// when it uploads; "Waiting" means queued behind the engine's concurrent uploads.
const ACTIVE_WORDS: Record<string, string> = {
  preparing: 'uploading',
  pushing: 'uploading',
  waiting: 'queued',
  retrying: 'retrying',
};

/** The classic builder's `COPY file:<64 hex> in /dest`: the hash says nothing, the destination does. */
function shorten(instruction: string): string {
  const s = instruction.replace(/\b(file|dir|multi):([a-f0-9]{12})[a-f0-9]{52}\b/g, '$1:$2…');
  return s.length > 60 ? `${s.slice(0, 59)}…` : s;
}

/** The chunked uploader's progress: bytes the registry acknowledged per blob, chunks done, elapsed. */
export class UploadProgress {
  private readonly blobs = new Map<string, { size: number; confirmed: number; chunks: number }>();

  constructor(private readonly startedAt: number) {}

  observe(p: { digest: string; size: number; confirmed: number; chunks: number }): void {
    this.blobs.set(p.digest, { size: p.size, confirmed: p.confirmed, chunks: p.chunks });
  }

  line(now: number): string {
    const all = [...this.blobs.values()];
    const size = all.reduce((s, b) => s + b.size, 0);
    const confirmed = all.reduce((s, b) => s + b.confirmed, 0);
    const done = all.filter((b) => b.confirmed >= b.size).length;
    const chunks = all.reduce((s, b) => s + b.chunks, 0);
    return (
      `upload: ${done}/${all.length} blobs done, ${formatBytes(confirmed)} of ${formatBytes(size)} acknowledged, ` +
      `${chunks} chunks; ${formatDuration(now - this.startedAt)} elapsed`
    );
  }
}
