// Facts about each layer of a local image: its diff ID, uncompressed size and the instruction that made it.
// Pure: built from `docker image inspect` RootFS.Layers (oldest first) and `docker history` rows (newest first).
import { shortDigest } from './oci.js';
import { logText } from '../util/untrusted.js';

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
const METADATA_ONLY =
  /^(?:ENV|LABEL|CMD|ENTRYPOINT|EXPOSE|USER|WORKDIR|ARG|ONBUILD|STOPSIGNAL|HEALTHCHECK|SHELL|VOLUME|MAINTAINER)\b/i;

/**
 * `/bin/sh -c #(nop) COPY file:abc in /x ` -> `COPY file:abc in /x`; `RUN x # buildkit` -> `RUN x`. The history is
 * the image author's text and this is the form every message shows: one line, as data (untrusted.ts).
 */
export function cleanInstruction(createdBy: string): string {
  let s = createdBy.trim();
  const nop = /^\/bin\/sh -c #\(nop\)\s*(.*)$/s.exec(s);
  if (nop) s = nop[1].trim();
  else if (s.startsWith('/bin/sh -c ')) s = `RUN ${s.slice('/bin/sh -c '.length)}`;
  else if (/^\|\d+ .*?\/bin\/sh -c /s.test(s)) s = `RUN ${s}`; // classic builder: `|1 ARG=v /bin/sh -c cmd`
  s = s.replace(/\s*# buildkit$/, '');
  return logText(s.replace(/\s+/g, ' '));
}

function isEmptyLayerRow(row: HistoryRow): boolean {
  if (row.size > 0) return false;
  const instruction = cleanInstruction(row.createdBy);
  return METADATA_ONLY.test(instruction) || instruction === '';
}

export function layerFacts(diffIds: readonly string[], historyNewestFirst: readonly HistoryRow[]): LayerFact[] {
  const oldestFirst = [...historyNewestFirst].reverse();
  // Which history rows made a layer is not recorded in the history the engine shows; try the readings in
  // order: rows with bytes; plus empty layers (a RUN that changed nothing); plus BuildKit's WORKDIR, which
  // makes a layer (mkdir) that the classic store reports as 0 bytes.
  const readings = [
    (r: HistoryRow) => r.size > 0,
    (r: HistoryRow) => !isEmptyLayerRow(r),
    (r: HistoryRow) => !isEmptyLayerRow(r) || /^WORKDIR\s+(?!\/$)/i.test(cleanInstruction(r.createdBy)),
  ];
  const rows =
    readings.map((keep) => oldestFirst.filter(keep)).find((candidate) => candidate.length === diffIds.length) ?? [];
  const matched = rows.length === diffIds.length;
  return diffIds.map((diffId, i) => ({
    index: i + 1,
    diffId,
    shortId: shortDigest(diffId),
    size: matched ? rows[i].size : 0,
    instruction: matched ? cleanInstruction(rows[i].createdBy) : null,
  }));
}

export function layersOver(layers: readonly LayerFact[], limit: number): LayerFact[] {
  return layers.filter((l) => l.size > limit);
}
