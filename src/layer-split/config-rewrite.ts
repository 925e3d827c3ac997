// The image config after a split: rootfs.diff_ids lists the pieces in place of each split layer, and the
// history entry that made a split layer becomes one entry per piece. Only those two values are re-serialized;
// every other byte of the config is kept as it was, so nothing else can change (not key order, not number
// precision, not escaping).

export interface LayerRewrite {
  /** The layer's diff ID as the config lists it. */
  readonly diffId: string;
  /** The pieces' diff IDs, or null when the layer is kept whole. */
  readonly pieces: readonly string[] | null;
}

interface HistoryEntry {
  created_by?: string;
  empty_layer?: boolean;
  [key: string]: unknown;
}

interface Rootfs {
  type?: string;
  diff_ids?: string[];
  [key: string]: unknown;
}

/** Value spans of the top-level keys of a JSON object text: key -> [start, end). */
export function topLevelSpans(text: string): Map<string, [number, number]> {
  const spans = new Map<string, [number, number]>();
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i])) i++;
  };
  const skipString = () => {
    i++; // opening quote
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    if (i >= text.length) throw new Error('config: unterminated string');
    i++;
  };
  const skipValue = () => {
    if (text[i] === '"') return skipString();
    if (text[i] === '{' || text[i] === '[') {
      let depth = 0;
      do {
        const c = text[i];
        if (c === '"') {
          skipString();
          continue;
        }
        if (c === '{' || c === '[') depth++;
        else if (c === '}' || c === ']') depth--;
        i++;
      } while (depth > 0 && i < text.length);
      if (depth !== 0) throw new Error('config: unbalanced brackets');
      return;
    }
    while (i < text.length && !',}] \t\n\r'.includes(text[i])) i++;
  };
  ws();
  if (text[i] !== '{') throw new Error('config is not a JSON object');
  i++;
  for (;;) {
    ws();
    if (text[i] === '}') break;
    if (text[i] !== '"') throw new Error(`config: expected a key at ${i}`);
    const keyStart = i;
    skipString();
    const key = JSON.parse(text.slice(keyStart, i)) as string;
    ws();
    if (text[i] !== ':') throw new Error(`config: expected ':' at ${i}`);
    i++;
    ws();
    const start = i;
    skipValue();
    spans.set(key, [start, i]);
    ws();
    if (text[i] === ',') {
      i++;
      continue;
    }
    if (text[i] === '}') break;
    throw new Error(`config: expected ',' or '}' at ${i}`);
  }
  return spans;
}

function splice(text: string, replacements: Array<{ span: [number, number]; value: string }>): string {
  let out = text;
  for (const r of [...replacements].sort((a, b) => b.span[0] - a.span[0])) {
    out = out.slice(0, r.span[0]) + r.value + out.slice(r.span[1]);
  }
  return out;
}

/** Non-empty history entries, in order: the i-th made layer i (when the counts agree). */
export function layerHistory(configText: string): Array<HistoryEntry> {
  const config = JSON.parse(configText) as { history?: HistoryEntry[] };
  return (config.history ?? []).filter((h) => h.empty_layer !== true);
}

export interface RewriteResult {
  readonly text: string;
  /** False when history could not be matched to layers and was left as it was. */
  readonly historyRewritten: boolean;
}

export function rewriteConfig(configText: string, layers: readonly LayerRewrite[]): RewriteResult {
  const config = JSON.parse(configText) as { rootfs?: Rootfs; history?: HistoryEntry[] };
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== layers.length || layers.some((l, i) => l.diffId !== diffIds[i])) {
    throw new Error('config rootfs.diff_ids do not match the layers being rewritten');
  }
  const spans = topLevelSpans(configText);
  const replacements: Array<{ span: [number, number]; value: string }> = [];
  const rootfs = { ...config.rootfs, diff_ids: layers.flatMap((l) => l.pieces ?? [l.diffId]) };
  replacements.push({ span: spans.get('rootfs') as [number, number], value: JSON.stringify(rootfs) });

  const history = config.history;
  const made = history?.filter((h) => h.empty_layer !== true) ?? [];
  const historyRewritten = history !== undefined && made.length === layers.length;
  if (historyRewritten) {
    let layer = 0;
    const rewritten = history.flatMap((h) => {
      if (h.empty_layer === true) return [h];
      const pieces = layers[layer++].pieces;
      if (!pieces) return [h];
      return pieces.map((_, i) => ({ ...h, created_by: `${h.created_by ?? ''} (part ${i + 1}/${pieces.length})` }));
    });
    replacements.push({ span: spans.get('history') as [number, number], value: JSON.stringify(rewritten) });
  }
  return { text: splice(configText, replacements), historyRewritten };
}
