// Facts about each layer of a local image: its diff ID, uncompressed size and the instruction that made it.
// Pure: built from `docker image inspect` RootFS.Layers (oldest first) and `docker history` rows (newest first).

export interface HistoryRow {
  readonly size: number;
  readonly createdBy: string;
}

export interface LayerFact {
  /** 1-based position, oldest first, as a person counts Dockerfile layers. */
  readonly index: number;
  readonly diffId: string;
  /** The 12-hex short ID the classic store prints in `docker push` lines. */
  readonly shortId: string;
  readonly size: number;
  /** The Dockerfile instruction, cleaned of builder noise; null when it cannot be matched. */
  readonly instruction: string | null;
}

// Instructions that only change the config: history entries with no layer of their own.
const METADATA_ONLY = /^(?:ENV|LABEL|CMD|ENTRYPOINT|EXPOSE|USER|WORKDIR|ARG|ONBUILD|STOPSIGNAL|HEALTHCHECK|SHELL|VOLUME|MAINTAINER)\b/i;

/** `/bin/sh -c #(nop) COPY file:abc in /x ` -> `COPY file:abc in /x`; `RUN x # buildkit` -> `RUN x`. */
export function cleanInstruction(createdBy: string): string {
  let s = createdBy.trim();
  const nop = /^\/bin\/sh -c #\(nop\)\s*(.*)$/s.exec(s);
  if (nop) s = nop[1].trim();
  else if (s.startsWith('/bin/sh -c ')) s = `RUN ${s.slice('/bin/sh -c '.length)}`;
  s = s.replace(/\s*# buildkit$/, '');
  return s.replace(/\s+/g, ' ');
}

function isEmptyLayerRow(row: HistoryRow): boolean {
  if (row.size > 0) return false;
  const instruction = cleanInstruction(row.createdBy);
  return METADATA_ONLY.test(instruction) || instruction === '';
}

export function layerFacts(diffIds: readonly string[], historyNewestFirst: readonly HistoryRow[]): LayerFact[] {
  const oldestFirst = [...historyNewestFirst].reverse();
  let rows = oldestFirst.filter((r) => r.size > 0);
  // A layer can be empty (RUN that changed nothing): fall back to the rows that are not metadata-only.
  if (rows.length !== diffIds.length) rows = oldestFirst.filter((r) => !isEmptyLayerRow(r));
  const matched = rows.length === diffIds.length;
  return diffIds.map((diffId, i) => ({
    index: i + 1,
    diffId,
    shortId: diffId.replace(/^sha256:/, '').slice(0, 12),
    size: matched ? rows[i].size : 0,
    instruction: matched ? cleanInstruction(rows[i].createdBy) : null,
  }));
}

export function layersOver(layers: readonly LayerFact[], limit: number): LayerFact[] {
  return layers.filter((l) => l.size > limit);
}
